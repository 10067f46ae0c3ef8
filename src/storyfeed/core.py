"""The application and its refresh: what is due, what a fetch means, storing it.

The decisions (what is due, what a fetch means for a feed, which feed a FEED
argument names) are pure functions of data and ``now``; :func:`refresh` wires
them to the store, the fetcher and the parser. fetch and parse, and so httpx and
feedparser, are imported only when something is fetched; parsing happens in
worker processes (:mod:`storyfeed.sandbox`). The use cases built on
this live beside it: :mod:`storyfeed.reading`, :mod:`storyfeed.subscriptions` and
:mod:`storyfeed.notify`.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from storyfeed.config import Paths, Settings, load_settings
from storyfeed.config import parse_duration as config_duration
from storyfeed.errors import (
    AmbiguousFeedError,
    ConfigError,
    InvalidURLError,
    NotFoundError,
)
from storyfeed.models import DateFlag, Feed, FeedStatus
from storyfeed.store import Store
from storyfeed.text import clean_line, redact_url
from storyfeed.urls import normalise_url, same_url

if TYPE_CHECKING:
    from storyfeed import sandbox
    from storyfeed.updates import (
        FeedUpdate,
        FetchResult,
        ParsedFeed,
        RefreshOutcome,
        RefreshResult,
    )


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

    def refresh_lock(self) -> AbstractContextManager[bool]:
        """The lock that lets one refresh or notify run at a time (yields False when
        another process holds it)."""
        from storyfeed import lock

        return lock.exclusive(self.paths.data_dir / "refresh.lock")

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def feeds_to_complete(paths: Paths) -> list[Feed]:
    """The feeds of an existing database of this schema, read without creating,
    migrating or waiting for it (tab completion); StoreError otherwise."""
    store = Store.open_to_read(paths.database)
    try:
        return store.feeds()
    finally:
        store.close()


# --- pure decisions ---------------------------------------------------------


def is_due(feed: Feed, now: datetime) -> bool:
    """An active feed whose next fetch time has come and that no Retry-After holds back."""
    if feed.status is not FeedStatus.ACTIVE:
        return False
    if feed.retry_after is not None and feed.retry_after > now:
        return False
    return feed.next_fetch_at is None or feed.next_fetch_at <= now


def fetch_interval(
    settings: Settings, max_age: int | None, ttl: int | None, interval: int | None = None
) -> timedelta:
    """The configured interval (the feed's own ``interval``, else the global one),
    raised (up to the cap) by Cache-Control max-age or ``<ttl>``."""
    asked = min(max(max_age or 0, ttl or 0), settings.max_interval)
    return timedelta(seconds=max(interval or settings.refresh_interval, asked))


def backoff(settings: Settings, error_count: int, interval: int | None = None) -> timedelta:
    """Exponential: one interval after the first failure, doubling, capped; never giving up.

    A feed with its own interval backs off from it: a failing feed is never asked
    more often than a working one.
    """
    base = interval or settings.refresh_interval
    steps = min(max(error_count - 1, 0), 20)
    seconds = min(base * 2**steps, max(settings.max_interval, base))
    return timedelta(seconds=max(seconds, base))


def parse_duration(text: str) -> int:
    """Seconds in a duration like ``90s``, ``30m``, ``12h``, ``2d`` or ``3w`` (config.toml's
    spelling, see config.parse_duration), its unit required.

    Raises ValueError for anything else: a bare number would leave its unit to guesswork.
    """
    wanted = text.strip()
    if wanted[-1:].isalpha() and len(wanted) < 11:
        with contextlib.suppress(ConfigError):
            return config_duration("duration", wanted)
    raise ValueError(f"{text!r} is not a duration like 30m, 12h, 2d or 3w")


def body_hash(body: bytes) -> str:
    import hashlib

    return hashlib.sha256(body).hexdigest()


def decide_update(
    feed: Feed,
    fetched: FetchResult,
    parsed: ParsedFeed | None,
    parse_error: str,
    settings: Settings,
    now: datetime,
    digest: str | None = None,
) -> tuple[FeedUpdate, RefreshOutcome]:
    """What one fetch means for a feed: the row to write (with what the fetch saw,
    for `doctor`) and the outcome to report.

    ``digest`` is the body's hash when the caller has it already.
    """
    from storyfeed.updates import FetchOutcome

    if fetched.outcome is FetchOutcome.OK and digest is None:
        digest = body_hash(fetched.body)
    update, outcome = _decide(feed, fetched, parsed, parse_error, settings, now, digest)
    return replace(
        update, diagnosis=fetch_diagnosis(feed, fetched, parsed, update, digest)
    ), outcome


def _decide(
    feed: Feed,
    fetched: FetchResult,
    parsed: ParsedFeed | None,
    parse_error: str,
    settings: Settings,
    now: datetime,
    digest: str | None,
) -> tuple[FeedUpdate, RefreshOutcome]:
    from storyfeed.updates import FeedUpdate, FetchOutcome, RefreshOutcome

    success = fetched.outcome in {FetchOutcome.OK, FetchOutcome.NOT_MODIFIED} and not parse_error
    if success:
        ttl = parsed.ttl_seconds if parsed else feed.ttl_seconds
        interval = fetch_interval(settings, fetched.max_age, ttl, feed.refresh_interval)
        common = FeedUpdate(
            feed_id=feed.id,
            fetched_at=now,
            next_fetch_at=now + interval,
            success=True,
            # A retired feed that answers again is active again (the store leaves a
            # paused one paused, even one paused while this fetch was under way).
            status=FeedStatus.ACTIVE,
            url=fetched.moved_to or None,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
        )
        if fetched.outcome is FetchOutcome.NOT_MODIFIED:
            return common, RefreshOutcome.NOT_MODIFIED
        digest = digest or body_hash(fetched.body)
        if parsed is None:
            return replace(common, body_hash=digest), RefreshOutcome.UNCHANGED
        return replace(
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
    next_fetch = now + backoff(settings, errors, feed.refresh_interval)
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


# What `doctor` shows of a fetch: response headers worth explaining, strings capped.
DIAGNOSED_HEADERS = (
    "cache-control", "expires", "date", "age", "etag", "last-modified", "content-type",
    "content-length", "content-encoding", "retry-after",
)  # fmt: skip
_DIAGNOSIS_CAP = 300
_REDIRECTS_KEPT = 10


def conditional_verdict(feed: Feed, fetched: FetchResult, digest: str | None) -> str:
    """Whether the server honours conditional GET, as far as this fetch tells."""
    from storyfeed.updates import FetchOutcome

    if fetched.http_status is None:
        return "not applicable" if fetched.outcome is FetchOutcome.OK else "unknown"
    if fetched.outcome is FetchOutcome.NOT_MODIFIED:
        return "honoured"
    if fetched.outcome is not FetchOutcome.OK:
        return "unknown"
    if not fetched.etag and not fetched.last_modified:
        return "not offered"
    sent = bool(fetched.request.etag or fetched.request.last_modified)
    # Validators sent and the same body back: a 304 was due.
    if sent and digest is not None and digest == feed.body_hash:
        return "ignored"
    return "unknown"


def fetch_diagnosis(
    feed: Feed,
    fetched: FetchResult,
    parsed: ParsedFeed | None,
    update: FeedUpdate,
    digest: str | None,
) -> str:
    """A small JSON record of what one fetch saw (no bodies; every string capped)."""
    import json

    def cap(value: str) -> str:
        return clean_line(value)[:_DIAGNOSIS_CAP]

    request = fetched.request
    when = update.fetched_at
    record: dict[str, object] = {
        "at": f"{when:%Y-%m-%dT%H:%M:%S}Z",
        "url": cap(redact_url(request.url)),
        "final_url": cap(redact_url(fetched.final_url)),
        "redirects": [
            [status, cap(redact_url(url))] for status, url in fetched.redirects[:_REDIRECTS_KEPT]
        ],
        "status": fetched.http_status,
        "outcome": fetched.outcome.value,
        "sent_validators": {
            "etag": bool(request.etag),
            "last_modified": bool(request.last_modified),
        },
        "conditional": conditional_verdict(feed, fetched, digest),
        "headers": {
            name: cap(fetched.headers[name])
            for name in DIAGNOSED_HEADERS
            if name in fetched.headers
        },
        "bytes": fetched.size,
        "elapsed_ms": fetched.elapsed_ms,
        "max_age": fetched.max_age,
        "error": cap(update.error),
    }
    if parsed is not None:
        flags = [story.date_flag for story in parsed.stories]
        record["parse"] = {
            "at": record["at"],
            "format": parsed.format,
            "warning": cap(parsed.warnings[0]) if parsed.warnings else "",
            "stories": len(parsed.stories),
            "without_id": min(parsed.without_id, len(parsed.stories)),
            "without_date": flags.count(DateFlag.MISSING),
            "future_dates": flags.count(DateFlag.FUTURE),
        }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def resolve_feed(feeds: Sequence[Feed], text: str) -> Feed:
    """The one feed a FEED argument names: an id, a URL (any spelling of it, or a
    local path), or part of a title."""
    wanted = text.strip()
    if wanted.isascii() and wanted.isdigit() and len(wanted) < 19:
        for feed in feeds:
            if feed.id == int(wanted):
                return feed
    for feed in feeds:
        if wanted in {feed.url, redact_url(feed.url)}:
            return feed
    with contextlib.suppress(InvalidURLError):
        address = normalise_url(wanted) if ("/" in wanted or ":" in wanted) else ""
        for feed in feeds:
            if address and same_url(feed.url, address):
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


# --- refresh ------------------------------------------------------------------

Progress = Callable[["RefreshResult", int, int], None]


def due_now(app: App) -> list[Feed]:
    """The feeds due at the app's clock: narrowed in SQL, decided by :func:`is_due`."""
    now = app.clock()
    return [feed for feed in app.store.feeds_due(now) if is_due(feed, now)]


def select_feeds(app: App, names: Sequence[str], *, force: bool) -> tuple[list[Feed], list[Feed]]:
    """Feeds to fetch now, and feeds a server's Retry-After still holds back.

    Named feeds are fetched whatever their state (a retired one is tried again);
    otherwise the due ones, or with ``force`` every active one.
    """
    if not names and not force:
        return due_now(app), []
    now = app.clock()
    feeds = app.store.feeds()
    if names:
        chosen = list({feed.id: feed for feed in (resolve_feed(feeds, n) for n in names)}.values())
    else:  # force
        chosen = [feed for feed in feeds if feed.status is FeedStatus.ACTIVE]
    held = [feed for feed in chosen if feed.retry_after is not None and feed.retry_after > now]
    return [feed for feed in chosen if feed not in held], held


def refresh(
    app: App, feeds: Sequence[Feed], *, progress: Progress | None = None
) -> list[RefreshResult]:
    """Fetch, parse and store each feed; one result per feed, failures included.

    Changed documents go to the parser processes while the next feeds are fetched;
    each feed is stored as soon as its outcome is known.
    """
    from storyfeed.updates import FetchOutcome, FetchRequest

    if not feeds:
        return []
    pool = parser_pool(app.settings)
    if any(not (feed.etag or feed.last_modified) for feed in feeds):
        # A feed that cannot be asked "changed?" sends a body, likely to be parsed:
        # a parser's start-up then overlaps loading httpx and the first fetches.
        # When every feed can, most answers are "not modified" (the cron job's
        # usual run), and the parser starts with the first body there is.
        pool.warm()
    from storyfeed import fetch

    by_id = {feed.id: feed for feed in feeds}
    requests = [
        FetchRequest(feed_id=f.id, url=f.url, etag=f.etag, last_modified=f.last_modified)
        for f in feeds
    ]
    results: list[RefreshResult] = []
    parsing: dict[int, tuple[Feed, FetchResult, str]] = {}  # by job number

    def finish(result: RefreshResult) -> None:
        results.append(result)
        if progress is not None:
            progress(result, len(results), len(feeds))

    def store_parsed(outcome: sandbox.Parsed) -> None:
        job = parsing.pop(outcome.key, None)
        if job is None:
            return  # the outcome of an earlier run in this process that was cut short
        feed, fetched, digest = job
        for result in _store_fetches(app, [(feed, fetched, outcome.feed, outcome.error, digest)]):
            finish(result)

    for batch in fetch.fetch_batches(requests, app.settings, app.clock()):
        unparsed: list[_Job] = []  # not modified, unchanged or failed: stored in one go
        for fetched in batch:
            feed = by_id[fetched.request.feed_id]
            digest = body_hash(fetched.body) if fetched.outcome is FetchOutcome.OK else None
            if digest is None or digest == feed.body_hash:  # an unchanged body: not parsed
                unparsed.append((feed, fetched, None, "", digest))
                continue
            while pool.pending >= _PARSE_BACKLOG:  # bodies wait in the fetcher, not here
                store_parsed(pool.next())
            job = next(_JOBS)
            pool.submit(job, fetched.body, fetched.headers, fetched.final_url, app.clock())
            parsing[job] = (feed, replace(fetched, body=b""), digest)
        for result in _store_fetches(app, unparsed):
            finish(result)
        for outcome in pool.done():
            store_parsed(outcome)
    while parsing:
        store_parsed(pool.next())
    return results


_PARSE_BACKLOG = 4  # documents handed to the parser processes and not yet parsed
_JOBS = itertools.count(1)  # parse jobs are numbered for the whole process: the pool is shared


def parser_pool(settings: Settings) -> sandbox.Pool:
    from storyfeed import sandbox

    return sandbox.shared(sandbox.Budget(settings.parse_timeout, settings.parse_memory))


# A fetched feed on its way to the store: (feed, fetched, parsed, parse error, body hash)
_Job = tuple[Feed, "FetchResult", "ParsedFeed | None", str, "str | None"]


def _store_fetches(app: App, jobs: Sequence[_Job]) -> list[RefreshResult]:
    """Store what these fetches mean, in one transaction; a result for each."""
    from storyfeed.updates import RefreshResult

    if not jobs:
        return []
    now = app.clock()
    decided = [
        decide_update(feed, fetched, parsed, error, app.settings, now, digest=digest)
        for feed, fetched, parsed, error, digest in jobs
    ]
    counts = app.store.apply_updates([update for update, _ in decided])
    return [
        RefreshResult(
            feed=feed,
            outcome=outcome,
            new=new,
            updated=changed,
            error=update.error,
            moved_to=redact_url(fetched.moved_to) if update.success and fetched.moved_to else "",
        )
        for (feed, fetched, *_), (update, outcome), (new, changed) in zip(
            jobs, decided, counts, strict=True
        )
    ]
