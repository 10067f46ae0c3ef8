"""Use cases of the subscriptions: add (with feed discovery), remove, health."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from storyfeed.config import Settings
from storyfeed.core import App, decide_update, parser_pool, resolve_feed
from storyfeed.errors import DuplicateFeedError, FetchError, InvalidURLError, NotAFeedError
from storyfeed.models import Feed, FeedLink, FetchOutcome, FetchRequest, FetchResult
from storyfeed.text import redact_url
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
