"""What a refresh passes from layer to layer: a fetch's request and result, a parsed
document, the update the store applies, and what a feed's refresh did.

Kept apart from :mod:`storyfeed.models` so that a listing, which uses none of them,
does not pay for defining them (a frozen dataclass costs ~0.5 ms to define).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from storyfeed.models import DateFlag, Feed, FeedStatus


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
