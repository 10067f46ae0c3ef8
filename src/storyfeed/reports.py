"""What the less frequent commands report: an import, a search, a prune, the settings.

Apart from models so that a listing, which needs none of them, does not pay for
defining them (a frozen dataclass costs ~0.4 ms at every start).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from storyfeed.models import Story


@dataclass(frozen=True, slots=True)
class NewSubscription:
    """A feed to subscribe to without fetching it first (from an OPML import)."""

    url: str
    user_title: str = ""
    site_url: str = ""
    tags: tuple[str, ...] = ()
    # the feed's own settings (from storyfeed's export); Store.add_feeds leaves them
    refresh_interval: int | None = None
    paused: bool = False
    notify: bool = True


@dataclass(frozen=True, slots=True)
class SkippedOutline:
    """A feed of an imported file that was not subscribed, and why."""

    url: str
    reason: str


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an OPML import did (or, in a dry run, would do)."""

    added: int
    already_subscribed: int
    skipped: tuple[SkippedOutline, ...]
    tags_applied: int
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class MarkedStory:
    """A story a search found, with its texts as the index marked them."""

    story: Story
    score: float  # FTS5's bm25(): lower is more relevant
    title: str  # these three hold HIT_START/HIT_END around each hit
    summary: str
    content: str


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result as shown: its place, relevance and a marked snippet."""

    story: Story
    rank: int  # 1 is the most relevant
    score: float  # higher is more relevant
    title: str  # marked like MarkedStory's texts
    snippet: str  # one line of plain text around the first hit, marked


@dataclass(frozen=True, slots=True)
class PrunedFeed:
    """One feed's part in a prune: stories that went (or would go), and old unread
    stories that stayed."""

    feed_id: int
    feed_title: str
    pruned: int
    kept_unread: int = 0


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What a prune did, or with ``dry_run`` would do."""

    cutoff: datetime  # stories dated before this went
    keep_unread: bool
    dry_run: bool
    feeds: tuple[PrunedFeed, ...] = ()
    freed_bytes: int = 0  # pages freed; a dry run's is an estimate
    vacuumed: bool = False
    file_bytes: int = 0  # the database's size afterwards
    problem: str = ""  # why the file was not compacted when it should have been

    @property
    def pruned(self) -> int:
        return sum(feed.pruned for feed in self.feeds)

    @property
    def kept_unread(self) -> int:
        return sum(feed.kept_unread for feed in self.feeds)


@dataclass(frozen=True, slots=True)
class SettingValue:
    """A setting as it is in effect: its value as config.toml would spell it (secrets
    redacted), where it came from, and what it means."""

    key: str  # "refresh_interval", "notify.urls"
    value: str
    source: str  # "default", "config file (PATH)" or "environment (STORYFEED_HOME)"
    doc: str = ""
    data: str | int | float | bool | tuple[str, ...] = ""  # the value itself (redacted)


class Verdict(enum.StrEnum):
    """How a doctor finding reads: from a plain fact to a failure."""

    INFO = "INFO"
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing doctor found: a fact, its verdict, and what to do about it."""

    topic: str
    verdict: Verdict
    text: str
    advice: str = ""


@dataclass(frozen=True, slots=True)
class Checkup:
    """What doctor says of one subject: storyfeed itself, or a feed."""

    subject: str
    findings: tuple[Finding, ...]
    feed_id: int | None = None

    @property
    def verdict(self) -> Verdict:
        """The worst verdict of the findings (OK when all are facts)."""
        order = (Verdict.FAIL, Verdict.WARN)
        found = {finding.verdict for finding in self.findings}
        return next((verdict for verdict in order if verdict in found), Verdict.OK)


@dataclass(frozen=True, slots=True)
class DatabaseHealth:
    """What the database says of itself."""

    schema_version: int
    sqlite_version: str
    check: str  # "integrity_check" or "quick_check"
    problems: tuple[str, ...]  # empty when the check passed
    feeds: int
    stories: int
    newest_story: int  # the highest story id
    indexed_through: int  # the search index holds the stories up to this id
    unindexed: int  # stories above it
    page_bytes: int  # page_count x page_size
    free_bytes: int  # freelist_count x page_size
