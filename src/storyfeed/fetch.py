"""Fetching feeds politely; the only module that uses httpx.

Each fetch ends as a :class:`FetchResult` value, never an exception, so one
dead server cannot stop a run. Bodies are decompressed here, not by httpx,
so that both the compressed and the inflated size are capped while streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import queue
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from storyfeed import PROJECT_URL, __version__
from storyfeed.config import Settings
from storyfeed.models import FetchOutcome, FetchRequest, FetchResult
from storyfeed.text import clean_line, redact_url

USER_AGENT = f"storyfeed/{__version__} (+{PROJECT_URL})"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/json;q=0.8, application/xml;q=0.8, "
    "text/xml;q=0.8, text/html;q=0.5, */*;q=0.1"
)
_PERMANENT = frozenset({301, 308})


class _Abort(Exception):
    """Stops reading a body; the message is the feed's error."""


def fetch_many(
    requests: Iterable[FetchRequest], settings: Settings, now: datetime
) -> Iterator[FetchResult]:
    """Fetch concurrently (bounded overall and per host); yield results as they finish.

    See :func:`fetch_batches`, of which this is the flat form.
    """
    for batch in fetch_batches(requests, settings, now):
        yield from batch


def fetch_batches(
    requests: Iterable[FetchRequest], settings: Settings, now: datetime
) -> Iterator[list[FetchResult]]:
    """Fetch concurrently (bounded overall and per host); yield, each time, every
    result finished since the last yield (at least one).

    The fetches run on an event loop in a worker thread, so the caller can store
    one feed while others are still downloading. At most ``2 x concurrency`` bodies
    wait for the caller: fetching pauses when it falls behind, so memory stays flat
    however many feeds there are. Closing the iterator early (say on Ctrl-C)
    cancels what is still under way.
    """
    todo = list(requests)
    if not todo:
        return
    finished: queue.SimpleQueue[FetchResult | None] = queue.SimpleQueue()
    started = threading.Event()
    running: dict[str, Any] = {}

    async def main() -> None:
        running["loop"], running["task"] = asyncio.get_running_loop(), asyncio.current_task()
        running["backlog"] = backlog = asyncio.Semaphore(2 * max(1, settings.concurrency))
        started.set()
        try:
            await _fetch_all(todo, settings, now, finished.put, backlog, tls)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # re-raised in the caller's thread
            running["error"] = exc
        finally:
            finished.put(None)

    tls = _TlsContext()
    worker = threading.Thread(target=asyncio.run, args=(main(),), name="storyfeed-fetch")
    worker.start()
    started.wait()
    complete = False
    try:
        ended = False
        while not ended and (result := finished.get()) is not None:
            batch = [result]
            with contextlib.suppress(queue.Empty):
                while (result := finished.get_nowait()) is not None:
                    batch.append(result)
                ended = True
            with contextlib.suppress(RuntimeError):  # the loop has ended: all was fetched
                for _ in batch:
                    running["loop"].call_soon_threadsafe(running["backlog"].release)
            yield batch
        complete = True
    finally:
        if not complete:
            with contextlib.suppress(RuntimeError):  # the loop may have just closed
                running["loop"].call_soon_threadsafe(running["task"].cancel)
        worker.join()
    if "error" in running:
        raise running["error"]


def fetch_one(request: FetchRequest, settings: Settings, now: datetime) -> FetchResult:
    async def main() -> FetchResult:
        async with _client(settings) as client:
            return await fetch(client, request, settings, now)

    return asyncio.run(main())


class _TlsContext:
    """The TLS context every client shares, made on a thread of its own: loading the
    CA bundle takes ~15 ms and releases the GIL, so it overlaps the clients' set-up
    (httpcore's imports) instead of coming before it."""

    def __init__(self) -> None:
        self._made: list[ssl.SSLContext] = []
        self._thread = threading.Thread(target=self._make, name="storyfeed-tls", daemon=True)
        self._thread.start()

    def _make(self) -> None:
        with contextlib.suppress(Exception):  # made again by get(), where it may raise
            self._made.append(httpx.create_ssl_context())

    def get(self) -> ssl.SSLContext:
        self._thread.join()
        return self._made[0] if self._made else httpx.create_ssl_context()


async def _fetch_all(
    todo: list[FetchRequest],
    settings: Settings,
    now: datetime,
    emit: Callable[[FetchResult], None],
    backlog: asyncio.Semaphore,
    tls: _TlsContext | None = None,
) -> None:
    """``backlog`` is taken before each fetch and given back by the consumer of its
    result."""
    # httpcore's pool does work quadratic in its connections at every request (it
    # checks each for expiry, and counts the idle ones for each idle one): several
    # small pools cost far less than one big one. A request takes a pool with a
    # free connection (there always is one), the one its host used last if it can.
    concurrency = max(1, settings.concurrency)
    shards = -(-concurrency // _POOL_SIZE)
    size = -(-concurrency // shards)
    busy = [0] * shards  # requests under way in each pool
    last: dict[str, int] = {}  # the pool a host used last: its idle connections are there
    per_host: dict[str, asyncio.Semaphore] = {}
    overall = asyncio.Semaphore(concurrency)

    async def one(clients: list[httpx.AsyncClient], request: FetchRequest) -> None:
        try:
            host = urlsplit(request.url).hostname or ""
        except ValueError:
            host = ""
        limit = per_host.setdefault(host, asyncio.Semaphore(max(1, settings.per_host)))
        await backlog.acquire()
        async with limit, overall:  # the host's turn first, so no slot idles waiting
            shard = last.get(host, 0)
            if busy[shard] >= size:
                shard = busy.index(min(busy))
            last[host] = shard
            busy[shard] += 1
            try:
                result = await fetch(clients[shard], request, settings, now)
            except Exception as exc:  # one feed's surprise must not cancel the others
                result = _error(request, f"unexpected error: {type(exc).__name__}: {exc}")
            finally:
                busy[shard] -= 1
            emit(result)

    async with contextlib.AsyncExitStack() as stack, asyncio.TaskGroup() as group:
        import httpcore  # noqa: F401 (httpx's own transport: imported while the TLS context loads)

        context = (tls or _TlsContext()).get()  # one CA bundle for every pool
        clients = [
            await stack.enter_async_context(_client(settings, size, context)) for _ in range(shards)
        ]
        for request in todo:
            group.create_task(one(clients, request))


_POOL_SIZE = 4  # connections in one client's pool at most


def _client(
    settings: Settings, connections: int | None = None, tls: ssl.SSLContext | None = None
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        verify=tls or True,
        headers={"User-Agent": USER_AGENT, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"},
        timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
        follow_redirects=True,
        max_redirects=10,
        limits=httpx.Limits(max_connections=connections or max(1, settings.concurrency)),
    )


async def fetch(
    client: httpx.AsyncClient, request: FetchRequest, settings: Settings, now: datetime
) -> FetchResult:
    """Fetch one feed URL (http, https or file) into a result value.

    ``feed_deadline`` bounds the whole exchange, connecting and headers included,
    so a server that drips bytes cannot hold a run up.
    """
    try:
        scheme = urlsplit(request.url).scheme.lower()
    except ValueError:
        return _error(request, "invalid URL")
    if scheme == "file":
        return _fetch_file(request, settings)
    if scheme not in {"http", "https"}:
        return _error(request, f"cannot fetch {scheme or 'scheme-less'} URLs")
    started = time.monotonic()
    try:
        async with asyncio.timeout(settings.feed_deadline):
            result = await _fetch_http(client, request, settings, now)
        return replace(result, elapsed_ms=round((time.monotonic() - started) * 1000))
    except TimeoutError:
        return _error(request, f"took longer than the {settings.feed_deadline:g} s deadline")
    except _Abort as exc:
        return _error(request, str(exc))
    except httpx.TimeoutException:
        return _error(request, "timed out")
    except httpx.TooManyRedirects:
        return _error(request, "too many redirects (a redirect loop?)")
    except httpx.ConnectError as exc:
        return _error(request, _connect_message(exc))
    except httpx.RemoteProtocolError:
        return _error(request, "the server closed the connection or broke the protocol")
    except httpx.UnsupportedProtocol:
        return _error(request, "redirected to a URL that is not http(s)")
    except httpx.InvalidURL:
        return _error(request, "invalid URL")
    except httpx.HTTPError as exc:
        return _error(request, f"network error: {type(exc).__name__}")


def _connect_message(exc: httpx.ConnectError) -> str:
    """Name the cause, which anyio wraps in "All connection attempts failed"."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "could not resolve the host name"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
        if isinstance(cause, TimeoutError):
            return "timed out while connecting"
        cause = cause.__cause__ or cause.__context__
    return f"could not connect: {exc or type(exc).__name__}"


def _error(request: FetchRequest, message: str) -> FetchResult:
    return FetchResult(
        request=request, outcome=FetchOutcome.ERROR, error=_message(request, message)
    )


def _message(request: FetchRequest, message: str) -> str:
    """An error message fit to store and show: one clean line, no password."""
    return clean_line(message.replace(request.url, redact_url(request.url)))[:500]


def _validator(value: str) -> str:
    """A stored ETag/Last-Modified fit to send back: printable ASCII, else nothing."""
    return value if value.isascii() and value.isprintable() and len(value) <= 1024 else ""


async def _fetch_http(
    client: httpx.AsyncClient, request: FetchRequest, settings: Settings, now: datetime
) -> FetchResult:
    headers = {}
    if etag := _validator(request.etag):
        headers["If-None-Match"] = etag
    if last_modified := _validator(request.last_modified):
        headers["If-Modified-Since"] = last_modified
    async with client.stream("GET", request.url, headers=headers) as response:
        status = response.status_code
        base = FetchResult(
            request=request,
            outcome=FetchOutcome.OK,
            http_status=status,
            final_url=str(response.url),
            moved_to=_permanent_target(request.url, response),
            headers={k.lower(): v for k, v in response.headers.items()},
            max_age=_max_age(response.headers.get("cache-control", "")),
            redirects=tuple((hop.status_code, str(hop.url)) for hop in response.history),
        )
        if status == 304:
            # A 304 has no body; reading its end hands the connection back to the
            # pool for the next feed instead of closing it.
            await response.aread()
            return replace(
                base,
                outcome=FetchOutcome.NOT_MODIFIED,
                etag=_validator(response.headers.get("etag", request.etag)),
                last_modified=_validator(
                    response.headers.get("last-modified", request.last_modified)
                ),
            )
        if status == 410:
            return replace(base, outcome=FetchOutcome.GONE)
        if status >= 300:
            retry = response.headers.get("retry-after", "") if status in {429, 503} else ""
            return replace(
                base,
                outcome=FetchOutcome.ERROR,
                error=_message(request, f"HTTP {status} {response.reason_phrase or ''}"),
                retry_after=_retry_after(retry, now),
            )
        body = await _read_body(response, settings.max_body_bytes)
        return replace(
            base,
            body=body,
            size=len(body),
            etag=_validator(response.headers.get("etag", "")),
            last_modified=_validator(response.headers.get("last-modified", "")),
        )


def _permanent_target(original: str, response: httpx.Response) -> str:
    """The URL reached through permanent redirects only, if it differs."""
    target = ""
    for hop in response.history:
        if hop.status_code not in _PERMANENT:
            break
        location = hop.headers.get("location")
        if location is None:
            break
        target = str(hop.url.join(location))
    return target if target and target != original else ""


async def _read_body(response: httpx.Response, cap: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise _Abort(f"the body is larger than the {_size(cap)} cap")
    decoder = _Decoder(response.headers.get("content-encoding", ""), cap)
    raw_total = 0
    async for chunk in response.aiter_raw():
        raw_total += len(chunk)
        if raw_total > cap:
            raise _Abort(f"the body is larger than the {_size(cap)} cap")
        decoder.feed(chunk)
    return decoder.finish()


class _Decoder:
    """Inflates gzip/deflate bodies in bounded steps, stopping at the cap."""

    def __init__(self, encoding: str, cap: int) -> None:
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in {"gzip", "x-gzip", "deflate"}):
            raise _Abort(f"unsupported Content-Encoding {encoding!r}")
        self._coding = codings[0] if codings else ""
        self._cap = cap
        self._out = bytearray()
        self._inflater: zlib._Decompress | None = None
        self._pending = b""

    def feed(self, data: bytes) -> None:
        if not self._coding:
            self._append(data)
            return
        if self._inflater is None:
            self._pending += data
            if len(self._pending) < 2:
                return
            data, self._pending = self._pending, b""
            self._inflater = zlib.decompressobj(self._wbits(data))
        self._inflate(data)

    def _wbits(self, head: bytes) -> int:
        if self._coding != "deflate":
            return 16 + zlib.MAX_WBITS
        # RFC 9110 says zlib-wrapped, but many servers send raw deflate.
        zlib_wrapped = (head[0] & 0x0F) == 8 and ((head[0] << 8) | head[1]) % 31 == 0
        return zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS

    def _inflate(self, data: bytes) -> None:
        assert self._inflater is not None
        try:
            while data:
                room = self._cap - len(self._out) + 1
                self._append(self._inflater.decompress(data, room))
                data = self._inflater.unconsumed_tail
                if self._inflater.eof and self._inflater.unused_data.strip(b"\0"):
                    # A gzip stream may hold several members; read the next one.
                    data = self._inflater.unused_data
                    self._inflater = zlib.decompressobj(self._wbits(data))
        except zlib.error as exc:
            raise _Abort("the compressed body is corrupt") from exc

    def _append(self, data: bytes) -> None:
        self._out += data
        if len(self._out) > self._cap:
            raise _Abort(f"the body inflates to more than the {_size(self._cap)} cap")

    def finish(self) -> bytes:
        if self._pending and self._coding:
            raise _Abort("the compressed body is corrupt")
        if self._inflater is not None:
            try:
                self._append(self._inflater.flush())
            except zlib.error as exc:
                raise _Abort("the compressed body is corrupt") from exc
            if not self._inflater.eof:
                raise _Abort("the compressed body is truncated")
        return bytes(self._out)


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def _max_age(cache_control: str) -> int | None:
    """Seconds from ``max-age``; none when ``no-cache``/``no-store`` appear anywhere."""
    max_age = None
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        name, value = name.strip().lower(), value.strip().strip('"')
        if name in {"no-cache", "no-store"}:
            return None
        if name == "max-age" and value.isascii() and value.isdigit():
            max_age = int(value)
    return max_age


def _retry_after(value: str, now: datetime) -> datetime | None:
    """RFC 9110 §10.2.3: seconds or an HTTP date; anything else is ignored."""
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        seconds = min(int(value[:12]), 10**9)
        return now + timedelta(seconds=seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except OverflowError:  # a date at the edge of year 9999 in a far time zone
        return None


def _fetch_file(request: FetchRequest, settings: Settings) -> FetchResult:
    parts = urlsplit(request.url)
    if parts.netloc not in {"", "localhost"}:
        return _error(request, "file URLs on another host are not supported")
    path = Path(unquote(parts.path))
    try:
        if not path.is_file():  # a FIFO or a device could block the run for good
            exists = path.exists()
            return _error(
                request, f"{path} is not a regular file" if exists else f"no such file: {path}"
            )
        with path.open("rb") as handle:
            body = handle.read(settings.max_body_bytes + 1)
    except (OSError, ValueError) as exc:
        return _error(request, f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
    if len(body) > settings.max_body_bytes:
        return _error(request, f"the file is larger than the {_size(settings.max_body_bytes)} cap")
    return FetchResult(
        request=request, outcome=FetchOutcome.OK, body=body, final_url=request.url, size=len(body)
    )
