"""Parsing in worker processes, each document within a time and a memory budget.

feedparser runs pure-Python regular expressions and, for broken XML, a fallback
parser that expands entities itself: a hostile document can keep it busy for
minutes or make it allocate gigabytes, and no thread can interrupt it. So every
feed document is parsed in a worker process of our own (``python -m
storyfeed.sandbox``) whose address space is capped; a parse that overruns its
time is stopped by killing the worker, which is then replaced. Workers live as
long as the process that started them and parse one document after another;
while they parse, the caller goes on fetching.

The frames on a worker's pipes are length-prefixed pickles. What comes back is
unpickled with an allow-list of the classes a parse result is made of, so even a
worker subverted by a document could not make the parent run anything.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from storyfeed.errors import NotAFeedError, ParseError
from storyfeed.updates import ParsedFeed

_HEADER = struct.Struct(">Q")
_MAX_FRAME = 1 << 34  # a sanity bound on a frame's announced length
_MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Budget:
    """What one parse may take: wall-clock seconds and bytes of address space."""

    seconds: float = 60.0
    memory: int = 512 * _MiB


@dataclass(frozen=True, slots=True)
class Parsed:
    """The outcome of one job: a feed, or the reason there is none."""

    key: int
    feed: ParsedFeed | None = None
    error: str = ""
    not_a_feed: bool = False


@dataclass(slots=True)
class _Job:
    key: int
    meta: bytes  # the pickled (headers, url, now)
    body: bytes  # the document, sent as it is (pickling it would copy it twice)


@dataclass
class Pool:
    """Worker processes and the threads that feed them.

    ``submit`` queues a document; ``done`` returns the outcomes finished so far and
    ``next`` waits for one. One pool serves a whole process (see :func:`shared`).
    """

    budget: Budget
    workers: int = 2
    _jobs: queue.SimpleQueue[_Job | None] = field(default_factory=queue.SimpleQueue)
    _results: queue.SimpleQueue[Parsed] = field(default_factory=queue.SimpleQueue)
    _threads: list[threading.Thread] = field(default_factory=list)
    _pending: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(
        self, key: int, body: bytes, headers: Mapping[str, str], url: str, now: datetime
    ) -> None:
        meta = pickle.dumps((dict(headers), url, now), protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            self._pending += 1
            if len(self._threads) < min(self.workers, self._pending):
                thread = threading.Thread(target=self._serve, name="storyfeed-parse", daemon=True)
                self._threads.append(thread)
                thread.start()
        self._jobs.put(_Job(key, meta, body))

    def warm(self) -> None:
        """Start a worker now, so that its start-up (~70 ms) overlaps the caller's
        first fetches instead of following them."""
        with self._lock:
            if not self._threads:
                thread = threading.Thread(target=self._serve, name="storyfeed-parse", daemon=True)
                self._threads.append(thread)
                thread.start()

    @property
    def pending(self) -> int:
        """Documents submitted whose outcome has not been taken yet."""
        return self._pending

    def done(self) -> list[Parsed]:
        """The outcomes that are ready, without waiting."""
        ready: list[Parsed] = []
        with contextlib.suppress(queue.Empty):
            while self._pending:
                ready.append(self._take(block=False))
        return ready

    def next(self) -> Parsed:
        """Wait for the next outcome (there must be a document pending)."""
        return self._take(block=True)

    def parse(self, body: bytes, headers: Mapping[str, str], url: str, now: datetime) -> ParsedFeed:
        """Parse one document and wait for it, raising its ParseError like
        parse.parse_feed; for a caller with nothing else pending."""
        self.submit(0, body, headers, url, now)
        outcome = self.next()
        if outcome.feed is None:
            raise (NotAFeedError if outcome.not_a_feed else ParseError)(outcome.error)
        return outcome.feed

    def _take(self, *, block: bool) -> Parsed:
        outcome = self._results.get(block=block)
        with self._lock:
            self._pending -= 1
        return outcome

    def _serve(self) -> None:
        worker = _Worker(self.budget)
        with contextlib.suppress(OSError):  # else said with the first job's outcome
            worker._started()
        try:
            while (job := self._jobs.get()) is not None:
                try:
                    outcome = worker.run(job)
                except Exception as exc:  # never leave a job without an outcome
                    worker.stop()
                    outcome = Parsed(job.key, error=f"the parser failed ({type(exc).__name__})")
                self._results.put(outcome)
        finally:
            worker.stop()


_shared: dict[Budget, Pool] = {}
_shared_lock = threading.Lock()


def shared(budget: Budget) -> Pool:
    """The process's pool for this budget, created on first use."""
    with _shared_lock:
        pool = _shared.get(budget)
        if pool is None:
            pool = _shared[budget] = Pool(budget, workers=max(1, min(2, os.cpu_count() or 1)))
        return pool


# --- the parent's side of one worker ---------------------------------------------------


class _Worker:
    """One worker process, started when first needed and replaced when it dies."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.process: subprocess.Popen[bytes] | None = None
        with _live_lock:
            _live.add(self)

    def run(self, job: _Job) -> Parsed:
        try:
            process = self._started()
        except OSError as exc:
            return Parsed(job.key, error=f"cannot start a parser process: {exc.strerror or exc}")
        assert process.stdin is not None and process.stdout is not None
        deadline = time.monotonic() + self.budget.seconds
        try:
            _write_frame(process.stdin, job.meta, job.body)
            reply = _read_frame(process.stdout, deadline)
        except TimeoutError:
            self.stop()
            return Parsed(
                job.key,
                error=f"parsing took longer than {self.budget.seconds:g} s and was stopped",
            )
        except (OSError, EOFError, ValueError):
            return Parsed(job.key, error=self._death())
        try:
            outcome, spent = _outcome(job.key, reply)
        except (pickle.UnpicklingError, ValueError, TypeError, EOFError) as exc:
            self.stop()
            return Parsed(job.key, error=f"the parser sent back something unreadable ({exc})")
        if spent:
            self.stop()
        return outcome

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def _started(self) -> subprocess.Popen[bytes]:
        if self.process is None or self.process.poll() is not None:
            self.stop()
            package_parent = str(Path(__file__).resolve().parents[1])
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-I",  # no environment variables, user site or cwd on the path
                    "-c",
                    f"import sys; sys.path.insert(0, {package_parent!r});"
                    "from storyfeed.sandbox import serve; serve()",
                    str(self.budget.memory),
                    repr(self.budget.seconds),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                start_new_session=True,  # a Ctrl-C at the terminal is the parent's to handle
            )
        return self.process

    def _death(self) -> str:
        """Why the worker stopped answering; it is replaced on the next job."""
        process = self.process
        code = process.wait() if process is not None else None
        self.stop()
        if code is not None and code < 0 and -code == signal.SIGKILL:
            return "the parser was killed (out of memory?)"
        if code is not None and code < 0:
            return f"the parser crashed ({signal.Signals(-code).name})"
        return "the parser stopped unexpectedly"


_live: set[_Worker] = set()  # every worker this process made (a pool keeps its own)
_live_lock = threading.Lock()


@atexit.register
def _stop_live_workers() -> None:
    """At exit (Ctrl-C included) no worker goes on parsing for a process that is gone."""
    with _live_lock:
        workers = list(_live)
    for worker in workers:
        process = worker.process
        if process is not None:
            with contextlib.suppress(OSError):
                process.kill()


def _write_frame(stream: IO[bytes], *parts: bytes) -> None:
    """Write each part as a frame (its length, then itself), then flush."""
    for part in parts:
        stream.write(_HEADER.pack(len(part)))
        stream.write(part)
    stream.flush()


def _read_exactly(fd: int, size: int, deadline: float) -> bytes:
    chunks, missing = [], size
    while missing:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            raise TimeoutError
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def _read_frame(stream: IO[bytes], deadline: float) -> bytes:
    fd = stream.fileno()
    (size,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size, deadline))
    if size > _MAX_FRAME:
        raise ValueError("frame too large")
    return _read_exactly(fd, size, deadline)


class _ResultUnpickler(pickle.Unpickler):
    """Only the classes a parse result is built from."""

    ALLOWED = frozenset(
        {
            ("storyfeed.updates", "ParsedFeed"),
            ("storyfeed.updates", "ParsedStory"),
            ("storyfeed.models", "DateFlag"),
            ("datetime", "datetime"),
            ("datetime", "timezone"),
            ("datetime", "timedelta"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected {module}.{name} in a parse result")
        return super().find_class(module, name)


def _outcome(key: int, reply: bytes) -> tuple[Parsed, bool]:
    """The job's outcome, and whether the worker is spent (it ran out of memory)."""
    value = _ResultUnpickler(io.BytesIO(reply)).load()
    match value:
        case ("ok", ParsedFeed() as feed):
            return Parsed(key, feed=feed), False
        case ("error", str(message), bool(not_a_feed)):
            return Parsed(key, error=message, not_a_feed=not_a_feed), False
        case ("spent", str(message)):
            return Parsed(key, error=message), True
    raise ValueError("a reply of an unknown shape")


# --- the worker ------------------------------------------------------------------------


def serve() -> None:
    """The worker's loop: read a job, parse it, write the outcome; until end of input.

    argv: the memory budget in bytes, the time budget in seconds.
    """
    import resource

    from storyfeed import parse

    memory, seconds = int(sys.argv[1]), float(sys.argv[2])
    parse.load_parsers()  # their code is not the document's to pay for
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # An orphaned worker (its parent killed) still stops: SIGALRM's default action
    # ends the process even inside a regular expression.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while header := stdin.read(_HEADER.size):
        (size,) = _HEADER.unpack(header)
        # The job comes from the parent that started this process: trusted.
        headers, url, now = pickle.loads(stdin.read(size))  # noqa: S301
        (size,) = _HEADER.unpack(stdin.read(_HEADER.size))
        body = stdin.read(size)
        signal.alarm(int(seconds) + 2)
        try:
            reply: tuple[object, ...] = ("ok", parse.parse_feed(body, headers, url, now))
        except NotAFeedError as exc:
            reply = ("error", str(exc), True)
        except ParseError as exc:
            reply = ("error", str(exc), False)
        except MemoryError:
            # The heap may be in pieces: answer, and let a fresh worker take the next one.
            reply = ("spent", f"parsing needed more than {memory // _MiB} MiB of memory")
        except RecursionError:
            reply = ("error", "cannot parse the feed: it is nested too deeply", False)
        except Exception as exc:  # a defect of ours must still end as this feed's error
            reply = (
                "error",
                f"cannot parse the feed: internal error ({type(exc).__name__})",
                False,
            )
        signal.alarm(0)
        del body
        try:
            frame = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except MemoryError:
            reply = ("spent", "parsing ran out of memory")
            frame = pickle.dumps(reply)
        _write_frame(stdout, frame)
        if reply[0] == "spent":
            return


if __name__ == "__main__":
    serve()
