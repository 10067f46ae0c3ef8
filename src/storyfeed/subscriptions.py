"""Use cases of the subscriptions: add (with feed discovery), remove, health.

Also the URL rules: what a user may type, and one canonical spelling per
address so that a feed cannot be subscribed twice.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from storyfeed.config import Settings
from storyfeed.core import App, decide_update, resolve_feed
from storyfeed.errors import DuplicateFeedError, FetchError, InvalidURLError, NotAFeedError
from storyfeed.models import Feed, FeedLink, FetchOutcome, FetchRequest, FetchResult
from storyfeed.text import redact_url

_FILE_SUFFIXES = (".xml", ".rss", ".atom", ".rdf", ".json", ".html", ".htm", ".opml", ".txt")


def normalise_url(text: str, cwd: Path | None = None) -> str:
    """A feed URL from what a user typed: http(s)/file URL, local path, or bare host."""
    value = text.strip()
    if not value:
        raise InvalidURLError("an empty URL")
    if re.match(r"^[\w.-]+\.[a-z]{2,}:\d+(?:/|$)", value, re.IGNORECASE):
        value = "https://" + value  # `example.org:8080/feed`: a host and port, not a scheme
    try:
        parts = urlsplit(value)
        scheme = parts.scheme.lower()
        if scheme in {"http", "https"}:
            if not parts.hostname:
                raise InvalidURLError(f"{redact_url(value)!r} has no host name")
            try:
                parts.port  # noqa: B018 (raises ValueError for a bad port)
            except ValueError as exc:
                raise InvalidURLError(f"{redact_url(value)!r} has an invalid port") from exc
            return canonical_url(value)
        if scheme == "file":
            return canonical_url(value)
    except ValueError as exc:
        raise InvalidURLError(f"{redact_url(value)!r} is not a valid URL ({exc})") from exc
    path = Path(value).expanduser()
    if not path.is_absolute() and cwd is not None:
        path = cwd / path
    if path.exists():
        return path.resolve().as_uri()
    if scheme and len(scheme) > 1:
        raise InvalidURLError(f"cannot subscribe to {scheme}: URLs; use http, https or a file")
    host = value.split("/", 1)[0]
    if "/" not in value and value.lower().endswith(_FILE_SUFFIXES):
        raise InvalidURLError(f"no such file: {value}")
    if "." in host and " " not in value and not value.startswith((".", "/", "~")):
        return canonical_url("https://" + value)
    raise InvalidURLError(f"{value!r} is neither a URL nor an existing file")


def canonical_url(url: str) -> str:
    """One spelling per address, so a feed cannot be subscribed twice under two.

    Lower-case scheme and host, no default port, no fragment or empty query, dot
    segments removed; file paths percent-encoded one way. Raises ValueError.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        path = quote(unquote(parts.path)) or "/"
        return urlunsplit(("file", "", posixpath.normpath(path), "", ""))
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    path = urljoin("http://h/", parts.path or "/")[len("http://h") :]  # RFC 3986 dot segments
    return urlunsplit((scheme, netloc, path, parts.query, ""))


def same_url(first: str, second: str) -> bool:
    try:
        return canonical_url(first) == canonical_url(second)
    except ValueError:
        return first == second


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
    others: tuple[FeedLink, ...] = ()
    try:
        parsed = parse.parse_feed(fetched.body, fetched.headers, fetched.final_url, now)
    except NotAFeedError:
        if not parse.is_html(fetched.body, fetched.headers):
            raise
        links = [
            link
            for link in parse.find_feed_links(fetched.body, fetched.headers, fetched.final_url)
            if _may_follow(url, link.url)
        ]
        if not links:
            raise NotAFeedError(f"{redact_url(url)} is a web page that links to no feed") from None
        url, others = normalise_url(links[0].url), tuple(links[1:])
        _refuse_duplicate(app, url)
        fetched = _fetch_or_raise(url, app.settings, now)
        parsed = parse.parse_feed(fetched.body, fetched.headers, fetched.final_url, now)
    if fetched.moved_to:
        url = canonical_url(fetched.moved_to)
        _refuse_duplicate(app, url)
    update, _ = decide_update(Feed(id=0, url=url), fetched, parsed, "", app.settings, now)
    feed, new = app.store.add_feed(url, user_title=title, now=now, first=replace(update, url=None))
    return Subscription(feed=feed, new=new, other_links=others)


def _may_follow(page: str, link: str) -> bool:
    """A web page may point to web feeds only; a local page may point anywhere."""
    try:
        page_scheme, link_scheme = urlsplit(page).scheme, urlsplit(link).scheme
    except ValueError:
        return False
    allowed = {"http", "https"} | ({"file"} if page_scheme == "file" else set())
    return link_scheme in allowed


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
