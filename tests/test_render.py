"""Golden tests of what render builds, printed at a fixed width without colour."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from rich.console import Console, RenderableType

from storyfeed import render
from storyfeed.models import DateFlag, Feed, FeedStatus, Story
from storyfeed.updates import RefreshOutcome, RefreshResult

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC, so short dates are predictable."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def printed(renderable: RenderableType, width: int = 80) -> str:
    out = StringIO()
    Console(file=out, width=width, color_system=None, highlight=False).print(renderable)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def story(
    id_: int,
    title: str,
    *,
    feed: str = "LLM Stories",
    published: datetime | None = None,
    new: bool = False,
    read: bool = False,
    flag: DateFlag = DateFlag.OK,
) -> Story:
    return Story(
        id=id_,
        feed_id=1 if feed == "LLM Stories" else 2,
        feed_title=feed,
        title=title,
        link=f"https://example.org/{id_}",
        author="",
        summary="",
        published=published,
        first_seen=NOW - timedelta(days=3),
        new=new,
        read=read,
        date_flag=flag,
    )


STORIES = [
    story(12, "Posted just now", published=NOW - timedelta(seconds=20), new=True),
    story(11, "Two hours old", feed="Another Feed", published=NOW - timedelta(hours=2), new=True),
    story(
        8,
        "MoE and Expert Parallelism: From One Big FFN to 256 Small Ones, and a title long "
        "enough to be cut",
        published=datetime(2026, 5, 27, tzinfo=UTC),
    ),
    story(7, "[bold]Literal[/] brackets", published=datetime(2026, 5, 9, tzinfo=UTC), read=True),
    story(3, "No date given", flag=DateFlag.MISSING),
    story(1, "Last year", published=datetime(2025, 12, 24, tzinfo=UTC)),
]


def test_story_table_golden() -> None:
    table = render.story_table(STORIES, NOW, show_feed=True, width=80)
    assert printed(table) == "\n".join(
        [
            " #  ●    Date        Feed          Title",
            "12  NEW  just now    LLM Stories   Posted just now",
            "11  NEW  2h ago      Another Feed  Two hours old",
            " 8  ●    May 27      LLM Stories   MoE and Expert Parallelism: From One Big FFN…",
            " 7       May 09      LLM Stories   [bold]Literal[/] brackets",
            " 3  ●    ~May 29     LLM Stories   No date given",
            " 1  ●    2025-12-24  LLM Stories   Last year",
        ]
    )


def test_story_table_without_feed_column_fits_narrow_terminals() -> None:
    text = printed(render.story_table(STORIES, NOW, show_feed=False, width=40), width=40)
    rows = text.splitlines()
    assert rows[0].split() == ["#", "●", "Date", "Title"]
    assert all(len(row) <= 40 for row in rows)
    assert rows[3].startswith(" 8  ●    May 27      MoE and")
    assert rows[3].endswith("…")


def test_story_lines_are_tab_separated_and_complete() -> None:
    lines = list(render.story_lines(STORIES))
    assert lines[2] == (
        "8\tunread\t2026-05-27T00:00:00Z\tLLM Stories\tMoE and Expert Parallelism: From One "
        "Big FFN to 256 Small Ones, and a title long enough to be cut\thttps://example.org/8"
    )
    assert lines[0].split("\t")[1] == "new"
    assert lines[3].split("\t")[1] == "read"
    assert lines[4].split("\t")[2] == ""  # no published date: empty, not the first-seen time


def test_stories_json() -> None:
    data = json.loads(render.stories_json(STORIES[:1], lambda s: f"summary of {s.id}"))
    assert data == [
        {
            "id": 12,
            "feed_id": 1,
            "feed": "LLM Stories",
            "title": "Posted just now",
            "link": "https://example.org/12",
            "author": "",
            "published": "2026-06-01T11:59:40Z",
            "first_seen": "2026-05-29T12:00:00Z",
            "new": True,
            "read": False,
            "summary": "summary of 12",
        }
    ]


def test_story_view() -> None:
    view = render.story_view(
        Story(
            id=5,
            feed_id=1,
            feed_title="LLM Stories",
            title="A [red]title[/]",
            link="https://example.org/5",
            author="Ada",
            summary="",
            published=datetime(2026, 5, 6, 8, 30, tzinfo=UTC),
            first_seen=NOW,
            new=False,
            read=False,
        ),
        "First paragraph.\n\nSecond.",
        NOW,
    )
    assert printed(view) == "\n".join(
        [
            "A [red]title[/]",
            "LLM Stories · 2026-05-06 08:30 · Ada",
            "https://example.org/5",
            "",
            "First paragraph.",
            "",
            "Second.",
        ]
    )


FEEDS = [
    Feed(
        id=1,
        url="https://reader:secret@example.org/feed.xml",
        feed_title="Example",
        last_success_at=NOW - timedelta(hours=1),
        next_fetch_at=NOW + timedelta(minutes=30),
        story_count=8,
        unread_count=3,
    ),
    Feed(
        id=2,
        url="https://gone.example/rss",
        status=FeedStatus.GONE,
        last_error="HTTP 410 Gone",
        error_count=1,
    ),
]


def test_feed_table_golden_and_redacted() -> None:
    text = printed(render.feed_table(FEEDS, NOW), width=100)
    assert "secret" not in text
    assert text.splitlines() == [
        "#  Feed                      Status  Stories  Unread  Updated  Next    URL / last error",
        "1  Example                   ok            8       3  1h ago   in 30m  "
        "https://reader:***@example.or",
        "                                                                       g/feed.xml",
        "2  https://gone.example/rss  gone          0       0  never    -       "
        "https://gone.example/rss",
        "                                                                       HTTP 410 Gone",
    ]


def test_feeds_json_and_lines() -> None:
    data = json.loads(render.feeds_json(FEEDS))
    assert data[0]["url"] == "https://reader:***@example.org/feed.xml"
    assert data[0]["status"] == "ok"
    assert data[1]["status"] == "gone"
    assert data[1]["last_error"] == "HTTP 410 Gone"
    assert set(data[0]) == {
        "id", "title", "url", "site_url", "status", "last_success", "last_error",
        "last_error_at", "error_count", "next_fetch", "stories", "unread", "new",
        "tags", "refresh_interval", "paused", "notify",
    }  # fmt: skip
    lines = [line.split("\t") for line in render.feed_lines(FEEDS)]
    assert lines[0][:4] == ["1", "ok", "8", "3"]
    assert "secret" not in "\n".join("\t".join(line) for line in lines)


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (
            RefreshResult(FEEDS[0], RefreshOutcome.UPDATED, new=2, updated=1),
            "Example: 2 new, 1 updated",
        ),
        (RefreshResult(FEEDS[0], RefreshOutcome.ERROR, error="timed out"), "Example: timed out"),
        (
            RefreshResult(FEEDS[1], RefreshOutcome.GONE),
            "https://gone.example/rss: retired (HTTP 410 Gone)",
        ),
        (
            RefreshResult(FEEDS[0], RefreshOutcome.NOT_MODIFIED, moved_to="https://new.example/"),
            "Example: no new stories (moved permanently to https://new.example/)",
        ),
        (RefreshResult(FEEDS[0], RefreshOutcome.NOT_MODIFIED), None),
        (RefreshResult(FEEDS[0], RefreshOutcome.UPDATED), None),
    ],
)
def test_refresh_line(result: RefreshResult, expected: str | None) -> None:
    line = render.refresh_line(result)
    assert (line.plain if line is not None else None) == expected


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (RefreshOutcome.NOT_MODIFIED, "Example: not modified"),
        (RefreshOutcome.UNCHANGED, "Example: unchanged (the same document again)"),
        (RefreshOutcome.UPDATED, "Example: no new stories"),
    ],
)
def test_refresh_line_verbose_tells_the_quiet_feeds(outcome: RefreshOutcome, expected: str) -> None:
    line = render.refresh_line(RefreshResult(FEEDS[0], outcome), verbose=True)
    assert line is not None and line.plain == expected


def test_refresh_summary_counts_stories_and_outcomes() -> None:
    results = [
        RefreshResult(FEEDS[0], RefreshOutcome.UPDATED, new=3, updated=2),
        RefreshResult(FEEDS[0], RefreshOutcome.UPDATED, new=1),
        RefreshResult(FEEDS[0], RefreshOutcome.NOT_MODIFIED),
        RefreshResult(FEEDS[1], RefreshOutcome.ERROR, error="timed out"),
    ]
    assert render.refresh_summary(results, 1.234) == (
        "fetched 4 feeds in 1.23 s: 4 new stories, 2 updated (2 parsed, 1 not modified, 1 failed)"
    )
    one = [RefreshResult(FEEDS[0], RefreshOutcome.UPDATED, new=1)]
    assert render.refresh_summary(one, 0.5) == "fetched 1 feed in 0.50 s: 1 new story (1 parsed)"


def test_short_dates() -> None:
    assert render.short_date(None, NOW) == ""
    assert render.short_date(NOW - timedelta(minutes=5), NOW) == "5m ago"
    assert render.short_date(NOW + timedelta(minutes=30), NOW) == "in 30m"
    assert render.short_date(NOW + timedelta(hours=3), NOW) == "in 3h"
    assert render.short_date(NOW - timedelta(days=3), NOW) == "May 29"


def test_dates_at_the_ends_of_the_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    ancient = datetime(1, 1, 1, tzinfo=UTC)
    assert render.iso(ancient) == "0001-01-01T00:00:00Z"
    assert render.short_date(ancient, NOW) == "0001-01-01"
    view = printed(render.story_view(story(1, "Old", published=ancient), "", NOW))
    assert "0001-01-01 00:00" in view


def test_narrow_terminals_keep_the_ids() -> None:
    for width in (30, 40, 45, 60):
        text = printed(render.story_table(STORIES, NOW, show_feed=True, width=width), width)
        rows = text.splitlines()
        assert [row.split()[0] for row in rows[1:]] == ["12", "11", "8", "7", "3", "1"], text
    feeds_text = printed(render.feed_table(FEEDS, NOW, width=50), width=50)
    assert [row.split()[0] for row in feeds_text.splitlines()[1:3]] == ["1", "2"], feeds_text
