"""`python -m storyfeed` and the `storyfeed` command."""

import atexit
import contextlib
import gc
import os
import sys
import threading
from typing import NoReturn


def main() -> NoReturn:
    """Start the CLI, run one command and leave; a Ctrl-C while it is still loading is
    an interruption too."""
    gc.disable()  # loading makes many objects that live as long as the process, no garbage
    try:
        from storyfeed.cli import run
    except KeyboardInterrupt:
        sys.stderr.write(("\n" if sys.stderr.isatty() else "") + "storyfeed: interrupted\n")
        sys.exit(130)
    gc.freeze()  # what loading made is never collected: later collections skip it
    gc.enable()
    leave(run())


def leave(code: int) -> NoReturn:
    """Exit with ``code`` as Python would, less the teardown of every module and object
    (a quarter of a short command's time, and of no use to anyone): other threads are
    waited for, ``atexit`` handlers run and the standard streams are flushed first."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:  # nobody reads any more: not a failure
        pass
    except (OSError, ValueError) as exc:  # a full disk, say: the output is incomplete
        reason = getattr(exc, "strerror", None) or exc
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.write(f"storyfeed: error: cannot write the output: {reason}\n")
        code = code or 1
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
