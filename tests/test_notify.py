"""`storyfeed notify` end to end, against feeds and an apprise ``json://`` receiver
served on 127.0.0.1, plus its pure decisions with pinned times.

Nothing here mocks apprise or httpx: every story goes through a real fetch, the
real database and a real HTTP POST (or standard output), and is counted where it
arrives.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from conftest import NOW, Result
from storyfeed import lock
from storyfeed.config import NotifySettings
from storyfeed.models import Channel, Feed, FeedStatus, Story
from storyfeed.notify import (
    FAILING,
    QUIET,
    RETIRED,
    channel_key,
    channel_label,
    channel_report,
    feed_reports,
    plan_messages,
)

Run = Callable[..., Result]
SECRET = "s3cret-pass"
TOKEN = "t0ken-in-path"
STORY_FIELDS = {
    "id",
    "feed_id",
    "feed",
    "title",
    "link",
    "author",
    "published",
    "first_seen",
    "new",
    "read",
    "summary",
}


# --- loopback servers ---------------------------------------------------------------


class ServedFeed:
    """An RSS feed whose stories the test adds between runs; ETag and 304 like a real site."""

    def __init__(self, server: HTTPServer, name: str) -> None:
        self.name = name
        self.numbers: list[int] = []
        self.edits: dict[int, str] = {}  # number -> a new title
        self.status = 200
        self.hits = 0
        path = f"/{name.lower()}.xml"
        server.expect_request(path).respond_with_handler(self._handle)
        self.url = server.url_for(path)

    def add(self, *numbers: int) -> None:
        self.numbers.extend(numbers)

    def link(self, number: int) -> str:
        # The trailing slash keeps /1/ from matching inside /11/.
        return f"https://stories.example/{self.name.lower()}/{number}/"

    def title(self, number: int) -> str:
        return self.edits.get(number, f"{self.name} story {number}")

    def line(self, number: int) -> str:
        """The stdout line the story is notified as."""
        return f"{self.name} — {self.title(number)} — {self.link(number)}"

    def body(self) -> bytes:
        start = datetime(2026, 5, 1, tzinfo=UTC)
        items = "".join(
            f"<item><title>{self.title(n)}</title><link>{self.link(n)}</link>"
            f"<guid>{self.link(n)}</guid>"
            f"<description>Summary of {self.title(n)}.</description>"
            f"<pubDate>{format_datetime(start + timedelta(hours=n), usegmt=True)}</pubDate>"
            f"</item>"
            for n in self.numbers
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{self.name}</title><link>https://stories.example/</link>"
            f"<description>d</description>{items}</channel></rss>"
        ).encode()

    def _handle(self, request: Request) -> Response:
        self.hits += 1
        if self.status != 200:
            return Response("down for maintenance", status=self.status)
        body = self.body()
        etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(body, content_type="application/rss+xml", headers={"ETag": etag})


class Receiver:
    """The apprise ``json://`` target: records every POST, answers with ``status``
    (or, while ``script`` is not empty, with its next status)."""

    def __init__(self, server: HTTPServer, path: str = "/hook", *, userinfo: str = "") -> None:
        self.status = 200
        self.script: list[int] = []
        self.attempts: list[dict[str, str]] = []
        self.accepted: list[dict[str, str]] = []
        server.expect_request(path, method="POST").respond_with_handler(self._handle)
        self.url = f"json://{userinfo}127.0.0.1:{server.port}{path}"

    def _handle(self, request: Request) -> Response:
        payload = json.loads(request.get_data())
        self.attempts.append(payload)
        status = self.script.pop(0) if self.script else self.status
        if status == 200:
            self.accepted.append(payload)
        return Response("{}", status=status, content_type="application/json")

    def count(self, link: str) -> int:
        """How many accepted messages carried this link."""
        return sum(payload["message"].count(link) for payload in self.accepted)


@pytest.fixture
def alpha(httpserver: HTTPServer) -> ServedFeed:
    feed = ServedFeed(httpserver, "Alpha")
    feed.add(1, 2)
    return feed


@pytest.fixture
def receiver(httpserver: HTTPServer) -> Receiver:
    return Receiver(httpserver)


# --- helpers ------------------------------------------------------------------------


def make_due(home: Path) -> None:
    """Every feed is due now, as if its interval (or backoff) had passed."""
    with closing(sqlite3.connect(home / "storyfeed.db")) as db, db:
        db.execute("UPDATE feeds SET next_fetch_at = 0, retry_after = NULL")


def query(home: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(home / "storyfeed.db")) as db:
        return db.execute(sql).fetchall()


def write_config(home: Path, text: str, mode: int = 0o600) -> None:
    path = home / "config.toml"
    path.write_text('default_feed = ""\n' + text)
    path.chmod(mode)


def subscribe(run: Run, feed: ServedFeed) -> None:
    added = run("add", feed.url)
    assert added.code == 0, added


def baseline(run: Run, *args: str) -> None:
    """The first notify: the stories already there are history, and nothing is said."""
    first = run("notify", *args)
    assert (first.code, first.out, first.err) == (0, "", ""), first


def assert_silent(result: Result) -> None:
    assert (result.code, result.out, result.err) == (0, "", ""), result


def story_ids(run: Run) -> dict[str, int]:
    """Story title -> id, from the cache."""
    listed = run("list", "--offline", "--json", "--limit", "1000")
    assert listed.code == 0, listed
    return {story["title"]: story["id"] for story in json.loads(listed.out)}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- once per channel ---------------------------------------------------------------


def test_three_runs_deliver_each_story_once_per_channel(
    run: Run, home: Path, alpha: ServedFeed, receiver: Receiver
) -> None:
    subscribe(run, alpha)
    baseline(run)  # stdout: the feed's two stories are history
    baseline(run, "--to", receiver.url)  # a new channel: starts from now
    stdout_lines: list[str] = []

    for numbers in ((3,), (4, 5), (6, 7, 8)):
        alpha.add(*numbers)
        make_due(home)
        printed = run("notify")
        assert printed.code == 0, printed
        assert printed.err == ""
        assert printed.out.splitlines() == [alpha.line(n) for n in numbers]
        stdout_lines += printed.out.splitlines()
        before = len(receiver.accepted)
        sent = run("notify", "--to", receiver.url)
        assert_silent(sent)  # stories went to the receiver, not to stdout
        assert [p["message"] for p in receiver.accepted[before:]] == [
            f"{alpha.title(n)}\n{alpha.link(n)}" for n in numbers
        ]
        assert {p["title"] for p in receiver.accepted[before:]} == {"Alpha"}
        # Running again at once sends nothing to either.
        assert_silent(run("notify"))
        assert_silent(run("notify", "--to", receiver.url))

    # A story fetched for one channel's run is still news for the other.
    alpha.add(9)
    make_due(home)
    assert run("notify", "--to", receiver.url).code == 0
    alpha.add(10)
    make_due(home)
    printed = run("notify")
    assert printed.out.splitlines() == [alpha.line(9), alpha.line(10)]
    stdout_lines += printed.out.splitlines()
    assert run("notify", "--to", receiver.url).code == 0

    for n in range(3, 11):
        assert receiver.count(alpha.link(n)) == 1, n
        assert stdout_lines.count(alpha.line(n)) == 1, n
    for n in (1, 2):  # the baseline is never sent
        assert receiver.count(alpha.link(n)) == 0
        assert alpha.line(n) not in stdout_lines
    assert len(receiver.attempts) == len(receiver.accepted) == 8
    assert query(home, "SELECT COUNT(*) FROM deliveries") == [(16,)]


def test_a_refused_delivery_stays_pending_until_the_receiver_accepts(
    run: Run, home: Path, alpha: ServedFeed, receiver: Receiver
) -> None:
    subscribe(run, alpha)
    baseline(run, "--to", receiver.url)
    alpha.add(3, 4)
    make_due(home)
    receiver.status = 500

    for _ in range(2):  # each failing run exits 1, quietly below the reporting threshold
        failed = run("notify", "--to", receiver.url)
        assert (failed.code, failed.out, failed.err) == (1, "", ""), failed
    assert receiver.accepted == []
    assert len(receiver.attempts) == 2  # the first message failed: the run stopped there

    receiver.status = 200
    fixed = run("notify", "--to", receiver.url)
    assert_silent(fixed)
    assert [receiver.count(alpha.link(n)) for n in (3, 4)] == [1, 1]
    assert_silent(run("notify", "--to", receiver.url))
    assert len(receiver.accepted) == 2


def test_a_delivery_failing_midway_keeps_what_was_accepted(
    run: Run, home: Path, alpha: ServedFeed, receiver: Receiver
) -> None:
    subscribe(run, alpha)
    baseline(run, "--to", receiver.url)
    alpha.add(3, 4, 5)
    make_due(home)
    receiver.script = [200, 500]  # story 3 accepted, story 4 refused

    partial = run("notify", "--to", receiver.url, "--verbose")
    assert partial.code == 1, partial
    assert re.search(r"json://\*\*\* \([0-9a-f]{8}\): 1 delivered, 2 pending \(.+\)", partial.err)
    again = run("notify", "--to", receiver.url)
    assert again.code == 0, again
    assert [receiver.count(alpha.link(n)) for n in (3, 4, 5)] == [1, 1, 1]
    assert [p["message"].split("\n")[0] for p in receiver.attempts] == [
        alpha.title(3),
        alpha.title(4),
        alpha.title(4),
        alpha.title(5),
    ]


def test_two_targets_one_failing(
    run: Run, home: Path, alpha: ServedFeed, httpserver: HTTPServer
) -> None:
    good = Receiver(httpserver, "/good")
    bad = Receiver(httpserver, "/bad")
    bad.status = 500
    targets = ("--to", good.url, "--to", bad.url)
    subscribe(run, alpha)
    baseline(run, *targets)

    alpha.add(3)
    make_due(home)
    assert run("notify", *targets).code == 1
    alpha.add(4)
    make_due(home)
    assert run("notify", *targets).code == 1
    assert run("notify", *targets).code == 1  # nothing new: the bad one still has two pending
    assert [good.count(alpha.link(n)) for n in (3, 4)] == [1, 1]
    assert len(good.attempts) == 2
    assert bad.accepted == []

    bad.status = 200
    recovered = run("notify", *targets)
    assert recovered.code == 0, recovered
    alpha.add(5)
    make_due(home)
    assert run("notify", *targets).code == 0
    assert_silent(run("notify", *targets))
    for n in (3, 4, 5):
        assert good.count(alpha.link(n)) == 1, n
        assert bad.count(alpha.link(n)) == 1, n
    assert len(good.attempts) == 3


# --- what is news -------------------------------------------------------------------


def test_first_run_takes_the_baseline_and_says_so_when_verbose(
    run: Run, home: Path, alpha: ServedFeed, receiver: Receiver
) -> None:
    alpha.add(3)
    subscribe(run, alpha)
    first = run("notify", "--verbose", "--to", receiver.url)
    assert (first.code, first.out) == (0, ""), first
    assert "took 3 stories as the baseline" in first.err
    assert "a new channel" in first.err
    assert receiver.attempts == []
    second = run("notify", "--verbose", "--to", receiver.url)
    assert "baseline" not in second.err
    assert "a new channel" not in second.err
    assert "0 delivered, 0 pending" in second.err
    assert receiver.attempts == []


def test_backlog_sends_the_stories_already_there(
    run: Run, alpha: ServedFeed, receiver: Receiver
) -> None:
    subscribe(run, alpha)
    sent = run("notify", "--backlog")
    assert sent.code == 0, sent
    assert sent.out.splitlines() == [alpha.line(1), alpha.line(2)]
    assert sent.err == ""
    assert_silent(run("notify"))
    # A new channel with --backlog gets the history too, once.
    assert run("notify", "--backlog", "--to", receiver.url).code == 0
    assert [receiver.count(alpha.link(n)) for n in (1, 2)] == [1, 1]
    assert_silent(run("notify", "--backlog", "--to", receiver.url))
    assert len(receiver.attempts) == 2


def test_a_new_channel_is_not_sent_the_history(
    run: Run, home: Path, alpha: ServedFeed, receiver: Receiver
) -> None:
    subscribe(run, alpha)
    baseline(run)
    alpha.add(3)
    make_due(home)
    assert run("notify").out == alpha.line(3) + "\n"

    joined = run("notify", "--to", receiver.url, "--verbose")
    assert (joined.code, joined.out) == (0, ""), joined
    assert "a new channel" in joined.err
    assert receiver.attempts == []  # story 3 predates the channel

    alpha.add(4)
    make_due(home)
    assert run("notify", "--to", receiver.url).code == 0
    assert [receiver.count(alpha.link(n)) for n in (1, 2, 3, 4)] == [0, 0, 0, 1]
    assert run("notify").out == alpha.line(4) + "\n"


def test_a_feed_added_later_starts_with_a_baseline(
    run: Run, home: Path, alpha: ServedFeed, httpserver: HTTPServer
) -> None:
    subscribe(run, alpha)
    baseline(run)
    beta = ServedFeed(httpserver, "Beta")
    beta.add(1, 2)
    subscribe(run, beta)
    alpha.add(3)
    make_due(home)
    mixed = run("notify", "--verbose")
    assert mixed.code == 0, mixed
    assert mixed.out.splitlines() == [alpha.line(3)]  # Beta's stories are its baseline
    assert "took 2 stories as the baseline" in mixed.err

    beta.add(3)
    make_due(home)
    assert run("notify").out.splitlines() == [beta.line(3)]


def test_stories_read_before_they_are_notified_are_not_notified(
    run: Run, home: Path, alpha: ServedFeed, receiver: Receiver
) -> None:
    subscribe(run, alpha)
    baseline(run)
    baseline(run, "--to", receiver.url)
    alpha.add(3, 4, 5, 6)
    assert run("refresh", "--force").code == 0  # fetched by someone else, not notified yet
    ids = story_ids(run)
    assert run("open", "--print", str(ids[alpha.title(3)])).code == 0
    assert run("mark", "read", str(ids[alpha.title(4)])).code == 0
    assert run("read", str(ids[alpha.title(5)])).code == 0
    assert run("list", "--offline").code == 0  # shown (no longer NEW) is not read

    printed = run("notify")
    assert printed.out.splitlines() == [alpha.line(6)]
    assert run("notify", "--to", receiver.url).code == 0
    assert [receiver.count(alpha.link(n)) for n in (3, 4, 5, 6)] == [0, 0, 0, 1]


def test_more_than_digest_after_stories_make_one_digest(
    run: Run, home: Path, alpha: ServedFeed, receiver: Receiver
) -> None:
    write_config(home, "[notify]\ndigest_after = 2\n")
    subscribe(run, alpha)
    baseline(run)
    baseline(run, "--to", receiver.url)

    alpha.add(3, 4, 5)
    make_due(home)
    assert run("notify", "--to", receiver.url).code == 0
    assert len(receiver.attempts) == 1
    digest = receiver.accepted[0]
    assert digest["title"] == "3 new stories"
    assert digest["message"].splitlines() == [alpha.line(n) for n in (3, 4, 5)]
    assert run("notify").out.splitlines() == [alpha.line(n) for n in (3, 4, 5)]

    alpha.add(6, 7)  # exactly digest_after: one message each
    make_due(home)
    assert run("notify", "--to", receiver.url).code == 0
    assert [(p["title"], p["message"]) for p in receiver.accepted[1:]] == [
        ("Alpha", f"{alpha.title(n)}\n{alpha.link(n)}") for n in (6, 7)
    ]


def test_an_edited_story_is_not_notified_again(
    run: Run, home: Path, alpha: ServedFeed, receiver: Receiver
) -> None:
    subscribe(run, alpha)
    baseline(run)
    baseline(run, "--to", receiver.url)
    alpha.add(3)
    make_due(home)
    assert run("notify").out.splitlines() == [alpha.line(3)]
    assert run("notify", "--to", receiver.url).code == 0
    alpha.edits[3] = "Alpha story 3, corrected"
    alpha.edits[1] = "Alpha story 1, corrected"  # an edited baseline story stays history
    make_due(home)
    assert_silent(run("notify"))
    assert_silent(run("notify", "--to", receiver.url))
    assert len(receiver.attempts) == 1


def test_the_same_channel_twice_in_one_run_gets_each_story_once(
    run: Run, home: Path, alpha: ServedFeed, receiver: Receiver
) -> None:
    subscribe(run, alpha)
    twice = ("--to", receiver.url, "--to", receiver.url)
    baseline(run, *twice)
    alpha.add(3)
    make_due(home)
    assert run("notify", *twice).code == 0
    assert receiver.count(alpha.link(3)) == 1
    assert len(receiver.attempts) == 1


def test_stdout_that_cannot_be_written_keeps_the_stories(home: Path, alpha: ServedFeed) -> None:
    """The stdout channel, too, only records what it delivered (cron's disk full)."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    exe = str(Path(sys.executable).with_name("storyfeed"))
    env = {**os.environ, "STORYFEED_HOME": str(home)}
    subprocess.run([exe, "add", alpha.url], env=env, check=True, capture_output=True)
    first = subprocess.run([exe, "notify"], env=env, capture_output=True, text=True)
    assert (first.returncode, first.stdout, first.stderr) == (0, "", "")
    alpha.add(3)
    make_due(home)
    errors = []
    for _ in range(3):
        with Path("/dev/full").open("w") as full:
            done = subprocess.run(
                [exe, "notify"], env=env, stdout=full, stderr=subprocess.PIPE, text=True
            )
        assert done.returncode == 1
        errors.append(done.stderr)
    assert errors[:2] == ["", ""]
    assert (
        errors[2]
        == "storyfeed: stdout: 3 failed runs in a row: standard output cannot be written\n"
    )
    again = subprocess.run([exe, "notify"], env=env, capture_output=True, text=True)
    assert again.returncode == 0
    assert again.stdout == alpha.line(3) + "\n"
    assert again.stderr == "storyfeed: stdout: delivering again\n"


# --- dry run and test message -------------------------------------------------------


def test_dry_run_shows_and_records_nothing(
    run: Run, home: Path, alpha: ServedFeed, receiver: Receiver
) -> None:
    subscribe(run, alpha)
    first = run("notify", "--dry-run", "--verbose")
    assert (first.code, first.out) == (0, ""), first
    assert "took 2 stories as the baseline" in first.err
    again = run("notify", "--dry-run", "--verbose")
    assert "took 2 stories as the baseline" in again.err  # the dry run recorded none
    assert query(home, "SELECT COUNT(*) FROM channels") == [(0,)]

    baseline(run)
    baseline(run, "--to", receiver.url)
    alpha.add(3, 4)
    make_due(home)
    dry = run("notify", "--dry-run")
    assert (dry.code, dry.err) == (0, ""), dry
    assert dry.out.splitlines() == [
        "stdout: would send: Alpha",
        f"  {alpha.line(3)}",
        "stdout: would send: Alpha",
        f"  {alpha.line(4)}",
    ]
    dry_to = run("notify", "--dry-run", "--to", receiver.url)
    label = channel_label(receiver.url)
    assert dry_to.out.splitlines() == [
        f"{label}: would send: Alpha",
        f"  {alpha.line(3)}",
        f"{label}: would send: Alpha",
        f"  {alpha.line(4)}",
    ]
    assert receiver.attempts == []
    assert query(home, "SELECT COUNT(*) FROM deliveries") == [(0,)]

    assert run("notify").out.splitlines() == [alpha.line(3), alpha.line(4)]
    assert run("notify", "--to", receiver.url).code == 0
    assert [receiver.count(alpha.link(n)) for n in (3, 4)] == [1, 1]


def test_dry_run_with_backlog_on_a_fresh_database(run: Run, alpha: ServedFeed) -> None:
    subscribe(run, alpha)
    dry = run("notify", "--dry-run", "--backlog")
    assert dry.code == 0, dry
    assert dry.out.splitlines() == [
        "stdout: would send: Alpha",
        f"  {alpha.line(1)}",
        "stdout: would send: Alpha",
        f"  {alpha.line(2)}",
    ]
    assert run("notify", "--backlog").out.splitlines() == [alpha.line(1), alpha.line(2)]


def test_test_message(run: Run, home: Path, alpha: ServedFeed, receiver: Receiver) -> None:
    subscribe(run, alpha)
    label = channel_label(receiver.url)
    tested = run("notify", "--test", "--to", receiver.url)
    assert tested.code == 0, tested
    assert tested.out == f"{label}: test message accepted\n"
    assert tested.err == ""
    assert [p["title"] for p in receiver.attempts] == ["storyfeed test"]
    assert receiver.attempts[0]["message"]
    assert alpha.hits == 1  # only the `add`: a test fetches nothing
    assert query(home, "SELECT COUNT(*) FROM channels") == [(0,)]
    assert query(home, "SELECT COUNT(*) FROM feeds WHERE notify_after IS NOT NULL") == [(0,)]

    receiver.status = 500
    failed = run("notify", "--test", "--to", receiver.url)
    assert (failed.code, failed.out) == (1, ""), failed
    assert failed.err.startswith(f"storyfeed: error: {label}: ")
    assert len(failed.err.splitlines()) == 1

    on_stdout = run("notify", "--test")
    assert on_stdout.code == 0, on_stdout
    assert "storyfeed test" in on_stdout.out
    assert on_stdout.out.endswith("stdout: test message accepted\n")


# --- feed and channel health --------------------------------------------------------


def test_a_persistent_feed_error_is_reported_once_then_its_recovery_once(
    run: Run, home: Path, alpha: ServedFeed, httpserver: HTTPServer
) -> None:
    beta = ServedFeed(httpserver, "Beta")
    beta.add(1)
    subscribe(run, alpha)
    subscribe(run, beta)
    baseline(run)
    alpha.status = 500

    for attempt in (1, 2):  # one or two failures are not worth a mail
        make_due(home)
        assert_silent(run("notify"))
        assert alpha.hits == 1 + attempt

    make_due(home)
    third = run("notify")
    assert (third.code, third.out) == (0, ""), third
    lines = third.err.splitlines()
    assert len(lines) == 1, third.err
    assert lines[0].startswith("storyfeed: Alpha: failing since ")
    assert "(3 attempts)" in lines[0]
    assert "500" in lines[0]

    beta.add(2)  # other feeds keep being notified meanwhile
    make_due(home)
    fourth = run("notify")
    assert (fourth.code, fourth.err) == (0, ""), fourth
    assert fourth.out.splitlines() == [beta.line(2)]
    assert alpha.hits == 5

    alpha.status = 200  # back, unchanged: a 304 is a recovery too
    make_due(home)
    back = run("notify")
    assert (back.code, back.out, back.err) == (0, "", "storyfeed: Alpha: recovered\n"), back
    make_due(home)
    assert_silent(run("notify"))

    alpha.add(3)  # and it is notified again
    make_due(home)
    assert run("notify").out.splitlines() == [alpha.line(3)]

    alpha.status = 503  # a new streak is counted afresh, and told once more
    for _ in range(2):
        make_due(home)
        assert_silent(run("notify"))
    make_due(home)
    again = run("notify")
    assert again.err.startswith("storyfeed: Alpha: failing since "), again
    assert "(3 attempts)" in again.err


def test_a_feed_failing_for_a_day_is_reported_before_three_attempts(
    run: Run, home: Path, alpha: ServedFeed
) -> None:
    write_config(home, "[notify]\nreport_after_failures = 10\nreport_after = '24h'\n")
    subscribe(run, alpha)
    baseline(run)
    alpha.status = 500
    make_due(home)
    assert_silent(run("notify"))
    day_ago = int((datetime.now(UTC) - timedelta(hours=25)).timestamp())
    with closing(sqlite3.connect(home / "storyfeed.db")) as db, db:
        db.execute("UPDATE feeds SET failing_since = ?, next_fetch_at = 0", (day_ago,))
    reported = run("notify")
    assert reported.code == 0, reported
    assert "storyfeed: Alpha: failing since " in reported.err
    assert "(2 attempts)" in reported.err
    make_due(home)
    assert_silent(run("notify"))


def test_a_retired_feed_is_reported_at_once_and_only_once(
    run: Run, home: Path, alpha: ServedFeed
) -> None:
    subscribe(run, alpha)
    baseline(run)
    alpha.status = 410
    make_due(home)
    gone = run("notify")
    assert (gone.code, gone.out) == (0, ""), gone
    assert gone.err.startswith("storyfeed: Alpha: retired (HTTP 410 Gone)")
    assert len(gone.err.splitlines()) == 1
    make_due(home)
    assert_silent(run("notify"))
    assert alpha.hits == 2  # a retired feed is not fetched


def test_a_failing_feed_that_is_then_retired_is_told(
    run: Run, home: Path, alpha: ServedFeed
) -> None:
    subscribe(run, alpha)
    baseline(run)
    alpha.status = 500
    for _ in range(3):
        make_due(home)
        last = run("notify")
    assert "failing since" in last.err
    alpha.status = 410
    make_due(home)
    gone = run("notify")
    assert "retired (HTTP 410 Gone)" in gone.err


def test_feed_problem_reports_never_show_the_feed_password(
    run: Run, home: Path, httpserver: HTTPServer
) -> None:
    untitled = ServedFeed(httpserver, "")  # no title: it is named by its (redacted) URL
    url = untitled.url.replace("http://", f"http://user:{SECRET}@")
    assert run("add", url).code == 0
    baseline(run)
    untitled.status = 500
    results = []
    for _ in range(3):
        make_due(home)
        results.append(run("notify", "--verbose", "--json"))
    assert "failing since" in results[-1].err
    # Now unreachable, and not yet told: the connection error is reported too.
    with closing(sqlite3.connect(home / "storyfeed.db")) as db, db:
        db.execute(
            "UPDATE feeds SET url = ?, problem_reported = 0",
            (f"http://user:{SECRET}@127.0.0.1:{closed_port()}/",),
        )
    make_due(home)
    results.append(run("notify", "--verbose", "--json"))
    assert "(4 attempts)" in results[-1].err
    for result in results:
        assert SECRET not in result.out + result.err, result


def test_nothing_new_is_silence(
    run: Run, home: Path, alpha: ServedFeed, receiver: Receiver
) -> None:
    subscribe(run, alpha)
    baseline(run)
    baseline(run, "--to", receiver.url)
    assert_silent(run("notify"))  # nothing due
    make_due(home)
    assert_silent(run("notify"))  # due, fetched, 304
    make_due(home)
    assert_silent(run("notify", "--to", receiver.url))
    assert alpha.hits == 3
    assert receiver.attempts == []


def test_a_failing_channel_is_reported_once_after_three_failed_runs(
    run: Run, home: Path, alpha: ServedFeed, httpserver: HTTPServer
) -> None:
    receiver = Receiver(httpserver, f"/hook/{TOKEN}", userinfo=f"user:{SECRET}@")
    label = channel_label(receiver.url)
    subscribe(run, alpha)
    baseline(run, "--to", receiver.url)
    alpha.add(3)
    make_due(home)
    receiver.status = 500
    outputs: list[Result] = []

    for _ in range(2):
        outputs.append(quiet := run("notify", "--to", receiver.url))
        assert (quiet.code, quiet.out, quiet.err) == (1, "", ""), quiet
    outputs.append(third := run("notify", "--to", receiver.url))
    assert (third.code, third.out) == (1, ""), third
    assert len(third.err.splitlines()) == 1, third.err
    assert third.err.startswith(f"storyfeed: {label}: 3 failed runs in a row: ")
    outputs.append(fourth := run("notify", "--to", receiver.url))
    assert (fourth.code, fourth.out, fourth.err) == (1, "", ""), fourth
    outputs.append(verbose := run("notify", "--to", receiver.url, "--verbose", "--json"))
    assert verbose.code == 1
    summary = json.loads(verbose.out.splitlines()[-1])["summary"]
    assert summary["channels"][0]["channel"] == label
    assert summary["channels"][0]["error"]
    assert summary["channels"][0]["pending"] == 1

    receiver.status = 200
    outputs.append(back := run("notify", "--to", receiver.url))
    assert (back.code, back.out, back.err) == (0, "", f"storyfeed: {label}: delivering again\n")
    outputs.append(run("notify", "--to", receiver.url))
    assert_silent(outputs[-1])
    assert receiver.count(alpha.link(3)) == 1
    for result in outputs:
        assert SECRET not in result.out + result.err
        assert TOKEN not in result.out + result.err
    assert not any(
        SECRET in str(row) or TOKEN in str(row) for row in query(home, "SELECT * FROM channels")
    )


# --- secrets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"nosuchservice://user:{SECRET}@127.0.0.1/{TOKEN}",
        f"json://user:{SECRET}@[::1/{TOKEN}",
        f"{SECRET}",
    ],
)
def test_an_invalid_url_is_refused_without_showing_it(
    run: Run, alpha: ServedFeed, url: str
) -> None:
    subscribe(run, alpha)
    for args in (("notify", "--to", url), ("notify", "--test", "--to", url)):
        refused = run(*args)
        assert refused.code in (1, 2), refused  # a failure or a usage error, never success
        assert refused.out == ""
        assert len(refused.err.splitlines()) == 1, refused.err
        assert refused.err.startswith("storyfeed: error: ")
        assert SECRET not in refused.err
        assert TOKEN not in refused.err
        assert "Traceback" not in refused.err
    assert alpha.hits == 1  # nothing was fetched for a run that could not start


def test_an_unreachable_channel_never_shows_its_secrets(
    run: Run, home: Path, alpha: ServedFeed
) -> None:
    url = f"json://user:{SECRET}@127.0.0.1:{closed_port()}/{TOKEN}"
    subscribe(run, alpha)
    baseline(run, "--to", url)
    alpha.add(3)
    make_due(home)
    results = [run("notify", "--to", url, "--verbose", "--json") for _ in range(3)]
    results.append(run("notify", "--test", "--to", url))
    for result in results:
        assert result.code == 1, result
        assert SECRET not in result.out + result.err
        assert TOKEN not in result.out + result.err
    assert "3 failed runs in a row" in results[2].err
    assert "1 pending" in results[0].err


def test_config_holding_urls_must_not_be_readable_by_others(
    run: Run, home: Path, alpha: ServedFeed, httpserver: HTTPServer
) -> None:
    receiver = Receiver(httpserver, "/hook", userinfo=f"user:{SECRET}@")
    subscribe(run, alpha)
    write_config(home, f'[notify]\nurls = ["{receiver.url}"]\n', mode=0o644)
    warned = run("notify")
    assert (warned.code, warned.out) == (0, ""), warned
    assert warned.err == (
        f"storyfeed: warning: {home / 'config.toml'} holds notification URLs and others can "
        "read it; chmod 600 it\n"
    )
    (home / "config.toml").chmod(0o600)
    assert_silent(run("notify"))
    alpha.add(3)
    make_due(home)
    assert_silent(run("notify"))  # the configured URL is the channel, not stdout
    assert receiver.count(alpha.link(3)) == 1


def test_config_without_urls_needs_no_warning(run: Run, home: Path, alpha: ServedFeed) -> None:
    write_config(home, "[notify]\ndigest_after = 5\n", mode=0o644)
    subscribe(run, alpha)
    assert_silent(run("notify"))


# --- JSON and overlap ---------------------------------------------------------------


def test_json_lines_have_the_documented_fields(run: Run, home: Path, alpha: ServedFeed) -> None:
    subscribe(run, alpha)
    first = run("notify", "--json")
    assert first.code == 0, first
    records = [json.loads(line) for line in first.out.splitlines()]
    assert records == [
        {
            "summary": {
                "dry_run": False,
                "baseline": 2,
                "channels": [
                    {
                        "channel": "stdout",
                        "delivered": 0,
                        "pending": 0,
                        "error": None,
                        "would_send": 0,
                    }
                ],
                "feeds": [],
            }
        }
    ]

    alpha.add(3, 4)
    make_due(home)
    sent = run("notify", "--json")
    assert (sent.code, sent.err) == (0, ""), sent
    records = [json.loads(line) for line in sent.out.splitlines()]
    assert len(records) == 3
    stories, summary = records[:2], records[2]
    for story, n in zip(stories, (3, 4), strict=True):
        assert set(story) == STORY_FIELDS
        assert story["title"] == alpha.title(n)
        assert story["link"] == alpha.link(n)
        assert story["feed"] == "Alpha"
        assert isinstance(story["id"], int)
        assert isinstance(story["feed_id"], int)
        assert story["read"] is False
        assert isinstance(story["new"], bool)
        assert story["published"] == f"2026-05-01T{n:02d}:00:00Z"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", story["first_seen"])
    assert summary["summary"]["baseline"] == 0
    assert summary["summary"]["channels"][0]["delivered"] == 2


def test_json_lines_carry_the_summary_like_list(run: Run, home: Path, alpha: ServedFeed) -> None:
    subscribe(run, alpha)
    baseline(run)
    alpha.add(3)
    make_due(home)
    sent = run("notify", "--json")
    story = json.loads(sent.out.splitlines()[0])
    listed = {s["id"]: s for s in json.loads(run("list", "--offline", "--json").out)}
    assert listed[story["id"]]["summary"] == "Summary of Alpha story 3."
    assert story["summary"] == "Summary of Alpha story 3."


def test_dry_run_json_is_json_lines(run: Run, home: Path, alpha: ServedFeed) -> None:
    subscribe(run, alpha)
    baseline(run)
    alpha.add(3)
    make_due(home)
    dry = run("notify", "--dry-run", "--json")
    assert dry.code == 0, dry
    records = [json.loads(line) for line in dry.out.splitlines()]
    assert records[-1]["summary"]["dry_run"] is True
    assert records[-1]["summary"]["channels"][0]["would_send"] == 1


def test_a_second_run_while_one_holds_the_lock_does_nothing(
    run: Run, home: Path, alpha: ServedFeed, receiver: Receiver
) -> None:
    subscribe(run, alpha)
    baseline(run, "--to", receiver.url)
    alpha.add(3)
    make_due(home)
    with lock.exclusive(home / "refresh.lock") as held:
        assert held
        busy = run("notify", "--to", receiver.url)
        assert (busy.code, busy.out, busy.err) == (75, "", ""), busy
        told = run("notify", "--to", receiver.url, "--verbose")
        assert told.code == 75
        assert "another storyfeed is fetching feeds" in told.err
    assert alpha.hits == 1
    assert receiver.attempts == []
    assert run("notify", "--to", receiver.url).code == 0
    assert receiver.count(alpha.link(3)) == 1


# --- pure decisions -----------------------------------------------------------------


def story(number: int, *, title: str | None = None, feed: str = "Alpha") -> Story:
    return Story(
        id=number,
        feed_id=1,
        feed_title=feed,
        title=f"Story {number}" if title is None else title,
        link=f"https://stories.example/{number}/",
        author="",
        summary="",
        published=None,
        first_seen=NOW,
        new=True,
        read=False,
    )


def test_plan_messages_one_per_story_up_to_digest_after() -> None:
    assert plan_messages([], 2) == []
    messages = plan_messages([story(1), story(2, title="", feed="Beta")], 2)
    assert [(m.title, m.body, [s.id for s in m.stories]) for m in messages] == [
        ("Alpha", "Story 1\nhttps://stories.example/1/", [1]),
        ("Beta", "(untitled)\nhttps://stories.example/2/", [2]),
    ]
    assert messages[1].lines == ["Beta — (untitled) — https://stories.example/2/"]


def test_plan_messages_digest_above_digest_after() -> None:
    stories = [story(1), story(2), story(3, feed="Beta")]
    (digest,) = plan_messages(stories, 2)
    assert digest.title == "3 new stories"
    assert digest.body == (
        "Alpha — Story 1 — https://stories.example/1/\n"
        "Alpha — Story 2 — https://stories.example/2/\n"
        "Beta — Story 3 — https://stories.example/3/"
    )
    assert digest.stories == tuple(stories)
    assert len(plan_messages(stories, 3)) == 3


def failing(
    errors: int, since: timedelta, *, reported: int = QUIET, status: FeedStatus = FeedStatus.ACTIVE
) -> Feed:
    return Feed(
        id=7,
        url="https://user:pw@feeds.example/x.xml",
        feed_title="Alpha",
        status=status,
        error_count=errors,
        last_error="HTTP 500",
        failing_since=NOW - since if errors else None,
        problem_reported=reported,
    )


SETTINGS = NotifySettings()


def test_feed_reports_wait_for_three_failures() -> None:
    assert feed_reports([failing(0, timedelta())], SETTINGS, NOW) == []
    assert feed_reports([failing(2, timedelta(hours=1))], SETTINGS, NOW) == []
    (report,) = feed_reports([failing(3, timedelta(hours=1))], SETTINGS, NOW)
    assert report.line == "Alpha: failing since 2026-06-01 11:00 UTC (3 attempts): HTTP 500"
    assert report.reported == FAILING
    assert report.feed.id == 7
    custom = NotifySettings(report_after_failures=5)
    assert feed_reports([failing(4, timedelta(hours=1))], custom, NOW) == []
    assert len(feed_reports([failing(5, timedelta(hours=1))], custom, NOW)) == 1


def test_a_feed_with_notify_off_reports_no_trouble_either() -> None:
    quiet = replace(failing(5, timedelta(days=2)), notify=False)
    assert feed_reports([quiet], SETTINGS, NOW) == []
    assert feed_reports([replace(quiet, status=FeedStatus.GONE)], SETTINGS, NOW) == []


def test_feed_reports_or_for_a_day() -> None:
    assert (
        feed_reports([failing(1, timedelta(hours=24) - timedelta(seconds=1))], SETTINGS, NOW) == []
    )
    (report,) = feed_reports([failing(1, timedelta(hours=24))], SETTINGS, NOW)
    assert report.line == "Alpha: failing since 2026-05-31 12:00 UTC (1 attempts): HTTP 500"
    hour = NotifySettings(report_after=3600)
    assert len(feed_reports([failing(1, timedelta(hours=1))], hour, NOW)) == 1


def test_feed_reports_once_then_recovery_once() -> None:
    assert feed_reports([failing(9, timedelta(days=3), reported=FAILING)], SETTINGS, NOW) == []
    (recovered,) = feed_reports([failing(0, timedelta(), reported=FAILING)], SETTINGS, NOW)
    assert (recovered.line, recovered.reported) == ("Alpha: recovered", QUIET)
    assert feed_reports([failing(0, timedelta(), reported=QUIET)], SETTINGS, NOW) == []


def test_feed_reports_a_retired_feed_once() -> None:
    (gone,) = feed_reports([failing(0, timedelta(), status=FeedStatus.GONE)], SETTINGS, NOW)
    assert gone.line.startswith("Alpha: retired (HTTP 410 Gone)")
    assert "storyfeed refresh 7" in gone.line
    assert gone.reported == RETIRED
    told = failing(0, timedelta(), status=FeedStatus.GONE, reported=RETIRED)
    assert feed_reports([told], SETTINGS, NOW) == []
    (was_failing,) = feed_reports(
        [failing(3, timedelta(), status=FeedStatus.GONE, reported=FAILING)], SETTINGS, NOW
    )
    assert was_failing.reported == RETIRED
    paused = failing(5, timedelta(days=2), status=FeedStatus.PAUSED)
    assert feed_reports([paused], SETTINGS, NOW) == []


def test_feed_reports_never_show_the_feed_url_password() -> None:
    untitled = Feed(
        id=1,
        url=f"https://user:{SECRET}@feeds.example/x.xml",
        error_count=3,
        last_error="HTTP 500",
        failing_since=NOW,
    )
    (report,) = feed_reports([untitled], SETTINGS, NOW)
    assert SECRET not in report.line
    assert "feeds.example" in report.line


def channel(failures: int = 0, *, reported: bool = False) -> Channel:
    return Channel(
        id=1,
        key="k",
        label="json://*** (abcdef01)",
        after_story=0,
        failures=failures,
        failure_reported=reported,
    )


def test_channel_report() -> None:
    assert channel_report(channel(0), "HTTP 500", SETTINGS) == ("", False)
    assert channel_report(channel(1), "HTTP 500", SETTINGS) == ("", False)
    assert channel_report(channel(2), "HTTP 500", SETTINGS) == (
        "json://*** (abcdef01): 3 failed runs in a row: HTTP 500",
        True,
    )
    assert channel_report(channel(3, reported=True), "HTTP 500", SETTINGS) == ("", True)
    assert channel_report(channel(5, reported=True), "", SETTINGS) == (
        "json://*** (abcdef01): delivering again",
        False,
    )
    assert channel_report(channel(2), "", SETTINGS) == ("", False)
    once = NotifySettings(channel_failures=1)
    assert channel_report(channel(0), "refused", once) == (
        "json://*** (abcdef01): 1 failed runs in a row: refused",
        True,
    )


@pytest.mark.parametrize(
    "url",
    [
        f"json://user:{SECRET}@hooks.example/{TOKEN}",
        f"ntfy://{SECRET}",
        f"tgram://{SECRET}/{TOKEN}",
        f"mailto://me:{SECRET}@mail.example?to={TOKEN}",
        f"json://user:{SECRET}@[::1/{TOKEN}",
        SECRET,
    ],
)
def test_channel_label_and_key_hide_the_url(url: str) -> None:
    label = channel_label(url)
    key = channel_key(url)
    assert re.fullmatch(r"[a-z?]+://\*\*\* \([0-9a-f]{8}\)", label), label
    assert SECRET not in label and TOKEN not in label
    assert "example" not in label
    assert key == hashlib.sha256(url.encode()).hexdigest()
    assert label.endswith(f"({key[:8]})")
    assert channel_label(url) == label  # stable across runs
    assert channel_label(url + "x") != label


def test_channel_label_and_key_of_stdout() -> None:
    assert channel_label("stdout") == "stdout"
    assert channel_key("stdout") == "stdout"
    assert channel_label("json://a.example/x").startswith("json://*** (")
    assert channel_label(SECRET).startswith("?://*** (")


# --- regressions from a review as a cron user -----------------------------------------


def test_one_entry_holding_several_urls_is_refused(
    run: Run, home: Path, alpha: ServedFeed, receiver: Receiver
) -> None:
    subscribe(run, alpha)
    both = f"{receiver.url}, {receiver.url}2"
    result = run("notify", "--to", both)
    assert result.code == 1
    assert "not one notification URL" in result.err
    assert query(home, "SELECT COUNT(*) FROM channels") == [(0,)]
    junk = run("notify", "--to", "\x1b]0;pwned\x07ntfy://x")
    assert junk.code == 1
    assert "pwned" not in junk.err


def test_a_feed_never_fetched_takes_its_baseline_at_its_first_success(
    run: Run, home: Path, httpserver: HTTPServer
) -> None:
    later = ServedFeed(httpserver, "Later")
    later.add(1, 2, 3)
    later.status = 503
    assert run("feeds").code == 0  # creates the database
    with closing(sqlite3.connect(home / "storyfeed.db")) as db, db:
        db.execute("INSERT INTO feeds (url, added_at) VALUES (?, 0)", (later.url,))
    first = run("notify")  # the feed is down: no baseline yet
    assert (first.code, first.out) == (0, "")
    later.status = 200
    make_due(home)
    second = run("notify")  # its first success: its stories are history, not news
    assert (second.code, second.out) == (0, "")
    later.add(4)
    make_due(home)
    third = run("notify")
    assert third.out == later.line(4) + "\n"


def test_a_receiver_that_trickles_its_answer_is_given_up_on(
    run: Run, home: Path, alpha: ServedFeed
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def trickle() -> None:
        listener.settimeout(5)
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
                while not stop.wait(0.5):
                    conn.sendall(b"x")

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        subscribe(run, alpha)
        write_config(home, "[notify]\nsend_timeout = 2\n")
        url = f"json://127.0.0.1:{port}/slow"
        baseline(run, "--to", url)
        alpha.add(3)
        make_due(home)
        started = time.monotonic()
        result = run("notify", "--to", url)
        assert result.code == 1
        assert time.monotonic() - started < 10
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_failure_reasons_never_quote_the_url(
    run: Run, home: Path, alpha: ServedFeed, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/s3cr3tTopic", method="POST").respond_with_data("no", status=500)
    url = f"ntfy://127.0.0.1:{httpserver.port}/s3cr3tTopic"
    subscribe(run, alpha)
    baseline(run, "--to", url)
    alpha.add(3)
    make_due(home)
    for _ in range(3):
        result = run("notify", "--to", url, "--verbose", "--json")
        assert result.code == 1
        assert "s3cr3tTopic" not in result.out + result.err
    assert "HTTP 500" in result.err
    assert "s3cr3tTopic" not in str(query(home, "SELECT last_error, label FROM channels"))
    tested = run("notify", "--test", "--to", url)
    assert tested.code == 1
    assert "s3cr3tTopic" not in tested.err


def test_a_story_read_before_notify_stays_settled_after_mark_unread(
    run: Run, home: Path, alpha: ServedFeed
) -> None:
    subscribe(run, alpha)
    baseline(run)
    alpha.add(3, 4)
    make_due(home)
    run("refresh")
    assert run("mark", "read", "--all").code == 0
    assert_silent(run("notify"))
    assert run("mark", "unread", "--all").code == 0
    assert_silent(run("notify"))


def test_a_digest_stays_small(run: Run, home: Path, alpha: ServedFeed, receiver: Receiver) -> None:
    subscribe(run, alpha)
    baseline(run, "--to", receiver.url)
    alpha.add(*range(3, 203))
    make_due(home)
    assert run("notify", "--to", receiver.url).code == 0
    (digest,) = receiver.accepted
    assert digest["title"] == "200 new stories"
    assert len(digest["message"]) < 4000
    assert "… and 175 more" in digest["message"]
    assert receiver.count(alpha.link(202)) == 1
    make_due(home)
    assert run("notify", "--to", receiver.url).code == 0
    assert len(receiver.accepted) == 1  # all 200 were settled by the digest


def test_usage_errors_do_not_quote_credentials(run: Run) -> None:
    result = run("notify", "json://admin:hunter2@127.0.0.1/x")
    assert result.code == 2
    assert "hunter2" not in result.err


def test_a_story_removed_during_delivery_does_not_stop_the_run(
    run: Run, home: Path, alpha: ServedFeed
) -> None:
    """Recording a delivery for a story whose feed was removed meanwhile is skipped."""
    from storyfeed.store import Store

    subscribe(run, alpha)
    baseline(run)
    alpha.add(3)
    make_due(home)
    run("refresh")
    store = Store.open(home / "storyfeed.db")
    try:
        (channel_row,) = query(home, "SELECT key, label FROM channels")
        channel = store.channel(str(channel_row[0]), str(channel_row[1]), backlog=False)
        assert channel is not None
        (story,) = store.pending_stories(channel)
        store.remove_feed(story.feed_id)
        store.record_deliveries(channel.id, [story.id], NOW)
    finally:
        store.close()
    assert query(home, "SELECT COUNT(*) FROM deliveries") == [(0,)]
