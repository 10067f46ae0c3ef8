"""Use cases of the stories: list, open, read, mark."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING

from storyfeed.core import App, Progress, due_now, parse_duration, refresh, resolve_feed
from storyfeed.errors import (
    ConfigError,
    DatabaseBusyError,
    NotFoundError,
    StoreError,
    UnsafeLinkError,
)
from storyfeed.models import Feed, Story
from storyfeed.text import is_web_url, redact_url

if TYPE_CHECKING:
    from storyfeed.updates import RefreshResult

# --- listing ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    stories: list[Story]
    refreshed: list[RefreshResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    busy: bool = False  # the refresh found the database locked (and said so)


def choose_feed(app: App, feed: str | None) -> Feed | None:
    """The feed a FEED argument names, or None for all feeds."""
    return resolve_feed(app.store.feeds(), feed) if feed else None


def choose_feeds(
    app: App, names: Sequence[str] = (), tags: Sequence[str] = ()
) -> list[Feed] | None:
    """The feeds named or carrying one of the tags (by id), or None for all feeds
    when neither is given. An unknown tag is an error that lists the known ones."""
    if not names and not tags:
        return None
    feeds = app.store.feeds()
    chosen = {feed.id: feed for feed in (resolve_feed(feeds, name) for name in names)}
    known = {tag.casefold(): tag for feed in feeds for tag in feed.tags}
    for tag in tags:
        wanted = tag.strip().casefold()
        if wanted not in known:
            listed = ", ".join(sorted(known.values(), key=str.casefold))
            hint = f"known tags: {listed}" if known else "no feed has a tag yet"
            raise NotFoundError(f"no feed is tagged {tag.strip()!r}; {hint}")
        chosen.update((f.id, f) for f in feeds if wanted in {t.casefold() for t in f.tags})
    return sorted(chosen.values(), key=lambda feed: feed.id)


def parse_since(text: str, now: datetime) -> datetime:
    """The start of a ``--since`` period: a duration back from ``now`` (``2d``,
    ``12h``, ``3w``), ``today`` or ``yesterday`` (from midnight UTC), or a date or
    date and time (``2026-05-01``, ``2026-05-01T08:00``), in UTC unless it gives an
    offset. Raises ValueError for anything else."""
    wanted = text.strip().lower()
    if wanted in {"today", "yesterday"}:
        midnight = datetime.combine(now.astimezone(UTC).date(), time(), UTC)
        return midnight - timedelta(days=1 if wanted == "yesterday" else 0)
    try:
        return now - timedelta(seconds=parse_duration(wanted))
    except (ValueError, OverflowError):
        pass
    try:
        when = datetime.fromisoformat(wanted.upper())
    except ValueError:
        pass
    else:
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    raise ValueError(
        f"{text!r} is neither a duration back from now (12h, 2d, 3w), today, yesterday, "
        "nor a date (2026-05-01, 2026-05-01T08:00)"
    )


def _feed_list(chosen: Feed | Sequence[Feed] | None) -> list[Feed] | None:
    if chosen is None:
        return None
    return [chosen] if isinstance(chosen, Feed) else list(chosen)


def due_for_listing(app: App, chosen: Feed | Sequence[Feed] | None = None) -> list[Feed]:
    """The feeds a listing refreshes first: the due ones (of ``chosen``, if given)."""
    due = due_now(app)
    wanted = _feed_list(chosen)
    if wanted is None:
        return due
    ids = {feed.id for feed in wanted}
    return [feed for feed in due if feed.id in ids]


def list_stories(
    app: App,
    *,
    chosen: Feed | Sequence[Feed] | None = None,
    unread: bool = False,
    read: bool = False,
    since: datetime | None = None,
    limit: int | None = None,
    due: Sequence[Feed] = (),
    summary: bool = False,
    progress: Progress | None = None,
) -> Listing:
    """Refresh ``due`` (see :func:`due_for_listing`), then the newest stories (of
    ``chosen``, if given; only ``unread`` or only ``read`` ones; dated ``since``
    or later; ``limit`` 0 for no limit).

    Showing them is the caller's job, and so is :func:`record_shown` afterwards.
    """
    refreshed: list[RefreshResult] = []
    warnings: list[str] = []
    busy = False
    if due:
        try:
            with app.refresh_lock() as held:
                if held:
                    refreshed = refresh(app, due, progress=progress)
                else:
                    warnings.append(
                        "refresh skipped: another storyfeed is fetching feeds; "
                        "showing the stories already fetched"
                    )
        except (StoreError, ConfigError) as exc:  # lock or database; the proxy settings
            busy = isinstance(exc, DatabaseBusyError)
            warnings.append(f"refresh skipped: {exc}")
    warnings += [f"{r.feed.title}: {r.error}" for r in refreshed if r.failed]
    wanted = _feed_list(chosen)
    if limit is None:
        limit = app.settings.list_limit
    stories = app.store.stories(
        feed_ids=None if wanted is None else [feed.id for feed in wanted],
        unread=unread,
        read=read,
        since=since,
        limit=limit or None,
        summary=summary,
    )
    return Listing(stories=stories, refreshed=refreshed, warnings=warnings, busy=busy)


def record_shown(app: App, listing: Listing) -> str:
    """Stories that were NEW have now been shown; called once the output is out.

    Returns a warning when the database cannot take the mark (another process
    holds it, the disk is full): the listing was shown, and the stories simply
    stay NEW until the next one. A listing that already warned of a locked
    database does not wait for it again.
    """
    fresh = [story.id for story in listing.stories if story.new]
    if not fresh:
        return ""
    try:
        app.store.mark_shown(fresh, app.clock(), wait=0 if listing.busy else 1.0)
    except DatabaseBusyError:
        if listing.busy:
            return ""
        return "the database is busy; the stories shown stay NEW until the next listing"
    except StoreError as exc:
        return f"the stories shown stay NEW: {exc}"
    return ""


def story_summary(story: Story, limit: int = 500) -> str:
    """Plain-text summary of at most ``limit`` characters: the feed's summary, else
    the start of the content."""
    from storyfeed.htmltext import html_to_text

    text = html_to_text(story.summary or story.content)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# --- single stories -------------------------------------------------------------


def get_story(app: App, story_id: int | None) -> Story:
    """A story by id, or (``None``) the newest unread one."""
    if story_id is None:
        newest = app.store.stories(unread=True, limit=1)
        if not newest:
            raise NotFoundError("no unread stories")
        story_id = newest[0].id
    story = app.store.story(story_id)
    if story is None:
        raise NotFoundError(f"no story with id {story_id}; `storyfeed list` shows the ids")
    return story


def open_story(app: App, story_id: int | None, opener: Callable[[str], None]) -> Story:
    """Hand a story's link to ``opener`` (a browser, or a print), then mark it read.

    Only an absolute http(s) link is handed on. An opener that raises leaves the
    story unread: the user never got the link.
    """
    story = get_story(app, story_id)
    if not is_web_url(story.link):
        shown = redact_url(story.link) or "none"
        raise UnsafeLinkError(
            f"story {story.id} has no http(s) link to open (its link is {shown!r})"
        )
    opener(story.link)
    _mark_read_after_showing(app, story)
    return story


def read_story(app: App, story_id: int, show: Callable[[Story, str], None]) -> Story:
    """Show a story's content as terminal text with ``show``, then mark it read."""
    from storyfeed.htmltext import html_to_text

    story = get_story(app, story_id)
    show(story, html_to_text(story.content or story.summary))
    _mark_read_after_showing(app, story)
    return story


def _mark_read_after_showing(app: App, story: Story) -> None:
    try:
        app.store.mark_read([story.id], app.clock())
    except StoreError as exc:
        raise type(exc)(f"story {story.id} was shown but is still unread: {exc}") from exc


def mark(
    app: App,
    *,
    read: bool,
    story_ids: Sequence[int] = (),
    all_stories: bool = False,
    feed: str | None = None,
) -> int:
    """Change read state; unknown ids are an error and change nothing."""
    now = app.clock()
    if story_ids:
        missing = sorted(set(story_ids) - app.store.existing_story_ids(story_ids))
        if missing:
            listed = ", ".join(map(str, missing[:10]))
            raise NotFoundError(f"no story with id {listed}; nothing was changed")
        return app.store.mark_read(story_ids, now) if read else app.store.mark_unread(story_ids)
    if feed is not None:
        chosen = resolve_feed(app.store.feeds(), feed)
        return app.store.mark_all(read=read, now=now, feed_id=chosen.id)
    if all_stories:
        return app.store.mark_all(read=read, now=now)
    raise NotFoundError("name story ids, --feed FEED or --all")
