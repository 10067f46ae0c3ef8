"""Fault injection through the CLI: a loopback server that misbehaves per URL path.

Each case subscribes a good feed and a faulty one, runs ``storyfeed refresh --force``
and checks that the faulty feed ends with a clear error (or is handled as its rule
says), the good feed updates normally, the run keeps its deadline and the stories
already stored are left as they were.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import gzip
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import DATA, Result
from loopback import RawServer, read_head

RSS = (DATA / "blog.rss").read_bytes()
STORIES = 8
CONFIG = 'default_feed = ""\nfeed_deadline = 2\nread_timeout = 1\nconnect_timeout = 1\n'
CAP = 65536
RUN_LIMIT = 10.0  # seconds; the deadline is 2 s per feed, so this is a generous margin
STALL = 8.0  # how long a stalling handler waits at most (teardown cuts it short)
SRC = Path(__file__).resolve().parents[1] / "src"


# --- the fault-injecting server -------------------------------------------------------


@functools.cache
def gzip_bomb(megabytes: int) -> bytes:
    """A gzip body of zeros that inflates to ``megabytes`` MiB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    parts = [packer.compress(block) for _ in range(megabytes)]
    parts.append(packer.flush())
    return b"".join(parts)


def http_date(offset: float) -> str:
    return email.utils.formatdate(time.time() + offset, usegmt=True)


def response(
    status: str, body: bytes = b"", headers: tuple[tuple[str, str], ...] = (), length: bool = True
) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


XML = (("Content-Type", "application/rss+xml"),)
CANNED: dict[str, bytes] = {
    "/ok": response("200 OK", RSS, XML),
    "/ok-moved": response("200 OK", RSS, XML),
    "/404": response("404 Not Found", b"<html>nope</html>", (("Content-Type", "text/html"),)),
    "/410": response("410 Gone", b"gone"),
    "/429-seconds": response("429 Too Many Requests", b"", (("Retry-After", "3600"),)),
    "/503-garbage": response(
        "503 Service Unavailable", b"", (("Retry-After", "soon, \x1b[31mmaybe"),)
    ),
    "/503-absurd": response(
        "503 Service Unavailable", b"", (("Retry-After", "99999999999999999999"),)
    ),
    "/500-html": response(
        "500 Internal Server Error",
        b"<html><body><h1>\x1b[2JTraceback (most recent call last):</h1></body></html>",
        (("Content-Type", "text/html"),),
    ),
    "/200-html": response(
        "200 OK",
        b"<!doctype html><html><head><title>Hi</title></head><body><p>no feed</p></body></html>",
        (("Content-Type", "text/html; charset=utf-8"),),
    ),
    "/200-empty": response("200 OK", b"", XML),
    "/200-binary": response(
        "200 OK", bytes(range(256)) * 16 + b"\x1b]0;pwned\x07", (("Content-Type", "text/xml"),)
    ),
    "/200-bom": response("200 OK", b"\xef\xbb\xbf" + RSS, XML),
    "/200-no-charset": response("200 OK", RSS, (("Content-Type", "text/xml"),)),
    "/200-wrong-charset": response(
        "200 OK", RSS, (("Content-Type", "application/rss+xml; charset=x-no-such-charset"),)
    ),
    "/200-json-not-feed": response(
        "200 OK", b'{"hello": "world", "items": 3}', (("Content-Type", "application/json"),)
    ),
    "/304-no-validators": response("304 Not Modified", b"", length=False),
    "/redirect-loop": response("302 Found", b"", (("Location", "/redirect-loop"),)),
    "/redirect-a": response("302 Found", b"", (("Location", "/redirect-b"),)),
    "/redirect-b": response("301 Moved Permanently", b"", (("Location", "/redirect-a"),)),
    "/chain-301": response("301 Moved Permanently", b"", (("Location", "/chain-302"),)),
    "/chain-302": response("302 Found", b"", (("Location", "/chain-308"),)),
    "/chain-308": response("308 Permanent Redirect", b"", (("Location", "/ok-moved"),)),
}


class Faulty:
    """A raw-socket HTTP server on 127.0.0.1 whose answer depends on the path."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: dict[str, int] = {}
        self._server = RawServer(self._serve)
        self.stopping = self._server.stopping

    def url(self, path: str) -> str:
        return self._server.url(path)

    def count(self, path: str) -> int:
        with self.lock:
            return self.hits.get(path, 0)

    def close(self) -> None:
        self._server.close()

    def _serve(self, conn: socket.socket, _server: RawServer) -> None:
        head = read_head(conn)
        if not head:
            return
        parts = head.split(b"\r\n", 1)[0].split()
        path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
        self._answer(conn, path)

    def _answer(self, conn: socket.socket, path: str) -> None:
        if path in CANNED:
            conn.sendall(CANNED[path])
        elif path == "/stall-headers":
            self.stopping.wait(STALL)
        elif path == "/stall-body":
            conn.sendall(response("200 OK", RSS, XML)[: -len(RSS)])  # headers, then nothing
            self.stopping.wait(STALL)
        elif path == "/drip":
            conn.sendall(response("200 OK", b"", XML, length=False))
            for byte in RSS[: int(STALL)]:
                if self.stopping.wait(0.9):
                    return
                conn.sendall(bytes([byte]))
        elif path == "/reset-mid-body":
            conn.sendall(response("200 OK", RSS, XML)[: -len(RSS) // 2])
            # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
            conn.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        elif path == "/endless-chunked":
            conn.sendall(response("200 OK", b"", (*XML, ("Transfer-Encoding", "chunked")), False))
            chunk = b"<item><title>again</title></item>" * 30
            frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            for _ in range(100_000):  # 100 MB at most; the client must stop far earlier
                if self.stopping.is_set():
                    return
                conn.sendall(frame)
        elif path == "/short-content-length":
            # Promises more than it sends, then hangs up.
            conn.sendall(
                response("200 OK", RSS, XML).replace(
                    f"Content-Length: {len(RSS)}".encode(),
                    f"Content-Length: {len(RSS) + 900}".encode(),
                )
            )
        elif path == "/long-content-length":
            # Promises 10 GB: must be refused without reading.
            conn.sendall(
                response("200 OK", RSS, XML).replace(
                    f"Content-Length: {len(RSS)}".encode(), b"Content-Length: 10000000000"
                )
            )
        elif path == "/gzip-bomb":
            body = gzip_bomb(48)  # about 48 KB on the wire, 48 MiB inflated
            conn.sendall(response("200 OK", body, (*XML, ("Content-Encoding", "gzip"))))
        elif path == "/gzip-bomb-big":
            body = gzip_bomb(1024)  # about 1 MB on the wire, 1 GiB inflated
            conn.sendall(response("200 OK", body, (*XML, ("Content-Encoding", "gzip"))))
        elif path == "/deflate-bomb":
            body = zlib.compress(bytes(48 * 1024 * 1024), 9)
            conn.sendall(response("200 OK", body, (*XML, ("Content-Encoding", "deflate"))))
        elif path == "/503-date":
            conn.sendall(
                response("503 Service Unavailable", b"", (("Retry-After", http_date(3600)),))
            )
        else:
            conn.sendall(response("404 Not Found", b"unknown test path"))


@pytest.fixture
def faulty() -> Iterator[Faulty]:
    server = Faulty()
    try:
        yield server
    finally:
        server.close()


# --- helpers --------------------------------------------------------------------------


@pytest.fixture
def cfg(home: Path) -> Path:
    (home / "config.toml").write_text(CONFIG + f"max_body_bytes = {CAP}\n")
    return home


def db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "storyfeed.db")


def insert_feed(home: Path, url: str) -> None:
    with contextlib.closing(db(home)) as conn, conn:
        conn.execute("INSERT INTO feeds (url, added_at) VALUES (?, 0)", (url,))


def feed_column(home: Path, url: str, column: str) -> object:
    with contextlib.closing(db(home)) as conn:
        row = conn.execute(f"SELECT {column} FROM feeds WHERE url = ?", (url,)).fetchone()
    assert row is not None, url
    return row[0]


def stories_of(home: Path, url: str) -> list[tuple[int, str, int | None]]:
    with contextlib.closing(db(home)) as conn:
        return conn.execute(
            "SELECT s.id, s.key, s.read_at FROM stories s JOIN feeds f ON f.id = s.feed_id "
            "WHERE f.url = ? ORDER BY s.id",
            (url,),
        ).fetchall()


def feeds_json(run: Callable[..., Result]) -> dict[str, dict[str, object]]:
    result = run("feeds", "--json")
    assert result.code == 0, result
    return {feed["url"]: feed for feed in json.loads(result.out)}


def assert_clean_output(result: Result) -> None:
    for stream in (result.out, result.err):
        assert "Traceback" not in stream
        assert "\x1b" not in stream
        assert "\x07" not in stream


def assert_clear_error(message: object) -> None:
    assert isinstance(message, str)
    assert message.strip()
    assert "\n" not in message
    assert "\r" not in message
    assert "Traceback" not in message
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in message), repr(message)
    assert len(message) <= 500


@dataclass
class Setup:
    home: Path
    good: str
    bad: str
    before: list[tuple[int, str, int | None]]


def prepare(cfg: Path, faulty: Faulty, run: Callable[..., Result], path: str) -> Setup:
    """Subscribe the good feed, store it, mark some stories read; then add the faulty one."""
    good = faulty.url("/ok")
    added = run("add", good)
    assert added.code == 0, added
    before = stories_of(cfg, good)
    assert len(before) == STORIES
    marked = run("mark", "read", str(before[0][0]), str(before[3][0]))
    assert marked.code == 0, marked
    before = stories_of(cfg, good)
    assert sum(read_at is not None for _, _, read_at in before) == 2
    bad = faulty.url(path)
    insert_feed(cfg, bad)
    return Setup(cfg, good, bad, before)


def timed_refresh(run: Callable[..., Result]) -> Result:
    start = time.monotonic()
    result = run("refresh", "--force")
    elapsed = time.monotonic() - start
    assert elapsed < RUN_LIMIT, f"refresh took {elapsed:.1f} s"
    assert_clean_output(result)
    return result


def assert_good_untouched(setup: Setup, run: Callable[..., Result]) -> None:
    assert stories_of(setup.home, setup.good) == setup.before
    good = feeds_json(run)[setup.good]
    assert good["stories"] == STORIES
    assert good["status"] == "ok"
    assert good["last_error"] is None


# --- the cases ------------------------------------------------------------------------

ERRORS = [
    "/stall-headers",
    "/stall-body",
    "/drip",
    "/reset-mid-body",
    "/endless-chunked",
    "/short-content-length",
    "/long-content-length",
    "/gzip-bomb",
    "/deflate-bomb",
    "/redirect-loop",
    "/redirect-a",
    "/404",
    "/500-html",
    "/200-html",
    "/200-empty",
    "/200-binary",
    "/200-json-not-feed",
]


@pytest.mark.parametrize("path", ERRORS)
def test_faulty_feed_gets_a_clear_error_and_the_rest_goes_on(
    cfg: Path, faulty: Faulty, run: Callable[..., Result], path: str
) -> None:
    setup = prepare(cfg, faulty, run, path)

    result = timed_refresh(run)

    assert result.code == 1, result  # a failed feed makes the run fail
    bad = feeds_json(run)[setup.bad]
    assert_clear_error(bad["last_error"])
    assert bad["status"] == "failing"
    assert bad["stories"] == 0
    assert_good_untouched(setup, run)
    # The error reaches the user, on clean lines.
    assert path in result.err + result.out or bad["title"] in result.err + result.out


@pytest.mark.parametrize("path", ["/200-bom", "/200-no-charset", "/chain-301"])
def test_valid_feed_behind_an_oddity_is_stored(
    cfg: Path, faulty: Faulty, run: Callable[..., Result], path: str
) -> None:
    setup = prepare(cfg, faulty, run, path)

    result = timed_refresh(run)

    assert result.code == 0, result
    # A permanent redirect moves the subscription, up to the first temporary one.
    url = faulty.url("/chain-302") if path == "/chain-301" else setup.bad
    assert len(stories_of(cfg, url)) == STORIES
    bad = feeds_json(run)[url]
    assert bad["last_error"] is None
    assert_good_untouched(setup, run)


def test_wrong_charset_ends_as_stories_or_a_clear_error(
    cfg: Path, faulty: Faulty, run: Callable[..., Result]
) -> None:
    setup = prepare(cfg, faulty, run, "/200-wrong-charset")

    result = timed_refresh(run)

    bad = feeds_json(run)[setup.bad]
    if result.code == 0:
        assert len(stories_of(cfg, setup.bad)) == STORIES
        assert bad["last_error"] is None
    else:
        assert result.code == 1
        assert_clear_error(bad["last_error"])
    assert_good_untouched(setup, run)


def test_410_marks_the_feed_gone_and_it_is_not_fetched_again(
    cfg: Path, faulty: Faulty, run: Callable[..., Result]
) -> None:
    setup = prepare(cfg, faulty, run, "/410")

    timed_refresh(run)

    bad = feeds_json(run)[setup.bad]
    assert bad["status"] == "gone"
    assert_clear_error(bad["last_error"])
    assert feed_column(cfg, setup.bad, "status") == "gone"
    timed_refresh(run)
    assert faulty.count("/410") == 1
    assert_good_untouched(setup, run)


@pytest.mark.parametrize(
    ("path", "low", "high"),
    [
        ("/429-seconds", 3500, 3700),
        ("/503-date", 3500, 3700),
        ("/503-absurd", 60, 24 * 3600 + 60),  # capped by max_interval (a day by default)
    ],
)
def test_retry_after_is_kept_and_honoured_by_force(
    cfg: Path, faulty: Faulty, run: Callable[..., Result], path: str, low: int, high: int
) -> None:
    setup = prepare(cfg, faulty, run, path)

    start = int(time.time())
    result = timed_refresh(run)

    assert result.code == 1, result
    retry = feed_column(cfg, setup.bad, "retry_after")
    assert isinstance(retry, int)
    assert start + low <= retry <= int(time.time()) + high
    assert_clear_error(feeds_json(run)[setup.bad]["last_error"])
    assert faulty.count(path) == 1

    again = timed_refresh(run)

    assert faulty.count(path) == 1  # held back, even with --force
    assert faulty.count("/ok") == 3  # add, first and second refresh
    assert "Retry-After" in again.err
    assert_good_untouched(setup, run)


def test_garbage_retry_after_is_ignored(
    cfg: Path, faulty: Faulty, run: Callable[..., Result]
) -> None:
    setup = prepare(cfg, faulty, run, "/503-garbage")

    result = timed_refresh(run)

    assert result.code == 1, result
    assert feed_column(cfg, setup.bad, "retry_after") is None
    assert_clear_error(feeds_json(run)[setup.bad]["last_error"])
    timed_refresh(run)
    assert faulty.count("/503-garbage") == 2  # nothing holds it back
    assert_good_untouched(setup, run)


def test_304_without_validators_is_not_a_crash(
    cfg: Path, faulty: Faulty, run: Callable[..., Result]
) -> None:
    setup = prepare(cfg, faulty, run, "/304-no-validators")

    result = timed_refresh(run)

    assert result.code in {0, 1}, result
    bad = feeds_json(run)[setup.bad]
    if bad["last_error"] is not None:
        assert_clear_error(bad["last_error"])
    assert bad["stories"] == 0
    assert_good_untouched(setup, run)


def test_gzip_bomb_keeps_memory_bounded(faulty: Faulty, cfg: Path) -> None:
    (cfg / "config.toml").write_text(CONFIG + f"max_body_bytes = {1024 * 1024 + 65536}\n")
    env = {**os.environ, "STORYFEED_HOME": str(cfg), "PYTHONPATH": str(SRC)}
    gzip_bomb(1024)  # build it before the clock starts
    subprocess.run(  # creates the database
        [sys.executable, "-m", "storyfeed", "feeds"], env=env, check=True, timeout=30
    )
    good, bomb = faulty.url("/ok"), faulty.url("/gzip-bomb-big")
    insert_feed(cfg, good)
    insert_feed(cfg, bomb)
    # The child reports its own peak (VmHWM): RUSAGE_CHILDREN is the largest of every
    # process this session started, and ru_maxrss survives exec, so a child forked
    # from a big pytest process would report the parent's size.
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to read a process's peak memory")
    measure = (
        "import sys\n"
        "from pathlib import Path\n"
        "from storyfeed.cli import run\n"
        "code = run(['refresh', '--force'])\n"
        "status = Path('/proc/self/status').read_text()\n"
        "peak = next(l.split()[1] for l in status.splitlines() if l.startswith('VmHWM:'))\n"
        "sys.stderr.write(f'PEAK_KIB={peak}\\n')\n"
        "sys.exit(code)\n"
    )
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", measure],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    elapsed = time.monotonic() - start

    peak_kib = int(proc.stderr.rsplit("PEAK_KIB=", 1)[1].split()[0])
    assert faulty.count("/gzip-bomb-big") == 1
    assert elapsed < RUN_LIMIT
    assert proc.returncode == 1, proc
    assert "Traceback" not in proc.stderr + proc.stdout
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib} KiB"
    assert len(stories_of(cfg, good)) == STORIES
    assert_clear_error(feed_column(cfg, bomb, "last_error"))
    assert "inflates" in str(feed_column(cfg, bomb, "last_error"))


def test_gzip_bomb_is_small_on_the_wire() -> None:
    """The bombs really are bombs: small compressed, huge inflated."""
    assert len(gzip_bomb(48)) < CAP
    assert len(gzip.decompress(gzip_bomb(48))) == 48 * 1024 * 1024
    assert len(gzip_bomb(1024)) < 1024 * 1024 + 65536


def test_ctrl_c_during_a_refresh_exits_130_and_keeps_everything(
    faulty: Faulty, cfg: Path, run: Callable[..., Result]
) -> None:
    """Ctrl-C while a feed stalls: exit 130 at once, no traceback, stored stories and
    read marks kept, the lock free for the next run."""
    setup = prepare(cfg, faulty, run, "/stall-headers")
    env = {**os.environ, "STORYFEED_HOME": str(cfg), "PYTHONPATH": str(SRC)}
    (cfg / "config.toml").write_text(CONFIG.replace("feed_deadline = 2", "feed_deadline = 30"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "storyfeed", "refresh", "--force"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while faulty.count("/stall-headers") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert faulty.count("/stall-headers") == 1, "the refresh never reached the stalling feed"
    interrupted = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, (out, err)
    assert time.monotonic() - interrupted < 3
    assert "Traceback" not in out + err
    assert len(err.splitlines()) <= 1, err
    assert stories_of(cfg, setup.good) == setup.before
    with contextlib.closing(db(cfg)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    (cfg / "config.toml").write_text(CONFIG)
    again = run("refresh", setup.good)
    assert again.code == 0, again
