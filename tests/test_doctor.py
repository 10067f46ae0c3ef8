"""`storyfeed doctor`: end to end against servers on 127.0.0.1, then the report's pieces."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from rich.console import Console
from werkzeug import Request, Response

from conftest import DATA, NOW, Result
from storyfeed import core, doctor, render
from storyfeed.config import Paths, Settings
from storyfeed.models import Feed, FeedStatus
from storyfeed.reports import DatabaseHealth, Verdict
from storyfeed.store import Store
from storyfeed.updates import FetchOutcome, FetchRequest, FetchResult, ParsedFeed

Run = Callable[..., Result]
BLOG = (DATA / "blog.rss").read_bytes()
ETAG = '"blog-1"'
MODIFIED = "Wed, 27 May 2026 00:00:00 GMT"


def report(run: Run, *args: str) -> tuple[int, dict[str, Any]]:
    result = run("doctor", "--json", *args)
    assert "Traceback" not in result.err
    return result.code, json.loads(result.out)


def findings(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A feed's findings by topic (the last one of a topic wins)."""
    return {finding["topic"]: finding for finding in record["findings"]}


def serve_blog(server: HTTPServer, path: str, *, honour: bool, etag: bool = True) -> list[Request]:
    """The blog, with validators (unless not ``etag``); a 304 when ``honour`` and they match."""
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        if honour and request.headers.get("If-None-Match") == ETAG:
            return Response(status=304, headers={"ETag": ETAG})
        headers = {"ETag": ETAG, "Last-Modified": MODIFIED} if etag else {}
        headers["Cache-Control"] = "max-age=3600"
        return Response(BLOG, content_type="application/rss+xml", headers=headers)

    server.expect_request(path).respond_with_handler(handler)
    return seen


# --- end to end ---------------------------------------------------------------------------


def test_a_redirect_chain_shows_each_hop_and_the_final_url(
    run: Run, httpserver: HTTPServer
) -> None:
    old, mid, final = (httpserver.url_for(p) for p in ("/old.xml", "/mid.xml", "/feed.xml"))
    httpserver.expect_request("/old.xml").respond_with_response(
        Response(status=301, headers={"Location": mid})
    )
    httpserver.expect_request("/mid.xml").respond_with_response(
        Response(status=302, headers={"Location": final})
    )
    serve_blog(httpserver, "/feed.xml", honour=True)
    assert run("add", old).code == 0

    code, data = report(run)
    assert code == 0
    (feed,) = data["feeds"]
    fetch = feed["last_fetch"]
    assert fetch["url"] == old
    assert fetch["redirects"] == [[301, old], [302, mid]]
    assert fetch["final_url"] == final
    assert fetch["status"] == 200
    assert fetch["bytes"] == len(BLOG)
    assert feed["url"] == mid  # the permanent move is followed, the temporary one not
    hops = findings(feed)["redirects"]
    assert hops["text"] == f"{old} (301) → {mid} (302) → {final}"
    assert hops["advice"] == f"storyfeed now asks {mid}, where the permanent redirects lead"

    piped = run("doctor")
    assert piped.code == 0
    line = next(line for line in piped.out.splitlines() if "\tredirects\t" in line)
    assert line.split("\t")[:4] == [str(feed["id"]), "Test Blog", "INFO", "redirects"]


def test_a_server_that_answers_304_honours_conditional_get(
    run: Run, httpserver: HTTPServer
) -> None:
    seen = serve_blog(httpserver, "/blog.xml", honour=True)
    assert run("add", httpserver.url_for("/blog.xml")).code == 0
    _, data = report(run)
    assert data["feeds"][0]["last_fetch"]["conditional"] == "unknown"  # nothing sent yet
    assert findings(data["feeds"][0])["conditional GET"]["verdict"] == "INFO"

    assert run("refresh", "--force").code == 0
    assert seen[-1].headers.get("If-None-Match") == ETAG

    code, data = report(run, "Test Blog")
    assert code == 0
    feed = data["feeds"][0]
    fetch = feed["last_fetch"]
    assert fetch["status"] == 304
    assert fetch["conditional"] == "honoured"
    assert fetch["sent_validators"] == {"etag": True, "last_modified": True}
    assert fetch["headers"]["etag"] == ETAG
    assert fetch["parse"]["stories"] == 8  # a 304 keeps what the last parse found
    assert findings(feed)["conditional GET"]["verdict"] == "OK"
    assert feed["verdict"] == "OK"
    assert feed["schedule"]["server_max_age"] is None  # the 304 sent no Cache-Control


def test_a_server_that_ignores_validators_is_called_out(run: Run, httpserver: HTTPServer) -> None:
    seen = serve_blog(httpserver, "/blog.xml", honour=False)
    assert run("add", httpserver.url_for("/blog.xml")).code == 0
    assert run("refresh", "--force").code == 0
    assert seen[-1].headers.get("If-None-Match") == ETAG  # sent, and ignored

    _, data = report(run)
    feed = data["feeds"][0]
    assert feed["last_fetch"]["status"] == 200
    assert feed["last_fetch"]["conditional"] == "ignored"
    conditional = findings(feed)["conditional GET"]
    assert conditional["verdict"] == "WARN"
    assert conditional["advice"] == (
        "the server ignores conditional GET: every refresh downloads 2.25 kB"
    )
    assert feed["verdict"] == "WARN"
    assert feed["schedule"]["server_max_age"] == 3600
    assert "max-age 60 min" in findings(feed)["schedule"]["text"]


def test_a_server_without_validators_offers_no_conditional_get(
    run: Run, httpserver: HTTPServer
) -> None:
    serve_blog(httpserver, "/blog.xml", honour=False, etag=False)
    assert run("add", httpserver.url_for("/blog.xml")).code == 0
    _, data = report(run)
    assert data["feeds"][0]["last_fetch"]["conditional"] == "not offered"
    assert findings(data["feeds"][0])["conditional GET"]["verdict"] == "WARN"


SLOPPY = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Sloppy</title><link>https://sloppy.example/</link>
<item><title>No guid</title><link>https://sloppy.example/1</link>
  <pubDate>Wed, 27 May 2026 00:00:00 GMT</pubDate></item>
<item><title>No guid, no date</title><link>https://sloppy.example/2</link></item>
<item><title>Guid, no date</title><guid isPermaLink="false">s-3</guid></item>
<item><title>From the future</title><guid isPermaLink="false">s-4</guid>
  <pubDate>Mon, 01 Jan 2099 00:00:00 GMT</pubDate></item>
<item><title>Far future</title><guid isPermaLink="false">s-5</guid>
  <pubDate>Fri, 01 Jan 2100 00:00:00 GMT</pubDate></item>
</channel></rss>
"""


def test_stories_without_guid_or_date_are_counted(run: Run, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/sloppy.xml").respond_with_data(
        SLOPPY, content_type="application/rss+xml"
    )
    assert run("add", httpserver.url_for("/sloppy.xml")).code == 0
    _, data = report(run)
    feed = data["feeds"][0]
    parse = feed["last_fetch"]["parse"]
    assert parse == {
        "at": feed["last_fetch"]["at"],
        "format": "rss20",
        "warning": "",
        "stories": 5,
        "without_id": 2,
        "without_date": 2,
        "future_dates": 2,
    }
    found = findings(feed)
    assert found["identity"]["text"] == "2 of 5 stories have no guid/id"
    assert "keyed by link" in found["identity"]["advice"]
    texts = [f["text"] for f in feed["findings"] if f["topic"] == "dates"]
    assert texts == ["2 of 5 stories have no date", "2 of 5 stories are dated in the future"]


def test_a_failing_feed_shows_its_streak_and_fails_when_named(
    run: Run, httpserver: HTTPServer
) -> None:
    serve_blog(httpserver, "/blog.xml", honour=True)
    assert run("add", httpserver.url_for("/blog.xml")).code == 0
    httpserver.clear()
    httpserver.expect_request("/blog.xml").respond_with_data("down", status=500)
    assert run("refresh", "--force").code == 1
    assert run("refresh", "Test Blog").code == 1

    code, data = report(run)
    assert code == 0  # the whole report: failing feeds are reported, not failed on
    code, data = report(run, "Test Blog")
    assert code == 1
    feed = data["feeds"][0]
    assert feed["verdict"] == "FAIL"
    assert feed["errors"]["count"] == 2
    assert feed["errors"]["failing_since"]
    assert feed["errors"]["last_error"] == "HTTP 500 INTERNAL SERVER ERROR"
    assert feed["last_fetch"]["status"] == 500
    assert feed["last_fetch"]["parse"]["stories"] == 8  # from the last success
    streak = findings(feed)["error streak"]
    assert streak["verdict"] == "FAIL"
    assert streak["text"].startswith("2 failures in a row since ")
    assert "next try at" in streak["advice"]

    piped = run("doctor", "1")
    assert piped.code == 1
    assert piped.err == ""  # the report says it all
    assert "\tFAIL\terror streak\t" in piped.out


def test_the_schedule_follows_the_feeds_own_interval(run: Run, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/blog.xml").respond_with_data(
        BLOG, content_type="application/rss+xml", headers={"Cache-Control": "max-age=60"}
    )
    assert run("add", httpserver.url_for("/blog.xml")).code == 0
    assert run("set", "1", "interval", "6h").code == 0

    _, data = report(run, "1")
    feed = data["feeds"][0]
    assert feed["schedule"]["interval"] == 6 * 3600
    schedule = findings(feed)["schedule"]["text"]
    assert "storyfeed waits 6 h between fetches" in schedule
    assert "the feed's own interval" in schedule
    listed = json.loads(run("feeds", "--json").out)[0]
    assert feed["schedule"]["next_fetch"] == listed["next_fetch"]


def test_a_retired_feed_with_a_streak_is_not_promised_a_next_try(
    run: Run, httpserver: HTTPServer
) -> None:
    serve_blog(httpserver, "/blog.xml", honour=False)
    assert run("add", httpserver.url_for("/blog.xml")).code == 0
    httpserver.clear()
    httpserver.expect_request("/blog.xml").respond_with_data("down", status=500)
    assert run("refresh", "--force").code == 1
    httpserver.clear()
    httpserver.expect_request("/blog.xml").respond_with_data("gone", status=410)
    assert run("refresh", "--force").code == 0  # retiring is reported, not failed on

    _, data = report(run, "1")
    feed = data["feeds"][0]
    assert (feed["status"], feed["errors"]["count"]) == ("gone", 2)
    assert feed["schedule"]["next_fetch"] is None
    assert json.loads(run("feeds", "--json").out)[0]["next_fetch"] is None
    advice = [f["advice"] or "" for f in feed["findings"]]
    assert not any("next try" in text or "keeps trying" in text for text in advice)
    assert "`storyfeed refresh FEED` tries again" in findings(feed)["error streak"]["advice"]


def test_a_paused_failing_feed_says_how_to_unpause(run: Run, httpserver: HTTPServer) -> None:
    serve_blog(httpserver, "/blog.xml", honour=False)
    assert run("add", httpserver.url_for("/blog.xml")).code == 0
    httpserver.clear()
    httpserver.expect_request("/blog.xml").respond_with_data("down", status=500)
    assert run("refresh", "--force").code == 1
    assert run("set", "1", "paused", "yes").code == 0

    _, data = report(run, "1")
    feed = data["feeds"][0]
    assert (feed["status"], feed["errors"]["count"]) == ("paused", 1)
    assert feed["schedule"]["next_fetch"] is None
    found = findings(feed)
    assert "schedule" not in found
    assert "`storyfeed set FEED paused no` unpauses it" in found["status"]["advice"]
    streak = found["error streak"]["advice"]
    assert "`storyfeed set FEED paused no`" in streak
    assert "next try" not in streak


def test_a_damaged_index_fails_the_integrity_check(run: Run, home: Path) -> None:
    assert run("add", str(DATA / "blog.rss")).code == 0
    code, data = report(run)
    assert (code, data["storyfeed"]["check_ok"]) == (0, True)

    # An index whose definition no longer matches its entries: SQLite opens the file,
    # only a check finds the damage.
    db = sqlite3.connect(home / "storyfeed.db", isolation_level=None)
    db.execute("PRAGMA writable_schema = ON")
    db.execute(
        "UPDATE sqlite_master SET sql = replace(sql, 'sort_at DESC', 'first_seen_at DESC') "
        "WHERE name = 'stories_by_date'"
    )
    db.close()

    code, data = report(run)
    assert code == 1
    itself = data["storyfeed"]
    assert itself["check"] == "integrity_check"
    assert itself["check_ok"] is False
    assert "row 1 missing from index stories_by_date" in itself["check_problems"]
    integrity = findings(itself)["integrity"]
    assert integrity["verdict"] == "FAIL"
    assert "REINDEX" in integrity["advice"]


def test_json_fields_and_the_global_part(run: Run, home: Path) -> None:
    assert run("add", str(DATA / "blog.rss")).code == 0
    code, data = report(run)
    assert code == 0
    assert set(data) == {"storyfeed", "feeds"}
    itself = data["storyfeed"]
    assert set(itself) == {
        "version", "verdict", "config_dir", "config_file", "config_file_exists", "data_dir",
        "database", "database_bytes", "wal_bytes", "free_bytes", "schema_version",
        "sqlite_version", "check", "check_ok", "check_problems", "feeds", "stories",
        "search_index", "findings",
    }  # fmt: skip
    assert itself["config_file"] == str(home / "config.toml")
    assert itself["config_file_exists"] is True
    assert itself["database"] == str(home / "storyfeed.db")
    assert itself["database_bytes"] == (home / "storyfeed.db").stat().st_size > 0
    assert itself["schema_version"] == 5
    assert (itself["feeds"], itself["stories"]) == (1, 8)
    assert itself["search_index"] == {"indexed_through": 0, "newest_story": 8, "unindexed": 8}
    (feed,) = data["feeds"]
    assert set(feed) == {
        "id", "title", "url", "status", "verdict", "last_fetch", "schedule", "errors", "findings",
    }  # fmt: skip
    assert set(feed["last_fetch"]) == {
        "at", "url", "final_url", "redirects", "status", "outcome", "sent_validators",
        "conditional", "headers", "bytes", "elapsed_ms", "max_age", "error", "parse",
    }  # fmt: skip
    assert feed["last_fetch"]["conditional"] == "not applicable"  # a local file
    assert set(feed["schedule"]) == {
        "server_max_age", "server_expires_in", "ttl", "interval", "next_fetch", "retry_after",
    }  # fmt: skip
    assert feed["schedule"]["interval"] == 30 * 60
    assert set(feed["errors"]) == {"count", "failing_since", "last_error", "last_error_at"}
    assert all(set(f) == {"topic", "verdict", "text", "advice"} for f in feed["findings"])


def test_doctor_names_a_feed_it_cannot_find_in_one_error(run: Run) -> None:
    result = run("doctor", "nothing-like-it")
    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith("storyfeed: error: no feed matches")


def test_doctor_fetches_nothing(run: Run, httpserver: HTTPServer) -> None:
    seen = serve_blog(httpserver, "/blog.xml", honour=True)
    assert run("add", httpserver.url_for("/blog.xml")).code == 0
    before = len(seen)
    assert run("doctor").code == 0
    assert run("doctor", "--json").code == 0
    assert len(seen) == before


def test_doctor_refresh_fetches_first(run: Run, httpserver: HTTPServer) -> None:
    seen = serve_blog(httpserver, "/blog.xml", honour=True)
    assert run("add", httpserver.url_for("/blog.xml")).code == 0
    code, data = report(run, "--refresh", "Test Blog")
    assert code == 0
    assert len(seen) == 2
    assert data["feeds"][0]["last_fetch"]["conditional"] == "honoured"

    httpserver.clear()
    httpserver.expect_request("/blog.xml").respond_with_data("down", status=503)
    code, data = report(run, "--refresh")  # every feed; a failure is reported, not fatal
    assert code == 0
    assert data["feeds"][0]["errors"]["count"] == 1
    assert data["feeds"][0]["last_fetch"]["status"] == 503


# --- the pieces -----------------------------------------------------------------------------

SETTINGS = Settings()


def feed_with(**changes: Any) -> Feed:
    return replace(Feed(id=3, url="https://user:secret@feeds.example/a.xml"), **changes)


def test_a_feed_never_fetched_says_so() -> None:
    checkup, record = doctor.feed_checkup(feed_with(), None, SETTINGS, NOW)
    assert checkup.verdict is Verdict.WARN
    assert checkup.findings[0].text == "never fetched"
    assert record["last_fetch"] is None
    assert record["url"] == "https://user:***@feeds.example/a.xml"


def test_a_feed_fetched_before_diagnoses_were_kept() -> None:
    feed = feed_with(last_fetch_at=NOW, last_success_at=NOW)
    checkup, _ = doctor.feed_checkup(feed, doctor.load_diagnosis("{not json"), SETTINGS, NOW)
    assert checkup.verdict is Verdict.OK
    assert "before storyfeed recorded" in checkup.findings[0].text


def test_a_retired_feed_fails_and_says_how_to_try_again() -> None:
    checkup, record = doctor.feed_checkup(feed_with(status=FeedStatus.GONE), None, SETTINGS, NOW)
    assert checkup.verdict is Verdict.FAIL
    assert "410 Gone" in checkup.findings[0].text
    assert "storyfeed refresh FEED" in checkup.findings[0].advice
    assert record["status"] == "gone"


@pytest.mark.parametrize(
    ("status", "wanted"),
    [
        (FeedStatus.GONE, "`storyfeed refresh FEED` tries again"),
        (FeedStatus.PAUSED, "`storyfeed set FEED paused no` unpauses it"),
    ],
)
def test_a_streak_on_a_feed_that_is_not_fetched_promises_no_next_try(
    status: FeedStatus, wanted: str
) -> None:
    feed = feed_with(
        status=status,
        error_count=3,
        failing_since=NOW - timedelta(days=2),
        last_error="HTTP 410 Gone",
        next_fetch_at=NOW + timedelta(hours=4),
    )
    checkup, record = doctor.feed_checkup(feed, None, SETTINGS, NOW)
    streak = next(f for f in checkup.findings if f.topic == "error streak")
    assert streak.text.startswith("3 failures in a row since ")
    assert wanted in streak.advice
    assert "next try" not in streak.advice
    assert record["schedule"]["next_fetch"] is None


def test_a_server_asking_more_than_the_feeds_own_interval_raises_it() -> None:
    diagnosis = {"at": "2026-06-01T12:00:00Z", "outcome": "ok", "status": 200, "max_age": 7200}
    feed = feed_with(refresh_interval=3600, last_success_at=NOW, next_fetch_at=NOW)
    checkup, record = doctor.feed_checkup(feed, diagnosis, SETTINGS, NOW)
    assert record["schedule"]["interval"] == 7200
    schedule = next(f for f in checkup.findings if f.topic == "schedule")
    assert "the feed's own interval of 60 min is raised by what the server asks" in schedule.text


def test_retry_after_and_expires_are_explained() -> None:
    diagnosis = {
        "at": "2026-06-01T12:00:00Z",
        "outcome": "error",
        "status": 429,
        "error": "HTTP 429 Too Many Requests",
        "headers": {"expires": "Mon, 01 Jun 2026 14:00:00 GMT", "date": MODIFIED},
        "redirects": [],
    }
    feed = feed_with(error_count=1, retry_after=NOW + timedelta(hours=2), ttl_seconds=3600)
    checkup, record = doctor.feed_checkup(feed, diagnosis, SETTINGS, NOW)
    topics = {finding.topic: finding for finding in checkup.findings}
    assert topics["retry-after"].verdict is Verdict.WARN
    assert "2026-06-01T14:00:00Z" in topics["retry-after"].text
    assert topics["last fetch"].text == "HTTP 429 Too Many Requests, at 2026-06-01T12:00:00Z"
    # Expires counts from the response's Date, not from when storyfeed looked.
    assert record["schedule"]["server_expires_in"] == 5 * 86400 + 14 * 3600
    assert "<ttl> 60 min" in topics["schedule"].text
    assert record["schedule"]["interval"] == 3600  # the <ttl> raises the 30 min


HEALTHY = DatabaseHealth(
    schema_version=5, sqlite_version="3.40.1", check="integrity_check", problems=(),
    feeds=2, stories=10, newest_story=10, indexed_through=10, unindexed=0,
    page_bytes=4096 * 10, free_bytes=0,
)  # fmt: skip
PATHS = Paths(config_dir=Path("/cfg"), data_dir=Path("/data"))


def test_the_storyfeed_checkup_is_ok_when_the_check_passes() -> None:
    checkup, record = doctor.storyfeed_checkup(
        PATHS, HEALTHY, config_exists=False, database_bytes=40960, wal_bytes=8192
    )
    assert checkup.verdict is Verdict.OK
    texts = {finding.topic: finding.text for finding in checkup.findings}
    assert texts["config"] == "/cfg/config.toml (absent: the defaults apply)"
    assert texts["database"] == (
        "/data/storyfeed.db: 41 kB (+ 8.19 kB write-ahead log), schema 5, SQLite 3.40.1"
    )
    assert texts["search index"] == "up to date"
    assert record["check_ok"] is True


def test_damage_beyond_the_indexes_calls_for_recovery() -> None:
    damaged = replace(HEALTHY, problems=("Page 7: btreeInitPage() returns error code 11",) * 5)
    checkup, record = doctor.storyfeed_checkup(
        PATHS, damaged, config_exists=True, database_bytes=1, wal_bytes=0
    )
    assert checkup.verdict is Verdict.FAIL
    integrity = next(f for f in checkup.findings if f.topic == "integrity")
    assert integrity.text.endswith("(and 2 more)")
    assert ".recover" in integrity.advice
    assert record["check_problems"] == list(damaged.problems)


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 bytes"), (999, "999 bytes"), (2250, "2.25 kB"), (2_100_000, "2.1 MB"),
     (150_000_000, "150 MB"), (3 * 10**12, "3000 GB")],
)  # fmt: skip
def test_size_text(n: int, text: str) -> None:
    assert doctor.size_text(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(45, "45 s"), (1800, "30 min"), (3600, "60 min"), (7200, "2 h"), (5 * 86400, "5 d")],
)
def test_duration_text(seconds: int, text: str) -> None:
    assert doctor.duration_text(seconds) == text


def fetched(**changes: Any) -> FetchResult:
    request = FetchRequest(feed_id=3, url="https://u:pw@feeds.example/a.xml", etag='"e"')
    return replace(
        FetchResult(request=request, outcome=FetchOutcome.OK, http_status=200), **changes
    )


@pytest.mark.parametrize(
    ("result", "digest", "verdict"),
    [
        (fetched(outcome=FetchOutcome.NOT_MODIFIED, http_status=304), None, "honoured"),
        (fetched(etag='"e"'), "same", "ignored"),
        (fetched(etag='"e"'), "other", "unknown"),
        (fetched(), "same", "not offered"),
        (fetched(http_status=None), "same", "not applicable"),
        (fetched(outcome=FetchOutcome.ERROR, http_status=500), None, "unknown"),
    ],
)
def test_conditional_verdict(result: FetchResult, digest: str | None, verdict: str) -> None:
    feed = feed_with(body_hash="same")
    assert core.conditional_verdict(feed, result, digest) == verdict


def test_the_diagnosis_is_small_and_redacted() -> None:
    result = fetched(
        headers={"cache-control": "max-age=60", "etag": "x" * 5000, "set-cookie": "s=1"},
        final_url="https://u:pw@feeds.example/b.xml",
        redirects=((301, "https://u:pw@feeds.example/a.xml"),) * 50,
        size=123,
        body=b"<rss/>" * 1000,
    )
    parsed = ParsedFeed(title="t", site_url="", stories=(), warnings=("\x1b[31mbad\x1b[0m",))
    update, _ = core.decide_update(feed_with(), result, parsed, "", SETTINGS, NOW)
    assert update.diagnosis is not None
    record = json.loads(update.diagnosis)
    assert "pw" not in update.diagnosis
    assert record["url"] == "https://u:***@feeds.example/a.xml"
    assert set(record["headers"]) == {"cache-control", "etag"}  # never cookies
    assert len(record["headers"]["etag"]) == 300
    assert len(record["redirects"]) == 10
    assert record["parse"]["warning"] == "bad"
    assert record["bytes"] == 123
    assert len(update.diagnosis) < 2000


def test_a_fetch_that_parsed_nothing_keeps_the_last_parse(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "db.sqlite")
    feed, _ = store.add_feed("https://feeds.example/a.xml", now=NOW)
    feed = feed_with(id=feed.id, url=feed.url)
    parsed = ParsedFeed(title="t", site_url="", stories=(), format="atom10", without_id=0)
    first, _ = core.decide_update(feed, fetched(), parsed, "", SETTINGS, NOW)
    store.apply_update(first)
    later = NOW + timedelta(hours=1)
    not_modified = fetched(outcome=FetchOutcome.NOT_MODIFIED, http_status=304)
    second, _ = core.decide_update(feed, not_modified, None, "", SETTINGS, later)
    store.apply_update(second)
    record = json.loads(store.diagnoses()[feed.id])
    assert record["status"] == 304
    assert record["at"] == "2026-06-01T13:00:00Z"
    assert record["parse"]["format"] == "atom10"
    assert record["parse"]["at"] == "2026-06-01T12:00:00Z"
    health = store.health()
    assert (health.feeds, health.problems, health.schema_version) == (1, (), 5)
    assert store.health(quick_above=0).check == "quick_check"
    store.close()


def test_the_terminal_view_shows_feed_text_as_data() -> None:
    feed = feed_with(user_title="[bold red]Loud[/] feed", status=FeedStatus.GONE)
    checkup, _ = doctor.feed_checkup(feed, None, SETTINGS, NOW)
    out = StringIO()
    Console(file=out, width=80, color_system=None).print(render.doctor_view([checkup]))
    text = out.getvalue()
    assert "FAIL  3: [bold red]Loud[/] feed" in text
    assert "retired: the server answered 410 Gone" in text
    assert "→ `storyfeed refresh FEED` tries it again" in text
