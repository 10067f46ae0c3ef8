"""Use cases of the subscriptions: add (with feed discovery), remove, health, tags and
each feed's own settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from storyfeed.config import REFRESH_INTERVAL_RANGE, Settings
from storyfeed.core import (
    App,
    decide_update,
    fetch_interval,
    parse_duration,
    parser_pool,
    resolve_feed,
)
from storyfeed.errors import (
    DuplicateFeedError,
    FetchError,
    InvalidURLError,
    NotAFeedError,
    NotFoundError,
)
from storyfeed.models import Feed, FeedStatus
from storyfeed.text import clean_line, redact_url
from storyfeed.text import clean_tag as text_clean_tag
from storyfeed.updates import FeedLink, FetchOutcome, FetchRequest, FetchResult
from storyfeed.urls import normalise_url, same_url

# --- subscriptions ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscription:
    feed: Feed
    new: int
    other_links: tuple[FeedLink, ...] = ()


def add_feed(app: App, text: str, *, title: str = "", cwd: Path | None = None) -> Subscription:
    """Subscribe to a feed URL, or to the first feed an HTML page links to."""
    from storyfeed import parse

    url = normalise_url(text, cwd)
    _refuse_duplicate(app, url)
    now = app.clock()
    fetched = _fetch_or_raise(url, app.settings, now)
    pool = parser_pool(app.settings)
    others: tuple[FeedLink, ...] = ()
    try:
        parsed = pool.parse(fetched.body, fetched.headers, fetched.final_url, now)
    except NotAFeedError:
        if not parse.is_html(fetched.body, fetched.headers):
            raise
        links = [
            replace(link, url=usable)
            for link in parse.find_feed_links(fetched.body, fetched.headers, fetched.final_url)
            if (usable := _followable(url, link.url))
        ]
        if not links:
            raise NotAFeedError(f"{redact_url(url)} is a web page that links to no feed") from None
        url, others = links[0].url, tuple(links[1:])
        _refuse_duplicate(app, url)
        fetched = _fetch_or_raise(url, app.settings, now)
        parsed = pool.parse(fetched.body, fetched.headers, fetched.final_url, now)
    if fetched.moved_to:
        url = normalise_url(fetched.moved_to)
        _refuse_duplicate(app, url)
    update, _ = decide_update(Feed(id=0, url=url), fetched, parsed, "", app.settings, now)
    feed, new = app.store.add_feed(url, user_title=title, now=now, first=replace(update, url=None))
    return Subscription(feed=feed, new=new, other_links=others)


def _followable(page: str, link: str) -> str:
    """The link's URL if a page may lead there: a web page to web feeds only, a
    local page anywhere; "" for a link that is not a usable URL."""
    try:
        url = normalise_url(link)
    except InvalidURLError:
        return ""
    allowed = {"http", "https"} | ({"file"} if urlsplit(page).scheme == "file" else set())
    return url if urlsplit(url).scheme in allowed else ""


def _refuse_duplicate(app: App, url: str) -> None:
    for feed in app.store.feeds():
        if same_url(feed.url, url):
            raise DuplicateFeedError(
                f"already subscribed to {redact_url(url)} as feed {feed.id} ({feed.title})"
            )


def _fetch_or_raise(url: str, settings: Settings, now: datetime) -> FetchResult:
    from storyfeed import fetch

    result = fetch.fetch_one(FetchRequest(feed_id=0, url=url), settings, now)
    if result.outcome is FetchOutcome.NOT_MODIFIED or result.outcome is FetchOutcome.OK:
        return result
    if result.outcome is FetchOutcome.GONE:
        raise FetchError(f"{redact_url(url)}: HTTP 410 Gone (the feed was retired)")
    raise FetchError(f"{redact_url(url)}: {result.error}")


def remove_feed(app: App, name: str) -> tuple[Feed, int]:
    feed = resolve_feed(app.store.feeds(), name)
    return feed, app.store.remove_feed(feed.id)


def feed_health(app: App) -> list[Feed]:
    return app.store.feeds(with_counts=True)


# --- tags ----------------------------------------------------------------------------

MAX_TAG_LENGTH = 100


@dataclass(frozen=True, slots=True)
class TagCount:
    tag: str
    feed_ids: tuple[int, ...]


def clean_tag(text: str) -> str:
    """A tag name as stored: :func:`storyfeed.text.clean_tag` (commas become
    spaces, as on import). Raises ValueError for an empty one or one longer than
    MAX_TAG_LENGTH."""
    tag = text_clean_tag(text)
    if not tag:
        raise ValueError("a tag cannot be empty")
    if len(tag) > MAX_TAG_LENGTH:
        raise ValueError(f"a tag has at most {MAX_TAG_LENGTH} characters: {tag[:20]!r}…")
    return tag


def tag_feed(app: App, name: str, tags: Sequence[str]) -> tuple[Feed, int]:
    """Give a feed these tags; return it (with its tags) and how many were new.

    Tags compare without case; a tag another feed already has keeps that spelling.
    """
    cleaned = [clean_tag(tag) for tag in tags]
    feeds = app.store.feeds()
    feed = resolve_feed(feeds, name)
    known = {tag.casefold(): tag for f in feeds for tag in f.tags}
    spelled = list(dict.fromkeys(known.get(tag.casefold(), tag) for tag in cleaned))
    added = app.store.add_tags(feed.id, spelled)
    return _reloaded(app, feed), added


def untag_feed(app: App, name: str, tags: Sequence[str] | None) -> tuple[Feed, int]:
    """Take these tags (None: all) from a feed; return it and how many went.

    A tag the feed does not have is an error, and nothing changes.
    """
    feed = resolve_feed(app.store.feeds(), name)
    if tags is not None:
        tags = [clean_line(tag).strip() for tag in tags]
        has = {tag.casefold() for tag in feed.tags}
        missing = [tag for tag in tags if tag.casefold() not in has]
        if missing:
            listed = ", ".join(feed.tags) or "none"
            raise NotFoundError(
                f"{feed.title} has no tag {missing[0]!r}; its tags: {listed}; nothing was changed"
            )
    removed = app.store.remove_tags(feed.id, tags)
    return _reloaded(app, feed), removed


def tag_counts(app: App) -> list[TagCount]:
    """Every tag (in the spelling it was first given) with the feeds carrying it."""
    by_tag: dict[str, tuple[str, list[int]]] = {}
    for feed in app.store.feeds():
        for tag in feed.tags:
            by_tag.setdefault(tag.casefold(), (tag, []))[1].append(feed.id)
    return [
        TagCount(tag, tuple(ids))
        for tag, ids in sorted(by_tag.values(), key=lambda item: item[0].casefold())
    ]


def _reloaded(app: App, feed: Feed) -> Feed:
    return app.store.feed(feed.id) or feed


# --- feed settings -------------------------------------------------------------------

SETTING_KEYS = ("interval", "title", "paused", "notify")
_YES = {"yes", "true", "on", "1"}
_NO = {"no", "false", "off", "0"}


def _flag(key: str, value: str, words: str) -> bool:
    wanted = value.strip().lower()
    if wanted in _YES | _NO:
        return wanted in _YES
    raise ValueError(f"{key} takes {words}, not {value!r}")


def change_setting(app: App, name: str, key: str, value: str) -> Feed:
    """Set one of a feed's own settings (SETTING_KEYS); return the feed as it is now.

    Raises ValueError for an unknown key or a value the key does not take.
    """
    wanted = key.strip().lower()
    if wanted not in SETTING_KEYS:
        raise ValueError(f"unknown setting {key!r}; settings: {', '.join(SETTING_KEYS)}")
    feed = resolve_feed(app.store.feeds(), name)
    if wanted == "interval":
        interval = _interval(value)
        app.store.set_feed_settings(
            feed.id,
            refresh_interval="default" if interval is None else interval,
            next_fetch_at=_next_fetch(app, feed, interval),
        )
    elif wanted == "title":
        title = clean_line(value).strip()
        app.store.set_feed_settings(feed.id, user_title="" if title.lower() == "default" else title)
    elif wanted == "paused":
        paused = _flag("paused", value, "yes or no (true/false, on/off)")
        if paused:
            app.store.set_feed_settings(feed.id, status=FeedStatus.PAUSED)
        elif feed.status is FeedStatus.PAUSED:
            app.store.set_feed_settings(feed.id, status=FeedStatus.ACTIVE)
    else:
        app.store.set_feed_settings(
            feed.id, notify=_flag("notify", value, "on or off (yes/no, true/false)")
        )
    return _reloaded(app, feed)


def _interval(value: str) -> int | None:
    """Seconds, or None for "default" (the global refresh_interval)."""
    if value.strip().lower() == "default":
        return None
    low, high = REFRESH_INTERVAL_RANGE
    hint = f"interval takes a duration from 1m to 30d (30m, 2h, 1d) or default, not {value!r}"
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(hint) from None
    if not low <= seconds <= high:
        raise ValueError(hint)
    return seconds


def _next_fetch(app: App, feed: Feed, interval: int | None) -> datetime | None:
    """When a feed fetched without trouble is due under its new interval (a shorter
    interval takes effect now, not after the old one ran out); None to leave it."""
    if feed.last_fetch_at is None or feed.error_count or feed.status is not FeedStatus.ACTIVE:
        return None
    return feed.last_fetch_at + fetch_interval(app.settings, None, feed.ttl_seconds, interval)


def feed_settings(app: App, name: str) -> Feed:
    return resolve_feed(app.store.feeds(), name)
