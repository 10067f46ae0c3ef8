"""Unit tests of the pure decisions in storyfeed.core, with ``now`` pinned."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import NOW
from storyfeed.config import Settings
from storyfeed.core import (
    backoff,
    body_hash,
    decide_update,
    fetch_interval,
    is_due,
    resolve_feed,
)
from storyfeed.errors import AmbiguousFeedError, InvalidURLError, NotFoundError
from storyfeed.models import Feed, FeedStatus
from storyfeed.updates import (
    FetchOutcome,
    FetchRequest,
    FetchResult,
    ParsedFeed,
    ParsedStory,
    RefreshOutcome,
)
from storyfeed.urls import normalise_url, same_url

SETTINGS = Settings()  # refresh_interval 30 min, max_interval 24 h
INTERVAL = timedelta(seconds=SETTINGS.refresh_interval)
MAX = timedelta(seconds=SETTINGS.max_interval)
URL = "https://example.org/feed.xml"
MINUTE = timedelta(minutes=1)


# --- is_due ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "due"),
    [
        ({}, True),  # never fetched
        ({"next_fetch_at": NOW - MINUTE}, True),
        ({"next_fetch_at": NOW}, True),
        ({"next_fetch_at": NOW + MINUTE}, False),
        ({"status": FeedStatus.GONE}, False),
        ({"status": FeedStatus.GONE, "next_fetch_at": NOW - MINUTE}, False),
        ({"status": FeedStatus.PAUSED}, False),
        ({"status": FeedStatus.PAUSED, "next_fetch_at": NOW - MINUTE}, False),
        ({"next_fetch_at": NOW - MINUTE, "retry_after": NOW + MINUTE}, False),
        ({"retry_after": NOW + MINUTE}, False),
        ({"next_fetch_at": NOW - MINUTE, "retry_after": NOW - MINUTE}, True),
        ({"next_fetch_at": NOW - MINUTE, "retry_after": NOW}, True),
        ({"next_fetch_at": NOW + MINUTE, "retry_after": NOW - MINUTE}, False),
    ],
)
def test_is_due(changes: dict[str, object], due: bool) -> None:
    feed = Feed(id=1, url=URL, **changes)  # type: ignore[arg-type]

    assert is_due(feed, NOW) is due


# --- fetch_interval -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_age", "ttl", "expected"),
    [
        (None, None, INTERVAL),
        (0, 0, INTERVAL),
        (60, None, INTERVAL),  # a shorter max-age never makes us poll faster
        (None, 60, INTERVAL),
        (3600, None, timedelta(hours=1)),
        (None, 7200, timedelta(hours=2)),
        (3600, 7200, timedelta(hours=2)),
        (7200, 3600, timedelta(hours=2)),
        (10**7, None, MAX),
        (None, 10**7, MAX),
        (10**12, 10**12, MAX),
    ],
)
def test_fetch_interval(max_age: int | None, ttl: int | None, expected: timedelta) -> None:
    assert fetch_interval(SETTINGS, max_age, ttl) == expected


def test_fetch_interval_uses_the_configured_interval() -> None:
    settings = Settings(refresh_interval=600)

    assert fetch_interval(settings, None, None) == timedelta(minutes=10)
    assert fetch_interval(settings, 900, None) == timedelta(minutes=15)


# --- backoff --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        (1, INTERVAL),
        (2, 2 * INTERVAL),
        (3, 4 * INTERVAL),
        (4, 8 * INTERVAL),
        (6, 32 * INTERVAL),  # 16 h
        (7, MAX),  # 32 h, capped at 24 h
        (50, MAX),
        (10**6, MAX),
    ],
)
def test_backoff_doubles_from_one_interval_up_to_the_cap(errors: int, expected: timedelta) -> None:
    assert backoff(SETTINGS, errors) == expected


@pytest.mark.parametrize("errors", [-1, 0])
def test_backoff_is_never_zero(errors: int) -> None:
    assert backoff(SETTINGS, errors) == INTERVAL


def test_backoff_follows_the_configured_interval_and_cap() -> None:
    settings = Settings(refresh_interval=60, max_interval=600)

    delays = [backoff(settings, errors).total_seconds() for errors in range(1, 7)]

    assert delays == [60, 120, 240, 480, 600, 600]


# --- decide_update --------------------------------------------------------------------

BODY = b"<rss><channel><title>Blog</title></channel></rss>"
STORIES = (
    ParsedStory(key="a", title="First", link="https://example.org/a"),
    ParsedStory(key="b", title="Second", link="https://example.org/b"),
)
PARSED = ParsedFeed(title="Blog", site_url="https://example.org/", stories=STORIES)
FEED = Feed(
    id=7,
    url=URL,
    etag='"old"',
    last_modified="Sun, 31 May 2026 10:00:00 GMT",
    body_hash="0" * 64,
    error_count=0,
)


def fetched(outcome: FetchOutcome, **changes: object) -> FetchResult:
    request = FetchRequest(
        feed_id=FEED.id, url=FEED.url, etag=FEED.etag, last_modified=FEED.last_modified
    )
    return FetchResult(request=request, outcome=outcome, **changes)  # type: ignore[arg-type]


def ok(**changes: object) -> FetchResult:
    values: dict[str, object] = {
        "body": BODY,
        "http_status": 200,
        "final_url": URL,
        "etag": '"new"',
        "last_modified": "Mon, 01 Jun 2026 11:00:00 GMT",
    }
    return fetched(FetchOutcome.OK, **(values | changes))


def error(**changes: object) -> FetchResult:
    values: dict[str, object] = {"http_status": 500, "error": "HTTP 500 Internal Server Error"}
    return fetched(FetchOutcome.ERROR, **(values | changes))


def test_ok_and_parsed_is_updated_with_validators_hash_and_stories() -> None:
    update, outcome = decide_update(FEED, ok(), PARSED, "", SETTINGS, NOW)

    assert outcome is RefreshOutcome.UPDATED
    assert update.feed_id == FEED.id
    assert update.success is True
    assert update.fetched_at == NOW
    assert update.next_fetch_at == NOW + INTERVAL
    assert update.status is FeedStatus.ACTIVE
    assert update.etag == '"new"'
    assert update.last_modified == "Mon, 01 Jun 2026 11:00:00 GMT"
    assert update.body_hash == body_hash(BODY)
    assert update.body_hash not in {"", FEED.body_hash, body_hash(BODY + b" ")}
    assert update.stories == STORIES
    assert update.feed_title == "Blog"
    assert update.site_url == "https://example.org/"
    assert update.error == ""
    assert update.error_count == 0
    assert update.retry_after is None
    assert update.url is None


def test_success_after_failures_resets_the_error_count() -> None:
    feed = Feed(id=7, url=URL, error_count=5, last_error="HTTP 500")

    update, _ = decide_update(feed, ok(), PARSED, "", SETTINGS, NOW)

    assert update.success is True
    assert update.error_count == 0
    assert update.error == ""


def test_feed_without_a_title_keeps_the_stored_one() -> None:
    parsed = ParsedFeed(title="", site_url="", stories=STORIES)

    update, outcome = decide_update(FEED, ok(), parsed, "", SETTINGS, NOW)

    assert outcome is RefreshOutcome.UPDATED
    assert update.feed_title is None
    assert update.site_url is None


def test_ttl_and_max_age_raise_the_next_fetch() -> None:
    parsed = ParsedFeed(title="Blog", site_url="", stories=(), ttl_seconds=7200)

    by_ttl, _ = decide_update(FEED, ok(), parsed, "", SETTINGS, NOW)
    by_max_age, _ = decide_update(FEED, ok(max_age=3600), PARSED, "", SETTINGS, NOW)
    capped, _ = decide_update(FEED, ok(max_age=10**8), PARSED, "", SETTINGS, NOW)

    assert by_ttl.next_fetch_at == NOW + timedelta(hours=2)
    assert by_max_age.next_fetch_at == NOW + timedelta(hours=1)
    assert capped.next_fetch_at == NOW + MAX


def test_ok_with_nothing_parsed_is_unchanged() -> None:
    update, outcome = decide_update(FEED, ok(), None, "", SETTINGS, NOW)

    assert outcome is RefreshOutcome.UNCHANGED
    assert update.success is True
    assert update.stories == ()
    assert update.feed_title is None
    assert update.body_hash == body_hash(BODY)
    assert update.etag == '"new"'
    assert update.next_fetch_at == NOW + INTERVAL
    assert update.error_count == 0


def test_not_modified_keeps_validators() -> None:
    result = fetched(
        FetchOutcome.NOT_MODIFIED, http_status=304, etag=FEED.etag, last_modified=FEED.last_modified
    )

    update, outcome = decide_update(FEED, result, None, "", SETTINGS, NOW)

    assert outcome is RefreshOutcome.NOT_MODIFIED
    assert update.success is True
    assert update.etag in {None, FEED.etag}
    assert update.last_modified in {None, FEED.last_modified}
    assert update.body_hash is None  # nothing was read: keep the stored hash
    assert update.stories == ()
    assert update.feed_title is None
    assert update.next_fetch_at == NOW + INTERVAL
    assert update.error_count == 0
    assert update.status is FeedStatus.ACTIVE


@pytest.mark.parametrize(("before", "after"), [(0, 1), (1, 2), (2, 3), (9, 10)])
def test_error_counts_and_backs_off(before: int, after: int) -> None:
    feed = Feed(id=7, url=URL, error_count=before, etag='"old"', body_hash="0" * 64)

    update, outcome = decide_update(feed, error(), None, "", SETTINGS, NOW)

    assert outcome is RefreshOutcome.ERROR
    assert update.success is False
    assert update.error == "HTTP 500 Internal Server Error"
    assert update.error_count == after
    assert update.next_fetch_at == NOW + backoff(SETTINGS, after)
    assert update.next_fetch_at == NOW + min(INTERVAL * 2 ** (after - 1), MAX)
    assert update.status is None  # still active
    assert update.etag is None
    assert update.last_modified is None
    assert update.body_hash is None
    assert update.stories == ()
    assert update.retry_after is None
    assert update.url is None


def test_error_without_a_message_still_says_something() -> None:
    update, outcome = decide_update(FEED, error(error=""), None, "", SETTINGS, NOW)

    assert outcome is RefreshOutcome.ERROR
    assert update.error != ""


def test_retry_after_later_than_the_backoff_wins() -> None:
    later = NOW + timedelta(hours=5)

    update, outcome = decide_update(
        FEED, error(http_status=429, retry_after=later), None, "", SETTINGS, NOW
    )

    assert outcome is RefreshOutcome.ERROR
    assert update.next_fetch_at == later
    assert update.retry_after == later


def test_retry_after_earlier_than_the_backoff_loses() -> None:
    soon = NOW + MINUTE

    update, _ = decide_update(
        FEED, error(http_status=503, retry_after=soon), None, "", SETTINGS, NOW
    )

    assert update.next_fetch_at == NOW + INTERVAL
    assert update.retry_after == soon


def test_retry_after_is_capped_at_the_max_interval() -> None:
    update, _ = decide_update(
        FEED,
        error(http_status=503, retry_after=NOW + timedelta(days=365)),
        None,
        "",
        SETTINGS,
        NOW,
    )

    assert update.next_fetch_at == NOW + MAX
    assert update.retry_after == NOW + MAX


def test_gone_retires_the_feed() -> None:
    result = fetched(FetchOutcome.GONE, http_status=410)

    update, outcome = decide_update(FEED, result, None, "", SETTINGS, NOW)

    assert outcome is RefreshOutcome.GONE
    assert update.status is FeedStatus.GONE
    assert update.success is False
    assert "410" in update.error
    assert update.error_count == FEED.error_count + 1
    assert update.etag is None
    assert update.stories == ()


def test_parse_error_is_an_error_without_validators_or_hash() -> None:
    feed = Feed(id=7, url=URL, error_count=1, etag='"old"', body_hash="0" * 64)

    update, outcome = decide_update(feed, ok(), None, "not a feed: an HTML page", SETTINGS, NOW)

    assert outcome is RefreshOutcome.ERROR
    assert update.success is False
    assert update.error == "not a feed: an HTML page"
    assert update.error_count == 2
    assert update.next_fetch_at == NOW + 2 * INTERVAL
    # Storing them would make the next fetch a 304 or "unchanged" and hide the error.
    assert update.etag is None
    assert update.last_modified is None
    assert update.body_hash is None
    assert update.stories == ()
    assert update.status is None


MOVED = "https://example.org/new-feed.xml"


@pytest.mark.parametrize(
    ("result", "parsed", "parse_error", "url"),
    [
        (ok(moved_to=MOVED), PARSED, "", MOVED),
        (ok(moved_to=MOVED), None, "", MOVED),
        (fetched(FetchOutcome.NOT_MODIFIED, moved_to=MOVED, http_status=304), None, "", MOVED),
        (ok(), PARSED, "", None),
        (error(moved_to=MOVED, http_status=404, error="HTTP 404 Not Found"), None, "", None),
        (fetched(FetchOutcome.GONE, moved_to=MOVED, http_status=410), None, "", None),
        (ok(moved_to=MOVED), None, "not a feed", None),
    ],
    ids=["updated", "unchanged", "not-modified", "no-move", "error", "gone", "parse-error"],
)
def test_moved_to_becomes_the_url_only_on_success(
    result: FetchResult, parsed: ParsedFeed | None, parse_error: str, url: str | None
) -> None:
    update, _ = decide_update(FEED, result, parsed, parse_error, SETTINGS, NOW)

    assert update.url == url


# --- resolve_feed ---------------------------------------------------------------------

FEEDS = [
    Feed(id=1, url="https://wgzesg.github.io/llm_stories/index.xml", feed_title="LLM Stories"),
    Feed(id=2, url="https://example.org/python.xml", feed_title="Python"),
    Feed(id=3, url="https://example.org/pw.xml", feed_title="Python Weekly"),
    Feed(id=4, url="https://example.org/rw.xml", feed_title="Rust Weekly"),
    Feed(id=5, url="https://example.org/99.xml", feed_title="99% Invisible"),
    Feed(id=6, url="https://example.org/mine.xml", feed_title="Dull Name", user_title="My Pick"),
    Feed(id=7, url="https://alice:hunter2@private.example.org/feed.xml", feed_title="Private"),
]


def by_id(feed_id: int) -> Feed:
    return next(feed for feed in FEEDS if feed.id == feed_id)


@pytest.mark.parametrize(
    ("text", "feed_id"),
    [
        ("1", 1),
        ("4", 4),
        (" 2 ", 2),
        ("https://example.org/rw.xml", 4),
        ("https://wgzesg.github.io/llm_stories/index.xml", 1),
        ("https://alice:***@private.example.org/feed.xml", 7),  # as listings show it
        ("llm", 1),
        ("STORIES", 1),
        ("rust", 4),
        ("invisible", 5),
        ("99", 5),  # not an id: falls back to the title
        ("my pick", 6),  # the user's title is the one shown
        ("python", 2),  # exact title preferred over "Python Weekly"
        ("PYTHON", 2),
        ("python weekly", 3),
    ],
)
def test_resolve_feed_finds_one(text: str, feed_id: int) -> None:
    assert resolve_feed(FEEDS, text) == by_id(feed_id)


def test_resolve_feed_ambiguous_names_the_candidates() -> None:
    with pytest.raises(AmbiguousFeedError) as caught:
        resolve_feed(FEEDS, "weekly")

    message = str(caught.value)
    assert "Python Weekly" in message
    assert "Rust Weekly" in message
    assert "3" in message
    assert "4" in message
    assert "LLM Stories" not in message


def test_resolve_feed_ambiguous_when_several_titles_are_exactly_equal() -> None:
    feeds = [
        Feed(id=1, url="https://a.example/feed", feed_title="News"),
        Feed(id=2, url="https://b.example/feed", feed_title="news"),
    ]

    with pytest.raises(AmbiguousFeedError):
        resolve_feed(feeds, "News")


@pytest.mark.parametrize("text", ["golang", "42", "", "   ", "https://example.org/nope.xml"])
def test_resolve_feed_not_found(text: str) -> None:
    with pytest.raises(NotFoundError) as caught:
        resolve_feed(FEEDS, text)

    assert not isinstance(caught.value, AmbiguousFeedError)
    assert "no feed" in str(caught.value)


def test_resolve_feed_in_an_empty_list_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        resolve_feed([], "1")


def test_resolve_feed_errors_never_show_a_password() -> None:
    feeds = [
        Feed(id=1, url="https://u:topsecret@a.example/feed"),
        Feed(id=2, url="https://u:topsecret@b.example/feed"),
    ]

    with pytest.raises(AmbiguousFeedError) as caught:
        resolve_feed(feeds, "example")

    assert "topsecret" not in str(caught.value)


# --- normalise_url --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/feed.xml",
        "http://example.org/feed.xml",
        "https://example.org:8443/feed?x=1",
        "http://127.0.0.1:8000/feed",
        "file:///srv/feeds/blog.rss",
    ],
)
def test_normalise_url_keeps_urls(url: str) -> None:
    assert normalise_url(url) == url


def test_normalise_url_strips_surrounding_space() -> None:
    assert normalise_url("  https://example.org/feed  \n") == "https://example.org/feed"


@pytest.mark.parametrize("url", ["http://", "https:///feed.xml", "http://:80/feed"])
def test_normalise_url_without_a_host_is_invalid(url: str) -> None:
    with pytest.raises(InvalidURLError, match="host"):
        normalise_url(url)


@pytest.mark.parametrize(
    "url", ["http://example.org:99999/feed", "http://example.org:http/feed", "https://a.b:-1/"]
)
def test_normalise_url_with_a_bad_port_is_invalid(url: str) -> None:
    with pytest.raises(InvalidURLError, match="port"):
        normalise_url(url)


def test_normalise_url_error_hides_the_password() -> None:
    with pytest.raises(InvalidURLError) as caught:
        normalise_url("https://user:hunter2@example.org:99999/feed")

    assert "hunter2" not in str(caught.value)


def test_normalise_url_turns_an_existing_relative_path_into_a_file_uri(tmp_path: Path) -> None:
    (tmp_path / "feeds").mkdir()
    path = tmp_path / "feeds" / "my blog.rss"
    path.write_text("<rss/>")

    uri = normalise_url("feeds/my blog.rss", cwd=tmp_path)

    assert uri == path.resolve().as_uri()
    assert uri.startswith("file:///")
    assert "my%20blog.rss" in uri


def test_normalise_url_turns_an_existing_absolute_path_into_a_file_uri(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_text("<rss/>")

    assert normalise_url(str(path)) == path.resolve().as_uri()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.org/feed", "https://example.org/feed"),
        ("example.org", "https://example.org/"),
        ("blog.example.co.uk/rss.xml", "https://blog.example.co.uk/rss.xml"),
        pytest.param("example.org:8080/feed", "https://example.org:8080/feed"),
    ],
)
def test_normalise_url_bare_host_gets_https(tmp_path: Path, text: str, expected: str) -> None:
    assert normalise_url(text, cwd=tmp_path) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ftp://example.org/feed.xml",
        "gopher://example.org/1/feed",
        "javascript:alert(1)",
        "nonsense",
        "",
        "   ",
        "not a url.example",
        "./missing.rss",
        "/no/such/feed.rss",
    ],
)
def test_normalise_url_refuses_what_it_cannot_fetch(tmp_path: Path, text: str) -> None:
    with pytest.raises(InvalidURLError):
        normalise_url(text, cwd=tmp_path)


def test_a_feeds_ttl_outlives_the_fetch_that_brought_it() -> None:
    """A 304 or an unchanged body carries no <ttl>: the stored one still counts."""
    with_ttl = replace(FEED, ttl_seconds=3 * 3600)
    for result, parsed in ((fetched(FetchOutcome.NOT_MODIFIED), None), (ok(), None)):
        update, _ = decide_update(with_ttl, result, parsed, "", SETTINGS, NOW)
        assert update.next_fetch_at == NOW + timedelta(hours=3)
    fresh, _ = decide_update(FEED, ok(), replace(PARSED, ttl_seconds=7200), "", SETTINGS, NOW)
    assert fresh.ttl_seconds == 7200


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("http://example.org/feed", "HTTP://EXAMPLE.org/feed"),
        ("http://example.org/feed", "http://example.org:80/feed"),
        ("https://example.org/a/feed", "https://example.org/a/./b/../feed"),
        ("https://example.org/feed", "https://example.org/feed#frag"),
        ("file:///tmp/with%20space.xml", "file:///tmp/with space.xml"),
    ],
)
def test_same_url_in_other_spellings(first: str, second: str) -> None:
    assert same_url(first, second)


def test_different_urls_are_not_the_same() -> None:
    assert not same_url("https://example.org/feed", "https://example.org/Feed")
    assert not same_url("https://example.org/feed?a=1", "https://example.org/feed?a=2")
    assert not same_url("http://example.org/feed", "https://example.org/feed")
