"""End-to-end tests of storyfeed.fetch against real HTTP servers on 127.0.0.1.

pytest-httpserver answers well-formed requests; ``RawServer`` below answers byte
by byte for what a well-behaved server cannot do (drip, lie, reset, stall).
"""

from __future__ import annotations

import email.utils
import gzip
import os
import re
import socket
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

import storyfeed
from conftest import DATA, NOW
from loopback import Handle, RawServer, read_head
from storyfeed.config import Settings
from storyfeed.errors import ConfigError
from storyfeed.fetch import fetch, fetch_batches, fetch_many, fetch_one
from storyfeed.updates import FetchOutcome, FetchRequest, FetchResult

CAP = 64 * 1024
SETTINGS = Settings(
    connect_timeout=1.0,
    read_timeout=1.0,
    feed_deadline=1.5,
    max_body_bytes=CAP,
    concurrency=4,
    per_host=2,
)
RSS = (DATA / "blog.rss").read_bytes()


def get(url: str, settings: Settings = SETTINGS, **validators: str) -> FetchResult:
    return fetch_one(FetchRequest(feed_id=1, url=url, **validators), settings, NOW)


def closed_port() -> int:
    """A loopback port that was bound and released, so nothing listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- a raw TCP server for misbehaving peers -------------------------------------------


@pytest.fixture
def raw_server() -> Iterator[Callable[[Handle], RawServer]]:
    servers: list[RawServer] = []

    def start(handle: Handle) -> RawServer:
        server = RawServer(handle)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


# --- request headers ------------------------------------------------------------------


def test_user_agent_and_accept_headers_are_sent(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(RSS, content_type="application/rss+xml")

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.OK
    request, _ = httpserver.log[0]
    agent = request.headers["User-Agent"]
    assert re.fullmatch(rf"storyfeed/{re.escape(storyfeed.__version__)} \(\+https?://\S+\)", agent)
    assert storyfeed.PROJECT_URL in agent
    accept = request.headers["Accept"]
    for media_type in ("application/rss+xml", "application/atom+xml", "application/feed+json"):
        assert media_type in accept


def test_no_validators_means_no_conditional_headers(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(RSS)

    get(httpserver.url_for("/feed"))

    request, _ = httpserver.log[0]
    assert "If-None-Match" not in request.headers
    assert "If-Modified-Since" not in request.headers


# --- conditional GET and caching headers ----------------------------------------------

LAST_MODIFIED = "Mon, 01 Jun 2026 10:00:00 GMT"


def test_conditional_get_sends_validators_and_304_is_not_modified(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request(
        "/feed", headers={"If-None-Match": '"v1"', "If-Modified-Since": LAST_MODIFIED}
    ).respond_with_data(b"", status=304)

    result = get(httpserver.url_for("/feed"), etag='"v1"', last_modified=LAST_MODIFIED)

    request, _ = httpserver.log[0]
    assert request.headers["If-None-Match"] == '"v1"'
    assert request.headers["If-Modified-Since"] == LAST_MODIFIED
    assert result.outcome is FetchOutcome.NOT_MODIFIED
    assert result.http_status == 304
    assert result.body == b""
    assert result.error == ""
    # A 304 that does not repeat the validators keeps the ones that were sent.
    assert result.etag == '"v1"'
    assert result.last_modified == LAST_MODIFIED


def test_304_with_a_new_etag_reports_it(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(b"", status=304, headers={"ETag": '"v2"'})

    result = get(httpserver.url_for("/feed"), etag='"v1"')

    assert result.outcome is FetchOutcome.NOT_MODIFIED
    assert result.etag == '"v2"'


def test_200_captures_body_validators_and_headers(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        RSS,
        content_type="application/rss+xml; charset=utf-8",
        headers={"ETag": '"abc"', "Last-Modified": LAST_MODIFIED},
    )

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.OK
    assert result.http_status == 200
    assert result.body == RSS
    assert result.etag == '"abc"'
    assert result.last_modified == LAST_MODIFIED
    assert result.final_url == httpserver.url_for("/feed")
    assert result.moved_to == ""
    assert result.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert result.error == ""


def test_200_without_validators_has_empty_ones(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(RSS)

    result = get(httpserver.url_for("/feed"), etag='"old"', last_modified=LAST_MODIFIED)

    assert result.outcome is FetchOutcome.OK
    assert result.etag == ""
    assert result.last_modified == ""


@pytest.mark.parametrize(
    ("cache_control", "max_age"),
    [
        ("max-age=3600", 3600),
        ("public, max-age=600", 600),
        ('max-age="120"', 120),
        ("MAX-AGE=60", 60),
        ("max-age=0", 0),
        ("no-cache", None),
        ("no-store", None),
        ("no-cache, max-age=60", None),
        pytest.param("max-age=60, no-cache", None),
        ("max-age=soon", None),
        (None, None),
    ],
)
def test_cache_control_max_age(
    httpserver: HTTPServer, cache_control: str | None, max_age: int | None
) -> None:
    headers = {"Cache-Control": cache_control} if cache_control is not None else {}
    httpserver.expect_request("/feed").respond_with_data(RSS, headers=headers)

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.OK
    assert result.max_age == max_age


# --- redirects ------------------------------------------------------------------------


def redirect(httpserver: HTTPServer, path: str, status: int, to: str) -> None:
    httpserver.expect_request(path).respond_with_data(
        b"", status=status, headers={"Location": httpserver.url_for(to)}
    )


def test_301_chain_sets_moved_to_the_final_url(httpserver: HTTPServer) -> None:
    redirect(httpserver, "/old", 301, "/older")
    redirect(httpserver, "/older", 301, "/new")
    httpserver.expect_request("/new").respond_with_data(RSS)

    result = get(httpserver.url_for("/old"))

    assert result.outcome is FetchOutcome.OK
    assert result.body == RSS
    assert result.moved_to == httpserver.url_for("/new")
    assert result.final_url == httpserver.url_for("/new")


def test_308_sets_moved_to(httpserver: HTTPServer) -> None:
    redirect(httpserver, "/old", 308, "/new")
    httpserver.expect_request("/new").respond_with_data(RSS)

    result = get(httpserver.url_for("/old"))

    assert result.outcome is FetchOutcome.OK
    assert result.moved_to == httpserver.url_for("/new")


def test_relative_location_is_resolved_in_moved_to(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/old").respond_with_data(
        b"", status=301, headers={"Location": "/new"}
    )
    httpserver.expect_request("/new").respond_with_data(RSS)

    result = get(httpserver.url_for("/old"))

    assert result.moved_to == httpserver.url_for("/new")


def test_302_is_followed_but_not_remembered(httpserver: HTTPServer) -> None:
    redirect(httpserver, "/feed", 302, "/today")
    httpserver.expect_request("/today").respond_with_data(RSS)

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.OK
    assert result.body == RSS
    assert result.final_url == httpserver.url_for("/today")
    assert result.moved_to == ""


def test_301_then_302_keeps_only_the_permanent_prefix(httpserver: HTTPServer) -> None:
    redirect(httpserver, "/a", 301, "/b")
    redirect(httpserver, "/b", 302, "/c")
    httpserver.expect_request("/c").respond_with_data(RSS)

    result = get(httpserver.url_for("/a"))

    assert result.outcome is FetchOutcome.OK
    assert result.final_url == httpserver.url_for("/c")
    assert result.moved_to == httpserver.url_for("/b")


def test_302_then_301_is_not_remembered(httpserver: HTTPServer) -> None:
    redirect(httpserver, "/a", 302, "/b")
    redirect(httpserver, "/b", 301, "/c")
    httpserver.expect_request("/c").respond_with_data(RSS)

    result = get(httpserver.url_for("/a"))

    assert result.outcome is FetchOutcome.OK
    assert result.moved_to == ""


def test_redirect_to_itself_is_an_error(httpserver: HTTPServer) -> None:
    redirect(httpserver, "/a", 301, "/a")

    result = get(httpserver.url_for("/a"))

    assert result.outcome is FetchOutcome.ERROR
    assert "redirect" in result.error
    assert result.body == b""


def test_redirect_loop_between_two_urls_is_an_error(httpserver: HTTPServer) -> None:
    redirect(httpserver, "/a", 301, "/b")
    redirect(httpserver, "/b", 302, "/a")

    result = get(httpserver.url_for("/a"))

    assert result.outcome is FetchOutcome.ERROR
    assert "redirect" in result.error
    assert len(httpserver.log) <= 12  # gave up after a bounded number of hops


def test_a_cookie_set_on_a_redirect_is_sent_to_its_target(httpserver: HTTPServer) -> None:
    """Sites that set a cookie and send the reader round again (anti-bot walls) work;
    answers that set none leave the jar alone."""
    from werkzeug import Request, Response

    def gate(request: Request) -> Response:
        if request.cookies.get("seen") == "1":
            return Response(RSS, content_type="application/rss+xml")
        answer = Response(status=302, headers={"Location": "/feed"})
        answer.set_cookie("seen", "1", path="/")
        return answer

    httpserver.expect_request("/feed").respond_with_handler(gate)
    requests = [FetchRequest(feed_id=i, url=httpserver.url_for("/feed")) for i in range(3)]

    results = list(fetch_many(requests, Settings(concurrency=1, per_host=1), NOW))

    assert [r.outcome for r in results] == [FetchOutcome.OK] * 3
    assert all(r.body == RSS for r in results)
    assert len(httpserver.log) == 4  # one round trip for the cookie, then none


# --- status codes ---------------------------------------------------------------------


def test_410_is_gone(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(b"retired", status=410)

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.GONE
    assert result.http_status == 410
    assert result.body == b""


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds(httpserver: HTTPServer, status: int) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        b"slow down", status=status, headers={"Retry-After": "120"}
    )

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.ERROR
    assert f"HTTP {status}" in result.error
    assert result.retry_after == NOW + timedelta(seconds=120)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_as_http_date(httpserver: HTTPServer, status: int) -> None:
    when = NOW + timedelta(hours=3)
    httpserver.expect_request("/feed").respond_with_data(
        b"", status=status, headers={"Retry-After": email.utils.format_datetime(when, True)}
    )

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.ERROR
    assert result.retry_after == when
    assert result.retry_after.tzinfo is not None


@pytest.mark.parametrize(
    "value",
    ["soon", "-5", "1.5", "Someday, 99 Foo 20xx", "", "Fri, 31 Dec 9999 23:59:59 -1400"],
)
def test_garbage_retry_after_is_ignored(httpserver: HTTPServer, value: str) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        b"", status=503, headers={"Retry-After": value}
    )

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.ERROR
    assert "HTTP 503" in result.error
    assert result.retry_after is None


@pytest.mark.parametrize("status", [404, 500])
def test_error_status_is_an_error(httpserver: HTTPServer, status: int) -> None:
    httpserver.expect_request("/feed").respond_with_data(b"<html>oops</html>", status=status)

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.ERROR
    assert f"HTTP {status}" in result.error
    assert result.http_status == status
    assert result.body == b""
    assert result.retry_after is None


# --- body size cap --------------------------------------------------------------------


def test_body_exactly_at_the_cap_is_accepted(httpserver: HTTPServer) -> None:
    body = b"x" * CAP
    httpserver.expect_request("/feed").respond_with_data(body)

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.OK
    assert result.body == body


def test_content_length_over_the_cap_is_an_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(b"x" * (CAP + 1))

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.ERROR
    assert "cap" in result.error
    assert result.body == b""


def chunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


def serve_chunked(total: int) -> Handle:
    """A handler sending ``total`` bytes of body in 8 KiB chunks, with no Content-Length."""

    def handle(conn: socket.socket, server: RawServer) -> None:
        read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        pieces = (b"y" * min(8192, total - sent) for sent in range(0, total, 8192))
        for frame in chunked(pieces):
            conn.sendall(frame)
            if server.stopping.is_set():
                return

    return handle


def test_chunked_body_under_the_cap_is_read(
    raw_server: Callable[[Handle], RawServer],
) -> None:
    server = raw_server(serve_chunked(CAP - 10))

    result = get(server.url())

    assert result.outcome is FetchOutcome.OK
    assert result.body == b"y" * (CAP - 10)


def test_chunked_body_over_the_cap_is_an_error(
    raw_server: Callable[[Handle], RawServer],
) -> None:
    server = raw_server(serve_chunked(4 * CAP))

    result = get(server.url())

    assert result.outcome is FetchOutcome.ERROR
    assert "cap" in result.error
    assert result.body == b""


# --- content codings ------------------------------------------------------------------


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", raw_deflate),
    ],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw"],
)
def test_compressed_bodies_are_decoded(
    httpserver: HTTPServer, coding: str, encode: Callable[[bytes], bytes]
) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        encode(RSS), headers={"Content-Encoding": coding}
    )

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.OK
    assert result.body == RSS


def test_multi_member_gzip_is_decoded_whole(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        gzip.compress(RSS[:100]) + gzip.compress(RSS[100:]),
        headers={"Content-Encoding": "gzip"},
    )

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.OK
    assert result.body == RSS


def test_compressed_body_over_the_cap_when_inflated_is_an_error(httpserver: HTTPServer) -> None:
    body = gzip.compress(b"z" * (CAP + 1))
    assert len(body) < CAP
    httpserver.expect_request("/feed").respond_with_data(body, headers={"Content-Encoding": "gzip"})

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.ERROR
    assert "cap" in result.error


def test_gzip_bomb_is_stopped_with_bounded_memory(
    raw_server: Callable[[Handle], RawServer],
) -> None:
    cap = 256 * 1024
    bomb = gzip.compress(b"\0" * (32 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < cap  # small on the wire, 128 times the cap when inflated
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"

    def send_bomb(conn: socket.socket, server: RawServer) -> None:
        # A raw server, not werkzeug: its request parsing allocates megabytes that
        # tracemalloc would count, since it runs in this process.
        read_head(conn)
        conn.sendall(head % len(bomb) + bomb)

    server = raw_server(send_bomb)
    settings = Settings(read_timeout=1.0, feed_deadline=5.0, max_body_bytes=cap)
    request = FetchRequest(feed_id=1, url=server.url("/bomb"))

    tracemalloc.start()
    try:
        result = fetch_one(request, settings, NOW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.outcome is FetchOutcome.ERROR
    assert "cap" in result.error
    assert peak < 10 * cap, f"peak {peak} bytes"


def test_corrupt_gzip_is_an_error(httpserver: HTTPServer) -> None:
    body = bytearray(gzip.compress(RSS))
    middle = len(body) // 2
    body[middle : middle + 16] = bytes(b ^ 0xFF for b in body[middle : middle + 16])
    httpserver.expect_request("/feed").respond_with_data(
        bytes(body), headers={"Content-Encoding": "gzip"}
    )

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.ERROR
    assert "corrupt" in result.error
    assert result.body == b""


def test_body_that_is_not_gzip_at_all_is_an_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(RSS, headers={"Content-Encoding": "gzip"})

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.ERROR
    assert "corrupt" in result.error


def test_truncated_gzip_is_an_error(httpserver: HTTPServer) -> None:
    body = gzip.compress(RSS)
    httpserver.expect_request("/feed").respond_with_data(
        body[: len(body) // 2], headers={"Content-Encoding": "gzip"}
    )

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.ERROR
    assert "truncated" in result.error
    assert result.body == b""


def test_unsupported_content_encoding_is_an_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        b"\x1b\x00\x00", headers={"Content-Encoding": "br"}
    )

    result = get(httpserver.url_for("/feed"))

    assert result.outcome is FetchOutcome.ERROR
    assert "Content-Encoding" in result.error


# --- slow, stalled and broken servers -------------------------------------------------

SLOW = Settings(connect_timeout=1.0, read_timeout=0.5, feed_deadline=1.0, max_body_bytes=CAP)
MARGIN = 1.0
DRIP_FOR = 3.5  # seconds a dripping server keeps going before it gives up by itself


def drip_body(conn: socket.socket, server: RawServer) -> None:
    read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n")
    conn.sendall(b"Content-Length: 60000\r\n\r\n")
    started = time.monotonic()
    while time.monotonic() - started < DRIP_FOR:
        conn.sendall(b"x")
        if server.wait(0.05):
            return


def drip_headers(conn: socket.socket, server: RawServer) -> None:
    read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    started = time.monotonic()
    while time.monotonic() - started < DRIP_FOR:
        conn.sendall(b"a")
        if server.wait(0.05):
            return


def test_dripping_body_is_cut_off_by_the_feed_deadline(
    raw_server: Callable[[Handle], RawServer],
) -> None:
    server = raw_server(drip_body)

    started = time.monotonic()
    result = get(server.url(), SLOW)
    elapsed = time.monotonic() - started

    assert result.outcome is FetchOutcome.ERROR
    assert elapsed < SLOW.feed_deadline + MARGIN, f"took {elapsed:.1f} s"
    assert "deadline" in result.error


def test_dripping_headers_are_cut_off_by_the_feed_deadline(
    raw_server: Callable[[Handle], RawServer],
) -> None:
    server = raw_server(drip_headers)

    started = time.monotonic()
    result = get(server.url(), SLOW)
    elapsed = time.monotonic() - started

    assert result.outcome is FetchOutcome.ERROR
    assert elapsed < SLOW.feed_deadline + MARGIN, f"took {elapsed:.1f} s"


# --- proxies from the environment ----------------------------------------------------


def test_the_environments_proxy_carries_the_fetches_it_should(
    raw_server: Callable[[Handle], RawServer],
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY is honoured (the proxy gets the absolute URL), NO_PROXY too."""
    seen: list[bytes] = []

    def proxy(conn: socket.socket, server: RawServer) -> None:
        seen.append(read_head(conn).split(b"\r\n")[0])
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(RSS) + RSS)

    server = raw_server(proxy)
    monkeypatch.setenv("HTTP_PROXY", server.url(""))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # as conftest: the test servers are direct
    httpserver.expect_request("/direct").respond_with_data(b"<rss>direct</rss>")

    via_proxy = get("http://feeds.invalid/feed")
    direct = get(httpserver.url_for("/direct"))

    assert via_proxy.outcome is FetchOutcome.OK and via_proxy.body == RSS
    assert seen == [b"GET http://feeds.invalid/feed HTTP/1.1"]
    assert direct.outcome is FetchOutcome.OK and direct.body == b"<rss>direct</rss>"


def test_a_dripping_proxy_is_cut_off_by_the_feed_deadline(
    raw_server: Callable[[Handle], RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = raw_server(drip_headers)
    monkeypatch.setenv("HTTP_PROXY", server.url(""))

    started = time.monotonic()
    result = get("http://feeds.invalid/feed", SLOW)
    elapsed = time.monotonic() - started

    assert result.outcome is FetchOutcome.ERROR
    assert "deadline" in result.error
    assert elapsed < SLOW.feed_deadline + MARGIN, f"took {elapsed:.1f} s"


@pytest.mark.parametrize(
    "proxy",
    [
        "ftp://user:secret@proxy.invalid",
        "http://user:secret/slash@proxy.invalid:3128",  # httpx would quote "secret"
        "http://[::1",
    ],
)
def test_a_proxy_that_cannot_be_used_is_one_config_error(
    proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy)

    with pytest.raises(ConfigError, match=r"\(HTTPS_PROXY, NO_PROXY\) cannot be used") as raised:
        list(fetch_many([FetchRequest(feed_id=1, url="https://feeds.invalid/")], SETTINGS, NOW))

    assert "secret" not in str(raised.value)


def test_no_proxy_entries_httpx_cannot_read_do_no_harm_without_a_proxy(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "localhost,[::1],fd00::/8,127.0.0.1")
    httpserver.expect_request("/feed").respond_with_data(b"<rss/>")

    (result,) = fetch_many(
        [FetchRequest(feed_id=1, url=httpserver.url_for("/feed"))], SETTINGS, NOW
    )

    assert result.outcome is FetchOutcome.OK


def test_certificates_that_cannot_be_loaded_fail_the_https_feeds_only(
    https_server: HTTPServer, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(DATA / "no-such-bundle.pem"))
    https_server.expect_request("/feed").respond_with_data(b"<rss>tls</rss>")
    httpserver.expect_request("/feed").respond_with_data(b"<rss>plain</rss>")
    requests = [
        FetchRequest(feed_id=1, url=https_server.url_for("/feed")),
        FetchRequest(feed_id=2, url=httpserver.url_for("/feed")),
    ]

    results = {r.request.feed_id: r for r in fetch_many(requests, SETTINGS, NOW)}

    assert results[1].outcome is FetchOutcome.ERROR
    assert results[1].error.startswith("cannot load the certificates that https needs")
    assert results[2].outcome is FetchOutcome.OK and results[2].body == b"<rss>plain</rss>"


def test_a_socks_proxy_needs_socksio(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setenv("ALL_PROXY", f"socks5://127.0.0.1:{closed_port()}")
    requests = [FetchRequest(feed_id=1, url="http://feeds.invalid/")]
    if importlib.util.find_spec("socksio") is None:
        with pytest.raises(ConfigError, match="socksio"):
            list(fetch_many(requests, SETTINGS, NOW))
    else:  # installed: the proxy is tried, and refuses
        (result,) = fetch_many(requests, SETTINGS, NOW)
        assert result.outcome is FetchOutcome.ERROR


def stall(conn: socket.socket, server: RawServer) -> None:
    read_head(conn)
    server.wait(DRIP_FOR)


def test_server_that_never_answers_is_cut_off_by_the_read_timeout(
    raw_server: Callable[[Handle], RawServer],
) -> None:
    server = raw_server(stall)
    settings = Settings(read_timeout=0.5, feed_deadline=10.0, max_body_bytes=CAP)

    started = time.monotonic()
    result = get(server.url(), settings)
    elapsed = time.monotonic() - started

    assert result.outcome is FetchOutcome.ERROR
    assert result.error == "timed out"
    assert elapsed < settings.read_timeout + MARGIN, f"took {elapsed:.1f} s"


def short_body(conn: socket.socket, server: RawServer) -> None:
    read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n")
    conn.sendall(b"<rss>short")


def test_body_shorter_than_its_content_length_is_an_error(
    raw_server: Callable[[Handle], RawServer],
) -> None:
    server = raw_server(short_body)

    result = get(server.url())

    assert result.outcome is FetchOutcome.ERROR
    assert "closed the connection" in result.error
    assert result.body == b""


def reset_mid_body(conn: socket.socket, server: RawServer) -> None:
    read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 60000\r\n\r\n")
    conn.sendall(b"<rss>" + b" " * 1000)
    server.wait(0.1)
    # SO_LINGER with a zero timeout turns close() into a TCP reset.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_connection_reset_mid_body_is_an_error(
    raw_server: Callable[[Handle], RawServer],
) -> None:
    server = raw_server(reset_mid_body)

    result = get(server.url())

    assert result.outcome is FetchOutcome.ERROR
    assert "ReadError" in result.error or "closed the connection" in result.error
    assert result.body == b""


def test_connection_refused() -> None:
    result = get(f"http://127.0.0.1:{closed_port()}/feed")

    assert result.outcome is FetchOutcome.ERROR
    assert result.error == "connection refused"
    assert result.http_status is None


# --- passwords never leak into messages -----------------------------------------------


def with_password(url: str) -> str:
    return url.replace("http://", "http://user:secret@", 1)


@pytest.mark.parametrize("case", ["404", "500", "loop", "refused", "timeout", "cap"])
def test_password_never_appears_in_an_error(
    httpserver: HTTPServer, raw_server: Callable[[Handle], RawServer], case: str
) -> None:
    httpserver.expect_request("/404").respond_with_data(b"", status=404)
    httpserver.expect_request("/500").respond_with_data(b"", status=500)
    redirect(httpserver, "/loop", 301, "/loop")
    httpserver.expect_request("/cap").respond_with_data(b"x" * (CAP + 1))
    urls = {
        "404": httpserver.url_for("/404"),
        "500": httpserver.url_for("/500"),
        "loop": httpserver.url_for("/loop"),
        "cap": httpserver.url_for("/cap"),
        "refused": f"http://127.0.0.1:{closed_port()}/feed",
    }
    if case == "timeout":
        urls["timeout"] = raw_server(stall).url()
    settings = Settings(read_timeout=0.5, feed_deadline=1.0, max_body_bytes=CAP)

    result = get(with_password(urls[case]), settings)

    assert result.outcome is FetchOutcome.ERROR
    assert result.error
    assert "secret" not in result.error


def test_password_url_is_fetched_with_basic_auth(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(RSS)

    result = get(with_password(httpserver.url_for("/feed")))

    assert result.outcome is FetchOutcome.OK
    request, _ = httpserver.log[0]
    assert request.authorization is not None
    assert request.authorization.username == "user"
    assert request.authorization.password == "secret"


# --- other schemes --------------------------------------------------------------------


def test_file_url_is_read(tmp_path: Path) -> None:
    path = tmp_path / "my feeds" / "feed.rss"
    path.parent.mkdir()
    path.write_bytes(RSS)

    result = get(path.as_uri())

    assert result.outcome is FetchOutcome.OK
    assert result.body == RSS
    assert result.final_url == path.as_uri()


def test_file_url_with_localhost_is_read(tmp_path: Path) -> None:
    path = tmp_path / "feed.rss"
    path.write_bytes(RSS)

    result = get(f"file://localhost{path}")

    assert result.outcome is FetchOutcome.OK
    assert result.body == RSS


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    result = get((tmp_path / "absent.rss").as_uri())

    assert result.outcome is FetchOutcome.ERROR
    assert "no such file" in result.error
    assert "absent.rss" in result.error


def test_directory_is_an_error(tmp_path: Path) -> None:
    result = get(tmp_path.as_uri())

    assert result.outcome is FetchOutcome.ERROR
    assert "directory" in result.error


def test_file_over_the_cap_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "big.rss"
    path.write_bytes(b"x" * (CAP + 1))

    result = get(path.as_uri())

    assert result.outcome is FetchOutcome.ERROR
    assert "cap" in result.error


def test_file_url_on_another_host_is_an_error() -> None:
    result = get("file://fileserver/share/feed.rss")

    assert result.outcome is FetchOutcome.ERROR
    assert "another host" in result.error


def test_unsupported_scheme_is_an_error() -> None:
    result = get("ftp://127.0.0.1/feed.rss")

    assert result.outcome is FetchOutcome.ERROR
    assert "ftp" in result.error


# --- fetch with a caller's client -----------------------------------------------------


def test_fetch_uses_the_given_client(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data(b"first")
    httpserver.expect_request("/b").respond_with_data(b"second", status=404)

    with httpx.Client(timeout=2.0, headers={"X-Test": "yes"}) as client:
        first = fetch(client, FetchRequest(feed_id=1, url=httpserver.url_for("/a")), SETTINGS, NOW)
        second = fetch(client, FetchRequest(feed_id=2, url=httpserver.url_for("/b")), SETTINGS, NOW)

    assert (first.outcome, first.body) == (FetchOutcome.OK, b"first")
    assert second.outcome is FetchOutcome.ERROR
    assert "HTTP 404" in second.error
    assert [request.headers["X-Test"] for request, _ in httpserver.log] == ["yes", "yes"]


# --- many feeds -----------------------------------------------------------------------


def test_fetch_many_returns_one_result_per_request(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data(b"<rss>a</rss>")
    httpserver.expect_request("/b").respond_with_data(b"", status=304)
    httpserver.expect_request("/c").respond_with_data(b"", status=404)
    requests = [
        FetchRequest(feed_id=1, url=httpserver.url_for("/a")),
        FetchRequest(feed_id=2, url=httpserver.url_for("/b"), etag='"b"'),
        FetchRequest(feed_id=3, url=httpserver.url_for("/c")),
        FetchRequest(feed_id=4, url=f"http://127.0.0.1:{closed_port()}/dead"),
    ]

    results = list(fetch_many(requests, SETTINGS, NOW))

    by_id = {result.request.feed_id: result for result in results}
    assert len(results) == len(requests)
    assert {result.request for result in results} == set(requests)
    assert by_id[1].outcome is FetchOutcome.OK
    assert by_id[1].body == b"<rss>a</rss>"
    assert by_id[2].outcome is FetchOutcome.NOT_MODIFIED
    assert by_id[3].outcome is FetchOutcome.ERROR
    assert by_id[4].outcome is FetchOutcome.ERROR
    assert by_id[4].error == "connection refused"


def test_fetch_many_with_nothing_yields_nothing() -> None:
    assert list(fetch_many([], SETTINGS, NOW)) == []


def counting_after(pause: float) -> Handle:
    """A handler that answers after ``pause`` seconds, recording how many requests
    were in flight at once."""

    def handle(conn: socket.socket, server: RawServer) -> None:
        read_head(conn)
        with server.lock:
            server.requests += 1
            server.active += 1
            server.most_active = max(server.most_active, server.active)
        server.wait(pause)
        with server.lock:
            server.active -= 1
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\n<ok>")

    return handle


counting = counting_after(0.15)


@pytest.mark.parametrize(("concurrency", "per_host"), [(6, 2), (6, 1), (2, 5)])
def test_fetch_many_bounds_requests_in_flight(
    raw_server: Callable[[Handle], RawServer], concurrency: int, per_host: int
) -> None:
    server = raw_server(counting)
    settings = Settings(
        read_timeout=2.0,
        feed_deadline=3.0,
        max_body_bytes=CAP,
        concurrency=concurrency,
        per_host=per_host,
    )
    requests = [FetchRequest(feed_id=i, url=server.url(f"/feed/{i}")) for i in range(6)]

    results = list(fetch_many(requests, settings, NOW))

    assert sorted(r.request.feed_id for r in results) == list(range(6))
    assert all(r.outcome is FetchOutcome.OK and r.body == b"<ok>" for r in results)
    assert server.requests == 6
    assert server.most_active == min(concurrency, per_host)


def test_requests_beyond_one_pool_run_at_once(raw_server: Callable[[Handle], RawServer]) -> None:
    """Requests are spread over several small connection pools (see _fetch_all): none
    waits for a connection while the concurrency allows it to run."""
    server = raw_server(counting)
    settings = Settings(read_timeout=2.0, feed_deadline=3.0, concurrency=10, per_host=10)
    requests = [FetchRequest(feed_id=i, url=server.url(f"/feed/{i}")) for i in range(10)]

    results = list(fetch_many(requests, settings, NOW))

    assert all(r.outcome is FetchOutcome.OK for r in results)
    assert server.most_active == 10


def test_a_304_hands_its_connection_to_the_next_feed(
    raw_server: Callable[[Handle], RawServer],
) -> None:
    connections = []

    def keep_alive(conn: socket.socket, server: RawServer) -> None:
        connections.append(conn)
        while head := read_head(conn):
            with server.lock:
                server.requests += 1
            assert b"If-None-Match" in head
            conn.sendall(b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n')

    server = raw_server(keep_alive)
    settings = Settings(concurrency=1, per_host=1)
    requests = [
        FetchRequest(feed_id=i, url=server.url(f"/feed/{i}"), etag='"v1"') for i in range(5)
    ]

    results = list(fetch_many(requests, settings, NOW))

    assert [r.outcome for r in results] == [FetchOutcome.NOT_MODIFIED] * 5
    assert server.requests == 5
    assert len(connections) == 1


def test_fetch_batches_yields_each_result_once_in_non_empty_batches(
    httpserver: HTTPServer,
) -> None:
    for i in range(12):
        httpserver.expect_request(f"/{i}").respond_with_data(f"<rss>{i}</rss>".encode())
    requests = [FetchRequest(feed_id=i, url=httpserver.url_for(f"/{i}")) for i in range(12)]

    batches = list(fetch_batches(requests, SETTINGS, NOW))

    assert all(batches)
    assert sorted(r.request.feed_id for batch in batches for r in batch) == list(range(12))
    assert all(r.body == f"<rss>{r.request.feed_id}</rss>".encode() for b in batches for r in b)


def test_dns_failure_is_named_without_a_lookup() -> None:
    """A failed name lookup (built here: tests never query a resolver) gets a clear message."""
    from storyfeed.fetch import _connect_message

    error = httpx.ConnectError("All connection attempts failed")
    error.__cause__ = OSError("All connection attempts failed")
    error.__cause__.__cause__ = socket.gaierror(-2, "Name or service not known")
    assert _connect_message(error) == "could not resolve the host name"
    assert _connect_message(httpx.ConnectError("weird")) == "could not connect: weird"


# --- what a hostile or sloppy server sends back ------------------------------------------


def test_a_non_ascii_etag_is_neither_kept_nor_sent(
    raw_server: Callable[[Handle], RawServer],
) -> None:
    seen: list[bytes] = []

    def handle(conn: socket.socket, server: RawServer) -> None:
        seen.append(read_head(conn))
        body = b"<rss version='2.0'><channel><title>t</title></channel></rss>"
        conn.sendall(
            b'HTTP/1.1 200 OK\r\nETag: "caf\xe9"\r\nContent-Length: %d\r\n\r\n' % len(body) + body
        )

    server = raw_server(handle)
    first = get(server.url())
    assert first.outcome is FetchOutcome.OK
    assert first.etag == ""
    # A value stored by an older version, or typed into the database, is not sent either.
    again = get(server.url(), etag='"caf\xe9"')
    assert again.outcome is FetchOutcome.OK
    assert b"if-none-match" not in seen[-1].lower()


def test_escape_sequences_in_the_reason_phrase_are_removed(
    raw_server: Callable[[Handle], RawServer],
) -> None:
    def handle(conn: socket.socket, server: RawServer) -> None:
        read_head(conn)
        conn.sendall(b"HTTP/1.1 500 \x1b[31mEVIL\x1b]0;pwn\x07\r\nContent-Length: 0\r\n\r\n")

    result = get(raw_server(handle).url())
    assert result.outcome is FetchOutcome.ERROR
    assert result.error.startswith("HTTP 500")
    assert "\x1b" not in result.error
    assert "\x07" not in result.error


def test_fetch_many_never_trips_over_its_own_shutdown(httpserver: HTTPServer) -> None:
    """The worker loop closing just as the last result arrives was once an error."""
    httpserver.expect_request("/f").respond_with_data(b"x")
    requests = [FetchRequest(feed_id=i, url=httpserver.url_for("/f")) for i in range(3)]
    for _ in range(40):
        assert len(list(fetch_many(requests, SETTINGS, NOW))) == 3


def test_leaving_fetch_many_early_cancels_the_rest(
    raw_server: Callable[[Handle], RawServer],
) -> None:
    def stall(conn: socket.socket, server: RawServer) -> None:
        read_head(conn)
        server.wait(5)

    slow = raw_server(stall)
    settings = Settings(read_timeout=5.0, feed_deadline=5.0)
    requests = [FetchRequest(feed_id=1, url="file:///nonexistent/feed.xml")]
    requests += [FetchRequest(feed_id=i, url=slow.url(f"/{i}")) for i in range(2, 5)]
    started = time.monotonic()
    results = fetch_many(requests, settings, NOW)
    first = next(results)
    results.close()  # what a Ctrl-C in the consumer does
    assert first.request.feed_id == 1
    assert time.monotonic() - started < 2.0


def test_a_fifo_is_not_read(tmp_path: Path) -> None:
    """A file:// feed that never delivers (a FIFO) must not hang the run."""
    fifo = tmp_path / "feed.fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    result = get(fifo.as_uri())
    assert result.outcome is FetchOutcome.ERROR
    assert "not a regular file" in result.error
    assert time.monotonic() - started < 1.0


def test_an_unparseable_stored_url_fails_alone(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/ok").respond_with_data(b"fine")
    requests = [
        FetchRequest(feed_id=1, url="http://[oops/feed.xml"),
        FetchRequest(feed_id=2, url=httpserver.url_for("/ok")),
    ]
    by_id = {r.request.feed_id: r for r in fetch_many(requests, SETTINGS, NOW)}
    assert by_id[1].outcome is FetchOutcome.ERROR
    assert by_id[2].outcome is FetchOutcome.OK


@pytest.mark.parametrize("value", ["\u00b2", "\u0661\u0662", "99999999999999999999999"])
def test_odd_retry_after_digits(httpserver: HTTPServer, value: str) -> None:
    httpserver.expect_request("/busy").respond_with_data(
        "", status=503, headers={"Retry-After": value.encode("utf-8").decode("latin-1")}
    )
    result = get(httpserver.url_for("/busy"))
    assert result.outcome is FetchOutcome.ERROR
    assert result.error.startswith("HTTP 503")


@pytest.fixture
def https_server() -> Iterator[HTTPServer]:
    """A server with a self-signed certificate for 127.0.0.1 (for these tests only)."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(DATA / "tls" / "cert.pem", DATA / "tls" / "key.pem")
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    yield server
    server.clear()
    server.stop()


def test_https_is_verified_and_honours_ssl_cert_file(
    https_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pool shares one TLS context (made on its own thread): it verifies
    certificates, against SSL_CERT_FILE when that is set, as httpx's own would."""
    https_server.expect_request("/feed").respond_with_data(b"<rss>ok</rss>")
    requests = [FetchRequest(feed_id=1, url=https_server.url_for("/feed"))]
    assert requests[0].url.startswith("https://127.0.0.1:")

    (untrusted,) = fetch_many(requests, SETTINGS, NOW)
    assert untrusted.outcome is FetchOutcome.ERROR
    assert "TLS error" in untrusted.error and "CERTIFICATE_VERIFY_FAILED" in untrusted.error

    monkeypatch.setenv("SSL_CERT_FILE", str(DATA / "tls" / "cert.pem"))
    (trusted,) = fetch_many(requests, SETTINGS, NOW)
    assert trusted.outcome is FetchOutcome.OK
    assert trusted.body == b"<rss>ok</rss>"


def test_a_redirect_to_https_in_a_plain_http_run_is_verified(
    httpserver: HTTPServer, https_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run of http:// URLs loads no CA bundle; one that redirects to https gets
    one verified context, made then and shared by every connection of the run."""
    made = []
    create = httpx.create_ssl_context

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(1)
        return create(*args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", counted)
    https_server.expect_request("/feed").respond_with_data(b"<rss>ok</rss>")
    httpserver.expect_request("/old").respond_with_data(
        b"", status=301, headers={"Location": https_server.url_for("/feed")}
    )
    httpserver.expect_request("/plain").respond_with_data(b"<rss>plain</rss>")

    (plain,) = fetch_many(
        [FetchRequest(feed_id=1, url=httpserver.url_for("/plain"))], SETTINGS, NOW
    )
    assert plain.outcome is FetchOutcome.OK and made == []

    requests = [FetchRequest(feed_id=i, url=httpserver.url_for("/old")) for i in range(4)]
    untrusted = list(fetch_many(requests, SETTINGS, NOW))
    assert all("CERTIFICATE_VERIFY_FAILED" in r.error for r in untrusted)
    assert made == [1]

    monkeypatch.setenv("SSL_CERT_FILE", str(DATA / "tls" / "cert.pem"))
    trusted = list(fetch_many(requests, SETTINGS, NOW))
    assert all(r.outcome is FetchOutcome.OK and r.body == b"<rss>ok</rss>" for r in trusted)
    assert {r.moved_to for r in trusted} == {https_server.url_for("/feed")}
    assert made == [1, 1]


def test_header_map_folds_names_joins_repeats_and_decodes_bytes_it_can() -> None:
    from storyfeed.fetch import _header_map

    raw = [
        (b"ETag", b'"v1"'),
        (b"Cache-Control", b"max-age=60"),
        (b"cache-control", b"public"),
        (b"X-Title", "caf\u00e9".encode()),
        (b"X-Old", b"caf\xe9"),
    ]
    assert _header_map(raw) == {
        "etag": '"v1"',
        "cache-control": "max-age=60, public",
        "x-title": "caf\u00e9",
        "x-old": "caf\u00e9",
    }


def test_answers_that_come_at_once_are_fetched_by_the_first_threads(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads are added only while the run waits on the network (the requests in
    flight at once, when they are, are test_requests_beyond_one_pool_run_at_once's)."""
    import threading

    from storyfeed import fetch as fetching

    monkeypatch.setattr(fetching, "_BUSY", 0.0)  # never idle enough, here
    httpserver.expect_request("/f").respond_with_data(b"<rss/>")
    requests = [FetchRequest(feed_id=i, url=httpserver.url_for("/f")) for i in range(40)]
    settings = Settings(concurrency=16, per_host=16)
    seen: set[str] = set()

    results = []
    for batch in fetch_batches(requests, settings, NOW):
        results += batch
        seen |= {t.name for t in threading.enumerate() if t.name.startswith("storyfeed-fetch-")}

    assert len(results) == 40
    assert all(r.outcome is FetchOutcome.OK for r in results)
    assert seen and len(seen) <= fetching._FIRST_THREADS


@pytest.mark.parametrize(
    ("pause", "busy"),
    [
        # Steady answers from a network 5-50 ms away: the process sits idle.
        (0.05, None),
        # Longer than any wait for the GIL: threads come even if the process looks busy.
        (0.15, 0.0),
    ],
)
def test_answers_that_wait_on_the_server_get_more_threads(
    raw_server: Callable[[Handle], RawServer],
    monkeypatch: pytest.MonkeyPatch,
    pause: float,
    busy: float | None,
) -> None:
    from storyfeed import fetch as fetching

    if busy is not None:
        monkeypatch.setattr(fetching, "_BUSY", busy)  # the idle rule held off
    server = raw_server(counting_after(pause))
    settings = Settings(read_timeout=2.0, feed_deadline=5.0, concurrency=8, per_host=8)
    requests = [FetchRequest(feed_id=i, url=server.url(f"/feed/{i}")) for i in range(24)]

    results = list(fetch_many(requests, settings, NOW))

    assert len(results) == 24 and all(r.outcome is FetchOutcome.OK for r in results)
    assert server.most_active == 8
