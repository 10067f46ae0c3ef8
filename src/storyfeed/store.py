"""The SQLite cache; the only module that uses sqlite3.

WAL mode, a busy timeout and foreign keys on every connection; the schema
version lives in ``PRAGMA user_version`` and migrations run in order, each in
the same transaction as the version bump. A database newer than this code is
refused and never touched. Writes take ``BEGIN IMMEDIATE`` so two processes
never deadlock upgrading a read lock.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from storyfeed.errors import (
    DatabaseBusyError,
    DatabaseCorruptError,
    DatabaseTooNewError,
    DuplicateFeedError,
    SearchQueryError,
    StoreError,
)
from storyfeed.models import (
    HIT_END,
    HIT_START,
    Channel,
    DateFlag,
    Feed,
    FeedStatus,
    Story,
    feed_name,
)

if TYPE_CHECKING:
    from storyfeed.reports import DatabaseHealth, MarkedStory, NewSubscription
    from storyfeed.updates import FeedUpdate, ParsedStory

_MIGRATIONS: tuple[str, ...] = (
    # 1: feeds and stories. AUTOINCREMENT: an id is never handed out twice, so a
    # story's number means one story forever, even after its feed was removed.
    """
    CREATE TABLE feeds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        url TEXT NOT NULL UNIQUE,
        feed_title TEXT NOT NULL DEFAULT '',
        user_title TEXT NOT NULL DEFAULT '',
        site_url TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'active',
        added_at INTEGER NOT NULL,
        etag TEXT NOT NULL DEFAULT '',
        last_modified TEXT NOT NULL DEFAULT '',
        body_hash TEXT NOT NULL DEFAULT '',
        last_fetch_at INTEGER,
        last_success_at INTEGER,
        last_error TEXT NOT NULL DEFAULT '',
        last_error_at INTEGER,
        error_count INTEGER NOT NULL DEFAULT 0,
        next_fetch_at INTEGER,
        retry_after INTEGER
    );
    CREATE TABLE stories (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        feed_id INTEGER NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        title TEXT NOT NULL,
        link TEXT NOT NULL,
        author TEXT NOT NULL,
        summary TEXT NOT NULL,
        content TEXT NOT NULL,
        published_at INTEGER,
        date_flag TEXT NOT NULL DEFAULT '',
        first_seen_at INTEGER NOT NULL,
        sort_at INTEGER NOT NULL,
        shown_at INTEGER,
        read_at INTEGER,
        UNIQUE (feed_id, key)
    );
    CREATE INDEX stories_by_date ON stories (sort_at DESC, id DESC);
    CREATE INDEX stories_by_feed_date ON stories (feed_id, sort_at DESC, id DESC);
    CREATE INDEX stories_unread_by_date ON stories (sort_at DESC, id DESC)
        WHERE read_at IS NULL;
    """,
    # 2: a feed's <ttl> outlives the fetch that brought it (a 304 carries none).
    # Forgetting the validators makes the next fetch of each feed a full one, which
    # reads the <ttl> that version 1 did not keep.
    """
    ALTER TABLE feeds ADD COLUMN ttl_seconds INTEGER;
    UPDATE feeds SET etag = '', last_modified = '', body_hash = '';
    """,
    # 3: notifications. A channel is known by a hash of its URL, never the URL (it
    # holds tokens); ids at or below a baseline (a feed's notify_after, a channel's
    # after_story) are history, not news. failing_since starts a feed's error streak.
    """
    ALTER TABLE feeds ADD COLUMN notify_after INTEGER;
    ALTER TABLE feeds ADD COLUMN failing_since INTEGER;
    ALTER TABLE feeds ADD COLUMN problem_reported INTEGER NOT NULL DEFAULT 0;
    UPDATE feeds SET failing_since = last_error_at WHERE error_count > 0;
    CREATE TABLE channels (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        after_story INTEGER NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        failure_reported INTEGER NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        last_success_at INTEGER
    );
    CREATE TABLE deliveries (
        channel_id INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
        story_id INTEGER NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
        delivered_at INTEGER NOT NULL,
        PRIMARY KEY (channel_id, story_id)
    ) WITHOUT ROWID;
    CREATE INDEX deliveries_by_story ON deliveries (story_id);
    """,
    # 4: when a story was first read. Marking it unread keeps this, so a story read
    # before notify could send it is never sent, whatever happened to it since.
    """
    ALTER TABLE stories ADD COLUMN first_read_at INTEGER;
    UPDATE stories SET first_read_at = read_at WHERE read_at IS NOT NULL;
    """,
    # 5: tags, per-feed settings, what the last fetch saw, tombstones, search.
    # refresh_interval: seconds, NULL follows the global setting. diagnosis: JSON
    # written by each fetch for `doctor`. A tombstone keeps a pruned story's key so
    # that a feed still listing it cannot bring it back, and its fingerprint (link
    # and title, see _fingerprint) for feeds that make up a new key on every fetch
    # ('' for a story without a link: never matched). The search index holds the
    # stories up to search_index.indexed_through: new ones are indexed by the next
    # search (indexing costs ~6x storing a story, and a refresh must stay fast);
    # the triggers keep indexed stories in step when they change or go.
    """
    ALTER TABLE feeds ADD COLUMN refresh_interval INTEGER;
    ALTER TABLE feeds ADD COLUMN notify INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE feeds ADD COLUMN diagnosis TEXT NOT NULL DEFAULT '';
    CREATE TABLE feed_tags (
        feed_id INTEGER NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
        tag TEXT NOT NULL COLLATE NOCASE,
        PRIMARY KEY (feed_id, tag)
    ) WITHOUT ROWID;
    CREATE INDEX feed_tags_by_tag ON feed_tags (tag);
    CREATE TABLE tombstones (
        feed_id INTEGER NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        pruned_at INTEGER NOT NULL,
        fingerprint TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (feed_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX tombstones_by_fingerprint ON tombstones (feed_id, fingerprint);
    CREATE VIRTUAL TABLE stories_fts USING fts5 (
        title, author, summary, content,
        content = 'stories', content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TABLE search_index (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        indexed_through INTEGER NOT NULL
    );
    INSERT INTO search_index (id, indexed_through) VALUES (1, 0);
    CREATE TRIGGER stories_fts_update AFTER UPDATE OF title, author, summary, content
    ON stories WHEN old.id <= (SELECT indexed_through FROM search_index) BEGIN
        INSERT INTO stories_fts (stories_fts, rowid, title, author, summary, content)
        VALUES ('delete', old.id, old.title, old.author, old.summary, old.content);
        INSERT INTO stories_fts (rowid, title, author, summary, content)
        VALUES (new.id, new.title, new.author, new.summary, new.content);
    END;
    CREATE TRIGGER stories_fts_delete AFTER DELETE ON stories
    WHEN old.id <= (SELECT indexed_through FROM search_index) BEGIN
        INSERT INTO stories_fts (stories_fts, rowid, title, author, summary, content)
        VALUES ('delete', old.id, old.title, old.author, old.summary, old.content);
    END;
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)
_MAX_ROWS = 2**62  # below SQLite's integer limit: larger ids and limits cannot match
_CONTENT_PREFIX = 4000
_INDEX_STEP = 2000  # story ids indexed in one transaction (about half a second)
_SEARCH_WEIGHTS = "10.0, 5.0, 2.0, 1.0"  # bm25 weights of title, author, summary, content
_STEP = 0.1  # seconds SQLite itself waits for a lock before we look again

P = ParamSpec("P")
R = TypeVar("R")


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of a script, one by one (executescript would commit the
    migration's transaction); a trigger's body keeps its semicolons."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""


def _ts(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp())


def _dt(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _translate(exc: sqlite3.Error, path: Path) -> StoreError:
    message = str(exc)
    lowered = message.lower()
    code = getattr(exc, "sqlite_errorname", "") or ""
    if code.startswith("SQLITE_IOERR"):
        return StoreError(
            f"cannot read or write the database {path}: disk I/O error "
            "(is the disk full, or the file too large?)"
        )
    if "locked" in lowered or "busy" in lowered:
        return DatabaseBusyError(f"the database {path} is locked by another process; try again")
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return DatabaseCorruptError(
            f"the database {path} is corrupt or not a storyfeed database ({message}); "
            "move it aside to start afresh"
        )
    if "full" in lowered:
        return StoreError(f"cannot write the database {path}: the disk is full")
    if "readonly" in lowered or "unable to open" in lowered:
        return StoreError(f"cannot open the database {path} for writing ({message})")
    return StoreError(f"database error in {path}: {message}")


def _translated(method: Callable[P, R]) -> Callable[P, R]:
    """Turn sqlite3 errors raised by a Store method into StoreError values."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            store = args[0]
            assert isinstance(store, Store)
            raise _translate(exc, store.path) from exc

    return wrapper


_FEED_COLUMNS = (
    "f.id, f.url, f.feed_title, f.user_title, f.site_url, f.status, f.added_at, f.etag, "
    "f.last_modified, f.body_hash, f.last_fetch_at, f.last_success_at, f.last_error, "
    "f.last_error_at, f.error_count, f.next_fetch_at, f.retry_after, f.ttl_seconds, "
    "f.notify_after, f.failing_since, f.problem_reported, f.refresh_interval, f.notify"
)
_TAG_SEPARATOR = "\x1f"  # joins a feed's tags in one column; clean tags never hold it
# A listing of this many feeds or fewer merges per-feed index walks; more feeds than
# this walk the date index instead (SQLite allows 500 terms in a compound query).
_MERGED_FEEDS = 50


def _feed(
    row: Sequence[Any], counts: Sequence[int] = (0, 0, 0), tags: tuple[str, ...] = ()
) -> Feed:
    (id_, url, feed_title, user_title, site_url, status, added, etag, modified, body_hash,
     fetched, succeeded, error, errored, error_count, next_fetch, retry, ttl, notify_after,
     failing_since, reported, refresh_interval, notify) = row  # fmt: skip
    return Feed(
        id=int(id_),
        url=str(url),
        feed_title=str(feed_title),
        user_title=str(user_title),
        site_url=str(site_url),
        status=FeedStatus(str(status)),
        added_at=_dt(added),
        etag=str(etag),
        last_modified=str(modified),
        body_hash=str(body_hash),
        last_fetch_at=_dt(fetched),
        last_success_at=_dt(succeeded),
        last_error=str(error),
        last_error_at=_dt(errored),
        error_count=int(error_count),
        next_fetch_at=_dt(next_fetch),
        retry_after=_dt(retry),
        ttl_seconds=None if ttl is None else int(ttl),
        notify_after=None if notify_after is None else int(notify_after),
        failing_since=_dt(failing_since),
        problem_reported=int(reported),
        refresh_interval=None if refresh_interval is None else int(refresh_interval),
        notify=bool(notify),
        tags=tags,
        story_count=counts[0],
        unread_count=counts[1],
        new_count=counts[2],
    )


class Store:
    """An open storyfeed database."""

    def __init__(self, connection: sqlite3.Connection, path: Path, busy_timeout: float) -> None:
        self._db = connection
        self.path = path
        self.busy_timeout = busy_timeout

    # --- opening --------------------------------------------------------

    @classmethod
    def open(
        cls, path: Path, *, busy_timeout: float = 10.0, seed_urls: Iterable[str] = ()
    ) -> Store:
        """Open (creating and migrating if needed) the database at ``path``.

        ``seed_urls`` are subscribed when the database is created, in the same
        transaction, so a new database never exists without them.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the data directory {path.parent}: {exc.strerror}"
            ) from exc
        try:
            connection = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise _translate(exc, path) from exc
        store = cls(connection, path, busy_timeout)
        try:
            store._prepare(tuple(seed_urls))
        except BaseException:
            connection.close()
            raise
        return store

    @classmethod
    def open_to_read(cls, path: Path) -> Store:
        """Open an existing database of this schema for reading only: nothing is
        created, migrated or written, and no writer is waited for (what tab
        completion may do). StoreError otherwise."""
        if not path.exists():
            raise StoreError(f"there is no database at {path}")
        try:
            connection = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=0, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise _translate(exc, path) from exc
        store = cls(connection, path, busy_timeout=0)
        try:
            version = store._version()
        except sqlite3.Error as exc:
            store.close()
            raise _translate(exc, path) from exc
        if version != SCHEMA_VERSION:
            store.close()
            raise StoreError(f"the database {path} has schema {version}, not {SCHEMA_VERSION}")
        return store

    @_translated
    def _prepare(self, seed_urls: tuple[str, ...]) -> None:
        self._refuse_truncated()
        version = self._version()
        self._refuse_newer(version)
        self._db.execute("PRAGMA foreign_keys = ON")
        if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        if version < SCHEMA_VERSION:
            self._migrate(seed_urls)
        # From here on SQLite's own waiting stays short: _begin waits for the write
        # lock in steps (WAL readers do not wait at all).
        self._db.execute(f"PRAGMA busy_timeout = {int(_STEP * 1000)}")

    def _refuse_truncated(self) -> None:
        """A file cut short (a failed copy, a full disk outside SQLite) is corrupt,
        though SQLite would only notice on reaching the missing pages, and might
        write into it first. Without a write-ahead log the file must hold exactly
        the pages its header counts."""
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            if wal.exists() and wal.stat().st_size > 0:
                return  # the log may hold pages the file does not have yet
            with self.path.open("rb") as handle:
                header = handle.read(100)
                size = os.fstat(handle.fileno()).st_size
        except OSError:
            return  # SQLite reports what it cannot open
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            return  # empty (new) or not SQLite at all: SQLite's own errors say so
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        counted = header[24:28] == header[92:96] and pages > 0
        if size % page_size or (counted and size < pages * page_size):
            raise DatabaseCorruptError(
                f"the database {self.path} is corrupt (the file is cut short: "
                f"{size:,} bytes); move it aside to start afresh"
            )

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise DatabaseTooNewError(
                f"the database {self.path} was written by a newer storyfeed "
                f"(schema {version}, this one knows {SCHEMA_VERSION}); upgrade storyfeed"
            )

    def _version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, seed_urls: tuple[str, ...]) -> None:
        with self._write():
            version = self._version()  # another process may have migrated meanwhile
            self._refuse_newer(version)
            created = version == 0
            for number in range(version, SCHEMA_VERSION):
                for statement in _statements(_MIGRATIONS[number]):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number + 1}")
            if created:
                now = _ts(datetime.now(UTC))
                for url in seed_urls:
                    self._db.execute("INSERT INTO feeds (url, added_at) VALUES (?, ?)", (url, now))

    @contextmanager
    def _write(self, wait: float | None = None) -> Iterator[None]:
        """One write transaction, waiting up to ``wait`` seconds (the busy timeout by
        default) for another process's. The waiting is done here in short steps, not
        inside SQLite, so that Ctrl-C is not held up by it."""
        self._begin(self.busy_timeout if wait is None else wait)
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            # SQLite ends the transaction itself on some errors (a full disk, an I/O
            # error); the error to report is the first one, never the rollback's.
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

    def _begin(self, wait: float) -> None:
        self._execute_waiting("BEGIN IMMEDIATE", wait)

    def _execute_waiting(self, statement: str, wait: float) -> None:
        """Run a statement that needs the write lock, trying again for up to ``wait``
        seconds while another process holds it (in short steps: see _write)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                self._db.execute(statement)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise
            time.sleep(0.05)

    def close(self) -> None:
        self._db.close()

    # --- feeds ------------------------------------------------------------

    @_translated
    def feeds(self, *, with_counts: bool = False) -> list[Feed]:
        query = f"SELECT {_FEED_COLUMNS} FROM feeds f ORDER BY f.id"  # noqa: S608
        rows = self._db.execute(query).fetchall()
        tags = self._tags_by_feed()
        if not with_counts:
            return [_feed(row, tags=tags.get(row[0], ())) for row in rows]
        counts = {
            feed_id: (total, unread, new)
            for feed_id, total, unread, new in self._db.execute(
                "SELECT feed_id, COUNT(*), COUNT(*) - COUNT(read_at), "
                "SUM(shown_at IS NULL AND read_at IS NULL) FROM stories GROUP BY feed_id"
            )
        }
        return [_feed(row, counts.get(row[0], (0, 0, 0)), tags.get(row[0], ())) for row in rows]

    @_translated
    def feeds_due(self, now: datetime) -> list[Feed]:
        """The feeds :func:`storyfeed.core.is_due` would pick at ``now`` (active, next
        fetch time come, no Retry-After holding them back), chosen in SQL: a listing
        with nothing due builds no Feed, however many feeds there are."""
        at = _ts(now)
        query = (
            f"SELECT {_FEED_COLUMNS} FROM feeds f WHERE f.status = 'active' "  # noqa: S608
            "AND (f.retry_after IS NULL OR f.retry_after <= ?) "
            "AND (f.next_fetch_at IS NULL OR f.next_fetch_at <= ?) ORDER BY f.id"
        )
        rows = self._db.execute(query, (at, at)).fetchall()
        tags = self._tags_by_feed() if rows else {}
        return [_feed(row, tags=tags.get(row[0], ())) for row in rows]

    @_translated
    def feed(self, feed_id: int) -> Feed | None:
        query = f"SELECT {_FEED_COLUMNS} FROM feeds f WHERE f.id = ?"  # noqa: S608
        found = self._db.execute(query, (feed_id,)).fetchone()
        return _feed(found, tags=self._tags_by_feed(feed_id).get(feed_id, ())) if found else None

    @_translated
    def add_feed(
        self,
        url: str,
        *,
        user_title: str = "",
        now: datetime,
        first: FeedUpdate | None = None,
    ) -> tuple[Feed, int]:
        """Subscribe, storing the first fetch (``first``, its feed_id ignored) in the
        same transaction. Returns the feed and how many stories it brought."""
        with self._write():
            try:
                cursor = self._db.execute(
                    "INSERT INTO feeds (url, user_title, added_at) VALUES (?, ?, ?)",
                    (url, user_title, _ts(now)),
                )
            except sqlite3.IntegrityError as exc:
                raise DuplicateFeedError("already subscribed to that feed") from exc
            feed_id = int(cursor.lastrowid or 0)
            new = 0
            if first is not None:
                first = replace(first, feed_id=feed_id)
                new, _ = self._upsert_stories(feed_id, first.stories, first.fetched_at)
                self._update_feed(first)
        feed = self.feed(feed_id)
        assert feed is not None
        return feed, new

    @_translated
    def add_feeds(self, feeds: Sequence[NewSubscription], now: datetime) -> tuple[int, int]:
        """Subscribe to many feeds with their tags in one transaction, fetching none;
        a URL already subscribed is left as it is. Returns (feeds added, tags given)."""
        added = tagged = 0
        with self._write():
            for feed in feeds:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO feeds (url, user_title, site_url, added_at) "
                    "VALUES (?, ?, ?, ?)",
                    (feed.url, feed.user_title, feed.site_url, _ts(now)),
                )
                if cursor.rowcount != 1:
                    continue
                added += 1
                feed_id = int(cursor.lastrowid or 0)
                if feed.tags:
                    tagged += self._db.executemany(
                        "INSERT OR IGNORE INTO feed_tags (feed_id, tag) VALUES (?, ?)",
                        [(feed_id, tag) for tag in feed.tags],
                    ).rowcount
        return added, tagged

    @_translated
    def remove_feed(self, feed_id: int) -> int:
        """Delete the feed and its stories; return how many stories went."""
        with self._write():
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM stories WHERE feed_id = ?", (feed_id,)
            ).fetchone()
            self._db.execute("DELETE FROM feeds WHERE id = ?", (feed_id,))
        return int(count)

    @_translated
    def apply_update(self, update: FeedUpdate) -> tuple[int, int]:
        """Write one feed's fetch outcome and stories in one transaction.

        Returns (new stories, changed stories). Existing stories keep their
        read and NEW state; only their text changes.
        """
        return self.apply_updates([update])[0]

    @_translated
    def apply_updates(self, updates: Sequence[FeedUpdate]) -> list[tuple[int, int]]:
        """Write several feeds' fetch outcomes in one transaction (one commit for a
        run's many "not modified"); (new, changed) for each, as apply_update."""
        counts = []
        with self._write():
            for update in updates:
                exists = self._db.execute("SELECT 1 FROM feeds WHERE id = ?", (update.feed_id,))
                if exists.fetchone() is None:
                    counts.append((0, 0))  # removed while it was being fetched
                    continue
                counts.append(
                    self._upsert_stories(update.feed_id, update.stories, update.fetched_at)
                )
                self._update_feed(update)
        return counts

    def _upsert_stories(
        self, feed_id: int, stories: Sequence[ParsedStory], now: datetime
    ) -> tuple[int, int]:
        if not stories:
            return 0, 0
        known = {
            key
            for (key,) in self._db.execute("SELECT key FROM stories WHERE feed_id = ?", (feed_id,))
        }
        stories = self._without_tombstoned(feed_id, stories, known)
        seen = int(now.timestamp())
        known |= self._rekey_moved(feed_id, stories, known)
        # Oldest first, so ids grow with time like a mailbox's; among equal dates
        # the feed's first story (usually its newest) gets the highest id.
        fresh = [s for s in reversed(stories) if s.key not in known]
        fresh.sort(key=lambda s: seen if s.published is None else int(s.published.timestamp()))
        self._db.executemany(
            "INSERT INTO stories (feed_id, key, title, link, author, summary, content, "
            "published_at, date_flag, first_seen_at, sort_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    feed_id, s.key, s.title, s.link, s.author, s.summary, s.content,
                    _ts(s.published), s.date_flag.value, seen,
                    seen if s.published is None else _ts(s.published),
                )
                for s in fresh
            ],
        )  # fmt: skip
        old = [s for s in stories if s.key in known]
        cursor = self._db.executemany(
            "UPDATE stories SET title = ?, link = ?, author = ?, summary = ?, content = ?, "
            "published_at = COALESCE(?, published_at), "
            "date_flag = CASE WHEN ? IS NULL THEN date_flag ELSE ? END, "
            "sort_at = COALESCE(?, sort_at) "
            "WHERE feed_id = ? AND key = ? AND (title IS NOT ? OR link IS NOT ? OR "
            "author IS NOT ? OR summary IS NOT ? OR content IS NOT ?)",
            [
                (
                    s.title, s.link, s.author, s.summary, s.content, _ts(s.published),
                    _ts(s.published), s.date_flag.value, _ts(s.published), feed_id, s.key,
                    s.title, s.link, s.author, s.summary, s.content,
                )
                for s in old
            ],
        )  # fmt: skip
        return len(fresh), max(cursor.rowcount, 0) if old else 0

    def _rekey_moved(
        self, feed_id: int, stories: Sequence[ParsedStory], known: set[str]
    ) -> set[str]:
        """Keys of stories whose guid changed: a story with an unknown key but the link
        and title of a stored story whose key the document no longer holds is that
        story (some feeds make up a new guid on every fetch). The stored story takes
        the new key, so it keeps its id, read state and deliveries."""
        listed = {story.key for story in stories}
        unknown = [s for s in stories if s.key not in known and s.link]
        if not unknown or not known:
            return set()
        candidates: dict[tuple[str, str], list[int]] = {}
        for chunk in _chunks(sorted({s.link for s in unknown})):
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT id, key, link, title FROM stories WHERE feed_id = ? AND link IN ({marks})"  # noqa: S608
                " ORDER BY id",
                (feed_id, *chunk),
            )
            for story_id, key, link, title in rows:
                if key not in listed:
                    candidates.setdefault((link, title), []).append(story_id)
        moved = set()
        for story in unknown:
            ids = candidates.get((story.link, story.title))
            if ids:
                self._db.execute("UPDATE stories SET key = ? WHERE id = ?", (story.key, ids.pop()))
                moved.add(story.key)
        return moved

    def _update_feed(self, update: FeedUpdate) -> None:
        fields: dict[str, object] = {
            "last_fetch_at": _ts(update.fetched_at),
            "next_fetch_at": _ts(update.next_fetch_at),
            "retry_after": _ts(update.retry_after),
        }
        if update.success:
            fields["last_success_at"] = _ts(update.fetched_at)
            fields["last_error"] = ""
            fields["failing_since"] = None
        else:
            fields["last_error"] = update.error
            fields["last_error_at"] = _ts(update.fetched_at)
        revive = update.status is FeedStatus.ACTIVE
        optional = {
            "status": update.status.value if update.status and not revive else None,
            "feed_title": update.feed_title,
            "site_url": update.site_url,
            "etag": update.etag,
            "last_modified": update.last_modified,
            "body_hash": update.body_hash,
            "ttl_seconds": update.ttl_seconds,
        }
        fields.update({k: v for k, v in optional.items() if v is not None})
        if update.diagnosis is not None:
            fields["diagnosis"] = update.diagnosis
        # Numbered parameters: the diagnosis is named three times in _DIAGNOSIS.
        assignments = ", ".join(
            f"{name} = {_DIAGNOSIS.format(n) if name == 'diagnosis' else f'?{n}'}"
            for n, name in enumerate(fields, 1)
        )
        if revive:
            # Only a retired feed comes back: a pause (maybe set by `storyfeed set` while
            # this fetch was under way) is the user's, and stays.
            assignments += ", status = CASE status WHEN 'gone' THEN 'active' ELSE status END"
        # Counted in SQL: two processes failing the same feed both count.
        assignments += ", error_count = " + ("0" if update.success else "error_count + 1")
        if not update.success:
            assignments += f", failing_since = COALESCE(failing_since, {_ts(update.fetched_at)})"
        self._db.execute(
            f"UPDATE feeds SET {assignments} WHERE id = ?{len(fields) + 1}",  # noqa: S608 (names are ours)
            (*fields.values(), update.feed_id),
        )
        if update.url:
            # A permanent redirect to a URL another subscription already has
            # is left alone rather than merging two feeds.
            self._db.execute(
                "UPDATE OR IGNORE feeds SET url = ? WHERE id = ?", (update.url, update.feed_id)
            )

    # --- tags -----------------------------------------------------------

    def _tags_by_feed(self, feed_id: int | None = None) -> dict[int, tuple[str, ...]]:
        query = "SELECT feed_id, group_concat(tag, ?) FROM feed_tags"
        if feed_id is None:
            rows = self._db.execute(query + " GROUP BY feed_id", (_TAG_SEPARATOR,))
        else:
            rows = self._db.execute(
                query + " WHERE feed_id = ? GROUP BY feed_id", (_TAG_SEPARATOR, feed_id)
            )
        return {
            int(found): tuple(sorted(str(joined).split(_TAG_SEPARATOR), key=str.casefold))
            for found, joined in rows
        }

    @_translated
    def add_tags(self, feed_id: int, tags: Iterable[str]) -> int:
        """Give a feed these tags (clean, non-empty names); return how many were new.
        Tags compare without case; the spelling first given is kept."""
        with self._write():
            cursor = self._db.executemany(
                "INSERT OR IGNORE INTO feed_tags (feed_id, tag) VALUES (?, ?)",
                [(feed_id, tag) for tag in tags],
            )
        return cursor.rowcount

    @_translated
    def remove_tags(self, feed_id: int, tags: Iterable[str] | None = None) -> int:
        """Take these tags (None: all) from a feed; return how many went."""
        with self._write():
            if tags is None:
                cursor = self._db.execute("DELETE FROM feed_tags WHERE feed_id = ?", (feed_id,))
            else:
                cursor = self._db.executemany(
                    "DELETE FROM feed_tags WHERE feed_id = ? AND tag = ?",
                    [(feed_id, tag) for tag in tags],
                )
        return cursor.rowcount

    # --- feed settings ----------------------------------------------------

    @_translated
    def set_feed_settings(
        self,
        feed_id: int,
        *,
        user_title: str | None = None,
        refresh_interval: int | Literal["default"] | None = None,
        status: FeedStatus | None = None,
        notify: bool | None = None,
        next_fetch_at: datetime | None = None,
    ) -> None:
        """Change a feed's own settings; None leaves one as it is ("default" puts the
        refresh interval back to the global setting).

        Turning notify back on makes the stories stored meanwhile history, as a new
        feed's are: notify sends what arrives next, not the backlog of the quiet time.
        """
        fields: dict[str, object] = {}
        if user_title is not None:
            fields["user_title"] = user_title
        if refresh_interval == "default":
            fields["refresh_interval"] = None
        elif refresh_interval is not None:
            fields["refresh_interval"] = refresh_interval
        if status is not None:
            fields["status"] = status.value
        if notify is not None:
            fields["notify"] = int(notify)
        if next_fetch_at is not None:
            fields["next_fetch_at"] = _ts(next_fetch_at)
        if not fields:
            return
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._write():
            if notify:
                self._db.execute(
                    "UPDATE feeds SET notify_after = max(COALESCE(notify_after, 0), ?) "
                    "WHERE id = ? AND notify = 0",
                    (self._last_story_id(), feed_id),
                )
            self._db.execute(
                f"UPDATE feeds SET {assignments} WHERE id = ?",  # noqa: S608 (names are ours)
                (*fields.values(), feed_id),
            )

    # --- stories ----------------------------------------------------------

    def _story_query(
        self, where: str, *, summary: bool = False, content: bool = False, sort_key: bool = False
    ) -> str:
        """The listing query. Texts are loaded only on request: ``summary`` brings the
        summary and the start of the content (for stories whose feed gave no
        summary), ``content`` all of both. ``sort_key`` adds s.sort_at as a last
        column, for a compound query to order by."""
        if content:
            texts = "s.summary, s.content"
        elif summary:
            texts = f"s.summary, substr(s.content, 1, {_CONTENT_PREFIX})"
        else:
            texts = "'', ''"
        return (
            "SELECT s.id, s.feed_id, f.user_title, f.feed_title, f.url, s.title, s.link, "  # noqa: S608
            f"s.author, {texts}, s.published_at, s.first_seen_at, "
            "s.shown_at IS NULL, s.read_at IS NOT NULL, s.date_flag"
            f"{', s.sort_at' if sort_key else ''} "
            f"FROM stories s JOIN feeds f ON f.id = s.feed_id {where}"
        )

    @staticmethod
    def _story(row: Sequence[Any]) -> Story:
        (id_, feed_id, user_title, feed_title, feed_url, title, link, author, summary, content,
         published, first_seen, new, read, flag) = row[:15]  # fmt: skip
        return Story(
            id=int(id_),
            feed_id=int(feed_id),
            feed_title=feed_name(str(user_title), str(feed_title), str(feed_url)),
            title=str(title),
            link=str(link),
            author=str(author),
            summary=str(summary),
            content=str(content),
            published=_dt(published),
            first_seen=datetime.fromtimestamp(first_seen, UTC),
            new=bool(new),
            read=bool(read),
            date_flag=DateFlag(str(flag)),
        )

    @_translated
    def stories(
        self,
        *,
        feed_id: int | None = None,
        feed_ids: Sequence[int] | None = None,
        unread: bool = False,
        read: bool = False,
        since: datetime | None = None,
        limit: int | None = None,
        summary: bool = False,
    ) -> list[Story]:
        """Newest first: by published date (first-seen when there is none), then id.

        ``feed_id`` or ``feed_ids`` narrows to those feeds (an empty sequence: none);
        ``since``: dated then or later.
        """
        chosen = sorted(set(feed_ids)) if feed_ids is not None else None
        if feed_id is not None:
            chosen = [feed_id]
        if chosen is not None and not chosen:
            return []
        clauses: list[str] = []
        params: list[object] = []
        if unread:
            clauses.append("s.read_at IS NULL")
        if read:
            clauses.append("s.read_at IS NOT NULL")
        if since is not None:
            clauses.append("s.sort_at >= ?")
            params.append(_ts(since))
        limit_clause = "" if limit is None else " LIMIT ?"
        if chosen is not None and 1 < len(chosen) <= _MERGED_FEEDS:
            query, params = self._merged_story_query(chosen, clauses, params, summary=summary)
            query += limit_clause
        else:
            if chosen is not None and len(chosen) == 1:
                clauses.insert(0, "s.feed_id = ?")
                params.insert(0, chosen[0])
            elif chosen is not None:
                # Many feeds: walking the date index and skipping the other feeds
                # stops after ``limit`` stories; the unary + keeps SQLite from
                # reading each feed's stories and sorting them all instead.
                clauses.insert(0, f"+s.feed_id IN ({','.join('?' * len(chosen))})")
                params[:0] = chosen
            where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
            where += " ORDER BY s.sort_at DESC, s.id DESC" + limit_clause
            query = self._story_query(where, summary=summary)
        if limit is not None:
            params.append(min(limit, _MAX_ROWS))
        return [self._story(row) for row in self._db.execute(query, params)]

    def _merged_story_query(
        self, feed_ids: Sequence[int], clauses: list[str], params: list[object], *, summary: bool
    ) -> tuple[str, list[object]]:
        """One newest-first query per feed, each read in order from the feed's index
        and merged by SQLite (MERGE (UNION ALL)): a listing of a few feeds reads only
        the stories it shows, however many the feeds hold."""
        arms, arm_params = [], []
        for feed_id in feed_ids:
            where = " AND ".join(["s.feed_id = ?", *clauses])
            arms.append(self._story_query(f"WHERE {where}", summary=summary, sort_key=True))
            arm_params += [feed_id, *params]
        # Columns 16 and 1 of each arm are s.sort_at and s.id.
        return " UNION ALL ".join(arms) + " ORDER BY 16 DESC, 1 DESC", arm_params

    @_translated
    def story(self, story_id: int) -> Story | None:
        if not 0 < story_id <= _MAX_ROWS:
            return None
        query = self._story_query("WHERE s.id = ?", content=True)
        row = self._db.execute(query, (story_id,)).fetchone()
        return self._story(row) if row else None

    @_translated
    def mark_shown(self, story_ids: Sequence[int], now: datetime, *, wait: float = 1.0) -> None:
        """Best effort after a listing: waits ``wait`` seconds at most for the lock."""
        self._set_column("shown_at", story_ids, _ts(now), only_if_null=True, wait=wait)

    @_translated
    def mark_read(self, story_ids: Sequence[int], now: datetime) -> int:
        return self._set_column("read_at", story_ids, _ts(now), only_if_null=True, reading=True)

    @_translated
    def mark_unread(self, story_ids: Sequence[int]) -> int:
        return self._set_column("read_at", story_ids, None)

    @_translated
    def mark_all(self, *, read: bool, now: datetime, feed_id: int | None = None) -> int:
        """Mark every story (of one feed, if given) read or unread; return how many changed."""
        scope = "" if feed_id is None else " AND feed_id = ?"
        params: tuple[object, ...] = () if feed_id is None else (feed_id,)
        with self._write():
            if read:
                cursor = self._db.execute(
                    "UPDATE stories SET read_at = ?, shown_at = COALESCE(shown_at, ?), "  # noqa: S608
                    f"first_read_at = COALESCE(first_read_at, ?) WHERE read_at IS NULL{scope}",
                    (_ts(now), _ts(now), _ts(now), *params),
                )
            else:
                cursor = self._db.execute(
                    f"UPDATE stories SET read_at = NULL WHERE read_at IS NOT NULL{scope}",  # noqa: S608
                    params,
                )
        return cursor.rowcount

    @_translated
    def existing_story_ids(self, story_ids: Sequence[int]) -> set[int]:
        found: set[int] = set()
        for chunk in _chunks([i for i in story_ids if 0 < i <= _MAX_ROWS]):
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT id FROM stories WHERE id IN ({marks})", chunk)  # noqa: S608
            found.update(row[0] for row in rows)
        return found

    def _set_column(
        self,
        column: str,
        story_ids: Sequence[int],
        value: int | None,
        *,
        only_if_null: bool = False,
        reading: bool = False,
        wait: float | None = None,
    ) -> int:
        """Set ``column`` of these stories; ``reading``: they are being read, so they
        count as shown and as read once (``first_read_at``) too."""
        changed = 0
        extra = (
            ", shown_at = COALESCE(shown_at, ?), first_read_at = COALESCE(first_read_at, ?)"
            if reading
            else ""
        )
        condition = f" AND {column} IS NULL" if only_if_null else f" AND {column} IS NOT NULL"
        with self._write(wait):
            for chunk in _chunks(story_ids):
                marks = ",".join("?" * len(chunk))
                params: list[object] = [value, *([value, value] if reading else []), *chunk]
                cursor = self._db.execute(
                    f"UPDATE stories SET {column} = ?{extra} "  # noqa: S608
                    f"WHERE id IN ({marks}){condition}",
                    params,
                )
                changed += cursor.rowcount
        return changed

    # --- notifications ------------------------------------------------------

    def _last_story_id(self) -> int:
        """The highest story id ever handed out (AUTOINCREMENT keeps it in sqlite_sequence)."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'stories'").fetchone()
        return int(row[0]) if row else 0

    @_translated
    def take_notify_baseline(self, *, backlog: bool, dry_run: bool = False) -> int:
        """Feeds never notified before start now: their stories so far are history
        (with ``backlog``, news). Returns how many stories became history."""
        # A feed that has never been fetched has no stories yet: its baseline waits
        # for its first success, or its whole archive would arrive as news then.
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM stories s JOIN feeds f ON f.id = s.feed_id "
            "WHERE f.notify_after IS NULL AND f.last_success_at IS NOT NULL"
        ).fetchone()
        if not dry_run:
            with self._write():
                after = 0 if backlog else self._last_story_id()
                self._db.execute(
                    "UPDATE feeds SET notify_after = ? "
                    "WHERE notify_after IS NULL AND last_success_at IS NOT NULL",
                    (after,),
                )
        return 0 if backlog else int(count)

    @_translated
    def channel(
        self, key: str, label: str, *, backlog: bool, create: bool = True
    ) -> Channel | None:
        """The channel known by ``key``; a new one starts after the newest story
        (with ``backlog``, before the first), so it is not sent what others had."""
        row = self._channel_row(key)
        if row is None and create:
            with self._write():
                after = 0 if backlog else self._last_story_id()
                self._db.execute(
                    "INSERT OR IGNORE INTO channels (key, label, created_at, after_story) "
                    "VALUES (?, ?, ?, ?)",
                    (key, label, _ts(datetime.now(UTC)), after),
                )
            row = self._channel_row(key)
        if row is None:
            return None
        id_, key_, label_, after_story, failures, reported, error = row
        return Channel(
            id=int(id_),
            key=str(key_),
            label=str(label_),
            after_story=int(after_story),
            failures=int(failures),
            failure_reported=bool(reported),
            last_error=str(error),
        )

    def _channel_row(self, key: str) -> tuple[Any, ...] | None:
        row = self._db.execute(
            "SELECT id, key, label, after_story, failures, failure_reported, last_error "
            "FROM channels WHERE key = ?",
            (key,),
        ).fetchone()
        return tuple(row) if row else None

    @_translated
    def pending_stories(self, channel: Channel, *, unseen_feeds: bool = False) -> list[Story]:
        """Stories a channel has not been sent: news of notified feeds (with
        ``unseen_feeds``, of never-notified ones too), newer than the channel, not
        read before they could be sent, of feeds whose notify setting is on; oldest
        first."""
        unseen = 0 if unseen_feeds else _MAX_ROWS  # a never-notified feed has no news
        query = self._story_query(
            "WHERE s.id > COALESCE(f.notify_after, ?) AND s.id > ? AND s.first_read_at IS NULL "
            "AND f.notify = 1 "
            "AND NOT EXISTS (SELECT 1 FROM deliveries d "
            "WHERE d.channel_id = ? AND d.story_id = s.id) ORDER BY s.id",
            summary=True,
        )
        params = (unseen, channel.after_story, channel.id)
        return [self._story(row) for row in self._db.execute(query, params)]

    @_translated
    def record_deliveries(self, channel_id: int, story_ids: Sequence[int], now: datetime) -> None:
        """The channel accepted these stories: never send them to it again."""
        with self._write():
            # From the stories table: one removed meanwhile (with its feed) is skipped.
            self._db.executemany(
                "INSERT OR IGNORE INTO deliveries (channel_id, story_id, delivered_at) "
                "SELECT ?, id, ? FROM stories WHERE id = ?",
                [(channel_id, _ts(now), story_id) for story_id in story_ids],
            )

    @_translated
    def skip_read_stories(self, channel: Channel, now: datetime) -> int:
        """Stories read before they could be sent are settled for the channel, so
        that marking them unread later does not make them news."""
        with self._write():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO deliveries (channel_id, story_id, delivered_at) "
                "SELECT ?, s.id, ? FROM stories s JOIN feeds f ON f.id = s.feed_id "
                "WHERE s.id > f.notify_after AND s.id > ? AND s.first_read_at IS NOT NULL",
                (channel.id, _ts(now), channel.after_story),
            )
        return cursor.rowcount

    @_translated
    def record_channel_run(self, channel_id: int, *, error: str, now: datetime) -> None:
        """A run's outcome for a channel: failures in a row, or none."""
        with self._write():
            if error:
                self._db.execute(
                    "UPDATE channels SET failures = failures + 1, last_error = ? WHERE id = ?",
                    (error, channel_id),
                )
            else:
                self._db.execute(
                    "UPDATE channels SET failures = 0, last_error = '', last_success_at = ? "
                    "WHERE id = ?",
                    (_ts(now), channel_id),
                )

    @_translated
    def set_channel_reported(self, channel_id: int, reported: bool) -> None:
        with self._write():
            self._db.execute(
                "UPDATE channels SET failure_reported = ? WHERE id = ?", (reported, channel_id)
            )

    @_translated
    def set_problem_reported(self, feed_id: int, reported: int) -> None:
        with self._write():
            self._db.execute(
                "UPDATE feeds SET problem_reported = ? WHERE id = ?", (reported, feed_id)
            )

    # --- search -----------------------------------------------------------

    @_translated
    def catch_up_search_index(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Index the stories stored since the last search; return how many.

        In steps of a few thousand ids, each one write transaction that reads
        ``indexed_through`` and MAX(id) itself: no refresh inserts meanwhile, a
        story stored later gets a higher id (AUTOINCREMENT never hands out a lower
        one), and a refresh waits for one step, never for the whole catch-up (100,000
        stories take about 30 s). Stories stored after the first step began are left
        to the next search. ``progress(done, total)``, in ids, is told before each step.
        """
        count = 0
        start = target = -1
        while True:
            with self._write():
                (through,) = self._db.execute(
                    "SELECT indexed_through FROM search_index WHERE id = 1"
                ).fetchone()
                if target < 0:
                    (target,) = self._db.execute(
                        "SELECT COALESCE(MAX(id), 0) FROM stories"
                    ).fetchone()
                    start = through
                if through >= target:
                    break
                if progress is not None:
                    progress(through - start, target - start)
                step = min(through + _INDEX_STEP, target)
                cursor = self._db.execute(
                    "INSERT INTO stories_fts (rowid, title, author, summary, content) "
                    "SELECT id, title, author, summary, content FROM stories "
                    "WHERE id > ? AND id <= ? ORDER BY id",
                    (through, step),
                )
                count += max(cursor.rowcount, 0)
                self._db.execute(
                    "UPDATE search_index SET indexed_through = ? WHERE id = 1", (step,)
                )
        if progress is not None and target > start:
            progress(target - start, target - start)
        return count

    @_translated
    def search(
        self, match: str, *, feed_ids: Sequence[int] = (), limit: int | None = None
    ) -> list[MarkedStory]:
        """Indexed stories that ``match`` (an FTS5 query) finds, most relevant first
        (ties: newest first), their texts marked with HIT_START/HIT_END."""
        from storyfeed.reports import MarkedStory

        params: list[object] = [match]
        scope = ""
        if feed_ids:
            scope = f" AND s.feed_id IN ({','.join('?' * len(feed_ids))})"
            params += feed_ids
        limited = ""
        if limit is not None:
            limited = " LIMIT ?"
            params.append(min(limit, _MAX_ROWS))
        try:
            ranked = self._db.execute(
                f"SELECT s.id, bm25(stories_fts, {_SEARCH_WEIGHTS}) AS score "  # noqa: S608
                "FROM stories_fts JOIN stories s ON s.id = stories_fts.rowid "
                f"WHERE stories_fts MATCH ?{scope} "
                f"ORDER BY score, s.sort_at DESC, s.id DESC{limited}",
                params,
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "fts5" not in str(exc):
                raise
            raise SearchQueryError(f"cannot search for that: {exc}") from None
        ids = [int(story_id) for story_id, _ in ranked]
        stories: dict[int, Story] = {}
        marked: dict[int, tuple[str, str, str]] = {}
        marks = (HIT_START, HIT_END) * 3
        for chunk in _chunks(ids):
            places = ",".join("?" * len(chunk))
            query = self._story_query(f"WHERE s.id IN ({places})", summary=True)
            stories.update((row[0], self._story(row)) for row in self._db.execute(query, chunk))
            rows = self._db.execute(
                "SELECT rowid, highlight(stories_fts, 0, ?, ?), "  # noqa: S608
                "highlight(stories_fts, 2, ?, ?), highlight(stories_fts, 3, ?, ?) "
                f"FROM stories_fts WHERE stories_fts MATCH ? AND rowid IN ({places})",
                (*marks, match, *chunk),
            )
            marked.update((row[0], (str(row[1]), str(row[2]), str(row[3]))) for row in rows)
        return [
            MarkedStory(stories[story_id], float(score), *marked[story_id])
            for story_id, score in ranked
            if story_id in stories and story_id in marked
        ]

    # --- doctor -----------------------------------------------------------

    @_translated
    def diagnoses(self) -> dict[int, str]:
        """What each feed's last fetch saw (JSON text; '' before the first)."""
        rows = self._db.execute("SELECT id, diagnosis FROM feeds")
        return {int(feed_id): str(diagnosis) for feed_id, diagnosis in rows}

    @_translated
    def health(self, *, quick_above: int = 512 * 1024 * 1024) -> DatabaseHealth:
        """The database's own account of itself: schema, size, counts, the search
        index's lag and an integrity check (``quick_check`` above ``quick_above``
        bytes, where the full one would take seconds)."""
        from storyfeed.reports import DatabaseHealth

        def number(query: str) -> int:
            return int(self._db.execute(query).fetchone()[0] or 0)

        page_size = number("PRAGMA page_size")
        page_bytes = number("PRAGMA page_count") * page_size
        check = "integrity_check" if page_bytes <= quick_above else "quick_check"
        self._db.execute("BEGIN")  # one snapshot for every figure
        try:
            try:
                problems = [str(row[0]) for row in self._db.execute(f"PRAGMA {check}(20)")]
            except sqlite3.DatabaseError as exc:  # damage the check itself trips over
                problems = [str(exc)]
            newest = number("SELECT COALESCE(MAX(id), 0) FROM stories")
            through = number("SELECT indexed_through FROM search_index WHERE id = 1")
            unindexed = self._db.execute(
                "SELECT COUNT(*) FROM stories WHERE id > ?", (through,)
            ).fetchone()[0]
            health = DatabaseHealth(
                schema_version=self._version(),
                sqlite_version=sqlite3.sqlite_version,
                check=check,
                problems=() if problems == ["ok"] else tuple(problems),
                feeds=number("SELECT COUNT(*) FROM feeds"),
                stories=number("SELECT COUNT(*) FROM stories"),
                newest_story=newest,
                indexed_through=through,
                unindexed=int(unindexed),
                page_bytes=page_bytes,
                free_bytes=number("PRAGMA freelist_count") * page_size,
            )
        finally:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        return health

    # --- retention --------------------------------------------------------

    def _without_tombstoned(
        self, feed_id: int, stories: Sequence[ParsedStory], known: set[str]
    ) -> Sequence[ParsedStory]:
        """The stories that were not pruned: a pruned story the feed still lists is
        known and gone, neither stored again nor updated. It is known by its key or,
        when its key is not a stored story's, by its link and title: some feeds make
        up a new key on every fetch (as _rekey_moved says). Looked up by the
        document's keys and fingerprints in one query, so a feed's many old
        tombstones cost nothing."""
        if not self._db.execute(
            "SELECT 1 FROM tombstones WHERE feed_id = ? LIMIT 1", (feed_id,)
        ).fetchone():
            return stories  # nothing of this feed was ever pruned
        prints = {
            story.key: _fingerprint(story.link, story.title)
            for story in stories
            if story.key not in known
        }
        gone_keys: set[str] = set()
        gone_prints: set[str] = set()
        for chunk in _chunks(stories):
            keys = [story.key for story in chunk]
            fingerprints = sorted({prints[key] for key in keys if prints.get(key)})
            # Two searches in one query: with OR, SQLite reads all the feed's tombstones.
            rows = self._db.execute(
                "SELECT key, fingerprint FROM tombstones WHERE feed_id = ? "  # noqa: S608
                f"AND key IN ({','.join('?' * len(keys))}) UNION ALL "
                "SELECT key, fingerprint FROM tombstones WHERE feed_id = ? "
                f"AND fingerprint IN ({','.join('?' * len(fingerprints))})",
                (feed_id, *keys, feed_id, *fingerprints),
            )
            for key, fingerprint in rows:
                gone_keys.add(key)
                gone_prints.add(fingerprint)
        gone_prints.discard("")
        if not gone_keys:
            return stories
        return [
            story
            for story in stories
            if story.key not in gone_keys and prints.get(story.key, "") not in gone_prints
        ]

    @staticmethod
    def _prune_filter(keep_unread: bool) -> str:
        return "sort_at < ?" + (" AND read_at IS NOT NULL" if keep_unread else "")

    @_translated
    def prune_counts(self, cutoff: datetime, *, keep_unread: bool) -> list[tuple[int, int, int]]:
        """(feed id, stories dated before ``cutoff`` that would go, unread ones among
        the old that stay) for each feed that has old stories."""
        rows = self._db.execute(
            "SELECT feed_id, SUM(read_at IS NOT NULL OR ?), SUM(read_at IS NULL AND ?) "
            "FROM stories WHERE sort_at < ? GROUP BY feed_id ORDER BY feed_id",
            (int(not keep_unread), int(keep_unread), _ts(cutoff)),
        )
        return [(int(feed), int(gone), int(kept)) for feed, gone, kept in rows]

    @_translated
    def prune(
        self, cutoff: datetime, *, keep_unread: bool, now: datetime, batch: int = 5000
    ) -> dict[int, int]:
        """Delete the stories dated before ``cutoff`` (with ``keep_unread``, only read
        ones), leaving a tombstone for each; return how many went, by feed.

        One transaction per ``batch`` stories, each holding both the tombstones and
        the deletions, so a refresh or a listing waits for one batch at most, never
        for the whole prune. Deliveries go with their stories (ON DELETE CASCADE),
        and the search index by its trigger.
        """
        condition = self._prune_filter(keep_unread)
        pruned: dict[int, int] = {}
        after: tuple[int, int] = (-_MAX_ROWS, 0)  # (sort_at, id): where the last batch ended
        while True:
            with self._write():
                # The batch's last story; the stories kept (unread ones) are passed
                # over once, not once per batch.
                last = self._db.execute(
                    f"SELECT sort_at, id FROM stories WHERE {condition} "  # noqa: S608
                    "AND (sort_at, id) > (?, ?) ORDER BY sort_at, id LIMIT 1 OFFSET ?",
                    (_ts(cutoff), *after, batch - 1),
                ).fetchone()
                through = (_MAX_ROWS, _MAX_ROWS) if last is None else (int(last[0]), int(last[1]))
                window = f"{condition} AND (sort_at, id) > (?, ?) AND (sort_at, id) <= (?, ?)"
                params = (_ts(cutoff), *after, *through)
                gone = self._db.execute(
                    f"SELECT feed_id, key, link, title FROM stories WHERE {window}",  # noqa: S608
                    params,
                ).fetchall()
                self._db.executemany(
                    "INSERT OR REPLACE INTO tombstones (feed_id, key, pruned_at, fingerprint) "
                    "VALUES (?, ?, ?, ?)",
                    [
                        (feed_id, key, _ts(now), _fingerprint(link, title))
                        for feed_id, key, link, title in gone
                    ],
                )
                for feed_id, *_ in gone:
                    pruned[int(feed_id)] = pruned.get(int(feed_id), 0) + 1
                self._db.execute(f"DELETE FROM stories WHERE {window}", params)  # noqa: S608
            if last is None:
                return pruned
            after = through

    @_translated
    def space(self) -> tuple[int, int]:
        """(bytes the database's pages take, bytes of them that are free)."""
        (page_size,) = self._db.execute("PRAGMA page_size").fetchone()
        (pages,) = self._db.execute("PRAGMA page_count").fetchone()
        (free,) = self._db.execute("PRAGMA freelist_count").fetchone()
        return int(pages) * int(page_size), int(free) * int(page_size)

    @_translated
    def vacuum(self) -> None:
        """Rebuild the file without its free pages, then fold the write-ahead log back
        into it so that the file shrinks now. Waits for other writers like any write;
        listings in other processes go on meanwhile from the old pages."""
        self._execute_waiting("VACUUM", self.busy_timeout)
        deadline = time.monotonic() + self.busy_timeout
        # The log now holds the whole rewritten file; a listing reading meanwhile
        # keeps it from being folded back, so try again for a while.
        while self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)

    @_translated
    def story_count(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM stories").fetchone()
        return int(count)

    @_translated
    def tombstone_count(self, feed_id: int | None = None) -> int:
        if feed_id is None:
            (count,) = self._db.execute("SELECT COUNT(*) FROM tombstones").fetchone()
        else:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM tombstones WHERE feed_id = ?", (feed_id,)
            ).fetchone()
        return int(count)


_T = TypeVar("_T")


def _fingerprint(link: str, title: str) -> str:
    """What identifies a story without its key: its link and title, as _rekey_moved
    matches a story whose key changed; '' for a story without a link (never matched:
    such a story is known by its key alone)."""
    if not link:
        return ""
    import hashlib  # not for a listing, which never prunes nor stores stories

    return hashlib.blake2b(f"{link}\0{title}".encode(), digest_size=8).hexdigest()


# A fetch's diagnosis (parameter {0}), keeping the last parse's findings when this
# fetch parsed nothing (a 304, the same body, an error), so `doctor` still knows
# the stories without guid or date. In SQL: no JSON decoded in Python per feed.
_DIAGNOSIS = (
    "CASE WHEN json_type(?{0}, '$.parse') IS NULL AND json_valid(diagnosis) "
    "AND json_type(diagnosis, '$.parse') = 'object' "
    "THEN json_set(?{0}, '$.parse', json(json_extract(diagnosis, '$.parse'))) ELSE ?{0} END"
)


def _chunks(values: Sequence[_T], size: int = 500) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
