"""Retention: pruning old stories, by hand (`storyfeed prune`) or by policy.

A pruned story leaves a tombstone (its feed and key), so that a feed still
listing it never brings it back as NEW nor has it notified again. Tombstones
stay as long as their feed (some 60 bytes each): whether a feed will list a key
again cannot be known, and removing the feed drops them.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storyfeed.config import parse_duration
from storyfeed.core import App
from storyfeed.errors import ConfigError, DatabaseBusyError
from storyfeed.reports import PrunedFeed, PruneReport

DEFAULT_AGE = timedelta(days=180)
MIN_AGE = timedelta(days=1)
POLICY_EVERY = timedelta(days=1)  # the automatic policy runs at most this often
# VACUUM rewrites the whole file and holds the database meanwhile: worth it only
# when a good part of the file is free, and that part is large.
VACUUM_SHARE = 0.25
VACUUM_BYTES = 4_000_000
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# (bytes the database takes, bytes of it free): called before VACUUM starts
VacuumNotice = Callable[[int, int], None]


def cutoff(older_than: str | None, default_age: int, now: datetime) -> datetime:
    """The date before which stories go: ``older_than`` is an age (``180d``, ``26w``,
    ``1y``) or a date (``2026-05-01``, midnight UTC); None means ``default_age``
    seconds (the config's policy), else 180 days. ValueError says what is wrong."""
    if older_than is None:
        return now - (timedelta(seconds=default_age) if default_age else DEFAULT_AGE)
    text = older_than.strip()
    if _DATE.fullmatch(text):
        try:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(f"{text!r} is not a date") from None
        if day > now:
            raise ValueError(f"{text} is in the future: every story would go")
        return day
    try:
        age = timedelta(seconds=parse_duration("--older-than", text))
    except (ConfigError, OverflowError):
        raise ValueError(f"{text!r} is neither an age like 180d, 26w, 1y nor a date") from None
    if age < MIN_AGE:
        raise ValueError(
            f"{text!r} is less than a day (m means minutes: six months is 26w or 183d)"
        )
    try:
        return now - age
    except OverflowError:
        raise ValueError(f"{text!r} reaches before the year 1: nothing is that old") from None


def should_vacuum(file_bytes: int, free_bytes: int) -> bool:
    return free_bytes >= VACUUM_BYTES and free_bytes >= file_bytes * VACUUM_SHARE


def prune(
    app: App,
    *,
    before: datetime,
    keep_unread: bool,
    dry_run: bool = False,
    before_vacuum: VacuumNotice | None = None,
) -> PruneReport:
    """Delete the stories dated before ``before`` (published, else first seen), and
    unless ``keep_unread`` the unread ones too; compact the file when much was
    freed. A dry run counts and changes nothing."""
    store = app.store
    titles = {feed.id: feed.title for feed in store.feeds()}
    counts = store.prune_counts(before, keep_unread=keep_unread)
    if dry_run:
        file_bytes, free = store.space()
        total = store.story_count()
        going = sum(gone for _, gone, _ in counts)
        estimate = (file_bytes - free) * going // total if total else 0
        feeds = tuple(
            PrunedFeed(feed_id, titles.get(feed_id, ""), gone, kept)
            for feed_id, gone, kept in counts
        )
        return PruneReport(
            before, keep_unread, dry_run=True, feeds=feeds, freed_bytes=estimate,
            file_bytes=file_bytes,
        )  # fmt: skip
    _, free_before = store.space()
    pruned = store.prune(before, keep_unread=keep_unread, now=app.clock())
    kept = {feed_id: kept for feed_id, _, kept in counts}
    feeds = tuple(
        PrunedFeed(feed_id, titles.get(feed_id, ""), pruned.get(feed_id, 0), kept.get(feed_id, 0))
        for feed_id in sorted(set(pruned) | {f for f, k in kept.items() if k})
    )
    file_bytes, free = store.space()
    vacuumed, problem = False, ""
    if should_vacuum(file_bytes, free):
        if before_vacuum is not None:
            before_vacuum(file_bytes, free)
        try:
            store.vacuum()
            vacuumed = True
        except DatabaseBusyError as exc:
            problem = f"not compacted: {exc}"
        file_bytes, _ = store.space()
    _record_run(app)
    return PruneReport(
        before, keep_unread, dry_run=False, feeds=feeds, freed_bytes=max(free - free_before, 0),
        vacuumed=vacuumed, file_bytes=file_bytes, problem=problem,
    )  # fmt: skip


# --- the automatic policy ---------------------------------------------------------


def _stamp(app: App) -> Path:
    """A file beside the database holding when the last prune ran (a Unix time):
    read by every refresh while the policy is on, so it must cost no query."""
    return app.paths.data_dir / "last-prune"


def policy_due(app: App) -> bool:
    """The policy is on and has not run for a day."""
    if not app.settings.prune_after:
        return False
    try:
        with _stamp(app).open(encoding="ascii") as handle:
            last = datetime.fromtimestamp(int(handle.read(32).strip()), UTC)
    except (OSError, ValueError, OverflowError):
        return True  # never ran, or the stamp is unreadable: run, and write it anew
    return not last <= app.clock() < last + POLICY_EVERY


def apply_policy(app: App, before_vacuum: VacuumNotice | None = None) -> PruneReport | None:
    """Prune by config.toml's ``prune_after`` when it is due; None when it is not."""
    if not policy_due(app):
        return None
    now = app.clock()
    return prune(
        app,
        before=now - timedelta(seconds=app.settings.prune_after),
        keep_unread=app.settings.prune_keep_unread,
        before_vacuum=before_vacuum,
    )


def _record_run(app: App) -> None:
    """Best effort: a stamp that cannot be written only makes the next refresh prune
    again, which finds little to do."""
    path = _stamp(app)
    spare = path.with_name(f"last-prune.{os.getpid()}")
    with contextlib.suppress(OSError):
        spare.write_text(f"{int(app.clock().timestamp())}\n", encoding="ascii")
        spare.replace(path)
