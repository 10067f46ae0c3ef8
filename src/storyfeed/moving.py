"""Use cases for moving in and out: import an OPML file, export one.

An import subscribes without fetching anything (the next refresh or listing
fetches the new feeds), so even a list of thousands of feeds is in at once; the
subscriptions are one transaction, so a failure leaves the database as it was
(the feeds' own settings, from storyfeed's export, follow in one write each).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from storyfeed import opml
from storyfeed.config import REFRESH_INTERVAL_RANGE
from storyfeed.core import App
from storyfeed.errors import FileAccessError, InvalidOPMLError, InvalidURLError
from storyfeed.models import FeedStatus
from storyfeed.reports import ImportReport, NewSubscription, SkippedOutline
from storyfeed.text import clean_line, is_web_url, redact_url
from storyfeed.urls import canonical_url, normalise_url

# --- opml ------------------------------------------------------------------------


def read_opml(source: Path | BinaryIO) -> bytes:
    """The bytes of an OPML file (or a stream), refused past opml.MAX_BYTES."""
    try:
        if isinstance(source, Path):
            with source.expanduser().open("rb") as handle:
                data = handle.read(opml.MAX_BYTES + 1)
        else:
            data = source.read(opml.MAX_BYTES + 1)
    except OSError as exc:
        raise FileAccessError(f"cannot read {_shown(source)}: {exc.strerror or exc}") from exc
    if len(data) > opml.MAX_BYTES:
        raise FileAccessError(
            f"{_shown(source)} is larger than {opml.MAX_BYTES // (1024 * 1024)} MiB"
        )
    return data


def _shown(source: Path | BinaryIO) -> str:
    return str(source) if isinstance(source, Path) else "standard input"


def import_opml(app: App, data: bytes, *, dry_run: bool = False, name: str = "") -> ImportReport:
    """Subscribe to the feeds of an OPML document, with their folders as tags
    (and, from storyfeed's own export, their settings).

    Malformed OPML raises InvalidOPMLError (naming the file as ``name``) before
    anything is written. Feeds already subscribed (under any spelling of their
    URL) are left as they are.
    """
    try:
        outlines = opml.parse_opml(data)
    except InvalidOPMLError as exc:
        if not name:
            raise
        raise InvalidOPMLError(f"{name}: {exc}") from None
    known = {_canonical(feed.url) for feed in app.store.feeds()}
    chosen: dict[str, NewSubscription] = {}
    skipped: list[SkippedOutline] = []
    already: set[str] = set()
    for outline in outlines:
        shown = clean_line(redact_url(outline.url))[:300]
        if outline.problem:
            skipped.append(SkippedOutline(shown, outline.problem))
            continue
        try:
            url = _feed_url(outline.url)
            interval = _interval(outline.interval)
        except (InvalidURLError, ValueError) as exc:
            skipped.append(SkippedOutline(shown, str(exc)))
            continue
        if url in known:
            already.add(url)
        elif url in chosen:  # in several folders: one feed with every folder's tag
            first = chosen[url]
            tags = opml.merge_tags(first.tags, outline.tags)
            chosen[url] = replace(first, tags=tags)
        else:
            # A name that is only the URL again is no name (storyfeed's own export
            # writes one for a feed that has no title), and a feed's own title is
            # the feed's to keep up to date.
            named = not outline.title_is_feeds and _canonical(outline.title) != url
            chosen[url] = NewSubscription(
                url=url,
                user_title=outline.title if named else "",
                site_url=outline.site_url if is_web_url(outline.site_url) else "",
                tags=outline.tags,
                refresh_interval=interval,
                paused=bool(outline.paused),
                notify=outline.notify is not False,
            )
    feeds = list(chosen.values())
    if dry_run:
        added, tagged = len(feeds), sum(len(feed.tags) for feed in feeds)
    else:
        added, tagged = app.store.add_feeds(feeds, app.clock()) if feeds else (0, 0)
        _apply_settings(app, feeds)
    return ImportReport(
        added=added,
        already_subscribed=len(already) + len(feeds) - added,
        skipped=tuple(skipped),
        tags_applied=tagged,
        dry_run=dry_run,
    )


def _interval(text: str) -> int | None:
    """The seconds of a storyfeed:interval attribute (None if there is none)."""
    if not text:
        return None
    low, high = REFRESH_INTERVAL_RANGE  # outside it, the file was edited by hand
    if not (text.isascii() and text.isdigit() and low <= int(text) <= high):
        raise ValueError(
            f"storyfeed:interval {text!r} is not a number of seconds from {low} to {high}"
        )
    return int(text)


def _apply_settings(app: App, feeds: list[NewSubscription]) -> None:
    """Give the feeds just subscribed their own settings from the file."""
    wanted = {
        feed.url: feed
        for feed in feeds
        if feed.refresh_interval is not None or feed.paused or not feed.notify
    }
    if not wanted:
        return
    for stored in app.store.feeds():
        feed = wanted.get(stored.url)
        if feed is None:
            continue
        app.store.set_feed_settings(
            stored.id,
            refresh_interval=feed.refresh_interval,
            status=FeedStatus.PAUSED if feed.paused else None,
            notify=False if not feed.notify else None,
        )


def _feed_url(text: str) -> str:
    """The canonical URL of a feed outline: http(s) only, checked as `add` checks
    it. Never a local file: the file may come from anyone, and a feed pointing at
    /etc/... would show that file's text as stories."""
    value = text.strip()
    scheme = value.partition(":")[0].lower() if ":" in value else ""
    if scheme == "feed":
        # The old feed: pseudo-scheme: feed://host/path, or feed:https://host/path.
        rest = value[len("feed:") :]
        value = rest if rest.lower().startswith(("http:", "https:")) else "http:" + rest
        scheme = value.partition(":")[0].lower()
    if scheme == "file":
        raise InvalidURLError("local files are not imported; use storyfeed add")
    if scheme not in {"http", "https"}:
        raise InvalidURLError("not an http(s) URL")
    return normalise_url(value)


def _canonical(url: str) -> str:
    try:
        return canonical_url(url) if urlsplit(url).scheme else url
    except ValueError:
        return url


def export_opml(app: App) -> bytes:
    """Every subscription as an OPML 2.0 document."""
    return opml.write_opml(app.store.feeds(), app.clock())


def save_opml(app: App, path: Path) -> int:
    """Write every subscription to an OPML file; return how many feeds it holds."""
    feeds = app.store.feeds()
    # URLs with a user or password in them make the file a secret of its own.
    private = any("@" in urlsplit(feed.url).netloc for feed in feeds)
    write_file(path, opml.write_opml(feeds, app.clock()), private=private)
    return len(feeds)


def write_file(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write ``data`` to ``path`` atomically: a reader sees the old file or the new
    one, never half of one, and a failure leaves the old file as it was. A new file
    gets the umask's mode (0600 if ``private``); a replaced one keeps its own."""
    target = path.expanduser()
    if target.exists() and not target.is_file() and not target.is_dir():
        # A device or a pipe (/dev/stdout, a named pipe) cannot be replaced: written
        # through, as `>` would.
        try:
            with target.open("wb") as handle:
                handle.write(data)
        except OSError as exc:
            raise FileAccessError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return
    if target.is_symlink():  # replace the file it points to, not the link
        target = target.resolve()
    if target.is_dir():
        raise FileAccessError(f"{path} is a directory")
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600 if private else 0o666 & ~_umask()
    except OSError as exc:
        raise FileAccessError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        descriptor, name = tempfile.mkstemp(
            dir=target.parent if str(target.parent) else ".", prefix=f".{target.name}."
        )
    except OSError as exc:
        raise FileAccessError(f"cannot write {path}: {exc.strerror or exc}") from exc
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.chmod(mode)
        temporary.replace(target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise FileAccessError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current
