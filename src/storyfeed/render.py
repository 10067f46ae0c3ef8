"""Building what storyfeed prints: rich renderables, plain lines and JSON.

Pure functions of models; the CLI owns the consoles and prints. Every string
that came from a feed enters rich as a ``Text`` object, never as markup.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from storyfeed.models import HIT_END, HIT_START, DateFlag, Feed, FeedStatus, Story, StoryState
from storyfeed.text import redact_url

if TYPE_CHECKING:
    from storyfeed.reports import (
        Checkup,
        ImportReport,
        PruneReport,
        SearchHit,
        SettingValue,
    )
    from storyfeed.updates import RefreshResult

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
) -> Text:
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
    # Laid out here rather than by rich's Table: every width is known already, and
    # a table of thirty rows costs rich ~10 ms to measure and render, a listing's
    # largest single cost.
    widths = [id_width, 3, date_width, *([feed_width] if show_feed else []), title_width]
    for column in (-1, -2) if show_feed else (-1,):  # too wide: the title gives way first
        excess = sum(widths) + 2 * (len(widths) - 1) - width
        if excess > 0:
            widths[column] = max(1, widths[column] - excess)
    header = ["#", "●", "Date", *(["Feed"] if show_feed else []), "Title"]
    lines = [_row([Text(name) for name in header], widths, style="bold")]
    for story_id, date, story in rows:
        cells = [Text(story_id, style="bold"), _STATE_CELLS[story.state], Text(date)]
        if show_feed:
            cells.append(Text(story.feed_title))
        cells.append(Text(story.title or "(untitled)"))
        lines.append(_row(cells, widths, style="dim" if story.read else ""))
    return Text("\n").join(lines)


def _row(cells: Sequence[Text], widths: Sequence[int], *, style: str) -> Text:
    """One line of a table: cells cut to their widths (with an ellipsis), two spaces
    apart; the first (an id) aligned right, the last not padded."""
    line = Text(style=style)
    for number, (cell, width) in enumerate(zip(cells, widths, strict=True)):
        cell = cell.copy()
        cell.truncate(width, overflow="ellipsis")
        if number == len(cells) - 1:
            line.append_text(cell)
            break
        padding = " " * (width - cell.cell_len)
        if number == 0:
            line.append(padding)
            line.append_text(cell)
        else:
            line.append_text(cell)
            line.append(padding)
        line.append("  ")
    return line


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


def duration(seconds: int) -> str:
    """A duration in its largest whole unit: ``90s``, ``45m``, ``2h``, ``3d``, ``2w``."""
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def feed_settings_line(feed: Feed) -> str:
    """A feed's tags and the settings it does not leave at their default ("" if none);
    paused shows in its status."""
    parts = [", ".join(f"#{tag}" for tag in feed.tags)] if feed.tags else []
    if feed.refresh_interval is not None:
        parts.append(f"every {duration(feed.refresh_interval)}")
    if not feed.notify:
        parts.append("notify off")
    return " · ".join(parts)


def feed_table(feeds: Sequence[Feed], now: datetime, *, width: int = 100) -> Table:
    """Subscriptions and their health; the URL column is dropped before ids are squeezed.
    A feed's tags and own settings make a line under its URL (under its name when
    there is no room for the URL)."""
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
        name = Text(feed.title)
        settings = feed_settings_line(feed)
        if settings and not show_url:
            name.append("\n")
            name.append(settings, style="dim")
        cells: list[RenderableType] = [
            feed_id,
            name,
            Text(health, style=styles.get(health, "")),
            stories,
            unread,
            updated,
            next_fetch,
        ]
        if show_url:
            detail = Text(redact_url(feed.url))
            if settings:
                detail.append("\n")
                detail.append(settings, style="dim")
            if feed.last_error:
                detail.append("\n")
                detail.append(feed.last_error, style="red")
            cells.append(detail)
        table.add_row(*cells)
    return table


def feed_lines(feeds: Iterable[Feed]) -> Iterator[str]:
    """Tab-separated: id, status, stories, unread, last success, next fetch, title, url,
    error, tags (comma-separated), own refresh interval (seconds, or empty), notify (on/off)."""
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
                ",".join(feed.tags),
                "" if feed.refresh_interval is None else str(feed.refresh_interval),
                "on" if feed.notify else "off",
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
                "tags": list(feed.tags),
                "refresh_interval": feed.refresh_interval,
                "paused": feed.status is FeedStatus.PAUSED,
                "notify": feed.notify,
            }
            for feed in feeds
        ]
    )


# --- refresh -------------------------------------------------------------------


def refresh_line(result: RefreshResult, *, verbose: bool = False) -> Text | None:
    """One line for a feed that changed or failed (``verbose``: for every feed); None
    when there is nothing to say."""
    from storyfeed.updates import RefreshOutcome

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
    elif result.moved_to:
        line.append("no new stories")
    elif verbose:
        quiet = {
            RefreshOutcome.NOT_MODIFIED: "not modified",
            RefreshOutcome.UNCHANGED: "unchanged (the same document again)",
        }
        line.append(quiet.get(result.outcome, "no new stories"), style="dim")
    else:
        return None
    if result.moved_to:
        line.append(f" (moved permanently to {result.moved_to})", style="yellow")
    return line


def refresh_summary(results: Sequence[RefreshResult], seconds: float) -> str:
    """What a refresh did, in one line: its stories, then its feeds by outcome."""
    from storyfeed.updates import RefreshOutcome

    new = sum(result.new for result in results)
    updated = sum(result.updated for result in results)
    by_outcome = Counter(result.outcome for result in results)
    names = {
        RefreshOutcome.UPDATED: "parsed",
        RefreshOutcome.NOT_MODIFIED: "not modified",
        RefreshOutcome.UNCHANGED: "unchanged",
        RefreshOutcome.GONE: "retired",
        RefreshOutcome.ERROR: "failed",
    }
    outcomes = ", ".join(f"{by_outcome[o]} {name}" for o, name in names.items() if by_outcome[o])
    feeds = "1 feed" if len(results) == 1 else f"{len(results)} feeds"
    stories = f"{new} new {'story' if new == 1 else 'stories'}"
    if updated:
        stories += f", {updated} updated"
    return f"fetched {feeds} in {seconds:.2f} s: {stories} ({outcomes})"


def _dump(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, indent=2)


# --- tags ----------------------------------------------------------------------------


def tag_table(tags: Sequence[tuple[str, int]]) -> Table:
    """Tags and how many feeds carry each."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("Tag", no_wrap=True, overflow="ellipsis")
    table.add_column("Feeds", justify="right", no_wrap=True)
    for tag, count in tags:
        table.add_row(Text(tag), str(count))
    return table


def tag_lines(tags: Iterable[tuple[str, int]]) -> Iterator[str]:
    """Tab-separated: tag, number of feeds."""
    for tag, count in tags:
        yield f"{tag}\t{count}"


def tags_json(tags: Iterable[tuple[str, Sequence[int]]]) -> str:
    """``[{"tag": ..., "feeds": count, "feed_ids": [...]}]``."""
    return _dump([{"tag": tag, "feeds": len(ids), "feed_ids": list(ids)} for tag, ids in tags])


# --- feed settings -------------------------------------------------------------------


def feed_settings(feed: Feed, global_interval: int) -> list[tuple[str, str]]:
    """A feed's settings as (key, value) pairs, defaults saying what they follow."""
    interval = (
        f"default ({duration(global_interval)})"
        if feed.refresh_interval is None
        else duration(feed.refresh_interval)
    )
    return [
        ("interval", interval),
        ("title", feed.user_title or f"default ({feed.feed_title or redact_url(feed.url)})"),
        ("paused", "yes" if feed.status is FeedStatus.PAUSED else "no"),
        ("notify", "on" if feed.notify else "off"),
        ("tags", ", ".join(feed.tags)),
    ]


def feed_settings_view(feed: Feed, global_interval: int) -> Table:
    """``set FEED`` on a terminal: the feed, then one row per setting."""
    table = Table(box=None, pad_edge=False, show_header=False, title_justify="left")
    table.title = Text(f"{feed.title} (feed {feed.id})", style="bold")
    table.add_column("Setting", style="bold", no_wrap=True)
    table.add_column("Value")
    for key, value in feed_settings(feed, global_interval):
        table.add_row(key, Text(value))
    return table


def feed_settings_lines(feed: Feed, global_interval: int) -> Iterator[str]:
    """Tab-separated: setting, value."""
    for key, value in feed_settings(feed, global_interval):
        yield f"{key}\t{value}"


def feed_settings_json(feed: Feed) -> str:
    return _dump(
        {
            "id": feed.id,
            "title": feed.title,
            "user_title": feed.user_title or None,
            "refresh_interval": feed.refresh_interval,
            "paused": feed.status is FeedStatus.PAUSED,
            "notify": feed.notify,
            "tags": list(feed.tags),
        }
    )


# --- opml ----------------------------------------------------------------------------


def import_summary(report: ImportReport) -> str:
    """One line: what an import did (or would do, in a dry run)."""
    feeds = "feed" if report.added == 1 else "feeds"
    verb = "Would import" if report.dry_run else "Imported"
    line = (
        f"{verb} {report.added} {feeds} ({report.already_subscribed} already subscribed, "
        f"{len(report.skipped)} skipped as invalid); {report.tags_applied} tags "
        f"{'would be ' if report.dry_run else ''}applied."
    )
    if report.added and not report.dry_run:
        line += " The next refresh fetches them."
    return line


def import_json(report: ImportReport) -> str:
    return _dump(
        {
            "added": report.added,
            "already_subscribed": report.already_subscribed,
            "skipped": len(report.skipped),
            "tags_applied": report.tags_applied,
            "dry_run": report.dry_run,
            "skipped_feeds": [{"url": s.url, "reason": s.reason} for s in report.skipped],
        }
    )


# --- search --------------------------------------------------------------------------


def unmarked(text: str) -> str:
    """Marked text (see models.HIT_START) without its markers."""
    return text.replace(HIT_START, "").replace(HIT_END, "")


def marked_text(marked: str, *, style: str = "", hit_style: str = "bold reverse") -> Text:
    """Marked text with its hits highlighted: spans of a Text, never markup."""
    text = Text(style=style, overflow="ellipsis", no_wrap=True)
    hit = False
    for piece in re.split(f"([{HIT_START}{HIT_END}])", marked):
        if piece in {HIT_START, HIT_END}:
            hit = piece == HIT_START
        elif piece:
            text.append(piece, style=hit_style if hit else None)
    return text


def search_table(
    hits: Sequence[SearchHit], now: datetime, *, show_feed: bool, width: int = 80
) -> Table:
    """Most relevant first: the columns of `list`, and below each title its snippet,
    hits highlighted in both."""
    dates = [short_date(hit.story.date, now) for hit in hits]
    dates = [
        ("~" if hit.story.date_flag is not DateFlag.OK else "") + date
        for hit, date in zip(hits, dates, strict=True)
    ]
    id_width = max([len(str(hit.story.id)) for hit in hits] + [1])
    date_width = max([len(date) for date in dates] + [4])
    feed_width = min(max([len(hit.story.feed_title) for hit in hits] + [4]), 20)
    fixed = id_width + 3 + date_width + 2 * 3
    show_feed = show_feed and width - fixed - feed_width - 2 >= 30
    text_width = max(10, width - fixed - (feed_width + 2 if show_feed else 0))
    table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
    table.add_column("#", justify="right", no_wrap=True, style="bold", width=id_width)
    table.add_column("●", no_wrap=True, width=3)
    table.add_column("Date", no_wrap=True, width=date_width)
    if show_feed:
        table.add_column("Feed", no_wrap=True, overflow="ellipsis", width=feed_width)
    table.add_column("Title", no_wrap=True, overflow="ellipsis", max_width=text_width)
    for hit, date in zip(hits, dates, strict=True):
        story = hit.story
        cells: list[RenderableType] = [str(story.id), _STATE_CELLS[story.state], date]
        if show_feed:
            cells.append(Text(story.feed_title, overflow="ellipsis", no_wrap=True))
        text = marked_text(hit.title or story.title or "(untitled)")
        if hit.snippet:
            text.append("\n")
            text.append_text(marked_text(hit.snippet, style="dim"))
        cells.append(text)
        table.add_row(*cells, style="dim" if story.read else None)
    return table


def search_lines(hits: Sequence[SearchHit]) -> Iterator[str]:
    """Tab-separated: the fields of `list`'s lines, then the snippet (plain)."""
    for hit, line in zip(hits, story_lines(hit.story for hit in hits), strict=True):
        yield line + "\t" + unmarked(hit.snippet)


def search_json(hits: Iterable[SearchHit], summary: Callable[[Story], str]) -> str:
    """`list --json`'s fields, then snippet (plain text), rank (1: most relevant)
    and score (FTS5's bm25 relevance, higher is better)."""
    return _dump(
        [
            {
                **story_record(hit.story, summary(hit.story)),
                "snippet": unmarked(hit.snippet),
                "rank": hit.rank,
                "score": hit.score,
            }
            for hit in hits
        ]
    )


# --- doctor --------------------------------------------------------------------------

_VERDICT_STYLES = {
    "INFO": "dim",  # keyed by Verdict, a StrEnum: its members are these strings
    "OK": "green",
    "WARN": "yellow",
    "FAIL": "bold red",
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
        border = "dim" if verdict == "OK" else _VERDICT_STYLES[verdict]
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


def size(count: int) -> str:
    """Bytes for people: 512 bytes, 3.4 MB, 1.2 GB (powers of 1,000)."""
    if count < 1000:
        return f"{count} bytes"
    for unit, scale in (("kB", 10**3), ("MB", 10**6), ("GB", 10**9)):
        if count < scale * 1000 or unit == "GB":
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def prune_summary(report: PruneReport) -> str:
    """One sentence: how many stories went (or would go), from how many feeds, and
    the space it frees."""
    gone = sum(1 for feed in report.feeds if feed.pruned)
    stories = "story" if report.pruned == 1 else "stories"
    feeds = "feed" if gone == 1 else "feeds"
    verb = "Would prune" if report.dry_run else "Pruned"
    text = (
        f"{verb} {report.pruned} {stories} from {gone} {feeds} (dated before {iso(report.cutoff)})"
    )
    if report.kept_unread:
        text += f"; {report.kept_unread} old unread kept"
    if report.dry_run:
        return text + f"; about {size(report.freed_bytes)} would be freed."
    text += f"; {size(report.freed_bytes)} freed"
    if report.vacuumed:
        text += f"; database compacted to {size(report.file_bytes)}"
    return text + "."


def prune_table(report: PruneReport) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("#", justify="right", no_wrap=True, style="bold")
    table.add_column("Feed", no_wrap=True, overflow="ellipsis", max_width=50)
    table.add_column("Would prune" if report.dry_run else "Pruned", justify="right")
    table.add_column("Unread kept", justify="right")
    for feed in report.feeds:
        table.add_row(str(feed.feed_id), Text(feed.feed_title), str(feed.pruned),
                      str(feed.kept_unread))  # fmt: skip
    return table


def prune_lines(report: PruneReport) -> Iterator[str]:
    """Tab-separated: feed id, stories pruned, old unread kept, feed title; then
    ``total``, the two sums and the bytes freed (a dry run's estimate)."""
    for feed in report.feeds:
        yield f"{feed.feed_id}\t{feed.pruned}\t{feed.kept_unread}\t{feed.feed_title}"
    yield f"total\t{report.pruned}\t{report.kept_unread}\t{report.freed_bytes}"


def prune_json(report: PruneReport) -> str:
    return _dump(
        {
            "dry_run": report.dry_run,
            "before": iso(report.cutoff),
            "keep_unread": report.keep_unread,
            "feeds": [
                {
                    "feed_id": feed.feed_id,
                    "feed": feed.feed_title,
                    "pruned": feed.pruned,
                    "kept_unread": feed.kept_unread,
                }
                for feed in report.feeds
            ],
            "pruned": report.pruned,
            "kept_unread": report.kept_unread,
            "freed_bytes": report.freed_bytes,
            "vacuumed": report.vacuumed,
            "file_bytes": report.file_bytes,
        }
    )


# --- config --------------------------------------------------------------------------


def settings_table(values: Sequence[SettingValue]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("Setting", no_wrap=True, style="bold")
    table.add_column("Value", overflow="fold")
    table.add_column("Source", overflow="fold")
    for value in values:
        source = Text(value.source, style="" if value.source == "default" else "cyan")
        table.add_row(value.key, Text(value.value), source)
    return table


def settings_lines(values: Iterable[SettingValue]) -> Iterator[str]:
    """Tab-separated: setting, value (as config.toml spells it), source."""
    for value in values:
        yield f"{value.key}\t{value.value}\t{value.source}"


def settings_json(values: Iterable[SettingValue]) -> str:
    return _dump(
        [
            {
                "setting": v.key,
                "value": list(v.data) if isinstance(v.data, tuple) else v.data,
                "source": v.source,
                "doc": v.doc,
            }
            for v in values
        ]
    )
