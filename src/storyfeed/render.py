"""Building what storyfeed prints: rich renderables, plain lines and JSON.

Pure functions of models; the CLI owns the consoles and prints. Every string
that came from a feed enters rich as a ``Text`` object, never as markup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from storyfeed.models import (
    Checkup,
    DateFlag,
    Feed,
    FeedStatus,
    RefreshOutcome,
    RefreshResult,
    Story,
    StoryState,
    Verdict,
)
from storyfeed.text import redact_url

_STATE_CELLS = {
    StoryState.NEW: Text("NEW", style="bold green"),
    StoryState.UNREAD: Text("●", style="cyan"),
    StoryState.READ: Text(""),
}


def iso(when: datetime | None) -> str:
    """ISO 8601 in UTC with a Z, or an empty string."""
    if when is None:
        return ""
    return f"{when.year:04d}-{when:%m-%dT%H:%M:%S}Z"


def _iso_or_none(when: datetime | None) -> str | None:
    return iso(when) or None


def _local(when: datetime) -> datetime:
    """In local time; a date at the very ends of datetime's range stays in UTC."""
    try:
        return when.astimezone()
    except (OverflowError, ValueError):
        return when


def short_date(when: datetime | None, now: datetime) -> str:
    """A date for a table: relative when recent, else short, in local time."""
    if when is None:
        return ""
    seconds = (now - when).total_seconds()
    if -60 < seconds < 60:
        return "just now"
    if 0 < seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    if 0 < seconds < 86400:
        return f"{int(seconds // 3600)}h ago"
    if -3600 < seconds < 0:
        return f"in {int(-seconds // 60)}m"
    if -86400 < seconds < 0:
        return f"in {int(-seconds // 3600)}h"
    local = _local(when)
    if local.year == _local(now).year:
        return f"{local:%b} {local.day:02d}"
    return f"{local.year:04d}-{local:%m-%d}"


# --- stories ---------------------------------------------------------------------


def story_table(
    stories: Sequence[Story], now: datetime, *, show_feed: bool, width: int = 80
) -> Table:
    """Newest first; titles are cut to fit ``width`` so the other columns never shrink."""
    rows = []
    for story in stories:
        date = short_date(story.date, now)
        if story.date_flag is not DateFlag.OK:
            date = "~" + date
        rows.append((str(story.id), date, story))
    id_width = max([len(row[0]) for row in rows] + [1])
    date_width = max([len(row[1]) for row in rows] + [4])
    fixed = id_width + 3 + date_width + 2 * 3  # the first three columns and the gaps
    feed_width = min(max([len(s.feed_title) for s in stories] + [4]), 20) if show_feed else 0
    if show_feed and width - fixed - feed_width - 2 < 20:
        feed_width = max(6, width - fixed - 2 - 20)  # the title gives way last, the ids never
        show_feed = width - fixed - feed_width - 2 >= 10
    title_width = max(10, width - fixed - (feed_width + 2 if show_feed else 0))
    table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
    table.add_column("#", justify="right", no_wrap=True, style="bold", width=id_width)
    table.add_column("●", no_wrap=True, width=3)
    table.add_column("Date", no_wrap=True, width=date_width)
    if show_feed:
        table.add_column("Feed", no_wrap=True, overflow="ellipsis", width=feed_width)
    table.add_column("Title", no_wrap=True, overflow="ellipsis", max_width=title_width)
    for story_id, date, story in rows:
        cells: list[RenderableType] = [story_id, _STATE_CELLS[story.state], date]
        if show_feed:
            cells.append(Text(story.feed_title, overflow="ellipsis", no_wrap=True))
        cells.append(Text(story.title or "(untitled)", overflow="ellipsis", no_wrap=True))
        table.add_row(*cells, style="dim" if story.read else None)
    return table


def story_lines(stories: Iterable[Story]) -> Iterator[str]:
    """Tab-separated: id, status, published (ISO UTC or empty), feed, title, link."""
    for story in stories:
        yield "\t".join(
            (
                str(story.id),
                story.state.value,
                iso(story.published),
                story.feed_title,
                story.title,
                story.link,
            )
        )


def story_record(story: Story, summary: str) -> dict[str, Any]:
    """A story's documented JSON fields."""
    return {
        "id": story.id,
        "feed_id": story.feed_id,
        "feed": story.feed_title,
        "title": story.title,
        "link": story.link,
        "author": story.author,
        "published": _iso_or_none(story.published),
        "first_seen": _iso_or_none(story.first_seen),
        "new": story.new,
        "read": story.read,
        "summary": summary,
    }


def stories_json(stories: Iterable[Story], summary: Callable[[Story], str]) -> str:
    return _dump([story_record(story, summary(story)) for story in stories])


def json_line(value: Any) -> str:
    """One JSON value on one line (for streams such as `notify --json`)."""
    import json

    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def story_view(story: Story, body: str, now: datetime) -> RenderableType:
    """The ``read`` screen: a header, the link, then the text."""
    meta = Text(style="dim")
    meta.append(story.feed_title)
    if story.published:
        local = _local(story.published)
        meta.append(f" · {local.year:04d}-{local:%m-%d %H:%M}")
    else:
        meta.append(f" · first seen {short_date(story.first_seen, now)}")
    if story.author:
        meta.append(" · ")
        meta.append(story.author)
    parts: list[RenderableType] = [
        Text(story.title or "(untitled)", style="bold"),
        meta,
    ]
    if story.link:
        # Credentials go: a link like https://bank.example@elsewhere/ shows its real host.
        parts.append(Text(redact_url(story.link), style="underline blue"))
    parts.append(Text(""))
    parts.append(Text(body or "(this story has no text; open the link to read it)"))
    return Group(*parts)


def story_plain(story: Story, body: str) -> str:
    """The ``read`` screen for a pipe: header lines, a blank line, the text."""
    lines = [
        f"Title: {story.title}",
        f"Feed: {story.feed_title}",
        f"Date: {iso(story.date)}",
    ]
    if story.author:
        lines.append(f"Author: {story.author}")
    lines.append(f"Link: {redact_url(story.link)}")
    return "\n".join([*lines, "", body])


# --- feeds ---------------------------------------------------------------------


def _next_fetch(feed: Feed) -> datetime | None:
    """None for a feed that is not fetched (retired or paused)."""
    return feed.next_fetch_at if feed.status is FeedStatus.ACTIVE else None


def feed_health(feed: Feed) -> str:
    if feed.status is not FeedStatus.ACTIVE:
        return feed.status.value
    if feed.error_count:
        return "failing"
    return "ok" if feed.last_success_at else "pending"


def held_back(feed: Feed, now: datetime) -> str:
    """Why a feed is not fetched now, for a Retry-After the server sent."""
    until = short_date(feed.retry_after, now) if feed.retry_after else "later"
    return f"not fetched: the server asked to wait (Retry-After), {until}"


def feed_table(feeds: Sequence[Feed], now: datetime, *, width: int = 100) -> Table:
    """Subscriptions and their health; the URL column is dropped before ids are squeezed."""
    rows = [
        (
            str(feed.id),
            feed_health(feed),
            str(feed.story_count),
            str(feed.unread_count),
            short_date(feed.last_success_at, now) or "never",
            short_date(_next_fetch(feed), now) or "-",
        )
        for feed in feeds
    ]
    headers = ("#", "Status", "Stories", "Unread", "Updated", "Next")
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    rest = width - sum(widths) - 2 * 7
    longest = max([len(feed.title) for feed in feeds] + [4])
    feed_width = min(longest, 28, max(10, rest - 20))
    show_url = rest - feed_width >= 20
    if not show_url:
        feed_width = min(longest, max(6, rest + 2))
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("#", justify="right", no_wrap=True, style="bold", width=widths[0])
    table.add_column("Feed", no_wrap=True, overflow="ellipsis", width=feed_width)
    for header, column_width in zip(headers[1:], widths[1:], strict=True):
        right = header in {"Stories", "Unread"}
        table.add_column(
            header, no_wrap=True, justify="right" if right else "left", width=column_width
        )
    if show_url:
        table.add_column("URL / last error", overflow="fold", width=rest - feed_width)
    styles = {"ok": "green", "failing": "red", "gone": "red", "paused": "yellow"}
    for (feed_id, health, stories, unread, updated, next_fetch), feed in zip(
        rows, feeds, strict=True
    ):
        cells: list[RenderableType] = [
            feed_id,
            Text(feed.title),
            Text(health, style=styles.get(health, "")),
            stories,
            unread,
            updated,
            next_fetch,
        ]
        if show_url:
            detail = Text(redact_url(feed.url))
            if feed.last_error:
                detail.append("\n")
                detail.append(feed.last_error, style="red")
            cells.append(detail)
        table.add_row(*cells)
    return table


def feed_lines(feeds: Iterable[Feed]) -> Iterator[str]:
    """Tab-separated: id, status, stories, unread, last success, next fetch, title, url, error."""
    for feed in feeds:
        yield "\t".join(
            (
                str(feed.id),
                feed_health(feed),
                str(feed.story_count),
                str(feed.unread_count),
                iso(feed.last_success_at),
                iso(_next_fetch(feed)),
                feed.title,
                redact_url(feed.url),
                feed.last_error,
            )
        )


def feeds_json(feeds: Iterable[Feed]) -> str:
    return _dump(
        [
            {
                "id": feed.id,
                "title": feed.title,
                "url": redact_url(feed.url),
                "site_url": feed.site_url or None,
                "status": feed_health(feed),
                "last_success": _iso_or_none(feed.last_success_at),
                "last_error": feed.last_error or None,
                "last_error_at": _iso_or_none(feed.last_error_at),
                "error_count": feed.error_count,
                "next_fetch": _iso_or_none(_next_fetch(feed)),
                "stories": feed.story_count,
                "unread": feed.unread_count,
                "new": feed.new_count,
            }
            for feed in feeds
        ]
    )


# --- refresh -------------------------------------------------------------------


def refresh_line(result: RefreshResult) -> Text | None:
    """One line for a feed that changed or failed; None when there is nothing to say."""
    line = Text()
    line.append(result.feed.title, style="bold")
    line.append(": ")
    if result.outcome is RefreshOutcome.ERROR:
        line.append(result.error, style="red")
    elif result.outcome is RefreshOutcome.GONE:
        line.append("retired (HTTP 410 Gone)", style="red")
    elif result.new or result.updated:
        counts = [f"{result.new} new"] if result.new else []
        counts += [f"{result.updated} updated"] if result.updated else []
        line.append(", ".join(counts), style="green")
    elif not result.moved_to:
        return None
    else:
        line.append("no new stories")
    if result.moved_to:
        line.append(f" (moved permanently to {result.moved_to})", style="yellow")
    return line


def _dump(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, indent=2)


# --- tags ----------------------------------------------------------------------------


# --- search --------------------------------------------------------------------------


# --- doctor --------------------------------------------------------------------------

_VERDICT_STYLES = {
    Verdict.INFO: "dim",
    Verdict.OK: "green",
    Verdict.WARN: "yellow",
    Verdict.FAIL: "bold red",
}


def doctor_view(checkups: Sequence[Checkup]) -> Group:
    """A panel per subject (storyfeed, then each feed): a verdict, a topic and what
    was found on each line, with advice beneath."""
    from rich.panel import Panel

    panels = []
    for checkup in checkups:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, width=4)
        grid.add_column(no_wrap=True, style="bold")
        grid.add_column(overflow="fold")
        for finding in checkup.findings:
            text = Text(finding.text)
            if finding.advice:
                text.append("\n→ " + finding.advice, style="italic")
            style = _VERDICT_STYLES[finding.verdict]
            grid.add_row(Text(finding.verdict.value, style=style), Text(finding.topic), text)
        verdict = checkup.verdict
        title = Text(verdict.value, style=_VERDICT_STYLES[verdict])
        title.append("  " + (f"{checkup.feed_id}: " if checkup.feed_id is not None else ""))
        title.append(checkup.subject)
        border = "dim" if verdict is Verdict.OK else _VERDICT_STYLES[verdict]
        panels.append(Panel(grid, title=title, title_align="left", border_style=border))
    return Group(*panels)


def doctor_lines(checkups: Iterable[Checkup]) -> Iterator[str]:
    """Tab-separated, a line per finding: feed id ("" for storyfeed itself),
    subject, verdict, topic, text, advice."""
    for checkup in checkups:
        subject_id = "" if checkup.feed_id is None else str(checkup.feed_id)
        for finding in checkup.findings:
            fields = (subject_id, checkup.subject, finding.verdict.value, finding.topic,
                      finding.text, finding.advice)  # fmt: skip
            yield "\t".join(field.replace("\t", " ") for field in fields)


def doctor_json(record: dict[str, Any]) -> str:
    return _dump(record)


# --- retention -----------------------------------------------------------------------
