"""`storyfeed notify` as cron runs it: real processes against real loopback servers.

Each test starts the installed ``storyfeed`` executable with ``subprocess`` and
serves its feed from a threaded HTTP server on 127.0.0.1 that can be made slow
(so a fetch takes seconds and the refresh lock is held meanwhile); ``json://``
notifications go to a second loopback server that records what it was sent.
Nothing but 127.0.0.1 is ever contacted.

Time passing is simulated by clearing ``feeds.next_fetch_at`` in the database
between runs (the shortest refresh interval is a minute), which makes the feed
due again exactly as it would be an interval later.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

EXE = Path(sys.executable).with_name("storyfeed")
EXIT_BUSY = 75
FEED_TITLE = "Loopback Feed"
PROMPT = 3.0  # seconds: a command that must not wait for the running notify
SLOW_FETCH = 2.0  # seconds the feed server holds a response when a run must overlap
BUSY_LINE = re.compile(r"another storyfeed .*(running|in progress|fetching)")


# --- loopback servers ------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """Joins its request threads on close, so no thread outlives a test."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], owner: Loopback) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return  # a client killed mid-request: expected in these tests
        self.owner.errors.append(repr(error))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a client that never finishes its request cannot hold close() up

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Loopback:
    """A threaded HTTP server on 127.0.0.1 that counts requests and can be slow."""

    handler: type[_Handler]

    def __init__(self) -> None:
        self.delay = 0.0  # seconds each request waits before its answer
        self.errors: list[str] = []
        self.hits: list[float] = []  # when each request arrived (time.monotonic)
        self._stopping = threading.Event()
        self._changed = threading.Condition()
        self._server = _Server(self.handler, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def hit(self) -> float:
        """Count a request; returns the delay it must wait (fixed at its arrival)."""
        with self._changed:
            self.hits.append(time.monotonic())
            self._changed.notify_all()
            return self.delay

    def pause(self, delay: float) -> bool:
        """Wait ``delay`` seconds; True when the server is closing meanwhile."""
        return self._stopping.wait(delay)

    def wait_for_hits(self, count: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.hits) >= count, timeout)

    def close(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()  # joins the request threads
        self._thread.join(10)
        assert not self._thread.is_alive()


class _FeedHandler(_Handler):
    def do_GET(self) -> None:
        owner = self.server.owner
        assert isinstance(owner, FeedServer)
        if self.path != "/feed.xml":
            self._reply(404, b"not found", "text/plain")
            return
        if owner.pause(owner.hit()):
            return
        if owner.status != 200:
            self._reply(owner.status, b"try again later", "text/plain")
            return
        self._reply(200, owner.body(), "application/rss+xml; charset=utf-8")


class FeedServer(Loopback):
    """An RSS feed whose stories are numbered; ``add`` publishes new ones."""

    handler = _FeedHandler

    def __init__(self) -> None:
        self.status = 200
        self.numbers = [1, 2, 3]
        self._epoch = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
        self._lock = threading.Lock()
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/feed.xml"

    def link(self, number: int) -> str:
        return f"http://127.0.0.1:{self.port}/posts/{number}"

    def line(self, number: int) -> str:
        """The stdout channel's line for a story."""
        return f"{FEED_TITLE} — Story {number} — {self.link(number)}"

    def add(self, count: int) -> list[int]:
        with self._lock:
            start = self.numbers[-1] + 1
            new = list(range(start, start + count))
            self.numbers += new
        return new

    def body(self) -> bytes:
        with self._lock:
            numbers = list(self.numbers)
        items = "".join(
            f"<item><title>Story {n}</title><link>{self.link(n)}</link>"
            f'<guid isPermaLink="false">story-{n}</guid>'
            f"<pubDate>{format_datetime(self._epoch + timedelta(hours=n), usegmt=True)}</pubDate>"
            f"<description>The text of story {n}.</description></item>"
            for n in reversed(numbers)  # newest first, as feeds do
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{FEED_TITLE}</title><link>http://127.0.0.1:{self.port}/</link>"
            f"<description>stories for the tests</description>{items}</channel></rss>"
        ).encode()


class _ReceiverHandler(_Handler):
    def do_POST(self) -> None:
        owner = self.server.owner
        assert isinstance(owner, Receiver)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if len(body) < length:
            return  # the sender was killed mid-request: nothing arrived
        payload = json.loads(body or b"null")
        owner.record(self.path, payload)
        if owner.pause(owner.hit()):
            return
        self._reply(owner.status, b"{}", "application/json")


class Receiver(Loopback):
    """The target of ``json://`` notifications: records every body it is sent."""

    handler = _ReceiverHandler

    def __init__(self) -> None:
        self.status = 200
        self.received: list[tuple[str, Any]] = []
        super().__init__()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/notify"

    def record(self, path: str, payload: Any) -> None:
        with self._changed:
            self.received.append((path, payload))

    def counts(self) -> Counter[int]:
        """How many times each story (by number) was sent, digests included."""
        counts: Counter[int] = Counter()
        for path, payload in list(self.received):
            assert path == "/notify"
            assert isinstance(payload, dict), payload
            assert {"title", "message"} <= payload.keys(), payload
            counts.update(int(n) for n in re.findall(r"/posts/(\d+)\b", payload["message"]))
        return counts


# --- processes -----------------------------------------------------------------------


def _environment() -> dict[str, str]:
    """This test's environment (STORYFEED_HOME included), with no proxy to go through."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.pop("STORYFEED_DEBUG", None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


class Proc:
    """One storyfeed process, its output in files (no pipe can fill up)."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], folder: Path) -> None:
        self.argv = list(argv)
        self.out_path = folder / "stdout"
        self.err_path = folder / "stderr"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.started = time.monotonic()
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=True,  # no controlling terminal, as under cron
            )
        self.ended: float | None = None

    def poll(self) -> int | None:
        code = self.popen.poll()
        if code is not None and self.ended is None:
            self.ended = time.monotonic()
        return code

    def wait(self, timeout: float = 30.0) -> Proc:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.argv[-3:]} still ran after {timeout} s; killed it")
        self.poll()
        return self

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)
        self.poll()

    @property
    def code(self) -> int:
        assert self.popen.returncode is not None, "still running"
        return self.popen.returncode

    @property
    def elapsed(self) -> float:
        assert self.ended is not None, "still running"
        return self.ended - self.started

    @property
    def out(self) -> str:
        return self.out_path.read_bytes().decode("utf-8")

    @property
    def err(self) -> str:
        return self.err_path.read_bytes().decode("utf-8")

    def __repr__(self) -> str:
        state = "running" if self.popen.returncode is None else f"exit {self.popen.returncode}"
        return f"<{' '.join(self.argv[1:])}: {state}>"


class Runner:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[Proc] = []
        self.env = _environment()

    def start(self, *args: str) -> Proc:
        return self.start_argv([str(EXE), *args], self.env)

    def start_argv(self, argv: Sequence[str], env: dict[str, str]) -> Proc:
        folder = self.folder / f"{len(self.procs):03d}"
        folder.mkdir(parents=True)
        proc = Proc(argv, env, folder)
        self.procs.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 30.0) -> Proc:
        return self.start(*args).wait(timeout)

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.popen.returncode is None:
                proc.kill()


def wait_all(procs: Sequence[Proc], timeout: float = 30.0) -> None:
    """Wait for every process, noting when each ended (10 ms resolution)."""
    deadline = time.monotonic() + timeout
    while None in [proc.poll() for proc in procs]:  # every one polled, each time
        if time.monotonic() > deadline:
            for proc in procs:
                proc.kill()
            pytest.fail(f"still running after {timeout} s: {procs}")
        time.sleep(0.01)


# --- fixtures and helpers -----------------------------------------------------------


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    procs = Runner(tmp_path / "procs")
    try:
        yield procs
    finally:
        procs.cleanup()


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    server = FeedServer()
    try:
        yield server
    finally:
        server.close()
    assert server.errors == []


def _receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()
    assert server.errors == []


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _receiver()


@pytest.fixture
def slow_receiver() -> Iterator[Receiver]:
    """A second channel, for the tests that need two."""
    yield from _receiver()


def _db(home: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(home / "storyfeed.db", timeout=10))


def make_due(home: Path) -> None:
    """Let time pass: every feed is due for a fetch again."""
    with _db(home) as db, db:
        db.execute("UPDATE feeds SET next_fetch_at = NULL")


def check_database(home: Path) -> None:
    with _db(home) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []


def lock_is_free(home: Path) -> bool:
    """Whether a process could take the refresh lock now (and this one lets it go)."""
    with (home / "refresh.lock").open("a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return True


def stories_by_title(runner: Runner) -> dict[str, dict[str, Any]]:
    listing = runner.run("list", "--offline", "--json", "--limit", "1000")
    assert listing.code == 0, listing.err
    return {story["title"]: story for story in json.loads(listing.out)}


def subscribe_and_take_baseline(runner: Runner, feed: FeedServer, receiver: Receiver) -> None:
    """Subscribe, then a first notify: the feed's stories so far are its baseline."""
    added = runner.run("add", feed.url)
    assert added.code == 0, added.err
    first = runner.run("notify", "--to", receiver.url)
    assert (first.code, first.out, first.err) == (0, "", "")
    assert receiver.received == []


def assert_silent_run(runner: Runner, *args: str) -> None:
    quiet = runner.run("notify", *args)
    assert (quiet.code, quiet.out, quiet.err) == (0, "", "")


# --- 1. overlapping runs ----------------------------------------------------------------


@pytest.mark.parametrize(
    "rival", [("notify",), ("refresh", "--force")], ids=["notify-notify", "notify-refresh"]
)
def test_runs_started_together_one_runs_the_other_exits_75_at_once(
    runner: Runner, feed: FeedServer, receiver: Receiver, home: Path, rival: tuple[str, ...]
) -> None:
    subscribe_and_take_baseline(runner, feed, receiver)
    news = feed.add(3)
    make_due(home)
    feed.delay = SLOW_FETCH
    fetches = len(feed.hits)
    rival_args = (*rival, "--to", receiver.url) if rival == ("notify",) else rival

    notify = runner.start("notify", "--to", receiver.url)
    other = runner.start(*rival_args)
    wait_all([notify, other])

    assert sorted([notify.code, other.code]) == [0, EXIT_BUSY], (notify.err, other.err)
    winner, loser = (notify, other) if notify.code == 0 else (other, notify)
    assert (loser.out, loser.err) == ("", "")
    # A loser that waited for the lock would end after the winner let it go.
    assert loser.ended is not None and winner.ended is not None and loser.ended < winner.ended
    assert loser.elapsed < winner.elapsed, "the run that lost waited for the other one"
    assert winner.elapsed >= SLOW_FETCH
    assert winner.err == ""
    assert len(feed.hits) == fetches + 1, "only the run holding the lock may fetch"

    # If refresh won, the stories are cached and the next notify sends them.
    feed.delay = 0
    follow_up = runner.run("notify", "--to", receiver.url)
    assert (follow_up.code, follow_up.out, follow_up.err) == (0, "", "")
    assert receiver.counts() == Counter(dict.fromkeys(news, 1))
    # One plain-text message per story: the feed as its title, the story's title and link.
    sent = sorted((body["title"], body["message"]) for _, body in receiver.received)
    assert sent == [(FEED_TITLE, f"Story {n}\n{feed.link(n)}") for n in news]
    make_due(home)
    assert_silent_run(runner, "--to", receiver.url)
    assert receiver.counts() == Counter(dict.fromkeys(news, 1))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("notify",), ("notify",)),
        (("notify",), ("refresh", "--force")),
        (("refresh", "--force"), ("notify",)),
    ],
    ids=["notify-then-notify", "notify-then-refresh", "refresh-then-notify"],
)
def test_a_run_started_while_another_fetches_exits_75_and_says_so_only_when_verbose(
    runner: Runner,
    feed: FeedServer,
    receiver: Receiver,
    home: Path,
    first: tuple[str, ...],
    second: tuple[str, ...],
) -> None:
    subscribe_and_take_baseline(runner, feed, receiver)
    news = feed.add(2)
    make_due(home)
    feed.delay = 3 * SLOW_FETCH  # two short runs must fit inside it, even on a busy machine

    def args(command: tuple[str, ...]) -> tuple[str, ...]:
        return (*command, "--to", receiver.url) if command == ("notify",) else command

    fetches = len(feed.hits)
    holder = runner.start(*args(first))
    assert feed.wait_for_hits(fetches + 1, timeout=15), "the first run never fetched"

    quiet = runner.run(*args(second))
    assert (quiet.code, quiet.out, quiet.err) == (EXIT_BUSY, "", "")
    assert quiet.elapsed < PROMPT
    verbose = runner.run(*args(second), "--verbose")
    assert (verbose.code, verbose.out) == (EXIT_BUSY, "")
    assert BUSY_LINE.search(verbose.err), verbose.err
    assert verbose.elapsed < PROMPT
    assert holder.poll() is None, "the first run ended early: the test proved nothing"
    assert len(feed.hits) == fetches + 1

    holder.wait()
    assert (holder.code, holder.err) == (0, "")
    feed.delay = 0
    follow_up = runner.run("notify", "--to", receiver.url)
    assert (follow_up.code, follow_up.out, follow_up.err) == (0, "", "")
    assert receiver.counts() == Counter(dict.fromkeys(news, 1))


# --- 2. kill -9 ------------------------------------------------------------------------


def test_kill_9_while_fetching_never_loses_or_repeats_a_story(
    runner: Runner, feed: FeedServer, receiver: Receiver, home: Path
) -> None:
    seed = time.time_ns() % 2**32
    rng = random.Random(seed)
    context = f"(random seed {seed})"
    subscribe_and_take_baseline(runner, feed, receiver)
    sent: list[int] = []
    # (kill how long after the fetch began, or None: soon after the start;
    #  whether the news was already cached by a refresh; whether to run again now)
    trials: list[tuple[float | None, bool, bool]] = [
        (rng.uniform(0.0, 0.3), False, False),
        (rng.uniform(0.3, 0.8), True, True),
        (rng.uniform(0.8, 1.4), False, True),
        (None, True, False),
        (rng.uniform(0.0, 1.4), True, True),
        (rng.uniform(0.0, 1.4), False, False),
        (rng.uniform(0.0, 1.4), False, True),
    ]
    for number, (after_fetch, cached, recover) in enumerate(trials):
        where = f"trial {number} {context}"
        news = feed.add(2)
        sent += news
        if cached:
            feed.delay = 0
            pulled = runner.run("refresh", "--force")
            assert pulled.code == 0, (where, pulled.err)
        make_due(home)
        feed.delay = SLOW_FETCH
        fetches = len(feed.hits)
        delivered = receiver.counts()

        victim = runner.start("notify", "--to", receiver.url)
        if after_fetch is None:
            time.sleep(rng.uniform(0.0, 0.25))
        else:
            assert feed.wait_for_hits(fetches + 1, timeout=15), where
            time.sleep(after_fetch)
        assert victim.poll() is None, where
        victim.kill()
        assert victim.code == -signal.SIGKILL, where

        check_database(home)
        assert lock_is_free(home), f"a killed run left the lock held, {where}"
        assert receiver.counts() == delivered, f"killed before sending, yet it sent, {where}"
        if recover:
            feed.delay = 0
            again = runner.run("notify", "--to", receiver.url)
            assert (again.code, again.out, again.err) == (0, "", ""), where
            assert receiver.counts() == Counter(dict.fromkeys(sent, 1)), where
            check_database(home)

    make_due(home)
    assert_silent_run(runner, "--to", receiver.url)
    assert receiver.counts() == Counter(dict.fromkeys(sent, 1)), context


def test_kill_9_before_a_channel_answered_sends_that_message_again_and_no_other(
    runner: Runner, feed: FeedServer, receiver: Receiver, slow_receiver: Receiver, home: Path
) -> None:
    """Two channels: the first accepts everything, the second is killed mid-POST."""
    channels = ("--to", receiver.url, "--to", slow_receiver.url)
    added = runner.run("add", feed.url)
    assert added.code == 0, added.err
    assert_silent_run(runner, *channels)  # the baseline, and both channels start
    news = feed.add(3)
    make_due(home)
    slow_receiver.delay = 3.0  # below apprise's 4 s read timeout: the POST is just slow

    victim = runner.start("notify", *channels)
    assert slow_receiver.wait_for_hits(1, timeout=15), "notify never reached the 2nd channel"
    victim.kill()
    assert victim.code == -signal.SIGKILL
    check_database(home)
    assert lock_is_free(home)
    assert receiver.counts() == Counter(dict.fromkeys(news, 1))
    assert slow_receiver.counts() == Counter({news[0]: 1})

    slow_receiver.delay = 0
    again = runner.run("notify", *channels)
    assert (again.code, again.out, again.err) == (0, "", "")
    # The first channel had accepted every story: it gets none again. The second
    # never answered the POST in flight, so it never accepted that story: it must
    # not have been recorded, and is sent again (the one repeat), the rest once.
    assert receiver.counts() == Counter(dict.fromkeys(news, 1))
    assert slow_receiver.counts() == Counter({news[0]: 2, news[1]: 1, news[2]: 1})
    make_due(home)
    assert_silent_run(runner, *channels)
    assert receiver.counts() == Counter(dict.fromkeys(news, 1))
    assert slow_receiver.counts() == Counter({news[0]: 2, news[1]: 1, news[2]: 1})


# --- 3. readers while notify runs -----------------------------------------------------


def test_list_open_read_and_mark_work_while_notify_holds_the_lock(
    runner: Runner, feed: FeedServer, receiver: Receiver, home: Path
) -> None:
    subscribe_and_take_baseline(runner, feed, receiver)
    cached = feed.add(4)
    pulled = runner.run("refresh", "--force")
    assert pulled.code == 0, pulled.err
    (fetched_by_notify,) = feed.add(1)
    make_due(home)
    before = stories_by_title(runner)
    opened_n, read_n, marked_n, unread_n = cached
    ids = {n: before[f"Story {n}"]["id"] for n in cached}
    titles = [f"Story {n}" for n in (1, 2, 3, *cached)]

    feed.delay = 3 * SLOW_FETCH
    fetches = len(feed.hits)
    notify = runner.start("notify", "--to", receiver.url)
    assert feed.wait_for_hits(fetches + 1, timeout=15), "notify never fetched"
    assert not lock_is_free(home)

    def prompt(*args: str) -> Proc:
        proc = runner.run(*args, timeout=30)
        assert proc.elapsed < PROMPT, f"{proc} waited {proc.elapsed:.1f} s for the notify"
        assert proc.code == 0, (proc, proc.err)
        return proc

    offline = prompt("list", "--offline")
    listing = prompt("list")
    opened = prompt("open", "--print", str(ids[opened_n]))
    shown = prompt("read", str(ids[read_n]))
    marked = prompt("mark", "read", str(ids[marked_n]))
    assert notify.poll() is None, "notify ended before the readers were done"
    assert len(feed.hits) == fetches + 1, "`list` fetched while notify held the lock"

    assert offline.err == ""
    assert BUSY_LINE.search(listing.err), listing.err
    for out in (offline.out, listing.out):
        shown_titles = [line.split("\t")[4] for line in out.splitlines()]
        assert sorted(shown_titles) == sorted(titles)
    assert (opened.out, opened.err) == (feed.link(opened_n) + "\n", "")
    assert f"Story {read_n}" in shown.out and shown.err == ""
    assert (marked.out, marked.err) == ("", "")

    notify.wait()
    assert (notify.code, notify.out, notify.err) == (0, "", "")
    # Read before they were notified: not sent. The others: once.
    assert receiver.counts() == Counter({unread_n: 1, fetched_by_notify: 1})
    after = stories_by_title(runner)
    read_marks = {n: after[f"Story {n}"]["read"] for n in (*cached, fetched_by_notify)}
    assert read_marks == {
        opened_n: True,
        read_n: True,
        marked_n: True,
        unread_n: False,
        fetched_by_notify: False,
    }


def test_list_open_read_and_mark_work_while_notify_waits_for_a_channel(
    runner: Runner, feed: FeedServer, receiver: Receiver, home: Path
) -> None:
    subscribe_and_take_baseline(runner, feed, receiver)
    before = stories_by_title(runner)
    ids = [before[f"Story {n}"]["id"] for n in (1, 2, 3)]
    news = feed.add(2)
    make_due(home)
    receiver.delay = 2.5  # each POST; below apprise's 4 s read timeout

    notify = runner.start("notify", "--to", receiver.url)
    assert receiver.wait_for_hits(1, timeout=15), "notify never sent anything"
    make_due(home)  # so that `list` wants to refresh

    def prompt(*args: str) -> Proc:
        proc = runner.run(*args, timeout=30)
        assert proc.elapsed < PROMPT, f"{proc} waited {proc.elapsed:.1f} s for the notify"
        assert proc.code == 0, (proc, proc.err)
        return proc

    offline = prompt("list", "--offline")
    listing = prompt("list")
    opened = prompt("open", "--print", str(ids[0]))
    shown = prompt("read", str(ids[1]))
    marked = prompt("mark", "read", str(ids[2]))
    assert notify.poll() is None, "notify ended before the readers were done"

    assert (offline.err, marked.out, marked.err) == ("", "", "")
    assert BUSY_LINE.search(listing.err), listing.err
    assert "Story 1\t" in listing.out and "Story 1\t" in offline.out
    assert opened.out == feed.link(1) + "\n"
    assert "Story 2" in shown.out

    notify.wait()
    assert (notify.code, notify.out, notify.err) == (0, "", "")
    assert receiver.counts() == Counter(dict.fromkeys(news, 1))
    after = stories_by_title(runner)
    assert [after[f"Story {n}"]["read"] for n in (1, 2, 3)] == [True, True, True]


# --- 4. cron --------------------------------------------------------------------------


def test_crontab_like_runs_print_only_news(
    runner: Runner, feed: FeedServer, home: Path, tmp_path: Path
) -> None:
    added = runner.run("add", feed.url)
    assert added.code == 0, added.err
    env_program = shutil.which("env")
    assert env_program is not None
    cron_home = tmp_path / "user"
    cron_home.mkdir()
    cron_line = [
        env_program,
        "-i",
        "PATH=/usr/bin:/bin",
        f"HOME={cron_home}",
        f"STORYFEED_HOME={home}",
        str(EXE),
        "notify",
    ]

    def cron_run() -> Proc:
        return runner.start_argv(cron_line, {}).wait()

    def check(proc: Proc, out: str) -> None:
        assert (proc.code, proc.out, proc.err) == (0, out, "")

    make_due(home)
    fetches = len(feed.hits)
    check(cron_run(), "")  # the first run: a baseline, nothing to say
    assert len(feed.hits) == fetches + 1

    news = feed.add(2)
    make_due(home)
    check(cron_run(), "".join(feed.line(n) + "\n" for n in news))

    make_due(home)
    check(cron_run(), "")  # fetched, nothing new
    check(cron_run(), "")  # not due, nothing new
    assert len(feed.hits) == fetches + 3

    feed.status = 503  # one failed fetch is not worth an email
    make_due(home)
    check(cron_run(), "")
    assert len(feed.hits) == fetches + 4

    feed.status = 200
    more = feed.add(1)
    make_due(home)
    check(cron_run(), feed.line(more[0]) + "\n")
    assert len(feed.hits) == fetches + 5
