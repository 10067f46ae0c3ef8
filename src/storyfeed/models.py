"""Data types shared by every layer: frozen, typed, stdlib only (and text, which is).

Times are timezone-aware ``datetime`` objects in UTC.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
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
