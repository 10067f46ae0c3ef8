"""Use cases: refresh, list, open, read, add, remove, mark.

The decisions (what is due, what a fetch means for a feed, which feed a FEED
argument names) are pure functions of data and ``now``; the use cases wire them
to the store, the fetcher and the parser. fetch and parse, and so httpx and
feedparser, are imported only when something is fetched.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from storyfeed.config import Paths, Settings, load_settings
from storyfeed.errors import (
    AmbiguousFeedError,
    DatabaseBusyError,
    DuplicateFeedError,
    FetchError,
    InvalidURLError,
    NotAFeedError,
    NotFoundError,
    ParseError,
    StoreError,
    UnsafeLinkError,
)
from storyfeed.models import (
    Feed,
    FeedLink,
    FeedStatus,
    FeedUpdate,
    FetchOutcome,
    FetchRequest,
    FetchResult,
    ParsedFeed,
    RefreshOutcome,
    RefreshResult,
    Story,
)
from storyfeed.store import Store
from storyfeed.text import html_to_text, is_web_url, redact_url


def utcnow() -> datetime:
    return datetime.now(UTC)


class App:
    """The settings, paths and (lazily opened) store of one command."""

    def __init__(
        self,
        paths: Paths,
        settings: Settings | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.paths = paths
        self._settings = settings
        self.clock = clock
        self._store: Store | None = None

    @property
    def settings(self) -> Settings:
        """Read on first use, so that `--help` works whatever config.toml holds."""
        if self._settings is None:
            self._settings = load_settings(self.paths.config_file)
        return self._settings

    @property
    def store(self) -> Store:
        if self._store is None:
            seeds = (self.settings.default_feed,) if self.settings.default_feed else ()
            self._store = Store.open(
                self.paths.database, busy_timeout=self.settings.busy_timeout, seed_urls=seeds
            )
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> App:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --- pure decisions ---------------------------------------------------------


def is_due(feed: Feed, now: datetime) -> bool:
    """An active feed whose next fetch time has come and that no Retry-After holds back."""
    if feed.status is not FeedStatus.ACTIVE:
        return False
    if feed.retry_after is not None and feed.retry_after > now:
        return False
    return feed.next_fetch_at is None or feed.next_fetch_at <= now


def fetch_interval(settings: Settings, max_age: int | None, ttl: int | None) -> timedelta:
    """The configured interval, raised (up to the cap) by Cache-Control max-age or ``<ttl>``."""
    asked = min(max(max_age or 0, ttl or 0), settings.max_interval)
    return timedelta(seconds=max(settings.refresh_interval, asked))


def backoff(settings: Settings, error_count: int) -> timedelta:
    """Exponential: one interval after the first failure, doubling, capped; never giving up."""
    steps = min(max(error_count - 1, 0), 20)
    seconds = min(settings.refresh_interval * 2**steps, settings.max_interval)
    return timedelta(seconds=max(seconds, settings.refresh_interval))


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def decide_update(
    feed: Feed,
    fetched: FetchResult,
    parsed: ParsedFeed | None,
    parse_error: str,
    settings: Settings,
    now: datetime,
) -> tuple[FeedUpdate, RefreshOutcome]:
    """What one fetch means for a feed: the row to write and the outcome to report."""
    success = fetched.outcome in {FetchOutcome.OK, FetchOutcome.NOT_MODIFIED} and not parse_error
    if success:
        ttl = parsed.ttl_seconds if parsed else feed.ttl_seconds
        common = FeedUpdate(
            feed_id=feed.id,
            fetched_at=now,
            next_fetch_at=now + fetch_interval(settings, fetched.max_age, ttl),
            success=True,
            status=FeedStatus.ACTIVE,
            url=fetched.moved_to or None,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
        )
        if fetched.outcome is FetchOutcome.NOT_MODIFIED:
            return common, RefreshOutcome.NOT_MODIFIED
        digest = body_hash(fetched.body)
        if parsed is None:
            return _replace(common, body_hash=digest), RefreshOutcome.UNCHANGED
        return _replace(
            common,
            body_hash=digest,
            feed_title=parsed.title or None,
            site_url=parsed.site_url or None,
            ttl_seconds=parsed.ttl_seconds,
            stories=parsed.stories,
        ), RefreshOutcome.UPDATED
    errors = feed.error_count + 1
    retry_cap = now + timedelta(seconds=settings.max_interval)
    retry = min(fetched.retry_after, retry_cap) if fetched.retry_after else None
    next_fetch = now + backoff(settings, errors)
    if retry is not None and retry > next_fetch:
        next_fetch = retry
    if fetched.outcome is FetchOutcome.GONE:
        message = "HTTP 410 Gone: the feed was retired; `storyfeed refresh FEED` tries it again"
        status: FeedStatus | None = FeedStatus.GONE
        outcome = RefreshOutcome.GONE
    else:
        message = parse_error or fetched.error or "unknown error"
        status, outcome = None, RefreshOutcome.ERROR
    return FeedUpdate(
        feed_id=feed.id,
        fetched_at=now,
        next_fetch_at=next_fetch,
        success=False,
        error=message,
        error_count=errors,
        status=status,
        retry_after=retry,
    ), outcome


def _replace(update: FeedUpdate, **changes: object) -> FeedUpdate:
    from dataclasses import replace

    return replace(update, **changes)  # type: ignore[arg-type]


def resolve_feed(feeds: Sequence[Feed], text: str) -> Feed:
    """The one feed a FEED argument names: an id, a URL, or part of a title."""
    wanted = text.strip()
    if wanted.isdigit():
        for feed in feeds:
            if feed.id == int(wanted):
                return feed
    for feed in feeds:
        if wanted in {feed.url, redact_url(feed.url)}:
            return feed
    lowered = wanted.casefold()
    if lowered:
        matches = [feed for feed in feeds if lowered in feed.title.casefold()]
        exact = [feed for feed in matches if feed.title.casefold() == lowered]
        if len(matches) == 1 or len(exact) == 1:
            return (exact or matches)[0]
        if matches:
            names = "; ".join(f"{feed.id}: {redact_url(feed.title)}" for feed in matches[:10])
            raise AmbiguousFeedError(f"{text!r} matches {len(matches)} feeds ({names}); use an id")
    raise NotFoundError(f"no feed matches {text!r}; `storyfeed feeds` lists them")


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


# --- refresh ------------------------------------------------------------------

Progress = Callable[[RefreshResult, int, int], None]


def select_feeds(app: App, names: Sequence[str], *, force: bool) -> tuple[list[Feed], list[Feed]]:
    """Feeds to fetch now, and feeds a server's Retry-After still holds back.

    Named feeds are fetched whatever their state (a retired one is tried again);
    otherwise the due ones, or with ``force`` every active one.
    """
    feeds = app.store.feeds()
    now = app.clock()
    if names:
        chosen = list({feed.id: feed for feed in (resolve_feed(feeds, n) for n in names)}.values())
    elif force:
        chosen = [feed for feed in feeds if feed.status is FeedStatus.ACTIVE]
    else:
        return [feed for feed in feeds if is_due(feed, now)], []
    held = [feed for feed in chosen if feed.retry_after is not None and feed.retry_after > now]
    return [feed for feed in chosen if feed not in held], held


def refresh(
    app: App, feeds: Sequence[Feed], *, progress: Progress | None = None
) -> list[RefreshResult]:
    """Fetch, parse and store each feed; one result per feed, failures included."""
    if not feeds:
        return []
    from storyfeed import fetch

    by_id = {feed.id: feed for feed in feeds}
    requests = [
        FetchRequest(feed_id=f.id, url=f.url, etag=f.etag, last_modified=f.last_modified)
        for f in feeds
    ]
    results: list[RefreshResult] = []
    for fetched in fetch.fetch_many(requests, app.settings, app.clock()):
        result = _store_fetch(app, by_id[fetched.request.feed_id], fetched)
        results.append(result)
        if progress is not None:
            progress(result, len(results), len(feeds))
    return results


def _store_fetch(app: App, feed: Feed, fetched: FetchResult) -> RefreshResult:
    now = app.clock()
    parsed, parse_error = None, ""
    if fetched.outcome is FetchOutcome.OK and body_hash(fetched.body) != feed.body_hash:
        parsed, parse_error = _parse(fetched, now)
    update, outcome = decide_update(feed, fetched, parsed, parse_error, app.settings, now)
    new, changed = app.store.apply_update(update)
    return RefreshResult(
        feed=feed,
        outcome=outcome,
        new=new,
        updated=changed,
        error=update.error,
        moved_to=redact_url(fetched.moved_to) if update.success and fetched.moved_to else "",
    )


def _parse(fetched: FetchResult, now: datetime) -> tuple[ParsedFeed | None, str]:
    from storyfeed import parse

    try:
        return parse.parse_feed(fetched.body, fetched.headers, fetched.final_url, now), ""
    except ParseError as exc:
        return None, str(exc)


# --- listing ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    stories: list[Story]
    refreshed: list[RefreshResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def list_stories(
    app: App,
    *,
    feed: str | None = None,
    unread: bool = False,
    limit: int | None = None,
    offline: bool = False,
    summary: bool = False,
    progress: Progress | None = None,
) -> Listing:
    """Refresh what is due (unless offline), then the newest stories.

    Showing them is the caller's job, and so is :func:`record_shown` afterwards.
    """
    chosen = resolve_feed(app.store.feeds(), feed) if feed else None
    refreshed: list[RefreshResult] = []
    warnings: list[str] = []
    if not offline:
        now = app.clock()
        due = [
            f for f in app.store.feeds() if is_due(f, now) and (chosen is None or f.id == chosen.id)
        ]
        try:
            refreshed = refresh(app, due, progress=progress)
        except StoreError as exc:
            warnings.append(f"refresh skipped: {exc}")
        warnings += [f"{r.feed.title}: {r.error}" for r in refreshed if r.failed]
    stories = app.store.stories(
        feed_id=chosen.id if chosen else None,
        unread=unread,
        limit=limit if limit is not None else app.settings.list_limit,
        summary=summary,
    )
    return Listing(stories=stories, refreshed=refreshed, warnings=warnings)


def record_shown(app: App, stories: Sequence[Story]) -> str:
    """Stories that were NEW have now been shown; called once the output is out.

    Returns a warning when another process holds the database: the listing was
    shown, and the stories simply stay NEW until the next one.
    """
    fresh = [story.id for story in stories if story.new]
    if not fresh:
        return ""
    try:
        app.store.mark_shown(fresh, app.clock())
    except DatabaseBusyError:
        return "the database is busy; the stories shown stay NEW until the next listing"
    return ""


def story_summary(story: Story, limit: int = 500) -> str:
    """Plain-text summary: the feed's summary, else the start of the content."""
    if story.summary:
        return html_to_text(story.summary)
    text = html_to_text(story.content)
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


def open_story(
    app: App, story_id: int | None, opener: Callable[[str], bool] | None
) -> tuple[Story, bool]:
    """Open a story's link with ``opener`` (or only check it) and mark it read.

    Returns the story and whether a browser took the link.
    """
    story = get_story(app, story_id)
    if not is_web_url(story.link):
        shown = redact_url(story.link) or "none"
        raise UnsafeLinkError(
            f"story {story.id} has no http(s) link to open (its link is {shown!r})"
        )
    opened = opener(story.link) if opener is not None else False
    app.store.mark_read([story.id], app.clock())
    return story, opened


def read_story(app: App, story_id: int) -> tuple[Story, str]:
    """The story and its content as terminal text; marks it read."""
    story = get_story(app, story_id)
    body = html_to_text(story.content or story.summary)
    app.store.mark_read([story.id], app.clock())
    return story, body


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
    feed, new = app.store.add_feed(url, user_title=title, now=now, first=_replace(update, url=None))
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
