"""End to end: the CLI against feeds served on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from conftest import DATA, Result

Run = Callable[..., Result]
BLOG = (DATA / "blog.rss").read_bytes()
BLOG_NEWEST_FIRST = json.loads((DATA / "blog.expected.json").read_text())["newest_first"]


class FeedSite:
    """Serves documents with ETag/Last-Modified and answers conditional GETs with 304."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.requests: list[Request] = []

    def serve(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = "application/rss+xml",
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> str:
        etag = f'"{abs(hash(body))}"'

        def handler(request: Request) -> Response:
            self.requests.append(request)
            if status == 200 and request.headers.get("If-None-Match") == etag:
                return Response(status=304, headers={"ETag": etag})
            extra = {"ETag": etag, "Last-Modified": "Wed, 27 May 2026 00:00:00 GMT"}
            return Response(
                body, status=status, content_type=content_type, headers={**extra, **(headers or {})}
            )

        self.server.expect_request(path).respond_with_handler(handler)
        return self.server.url_for(path)

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]


@pytest.fixture
def site(httpserver: HTTPServer) -> FeedSite:
    return FeedSite(httpserver)


def lines(result: Result) -> list[list[str]]:
    return [line.split("\t") for line in result.out.splitlines()]


def assert_one_error(result: Result, *fragments: str) -> None:
    assert result.code == 1, result
    assert result.out == ""
    err_lines = result.err.strip().splitlines()
    assert len(err_lines) == 1, result.err
    assert err_lines[0].startswith("storyfeed: error: ")
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in err_lines[0]


def test_first_run_add_list_open_read_mark_feeds_remove(run: Run, site: FeedSite) -> None:
    url = site.serve("/blog.xml", BLOG)

    added = run("add", url)
    assert added.code == 0, added
    assert "Subscribed to Test Blog" in added.out
    assert "8 stories" in added.out

    first = run("list")
    assert first.code == 0, first
    rows = lines(first)
    assert [row[4] for row in rows] == BLOG_NEWEST_FIRST  # date order, not document order
    assert {row[1] for row in rows} == {"new"}
    assert all(len(row) == 6 for row in rows)
    assert rows[0][2] == "2026-05-27T00:00:00Z"
    assert rows[0][3] == "Test Blog"
    assert rows[0][5] == "https://blog.example/posts/07/"

    before = len(site.hits("/blog.xml"))
    second = run("list")
    assert {row[1] for row in lines(second)} == {"unread"}  # shown once: no longer NEW
    assert len(site.hits("/blog.xml")) == before  # within the interval: no request

    newest_id = rows[0][0]
    opened = run("open", "--print")  # no id: the newest unread story
    assert opened.code == 0, opened
    assert opened.out == "https://blog.example/posts/07/\n"
    status = {row[0]: row[1] for row in lines(run("list", "--offline"))}
    assert status[newest_id] == "read"

    refreshed = run("refresh", "--force")
    assert refreshed.code == 0, refreshed
    last = site.hits("/blog.xml")[-1]
    assert last.headers.get("If-None-Match")
    assert last.headers.get("If-Modified-Since") == "Wed, 27 May 2026 00:00:00 GMT"

    two = next(row[0] for row in rows if row[4] == "Post Two")
    shown = run("read", two)
    assert shown.code == 0, shown
    assert "Title: Post Two" in shown.out
    assert "Feed: Test Blog" in shown.out
    assert "Link: https://blog.example/posts/02/" in shown.out
    assert "Two ways to split a matrix." in shown.out  # HTML converted, not raw
    assert "<b>" not in shown.out

    assert run("mark", "unread", newest_id, two).code == 0
    unread = lines(run("list", "--offline", "--unread"))
    assert len(unread) == 8
    assert run("mark", "read", "--all").code == 0
    assert lines(run("list", "--offline", "--unread")) == []
    assert run("mark", "unread", "--feed", "test blog").code == 0
    assert len(lines(run("list", "--offline", "--unread"))) == 8

    feeds = json.loads(run("feeds", "--json").out)
    assert len(feeds) == 1
    assert feeds[0]["title"] == "Test Blog"
    assert feeds[0]["url"] == url
    assert feeds[0]["status"] == "ok"
    assert feeds[0]["stories"] == 8
    assert feeds[0]["unread"] == 8
    assert feeds[0]["last_success"] and feeds[0]["next_fetch"]
    assert feeds[0]["last_error"] is None

    removed = run("remove", "blog")
    assert removed.code == 0
    assert "8 stories" in removed.out
    assert run("list", "--offline").out == ""
    assert json.loads(run("feeds", "--json").out) == []


def test_json_listing_has_the_documented_fields(run: Run, site: FeedSite) -> None:
    run("add", site.serve("/blog.xml", BLOG))
    stories = json.loads(run("list", "--json", "--limit", "3").out)
    assert len(stories) == 3
    assert list(stories[0]) == [
        "id", "feed_id", "feed", "title", "link", "author", "published", "first_seen",
        "new", "read", "summary",
    ]  # fmt: skip
    assert stories[0]["published"] == "2026-05-27T00:00:00Z"
    assert stories[0]["new"] is True
    assert stories[0]["read"] is False
    assert stories[0]["summary"] == "Experts."
    again = json.loads(run("list", "--json", "--limit", "3").out)
    assert [s["new"] for s in again] == [False, False, False]


def test_open_uses_the_browser_and_marks_read(
    run: Run, site: FeedSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("add", site.serve("/blog.xml", BLOG))
    record = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {record}\n')
    browser.chmod(0o755)
    monkeypatch.setenv("BROWSER", f"{browser} %s")
    story_id = lines(run("list"))[2][0]
    result = run("open", story_id)
    assert result.code == 0, result
    assert record.read_text() == "https://blog.example/posts/05/"
    assert result.out == ""
    assert {row[0]: row[1] for row in lines(run("list", "--offline"))}[story_id] == "read"


def test_open_without_a_browser_prints_the_link(run: Run, site: FeedSite) -> None:
    run("add", site.serve("/blog.xml", BLOG))
    story_id = lines(run("list"))[0][0]
    result = run("open", story_id)  # BROWSER=false in tests: the browser "fails"
    assert result.code == 0
    assert result.out == "https://blog.example/posts/07/\n"
    assert "no browser" in result.err


def test_open_refuses_links_that_are_not_http(run: Run, site: FeedSite) -> None:
    feed = BLOG.replace(b"https://blog.example/posts/07/", b"javascript:alert(1)")
    run("add", site.serve("/blog.xml", feed))
    story_id = lines(run("list"))[0][0]
    result = run("open", "--print", story_id)
    assert_one_error(result, "no http(s) link")
    assert {row[0]: row[1] for row in lines(run("list", "--offline"))}[story_id] != "read"


def test_bare_command_runs_list(run: Run, site: FeedSite) -> None:
    run("add", site.serve("/blog.xml", BLOG))
    result = run()
    assert result.code == 0
    assert len(lines(result)) == 8


def test_list_filters(run: Run, site: FeedSite) -> None:
    run("add", site.serve("/blog.xml", BLOG))
    atom = (DATA / "blog.rss").read_bytes().replace(b"Test Blog", b"Other Blog")
    atom = atom.replace(b"blog.example", b"other.example")
    run("add", site.serve("/other.xml", atom))
    assert len(lines(run("list", "--offline", "--limit", "5"))) == 5
    assert len(lines(run("list", "--offline"))) == 16
    only = lines(run("list", "--offline", "other"))
    assert len(only) == 8
    assert {row[3] for row in only} == {"Other Blog"}
    ambiguous = run("list", "--offline", "blog")
    assert_one_error(ambiguous, "matches 2 feeds")


def test_failed_feed_does_not_stop_the_listing(run: Run, site: FeedSite) -> None:
    url = site.serve("/blog.xml", BLOG)
    run("add", url)
    site.server.clear()  # now every request gets 500 from pytest-httpserver
    site.server.expect_request("/blog.xml").respond_with_data("oops", status=500)
    assert run("refresh", "--force").code == 1
    result = run("list", "--offline")
    assert len(lines(result)) == 8
    home_db = sqlite3.connect(Path(os.environ["STORYFEED_HOME"]) / "storyfeed.db")
    home_db.execute("UPDATE feeds SET next_fetch_at = 0")
    home_db.commit()
    home_db.close()
    listed = run("list")
    assert listed.code == 0
    assert len(lines(listed)) == 8
    assert listed.err.strip() == "storyfeed: warning: Test Blog: HTTP 500 INTERNAL SERVER ERROR"
    feeds = json.loads(run("feeds", "--json").out)
    assert feeds[0]["status"] == "failing"
    assert "HTTP 500" in feeds[0]["last_error"]


def test_proxy_settings_that_cannot_be_used_leave_list_its_stories(
    run: Run, site: FeedSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("add", site.serve("/blog.xml", BLOG))
    home_db = sqlite3.connect(Path(os.environ["STORYFEED_HOME"]) / "storyfeed.db")
    home_db.execute("UPDATE feeds SET next_fetch_at = 0")  # due: list refreshes first
    home_db.commit()
    home_db.close()
    monkeypatch.setenv("HTTP_PROXY", "ftp://user:secret@proxy.invalid")

    listed = run("list")
    assert listed.code == 0
    assert len(lines(listed)) == 8
    assert listed.err.startswith(
        "storyfeed: warning: refresh skipped: the proxy settings of the environment "
        "(HTTP_PROXY, NO_PROXY) cannot be used"
    )
    assert "secret" not in listed.err
    assert_one_error(run("refresh", "--force"), "the proxy settings of the environment")


def test_refresh_reports_new_stories_and_unchanged_feeds(run: Run, site: FeedSite) -> None:
    run("add", site.serve("/blog.xml", BLOG))
    quiet = run("refresh", "--force")
    assert quiet.code == 0
    assert quiet.out == ""  # 304: nothing to say
    site.server.clear()
    extra = b"<item><title>Post Eight</title><guid>https://blog.example/posts/08/</guid></item>"
    site.serve("/blog.xml", BLOG.replace(b"</channel>", extra + b"</channel>"))
    loud = run("refresh", "--force")
    assert loud.code == 0
    assert loud.out == "Test Blog: 1 new\n"


def test_refresh_verbose_tells_every_feed_and_the_sum(run: Run, site: FeedSite) -> None:
    run("add", site.serve("/blog.xml", BLOG))
    told = run("refresh", "--force", "--verbose")
    assert told.code == 0
    assert told.out == "Test Blog: not modified\n"
    assert re.fullmatch(
        r"storyfeed: fetched 1 feed in \d+\.\d\d s: 0 new stories \(1 not modified\)\n", told.err
    )
    nothing = run("refresh", "-v")  # nothing is due: said, even off a terminal
    assert nothing.code == 0 and nothing.out == ""
    assert nothing.err.startswith("Nothing to fetch now")


def test_add_finds_the_feed_of_a_web_page(run: Run, site: FeedSite) -> None:
    site.serve("/feeds/main.xml", BLOG)
    site.serve("/feeds/comments.json", b"{}", content_type="application/feed+json")
    page = (
        b"<!doctype html><html><head><title>Blog</title>"
        b'<link rel="alternate" type="application/rss+xml" title="Posts" href="/feeds/main.xml">'
        b'<link rel="alternate" type="application/feed+json" title="Comments" '
        b'href="feeds/comments.json"></head><body>hi</body></html>'
    )
    page_url = site.serve("/", page, content_type="text/html; charset=utf-8")
    result = run("add", page_url)
    assert result.code == 0, result
    assert "Subscribed to Test Blog" in result.out
    assert site.server.url_for("/feeds/comments.json") in result.out
    feeds = json.loads(run("feeds", "--json").out)
    assert feeds[0]["url"] == site.server.url_for("/feeds/main.xml")


def test_add_with_title_and_local_files(run: Run, tmp_path: Path) -> None:
    local = tmp_path / "feed.xml"
    local.write_bytes(BLOG)
    result = run("add", str(local), "--title", "My [bold]file[/]")
    assert result.code == 0, result
    feeds = json.loads(run("feeds", "--json").out)
    assert feeds[0]["url"] == local.resolve().as_uri()
    assert feeds[0]["title"] == "My [bold]file[/]"
    assert len(lines(run("list", "--offline"))) == 8
    assert_one_error(run("add", local.resolve().as_uri()), "already subscribed")


def test_permanent_redirect_updates_the_url(run: Run, site: FeedSite) -> None:
    site.serve("/new.xml", BLOG)
    target = site.server.url_for("/new.xml")
    site.server.expect_request("/old.xml").respond_with_data(
        "", status=301, headers={"Location": target}
    )
    old = site.server.url_for("/old.xml")
    assert run("add", old).code == 0
    assert json.loads(run("feeds", "--json").out)[0]["url"] == target
    assert_one_error(run("add", old), "already subscribed")


def test_gone_feed_is_retired_until_named(run: Run, site: FeedSite) -> None:
    url = site.serve("/blog.xml", BLOG)
    run("add", url)
    site.server.clear()
    site.server.expect_request("/blog.xml").respond_with_data("", status=410)
    result = run("refresh", "--force")
    assert result.code == 0
    assert "retired" in result.out
    feed = json.loads(run("feeds", "--json").out)[0]
    assert feed["status"] == "gone"
    site.server.clear_log()
    run("refresh", "--force")
    assert site.server.log == []  # not fetched, not even with --force
    site.server.clear()
    site.serve("/blog.xml", BLOG)
    assert run("refresh", "1").code == 0  # naming it tries again
    assert json.loads(run("feeds", "--json").out)[0]["status"] == "ok"


def test_hostile_titles_are_shown_as_literal_text(run: Run, site: FeedSite) -> None:
    hostile = BLOG.replace(
        b"<title>Post Seven</title>",
        b"<title>[bold red]x[/] &#x1b;[2J&#x1b;]0;pwned&#x7;\xe2\x80\xaeevil</title>",
    )
    run("add", site.serve("/blog.xml", hostile))
    out = run("list").out
    assert "[bold red]x[/] evil" in out
    for bad in ("\x1b", "\x07", "\u202e", "pwned"):
        assert bad not in out
    data = json.loads(run("list", "--json", "--offline").out)
    assert data[0]["title"] == "[bold red]x[/] evil"


def test_passwords_never_appear(run: Run, site: FeedSite) -> None:
    url = site.serve("/blog.xml", BLOG).replace("http://", "http://reader:s3cret@")
    assert run("add", url).code == 0
    for args in (("feeds",), ("feeds", "--json"), ("list", "--offline")):
        assert "s3cret" not in run(*args).out
    duplicate = run("add", url)
    assert "s3cret" not in duplicate.err
    site.server.clear()
    site.server.expect_request("/blog.xml").respond_with_data("", status=404)
    refreshed = run("refresh", "--force")
    assert refreshed.code == 1
    assert "s3cret" not in refreshed.out + refreshed.err


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("read", "999"), ("no story with id 999",)),
        (("open", "999"), ("no story with id 999",)),
        (("open",), ("no unread stories",)),
        (("mark", "read", "999"), ("no story with id 999",)),
        (("remove", "nothing"), ("no feed matches 'nothing'",)),
        (("add", "not a url"), ("neither a URL nor an existing file",)),
        (("add", "ftp://example.org/feed"), ("ftp",)),
        (("add", "http://"), ("no host",)),
        (("add", "http://127.0.0.1:1/feed"), ("connection refused",)),
    ],
)
def test_user_errors_are_one_line(run: Run, args: tuple[str, ...], fragments: tuple[str]) -> None:
    assert_one_error(run(*args), *fragments)


def test_server_errors_on_add_are_one_line(run: Run, site: FeedSite) -> None:
    site.server.expect_request("/missing").respond_with_data("no", status=404)
    assert_one_error(run("add", site.server.url_for("/missing")), "HTTP 404")
    page = site.serve("/page", b"<html><body>No feeds here</body></html>", content_type="text/html")
    assert_one_error(run("add", page), "links to no feed")
    empty = site.serve("/empty", b"", content_type="application/rss+xml")
    assert_one_error(run("add", empty), "not a feed")
    assert json.loads(run("feeds", "--json").out) == []


def test_usage_errors_exit_2(run: Run) -> None:
    assert run("list", "--limit", "0").code == 2
    assert run("frobnicate").code == 2
    result = run("mark", "read")
    assert result.code == 2
    assert result.err.startswith("storyfeed: error: ")


def test_corrupt_database_is_reported_and_left_alone(run: Run, home: Path) -> None:
    db = home / "storyfeed.db"
    db.write_bytes(b"this is not a database" * 100)
    before = db.read_bytes()
    assert_one_error(run("list", "--offline"), "corrupt")
    assert db.read_bytes() == before


def test_database_from_a_newer_version_is_refused(run: Run, home: Path) -> None:
    assert run("feeds").code == 0
    db = home / "storyfeed.db"
    connection = sqlite3.connect(db)
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    before = db.read_bytes()
    assert_one_error(run("list", "--offline"), "newer storyfeed")
    assert db.read_bytes() == before


def test_unusable_data_directory(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("STORYFEED_HOME", str(blocker / "home"))
    assert_one_error(run("list", "--offline"), "cannot create the data directory")


def test_invalid_config_is_reported(run: Run, home: Path) -> None:
    (home / "config.toml").write_text("refresh_interval = [")
    assert_one_error(run("list", "--offline"), "config.toml")
    (home / "config.toml").write_text('refresh_interval = "soon"')
    assert_one_error(run("list", "--offline"), "refresh_interval")


def test_new_database_follows_llm_stories(run: Run, home: Path) -> None:
    (home / "config.toml").unlink()
    feeds = json.loads(run("feeds", "--json").out)
    assert [f["url"] for f in feeds] == ["https://wgzesg.github.io/llm_stories/index.xml"]
    run("remove", "1")
    assert json.loads(run("feeds", "--json").out) == []  # not re-added on the next run


def test_installed_executable(home: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("storyfeed")
    env = {**os.environ, "STORYFEED_HOME": str(home)}
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, env=env)
    assert version.returncode == 0
    assert version.stdout.startswith("storyfeed ")
    local = tmp_path / "feed.xml"
    local.write_bytes(BLOG)
    added = subprocess.run([exe, "add", str(local)], capture_output=True, text=True, env=env)
    assert added.returncode == 0, added.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "storyfeed", "list"], capture_output=True, text=True, env=env
    )
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 8
    missing = subprocess.run([exe, "read", "12345"], capture_output=True, text=True, env=env)
    assert missing.returncode == 1
    assert (
        missing.stderr
        == "storyfeed: error: no story with id 12345; `storyfeed list` shows the ids\n"
    )


# --- regressions: what a demanding user tried -------------------------------------------

UNTITLED_JSON = json.dumps(
    {
        "version": "https://jsonfeed.org/version/1.1",
        "items": [{"id": "1", "url": "https://x.example/1", "content_html": "<p>Only a body.</p>"}],
    }
).encode()


def test_an_untitled_feed_never_shows_its_password(run: Run, site: FeedSite) -> None:
    url = site.serve("/untitled.json", UNTITLED_JSON, content_type="application/feed+json")
    secret_url = url.replace("http://", "http://bob:s3cret@")
    added = run("add", secret_url)
    assert added.code == 0, added
    outputs = [added.out]
    for args in (("feeds",), ("feeds", "--json"), ("list", "--offline"), ("list", "--json")):
        outputs.append(run(*args).out)
    site.server.clear()
    site.server.expect_request("/untitled.json").respond_with_data("", status=500)
    failed = run("refresh", "--force")
    outputs += [failed.out, failed.err, run("add", secret_url).err, run("remove", "1").out]
    assert all("s3cret" not in text for text in outputs)
    assert "bob:***@" in outputs[1] or "***@" in outputs[1]


def test_json_summary_falls_back_to_the_content(run: Run, site: FeedSite) -> None:
    run("add", site.serve("/untitled.json", UNTITLED_JSON, content_type="application/feed+json"))
    (story,) = json.loads(run("list", "--json").out)
    assert story["summary"] == "Only a body."


def test_a_web_page_cannot_subscribe_you_to_a_local_file(
    run: Run, site: FeedSite, tmp_path: Path
) -> None:
    local = tmp_path / "secret.xml"
    local.write_bytes(BLOG)
    page = (
        b"<html><head>"
        b'<link rel="alternate" type="application/rss+xml" href="' + local.as_uri().encode() + b'">'
        b'<link rel="alternate" type="application/rss+xml" href="http://[bad/feed">'
        b"</head></html>"
    )
    result = run("add", site.serve("/page", page, content_type="text/html"))
    assert_one_error(result, "links to no feed")
    assert json.loads(run("feeds", "--json").out) == []


@pytest.mark.parametrize(
    "spelling",
    ["{url}?", "{url}#top", "{upper}", "{dotted}"],
)
def test_the_same_feed_under_another_spelling_is_a_duplicate(
    run: Run, site: FeedSite, spelling: str
) -> None:
    url = site.serve("/feeds/blog.xml", BLOG)
    assert run("add", url).code == 0
    variant = spelling.format(
        url=url,
        upper=url.replace("http://", "HTTP://"),
        dotted=url.replace("/feeds/", "/feeds/./"),
    )
    assert_one_error(run("add", variant), "already subscribed")


def test_a_file_name_that_does_not_exist_is_not_taken_for_a_host(run: Run) -> None:
    assert_one_error(run("add", "feed.xml"), "no such file: feed.xml")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("read", "99999999999999999999999"), "no story with id"),
        (("add", "http://[::1"), "not a valid URL"),
    ],
)
def test_absurd_numbers_and_urls_are_clean_errors(
    run: Run, args: tuple[str, ...], fragment: str
) -> None:
    assert_one_error(run(*args), fragment)


def test_huge_limit_is_fine(run: Run, tmp_path: Path) -> None:
    local = tmp_path / "feed.xml"
    local.write_bytes(BLOG)
    run("add", str(local))
    assert len(lines(run("list", "--limit", "1000000000000000000000"))) == 8


def installed_with_blog(home: Path, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """The installed executable and an environment in which it follows tests/data/blog.rss."""
    local = tmp_path / "feed.xml"
    local.write_bytes(BLOG)
    exe = str(Path(sys.executable).with_name("storyfeed"))
    env = {**os.environ, "STORYFEED_HOME": str(home)}
    subprocess.run([exe, "add", str(local)], env=env, check=True, capture_output=True)
    return exe, env


def test_broken_pipe_is_quiet_and_keeps_stories_new(home: Path, tmp_path: Path) -> None:
    exe, env = installed_with_blog(home, tmp_path)
    # A reader that closes the pipe at once: the listing cannot be delivered.
    done = subprocess.run(
        f"{exe} list --json | true", shell=True, env=env, capture_output=True, text=True
    )
    assert done.stderr == ""
    piped = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {exe} list | head -1"], env=env, capture_output=True
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == b""


def test_output_to_a_full_disk_is_an_error(home: Path, tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    exe, env = installed_with_blog(home, tmp_path)
    with Path("/dev/full").open("w") as full:
        done = subprocess.run([exe, "list"], env=env, stdout=full, stderr=subprocess.PIPE)
    assert done.returncode == 1
    assert done.stderr.decode().startswith("storyfeed: error: cannot write to standard output")
    again = subprocess.run([exe, "list"], env=env, capture_output=True, text=True)
    assert {line.split("\t")[1] for line in again.stdout.splitlines()} == {"new"}


def test_closed_stdout(home: Path, tmp_path: Path) -> None:
    """Listings fail clearly and mark nothing; work whose output is a mere
    confirmation is done all the same."""
    local = tmp_path / "feed.xml"
    local.write_bytes(BLOG)
    exe = str(Path(sys.executable).with_name("storyfeed"))
    env = {**os.environ, "STORYFEED_HOME": str(home)}

    def closed(args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            f"{exe} {args} >&-", shell=True, env=env, capture_output=True, text=True
        )

    added = closed(f"add {local}")
    assert (added.returncode, added.stderr) == (0, "")
    for args in ("list --offline", "feeds", "open --print", "read 1"):
        done = closed(args)
        assert done.returncode == 1, args
        assert done.stderr == "storyfeed: error: standard output is closed; nothing can be shown\n"
    listed = subprocess.run([exe, "list", "--offline"], env=env, capture_output=True, text=True)
    assert {line.split("\t")[1] for line in listed.stdout.splitlines()} == {"new"}


def test_open_and_read_to_a_full_disk_leave_the_story_unread(home: Path, tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    exe, env = installed_with_blog(home, tmp_path)
    for args in (["open", "--print", "3"], ["read", "3"]):
        with Path("/dev/full").open("w") as full:
            done = subprocess.run([exe, *args], env=env, stdout=full, stderr=subprocess.PIPE)
        assert done.returncode == 1
    listed = subprocess.run([exe, "list", "--offline"], env=env, capture_output=True, text=True)
    status = {line.split("\t")[0]: line.split("\t")[1] for line in listed.stdout.splitlines()}
    assert status["3"] == "new"


def test_help_works_whatever_the_config_says(run: Run, home: Path) -> None:
    (home / "config.toml").write_text("bogus = 1\n")
    assert run("list", "--help").code == 0
    assert run("--help").code == 0
    assert_one_error(run("list", "--offline"), "unknown setting 'bogus'")


def test_listing_while_another_process_holds_the_database(
    run: Run, home: Path, tmp_path: Path
) -> None:
    local = tmp_path / "feed.xml"
    local.write_bytes(BLOG)
    run("add", str(local))
    (home / "config.toml").write_text('default_feed = ""\nbusy_timeout = 0.2\n')
    holder = sqlite3.connect(home / "storyfeed.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        listed = run("list", "--offline")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert listed.code == 0
    assert len(lines(listed)) == 8
    assert listed.err.startswith("storyfeed: warning: the database is busy")
    assert {row[1] for row in lines(run("list", "--offline"))} == {"new"}


def test_config_values_out_of_range_are_refused(run: Run, home: Path) -> None:
    (home / "config.toml").write_text("refresh_interval = 99999999999999\n")
    assert_one_error(run("add", "http://127.0.0.1:1/feed"), "refresh_interval must be between")
    (home / "config.toml").write_text("feed_deadline = nan\n")
    assert_one_error(run("list"), "feed_deadline must be between")


def test_named_feed_waits_for_retry_after(run: Run, site: FeedSite) -> None:
    url = site.serve("/blog.xml", BLOG)
    run("add", url)
    site.server.clear()
    site.server.expect_request("/blog.xml").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "3600"}
    )
    assert run("refresh", "--force").code == 1
    site.server.clear_log()
    held = run("refresh", "1")
    assert held.code == 0
    assert site.server.log == []
    assert "Retry-After" in held.err
    assert held.err.startswith("storyfeed: warning: Test Blog: not fetched")


def test_year_one_dates_do_not_break_the_listing(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Old",
        "items": [{"id": "1", "title": "Ancient", "date_published": "0001-01-01T00:00:00Z"}],
    }
    local = tmp_path / "old.json"
    local.write_text(json.dumps(feed))
    run("add", str(local))
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    (row,) = lines(run("list", "--offline"))
    assert row[2] == "0001-01-01T00:00:00Z"
    assert run("read", row[0]).code == 0


def test_a_feed_is_named_by_any_spelling_of_its_url_or_path(
    run: Run, site: FeedSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = site.serve("/Case.xml", BLOG)
    assert run("add", url.replace("http://", "HTTP://")).code == 0
    local = tmp_path / "local.xml"
    local.write_bytes(BLOG.replace(b"Test Blog", b"Local Blog"))
    monkeypatch.chdir(tmp_path)
    assert run("add", "./local.xml").code == 0
    assert run("list", "--offline", url.replace("http://", "HTTP://")).code == 0
    assert "Local Blog" in run("remove", "./local.xml").out
    assert "Test Blog" in run("remove", url + "#top").out
    assert json.loads(run("feeds", "--json").out) == []


def test_discovery_skips_links_it_cannot_use(run: Run, site: FeedSite) -> None:
    good = site.serve("/good.xml", BLOG)
    page = (
        b"<html><head>"
        b'<link rel="alternate" type="application/rss+xml" href="http://127.0.0.1:99999/x.xml">'
        b'<link rel="alternate" type="application/rss+xml" href="' + good.encode() + b'">'
        b"</head></html>"
    )
    result = run("add", site.serve("/page", page, content_type="text/html"))
    assert result.code == 0, result
    assert json.loads(run("feeds", "--json").out)[0]["url"] == good


def test_odd_feed_names_are_not_found(run: Run) -> None:
    assert_one_error(run("list", "--offline", "\u00b2"), "no feed matches")
    assert_one_error(run("remove", "9" * 5000), "no feed matches")


def test_a_retired_feed_has_no_next_fetch(run: Run, site: FeedSite) -> None:
    run("add", site.serve("/blog.xml", BLOG))
    site.server.clear()
    site.server.expect_request("/blog.xml").respond_with_data("", status=410)
    run("refresh", "--force")
    (feed,) = json.loads(run("feeds", "--json").out)
    assert (feed["status"], feed["next_fetch"]) == ("gone", None)
    assert lines(run("feeds"))[0][5] == ""


def test_a_command_is_run_from_an_app_holding_only_it() -> None:
    from storyfeed import cli

    lean = cli._app_for(["list", "--offline"])
    assert [info.name for info in lean.registered_commands] == ["list"]
    assert lean.registered_callback is cli.app.registered_callback
    for args in (["--help"], ["lsit"], [], ["--version"]):
        assert cli._app_for(args) is cli.app


def test_a_typo_in_a_command_is_a_usage_error_naming_it(run: Run) -> None:
    result = run("lsit")
    assert result.code == 2
    assert "lsit" in result.err


def complete(home: Path, words: str) -> list[str]:
    """What bash completion offers after ``words`` (typer's protocol, run for real)."""
    env = {
        **os.environ,
        "STORYFEED_HOME": str(home),
        "_STORYFEED_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
    }
    done = subprocess.run(
        [sys.executable, "-m", "storyfeed"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_feed_arguments_complete_from_the_database(run: Run, home: Path) -> None:
    assert complete(home, "storyfeed remove ") == []  # no database: none made either
    assert not (home / "storyfeed.db").exists()
    assert run("add", str(DATA / "blog.rss")).code == 0
    feed_id = json.loads(run("feeds", "--json").out)[-1]["id"]

    assert str(feed_id) in complete(home, "storyfeed remove ")
    assert complete(home, f"storyfeed refresh {feed_id}") == [str(feed_id)]
    assert complete(home, "storyfeed list 9") == []
    for words in (
        "storyfeed list --feed ",
        "storyfeed doctor ",
        "storyfeed tag ",
        "storyfeed set ",
    ):
        assert str(feed_id) in complete(home, words), words


def test_completion_reads_the_database_and_never_changes_it(run: Run, home: Path) -> None:
    """No wait for a writer; an older storyfeed's database is left as it is."""
    from storyfeed import store as store_module

    assert run("add", str(DATA / "blog.rss")).code == 0
    feed_id = str(json.loads(run("feeds", "--json").out)[-1]["id"])
    database = home / "storyfeed.db"
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")  # another storyfeed is writing
        started = time.monotonic()
        assert feed_id in complete(home, "storyfeed remove ")
        assert time.monotonic() - started < 5
        writer.execute("ROLLBACK")
    database.unlink()
    with contextlib.closing(sqlite3.connect(database)) as old:  # schema 1
        old.executescript(store_module._MIGRATIONS[0])
        old.execute("INSERT INTO feeds (url, added_at) VALUES ('https://example.org/f', 0)")
        old.execute("PRAGMA user_version = 1")
        old.commit()
    before = database.read_bytes()

    assert complete(home, "storyfeed remove ") == []

    assert database.read_bytes() == before
    with contextlib.closing(sqlite3.connect(database)) as check:
        assert check.execute("PRAGMA user_version").fetchone() == (1,)


def test_color_never_and_no_color_keep_escapes_out(run: Run, home: Path) -> None:
    assert run("add", str(DATA / "blog.rss")).code == 0
    coloured = run("--color", "always", "list", "--offline")
    assert coloured.code == 0
    assert "\x1b[" in coloured.out and "NEW" in coloured.out  # a table, coloured, piped
    plain = run("--color", "never", "list", "--offline")
    assert "\x1b[" not in plain.out
    assert run("--color", "purple", "list").code == 2


def on_a_terminal(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """What storyfeed writes to a (pseudo-)terminal."""
    import pty

    parent, child = pty.openpty()
    environment = {**os.environ, "STORYFEED_HOME": str(home), "TERM": "xterm-256color"}
    environment.update(env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "storyfeed", *args],
        stdin=subprocess.DEVNULL, stdout=child, stderr=child, env=environment,
    )  # fmt: skip
    os.close(child)
    output = b""
    with contextlib.suppress(OSError):  # EIO: the other end closed
        while chunk := os.read(parent, 65536):
            output += chunk
    os.close(parent)
    assert process.wait(timeout=60) == 0, output
    return output.decode()


def test_no_color_is_honoured_on_a_terminal(run: Run, home: Path) -> None:
    assert run("add", str(DATA / "blog.rss")).code == 0
    colours = re.compile(r"\x1b\[[0-9;]*3[0-9]m")  # a foreground colour
    assert colours.search(on_a_terminal(home, "list", "--offline"))
    assert not colours.search(on_a_terminal(home, "list", "--offline", env={"NO_COLOR": "1"}))
    assert not colours.search(on_a_terminal(home, "--color", "never", "list", "--offline"))
