"""One refresh at a time, across processes; stdlib only.

An advisory ``flock`` on a file beside the database. The kernel drops it when
its process ends, however it ends, so a run killed with ``kill -9`` never
leaves a stale lock behind. Where ``fcntl`` does not exist, runs are not
serialised (the database stays consistent either way).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storyfeed.errors import StoreError


@contextmanager
def exclusive(path: Path) -> Iterator[bool]:
    """Hold the lock at ``path`` for the ``with`` block; yields False when another
    process holds it (nothing waits)."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        yield True
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+b")
    except OSError as exc:
        raise StoreError(f"cannot create the lock file {path}: {exc.strerror or exc}") from exc
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
