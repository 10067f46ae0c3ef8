"""The `storyfeed` executable's way out (storyfeed.__main__.leave).

A command leaves with ``os._exit`` rather than tearing every module down; these check,
in real child processes, that nothing a normal exit gives is lost on the way: output
(however long, on a pipe or in a file), the exit status, ``atexit`` handlers, threads
still finishing their work.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import IO

import pytest

Done = subprocess.CompletedProcess[bytes]

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _python(code: str, stdout: int | IO[bytes] = subprocess.PIPE) -> Done:
    program = f"import sys; sys.path.insert(0, {SRC!r})\n" + textwrap.dedent(code)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # output waits
    return subprocess.run(
        [sys.executable, "-c", program],
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=env,
        timeout=60,
    )


def test_leave_flushes_long_output_runs_atexit_and_keeps_the_status() -> None:
    done = _python(
        """
        import atexit
        from storyfeed.__main__ import leave
        atexit.register(lambda: print("atexit ran"))
        sys.stdout.write("x" * 1_000_000)
        sys.stderr.write("to stderr")
        leave(3)
        """
    )
    assert done.returncode == 3
    assert done.stdout == b"x" * 1_000_000 + b"atexit ran\n"
    assert done.stderr == b"to stderr"


def test_leave_waits_for_threads_that_are_not_daemons(tmp_path: Path) -> None:
    marker = tmp_path / "written"
    done = _python(
        f"""
        import threading, time
        from pathlib import Path
        from storyfeed.__main__ import leave
        def late():
            time.sleep(0.3)
            Path({str(marker)!r}).write_text("late")
        threading.Thread(target=late).start()
        leave(0)
        """
    )
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "late"


def test_leave_reports_output_it_could_not_write() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with open("/dev/full", "wb") as full:
        done = _python(
            """
            from storyfeed.__main__ import leave
            sys.stdout.write("lost")
            leave(0)
            """,
            stdout=full,
        )
    assert done.returncode == 1
    assert done.stderr.startswith(b"storyfeed: error: cannot write the output")


def test_leave_is_quiet_when_the_reader_has_gone() -> None:
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = _python(
            """
            from storyfeed.__main__ import leave
            sys.stdout.write("nobody reads this")
            leave(0)
            """,
            stdout=writer,
        )
    finally:
        os.close(writer)
    assert done.returncode == 0
    assert done.stderr == b""


def test_the_command_gives_its_whole_output_and_status(tmp_path: Path) -> None:
    env = {**os.environ, "STORYFEED_HOME": str(tmp_path), "PYTHONPATH": SRC}
    env.pop("STORYFEED_CONFIG", None)
    version = subprocess.run(
        [sys.executable, "-m", "storyfeed", "--version"], capture_output=True, env=env, timeout=60
    )
    assert version.returncode == 0
    assert version.stdout.startswith(b"storyfeed ")
    wrong = subprocess.run(
        [sys.executable, "-m", "storyfeed", "--no-such-option"],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert wrong.returncode == 2
    assert b"No such option" in wrong.stderr
