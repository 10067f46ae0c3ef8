"""Crashes, broken disks and broken databases, through the real ``storyfeed`` executable.

Part 1 kills ``storyfeed refresh`` and ``storyfeed notify`` with SIGKILL at seeded-random
moments (while starting, while fetching, while parsing and storing, while delivering)
and checks after every kill that the database passes ``PRAGMA integrity_check``, that
no read mark and no delivery record was lost, that every feed update is all or
nothing, that the refresh lock is free and that the next run completes and stores
everything. The feeds come from loopback servers (``FeedServer`` of
test_notify_processes, one of them 2,000 stories long) and ``notify`` posts to a
``json://`` receiver on 127.0.0.1. ``STORYFEED_CRASH_SEED=N`` replays a run.

Part 2 breaks the database or the disk under ``list`` (the read path) and
``refresh``/``mark`` (the write paths): corrupt and truncated files, a database
locked by another program for longer than ``busy_timeout``, a data directory that is
not writable or cannot be created, and a full disk (a real tmpfs in a private mount
namespace where the machine allows it, ``RLIMIT_FSIZE``, and SQLite's
``max_page_count``). Each must end in one clear ``storyfeed: error:`` line, exit 1
(README: "unusable database"), and leave the database file and its WAL as they were.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from test_notify_processes import (
    EXE,
    FeedServer,
    Proc,
    Receiver,
    Runner,
    lock_is_free,
    make_due,
    wait_all,
)

DB = "storyfeed.db"
PROMPT = 10.0  # seconds: generous bound for a command that must not wait for a lock
LINK = re.compile(r"http://127\.0\.0\.1:\d+/posts/\d+")
REVISION = re.compile(r"\(revision (\d+)\)")


# --- shared helpers --------------------------------------------------------------------


def _environment(**extra: str) -> dict[str, str]:
    """The test's environment without proxies, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.pop("STORYFEED_DEBUG", None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1"
    env.update(extra)
    return env


def _read_only(home: Path) -> contextlib.closing[sqlite3.Connection]:
    """A read-only connection: it never checkpoints or deletes a killed run's WAL, so
    the next storyfeed run finds the files exactly as the kill left them."""
    uri = (home / DB).as_uri() + "?mode=ro"
    return contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10))


def _assert_intact(home: Path, context: str = "") -> None:
    """PRAGMA integrity_check and foreign_key_check find nothing."""
    with _read_only(home) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)], context
        assert db.execute("PRAGMA foreign_key_check").fetchall() == [], context


def _file_digests(home: Path) -> dict[str, str]:
    """sha256 of the database and of its WAL (an empty WAL counts as no WAL)."""
    digests = {}
    for name in (DB, DB + "-wal"):
        path = home / name
        if path.exists() and (name == DB or path.stat().st_size > 0):
            digests[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def _processes() -> dict[int, tuple[int, int, int]]:
    """Live processes (zombies aside): pid -> (parent pid, session, start time)."""
    table: dict[int, tuple[int, int, int]] = {}
    if not Path("/proc/self/stat").exists():  # not Linux: nothing to look at
        return table
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z":  # fields[0] is stat's 3rd field (state); start time is 22nd
            table[int(entry.name)] = (int(fields[1]), int(fields[3]), int(fields[19]))
    return table


def _descendants(pid: int) -> dict[int, int]:
    """The live descendants of ``pid`` (pid -> start time), found through their
    parents: a parse worker in a session of its own is one of them too."""
    table = _processes()
    found: dict[int, int] = {}
    parents = [pid]
    while parents:
        parent = parents.pop()
        for child, (ppid, _, started) in table.items():
            if ppid == parent and child not in found:
                found[child] = started
                parents.append(child)
    return found


def _assert_killed_run_ends(proc: Proc, descendants: dict[int, int], context: str) -> float:
    """Every process the killed run had started (a parse worker, say), and any left in
    its session, ends by itself soon: one that lives on could hold the lock or write."""
    deadline = time.monotonic() + 10.0
    while True:
        table = _processes()
        left = [pid for pid, (_, session, _) in table.items() if session == proc.popen.pid]
        left += [
            pid for pid, started in descendants.items() if table.get(pid, (0, 0, 0))[2] == started
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid in left:  # started by this test: end them before failing
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes of the killed run still alive 10 s later: {left}, {context}"
    return time.monotonic() - deadline + 10.0  # how long the last of them took to end


def _rss(numbers: Sequence[int], *, text: str = "The text of story {n}.") -> bytes:
    """An RSS document with numbered stories, newest first."""
    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    items = "".join(
        f"<item><title>Story {n}</title><link>http://127.0.0.1:9/posts/{n}</link>"
        f'<guid isPermaLink="false">story-{n}</guid>'
        f"<pubDate>{format_datetime(epoch + timedelta(minutes=n), usegmt=True)}</pubDate>"
        f"<description>{text.format(n=n)}</description></item>"
        for n in reversed(numbers)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>File Feed</title><link>http://127.0.0.1:9/</link>"
        f"<description>a local feed</description>{items}</channel></rss>"
    ).encode()


# =======================================================================================
# Part 1: kill -9 at random moments of refresh and notify
# =======================================================================================

BIG_FEED = 2000  # stories in the large feed
FETCH_DELAY = 0.4  # seconds the large feed's server holds its answer in runs to be killed
KILL_CONFIG = 'default_feed = ""\n[notify]\ndigest_after = 1000\n'  # one message per story
# Where each trial's kill is aimed (the moment itself is random within the phase):
#   start: before the first request; fetch: while the large feed's answer is held back;
#   parse: after it was sent (parsing, storing, the small feeds); deliver: during POSTs.
KILL_PLANS = {
    "refresh": ["start"] * 2 + ["fetch"] * 3 + ["parse"] * 5,
    "notify": ["start"] + ["fetch"] * 2 + ["parse"] * 3 + ["deliver"] * 4,
}


class RevisedFeed(FeedServer):
    """A FeedServer whose story texts carry a revision number: bumping it makes the
    next refresh rewrite every story of the feed, so a kill can land in a big write."""

    def __init__(self, first: int, count: int) -> None:
        super().__init__()
        self.revision = 0
        self.numbers = list(range(first, first + count))

    def body(self) -> bytes:
        mark = f" (revision {self.revision})</description>".encode()
        return super().body().replace(b"</description>", mark)

    @property
    def prefix(self) -> str:
        return f"http://127.0.0.1:{self.port}/posts/"

    def links(self) -> set[str]:
        return {self.link(n) for n in list(self.numbers)}


@dataclass(frozen=True)
class Snapshot:
    """What a kill must not lose: stories (link -> id, feed, text revision), read marks
    and delivery records."""

    stories: dict[str, tuple[int, int, int]]
    read: frozenset[int]
    deliveries: frozenset[tuple[int, int]]


def _snapshot(home: Path) -> Snapshot:
    with _read_only(home) as db:
        rows = db.execute("SELECT link, id, feed_id, summary FROM stories").fetchall()
        read = frozenset(
            i for (i,) in db.execute("SELECT id FROM stories WHERE read_at IS NOT NULL")
        )
        deliveries = frozenset(db.execute("SELECT channel_id, story_id FROM deliveries"))
    stories = {}
    for link, story_id, feed_id, summary in rows:
        found = REVISION.search(summary)
        assert found, summary
        assert link not in stories, f"story {link} stored twice"
        stories[link] = (story_id, feed_id, int(found.group(1)))
    return Snapshot(stories, read, deliveries)


@dataclass
class KillStats:
    """What the kills hit, for the summary line (pytest -s shows it)."""

    kills: Counter[str] = field(default_factory=Counter)  # by planned phase
    finished: int = 0  # runs that ended before their kill moment
    partial: int = 0  # kills after which some feeds were stored and others not
    notify_kills: int = 0
    delivered_before_kill: int = 0  # kills after the victim had recorded deliveries
    workers: int = 0  # child processes the killed runs had (parse workers), all ended
    slowest_end: float = 0.0  # seconds until the last of them had ended, at most


@dataclass
class World:
    """Feed servers, a notification receiver and the storyfeed runs of one test."""

    home: Path
    runner: Runner
    big: RevisedFeed
    small: list[RevisedFeed]
    receiver: Receiver
    rng: random.Random
    seed: int
    baseline_last_id: int = 0
    stats: KillStats = field(default_factory=KillStats)

    @property
    def feeds(self) -> list[RevisedFeed]:
        return [self.big, *self.small]

    def served(self) -> set[str]:
        return set().union(*(feed.links() for feed in self.feeds))

    def publish(self) -> None:
        """New stories, and a new text for every story already there."""
        self.big.add(self.rng.randint(8, 14))
        for feed in self.small:
            feed.add(self.rng.randint(0, 2))
        for feed in self.feeds:
            feed.revision += 1

    def received(self) -> Counter[str]:
        links: Counter[str] = Counter()
        for path, payload in list(self.receiver.received):
            assert path == "/notify" and isinstance(payload, dict), payload
            links.update(LINK.findall(payload["message"]))
        return links

    def slow_down(self, slow: bool) -> None:
        """Slow servers for the runs to be killed (a window for kills while fetching
        and while delivering); fast ones for the others."""
        self.big.delay = FETCH_DELAY if slow else 0.0
        self.receiver.delay = 0.02 if slow else 0.0

    def run(self, *args: str) -> Proc:
        return self.runner.run(*args, timeout=60)

    def command(self, victim: str) -> tuple[str, ...]:
        return ("refresh",) if victim == "refresh" else ("notify", "--to", self.receiver.url)


@pytest.fixture
def world(tmp_path: Path, home: Path) -> Iterator[World]:
    """A 2,000-story feed and two small ones on loopback, a json:// receiver, and a
    seeded random source (STORYFEED_CRASH_SEED, else the clock)."""
    (home / "config.toml").write_text(KILL_CONFIG)
    seed = int(os.environ.get("STORYFEED_CRASH_SEED") or time.time_ns() % 2**32)
    runner = Runner(tmp_path / "procs")
    servers: list[FeedServer | Receiver] = []
    try:
        big = RevisedFeed(1, BIG_FEED)
        servers.append(big)
        small = [RevisedFeed(100_000 * k + 1, 3) for k in (1, 2)]
        servers += small
        receiver = Receiver()
        servers.append(receiver)
        yield World(home, runner, big, small, receiver, random.Random(seed), seed)
    finally:
        runner.cleanup()
        for server in servers:
            server.close()
    assert [s.errors for s in servers] == [[] for _ in servers]


def _mark_some_read(world: World, before: Snapshot) -> None:
    """`storyfeed mark read` two unread stories that are history or were delivered
    (so that the rule "read before sent: never sent" cannot blur the delivery check)."""
    delivered = {story_id for _, story_id in before.deliveries}
    candidates = sorted(
        story_id
        for story_id, _, _ in before.stories.values()
        if story_id not in before.read
        and (story_id <= world.baseline_last_id or story_id in delivered)
    )
    chosen = world.rng.sample(candidates, 2)
    marked = world.run("mark", "read", *map(str, chosen))
    assert (marked.code, marked.err) == (0, ""), marked.err


def _wait_until(condition: Callable[[], bool], proc: Proc, what: str) -> bool:
    """Poll until ``condition``; False if the run ended first."""
    deadline = time.monotonic() + 30
    while not condition():
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{what} did not happen within 30 s")
        time.sleep(0.003)
    return True


@dataclass
class Timing:
    """Phase lengths in seconds, measured on every complete run (they stretch and
    shrink with the machine's load); kills aim within their medians."""

    first_request: list[float] = field(default_factory=list)  # start to the large fetch
    parse: list[float] = field(default_factory=list)  # its answer to the first POST / end
    deliver: list[float] = field(default_factory=list)  # first POST to the end (notify)

    def window(self, phase: str) -> float:
        samples: list[float] = getattr(self, phase)
        return statistics.median(samples) if samples else 0.5

    def measure(self, world: World, proc: Proc, hits: int, posts: int, delay: float) -> None:
        """Learn from ``proc``, a run that completed; ``hits``/``posts``: the servers'
        counts when it started; ``delay``: the large feed's delay meanwhile."""
        assert proc.ended is not None
        end = proc.ended - proc.started
        answered = None
        if len(world.big.hits) > hits:
            first = world.big.hits[hits] - proc.started
            self.first_request.append(first)
            answered = first + delay
        if len(world.receiver.hits) > posts:
            post = world.receiver.hits[posts] - proc.started
            self.deliver.append(max(end - post, 0.05))
            if answered is not None:
                self.parse.append(max(post - answered, 0.05))
        elif answered is not None and "--to" not in proc.argv:
            self.parse.append(max(end - answered, 0.05))


def _calibrate(world: World, victim: str, timing: Timing) -> None:
    """One complete run of the victim's command, slowed down as the killed ones are."""
    world.publish()
    make_due(world.home)
    hits, posts = len(world.big.hits), len(world.receiver.hits)
    world.slow_down(True)
    proc = world.runner.start(*world.command(victim)).wait(60)
    world.slow_down(False)
    assert (proc.code, proc.err) == (0, ""), proc.err
    timing.measure(world, proc, hits, posts, FETCH_DELAY)
    if victim == "refresh":
        sent = world.run("notify", "--to", world.receiver.url)  # deliveries to keep
        assert (sent.code, sent.out, sent.err) == (0, "", ""), sent.err
    assert world.received(), "no delivery was recorded before the first kill"


def _kill_at(world: World, proc: Proc, phase: str, timing: Timing) -> dict[int, int] | None:
    """Kill ``proc`` at a random moment of ``phase``; its descendants at that moment
    (see :func:`_descendants`), or None if it ended first."""
    rng = world.rng
    hits, posts = len(world.big.hits), len(world.receiver.hits)
    if phase == "start":
        time.sleep(rng.uniform(0.0, timing.window("first_request")))
    elif phase == "fetch":
        if not _wait_until(lambda: len(world.big.hits) > hits, proc, "the large feed's fetch"):
            return None
        time.sleep(rng.uniform(0.0, FETCH_DELAY))
    elif phase == "parse":
        if not _wait_until(lambda: len(world.big.hits) > hits, proc, "the large feed's fetch"):
            return None
        time.sleep(FETCH_DELAY + rng.uniform(0.0, 0.9 * timing.window("parse")))
    else:
        if not _wait_until(lambda: len(world.receiver.hits) > posts, proc, "a POST"):
            return None
        time.sleep(rng.uniform(0.0, 0.9 * timing.window("deliver")))
    descendants = _descendants(proc.popen.pid)
    if proc.poll() is not None:
        return None
    proc.kill()
    return descendants if proc.code == -signal.SIGKILL else None


def _check_after_kill(world: World, victim: str, before: Snapshot, where: str) -> Snapshot:
    """The files as a kill left them: intact, lock free, nothing lost, each feed
    stored whole or not at all, no delivery recorded that was not received."""
    _assert_intact(world.home, where)
    assert lock_is_free(world.home), f"a killed run left the lock held, {where}"
    after = _snapshot(world.home)
    assert after.read == before.read, f"read marks changed by a killed run, {where}"
    assert after.deliveries >= before.deliveries, f"delivery records lost, {where}"
    # Nothing lost, ids stable; each feed's update is all there or not at all.
    for link, (story_id, feed_id, _) in before.stories.items():
        assert after.stories.get(link, (0, 0, 0))[:2] == (story_id, feed_id), (link, where)
    committed = 0
    for feed in world.feeds:
        now = {link: v for link, v in after.stories.items() if link.startswith(feed.prefix)}
        old = {link for link in before.stories if link.startswith(feed.prefix)}
        revisions = {revision for _, _, revision in now.values()}
        if (set(now), revisions) == (feed.links(), {feed.revision}):
            committed += 1
        else:
            assert (set(now), revisions) == (old, {feed.revision - 1}), (
                f"feed {feed.url} half stored: {len(now)} stories (was {len(old)}, "
                f"serves {len(feed.links())}), revisions {revisions}, {where}"
            )
    if 0 < committed < len(world.feeds):
        world.stats.partial += 1
    received = world.received()
    if victim == "refresh":
        assert after.deliveries == before.deliveries, where
    else:
        # A delivery is recorded only once the channel accepted the story.
        by_id = {story_id: link for link, (story_id, _, _) in after.stories.items()}
        recorded = {by_id[story_id] for _, story_id in after.deliveries - before.deliveries}
        assert recorded <= set(received), f"recorded but never received, {where}"
        world.stats.delivered_before_kill += bool(recorded)
    return after


def _check_next_run(
    world: World, command: str, before: Snapshot, where: str, timing: Timing
) -> None:
    """The next run exits 0 quietly and leaves every served story stored once, with its
    newest text; marks and records kept; after a notify, every news sent (at least
    once; twice only for a story in flight at a kill), no history sent."""
    hits, posts = len(world.big.hits), len(world.receiver.hits)
    proc = world.run(*world.command(command))
    assert (proc.code, proc.err) == (0, ""), f"the next {command} failed, {where}: {proc.err}"
    if command == "notify":
        assert proc.out == "", where
    timing.measure(world, proc, hits, posts, 0.0)
    _assert_intact(world.home, where)
    assert lock_is_free(world.home), where
    after = _snapshot(world.home)
    assert set(after.stories) == world.served(), f"the next run did not store all, {where}"
    for feed in world.feeds:
        revisions = {r for link, (_, _, r) in after.stories.items() if link.startswith(feed.prefix)}
        assert revisions == {feed.revision}, (feed.url, where)
    assert after.read == before.read, f"read marks lost, {where}"
    assert after.deliveries >= before.deliveries, f"delivery records lost, {where}"
    received = world.received()
    history = {link for link, (i, _, _) in after.stories.items() if i <= world.baseline_last_id}
    assert not history & set(received), f"a story of the baseline was sent, {where}"
    repeats = sum(count - 1 for count in received.values())
    assert repeats <= world.stats.notify_kills, f"{repeats} stories sent twice, {where}"
    if command == "notify":
        news = {link for link, (i, _, _) in after.stories.items() if i > world.baseline_last_id}
        assert news <= set(received), f"{len(news - set(received))} stories never sent, {where}"


@pytest.mark.parametrize("victim", ["refresh", "notify"])
def test_kill_9_at_random_moments_loses_nothing_and_the_next_run_completes(
    world: World, victim: str
) -> None:
    """kill -9 of `refresh` / `notify` at seeded-random moments of each phase: after
    every kill the database is intact, read marks and delivery records are all there,
    each feed is stored completely or not at all, the lock is free and no process of
    the killed run lives on; the next run exits 0 and stores every story once."""
    context = f"(STORYFEED_CRASH_SEED={world.seed})"
    for feed in world.feeds:
        added = world.run("add", feed.url)
        assert added.code == 0, added.err
    baseline = world.run("notify", "--to", world.receiver.url)
    assert (baseline.code, baseline.out, baseline.err) == (0, "", ""), baseline.err
    world.baseline_last_id = max(i for i, _, _ in _snapshot(world.home).stories.values())
    timing = Timing()
    _calibrate(world, victim, timing)

    plan = list(KILL_PLANS[victim])
    world.rng.shuffle(plan)
    spare = 6  # runs that end before their moment are tried again, a few times
    number = 0
    while plan:
        phase = plan[0]
        where = f"{victim} trial {number} ({phase}) {context}"
        number += 1
        world.publish()
        _mark_some_read(world, _snapshot(world.home))
        before = _snapshot(world.home)
        make_due(world.home)
        world.slow_down(True)
        hits, posts = len(world.big.hits), len(world.receiver.hits)
        victim_proc = world.runner.start(*world.command(victim))
        killed = _kill_at(world, victim_proc, phase, timing)
        world.slow_down(False)
        if killed is not None:
            plan.pop(0)
            world.stats.kills[phase] += 1
            world.stats.notify_kills += victim == "notify"
            world.stats.workers += len(killed)
            ended = _assert_killed_run_ends(victim_proc, killed, where)
            world.stats.slowest_end = max(world.stats.slowest_end, ended)
            after_kill = _check_after_kill(world, victim, before, where)
        else:
            assert (victim_proc.code, victim_proc.err) == (0, ""), (where, victim_proc.err)
            world.stats.finished += 1
            timing.measure(world, victim_proc, hits, posts, FETCH_DELAY)
            spare -= 1
            assert spare >= 0, f"too many runs ended before their kill moment, {where}"
            after_kill = _snapshot(world.home)
        _check_next_run(world, victim, after_kill, where, timing)  # the killed command again
    if victim == "refresh":  # and what the refreshes stored is delivered, once
        _check_next_run(world, "notify", _snapshot(world.home), f"final {context}", timing)

    stats = world.stats
    repeats = sum(count - 1 for count in world.received().values())
    print(f"\n{victim}: kills by phase {dict(stats.kills)}; runs that ended before their "
          f"kill {stats.finished}; kills with some feeds stored and others not "
          f"{stats.partial}; kills after deliveries were recorded "
          f"{stats.delivered_before_kill}; stories sent twice {repeats}; "
          f"stories sent {len(world.received())}; child processes of killed runs "
          f"{stats.workers}, gone within {stats.slowest_end:.2f} s {context}")  # fmt: skip
    assert sum(stats.kills.values()) == len(KILL_PLANS[victim])


# =======================================================================================
# Part 2: broken databases and disks
# =======================================================================================

BROKEN_CONFIG = 'default_feed = ""\nbusy_timeout = 0.5\n'
TEMPLATE_STORIES = 300
TEMPLATE_READ = ("1", "2", "3")
# The read path and the write paths; the feed is due and every story NEW, so even
# `list` wants to write twice (its refresh, then recording the stories as shown).
COMMANDS = {
    "list": ("list",),
    "refresh": ("refresh", "--force"),
    "mark": ("mark", "read", "--all"),
}
EXIT_UNAVAILABLE = 97  # the launcher could not set up its mechanism (not a storyfeed exit)

# Runs storyfeed under a mechanism that breaks its disk: with root's DAC capabilities
# dropped (so that file modes apply to root too), under RLIMIT_FSIZE, or on a small
# tmpfs in a private mount namespace (copied in from `stage` and back out to `out`).
LAUNCHER = r"""
import ctypes, json, os, resource, shutil, signal, subprocess, sys
spec = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)

def give_up(what):
    sys.stderr.write(f"launcher: {what}: {os.strerror(ctypes.get_errno())}\n")
    sys.exit(97)

if spec.get("drop_dac"):
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            give_up("prctl(PR_CAPBSET_DROP)")
if "fsize" in spec:  # a write past the limit fails with EFBIG instead of killing us
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (spec["fsize"], spec["fsize"]))
if "tmpfs" in spec:
    disk = spec["tmpfs"]
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        give_up("unshare(CLONE_NEWNS)")
    if libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None) != 0:  # MS_REC | MS_PRIVATE
        give_up("mount --make-rprivate /")
    size = f"size={disk['size']}".encode()
    if libc.mount(b"tmpfs", disk["at"].encode(), b"tmpfs", 0, size) != 0:
        give_up("mount tmpfs")
    for name in os.listdir(disk["stage"]):
        shutil.copy2(os.path.join(disk["stage"], name), disk["at"])
    filler = os.path.join(disk["at"], "filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(65536))
    except OSError:
        pass
    os.ftruncate(fd, max(0, os.fstat(fd).st_size - disk["free"]))
    os.close(fd)
    code = subprocess.call(spec["argv"])
    os.remove(filler)
    for name in os.listdir(disk["at"]):
        shutil.copy2(os.path.join(disk["at"], name), disk["out"])
    sys.exit(code)
os.execv(spec["argv"][0], spec["argv"])
"""


def _launch(runner: Runner, env: dict[str, str], args: Sequence[str], **spec: object) -> Proc:
    argv = [sys.executable, "-c", LAUNCHER, json.dumps({"argv": [str(EXE), *args], **spec})]
    return runner.start_argv(argv, env)


def _skip_if_unavailable(proc: Proc) -> None:
    if proc.code == EXIT_UNAVAILABLE and proc.err.startswith("launcher: "):
        pytest.skip(f"this machine does not allow it: {proc.err.strip()}")


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    procs = Runner(tmp_path / "procs")
    try:
        yield procs
    finally:
        procs.cleanup()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A healthy data directory: one file feed of 300 stories, 3 of them read, the feed
    due and every story NEW; closed cleanly (no WAL), refresh.lock present."""
    folder = tmp_path_factory.mktemp("template")
    feed = folder / "feed.xml"
    feed.write_bytes(_rss(range(1, TEMPLATE_STORIES + 1)))
    home = folder / "home"
    home.mkdir()
    (home / "config.toml").write_text(BROKEN_CONFIG)
    runner = Runner(folder / "procs")
    env = _environment(STORYFEED_HOME=str(home))
    for args in (("add", str(feed)), ("mark", "read", *TEMPLATE_READ), ("refresh", "--force")):
        done = runner.start_argv([str(EXE), *args], env).wait(60)
        assert done.code == 0, done.err
    with contextlib.closing(sqlite3.connect(home / DB)) as db, db:
        db.execute("UPDATE feeds SET next_fetch_at = NULL")
        db.execute("UPDATE stories SET shown_at = NULL")
    assert not (home / (DB + "-wal")).exists()
    return home


def _home_from(template: Path, home: Path) -> dict[str, str]:
    """A copy of the template data directory at ``home``; its environment."""
    home.mkdir(exist_ok=True)
    for name in (DB, "refresh.lock"):
        shutil.copy2(template / name, home / name)
    (home / "config.toml").write_text(BROKEN_CONFIG)
    return _environment(STORYFEED_HOME=str(home))


def _content(home: Path) -> tuple[object, ...]:
    """Everything a user would miss: feeds, stories with their state, deliveries."""
    with _read_only(home) as db:
        return tuple(
            db.execute(query).fetchall()
            for query in (
                "SELECT * FROM feeds ORDER BY id",
                "SELECT * FROM stories ORDER BY id",
                "SELECT * FROM deliveries ORDER BY channel_id, story_id",
            )
        )


def _assert_one_error(proc: Proc, *patterns: str) -> None:
    """Exit 1, nothing on stdout, one `storyfeed: error:` line that matches
    ``patterns`` and shows no traceback or raw sqlite3 wording."""
    assert proc.code == 1, f"exit {proc.code}, stderr {proc.err!r}"
    assert proc.out == "", proc.out[:300]
    lines = proc.err.splitlines()
    assert len(lines) == 1 and proc.err.endswith("\n"), f"not one line: {proc.err!r}"
    line = lines[0]
    assert line.startswith("storyfeed: error: "), line
    for raw in ("Traceback", "internal error", "sqlite3", "OperationalError", "database is locked"):
        assert raw not in line, line
    for pattern in patterns:
        assert re.search(pattern, line, re.IGNORECASE), f"{pattern!r} does not match {line!r}"


def _page_size(data: bytes) -> int:
    size = int.from_bytes(data[16:18], "big")
    return 65536 if size == 1 else size


def _third(data: bytes) -> int:
    """The offset of the page boundary a third of the way into the file."""
    page = _page_size(data)
    return page * (len(data) // page // 3)


def _garbage_pages(data: bytes, rng: random.Random) -> bytes:
    """Three pages in the middle overwritten with random bytes."""
    page = _page_size(data)
    start = page * (len(data) // page // 2)
    return data[:start] + rng.randbytes(3 * page) + data[start + 3 * page :]


DAMAGE: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "random-bytes": lambda data, rng: rng.randbytes(len(data)),
    "valid-header-garbage-pages": lambda data, rng: data[:100] + rng.randbytes(len(data) - 100),
    "not-sqlite": lambda data, rng: b"[notes]\ntext = 'not a database'\n" * 200,
    "truncated-at-half": lambda data, rng: data[: len(data) // 2],
    "truncated-at-page-boundary": lambda data, rng: data[: _third(data)],
    "truncated-mid-page": lambda data, rng: data[: _third(data) + _page_size(data) // 2 + 7],
    "last-page-cut-in-half": lambda data, rng: data[: len(data) - _page_size(data) // 2],
    "garbage-pages-in-the-middle": _garbage_pages,
}
CORRUPT = r"corrupt|not a storyfeed database|malformed"


def _run_damaged(
    runner: Runner, template: Path, tmp_path: Path, damage: str, commands: Sequence[str]
) -> None:
    """Each command on its own copy of the damaged database, all at once."""
    data = DAMAGE[damage]((template / DB).read_bytes(), random.Random(damage))
    procs, homes = [], []
    for command in commands:
        home = tmp_path / command
        env = _home_from(template, home)
        (home / DB).write_bytes(data)
        homes.append((home, _file_digests(home)))
        procs.append(runner.start_argv([str(EXE), *COMMANDS[command]], env))
    wait_all(procs, timeout=60)
    for command, proc, (home, digests) in zip(commands, procs, homes, strict=True):
        _assert_one_error(proc, CORRUPT)
        assert _file_digests(home) == digests, f"`{command}` changed the damaged database"


@pytest.mark.parametrize(
    "damage",
    [
        "random-bytes",
        "valid-header-garbage-pages",
        "not-sqlite",
        "truncated-at-half",
        "truncated-at-page-boundary",
        "truncated-mid-page",
    ],
)
def test_a_corrupt_or_truncated_database_is_one_clear_error_and_left_alone(
    runner: Runner, template: Path, tmp_path: Path, damage: str
) -> None:
    """`list`, `refresh --force` and `mark read --all` on a damaged database: exit 1,
    one line saying it is corrupt, and the file's bytes unchanged."""
    _run_damaged(runner, template, tmp_path, damage, list(COMMANDS))


@pytest.mark.parametrize(
    ("damage", "command"),
    [
        ("last-page-cut-in-half", "list"),
        ("last-page-cut-in-half", "refresh"),
        ("last-page-cut-in-half", "mark"),
    ],
)
def test_a_partly_damaged_database_is_refused_not_written(
    runner: Runner, template: Path, tmp_path: Path, damage: str, command: str
) -> None:
    """A file cut short, away from the pages a command reads: still exit 1, one line,
    no write (the file is shorter than its header says). Garbage written over pages
    in the middle is found only when a command reads those pages (then: one line,
    exit 1, nothing written); finding it up front would take a full scan on every
    start, which costs ~75 ms per 150 MB."""
    _run_damaged(runner, template, tmp_path, damage, [command])


# --- locked by another program -----------------------------------------------------------

HOLDER = r"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
if sys.argv[2] == "locking-mode-exclusive":  # shuts out readers too
    db.execute("PRAGMA locking_mode = EXCLUSIVE")
    db.execute("BEGIN EXCLUSIVE")
    db.execute("UPDATE feeds SET etag = etag")
else:
    db.execute("BEGIN EXCLUSIVE")  # in WAL mode: writers wait, readers go on
print("holding", flush=True)
time.sleep(300)
"""


def _hold(runner: Runner, home: Path, mode: str) -> Proc:
    """Another program holding the database locked, far longer than busy_timeout."""
    holder = runner.start_argv([sys.executable, "-c", HOLDER, str(home / DB), mode], {})
    deadline = time.monotonic() + 30
    while holder.out != "holding\n":
        assert holder.poll() is None, f"the lock holder ended: {holder.err}"
        assert time.monotonic() < deadline, "the lock holder never took its lock"
        time.sleep(0.02)
    return holder


@pytest.mark.parametrize(
    ("mode", "command"),
    [
        ("begin-exclusive", "refresh"),
        ("begin-exclusive", "mark"),
        ("begin-exclusive", "notify"),
        ("locking-mode-exclusive", "list"),
        ("locking-mode-exclusive", "refresh"),
    ],
)
def test_a_database_locked_by_another_program_is_one_clear_error_soon(
    runner: Runner, template: Path, home: Path, mode: str, command: str
) -> None:
    """Another program holds the database for longer than busy_timeout (0.5 s): the
    command gives up within seconds with exit 1 (README: 75 is only for another
    storyfeed run) and one line saying the database is locked; nothing changes."""
    env = _home_from(template, home)
    before = _content(home)
    holder = _hold(runner, home, mode)
    digests = _file_digests(home)
    args = ("notify",) if command == "notify" else COMMANDS[command]
    proc = runner.start_argv([str(EXE), *args], env).wait(60)
    assert proc.elapsed < PROMPT, f"waited {proc.elapsed:.1f} s for the lock"
    _assert_one_error(proc, r"locked|busy", r"another (process|program)")
    assert _file_digests(home) == digests
    holder.kill()
    _assert_intact(home)
    assert _content(home) == before


@pytest.mark.parametrize(
    "args",
    [
        ("list", "--offline"),
        ("list",),
    ],
    ids=["offline", "with-refresh"],
)
def test_list_while_another_program_holds_the_write_lock_shows_the_cache_with_one_warning(
    runner: Runner, template: Path, home: Path, args: tuple[str, ...]
) -> None:
    """`list` must not hang on a write lock held for long: in WAL mode it can still
    read, so it shows the stories (exit 0) with one warning saying the database is
    busy, and changes nothing."""
    env = _home_from(template, home)
    before = _content(home)
    holder = _hold(runner, home, "begin-exclusive")
    digests = _file_digests(home)
    proc = runner.start_argv([str(EXE), *args], env).wait(60)
    assert proc.elapsed < PROMPT, f"waited {proc.elapsed:.1f} s for the lock"
    assert proc.code == 0, proc.err
    newest = [line.split("\t")[4] for line in proc.out.splitlines()]
    assert newest == [f"Story {n}" for n in range(TEMPLATE_STORIES, TEMPLATE_STORIES - 30, -1)]
    assert re.fullmatch(r"storyfeed: warning: [^\n]*(busy|locked)[^\n]*\n", proc.err), proc.err
    assert _file_digests(home) == digests
    holder.kill()
    assert _content(home) == before  # the stories stay NEW: they were not recorded shown


# --- a data directory that is not writable ----------------------------------------------


def _unwritable(runner: Runner, folder: Path) -> dict[str, object]:
    """Make ``folder`` read-only (0o500) for storyfeed; the launcher spec that makes it
    hold for root too (root ignores modes unless its DAC capabilities are dropped)."""
    folder.chmod(0o500)
    spec: dict[str, object] = {"drop_dac": os.geteuid() == 0}
    probe = [sys.executable, "-c", f"open({str(folder / 'probe')!r}, 'w')"]
    argv = [sys.executable, "-c", LAUNCHER, json.dumps({**spec, "argv": probe})]
    check = runner.start_argv(argv, _environment()).wait(30)
    _skip_if_unavailable(check)
    if check.code == 0:
        folder.chmod(0o700)
        pytest.skip(f"cannot make {folder} unwritable here (euid {os.geteuid()})")
    assert "PermissionError" in check.err, check.err
    return spec


def test_a_data_directory_that_is_not_writable_is_one_clear_error_and_left_alone(
    runner: Runner, template: Path, tmp_path: Path
) -> None:
    """An existing database in a data directory made 0o500: SQLite cannot create its
    WAL beside it, so every command fails with one line; nothing changes."""
    procs, homes = [], []
    try:
        for command, args in COMMANDS.items():
            home = tmp_path / command
            env = _home_from(template, home)
            spec = _unwritable(runner, home)
            homes.append((home, _file_digests(home), sorted(os.listdir(home))))
            procs.append(_launch(runner, env, args, **spec))
        wait_all(procs, timeout=60)
    finally:
        for home, _, _ in homes:
            home.chmod(0o700)
    for proc, (home, digests, files) in zip(procs, homes, strict=True):
        _assert_one_error(proc, r"writ|read-?only|permission")
        assert _file_digests(home) == digests
        assert sorted(os.listdir(home)) == files


@pytest.mark.parametrize("obstacle", ["parent-is-a-file", "parent-not-writable"])
def test_a_data_directory_that_cannot_be_created_is_one_clear_error(
    runner: Runner, tmp_path: Path, obstacle: str
) -> None:
    """A fresh set-up (platform directories, no STORYFEED_HOME) whose data directory
    cannot be created: each command fails with one line naming the directory."""
    config = tmp_path / "config"
    (config / "storyfeed").mkdir(parents=True)
    (config / "storyfeed" / "config.toml").write_text(BROKEN_CONFIG)
    parent = tmp_path / "parent"
    spec: dict[str, object] = {}
    if obstacle == "parent-is-a-file":  # even root cannot make a directory inside a file
        parent.write_text("a file, not a directory\n")
    else:
        parent.mkdir()
    env = _environment(XDG_CONFIG_HOME=str(config), XDG_DATA_HOME=str(parent / "data"))
    env.pop("STORYFEED_HOME", None)
    try:
        if obstacle == "parent-not-writable":
            spec = _unwritable(runner, parent)
        procs = [_launch(runner, env, args, **spec) for args in COMMANDS.values()]
        wait_all(procs, timeout=60)
    finally:
        if parent.is_dir():
            parent.chmod(0o700)
    for proc in procs:
        _assert_one_error(proc, r"cannot create", re.escape(str(parent)))
    assert parent.is_file() or list(parent.iterdir()) == []


# --- a full disk ---------------------------------------------------------------------------


def _home_with_big_feed(
    template: Path, home: Path, feed: Path, numbers: range, text: str
) -> dict[str, str]:
    """The template's data directory, its feed now at ``feed`` with more stories."""
    env = _home_from(template, home)
    feed.write_bytes(_rss(numbers, text=text))
    with contextlib.closing(sqlite3.connect(home / DB)) as db, db:
        db.execute("UPDATE feeds SET url = ?", (feed.as_uri(),))
    return env


def test_a_file_size_limit_fails_refresh_with_one_line_and_keeps_the_database(
    runner: Runner, template: Path, home: Path, tmp_path: Path
) -> None:
    """RLIMIT_FSIZE just above the database's size (SIGXFSZ ignored, so writes fail
    with EFBIG): a refresh of 1,700 new stories fails with one line and leaves the
    database intact and as it was; without the limit the next refresh stores all."""
    env = _home_with_big_feed(template, home, tmp_path / "big.xml", range(1, 2001), "Text {n}.")
    before, digests = _content(home), _file_digests(home)
    limit = (home / DB).stat().st_size + 32 * 1024
    proc = _launch(runner, env, COMMANDS["refresh"], fsize=limit).wait(60)
    _skip_if_unavailable(proc)
    _assert_one_error(proc, re.escape(str(home / DB)))
    assert _file_digests(home) == digests
    _assert_intact(home)
    assert _content(home) == before
    again = runner.start_argv([str(EXE), *COMMANDS["refresh"]], env).wait(60)
    assert (again.code, again.err) == (0, ""), again.err
    with _read_only(home) as db:
        assert db.execute("SELECT COUNT(*) FROM stories").fetchone() == (2000,)


def test_sqlite_full_mid_transaction_is_reported_as_a_full_disk(
    runner: Runner, template: Path, home: Path, tmp_path: Path
) -> None:
    """SQLITE_FULL from `PRAGMA max_page_count` (set by a sitecustomize on every
    connection, since the limit is per connection): one line saying the database is
    full, exit 1, the database as it was."""
    env = _home_with_big_feed(template, home, tmp_path / "big.xml", range(1, 2001), "Text {n}.")
    before, digests = _content(home), _file_digests(home)
    pages = (home / DB).stat().st_size // _page_size((home / DB).read_bytes()[:100])
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sqlite3\n"
        "_connect = sqlite3.connect\n"
        "def connect(*args, **kwargs):\n"
        "    db = _connect(*args, **kwargs)\n"
        f"    db.execute('PRAGMA max_page_count = {pages + 8}')\n"
        "    return db\n"
        "sqlite3.connect = connect\n"
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    proc = runner.start_argv([str(EXE), *COMMANDS["refresh"]], env).wait(60)
    assert _file_digests(home) == digests
    _assert_intact(home)
    assert _content(home) == before
    _assert_one_error(proc, r"\bfull\b")


FULL_DISK_CASES = {
    # name: (feed stories, story text, bytes left free, command)
    "refresh-fails-at-commit": (range(1, 2001), "Text {n}.", 64 * 1024, "refresh"),
    "refresh-fails-mid-transaction": (range(1, 801), "x" * 4000 + " {n}", 256 * 1024, "refresh"),
    "all-but-16k-list": (range(1, 301), "The text of story {n}.", 16 * 1024, "list"),
    "no-space-left-mark": (range(1, 301), "The text of story {n}.", 0, "mark"),
}


@pytest.mark.parametrize(
    "case",
    [
        "refresh-fails-at-commit",
        "refresh-fails-mid-transaction",
        "all-but-16k-list",
        "no-space-left-mark",
    ],
)
def test_a_full_disk_is_one_clear_error_and_the_database_is_kept(
    runner: Runner, template: Path, tmp_path: Path, case: str
) -> None:
    """A real full disk: the data directory on a 4 MiB tmpfs (a private mount
    namespace; skipped where the machine does not allow one) filled up but for a few
    bytes. The command fails with one line saying the disk is full, and the database
    is intact and holds exactly what it held."""
    numbers, text, free, command = FULL_DISK_CASES[case]
    stage, mount, out = tmp_path / "stage", tmp_path / "mnt", tmp_path / "out"
    env = _home_with_big_feed(template, stage, tmp_path / "feed.xml", numbers, text)
    env["STORYFEED_HOME"] = str(mount)
    mount.mkdir()
    out.mkdir()
    before, digests = _content(stage), _file_digests(stage)
    disk = {"at": str(mount), "size": "4m", "stage": str(stage), "free": free, "out": str(out)}
    proc = _launch(runner, env, COMMANDS[command], tmpfs=disk).wait(60)
    _skip_if_unavailable(proc)
    _assert_intact(out)
    if command == "list":  # its refresh (a small write) may fit: stories and marks may not
        assert _content(out)[1:] == before[1:]
    else:
        assert _file_digests(out) == digests
        assert _content(out) == before
    if command == "list" and proc.out:
        # Shown from the cache, like when the database is busy: exit 0, one warning.
        assert proc.code == 0, f"listing shown, yet exit {proc.code}: {proc.err!r}"
        assert re.fullmatch(r"storyfeed: warning: [^\n]*disk is full[^\n]*\n", proc.err)
    else:
        _assert_one_error(proc, r"disk is full|no space")
