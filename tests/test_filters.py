"""List filters, tags and per-feed settings: end to end against feeds served on
127.0.0.1 with the app's clock pinned, plus the store's filtered listing checked
against a plain Python filter of the same stories."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from io import StringIO
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from rich.console import Console, RenderableType
from werkzeug import Request, Response

from conftest import DATA, NOW, Result
from storyfeed import core, render
from storyfeed.config import Paths, Settings
from storyfeed.models import DateFlag, Feed, FeedStatus
from storyfeed.reading import parse_since
from storyfeed.store import Store
from storyfeed.updates import FeedUpdate, ParsedStory

Run = Callable[..., Result]
HOUR = timedelta(hours=1)
BLOG = (DATA / "blog.rss").read_bytes()  # "Test Blog": 8 stories, 26 Apr to 27 May 2026


# --- fixtures ------------------------------------------------------------------------


@dataclass
class Clock:
    now: datetime = NOW


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Every App the CLI makes reads the time from this clock."""
    pinned = Clock()

    class PinnedApp(core.App):
        def __init__(
            self,
            paths: Paths,
            settings: Settings | None = None,
            clock: Callable[[], datetime] = core.utcnow,
        ) -> None:
            super().__init__(paths, settings, clock=lambda: pinned.now)

    monkeypatch.setattr(core, "App", PinnedApp)
    return pinned


class ServedFeed:
    """An RSS feed on 127.0.0.1 whose stories a test adds between fetches; counts hits."""

    def __init__(self, server: HTTPServer, name: str, body: bytes | None = None) -> None:
        self.name = name
        self.body = body
        self.stories: list[tuple[str, datetime]] = []
        self.hits = 0
        path = f"/{name.lower()}.xml"
        server.expect_request(path).respond_with_handler(self._handle)
        self.url = server.url_for(path)

    def add(self, title: str, published: datetime) -> None:
        self.stories.append((title, published))

    def _handle(self, request: Request) -> Response:
        self.hits += 1
        if self.body is not None:
            return Response(self.body, content_type="application/rss+xml")
        items = "".join(
            f"<item><title>{title}</title><link>https://{self.name.lower()}.example/{n}</link>"
            f"<guid>{self.name}-{n}</guid><pubDate>{format_datetime(when)}</pubDate></item>"
            for n, (title, when) in enumerate(self.stories)
        )
        rss = f'<rss version="2.0"><channel><title>{self.name}</title>{items}</channel></rss>'
        return Response(rss, content_type="application/rss+xml")


@pytest.fixture
def blog(httpserver: HTTPServer) -> ServedFeed:
    return ServedFeed(httpserver, "Blog", BLOG)


@pytest.fixture
def other(httpserver: HTTPServer) -> ServedFeed:
    feed = ServedFeed(httpserver, "Other")
    for day in (28, 29, 30):
        feed.add(f"Other {day}", datetime(2026, 5, day, 12, tzinfo=UTC))
    return feed


@pytest.fixture
def both(run: Run, clock: Clock, blog: ServedFeed, other: ServedFeed) -> None:
    """Test Blog is feed 1, Other feed 2; Test Blog is tagged Work."""
    for feed in (blog, other):
        added = run("add", feed.url)
        assert added.code == 0, added
    tagged = run("tag", "1", "Work")
    assert tagged.code == 0, tagged


def titles(result: Result) -> list[str]:
    assert result.code == 0, result
    return [line.split("\t")[4] for line in result.out.splitlines()]


def feeds_json(run: Run) -> list[dict[str, object]]:
    shown = run("feeds", "--json")
    assert shown.code == 0, shown
    data: list[dict[str, object]] = json.loads(shown.out)
    return data


def make_due(home: Path) -> None:
    with closing(sqlite3.connect(home / "storyfeed.db")) as db, db:
        db.execute("UPDATE feeds SET next_fetch_at = 0, retry_after = NULL")


def assert_usage_error(result: Result, *fragments: str) -> None:
    assert result.code == 2, result
    assert result.out == ""
    assert result.err.startswith("storyfeed: error: ")
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in result.err


BLOG_TITLES = ["Post Seven", "Post Six", "Post Five", "Post One", "Post Four", "Post Three",
               "Post Zero: Roadmap", "Post Two"]  # fmt: skip
OTHER_TITLES = ["Other 30", "Other 29", "Other 28"]


# --- list filters --------------------------------------------------------------------


@pytest.mark.usefixtures("both")
def test_feeds_and_tags_choose_feeds(run: Run) -> None:
    assert titles(run("list", "--offline", "--tag", "work")) == BLOG_TITLES  # any case
    assert titles(run("list", "--offline", "--feed", "Other")) == OTHER_TITLES
    everything = OTHER_TITLES + BLOG_TITLES
    assert titles(run("list", "--offline", "--feed", "2", "--tag", "Work")) == everything
    assert titles(run("list", "--offline", "2", "--feed", "1")) == everything
    assert titles(run("list", "--offline", "--feed", "1", "--tag", "Work")) == BLOG_TITLES


@pytest.mark.usefixtures("both")
def test_since_takes_durations_dates_and_offsets(run: Run) -> None:
    # The clock says 1 June 2026, 12:00 UTC.
    assert titles(run("list", "--offline", "--since", "2d")) == ["Other 30"]
    assert titles(run("list", "--offline", "--since", "7d")) == [*OTHER_TITLES, "Post Seven"]
    assert titles(run("list", "--offline", "--since", "1w")) == [*OTHER_TITLES, "Post Seven"]
    assert titles(run("list", "--offline", "--since", "60h")) == ["Other 30"]
    since_may_6 = ["Post Seven", "Post Six", "Post Five", "Post One"]
    assert titles(run("list", "--offline", "--tag", "work", "--since", "2026-05-06")) == since_may_6
    at_eight = run("list", "--offline", "--tag", "work", "--since", "2026-05-06T08:00")
    assert titles(at_eight) == ["Post Seven", "Post Six", "Post Five"]
    # 10:00 at +02:00 is 08:00 UTC: Post Five (08:00 UTC) is in.
    offset = run("list", "--offline", "--tag", "work", "--since", "2026-05-06T10:00+02:00")
    assert titles(offset) == ["Post Seven", "Post Six", "Post Five"]
    assert titles(run("list", "--offline", "--since", "today")) == []
    assert titles(run("list", "--offline", "--since", "2026-06-02")) == []


@pytest.mark.usefixtures("both")
def test_read_and_unread_narrow_the_chosen_feeds(run: Run) -> None:
    ids = {line.split("\t")[4]: line.split("\t")[0] for line in run("list").out.splitlines()}
    assert run("mark", "read", ids["Post Seven"], ids["Other 29"]).code == 0

    assert titles(run("list", "--offline", "--read")) == ["Other 29", "Post Seven"]
    assert titles(run("list", "--offline", "--read", "--tag", "work")) == ["Post Seven"]
    assert titles(run("list", "--offline", "--unread", "--feed", "other")) == [
        "Other 30", "Other 28"
    ]  # fmt: skip
    unread_since = run("list", "--offline", "--unread", "--since", "7d")
    assert titles(unread_since) == ["Other 30", "Other 28"]


@pytest.mark.usefixtures("both")
def test_all_lifts_the_limit(run: Run, home: Path) -> None:
    (home / "config.toml").write_text('default_feed = ""\nlist_limit = 2\n')
    assert len(titles(run("list", "--offline"))) == 2
    assert len(titles(run("list", "--offline", "--all"))) == 11
    assert len(titles(run("list", "--offline", "--tag", "work", "--all"))) == 8
    assert len(titles(run("list", "--offline", "-n", "5"))) == 5


@pytest.mark.usefixtures("both")
def test_json_of_a_filtered_listing(run: Run) -> None:
    listed = run("list", "--offline", "--json", "--tag", "work", "--since", "7d")
    assert listed.code == 0, listed
    (story,) = json.loads(listed.out)
    assert (story["title"], story["feed"], story["feed_id"]) == ("Post Seven", "Test Blog", 1)


@pytest.mark.usefixtures("both")
def test_contradictions_and_bad_values_are_usage_errors(run: Run) -> None:
    assert_usage_error(run("list", "--read", "--unread"), "--read", "--unread")
    assert_usage_error(run("list", "--all", "--limit", "3"), "--all", "--limit")
    for bad in ("2", "2x", "soon", "2026-13-01", "-2d", "0d"):
        assert_usage_error(run("list", "--offline", "--since", bad), "--since")


@pytest.mark.usefixtures("both")
def test_an_unknown_tag_lists_the_known_ones(run: Run) -> None:
    assert run("tag", "2", "news").code == 0
    result = run("list", "--offline", "--tag", "nope")
    assert result.code == 1, result
    assert result.out == ""
    assert result.err == "storyfeed: error: no feed is tagged 'nope'; known tags: news, Work\n"


def test_an_unknown_tag_without_any_tags(run: Run, clock: Clock, other: ServedFeed) -> None:
    assert run("add", other.url).code == 0
    result = run("list", "--offline", "--tag", "nope")
    assert result.code == 1
    assert "no feed has a tag yet" in result.err


@pytest.mark.usefixtures("both")
def test_a_filtered_listing_refreshes_only_the_chosen_feeds(
    run: Run, home: Path, blog: ServedFeed, other: ServedFeed
) -> None:
    make_due(home)
    before = (blog.hits, other.hits)
    assert titles(run("list", "--tag", "work")) == BLOG_TITLES
    assert (blog.hits, other.hits) == (before[0] + 1, before[1])
    assert titles(run("list", "--feed", "other", "--since", "3d")) == OTHER_TITLES[:2]
    assert (blog.hits, other.hits) == (before[0] + 1, before[1] + 1)
    assert len(titles(run("list"))) == 11  # nothing due any more
    assert (blog.hits, other.hits) == (before[0] + 1, before[1] + 1)


# --- tags ----------------------------------------------------------------------------


@pytest.mark.usefixtures("both")
def test_tag_untag_and_tags(run: Run) -> None:
    added = run("tag", "2", "work", "News", "news")  # Work: the spelling first given
    assert added.code == 0, added
    assert "tags News, Work" in added.out
    assert run("tag", "1", "Rust").code == 0

    tags = run("tags", "--json")
    assert tags.code == 0, tags
    assert json.loads(tags.out) == [
        {"tag": "News", "feeds": 1, "feed_ids": [2]},
        {"tag": "Rust", "feeds": 1, "feed_ids": [1]},
        {"tag": "Work", "feeds": 2, "feed_ids": [1, 2]},
    ]
    assert run("tags").out == "News\t1\nRust\t1\nWork\t2\n"
    shown = {feed["id"]: feed["tags"] for feed in feeds_json(run)}
    assert shown == {1: ["Rust", "Work"], 2: ["News", "Work"]}

    assert run("untag", "2", "WORK").code == 0
    assert run("tags").out == "News\t1\nRust\t1\nWork\t1\n"
    missing = run("untag", "2", "Rust", "News")
    assert missing.code == 1
    assert "has no tag 'Rust'" in missing.err
    assert run("tags").out == "News\t1\nRust\t1\nWork\t1\n"  # nothing changed
    everything = run("untag", "1", "--all")
    assert everything.code == 0, everything
    assert "no tags (2 removed)" in everything.out
    assert run("tags").out == "News\t1\n"


@pytest.mark.usefixtures("both")
def test_tag_names_are_checked_and_cleaned(run: Run) -> None:
    assert_usage_error(run("tag", "2", " , "), "empty")  # a comma is a space: nothing is left
    assert_usage_error(run("tag", "2", "  "), "empty")
    assert_usage_error(run("tag", "2", "x" * 101), "100")
    assert run("tags").out == "Work\t1\n"  # a bad name adds none of the others either
    assert run("tag", "2", "x" * 100).code == 0
    assert run("tag", "2", "  \x1b[31mred\x1b[0m\u202e ").code == 0
    names = [item["tag"] for item in json.loads(run("tags", "--json").out)]
    assert names == ["red", "Work", "x" * 100]
    assert_usage_error(run("untag", "2"), "--all")
    assert_usage_error(run("untag", "2", "red", "--all"), "--all")


def test_tags_with_none_yet(run: Run) -> None:
    assert run("tags").out == ""
    assert json.loads(run("tags", "--json").out) == []


# --- feed settings -------------------------------------------------------------------


@pytest.mark.usefixtures("both")
def test_set_each_key_and_show_them(run: Run) -> None:
    assert run("set", "1", "interval", "2h").code == 0
    assert run("set", "1", "title", "Mine").code == 0
    assert run("set", "1", "paused", "yes").code == 0
    assert run("set", "1", "notify", "off").code == 0
    feed = feeds_json(run)[0]
    assert (feed["title"], feed["refresh_interval"], feed["paused"], feed["notify"]) == (
        "Mine", 7200, True, False
    )  # fmt: skip
    assert feed["status"] == "paused"
    assert run("set", "Mine").out == (
        "interval\t2h\ntitle\tMine\npaused\tyes\nnotify\toff\ntags\tWork\n"
    )
    line = run("feeds").out.splitlines()[0].split("\t")
    assert line[-3:] == ["Work", "7200", "off"]

    for key, value in (("interval", "default"), ("title", "default"), ("paused", "no"),
                       ("notify", "on")):  # fmt: skip
        changed = run("set", "1", key, value)
        assert changed.code == 0, changed
    assert json.loads(run("set", "1", "--json").out) == {
        "id": 1, "title": "Test Blog", "user_title": None, "refresh_interval": None,
        "paused": False, "notify": True, "tags": ["Work"],
    }  # fmt: skip
    assert run("set", "1").out.startswith("interval\tdefault (30m)\ntitle\tdefault (Test Blog)\n")
    assert run("set", "1", "title", "Again").code == 0
    assert run("set", "1", "title", "").code == 0  # "" resets too
    assert feeds_json(run)[0]["title"] == "Test Blog"


@pytest.mark.usefixtures("both")
def test_set_refuses_unknown_keys_and_bad_values(run: Run) -> None:
    assert_usage_error(run("set", "1", "colour", "red"), "interval, title, paused, notify")
    assert_usage_error(run("set", "1", "interval", "5"), "1m to 30d")
    assert_usage_error(run("set", "1", "interval", "30s"), "1m to 30d")
    assert_usage_error(run("set", "1", "interval", "31d"), "1m to 30d")
    assert_usage_error(run("set", "1", "paused", "maybe"), "yes or no")
    assert_usage_error(run("set", "1", "notify", "loud"), "on or off")
    assert_usage_error(run("set", "1", "notify"), "needs a value")
    assert run("set", "9", "notify", "off").code == 1  # no such feed
    feed = feeds_json(run)[0]
    assert (feed["refresh_interval"], feed["paused"], feed["notify"]) == (None, False, True)


@pytest.mark.usefixtures("both")
def test_a_paused_feed_is_fetched_only_when_named(
    run: Run, home: Path, blog: ServedFeed, other: ServedFeed
) -> None:
    assert run("set", "Other", "paused", "on").code == 0
    hits = other.hits
    make_due(home)
    assert run("refresh", "--force").code == 0
    assert run("refresh").code == 0
    assert len(titles(run("list"))) == 11  # its stories stay listed
    assert run("notify").code == 0
    assert other.hits == hits

    assert run("refresh", "Other").code == 0
    assert other.hits == hits + 1
    assert feeds_json(run)[1]["paused"] is True  # named once; still paused

    assert run("set", "Other", "paused", "off").code == 0
    make_due(home)
    assert run("refresh").code == 0
    assert other.hits == hits + 2


def test_the_feed_interval_decides_when_it_is_due(
    run: Run, clock: Clock, other: ServedFeed
) -> None:
    assert run("add", other.url).code == 0  # fetched at NOW
    assert run("set", "1", "interval", "2h").code == 0
    assert feeds_json(run)[0]["next_fetch"] == "2026-06-01T14:00:00Z"
    hits = other.hits

    clock.now = NOW + HOUR  # the global 30 minutes have passed, the feed's 2 hours not
    assert run("list").code == 0
    assert other.hits == hits
    clock.now = NOW + 2 * HOUR
    assert run("list").code == 0
    assert other.hits == hits + 1
    assert feeds_json(run)[0]["next_fetch"] == "2026-06-01T16:00:00Z"

    assert run("set", "1", "interval", "10m").code == 0  # shorter: due from the last fetch
    assert feeds_json(run)[0]["next_fetch"] == "2026-06-01T14:10:00Z"
    clock.now = NOW + 2 * HOUR + timedelta(minutes=10)
    assert run("list").code == 0
    assert other.hits == hits + 2

    assert run("set", "1", "interval", "default").code == 0
    assert feeds_json(run)[0]["next_fetch"] == "2026-06-01T14:40:00Z"


def test_the_feed_interval_with_ttl_and_backoff() -> None:
    settings = Settings()
    assert core.fetch_interval(settings, None, None, 7200) == timedelta(hours=2)
    assert core.fetch_interval(settings, 3 * 3600, None, 7200) == timedelta(hours=3)
    assert core.fetch_interval(settings, None, None, None) == timedelta(minutes=30)
    assert core.backoff(settings, 1, 7200) == timedelta(hours=2)
    assert core.backoff(settings, 2, 7200) == timedelta(hours=4)
    assert core.backoff(settings, 10, 7200) == timedelta(days=1)
    assert core.backoff(settings, 10, 3 * 86400) == timedelta(days=3)


@pytest.mark.usefixtures("clock")
def test_notify_off_leaves_the_feed_out_and_on_again_sends_no_backlog(
    run: Run, home: Path, other: ServedFeed, httpserver: HTTPServer
) -> None:
    blog = ServedFeed(httpserver, "Blog")
    for feed in (blog, other):
        assert run("add", feed.url).code == 0
    first = run("notify")
    assert (first.code, first.out) == (0, "")  # the baseline

    assert run("set", "Other", "notify", "off").code == 0
    other.add("Quiet one", NOW)
    blog.add("Loud one", NOW)
    make_due(home)
    sent = run("notify")
    assert sent.code == 0, sent
    assert "Loud one" in sent.out
    assert "Quiet one" not in sent.out

    assert run("set", "Other", "notify", "on").code == 0
    make_due(home)
    assert run("notify").out == ""  # what came while it was off stays unsent

    other.add("Heard again", NOW)
    make_due(home)
    again = run("notify")
    assert "Heard again" in again.out
    assert "Quiet one" not in again.out


# --- pure parts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2d", NOW - timedelta(days=2)),
        ("12h", NOW - timedelta(hours=12)),
        (" 3W ", NOW - timedelta(weeks=3)),
        ("90m", NOW - timedelta(minutes=90)),
        ("today", datetime(2026, 6, 1, tzinfo=UTC)),
        ("yesterday", datetime(2026, 5, 31, tzinfo=UTC)),
        ("2026-05-01", datetime(2026, 5, 1, tzinfo=UTC)),
        ("2026-05-01T08:00", datetime(2026, 5, 1, 8, tzinfo=UTC)),
        ("2026-05-01t08:00z", datetime(2026, 5, 1, 8, tzinfo=UTC)),
        ("2026-05-01T08:00-05:00", datetime(2026, 5, 1, 13, tzinfo=UTC)),
    ],
)
def test_parse_since(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "2", "d", "2 days", "1.5d", "99999999999d", "May 1"])
def test_parse_since_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_since(text, NOW)


# --- the store's filtered listing ------------------------------------------------------


@pytest.fixture
def filled(home: Path) -> Iterator[Store]:
    """Six feeds of 40 stories each, dates spread over 20 days, every third story read."""
    store = Store.open(home / "filters.db")
    rng = random.Random(5)
    for n in range(6):
        feed = store.add_feed(f"https://example.org/{n}.xml", now=NOW)[0]
        stories = tuple(
            ParsedStory(
                key=f"{n}-{i}",
                title=f"{n}-{i}",
                link=f"https://example.org/{n}/{i}",
                published=NOW - timedelta(minutes=rng.randrange(20 * 24 * 60)),
                date_flag=DateFlag.OK,
            )
            for i in range(40)
        )
        store.apply_update(FeedUpdate(feed.id, NOW, NOW + HOUR, success=True, stories=stories))
    everything = store.stories()
    store.mark_read([s.id for s in everything[::3]], NOW)
    yield store
    store.close()


@pytest.mark.parametrize("feed_ids", [None, [], [3], [2, 5], [1, 2, 3, 4, 6], list(range(1, 60))])
@pytest.mark.parametrize("state", ["any", "unread", "read"])
@pytest.mark.parametrize("since", [None, NOW - timedelta(days=3), NOW + HOUR])
@pytest.mark.parametrize("limit", [None, 1, 7])
def test_stories_filters_match_a_plain_filter(
    filled: Store,
    feed_ids: list[int] | None,
    state: str,
    since: datetime | None,
    limit: int | None,
) -> None:
    everything = filled.stories()
    expected = [
        s.id
        for s in everything
        if (feed_ids is None or s.feed_id in feed_ids)
        and (state == "any" or s.read == (state == "read"))
        and (since is None or s.date >= since)
    ][:limit]

    got = filled.stories(
        feed_ids=feed_ids, unread=state == "unread", read=state == "read", since=since, limit=limit
    )

    assert [s.id for s in got] == expected
    assert everything == sorted(everything, key=lambda s: (s.date, s.id), reverse=True)


# --- what feeds, tags and set show ---------------------------------------------------


def printed(renderable: RenderableType, width: int = 100) -> str:
    out = StringIO()
    Console(file=out, width=width, color_system=None, highlight=False).print(renderable)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


TAGGED = Feed(
    id=3,
    url="https://example.org/feed.xml",
    feed_title="Example",
    status=FeedStatus.PAUSED,
    refresh_interval=2 * 3600,
    notify=False,
    tags=("news", "Rust"),
)


def test_the_feed_table_shows_tags_and_settings_under_the_name() -> None:
    feeds = [TAGGED, Feed(id=4, url="https://b.example/")]
    assert printed(render.feed_table(feeds, NOW)).splitlines()[1:4] == [
        "3  Example             paused         0       0  never    -     https://example.org/feed.xml",
        " " * 64 + "#news, #Rust · every 2h · notify off",
        "4  https://b.example/  pending        0       0  never    -     https://b.example/",
    ]  # fmt: skip
    narrow = printed(render.feed_table(feeds, NOW, width=64), width=64).splitlines()
    assert "URL" not in narrow[0]
    assert narrow[2].strip().startswith("#news, #Rust")
    assert render.feed_settings_line(Feed(id=4, url="https://b.example/")) == ""


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(60, "1m"), (90, "90s"), (7200, "2h"), (86400, "1d"), (14 * 86400, "2w"), (5400, "90m")],
)
def test_durations_are_shown_in_their_largest_whole_unit(seconds: int, shown: str) -> None:
    assert render.duration(seconds) == shown


def test_tags_and_settings_views() -> None:
    assert printed(render.tag_table([("news", 2), ("[bold]x[/]", 1)])).splitlines() == [
        "Tag         Feeds",
        "news            2",
        "[bold]x[/]      1",  # feed-given text is never markup
    ]
    view = printed(render.feed_settings_view(TAGGED, 1800)).splitlines()
    assert view[0].strip() == "Example (feed 3)"
    assert [line.split() for line in view[1:]] == [
        ["interval", "2h"],
        ["title", "default", "(Example)"],
        ["paused", "yes"],
        ["notify", "off"],
        ["tags", "news,", "Rust"],
    ]
