"""Data types shared by every layer: frozen, typed, stdlib only (and text, which is).

Times are timezone-aware ``datetime`` objects in UTC.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from storyfeed.text import redact_url


class FeedStatus(enum.StrEnum):
    """Whether a feed is fetched."""

    ACTIVE = "active"
    GONE = "gone"  # the server answered 410: not fetched until named again
    PAUSED = "paused"


def feed_name(user_title: str, feed_title: str, url: str) -> str:
    """The name shown for a feed: the user's, the feed's, or its URL (redacted)."""
    return user_title or feed_title or redact_url(url)


class DateFlag(enum.StrEnum):
    """How a story's date was obtained."""

    OK = ""
    MISSING = "missing"  # the feed gave none: the first-seen time stands in
    FUTURE = "future"  # the feed gave a future date: clamped to first sight


class StoryState(enum.StrEnum):
    """A story's reading state, as shown in listings."""

    NEW = "new"
    UNREAD = "unread"
    READ = "read"


@dataclass(frozen=True, slots=True)
class Feed:
    """A subscription and its fetch state."""

    id: int
    url: str
    feed_title: str = ""
    user_title: str = ""
    site_url: str = ""
    status: FeedStatus = FeedStatus.ACTIVE
    added_at: datetime | None = None
    etag: str = ""
    last_modified: str = ""
    body_hash: str = ""
    last_fetch_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str = ""
    last_error_at: datetime | None = None
    error_count: int = 0
    next_fetch_at: datetime | None = None
    retry_after: datetime | None = None
    ttl_seconds: int | None = None  # the feed's own <ttl>, kept between fetches
    notify_after: int | None = None  # notify's baseline: story ids above it are news
    failing_since: datetime | None = None  # the first failure of the current streak
    problem_reported: int = 0  # what notify last said of its trouble (notify.FAILING, RETIRED)
    refresh_interval: int | None = None  # seconds; None follows the global setting
    notify: bool = True  # False: notify leaves this feed's stories out
    tags: tuple[str, ...] = ()
    story_count: int = 0
    unread_count: int = 0
    new_count: int = 0

    @property
    def title(self) -> str:
        return feed_name(self.user_title, self.feed_title, self.url)


@dataclass(frozen=True, slots=True)
class Story:
    """One stored entry of a feed."""

    id: int
    feed_id: int
    feed_title: str
    title: str
    link: str
    author: str
    summary: str
    published: datetime | None
    first_seen: datetime
    new: bool
    read: bool
    date_flag: DateFlag = DateFlag.OK
    content: str = ""

    @property
    def date(self) -> datetime:
        """The date the story is sorted and shown by."""
        return self.published or self.first_seen

    @property
    def state(self) -> StoryState:
        if self.read:
            return StoryState.READ
        return StoryState.NEW if self.new else StoryState.UNREAD


# ParsedStory and ParsedFeed come back from the parser processes pickled: without
# slots, unpickling sets an instance's __dict__ in one step rather than calling
# __setstate__ field by field (about twice as fast, both ways).
@dataclass(frozen=True)
class ParsedStory:
    """A story as read from a feed document, already sanitised."""

    key: str
    title: str
    link: str
    author: str = ""
    summary: str = ""
    content: str = ""
    published: datetime | None = None
    date_flag: DateFlag = DateFlag.OK


@dataclass(frozen=True)
class ParsedFeed:
    """A feed document reduced to what storyfeed keeps."""

    title: str
    site_url: str
    stories: tuple[ParsedStory, ...]
    ttl_seconds: int | None = None
    format: str = ""
    warnings: tuple[str, ...] = ()
    without_id: int = 0  # stories the feed gave no guid/id: keyed by link or text instead


@dataclass(frozen=True, slots=True)
class FeedLink:
    """A feed advertised by an HTML page (``<link rel="alternate">``)."""

    url: str
    type: str
    title: str = ""


class FetchOutcome(enum.StrEnum):
    OK = "ok"
    NOT_MODIFIED = "not_modified"
    GONE = "gone"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """What to fetch, with the validators of the last success."""

    feed_id: int
    url: str
    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of one fetch: a value, never an exception."""

    request: FetchRequest
    outcome: FetchOutcome
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    final_url: str = ""
    moved_to: str = ""  # set when every redirect on the way was permanent
    http_status: int | None = None
    etag: str = ""
    last_modified: str = ""
    max_age: int | None = None  # seconds, from Cache-Control
    retry_after: datetime | None = None
    error: str = ""
    redirects: tuple[tuple[int, str], ...] = ()  # (status, URL that answered it), in order
    size: int = 0  # bytes of the (decompressed) body
    elapsed_ms: int | None = None


class RefreshOutcome(enum.StrEnum):
    UPDATED = "updated"  # parsed and stored
    NOT_MODIFIED = "not_modified"  # 304
    UNCHANGED = "unchanged"  # 200 with the same body as last time
    GONE = "gone"  # 410: retired
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What one feed's refresh did."""

    feed: Feed
    outcome: RefreshOutcome
    new: int = 0
    updated: int = 0
    error: str = ""
    moved_to: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome is RefreshOutcome.ERROR


@dataclass(frozen=True, slots=True)
class FeedUpdate:
    """What to write for one feed after a fetch: decided by core, applied by the store.

    ``None`` means "keep what is stored".
    """

    feed_id: int
    fetched_at: datetime
    next_fetch_at: datetime
    success: bool
    error: str = ""
    # The failure streak as core saw it (its backoff is computed from it); the store
    # counts in SQL instead, so that two runs failing the same feed both count.
    error_count: int = 0
    status: FeedStatus | None = None
    url: str | None = None
    feed_title: str | None = None
    site_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    ttl_seconds: int | None = None
    retry_after: datetime | None = None
    stories: tuple[ParsedStory, ...] = ()
    diagnosis: str | None = None  # JSON: what the fetch saw, for `doctor`


@dataclass(frozen=True, slots=True)
class Channel:
    """A place notifications go, as the store remembers it (never its URL)."""

    id: int
    key: str  # a hash of the URL: the URL itself holds secrets
    label: str  # the redacted URL, for messages
    after_story: int  # baseline: story ids at or below it predate the channel
    failures: int = 0  # failed runs in a row
    failure_reported: bool = False
    last_error: str = ""


# --- search ----------------------------------------------------------------------

# Around each hit in text a search marked. Stored text never holds C0 controls
# (text.clean_text removes them), so these can only come from the search.
HIT_START, HIT_END = "\x02", "\x03"
