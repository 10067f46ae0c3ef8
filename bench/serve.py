"""Loopback HTTP servers for the corpus, with conditional GET.

:func:`start` prefers nginx (from the system's packages) run as an ordinary
process: a generated ``nginx.conf`` in a temporary directory, ``daemon off``,
its pid file, logs and temporary paths in that directory, ``etag on`` and
Last-Modified from the files. Without nginx it falls back to
:class:`PythonServer`, a stdlib ``ThreadingHTTPServer`` that answers ``304 Not
Modified`` to ``If-None-Match`` and ``If-Modified-Since`` the same way. Both
listen on 127.0.0.1 only, on a free port.

Run it on its own to serve a directory: ``python bench/serve.py DIR [--python]``;
``python bench/serve.py URLFILE --get`` is the client of the "curl floor" where
curl is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import email.utils
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Protocol

from gen import CONTENT_TYPES

HOST = "127.0.0.1"
PR_SET_PDEATHSIG = 1
NGINX_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


class Server(Protocol):
    """A running server of one directory."""

    name: str  # what it is, for the report ("nginx 1.22.1", "python")

    @property
    def base_url(self) -> str: ...

    def close(self) -> None: ...


class ServerError(Exception):
    """A server could not be started."""


def find_nginx() -> str | None:
    """The nginx executable, if one is installed."""
    found = shutil.which("nginx")
    if found:
        return found
    return next((path for path in NGINX_PATHS if os.access(path, os.X_OK)), None)


def free_port() -> int:
    """A port nothing listens on right now (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# --- nginx -----------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when this process dies (Linux), so that
    an nginx is never left behind, however the benchmark ends."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def nginx_conf(root: Path, workdir: Path, port: int, *, workers: int = 1) -> str:
    """An nginx.conf serving ``root`` on 127.0.0.1:``port`` with everything it writes
    kept in ``workdir``."""
    user = ""
    if os.geteuid() == 0:  # workers would switch to "nobody", who may not read root
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
    types = "\n".join(f"        {kind} {suffix[1:]};" for suffix, kind in CONTENT_TYPES.items())
    temp = "\n".join(
        f"    {kind}_temp_path {workdir / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
{user}
daemon off;
master_process on;
worker_processes {workers};
pid {workdir / "nginx.pid"};
error_log {workdir / "error.log"} warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
{temp}
    types {{
{types}
    }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    etag on;
    if_modified_since exact;

    server {{
        listen {HOST}:{port};
        server_name localhost;
        root {root};
        location / {{
        }}
    }}
}}
"""


class NginxServer:
    """nginx in the foreground, as a child of this process."""

    def __init__(self, executable: str, root: Path, *, attempts: int = 5) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="storyfeed-bench-nginx-"))
        version = subprocess.run(
            [executable, "-v"], capture_output=True, text=True, check=False
        ).stderr
        self.name = version.strip().split(": ")[-1].replace("/", " ") or "nginx"
        for _ in range(attempts):  # another process may take the free port first
            self.port = free_port()
            conf = self._workdir / "nginx.conf"
            conf.write_text(nginx_conf(root.resolve(), self._workdir, self.port))
            self._process = subprocess.Popen(
                [executable, "-p", str(self._workdir), "-e", str(self._workdir / "error.log"),
                 "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
            if _wait_listening(self.port, self._process, timeout=10):
                return
            self._stop()
        log = (self._workdir / "error.log").read_text(errors="replace")[-2000:]
        shutil.rmtree(self._workdir, ignore_errors=True)
        raise ServerError(f"nginx did not start:\n{log}")

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGQUIT)  # graceful: lets workers finish
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self._workdir, ignore_errors=True)


# --- the stdlib fallback ---------------------------------------------------------------


def _etag(stat: os.stat_result) -> str:
    """nginx's ETag: hex mtime (seconds) and hex size."""
    return f'"{int(stat.st_mtime):x}-{stat.st_size:x}"'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as nginx
    server_version = "storyfeed-bench"
    root: Path

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, *, body: bool) -> None:
        name = self.path.split("?", 1)[0].lstrip("/")
        path = self.root / name
        if "/" in name or name.startswith(".") or not path.is_file():
            self._empty(HTTPStatus.NOT_FOUND)
            return
        try:
            data = path.read_bytes()
            stat = path.stat()
        except OSError:
            self._empty(HTTPStatus.NOT_FOUND)
            return
        etag = _etag(stat)
        modified = email.utils.formatdate(int(stat.st_mtime), usegmt=True)
        if self._not_modified(etag, int(stat.st_mtime)):
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            self.end_headers()
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", modified)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _not_modified(self, etag: str, mtime: int) -> bool:
        """RFC 9110: If-None-Match wins over If-Modified-Since."""
        match = self.headers.get("If-None-Match")
        if match is not None:
            tags = {tag.strip().removeprefix("W/") for tag in match.split(",")}
            return "*" in tags or etag in tags
        since = self.headers.get("If-Modified-Since")
        if since:
            try:
                when = email.utils.parsedate_to_datetime(since)
            except (TypeError, ValueError):
                return False
            return mtime <= int(when.timestamp())
        return False

    def _empty(self, status: HTTPStatus) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: thousands of requests


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client hanging up mid-answer is not news


class PythonServer:
    """The stdlib fallback, serving from a thread of this process."""

    name = "python http.server"

    def __init__(self, root: Path) -> None:
        handler = type("Handler", (_Handler,), {"root": root.resolve()})
        self._server = _QuietServer((HOST, 0), handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="bench-http", daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _Closing:
    """``with start(...) as server:`` closes the server at the end."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def __enter__(self) -> Server:
        return self.server

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.close()


def start(root: Path, *, python: bool = False) -> _Closing:
    """Serve ``root``: nginx when installed (unless ``python``), else the fallback."""
    nginx = None if python else find_nginx()
    server: Server = NginxServer(nginx, root) if nginx else PythonServer(root)
    return _Closing(server)


# --- the floor's client ----------------------------------------------------------------


def get_all(urls: list[str], parallel: int) -> int:
    """GET every URL, ``parallel`` at once, one keep-alive connection per thread (the
    floor's client where curl is missing); return how many failed."""
    from concurrent.futures import ThreadPoolExecutor
    from http.client import HTTPConnection
    from urllib.parse import urlsplit

    local = threading.local()

    def get(url: str) -> bool:
        parts = urlsplit(url)
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = HTTPConnection(parts.netloc, timeout=30)
        connection.request("GET", parts.path)
        response = connection.getresponse()
        response.read()
        return response.status == HTTPStatus.OK

    with ThreadPoolExecutor(parallel) as pool:
        return sum(not ok for ok in pool.map(get, urls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="the directory to serve")
    parser.add_argument("--python", action="store_true", help="use the stdlib server")
    parser.add_argument(
        "--get", action="store_true", help="instead: GET every URL listed in the file DIR"
    )
    parser.add_argument("--parallel", type=int, default=16, help="GETs at once with --get")
    args = parser.parse_args()
    if args.get:
        failed = get_all(args.dir.read_text().split(), args.parallel)
        raise SystemExit(1 if failed else 0)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly on TERM too
    with start(args.dir, python=args.python) as server:
        print(f"{server.name} serving {args.dir} at {server.base_url}/ (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
