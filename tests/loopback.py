"""A raw-socket HTTP server on 127.0.0.1 for tests that need a misbehaving peer.

pytest-httpserver answers like a well-behaved server; stalls, drips, resets and
lying headers need the bytes in our hands.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

Handle = Callable[[socket.socket, "RawServer"], None]


class RawServer:
    """Accepts connections on 127.0.0.1 and lets ``handle`` write whatever bytes it likes."""

    def __init__(self, handle: Handle) -> None:
        self.handle = handle
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.active = 0
        self.most_active = 0
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=32)
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept)
        self._acceptor.start()

    def url(self, path: str = "/feed") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,))
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5.0)
            # OSError: the client gave up first, which is what most of these tests want.
            with contextlib.suppress(OSError):
                self.handle(conn, self)

    def wait(self, seconds: float) -> bool:
        """Sleep; True if the server is shutting down (the handler should return)."""
        return self.stopping.wait(seconds)

    def close(self) -> None:
        self.stopping.set()
        self._acceptor.join(10)
        for thread in self._threads:
            thread.join(10)
        self._listener.close()
        assert not self._acceptor.is_alive()
        assert not any(thread.is_alive() for thread in self._threads)


def read_head(conn: socket.socket) -> bytes:
    """The request line and headers (a request head is small: 64 reads at most)."""
    data = b""
    for _ in range(64):
        if b"\r\n\r\n" in data:
            break
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data
