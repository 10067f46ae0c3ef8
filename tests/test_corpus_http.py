"""The whole feed corpus served over loopback HTTP, end to end through `storyfeed refresh`.

Every file of ``../shared/corpus`` (see its README.md) is served by a threaded HTTP
server on 127.0.0.1 with the headers its ``Header:`` comment lines name, as
feedparser's own test harness served them: ``Status:`` and ``Location:`` become the
status line and a redirect (the old harness's ``localhost:8097`` rewritten to this
server), ``compression/*.gz`` and ``*.z`` go out with ``Content-Encoding: gzip`` and
``deflate``, a request whose ``If-None-Match``/``If-Modified-Since`` matches gets a
``304`` without a body. Files outside ``feedparser/`` also carry an ETag of the server's
own, so that the second refresh takes both roads: ``304 Not Modified``, and ``200`` with
the very same body.

All the files are subscribed in one database; the installed ``storyfeed`` executable
refreshes them twice with ``--force``, then lists everything as a table (on a real
pseudo-terminal), as JSON and as tab-separated lines, and shows ``feeds``. The work is
done once per module (a few tens of seconds); each test checks one claim about it:

- every file ends as stories or as one clear line of error, none crashes;
- the headers of the corpus comments reach the parser (charset, base URL, redirects,
  compression), so this really is the HTTP path and not the bodies alone;
- re-ingesting adds no story and changes none, and ETags turn into 304s;
- nothing printed holds a control character, escape, bidi override or zero-width
  character that came from a feed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pty
import re
import select
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from rich.cells import cell_len

from conftest import CORPUS, Result
from storyfeed.store import Store
from test_notify_processes import EXE, Proc, Runner

if not CORPUS.is_dir():
    pytest.skip(
        f"feed corpus not found at {CORPUS} (set STORYFEED_CORPUS to its folder)",
        allow_module_level=True,
    )

SKIPPED_NAMES = {"SOURCE.md", "LICENSE", "README.md"}
OLD_HARNESS = "http://localhost:8097"  # where feedparser's harness served its files
RETURN_304 = "/-/return-304.xml"  # the harness's fixed "304 whatever you ask" path
COLUMNS = 200
CONFIG = (
    'default_feed = ""\n'
    "concurrency = 16\n"
    "per_host = 16\n"  # every file is on the one host 127.0.0.1
    "feed_deadline = 120\n"  # a busy 2-core machine must not turn into timeouts
    "read_timeout = 60\n"
    "connect_timeout = 30\n"
)
REFRESH_LIMIT = 600.0  # seconds a whole-corpus refresh may take before it counts as hung
COMMAND_LIMIT = 180.0  # seconds for a listing of everything
# What no error message may say: a crash dressed up as a feed's error.
CRASH_WORDS = ("Traceback", "unknown error", "unexpected error", "internal error")
# Feed text must leave none of these in any output: C0 (but newline), DEL, C1,
# bidi embeddings/overrides/isolates, and the zero-width characters that hide text.
# (ZWJ and ZWNJ are kept on purpose: emoji and several scripts need them.)
FORBIDDEN = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200b\u2060-\u2064\ufeff]"
)
FORBIDDEN_IN_TEXT = re.compile(  # multi-line text fields (a JSON summary) may keep tabs
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200b\u2060-\u2064\ufeff]"
)
STORY_COLUMNS = ("id", "feed_id", "key", "title", "link", "author", "summary", "content")
HEADER_LINE = re.compile(rb"^Header:[ \t]+([^:\r\n]+):[ \t]*(.*?)[ \t]*\r?$", re.MULTILINE)
CONTENT_TYPES = {
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".rdf": "application/rdf+xml",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
}


# --- the corpus as HTTP answers ---------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What the server sends for one corpus file (before conditional GET)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    etag: str = ""
    last_modified: str = ""


def corpus_files() -> list[str]:
    """Every data file of the corpus, as a path relative to it."""
    return sorted(
        path.relative_to(CORPUS).as_posix()
        for path in CORPUS.rglob("*")
        if path.is_file() and path.name not in SKIPPED_NAMES
    )


def answer_for(relative: str, body: bytes, base: str) -> Answer:
    """The status and headers the file's comment names (feedparser's harness rules)."""
    if relative.startswith("feedparser/compression/"):
        coding = "gzip" if relative.endswith("gz") else "deflate"
        headers = [("Content-Type", "application/xml"), ("Content-Encoding", coding)]
        return Answer(200, tuple(headers), body)
    named = [
        (name.decode("latin-1").strip(), value.decode("latin-1").strip())
        for name, value in HEADER_LINE.findall(body)
    ]
    status, headers = 200, []
    for name, value in named:
        if name.lower() == "status":
            status = int(value)
        elif name.lower() == "location":
            headers.append(("Location", rewrite_location(value, base)))
        else:
            headers.append((name, value))
    if not any(name.lower() == "content-type" for name, _ in headers):
        kind = CONTENT_TYPES.get(Path(relative).suffix)
        if kind:
            headers.append(("Content-Type", kind))
    etag = next((v for n, v in headers if n.lower() == "etag"), "")
    modified = next((v for n, v in headers if n.lower() == "last-modified"), "")
    if not relative.startswith("feedparser/") and not etag:
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        headers.append(("ETag", etag))
    return Answer(status, tuple(headers), body, etag, modified)


def rewrite_location(value: str, base: str) -> str:
    """The old harness's URLs point at this server: /tests/X is feedparser/X here."""
    if value.startswith(OLD_HARNESS + "/tests/"):
        return f"{base}/corpus/feedparser/{value[len(OLD_HARNESS + '/tests/') :]}"
    if value.startswith(OLD_HARNESS + "/"):
        return base + value[len(OLD_HARNESS) :]
    return value


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins the request threads

    def __init__(self, owner: CorpusServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            self.owner.errors.append(repr(error))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: one connection serves many feeds
    # Headers and body are two writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK cost ~40 ms per kept-alive response.
    disable_nagle_algorithm = True
    timeout = 30  # an idle kept-alive connection cannot hold close() up for long

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        owner.enter()
        try:
            status, headers, body = owner.respond(
                unquote(urlsplit(self.path).path),
                self.headers.get("If-None-Match", ""),
                self.headers.get("If-Modified-Since", ""),
            )
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)
        finally:
            owner.leave()


class CorpusServer:
    """Serves every corpus file at /corpus/<its relative path> on 127.0.0.1."""

    def __init__(self, files: Sequence[str]) -> None:
        self.errors: list[str] = []
        self.log: list[tuple[str, int]] = []  # (path, status) of every answer, in order
        self.active = 0
        self.most_active = 0
        self._lock = threading.Lock()
        self._server = _Server(self)
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.answers = {
            f"/corpus/{relative}": answer_for(relative, (CORPUS / relative).read_bytes(), self.base)
            for relative in files
        }
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()

    def url(self, relative: str) -> str:
        """Where the file is served."""
        return f"{self.base}/corpus/{relative}"

    def enter(self) -> None:
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)

    def leave(self) -> None:
        with self._lock:
            self.active -= 1

    def respond(
        self, path: str, if_none_match: str, if_modified_since: str
    ) -> tuple[int, tuple[tuple[str, str], ...], bytes]:
        answer = self.answers.get(path)
        if path == RETURN_304:
            status, headers, body = 304, (("Content-Type", "text/xml"),), b""
        elif answer is None:
            status, headers, body = 404, (("Content-Type", "text/plain"),), b"not in the corpus"
        elif (answer.etag and if_none_match == answer.etag) or (
            answer.last_modified and if_modified_since == answer.last_modified
        ):
            status, headers, body = 304, tuple(h for h in answer.headers if h[0] == "ETag"), b""
        else:
            status, headers, body = answer.status, answer.headers, answer.body
        with self._lock:
            self.log.append((path, status))
        return status, headers, body

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(30)
        assert not self._thread.is_alive()


# --- running storyfeed -------------------------------------------------------------------


@dataclass
class Outcome:
    """One feed's row after a refresh."""

    relative: str
    status: str
    fetched: bool
    succeeded: bool
    error: str
    error_count: int
    stories: int
    etag: str

    @property
    def kind(self) -> str:
        if not self.fetched or CRASH_WORDS_RE.search(self.error):
            return "crashed"
        if self.succeeded and not self.error and self.error_count == 0:
            return "stories" if self.stories else "no stories"
        if self.error and self.error_count > 0 and not self.succeeded:
            return "error"
        return "crashed"  # neither a success nor an error was recorded


CRASH_WORDS_RE = re.compile("|".join(re.escape(w) for w in CRASH_WORDS), re.IGNORECASE)


@dataclass
class Refresh:
    code: int
    out: str
    err: str
    seconds: float
    peak_rss_kib: int
    requests: list[tuple[str, int]]
    outcomes: dict[int, Outcome]
    stories: list[tuple[Any, ...]]


@dataclass
class Screen:
    """What a command printed on a terminal (a pty), or to a pipe."""

    code: int
    out: str
    err: str
    seconds: float


@dataclass
class Corpus:
    files: list[str]
    server: CorpusServer
    feed_ids: dict[str, int]
    first: Refresh
    second: Refresh
    screens: dict[str, Screen] = field(default_factory=dict)


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident size so far (VmHWM), 0 once it has gone."""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        status = Path(f"/proc/{pid}/status").read_text()
        return int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1])
    return 0


def refresh_all(runner: Runner, home: Path, server: CorpusServer, ids: dict[int, str]) -> Refresh:
    """`storyfeed refresh --force` over every feed, with what the server and database saw."""
    served_before = len(server.log)
    started = time.monotonic()
    proc: Proc = runner.start("refresh", "--force")
    peak = 0
    deadline = started + REFRESH_LIMIT
    while proc.poll() is None:
        peak = max(peak, peak_rss_kib(proc.popen.pid))
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"refresh still ran after {REFRESH_LIMIT} s; killed it")
        time.sleep(0.1)
    proc.wait()
    with contextlib.closing(sqlite3.connect(home / "storyfeed.db")) as db:
        rows = db.execute(
            "SELECT f.id, f.status, f.last_fetch_at, f.last_success_at, f.last_error, "
            "f.error_count, f.etag, (SELECT COUNT(*) FROM stories s WHERE s.feed_id = f.id) "
            "FROM feeds f ORDER BY f.id"
        ).fetchall()
        cursor = db.execute("SELECT * FROM stories ORDER BY id")  # every column, to compare
        columns = tuple(column[0] for column in cursor.description)
        assert columns[: len(STORY_COLUMNS)] == STORY_COLUMNS, columns
        stories = cursor.fetchall()
    outcomes = {
        feed_id: Outcome(
            relative=ids[feed_id],
            status=status,
            fetched=fetched is not None,
            succeeded=success is not None and success >= fetched,
            error=error,
            error_count=count,
            stories=n,
            etag=etag,
        )
        for feed_id, status, fetched, success, error, count, etag, n in rows
    }
    return Refresh(
        code=proc.code,
        out=proc.out,
        err=proc.err,
        seconds=time.monotonic() - started,
        peak_rss_kib=peak,
        requests=server.log[served_before:],
        outcomes=outcomes,
        stories=stories,
    )


def on_terminal(argv: Sequence[str], env: dict[str, str], folder: Path) -> Screen:
    """Run a command with its stdout on a pseudo-terminal COLUMNS wide (stderr to a file)."""
    started = time.monotonic()
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST  # no "\n" -> "\r\n": every byte is the program's own
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, COLUMNS, 0, 0))
    folder.mkdir(parents=True, exist_ok=True)
    err_path = folder / "stderr"
    with err_path.open("wb") as err:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=slave, stderr=err, env=env,
            start_new_session=True,
        )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + COMMAND_LIMIT
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{argv[1:]} still ran after {COMMAND_LIMIT} s; killed it")
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready and proc.poll() is not None:
                break  # ended, all read (a child that kept the terminal open is no reason to wait)
            if not ready:
                continue
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # EIO: the program closed its end of the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(COMMAND_LIMIT)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    output = b"".join(chunks).decode("utf-8")
    return Screen(code, output, err_path.read_text("utf-8"), time.monotonic() - started)


def piped(runner: Runner, *args: str) -> Screen:
    """Run a command with its stdout in a file (not a terminal)."""
    proc = runner.start(*args).wait(COMMAND_LIMIT)
    return Screen(proc.code, proc.out, proc.err, proc.elapsed)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    """Serve, subscribe, refresh twice, then render everything: done once for the module."""
    files = corpus_files()
    assert len(files) > 4000, f"the corpus looks incomplete: {len(files)} files"
    folder = tmp_path_factory.mktemp("corpus-http")
    home = folder / "home"
    home.mkdir()
    (home / "config.toml").write_text(CONFIG)
    Store.open(home / "storyfeed.db").close()  # the schema, as storyfeed makes it
    server = CorpusServer(files)
    runner = Runner(folder / "procs")
    runner.env["STORYFEED_HOME"] = str(home)
    try:
        with contextlib.closing(sqlite3.connect(home / "storyfeed.db")) as db, db:
            db.executemany(
                "INSERT INTO feeds (url, added_at) VALUES (?, 0)",
                [(server.url(relative),) for relative in files],
            )
        with contextlib.closing(sqlite3.connect(home / "storyfeed.db")) as db:
            by_url = dict(db.execute("SELECT url, id FROM feeds").fetchall())
        feed_ids = {relative: by_url[server.url(relative)] for relative in files}
        ids = {feed_id: relative for relative, feed_id in feed_ids.items()}

        first = refresh_all(runner, home, server, ids)
        second = refresh_all(runner, home, server, ids)
        result = Corpus(files, server, feed_ids, first, second)

        total = str(len(first.stories) + 10)
        plain = {**runner.env, "TERM": "dumb", "COLUMNS": str(COLUMNS), "LINES": "50"}
        colour = {**plain, "TERM": "xterm-256color"}
        listing = [str(EXE), "list", "--offline", "--limit", total]
        result.screens["table"] = on_terminal(listing, plain, folder / "table")
        result.screens["table-colour"] = on_terminal(listing, colour, folder / "colour")
        result.screens["json"] = piped(runner, "list", "--offline", "--limit", total, "--json")
        result.screens["lines"] = piped(runner, "list", "--offline", "--limit", total)
        result.screens["feeds"] = on_terminal([str(EXE), "feeds"], plain, folder / "feeds")
        result.screens["feeds-json"] = piped(runner, "feeds", "--json")
        yield result
    finally:
        runner.cleanup()
        server.close()
    assert server.errors == []


# --- checks ---------------------------------------------------------------------------


def forbidden(text: str, pattern: re.Pattern[str] = FORBIDDEN) -> list[str]:
    """The forbidden characters in ``text``, each with a little context."""
    return [
        f"U+{ord(m.group()):04X} in {text[max(0, m.start() - 30) : m.end() + 30]!r}"
        for m in pattern.finditer(text)
    ]


def error_group(message: str) -> str:
    """An error's kind: its first words, without the details in parentheses."""
    return " ".join(message.split("(", 1)[0].split()[:12])


def summary(corpus: Corpus) -> str:
    """The figures of the run, for the log."""
    kinds = Counter(outcome.kind for outcome in corpus.first.outcomes.values())
    groups = Counter(
        error_group(o.error) for o in corpus.first.outcomes.values() if o.kind == "error"
    )
    second_statuses = Counter(status for _, status in corpus.second.requests)
    lines = [
        f"corpus over HTTP: {len(corpus.files)} files; first refresh "
        f"{corpus.first.seconds:.1f} s (exit {corpus.first.code}, peak RSS "
        f"{corpus.first.peak_rss_kib // 1024} MiB), second {corpus.second.seconds:.1f} s "
        f"(exit {corpus.second.code}); {len(corpus.first.stories)} stories",
        f"  ingested with stories {kinds['stories']}, with no stories {kinds['no stories']}, "
        f"errored {kinds['error']}, crashed {kinds['crashed']}",
        f"  requests: first {len(corpus.first.requests)}, second {len(corpus.second.requests)} "
        f"{dict(sorted(second_statuses.items()))}; most at once {corpus.server.most_active}",
        "  listings: "
        + ", ".join(f"{name} {screen.seconds:.1f} s" for name, screen in corpus.screens.items()),
        "  errors by kind:",
        *(f"    {count:5d}  {group}" for group, count in groups.most_common()),
    ]
    return "\n".join(lines)


def feed_record(corpus: Corpus, relative: str) -> dict[str, Any]:
    """The feed's object in `storyfeed feeds --json`."""
    feeds = {feed["id"]: feed for feed in json.loads(corpus.screens["feeds-json"].out)}
    record = feeds[corpus.feed_ids[relative]]
    assert isinstance(record, dict)
    return record


def outcome_of(corpus: Corpus, relative: str) -> Outcome:
    """The file's feed after the first refresh."""
    return corpus.first.outcomes[corpus.feed_ids[relative]]


def stories_of(corpus: Corpus, relative: str) -> list[tuple[Any, ...]]:
    feed_id = corpus.feed_ids[relative]
    return [row for row in corpus.first.stories if row[1] == feed_id]


def story_field(row: tuple[Any, ...], name: str) -> Any:
    """One column of a row of the stories table."""
    return row[STORY_COLUMNS.index(name)]


# --- the tests ----------------------------------------------------------------------------


def test_every_file_ends_as_stories_or_a_clear_error(corpus: Corpus) -> None:
    """No file crashes the run or a feed: each ends with stories, an empty success, or
    one clean line saying what went wrong; the run says it failed when a feed failed."""
    first = corpus.first
    print("\n" + summary(corpus))
    assert "Traceback" not in first.err + first.out
    assert len(first.outcomes) == len(corpus.files)
    crashed = [
        f"{o.relative}: {o.error or '(no outcome recorded)'}"
        for o in first.outcomes.values()
        if o.kind == "crashed"
    ]
    assert crashed == [], f"{len(crashed)} crashed:\n" + "\n".join(crashed[:50])
    unclear = [
        f"{o.relative}: {o.error!r}"
        for o in first.outcomes.values()
        if o.kind == "error"
        and (not o.error.strip() or len(o.error) > 500 or forbidden(o.error) or "\n" in o.error)
    ]
    assert unclear == [], "\n".join(unclear[:50])
    errored = sum(o.kind == "error" for o in first.outcomes.values())
    assert first.code == (1 if errored else 0), first.err[-2000:]
    # Every feed was asked for once, and nothing was asked for twice (redirects aside).
    asked = Counter(path for path, _ in first.requests)
    assert set(corpus.server.answers) <= set(asked)
    assert not [path for path, n in asked.items() if n > 1 and "/http/target.xml" not in path]
    # Each failure is told, on its own line, as it was stored.
    untold = [
        o.relative
        for o in first.outcomes.values()
        if o.kind == "error" and o.error not in first.out
    ]
    assert untold == []
    # What the run prints is clean too (feed titles are in it).
    for stream in (first.out, first.err):
        assert forbidden(stream) == []
    assert sum(o.kind == "stories" for o in first.outcomes.values()) > 2000


def test_the_corpus_headers_reach_the_parser(corpus: Corpus) -> None:
    """The Header: lines are served and used: the base URL from Content-Location, the
    status and Location of redirects and 404s, and Content-Encoding all take effect (each
    of these checks fails when the bodies are served without their headers)."""
    # A windows-1252 body declared as such in Content-Type: its 0x93/0x94 arrive as curly
    # quotes, not as C1 controls (feedparser guesses the same from the bytes alone).
    charset = stories_of(corpus, "feedparser/encoding/http_text_xml_charset_2.xml")
    assert [story_field(s, "summary") for s in charset] == ["This is a £\u201ctest.\u201d"]
    for relative, link in [
        ("feedparser/wellformed/base/http_entry_link_base_content_location.xml", "relative/link"),
        ("feedparser/wellformed/base/http_item_link_base_content_location.xml", "relative/uri"),
    ]:
        links = [story_field(s, "link") for s in stories_of(corpus, relative)]
        assert links == [f"http://example.com/{link}"], relative
    for code in (301, 302, 303, 307):
        relative = f"feedparser/http/http_status_{code}.xml"
        assert [story_field(s, "title") for s in stories_of(corpus, relative)] == ["target"]
        assert outcome_of(corpus, relative).kind == "stories"
    # Validators in the headers do not stop the first, unconditional fetch.
    first_304 = stories_of(corpus, "feedparser/http/http_status_304.xml")
    assert [story_field(s, "title") for s in first_304] == ["title 304"]
    for relative, words in [
        ("feedparser/http/http_status_404.xml", "404"),
        ("feedparser/http/http_status_302-no-location.xml", "302"),
    ]:
        outcome = outcome_of(corpus, relative)
        assert outcome.kind == "error" and words in outcome.error, outcome
    # A redirect to a 304 that nobody asked for ends one way or the other, quietly.
    assert outcome_of(corpus, "feedparser/http/http_redirect_to_304.xml").kind != "crashed"
    for name in ("gzip.gz", "deflate.z", "deflate-no-headers.z"):
        outcome = outcome_of(corpus, f"feedparser/compression/{name}")
        assert outcome.kind == "no stories", outcome  # an empty Atom feed, inflated
    for name in ("gzip-not-compressed.gz", "gzip-struct-error.gz", "deflate-not-compressed.z"):
        outcome = outcome_of(corpus, f"feedparser/compression/{name}")
        assert outcome.kind == "error" and "compressed" in outcome.error, outcome
    assert outcome_of(corpus, "llm_stories.xml").stories == 8
    # A relative Content-Location is the base of the feed's links.
    relative = feed_record(
        corpus, "feedparser/wellformed/http/headers_content_location-relative.xml"
    )
    assert relative["site_url"] == f"{corpus.server.base}/feed/absolute"


def test_stored_story_text_is_clean(corpus: Corpus) -> None:
    """What was stored from the feeds holds no control, bidi or zero-width character:
    one-line fields none at all, summary and content only newlines and tabs; and every
    story has a key."""
    problems = []
    for row in corpus.first.stories:
        for name in ("key", "title", "link", "author"):
            value = story_field(row, name)
            if "\n" in value or forbidden(value):
                problems.append(f"story {row[0]} {name}: {value[:200]!r}")
        for name in ("summary", "content"):
            if found := forbidden(story_field(row, name), FORBIDDEN_IN_TEXT):
                problems.append(f"story {row[0]} {name}: {found[:3]}")
        if not story_field(row, "key").strip():
            problems.append(f"story {row[0]} has an empty key")
    assert problems == [], f"{len(problems)} problems:\n" + "\n".join(problems[:30])


def test_second_refresh_adds_nothing_and_changes_nothing(corpus: Corpus) -> None:
    """Re-ingesting the same corpus: no new story, no story changed, the same feeds
    fail the same way, and every ETag the first run stored comes back as a 304."""
    first, second = corpus.first, corpus.second
    assert "Traceback" not in second.err + second.out
    assert len(second.stories) == len(first.stories)
    changed = [(a, b) for a, b in zip(first.stories, second.stories, strict=True) if a != b]
    assert changed == [], f"{len(changed)} stories changed, e.g. {changed[:3]}"
    assert re.findall(r": \d+ (?:new|updated)\b.*", second.out) == []
    kinds = {
        o.relative: (outcome_of(corpus, o.relative).kind, o.kind) for o in second.outcomes.values()
    }
    differ = {relative: pair for relative, pair in kinds.items() if pair[0] != pair[1]}
    assert differ == {}
    assert second.code == first.code
    # Conditional GET: a stored validator is sent back, and the server's 304 is taken.
    answered = dict(second.requests)
    with_etag = [o.relative for o in first.outcomes.values() if o.etag]
    assert len(with_etag) > 1000
    not_304 = [r for r in with_etag if answered.get(f"/corpus/{r}") != 304]
    assert not_304 == [], not_304[:20]
    assert answered["/corpus/feedparser/http/http_status_304.xml"] == 304


def test_story_table_holds_no_control_characters_from_feeds(corpus: Corpus) -> None:
    """`storyfeed list` on a terminal: one line per story, and not one character of the
    forbidden kinds (without colours: none at all; with colours: only rich's own SGR)."""
    stories = len(corpus.first.stories)
    table = corpus.screens["table"]
    assert table.code == 0, table.err
    assert forbidden(table.err) == []
    assert forbidden(table.out) == [], forbidden(table.out)[:20]
    lines = table.out.rstrip("\n").split("\n")
    assert lines[0].split()[:3] == ["#", "●", "Date"]
    assert len(lines) == stories + 1  # the header, then one line per story
    too_wide = [line for line in lines if cell_len(line) > COLUMNS]
    assert too_wide == [], [(cell_len(line), line) for line in too_wide[:5]]
    ids = [int(line.split()[0]) for line in lines[1:]]
    assert sorted(ids) == sorted(row[0] for row in corpus.first.stories)

    colour = corpus.screens["table-colour"]
    assert colour.code == 0, colour.err
    assert "\x1b[" in colour.out  # the colours are really on
    uncoloured = re.sub("\x1b\\[[0-9;]*m", "", colour.out)
    assert forbidden(uncoloured) == [], forbidden(uncoloured)[:20]
    assert len(uncoloured.rstrip("\n").split("\n")) == stories + 1


def test_story_json_and_lines_hold_no_control_characters_from_feeds(corpus: Corpus) -> None:
    """`list --json` and the piped tab-separated lines: every story, every one-line field
    on one line, no forbidden character in any field."""
    listing = corpus.screens["json"]
    assert listing.code == 0, listing.err
    records = json.loads(listing.out)
    assert len(records) == len(corpus.first.stories)
    problems = []
    for record in records:
        for name in ("feed", "title", "link", "author"):
            value = record[name] or ""
            if "\n" in value or forbidden(value):
                problems.append(f"story {record['id']} {name}: {value!r}")
        if forbidden(record["summary"], FORBIDDEN_IN_TEXT):
            problems.append(f"story {record['id']} summary: {record['summary'][:200]!r}")
    assert problems == [], "\n".join(problems[:30])

    lines = corpus.screens["lines"]
    assert lines.code == 0, lines.err
    rows = lines.out.rstrip("\n").split("\n")
    assert len(rows) == len(records)
    assert [
        row for row in rows if len(row.split("\t")) != 6 or forbidden(row.replace("\t", ""))
    ] == []


def test_feeds_table_and_json_hold_no_control_characters(corpus: Corpus) -> None:
    """`storyfeed feeds` (table and JSON) for every subscription: titles, URLs and
    last errors are clean, and the statuses agree with what the refreshes stored."""
    table = corpus.screens["feeds"]
    assert table.code == 0, table.err
    assert forbidden(table.out) == [], forbidden(table.out)[:20]
    assert forbidden(table.err) == []

    listing = corpus.screens["feeds-json"]
    assert listing.code == 0, listing.err
    feeds = json.loads(listing.out)
    assert len(feeds) == len(corpus.files)
    problems = [
        f"feed {feed['id']} {name}: {feed[name]!r}"
        for feed in feeds
        for name in ("title", "url", "site_url", "last_error")
        if feed[name] and ("\n" in feed[name] or forbidden(feed[name]))
    ]
    assert problems == [], "\n".join(problems[:30])
    second = corpus.second.outcomes
    statuses = Counter(feed["status"] for feed in feeds)
    failing = sum(o.kind == "error" for o in second.values())
    assert statuses["failing"] + statuses["gone"] == failing
    assert statuses["ok"] == len(feeds) - failing


# --- a Content-Location that is not a web address -------------------------------------------

UNSAFE_LOCATION = "feedparser/wellformed/http/headers_content_location-unsafe.xml"


def test_an_unsafe_content_location_is_not_a_base(corpus: Corpus) -> None:
    """`Content-Location: javascript:alert('unsafe');` must not be a base URL: the feed's
    relative link resolves against the feed's own URL (feedparser's expectation too)."""
    record = feed_record(corpus, UNSAFE_LOCATION)
    assert record["site_url"] == f"{corpus.server.base}/abs"


def test_a_story_behind_an_unsafe_content_location_can_be_opened(
    run: Callable[..., Result],
) -> None:
    """The corpus file's headers, with one entry added: its relative link must resolve
    against the feed's URL, so that `open --print` gives an http link."""
    server = CorpusServer([])
    try:
        body = (
            (CORPUS / UNSAFE_LOCATION)
            .read_bytes()
            .replace(
                b"</feed>",
                b"<entry><id>tag:corpus.test,2026:1</id><title>One</title>"
                b'<link rel="alternate" href="/abs/1"/><updated>2026-01-01T00:00:00Z</updated>'
                b"</entry></feed>",
            )
        )
        answer = answer_for(UNSAFE_LOCATION, body, server.base)
        assert ("Content-Location", "javascript:alert('unsafe');") in answer.headers
        server.answers["/unsafe.xml"] = answer
        added = run("add", f"{server.base}/unsafe.xml")
        assert added.code == 0, added
        opened = run("open", "--print")
        assert (opened.code, opened.out) == (0, f"{server.base}/abs/1\n"), opened
    finally:
        server.close()
