"""Run one command; report its wall time and the peak RSS of its process tree.

    python bench/measure.py RESULT.json [--tty COLSxROWS] [--timeout S] [--gnu-time PATH]
                            -- COMMAND [ARG...]

A fresh process per command, so that the figures are this command's alone. The
peak is the largest resident set of any one process of the command: Linux
keeps, per process, the highest of its own and its reaped children's, and
``getrusage(RUSAGE_CHILDREN)`` / ``wait4`` hand that up. This process makes
itself a child subreaper (Linux), so helpers that outlive their parent
(storyfeed's parser workers, say) are re-parented here and reaped, and their
peaks count too.

One catch: a child's peak starts at its parent's size when it was forked (the
kernel carries the old address space's high-water mark across exec), so
anything this Python process starts directly peaks at 10 MiB or more, however
small it is. With ``--gnu-time`` (GNU time's ``%M``) the command is started by
that small program instead and its peak is exact; without it, peaks below this
process's own size cannot be told apart.

The time runs from starting the command to its exit. With ``--tty`` the
command's standard output is a pseudo-terminal of that size, as when a user runs
it; what it writes there is copied to this process's standard output. Standard
error is inherited. With ``--timeout`` the command's process group is killed
after that many seconds, and the result says it timed out.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import json
import os
import pty
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
REAP_PATIENCE = 30.0  # seconds to wait for orphaned helpers to finish


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux 3.4+); False where that is impossible."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _drain(master: int) -> None:
    """Copy the pseudo-terminal's output to our stdout until every writer is gone."""
    out = sys.stdout.buffer
    while True:
        try:
            data = os.read(master, 65536)
        except OSError as exc:
            if exc.errno == errno.EIO:  # Linux: the last slave descriptor was closed
                break
            raise
        if not data:
            break
        out.write(data)
    out.flush()


def _kill_group(pid: int, killed: threading.Event) -> None:
    killed.set()
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def _reap_orphans() -> tuple[int, int]:
    """Wait for adopted helpers: (the largest peak among them in KiB, how many were
    still running at the deadline)."""
    deadline = time.monotonic() + REAP_PATIENCE
    peak = 0
    while True:
        try:
            pid, _, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return peak, 0
        if pid:
            peak = max(peak, usage.ru_maxrss)
        elif time.monotonic() > deadline:
            return peak, 1
        else:
            time.sleep(0.01)


def _gnu_time_peak(path: Path) -> int:
    """GNU time's ``%M``: the last line of its output file (a note on a non-zero
    exit status may come first)."""
    try:
        lines = path.read_text().split()
        return int(lines[-1]) if lines else 0
    except (OSError, ValueError):
        return 0


def run(
    command: list[str],
    tty: tuple[int, int] | None = None,
    timeout: float | None = None,
    gnu_time: str | None = None,
) -> dict[str, object]:
    """Run ``command``; return its exit status, seconds and peak RSS (KiB)."""
    subreaper = become_subreaper()
    report = Path(tempfile.mkstemp(prefix="measure-", suffix=".txt")[1]) if gnu_time else None
    argv = [gnu_time, "-f", "%M", "-o", str(report), "--", *command] if gnu_time else command
    master = slave = -1
    stdout: int | None = None
    if tty is not None:
        master, slave = pty.openpty()
        columns, rows = tty
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        stdout = slave
    killed = threading.Event()
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=stdout, start_new_session=timeout is not None
    )
    timer = None
    if timeout is not None:
        timer = threading.Timer(timeout, _kill_group, (process.pid, killed))
        timer.start()
    if tty is not None:
        os.close(slave)
        _drain(master)
        os.close(master)
    status = process.wait()
    seconds = time.perf_counter() - start
    if timer is not None:
        timer.cancel()
    orphans, lingering = _reap_orphans() if subreaper else (0, 0)
    if report is not None:
        peak = max(_gnu_time_peak(report), orphans)
        report.unlink(missing_ok=True)
    else:
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    return {
        "returncode": status,
        "seconds": seconds,
        "peak_kib": peak,
        "peak_by": "gnu-time" if gnu_time else "rusage",
        "subreaper": subreaper,
        "lingering": lingering,
        "timed_out": killed.is_set(),
    }


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        usage="%(prog)s RESULT.json [--tty COLSxROWS] [--timeout S] [--gnu-time PATH] "
        "-- COMMAND [ARG...]",
    )
    parser.add_argument("result", type=Path, help="where to write the JSON result")
    parser.add_argument("--tty", metavar="COLSxROWS", help="run on a pseudo-terminal")
    parser.add_argument("--timeout", type=float, metavar="S", help="kill the command after S s")
    parser.add_argument("--gnu-time", metavar="PATH", help="GNU time, to start the command")
    args = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    if not command:
        parser.error("no command given")
    tty = None
    if args.tty:
        columns, _, rows = args.tty.partition("x")
        tty = (int(columns), int(rows))
    try:
        result = run(command, tty, args.timeout, args.gnu_time)
    except OSError as exc:
        result = {"returncode": 127, "seconds": 0.0, "peak_kib": 0, "error": str(exc)}
    args.result.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
