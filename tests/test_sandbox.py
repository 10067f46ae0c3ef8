"""The parse sandbox: documents are parsed in worker processes with a time and a
memory budget, and hostile XML reads nothing outside the document.

Unit tests drive :class:`storyfeed.sandbox.Pool` directly; the end-to-end tests
serve documents on loopback and run ``storyfeed refresh``.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from conftest import DATA, NOW, Result
from storyfeed import parse, sandbox
from storyfeed.errors import NotAFeedError

BLOG = (DATA / "blog.rss").read_bytes()
FAST = sandbox.Budget(seconds=20.0)


def rss(items: int, *, words: int = 150, prolog: str = "", title: str = "Big") -> bytes:
    """An RSS 2.0 document of ``items`` stories with HTML descriptions."""
    body = "".join(
        f"<item><title>Story {i}</title><link>https://example.org/{i}</link><guid>g{i}</guid>"
        f"<description>&lt;p&gt;{'word ' * words}&lt;/p&gt;</description></item>"
        for i in range(items)
    )
    return (
        f'<?xml version="1.0"?>{prolog}<rss version="2.0"><channel><title>{title}</title>'
        f"{body}</channel></rss>"
    ).encode()


SLOW = rss(20_000)  # about 4 s of feedparser on this kind of machine; ~19 MB
HUGE = rss(10_000)  # needs about 100 MB of memory to parse


def timed(action: Callable[[], object]) -> tuple[object, float]:
    started = time.monotonic()
    value = action()
    return value, time.monotonic() - started


# --- the pool ------------------------------------------------------------------------------


def test_a_worker_parses_exactly_like_the_parser_in_process() -> None:
    pool = sandbox.Pool(FAST, workers=1)
    headers = {"content-type": "application/rss+xml"}
    url = "https://example.org/feed.xml"
    assert pool.parse(BLOG, headers, url, NOW) == parse.parse_feed(BLOG, headers, url, NOW)


def test_a_warmed_pool_has_a_worker_running_before_its_first_document() -> None:
    before = set(sandbox._live)
    pool = sandbox.Pool(FAST, workers=2)
    pool.warm()
    pool.warm()  # once is enough
    deadline = time.monotonic() + 20
    while not [w for w in set(sandbox._live) - before if w.process is not None]:
        assert time.monotonic() < deadline, "no worker process was started"
        time.sleep(0.01)
    assert len(pool._threads) == 1
    headers = {"content-type": "application/rss+xml"}
    url = "https://example.org/feed.xml"
    assert pool.parse(BLOG, headers, url, NOW) == parse.parse_feed(BLOG, headers, url, NOW)


def test_not_a_feed_comes_back_as_not_a_feed() -> None:
    pool = sandbox.Pool(FAST, workers=1)
    with pytest.raises(NotAFeedError, match="HTML page"):
        pool.parse(b"<!doctype html><html><body>hi</body></html>", {}, "https://e.org/", NOW)


def test_a_parse_over_its_time_is_stopped_and_the_next_document_is_parsed() -> None:
    pool = sandbox.Pool(sandbox.Budget(seconds=0.5), workers=1)
    pool.submit(1, SLOW, {}, "https://example.org/slow", NOW)
    outcome, elapsed = timed(pool.next)
    assert isinstance(outcome, sandbox.Parsed)
    assert (outcome.key, outcome.feed) == (1, None)
    assert outcome.error == "parsing took longer than 0.5 s and was stopped"
    assert elapsed < 3.0  # 0.5 s, plus a worker start on a busy machine
    assert pool.parse(BLOG, {}, "https://example.org/feed", NOW).stories


def test_a_parse_over_its_memory_is_stopped_and_the_next_document_is_parsed() -> None:
    pool = sandbox.Pool(sandbox.Budget(seconds=60, memory=64 * 1024 * 1024), workers=1)
    pool.submit(7, HUGE, {}, "https://example.org/huge", NOW)
    outcome = pool.next()
    assert (outcome.key, outcome.feed) == (7, None)
    assert "memory" in outcome.error, outcome.error
    assert pool.parse(BLOG, {}, "https://example.org/feed", NOW).stories


def test_the_same_document_fits_a_normal_budget() -> None:
    """The memory test above proves the budget, not a document that cannot be parsed."""
    parsed = sandbox.Pool(sandbox.Budget(seconds=120), workers=1).parse(
        HUGE, {}, "https://example.org/huge", NOW
    )
    assert len(parsed.stories) == 10_000


def test_a_worker_killed_from_outside_is_an_error_for_its_document_only() -> None:
    pool = sandbox.Pool(sandbox.Budget(seconds=60), workers=1)
    pool.parse(BLOG, {}, "https://example.org/feed", NOW)  # the worker is running now
    (thread,) = pool._threads
    pids = _worker_processes()
    assert pids, "no worker process found"
    pool.submit(3, SLOW, {}, "https://example.org/slow", NOW)
    time.sleep(0.3)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    outcome = pool.next()
    assert (outcome.key, outcome.feed) == (3, None)
    assert outcome.error == "the parser was killed (out of memory?)"
    assert pool.parse(BLOG, {}, "https://example.org/feed", NOW).stories
    assert thread.is_alive()


def _worker_processes() -> list[int]:
    """This process's children running storyfeed.sandbox."""
    return _children_running_the_sandbox(os.getpid())


def test_an_orphaned_worker_stops_by_itself() -> None:
    """A worker whose parent was killed mid-parse ends when its time is up (SIGALRM),
    even though nobody reads its answer."""
    worker = sandbox._Worker(sandbox.Budget(seconds=1.0))
    process = worker._started()
    assert process.stdin is not None
    meta = pickle.dumps(({}, "https://example.org/slow", NOW))
    sandbox._write_frame(process.stdin, meta, SLOW)
    code = process.wait(timeout=15)  # the alarm is the budget plus 2 s
    assert code == -signal.SIGALRM
    worker.stop()


def test_a_result_holding_anything_but_parse_results_is_refused() -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned",))

    with pytest.raises(pickle.UnpicklingError, match=r"(posix|os)\.system"):
        sandbox._outcome(1, pickle.dumps(("ok", Evil())))
    good = parse.parse_feed(BLOG, {}, "https://example.org/feed", NOW)
    outcome, spent = sandbox._outcome(1, pickle.dumps(("ok", good)))
    assert (outcome.feed, spent) == (good, False)


def test_a_reply_of_an_unknown_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown shape"):
        sandbox._outcome(1, pickle.dumps(("ok", "not a feed")))
    assert sandbox._ResultUnpickler(io.BytesIO(pickle.dumps(("ok",)))).load() == ("ok",)


# --- end to end --------------------------------------------------------------------------


def serve(httpserver: HTTPServer, path: str, body: bytes) -> str:
    httpserver.expect_request(path).respond_with_data(body, content_type="application/rss+xml")
    return httpserver.url_for(path)


def subscribe(home: Path, *urls: str) -> None:
    """Rows in the feeds table (``add`` would parse before the budget is set)."""
    with sqlite3.connect(home / "storyfeed.db") as db:
        for url in urls:
            db.execute("INSERT INTO feeds (url, added_at) VALUES (?, 0)", (url,))


def feed_state(home: Path) -> dict[str, tuple[str, int]]:
    """url -> (last error, "" for none; stories stored)"""
    with sqlite3.connect(home / "storyfeed.db") as db:
        rows = db.execute(
            "SELECT f.url, f.last_error, (SELECT count(*) FROM stories s WHERE s.feed_id = f.id)"
            " FROM feeds f"
        ).fetchall()
    return {url: (error, count) for url, error, count in rows}


def test_refresh_stops_a_slow_parse_and_stores_the_other_feeds(
    home: Path, httpserver: HTTPServer, run: Callable[..., Result]
) -> None:
    (home / "config.toml").write_text('default_feed = ""\nparse_timeout = 0.5\n')
    assert run("feeds").code == 0  # creates the database
    slow = serve(httpserver, "/slow.xml", HUGE)  # 2 s to parse, under the 10 MiB cap
    good = serve(httpserver, "/good.xml", BLOG)
    subscribe(home, slow, good)
    result, elapsed = timed(lambda: run("refresh"))
    assert isinstance(result, Result)
    assert result.code == 1
    assert f"{slow}: parsing took longer than 0.5 s and was stopped" in result.out
    assert "Traceback" not in result.err
    state = feed_state(home)
    assert state[slow] == ("parsing took longer than 0.5 s and was stopped", 0)
    assert state[good][0] == "" and state[good][1] > 0
    assert elapsed < 15


SECRET = "storyfeed-secret-7d1c"


def attacks(secret_file: Path, entity_url: str, dtd_url: str) -> dict[str, bytes]:
    item = "<item><title>{}</title><guid>{}</guid><link>https://example.org/a</link></item>"

    def feed(prolog: str, title: str = "&x;") -> bytes:
        return (
            f'<?xml version="1.0"?>{prolog}<rss version="2.0"><channel><title>Attack</title>'
            f"{item.format(title, 'a1')}</channel></rss>"
        ).encode()

    laughs = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)
    )
    return {
        "file-entity": feed(f'<!DOCTYPE rss [<!ENTITY x SYSTEM "file://{secret_file}">]>'),
        "http-entity": feed(f'<!DOCTYPE rss [<!ENTITY x SYSTEM "{entity_url}">]>'),
        "parameter-entity": feed(
            f'<!DOCTYPE rss [<!ENTITY % p SYSTEM "file://{secret_file}"> %p;]>', "plain"
        ),
        "parameter-entity-http": feed(
            f'<!DOCTYPE rss [<!ENTITY % p SYSTEM "{entity_url}"> %p;]>', "plain"
        ),
        "external-dtd": feed(f'<!DOCTYPE rss SYSTEM "{dtd_url}">', "plain &x;"),
        "billion-laughs": feed(f"<!DOCTYPE rss [{laughs}]>", "&l9;"),
        "billion-laughs-broken": feed(f"<!DOCTYPE rss [{laughs}]>", "&l9; & <broken"),
        "quadratic": (
            '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "'
            + "A" * 200_000
            + '">]><rss version="2.0"><channel><title>Q</title><item><title>q</title>'
            + "<guid>q</guid><description>"
            + "&a;" * 100_000
            + "</description></item></channel></rss>"
        ).encode(),
    }


def test_hostile_xml_reads_and_requests_nothing_outside_the_document(
    home: Path, tmp_path: Path, httpserver: HTTPServer, run: Callable[..., Result]
) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET)
    httpserver.expect_request("/entity").respond_with_data(SECRET)
    httpserver.expect_request("/evil.dtd").respond_with_data(f'<!ENTITY x "{SECRET}">')
    documents = attacks(secret_file, httpserver.url_for("/entity"), httpserver.url_for("/evil.dtd"))
    assert run("feeds").code == 0
    urls = {name: serve(httpserver, f"/{name}.xml", body) for name, body in documents.items()}
    subscribe(home, *urls.values())

    result, elapsed = timed(lambda: run("refresh"))
    assert isinstance(result, Result)
    assert result.code in {0, 1}
    assert "Traceback" not in result.err
    assert elapsed < 30

    requested = {request.path for request, _ in httpserver.log}
    assert requested == {f"/{name}.xml" for name in documents}, "an entity or DTD was fetched"
    with sqlite3.connect(home / "storyfeed.db") as db:
        dump = "\n".join(db.iterdump())
        longest = db.execute(
            "SELECT max(length(title) + length(summary) + length(content)) FROM stories"
        ).fetchone()[0]
    assert SECRET not in dump
    assert "lollollol" not in dump, "an entity bomb was expanded"
    assert longest < 1_000_000
    state = feed_state(home)
    for name, url in urls.items():
        error, stories = state[url]
        assert "\n" not in error, name
        assert error or stories > 0, name


def _children_running_the_sandbox(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` and that run storyfeed.sandbox."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
            command = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        ppid = next(line for line in status.splitlines() if line.startswith("PPid:"))
        if int(ppid.split()[1]) == parent and b"storyfeed.sandbox" in command:
            found.append(int(entry.name))
    return found


def test_ctrl_c_while_parsing_stops_the_workers(home: Path, httpserver: HTTPServer) -> None:
    """Ctrl-C ends the run at once, and its workers with it: they do not go on
    parsing (for up to parse_timeout) for a process that is gone."""
    (home / "config.toml").write_text(
        'default_feed = ""\nparse_timeout = 600\nmax_body_bytes = 33554432\n'
    )
    env = {**os.environ, "STORYFEED_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "storyfeed", "feeds"], env=env, check=True)
    subscribe(home, *(serve(httpserver, f"/slow{n}.xml", SLOW) for n in range(2)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "storyfeed", "refresh"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    workers: list[int] = []
    while not workers and time.monotonic() < deadline:
        time.sleep(0.1)
        workers = _children_running_the_sandbox(proc.pid)
    assert workers, "no parse worker started"
    time.sleep(0.5)  # the worker is parsing now
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    deadline = time.monotonic() + 2  # a parse of SLOW takes 4 s or more
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    assert alive == [], "parse workers outlived the run"


def test_outcomes_left_by_a_run_cut_short_go_nowhere(
    home: Path, httpserver: HTTPServer, run: Callable[..., Result]
) -> None:
    """The pool is shared by the process: a refresh that failed half-way leaves parses
    behind, and the next refresh must not store them under its own feeds."""
    assert run("feeds").code == 0
    from storyfeed import core
    from storyfeed.config import Settings

    pool = core.parser_pool(Settings())
    for _ in range(3):  # as if an earlier run had submitted three jobs and died
        pool.submit(next(core._JOBS), BLOG, {}, "https://stale.example/feed", NOW)
    good = serve(httpserver, "/good.xml", rss(3, title="Fresh"))
    subscribe(home, good)
    assert run("refresh").code == 0
    with sqlite3.connect(home / "storyfeed.db") as db:
        links = {row[0] for row in db.execute("SELECT link FROM stories")}
    assert links == {f"https://example.org/{n}" for n in range(3)}
    while pool.pending:  # leave the shared pool as it was found
        pool.next()


# --- when a refresh starts a parser ----------------------------------------------------


@pytest.mark.parametrize(("validators", "started"), [(True, False), (False, True)])
def test_a_parser_is_started_ahead_only_when_a_body_is_likely(
    httpserver: HTTPServer, tmp_path: Path, validators: bool, started: bool
) -> None:
    """A run whose every feed can be asked "changed?" (the cron job's usual run, all
    304) starts no parser process; one with a feed that cannot starts one at once."""
    from storyfeed import core
    from storyfeed.config import Paths, Settings

    httpserver.expect_request("/feed").respond_with_data("", status=304)
    # A budget of its own gives this test a pool of its own (pools are per budget).
    settings = Settings(default_feed="", parse_timeout=41.0 + validators)
    app = core.App(Paths(config_dir=tmp_path, data_dir=tmp_path), settings)
    feed, _ = app.store.add_feed(httpserver.url_for("/feed"), now=NOW)
    if validators:
        feed = replace(feed, etag='"v1"')
    results = core.refresh(app, [feed])
    app.close()

    assert [r.outcome.value for r in results] == ["not_modified"]
    assert bool(core.parser_pool(settings)._threads) is started
