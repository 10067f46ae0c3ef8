"""Parallel stress: every command, in real processes, against one database for 30 s.

One run of the stress (a module-scoped fixture) feeds the tests below, each of which
checks one promise:

- a loopback feed server on 127.0.0.1 serves three feeds that grow while the test
  runs (one new story a second, the feeds in turn, stable guids); one answers
  ``If-None-Match`` with 304, one ``If-Modified-Since``, one neither;
- a loopback receiver takes the ``json://`` notifications (``[notify] urls`` in
  ``config.toml``);
- after subscribing and a first ``notify`` (the baseline), worker threads loop real
  ``storyfeed`` subprocesses for 30 s: ``list`` (plain, ``--json``, ``--offline``),
  ``open --print`` / ``read`` / ``mark unread`` of the ids one worker owns, ``mark
  read|unread`` of the ids another owns, ``refresh --force``, and two ``notify``
  loops; a "clock" thread makes every feed due again every two seconds (the
  shortest refresh interval is a minute), so ``list`` and ``notify`` fetch too.

Marks in the two "strict" feeds only touch stories that were baseline or already
delivered, so each of their new stories must reach the receiver exactly once. In
the "racy" feed the test marks stories as soon as a listing shows them, racing
``notify``: a story read before it could be sent is (by the README) never sent,
so there each story is sent at most once, and only stories the test read may be
missing from the receiver.

The last test, on its own, checks that a story read and then marked unread between two
notify runs is not sent.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import re
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import pytest

from test_notify_processes import EXE, Loopback, Proc, Receiver, _Handler

STRESS_SECONDS = 30.0  # how long the workers loop
PUBLISH_EVERY = 1.0  # seconds between two new stories (the feeds take turns)
NOTIFY_PAUSE = 2.0  # most seconds a notify loop waits between two runs
DUE_EVERY = 2.0  # seconds between two "time passes, every feed is due" steps
PROCESS_TIMEOUT = 45.0  # one storyfeed process that takes longer is killed: a failure
BASELINE_STORIES = 6  # stories per feed before the notify baseline
EXIT_OK, EXIT_BUSY = 0, 75
ALLOWED_EXITS = {
    "list": {EXIT_OK},
    "open": {EXIT_OK},
    "read": {EXIT_OK},
    "mark": {EXIT_OK},
    "refresh": {EXIT_OK, EXIT_BUSY},
    "notify": {EXIT_OK, EXIT_BUSY},
}
# What may reach stderr under contention: both are documented, graceful warnings.
ALLOWED_STDERR = {
    "list": {
        "storyfeed: warning: refresh skipped: another storyfeed is fetching feeds; "
        "showing the stories already fetched",
        "storyfeed: warning: the database is busy; the stories shown stay NEW until the "
        "next listing",
    },
}
FORBIDDEN = re.compile(
    r"database is locked|locked by another process|Traceback|internal error", re.IGNORECASE
)
REFRESH_LINE = re.compile(r"^(Alpha|Beta|Gamma) Stress: \d+ new$")


@dataclass(frozen=True)
class FeedSpec:
    slug: str
    title: str
    validator: str  # "etag", "last-modified" or "" (always a full 200)
    racy: bool  # the test marks its stories before notify may have sent them


FEEDS = (
    FeedSpec("alpha", "Alpha Stress", "etag", racy=False),
    FeedSpec("beta", "Beta Stress", "last-modified", racy=False),
    FeedSpec("gamma", "Gamma Stress", "", racy=True),
)
SPECS = {spec.slug: spec for spec in FEEDS}


# --- the loopback feed server ------------------------------------------------------


class _GrowingHandler(_Handler):
    def do_GET(self) -> None:
        owner = self.server.owner
        assert isinstance(owner, GrowingFeeds)
        slug = self.path.removeprefix("/").removesuffix(".xml")
        if slug not in SPECS or not self.path.endswith(".xml"):
            self._reply(404, b"not found", "text/plain")
            return
        owner.hit()
        status, body, headers = owner.answer(
            slug, self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
        )
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status == 304:
            self.end_headers()
            return
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class GrowingFeeds(Loopback):
    """Three RSS feeds on 127.0.0.1 whose stories are numbered 1, 2, ...; ``publish``
    adds one to the next feed in turn. Validators change with every new story."""

    handler = _GrowingHandler

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(SPECS, BASELINE_STORIES)
        self._epoch = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        self._modified = dict.fromkeys(SPECS, start)
        self._turn = itertools.cycle(SPECS)
        self.statuses: Counter[tuple[str, int]] = Counter()  # (feed, status) served
        self.conditional: Counter[str] = Counter()  # requests that carried a validator
        super().__init__()

    def url(self, slug: str) -> str:
        return f"http://127.0.0.1:{self.port}/{slug}.xml"

    def link(self, slug: str, number: int) -> str:
        return f"http://127.0.0.1:{self.port}/{slug}/posts/{number}"

    def title(self, slug: str, number: int) -> str:
        return f"{SPECS[slug].title} story {number}"

    def publish(self) -> tuple[str, int]:
        with self._lock:
            slug = next(self._turn)
            self.counts[slug] += 1
            # Last-Modified has one-second resolution: each change gets a later second,
            # or a fetch in the same second as two changes would miss the second one.
            now = datetime.now(UTC).replace(microsecond=0)
            self._modified[slug] = max(now, self._modified[slug] + timedelta(seconds=1))
            return slug, self.counts[slug]

    def published(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    def answer(
        self, slug: str, if_none_match: str | None, if_modified_since: str | None
    ) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            count, changed = self.counts[slug], self._modified[slug]
            validator = SPECS[slug].validator
            headers: dict[str, str] = {}
            fresh = False
            if validator == "etag":
                etag = f'"{slug}-{count}"'
                headers["ETag"] = etag
                if if_none_match is not None:
                    self.conditional[slug] += 1
                    fresh = if_none_match == etag
            elif validator == "last-modified":
                headers["Last-Modified"] = format_datetime(changed, usegmt=True)
                if if_modified_since is not None:
                    self.conditional[slug] += 1
                    with contextlib.suppress(TypeError, ValueError):
                        fresh = parsedate_to_datetime(if_modified_since) >= changed
            status = 304 if fresh else 200
            self.statuses[(slug, status)] += 1
        return status, b"" if fresh else self._body(slug, count), headers

    def _body(self, slug: str, count: int) -> bytes:
        items = "".join(
            f"<item><title>{self.title(slug, n)}</title><link>{self.link(slug, n)}</link>"
            f'<guid isPermaLink="false">{slug}-{n}</guid>'
            f"<pubDate>{format_datetime(self._epoch + timedelta(minutes=n), usegmt=True)}"
            f"</pubDate><description>Story {n} of {slug}.</description></item>"
            for n in range(count, 0, -1)  # newest first, as feeds do
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{SPECS[slug].title}</title><link>http://127.0.0.1:{self.port}/</link>"
            f"<description>grows while the stress runs</description>{items}</channel></rss>"
        ).encode()


LINK = re.compile(r"http://127\.0\.0\.1:\d+/(\w+)/posts/(\d+)")


def received_links(receiver: Receiver) -> Counter[str]:
    """How many times each story link reached the receiver (digests included)."""
    counts: Counter[str] = Counter()
    for path, payload in list(receiver.received):
        assert path == "/notify"
        assert isinstance(payload, dict), payload
        counts.update(match.group(0) for match in LINK.finditer(str(payload.get("message"))))
    return counts


# --- processes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One finished storyfeed process."""

    argv: tuple[str, ...]
    code: int
    out: str
    err: str
    started: float
    elapsed: float

    @property
    def command(self) -> str:
        return self.argv[0]

    def __str__(self) -> str:
        return f"`storyfeed {' '.join(self.argv)}` -> {self.code}, stderr {self.err!r}"


class Launcher:
    """Starts storyfeed processes from any thread and keeps every finished one."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env
        self.runs: list[Run] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count()
        self._live: set[Proc] = set()

    def run(self, *argv: str) -> Run:
        with self._lock:
            folder = self.folder / f"{next(self._numbers):05d}"
        folder.mkdir(parents=True)
        proc = Proc([str(EXE), *argv], self.env, folder)
        with self._lock:
            self._live.add(proc)
        try:
            proc.popen.wait(PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()  # exit -9: no exit code allows it
        finally:
            with self._lock:
                self._live.discard(proc)
        proc.poll()
        run = Run(tuple(argv), proc.code, proc.out, proc.err, proc.started, proc.elapsed)
        with self._lock:
            self.runs.append(run)
        return run

    def kill_all(self) -> None:
        with self._lock:
            live = list(self._live)
        for proc in live:
            proc.kill()


def environment(home: Path) -> dict[str, str]:
    """The subprocesses' environment: their own STORYFEED_HOME, no proxy, no browser."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.pop("STORYFEED_DEBUG", None)
    env.update(STORYFEED_HOME=str(home), BROWSER="false")
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1"
    return env


# --- what the test knows and did ----------------------------------------------------


@dataclass
class Ledger:
    """Story ids learnt from listings, and every read mark the test issued."""

    baseline_ids: set[int] = field(default_factory=set)
    links: dict[int, str] = field(default_factory=dict)  # id -> link
    ids: dict[str, int] = field(default_factory=dict)  # link -> id
    expected_read: dict[int, bool] = field(default_factory=dict)  # the last mark per id
    marks: Counter[str] = field(default_factory=Counter)  # issued marks by kind
    ever_read: set[int] = field(default_factory=set)  # ids the test made read at least once
    uncertain: set[int] = field(default_factory=set)  # a mark whose command failed
    history: dict[int, list[str]] = field(default_factory=dict)  # what was done to each id
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def learn(self, story_id: int, link: str, where: str) -> None:
        """A listing showed ``story_id`` with ``link``: ids must be stable, links unique."""
        with self.lock:
            known_link = self.links.setdefault(story_id, link)
            known_id = self.ids.setdefault(link, story_id)
            if known_link != link or known_id != story_id:
                self.problems.append(
                    f"{where}: story {story_id} has link {link}; before: story {known_id} "
                    f"had it and story {story_id} had {known_link}"
                )

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)

    def marked(self, story_ids: list[int], read: bool, run: Run) -> None:
        """``run`` (open, read or mark) made ``story_ids`` read or unread, if it succeeded."""
        how = run.command if run.command != "mark" else f"mark {run.argv[1]}"
        ok = run.code == 0
        with self.lock:
            self.marks[how] += 1
            for story_id in story_ids:
                self.history.setdefault(story_id, []).append(
                    f"{how} at {run.started:.2f}-{run.started + run.elapsed:.2f}: exit {run.code}"
                )
                if not ok:
                    self.uncertain.add(story_id)
                    continue
                self.expected_read[story_id] = read
                if read:
                    self.ever_read.add(story_id)

    def owned(self, parity: int, delivered: set[str], racy_prefixes: tuple[str, ...]) -> list[int]:
        """Ids a worker may mark: its parity, and baseline, delivered, or in a racy feed."""
        with self.lock:
            return sorted(
                story_id
                for story_id, link in self.links.items()
                if story_id % 2 == parity
                and (
                    story_id in self.baseline_ids
                    or link in delivered
                    or link.startswith(racy_prefixes)
                )
            )

    def is_read(self, story_id: int) -> bool:
        with self.lock:
            return self.expected_read.get(story_id, False)


def parse_listing(run: Run, ledger: Ledger) -> list[dict[str, object]]:
    """The stories a `list` printed (JSON or tab-separated), each learnt by the ledger."""
    if "--json" in run.argv:
        stories = json.loads(run.out)
        assert isinstance(stories, list)
    else:
        stories = []
        for line in run.out.splitlines():
            fields = line.split("\t")
            if len(fields) != 6:
                ledger.problem(f"{run}: not a story line: {line!r}")
                continue
            stories.append({"id": int(fields[0]), "status": fields[1], "link": fields[5]})
    for story in stories:
        ledger.learn(int(story["id"]), str(story["link"]), f"`storyfeed {' '.join(run.argv)}`")
    return stories


# --- the stress run -----------------------------------------------------------------


@dataclass
class Stress:
    """Everything one stress run produced, for the tests to judge."""

    feeds: GrowingFeeds
    receiver: Receiver
    home: Path
    ledger: Ledger
    runs: list[Run]
    final: dict[str, Run]  # the runs after the workers stopped
    final_stories: list[dict[str, object]]
    published: dict[str, int]
    worker_errors: list[str]
    due_steps: int
    seed: int


def _loop(
    name: str, deadline: float, stop: threading.Event, errors: list[str], body: Callable[[], None]
) -> threading.Thread:
    """A thread that calls ``body`` until the deadline; its exceptions become ``errors``."""

    def loop() -> None:
        try:
            while time.monotonic() < deadline and not stop.is_set():
                body()
        except BaseException as exc:
            errors.append(f"{name}: {exc!r}")
            stop.set()

    return threading.Thread(target=loop, name=name)


def _every(
    name: str, seconds: float, stop: threading.Event, errors: list[str], body: Callable[[], None]
) -> threading.Thread:
    """A thread that calls ``body`` every ``seconds`` until ``stop``."""

    def loop() -> None:
        try:
            while not stop.wait(seconds):
                body()
        except BaseException as exc:
            errors.append(f"{name}: {exc!r}")

    return threading.Thread(target=loop, name=name)


@pytest.fixture(scope="module")
def stress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stress]:
    """One stress run for the whole module (about 40 s), in its own STORYFEED_HOME."""
    seed = time.time_ns() % 2**32
    rng = random.Random(seed)
    root = tmp_path_factory.mktemp("stress")
    home = root / "home"
    home.mkdir()
    feeds, receiver = GrowingFeeds(), Receiver()
    launcher = Launcher(root / "procs", environment(home))
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        config = home / "config.toml"
        config.write_text(
            'default_feed = ""\nrefresh_interval = "1m"\n\n[notify]\n'
            f'urls = ["{receiver.url}"]\ndigest_after = 10000\n'
        )
        config.chmod(0o600)  # it lists a notification URL
        yield _stress(feeds, receiver, home, launcher, stop, threads, rng, seed)
    finally:
        stop.set()
        launcher.kill_all()
        for thread in threads:
            thread.join(PROCESS_TIMEOUT + 10)
        feeds.close()
        receiver.close()
    assert feeds.errors == [] and receiver.errors == []


def _stress(
    feeds: GrowingFeeds,
    receiver: Receiver,
    home: Path,
    launcher: Launcher,
    stop: threading.Event,
    threads: list[threading.Thread],
    rng: random.Random,
    seed: int,
) -> Stress:
    """Subscribe, take the baseline, run the workers for STRESS_SECONDS, then one last
    refresh and notify (stories published at the very end), and a final listing."""
    ledger = Ledger()
    for spec in FEEDS:
        added = launcher.run("add", feeds.url(spec.slug))
        assert added.code == 0, str(added)
    baseline = launcher.run("notify")
    assert (baseline.code, baseline.out, baseline.err) == (0, "", ""), str(baseline)
    assert receiver.received == []
    first = launcher.run("list", "--offline", "--json", "--limit", "1000")
    assert first.code == 0, str(first)
    ledger.baseline_ids = {int(str(s["id"])) for s in parse_listing(first, ledger)}
    assert len(ledger.baseline_ids) == BASELINE_STORIES * len(FEEDS)
    racy = tuple(
        feeds.link(spec.slug, 0).removesuffix("0") for spec in FEEDS if spec.racy
    )  # link prefixes of the racy feeds
    worker_errors: list[str] = []
    due_steps = 0
    deadline = time.monotonic() + STRESS_SECONDS
    lock_rng = threading.Lock()

    def pick(parity: int, most: int) -> list[int]:
        """Some of a worker's ids; half the time, racy ones not sent yet (if any), so
        that marks race the notify that would send them."""
        delivered = set(received_links(receiver))
        pool = ledger.owned(parity, delivered, racy)
        unsent = [
            i for i in pool if i not in ledger.baseline_ids and ledger.links[i] not in delivered
        ]
        with lock_rng:
            if unsent and rng.random() < 0.5:
                pool = unsent
            return rng.sample(pool, min(len(pool), rng.randint(1, most)))

    listings = itertools.cycle(
        [
            ("list", "--limit", "1000"),
            ("list", "--json", "--limit", "1000"),
            ("list", "--offline", "--json", "--limit", "1000"),
            ("list",),
        ]
    )

    def lister() -> None:
        run = launcher.run(*next(listings))
        if run.code == 0:
            try:
                parse_listing(run, ledger)
            except (ValueError, KeyError, AssertionError) as exc:
                ledger.problem(f"{run}: unreadable listing ({exc!r}): {run.out[:200]!r}")

    def opener() -> None:
        """Odd ids: open --print or read the unread ones, mark unread the read ones."""
        chosen = pick(1, 1)
        if not chosen:
            time.sleep(0.1)
            return
        (story_id,) = chosen
        link = ledger.links[story_id]
        if ledger.is_read(story_id):
            run = launcher.run("mark", "unread", str(story_id))
            ledger.marked([story_id], False, run)
            return
        with lock_rng:
            verb = rng.choice(["open", "read"])
        if verb == "open":
            run = launcher.run("open", "--print", str(story_id))
            if run.code == 0 and run.out != link + "\n":
                ledger.problem(f"{run}: printed {run.out!r}, story {story_id} is {link}")
        else:
            run = launcher.run("read", str(story_id))
            if run.code == 0 and f"Link: {link}\n" not in run.out:
                ledger.problem(f"{run}: story {story_id} ({link}) not shown: {run.out[:200]!r}")
        ledger.marked([story_id], True, run)

    def marker() -> None:
        """Even ids: `mark read|unread` of one to three of them at once."""
        chosen = pick(0, 3)
        if not chosen:
            time.sleep(0.1)
            return
        with lock_rng:
            read = rng.random() < 0.5
        action = "read" if read else "unread"
        run = launcher.run("mark", action, *map(str, chosen))
        ledger.marked(chosen, read, run)

    def notifier() -> None:
        """`notify`, then a pause of up to NOTIFY_PAUSE s, as a fast cron would (a
        notify always running would leave the marks no stories to race it for)."""
        launcher.run("notify")
        with lock_rng:
            pause = rng.uniform(0, NOTIFY_PAUSE)
        stop.wait(pause)

    def make_due() -> None:
        """Time passes: every feed is due again (the shortest interval is a minute)."""
        nonlocal due_steps
        with contextlib.closing(sqlite3.connect(home / "storyfeed.db", timeout=10)) as db, db:
            db.execute("UPDATE feeds SET next_fetch_at = NULL")
        due_steps += 1

    workers = [
        _loop("list", deadline, stop, worker_errors, lister),
        _loop("open", deadline, stop, worker_errors, opener),
        _loop("mark", deadline, stop, worker_errors, marker),
        _loop("refresh", deadline, stop, worker_errors, lambda: launcher.run("refresh", "--force")),
        _loop("notify-1", deadline, stop, worker_errors, notifier),
        _loop("notify-2", deadline, stop, worker_errors, notifier),
    ]
    timers = [
        _every("publish", PUBLISH_EVERY, stop, worker_errors, feeds.publish),
        _every("due", DUE_EVERY, stop, worker_errors, make_due),
    ]
    threads.extend(workers + timers)
    for thread in threads:
        thread.start()
    for thread in workers:
        thread.join(STRESS_SECONDS + PROCESS_TIMEOUT + 10)
        if thread.is_alive():
            worker_errors.append(f"{thread.name}: still running long after the deadline")
    stop.set()
    for thread in timers:
        thread.join(10)
    stress_runs = list(launcher.runs)

    # Quiet now: fetch whatever is left, deliver it, and check that nothing more comes.
    final = {"refresh": launcher.run("refresh", "--force"), "notify": launcher.run("notify")}
    make_due()
    final["notify again"] = launcher.run("notify")
    final["list"] = launcher.run("list", "--offline", "--json", "--limit", "100000")
    assert final["list"].code == 0, str(final["list"])
    final_stories = parse_listing(final["list"], ledger)
    return Stress(
        feeds=feeds,
        receiver=receiver,
        home=home,
        ledger=ledger,
        runs=[run for run in stress_runs if run.started >= baseline.started],
        final=final,
        final_stories=final_stories,
        published=feeds.published(),
        worker_errors=worker_errors,
        due_steps=due_steps,
        seed=seed,
    )


# --- helpers for the checks -----------------------------------------------------------


def _db(home: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(f"file:{home / 'storyfeed.db'}?mode=ro", uri=True))


def _expected_links(stress: Stress, *, racy: bool) -> set[str]:
    """Links of the stories published after the baseline, in the racy feeds or the others."""
    return {
        stress.feeds.link(slug, n)
        for slug, count in stress.published.items()
        if SPECS[slug].racy == racy
        for n in range(BASELINE_STORIES + 1, count + 1)
    }


def _summary(stress: Stress) -> str:
    """The figures worth quoting, printed by the last test (`pytest -s` shows them)."""
    runs = stress.runs
    by_command = Counter(run.command for run in runs)
    codes = Counter((run.command, run.code) for run in runs)
    slowest = {
        command: max(run.elapsed for run in runs if run.command == command)
        for command in by_command
    }
    counts = received_links(stress.receiver)
    racy = _expected_links(stress, racy=True)
    warnings = Counter(line for run in runs for line in run.err.splitlines())
    lines = [
        f"seed {stress.seed}; {len(runs)} processes in {STRESS_SECONDS:g} s; "
        f"{stress.due_steps} due steps; published {stress.published}",
        f"processes per command: {dict(by_command)}",
        f"exit codes: {dict(sorted(codes.items()))}",
        "max latency (s): " + ", ".join(f"{c} {t:.2f}" for c, t in sorted(slowest.items())),
        f"marks issued: {dict(stress.ledger.marks)}; ids marked: "
        f"{len(stress.ledger.expected_read)}",
        f"POSTs: {len(stress.receiver.received)}; stories delivered: {len(counts)}; "
        f"duplicates: {sum(1 for n in counts.values() if n > 1)}; racy stories read before "
        f"delivery: {len(racy - set(counts))} of {len(racy)}",
        f"feed answers: {dict(sorted(stress.feeds.statuses.items()))}; "
        f"conditional requests: {dict(stress.feeds.conditional)}",
        f"stderr lines: {dict(warnings)}",
    ]
    return "\n".join(lines)


# --- the checks ------------------------------------------------------------------------


def test_the_stress_ran_every_command_many_times(stress: Stress) -> None:
    """The workers ran throughout (no helper thread died) and every command ran often,
    with refresh and notify contending for the lock; conditional GETs were sent."""
    print("\n" + _summary(stress))
    assert stress.worker_errors == []
    ran = Counter(run.command for run in stress.runs)
    assert all(ran[command] >= 2 for command in ALLOWED_EXITS), ran
    assert len(stress.runs) >= 50, ran
    # Two notify loops, a refresh loop and refreshing listings meet at the lock.
    assert any(run.code == EXIT_BUSY for run in stress.runs), ran
    assert sum(stress.published.values()) > BASELINE_STORIES * len(FEEDS) + 10
    assert stress.feeds.conditional["alpha"] > 0, "no If-None-Match was ever sent"
    assert stress.feeds.conditional["beta"] > 0, "no If-Modified-Since was ever sent"
    assert stress.feeds.conditional["gamma"] == 0


def test_no_command_reports_a_locked_database_or_crashes(stress: Stress) -> None:
    """Nothing reaches stderr but the two documented contention warnings of `list`:
    no "database is locked", no traceback, no internal error."""
    runs = stress.runs + list(stress.final.values())
    forbidden = [str(run) for run in runs if FORBIDDEN.search(run.err)]
    assert forbidden == []
    unexpected = [
        str(run)
        for run in runs
        for line in run.err.splitlines()
        if line not in ALLOWED_STDERR.get(run.command, set())
    ]
    assert unexpected == []


def test_exit_codes_are_only_the_documented_ones(stress: Stress) -> None:
    """0 everywhere, and 75 only for a refresh or notify that found the lock taken;
    nothing was killed for running past the timeout."""
    wrong = [str(run) for run in stress.runs if run.code not in ALLOWED_EXITS[run.command]]
    assert wrong == []


def test_commands_print_what_they_should(stress: Stress) -> None:
    """Listings parse and keep every story's id; `open --print` printed the story's link,
    `read` showed it; `mark` and `notify` (to a json:// channel) print nothing;
    `refresh` only reports new stories, never "updated" ones (the items never change)."""
    assert stress.ledger.problems == []
    for run in stress.runs:
        if run.code != 0:
            continue
        if run.command in {"mark", "notify"}:
            assert run.out == "", str(run)
        elif run.command == "refresh":
            assert all(REFRESH_LINE.match(line) for line in run.out.splitlines()), run.out


def test_every_published_story_is_stored_once_with_its_id(stress: Stress) -> None:
    """Every story the server published is in the cache exactly once (by link and by
    guid), with the id the listings showed during the stress, ids growing with the
    stories' dates within each feed; the database is intact."""
    links = [str(story["link"]) for story in stress.final_stories]
    expected = {
        stress.feeds.link(slug, n)
        for slug, count in stress.published.items()
        for n in range(1, count + 1)
    }
    assert sorted(links) == sorted(expected)
    for story in stress.final_stories:
        assert stress.ledger.ids[str(story["link"])] == story["id"]
    for slug, count in stress.published.items():  # newer stories, higher ids
        ids = [stress.ledger.ids[stress.feeds.link(slug, n)] for n in range(1, count + 1)]
        assert ids == sorted(ids), (slug, ids)
    with _db(stress.home) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        keys = db.execute("SELECT key FROM stories ORDER BY key").fetchall()
    assert [key for (key,) in keys] == sorted(
        f"{slug}-{n}" for slug, count in stress.published.items() for n in range(1, count + 1)
    )


def test_no_read_mark_is_lost(stress: Stress) -> None:
    """The final read state of every story the test marked, opened or read is the last
    mark it issued for it (each id has one owner thread, so "last" is well defined);
    every other story is unread."""
    ledger = stress.ledger
    assert ledger.uncertain == set()
    assert len(ledger.expected_read) >= 10, "too few stories were marked to prove anything"
    state = {int(str(story["id"])): bool(story["read"]) for story in stress.final_stories}
    wrong = {
        story_id: (state.get(story_id), expected, ledger.history[story_id])
        for story_id, expected in ledger.expected_read.items()
        if state.get(story_id) != expected
    }
    assert wrong == {}, "story id: (final read state, last mark issued, marks issued)"
    untouched = {i for i, read in state.items() if read and i not in ledger.expected_read}
    assert untouched == set(), "read, yet the test never marked them"


def test_every_new_story_is_delivered_exactly_once(stress: Stress) -> None:
    """Each story of the strict feeds that appeared after the baseline reached the
    receiver exactly once; baseline stories never; the final notify runs were silent."""
    for name in ("refresh", "notify", "notify again"):
        run = stress.final[name]
        assert run.code == 0 and run.err == "", str(run)
    assert stress.final["notify"].out == stress.final["notify again"].out == ""
    counts = received_links(stress.receiver)
    strict = _expected_links(stress, racy=False)
    assert {link: counts[link] for link in strict} == dict.fromkeys(strict, 1)
    duplicates = {link: n for link, n in counts.items() if n > 1}
    assert duplicates == {}
    baseline = {stress.ledger.links[i] for i in stress.ledger.baseline_ids}
    assert set(counts) & baseline == set()
    assert set(counts) <= strict | _expected_links(stress, racy=True)


def test_a_story_read_before_its_delivery_is_sent_at_most_once(stress: Stress) -> None:
    """In the racy feed each new story is sent at most once, and one that was never sent
    is one the test had read (opened, read or marked read)."""
    counts = received_links(stress.receiver)
    racy = _expected_links(stress, racy=True)
    assert all(counts[link] <= 1 for link in racy)
    skipped = {stress.ledger.ids[link] for link in racy if counts[link] == 0}
    assert skipped <= stress.ledger.ever_read


def test_delivery_rows_match_what_the_receiver_accepted(stress: Stress) -> None:
    """The channel's delivery rows are exactly the stories that came after the baseline:
    one for every story sent, one for every story settled unsent because it was read."""
    with _db(stress.home) as db:
        channels = db.execute("SELECT id FROM channels").fetchall()
        rows = db.execute("SELECT story_id FROM deliveries").fetchall()
    assert len(channels) == 1
    delivered = sorted(story_id for (story_id,) in rows)
    after_baseline = _expected_links(stress, racy=False) | _expected_links(stress, racy=True)
    assert delivered == sorted(stress.ledger.ids[link] for link in after_baseline)
    sent = {stress.ledger.ids[link] for link in received_links(stress.receiver)}
    assert sent <= set(delivered)


# --- read, then unread, before notify ----------------------------------------------------


def test_a_story_read_then_marked_unread_before_notify_is_not_sent(tmp_path: Path) -> None:
    """README, Notifications: "A story you read (open, read, mark read) before it was
    sent is not sent, not even after mark unread." Here the read and the unread both
    happen between two notify runs, as they do when a user opens a story and keeps it
    for later; the next notify must not send it."""
    home = tmp_path / "defect-home"  # conftest's autouse fixture owns tmp_path / "home"
    home.mkdir()
    feeds, receiver = GrowingFeeds(), Receiver()
    launcher = Launcher(tmp_path / "procs", environment(home))
    try:
        config = home / "config.toml"
        config.write_text(f'default_feed = ""\n\n[notify]\nurls = ["{receiver.url}"]\n')
        config.chmod(0o600)
        for argv in (("add", feeds.url("alpha")), ("notify",)):
            done = launcher.run(*argv)
            assert (done.code, done.err) == (0, ""), str(done)
        slug, number = feeds.publish()
        assert slug == "alpha"
        assert launcher.run("refresh", "--force").code == 0
        listing = launcher.run("list", "--offline", "--json")
        ids = {story["link"]: story["id"] for story in json.loads(listing.out)}
        story_id = str(ids[feeds.link(slug, number)])
        for argv in (("open", "--print", story_id), ("mark", "unread", story_id), ("notify",)):
            done = launcher.run(*argv)
            assert (done.code, done.err) == (0, ""), str(done)
        assert received_links(receiver) == Counter()
    finally:
        launcher.kill_all()
        feeds.close()
        receiver.close()
