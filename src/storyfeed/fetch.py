"""Fetching feeds politely; the only module that uses httpx.

Each fetch ends as a :class:`FetchResult` value, never an exception, so one
dead server cannot stop a run. Bodies are decompressed here, not by httpx,
so that both the compressed and the inflated size are capped while streaming.
"""

from __future__ import annotations

import collections
import contextlib
import email.utils
import functools
import os
import queue
import socket
import ssl
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from storyfeed import PROJECT_URL, __version__
from storyfeed.config import Settings
from storyfeed.errors import ConfigError
from storyfeed.text import clean_line, redact_url
from storyfeed.updates import FetchOutcome, FetchRequest, FetchResult

# httpx imports its command-line client (click, pygments, rich.syntax: ~15 ms) whenever
# click is installed, as apprise makes sure it is; storyfeed never runs that client.
# A None in sys.modules makes httpx's `from ._main import main` fail, and httpx then
# defines a stand-in instead.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import httpx  # noqa: E402

if TYPE_CHECKING:
    import httpcore

USER_AGENT = f"storyfeed/{__version__} (+{PROJECT_URL})"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/rdf+xml;q=0.9, application/json;q=0.8, application/xml;q=0.8, "
    "text/xml;q=0.8, text/html;q=0.5, */*;q=0.1"
)
_PERMANENT = frozenset({301, 308})


class _Abort(Exception):
    """Stops reading a body; the message is the feed's error."""


class _DeadlinePassed(Exception):
    """Raised by a socket operation begun after the fetch's deadline."""


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

    The fetches run on worker threads, so the caller can store one feed while
    others are still downloading. At most ``2 x concurrency`` bodies wait for the
    caller: fetching pauses when it falls behind, so memory stays flat however many
    feeds there are. Closing the iterator early (say on Ctrl-C) starts no further
    fetch; those under way end by their deadline on daemon threads, unwaited.
    """
    todo = list(requests)
    if not todo:
        return
    run = _Run(todo, settings, now)
    complete = False
    try:
        while run.left:
            batch = run.next_batch()
            yield batch
            run.taken(len(batch))
        complete = True
    finally:
        run.stop(wait=complete)


def fetch_one(request: FetchRequest, settings: Settings, now: datetime) -> FetchResult:
    with _client(settings, 1, None) as client:
        return fetch(client, request, settings, now)


class _Run:
    """One ``fetch_batches``: worker threads taking requests in turn, at most
    ``per_host`` to one host and ``concurrency`` in all, results in a queue."""

    def __init__(self, todo: list[FetchRequest], settings: Settings, now: datetime) -> None:
        self.settings, self.now, self.left = settings, now, len(todo)
        self.results: queue.SimpleQueue[FetchResult] = queue.SimpleQueue()
        # Taken before each fetch, given back as its result is taken by the caller.
        self.backlog = threading.Semaphore(2 * max(1, settings.concurrency))
        self.turn = threading.Condition(threading.Lock())
        self.waiting: dict[str, collections.deque[FetchRequest]] = {}
        for request in todo:
            self.waiting.setdefault(_host(request.url), collections.deque()).append(request)
        self.active: collections.Counter[str] = collections.Counter()
        self.stopped = False
        # One CA bundle for every pool: loaded while the clients are made (httpcore
        # imported) when a URL needs it, else only if a redirect leads to https.
        tls = _TlsContext(early=any(r.url[:6].lower() == "https:" for r in todo))
        self.workers = min(max(1, settings.concurrency), len(todo))
        # httpcore's pool does work quadratic in its connections at every request:
        # threads are spread over pools of at most _POOL_SIZE, a thread keeps to its
        # own (so a pool never has more requests than connections).
        pools = -(-self.workers // _POOL_SIZE)
        self.pool_size = -(-self.workers // pools)
        self.clients = [_client(settings, self.pool_size, tls) for _ in range(pools)]
        self.threads: list[threading.Thread] = []
        self.alive = 0
        self._more_threads(_FIRST_THREADS)
        self.window = (time.monotonic(), time.process_time())  # for _ramp

    def _more_threads(self, count: int) -> None:
        """Start up to ``count`` more threads, ``concurrency`` in all at most."""
        with self.turn:
            if self.stopped or not self.waiting:
                return
            first = len(self.threads)
            added = [
                threading.Thread(
                    target=self._work,
                    args=(self.clients[i // self.pool_size],),
                    name=f"storyfeed-fetch-{i}",
                    daemon=True,
                )
                for i in range(first, min(first + count, self.workers))
            ]
            self.threads += added
            self.alive += len(added)
        for thread in added:
            thread.start()

    def next_batch(self) -> list[FetchResult]:
        """The results finished since the last call (waiting for one).

        Threads are added while the run waits on the network, not on the GIL: when
        this process used less than ``_BUSY`` of a core over the last
        ``_RAMP_WINDOW`` (a result was slow to come, or came after a wait on the
        server), or when a fetch took ``_SLOW_FETCH`` or more, longer than waiting
        for the GIL takes (so a busy main thread does not hold the ramp back).
        Servers that answer at once (a run of 304s on a fast network) keep the first
        couple of threads busy, and more would only queue for the GIL; slow ones get
        up to ``concurrency`` at once within a few tens of ms.
        """
        while len(self.threads) < self.workers:
            try:
                first = self.results.get(timeout=_RAMP_WINDOW)
                break
            except queue.Empty:
                self._ramp()
        else:
            first = self.results.get()
        batch = [first]
        with contextlib.suppress(queue.Empty):
            while True:
                batch.append(self.results.get_nowait())
        self.left -= len(batch)
        if any((result.elapsed_ms or 0) >= _SLOW_FETCH for result in batch):
            self._more_threads(_MORE_THREADS)
        else:
            self._ramp()
        return batch

    def _ramp(self) -> None:
        """Add threads if the last window (``_RAMP_WINDOW`` at least) was spent
        mostly waiting."""
        if len(self.threads) >= self.workers:
            return
        wall, cpu = time.monotonic(), time.process_time()
        if wall - self.window[0] < _RAMP_WINDOW:
            return
        if cpu - self.window[1] < _BUSY * (wall - self.window[0]):
            self._more_threads(_MORE_THREADS)
        self.window = (wall, cpu)

    def taken(self, count: int) -> None:
        self.backlog.release(count)

    def stop(self, *, wait: bool) -> None:
        with self.turn:
            self.stopped = True
            self.turn.notify_all()
        self.backlog.release(len(self.threads))  # none stays waiting for room
        if wait:
            for thread in self.threads:
                thread.join()

    def _work(self, client: httpx.Client) -> None:
        try:
            while True:
                self.backlog.acquire()
                taken = self._next()
                if taken is None:
                    return
                request, host = taken
                try:
                    result = fetch(client, request, self.settings, self.now)
                except Exception as exc:  # one feed's surprise must not stop the others
                    result = _error(request, f"unexpected error: {type(exc).__name__}: {exc}")
                finally:
                    self._done(host)
                self.results.put(result)
        finally:
            with self.turn:
                self.alive -= 1
                last = self.alive == 0
            if last:
                for each in self.clients:
                    each.close()

    def _next(self) -> tuple[FetchRequest, str] | None:
        """The first waiting request whose host has a free slot, and that host; none
        once all are taken."""
        limit = max(1, self.settings.per_host)
        with self.turn:
            while not self.stopped and self.waiting:
                for host, requests in self.waiting.items():
                    if self.active[host] < limit:
                        request = requests.popleft()
                        if not requests:
                            del self.waiting[host]
                            if not self.waiting:
                                self.turn.notify_all()  # the idle threads may end
                        self.active[host] += 1
                        return request, host
                self.turn.wait()
            return None

    def _done(self, host: str) -> None:
        with self.turn:
            self.active[host] -= 1
            self.turn.notify()


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


class _TlsContext:
    """The TLS context a run's clients share, made once: ``early``, on a thread of
    its own (loading the CA bundle takes ~15 ms and releases the GIL, so it overlaps
    the clients' set-up), else at the first https connection."""

    def __init__(self, *, early: bool = False) -> None:
        self._made: list[ssl.SSLContext] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if early:
            self._thread = threading.Thread(target=self._make, name="storyfeed-tls", daemon=True)
            self._thread.start()

    def _make(self) -> None:
        with contextlib.suppress(Exception):  # made again by get(), where it may raise
            self._made.append(httpx.create_ssl_context())

    def get(self) -> ssl.SSLContext:
        """The context; ConfigError if the certificates cannot be loaded (a wrong
        SSL_CERT_FILE, say)."""
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if not self._made:
                try:
                    self._made.append(httpx.create_ssl_context())
                except (OSError, ssl.SSLError) as exc:
                    raise ConfigError(
                        "cannot load the certificates that https needs (SSL_CERT_FILE, "
                        f"SSL_CERT_DIR): {getattr(exc, 'strerror', None) or exc}"
                    ) from exc
            return self._made[0]


_POOL_SIZE = 16  # connections in one client's pool at most
_FIRST_THREADS = 2  # fetch threads to start with
_MORE_THREADS = 4  # threads added each time the run shows itself waiting on the network
_RAMP_WINDOW = 0.01  # seconds: the span over which the use of the CPU is judged
_BUSY = 0.5  # of a core: a run using less waits on the network more than on the GIL
_SLOW_FETCH = 100  # ms: a fetch this long waited on its server (loopback ones: < 30 ms)

# The deadline of the fetch the current thread runs (a time.monotonic() value).
_deadlines = threading.local()


def _client(settings: Settings, connections: int, tls: _TlsContext | None) -> httpx.Client:
    """A client for one run; ConfigError if the environment names a proxy that
    cannot be used."""
    from urllib.request import getproxies

    # httpx reads NO_PROXY only to go with a proxy, and cannot read every spelling
    # of it: without a proxy the environment is not asked.
    proxied = any(getproxies().get(scheme) for scheme in ("http", "https", "all"))
    try:
        client = _Client(
            tls or _TlsContext(),
            connections,
            trust_env=proxied,
            headers={
                "User-Agent": USER_AGENT,
                "Accept": ACCEPT,
                "Accept-Encoding": "gzip, deflate",
            },
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
            follow_redirects=True,
            max_redirects=10,
        )
    except ImportError as exc:  # httpx: a SOCKS proxy needs socksio
        raise _proxy_trouble("a SOCKS proxy needs the socksio package beside storyfeed") from exc
    except (ValueError, httpx.InvalidURL) as exc:  # httpx: a proxy URL it cannot read
        # Not httpx's words: they may quote a piece of a password.
        raise _proxy_trouble(
            "a proxy URL or a NO_PROXY entry cannot be read (http://, https:// and "
            "socks5:// proxies work)"
        ) from exc
    client._cookies = _Cookies()  # httpx's setter would wrap it in a plain Cookies
    return client


def _proxy_trouble(reason: str) -> ConfigError:
    names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    found = sorted({key.upper() for key in os.environ if key.upper() in names})
    return ConfigError(
        f"the proxy settings of the environment ({', '.join(found)}) cannot be used: {reason}"
    )


class _Client(httpx.Client):
    """httpx's client over storyfeed's transports. httpx reads the proxies of the
    environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY, as curl does) and
    asks for a transport for each; every transport keeps the fetch's deadline and
    shares the run's TLS context."""

    def __init__(self, tls: _TlsContext, connections: int, **options: Any) -> None:
        self._tls, self._connections = tls, connections
        super().__init__(**options)

    def _init_transport(self, *args: Any, **options: Any) -> httpx.BaseTransport:
        return _Transport(self._tls, self._connections)

    def _init_proxy_transport(
        self, proxy: httpx.Proxy, *args: Any, **options: Any
    ) -> httpx.BaseTransport:
        return _ProxyTransport(self._tls, self._connections, proxy)


class _Cookies(httpx.Cookies):
    """The client's cookie jar, which reads only the responses that set a cookie:
    httpx dresses every response up for the standard library's jar first, which
    costs a 304 from a nearby server a tenth of its time."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


class _Transport(httpx.HTTPTransport):
    """httpx's own transport, over a connection pool whose every connect, read and
    write ends by the deadline of the fetch that runs it (a server that drips its
    headers one byte at a time cannot outlast ``feed_deadline``), and which asks
    for the TLS context at its first https connection."""

    def __init__(self, tls: _TlsContext, connections: int) -> None:
        limits = httpx.Limits(max_connections=connections)
        # The pool httpx makes is replaced at once: it gets a context without a CA
        # (which could verify nothing) instead of loading the bundle for nothing.
        super().__init__(verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), limits=limits)
        self._pool = _pool_class()(
            tls,
            max_connections=connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_deadline_backend(),
        )


class _ProxyTransport(httpx.HTTPTransport):
    """httpx's transport through a proxy, whose connections (to the proxy, then
    tunnelled) end by the fetch's deadline too."""

    def __init__(self, tls: _TlsContext, connections: int, proxy: httpx.Proxy) -> None:
        limits = httpx.Limits(max_connections=connections)
        super().__init__(verify=tls.get(), limits=limits, proxy=proxy)
        # httpx builds httpcore's proxy pool itself and has no say in its network
        # backend: it is set here, before the pool's first connection.
        self._pool._network_backend = _deadline_backend()


def _bounded(timeout: float | None) -> float | None:
    """A socket operation's timeout, cut to what is left before the fetch's deadline."""
    deadline: float | None = getattr(_deadlines, "at", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise _DeadlinePassed
    return left if timeout is None else min(timeout, left)


@functools.cache
def _pool_class() -> Callable[..., httpcore.ConnectionPool]:
    """httpcore's connection pool, given the run's TLS context when it first
    connects to an https origin (defined on first use, as the backend below)."""
    import httpcore

    class Pool(httpcore.ConnectionPool):
        def __init__(self, tls: _TlsContext, **options: Any) -> None:
            super().__init__(**options)
            self._tls = tls

        def create_connection(self, origin: httpcore.Origin) -> httpcore.ConnectionInterface:
            if origin.scheme == b"https" and self._ssl_context is None:
                self._ssl_context = self._tls.get()
            return super().create_connection(origin)

    return Pool


@functools.cache
def _deadline_backend() -> httpcore.NetworkBackend:
    """httpcore's own network backend, every timeout bounded by the fetch's deadline
    (defined on first use: httpcore is imported only where a fetch happens)."""
    import httpcore

    class Stream(httpcore.NetworkStream):
        def __init__(self, stream: httpcore.NetworkStream) -> None:
            self._stream = stream

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self._stream.read(max_bytes, _bounded(timeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._stream.write(buffer, _bounded(timeout))

        def close(self) -> None:
            self._stream.close()

        def start_tls(
            self,
            ssl_context: ssl.SSLContext,
            server_hostname: str | None = None,
            timeout: float | None = None,
        ) -> httpcore.NetworkStream:
            return Stream(self._stream.start_tls(ssl_context, server_hostname, _bounded(timeout)))

        def get_extra_info(self, info: str) -> Any:
            return self._stream.get_extra_info(info)

    class Backend(httpcore.NetworkBackend):
        def __init__(self) -> None:
            self._backend = httpcore.SyncBackend()

        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
        ) -> httpcore.NetworkStream:
            stream = self._backend.connect_tcp(
                host, port, _bounded(timeout), local_address, socket_options
            )
            return Stream(stream)

        def connect_unix_socket(
            self,
            path: str,
            timeout: float | None = None,
            socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
        ) -> httpcore.NetworkStream:
            stream = self._backend.connect_unix_socket(path, _bounded(timeout), socket_options)
            return Stream(stream)

        def sleep(self, seconds: float) -> None:
            self._backend.sleep(seconds)

    return Backend()


def fetch(
    client: httpx.Client, request: FetchRequest, settings: Settings, now: datetime
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
    deadline = started + settings.feed_deadline
    late = f"took longer than the {settings.feed_deadline:g} s deadline"
    _deadlines.at = deadline
    try:
        result = _fetch_http(client, request, settings, now, deadline)
        return replace(result, elapsed_ms=round((time.monotonic() - started) * 1000))
    except _DeadlinePassed:
        return _error(request, late)
    except ConfigError as exc:  # no certificates to verify https with
        return _error(request, str(exc))
    except _Abort as exc:
        return _error(request, str(exc))
    except httpx.TimeoutException:
        return _error(request, late if time.monotonic() >= deadline else "timed out")
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
    finally:
        _deadlines.at = None


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


def _fetch_http(
    client: httpx.Client,
    request: FetchRequest,
    settings: Settings,
    now: datetime,
    deadline: float,
) -> FetchResult:
    headers = {}
    if etag := _validator(request.etag):
        headers["If-None-Match"] = etag
    if last_modified := _validator(request.last_modified):
        headers["If-Modified-Since"] = last_modified
    with client.stream("GET", request.url, headers=headers) as response:
        status = response.status_code
        received = _header_map(response.headers.raw)
        base = FetchResult(
            request=request,
            outcome=FetchOutcome.OK,
            http_status=status,
            final_url=str(response.url),
            moved_to=_permanent_target(request.url, response),
            headers=received,
            max_age=_max_age(received.get("cache-control", "")),
            redirects=tuple((hop.status_code, str(hop.url)) for hop in response.history),
        )
        if status == 304:
            # A 304 has no body; reading its end hands the connection back to the
            # pool for the next feed instead of closing it.
            response.read()
            return replace(
                base,
                outcome=FetchOutcome.NOT_MODIFIED,
                etag=_validator(received.get("etag", request.etag)),
                last_modified=_validator(received.get("last-modified", request.last_modified)),
            )
        if status == 410:
            return replace(base, outcome=FetchOutcome.GONE)
        if status >= 300:
            retry = received.get("retry-after", "") if status in {429, 503} else ""
            return replace(
                base,
                outcome=FetchOutcome.ERROR,
                error=_message(request, f"HTTP {status} {response.reason_phrase or ''}"),
                retry_after=_retry_after(retry, now),
            )
        body = _read_body(response, received, settings.max_body_bytes, deadline)
        return replace(
            base,
            body=body,
            size=len(body),
            etag=_validator(received.get("etag", "")),
            last_modified=_validator(received.get("last-modified", "")),
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


def _header_map(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The response's headers by lower-case name, repeated ones joined with ", " (as
    httpx's own ``Headers.items()``, for a tenth of its work: every lookup there
    decodes every header again)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1").lower()
        try:
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _read_body(
    response: httpx.Response, headers: dict[str, str], cap: int, deadline: float
) -> bytes:
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise _Abort(f"the body is larger than the {_size(cap)} cap")
    decoder = _Decoder(headers.get("content-encoding", ""), cap)
    raw_total = 0
    for chunk in response.iter_raw():
        if time.monotonic() > deadline:  # also for a client whose sockets do not check
            raise _DeadlinePassed
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
