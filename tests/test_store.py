"""Store: schema and pragmas, refusal of foreign files, story state, queries, concurrency."""

from __future__ import annotations

import hashlib
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from conftest import NOW
from storyfeed.errors import (
    DatabaseBusyError,
    DatabaseCorruptError,
    DatabaseTooNewError,
    DuplicateFeedError,
    StoreError,
)
from storyfeed.models import DateFlag, Feed, FeedStatus
from storyfeed.store import SCHEMA_VERSION, Store
from storyfeed.updates import FeedUpdate, ParsedStory

SEED = "https://wgzesg.github.io/llm_stories/index.xml"
HOUR = timedelta(hours=1)


@pytest.fixture
def db_path(home: Path) -> Path:
    return home / "data" / "storyfeed.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    opened = Store.open(db_path)
    yield opened
    opened.close()


@pytest.fixture
def feed(store: Store) -> Feed:
    return store.add_feed("https://example.org/feed.xml", now=NOW)[0]


def parsed(
    key: str,
    title: str | None = None,
    *,
    published: datetime | None = NOW - HOUR,
    summary: str = "",
    content: str = "",
) -> ParsedStory:
    return ParsedStory(
        key=key,
        title=title if title is not None else f"Story {key}",
        link=f"https://example.org/{key}",
        summary=summary,
        content=content,
        published=published,
        date_flag=DateFlag.OK if published else DateFlag.MISSING,
    )


def update(
    feed_id: int, *stories: ParsedStory, fetched_at: datetime = NOW, url: str | None = None
) -> FeedUpdate:
    return FeedUpdate(
        feed_id=feed_id,
        fetched_at=fetched_at,
        next_fetch_at=fetched_at + HOUR,
        success=True,
        url=url,
        stories=stories,
    )


def ids_by_title(store: Store) -> dict[str, int]:
    return {s.title: s.id for s in store.stories()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def raw_query(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(sql, params).fetchall()


def open_and_query(path: Path) -> None:
    """What the CLI does: open, then list feeds and stories."""
    opened = Store.open(path)
    try:
        opened.feeds(with_counts=True)
        opened.stories()
    finally:
        opened.close()


# --- creating and opening ------------------------------------------------------------------


def test_new_database_has_schema_version_wal_and_foreign_keys(db_path: Path) -> None:
    opened = Store.open(db_path, busy_timeout=0.2)
    try:
        assert opened._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert opened.busy_timeout == 0.2  # waited out in steps by the store itself
        assert opened._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        opened.close()
    assert raw_query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert raw_query(db_path, "PRAGMA journal_mode") == [("wal",)]


def test_open_creates_missing_data_directory(home: Path) -> None:
    path = home / "deep" / "er" / "storyfeed.sqlite3"
    Store.open(path).close()
    assert path.is_file()


def test_seed_urls_are_subscribed_on_creation(db_path: Path) -> None:
    opened = Store.open(db_path, seed_urls=[SEED, "https://example.org/two.xml"])
    try:
        assert [f.url for f in opened.feeds()] == [SEED, "https://example.org/two.xml"]
    finally:
        opened.close()


def test_seed_urls_are_ignored_when_reopening(db_path: Path) -> None:
    Store.open(db_path, seed_urls=[SEED]).close()
    opened = Store.open(db_path, seed_urls=["https://example.org/other.xml"])
    try:
        assert [f.url for f in opened.feeds()] == [SEED]
    finally:
        opened.close()


def test_removed_seed_feed_does_not_come_back(db_path: Path) -> None:
    opened = Store.open(db_path, seed_urls=[SEED])
    try:
        (seed,) = opened.feeds()
        opened.remove_feed(seed.id)
    finally:
        opened.close()
    opened = Store.open(db_path, seed_urls=[SEED])
    try:
        assert opened.feeds() == []
    finally:
        opened.close()


@pytest.mark.parametrize("origin", ["storyfeed", "plain"])
def test_newer_database_is_refused_and_not_touched(db_path: Path, origin: str) -> None:
    if origin == "storyfeed":
        Store.open(db_path, seed_urls=[SEED]).close()
    else:
        db_path.parent.mkdir(parents=True)
    with closing(sqlite3.connect(db_path)) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        connection.execute("CREATE TABLE future (x)")
        connection.commit()
    before = sha256(db_path)

    with pytest.raises(DatabaseTooNewError, match="newer storyfeed") as raised:
        open_and_query(db_path)

    assert str(db_path) in str(raised.value)
    assert sha256(db_path) == before
    assert raw_query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]


def test_random_bytes_are_refused_as_corrupt_and_not_touched(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(random.Random(7).randbytes(64 * 1024))
    before = sha256(db_path)

    with pytest.raises(DatabaseCorruptError) as raised:
        open_and_query(db_path)

    assert str(db_path) in str(raised.value)
    assert sha256(db_path) == before


def test_truncated_database_is_refused_as_corrupt_and_not_touched(db_path: Path) -> None:
    opened = Store.open(db_path)
    try:
        feed = opened.add_feed("https://example.org/feed.xml", now=NOW)[0]
        stories = [parsed(f"k{n}", content="x" * 500, published=NOW - n * HOUR) for n in range(200)]
        opened.apply_update(update(feed.id, *stories))
    finally:
        opened.close()
    data = db_path.read_bytes()
    db_path.write_bytes(data[: len(data) // 2])
    before = sha256(db_path)

    with pytest.raises(DatabaseCorruptError, match="corrupt"):
        open_and_query(db_path)

    assert sha256(db_path) == before


def test_data_directory_that_cannot_be_created_is_a_store_error(home: Path) -> None:
    blocker = home / "blocker"
    blocker.write_text("a regular file\n")
    path = blocker / "data" / "storyfeed.sqlite3"

    with pytest.raises(StoreError, match="cannot create the data directory") as raised:
        Store.open(path)

    assert str(blocker / "data") in str(raised.value)
    assert blocker.read_text() == "a regular file\n"


# --- feeds -----------------------------------------------------------------------------


def test_add_feed_returns_the_stored_feed(store: Store) -> None:
    feed = store.add_feed("https://example.org/feed.xml", user_title="Mine", now=NOW)[0]
    assert feed.url == "https://example.org/feed.xml"
    assert feed.title == "Mine"
    assert feed.added_at == NOW
    assert store.feed(feed.id) == feed


def test_add_feed_twice_is_a_duplicate(store: Store, feed: Feed) -> None:
    with pytest.raises(DuplicateFeedError):
        store.add_feed(feed.url, now=NOW)
    assert [f.url for f in store.feeds()] == [feed.url]


def test_remove_feed_deletes_its_stories_and_counts_them(store: Store, db_path: Path) -> None:
    gone = store.add_feed("https://example.org/gone.xml", now=NOW)[0]
    kept = store.add_feed("https://example.org/kept.xml", now=NOW)[0]
    store.apply_update(update(gone.id, parsed("a"), parsed("b"), parsed("c")))
    store.apply_update(update(kept.id, parsed("a")))
    gone_ids = [s.id for s in store.stories(feed_id=gone.id)]

    assert store.remove_feed(gone.id) == 3

    assert store.feed(gone.id) is None
    assert store.existing_story_ids(gone_ids) == set()
    assert raw_query(db_path, "SELECT feed_id, COUNT(*) FROM stories GROUP BY feed_id") == [
        (kept.id, 1)
    ]
    assert store.remove_feed(kept.id) == 1


def test_permanent_redirect_to_a_new_url_is_remembered(store: Store, feed: Feed) -> None:
    store.apply_update(update(feed.id, url="https://example.org/moved.xml"))
    moved = store.feed(feed.id)
    assert moved is not None
    assert moved.url == "https://example.org/moved.xml"


def test_permanent_redirect_to_another_feeds_url_leaves_url_alone(store: Store, feed: Feed) -> None:
    other = store.add_feed("https://example.org/other.xml", now=NOW)[0]

    assert store.apply_update(update(feed.id, parsed("a"), url=other.url)) == (1, 0)

    after = store.feed(feed.id)
    assert after is not None
    assert after.url == feed.url
    assert after.last_success_at == NOW
    assert [f.url for f in store.feeds()] == [feed.url, other.url]


def test_apply_update_records_fetch_state(store: Store, feed: Feed) -> None:
    store.apply_update(
        FeedUpdate(
            feed_id=feed.id,
            fetched_at=NOW,
            next_fetch_at=NOW + HOUR,
            success=True,
            feed_title="Example",
            etag='"v1"',
        )
    )
    failed_at = NOW + 2 * HOUR
    store.apply_update(
        FeedUpdate(
            feed_id=feed.id,
            fetched_at=failed_at,
            next_fetch_at=failed_at + HOUR,
            success=False,
            error="HTTP 500",
            error_count=1,
        )
    )
    after = store.feed(feed.id)
    assert after is not None
    assert (after.feed_title, after.etag) == ("Example", '"v1"')  # None keeps what is stored
    assert after.last_success_at == NOW
    assert (after.last_error, after.last_error_at, after.error_count) == ("HTTP 500", failed_at, 1)
    assert after.next_fetch_at == failed_at + HOUR


def test_a_diagnosis_without_a_parse_keeps_the_last_parse(
    store: Store, feed: Feed, db_path: Path
) -> None:
    """A 304 (no parse) keeps the findings of the last parse; a parse replaces them;
    an unreadable stored record is replaced whole."""
    import json

    def diagnose(record: dict[str, object]) -> dict[str, object]:
        store.apply_update(replace(update(feed.id), diagnosis=json.dumps(record)))
        loaded: dict[str, object] = json.loads(store.diagnoses()[feed.id])
        return loaded

    assert diagnose({"status": 304}) == {"status": 304}  # nothing to keep yet
    first = {"status": 200, "parse": {"stories": 8, "format": "rss20"}}
    assert diagnose(first) == first
    assert diagnose({"status": 304, "error": ""}) == {**first, "status": 304, "error": ""}
    second = {"status": 200, "parse": {"stories": 3, "format": "atom10"}}
    assert diagnose(second) == second
    assert diagnose({"status": 500}) == {"status": 500, "parse": second["parse"]}

    for unreadable in ("not json", '{"parse": 3}', '["parse"]', ""):
        with closing(sqlite3.connect(db_path)) as other, other:  # damaged by hand
            other.execute("UPDATE feeds SET diagnosis = ? WHERE id = ?", (unreadable, feed.id))
        assert diagnose({"status": 304}) == {"status": 304}


def test_feeds_with_counts(store: Store, feed: Feed) -> None:
    empty = store.add_feed("https://example.org/empty.xml", now=NOW)[0]
    store.apply_update(update(feed.id, parsed("a"), parsed("b"), parsed("c"), parsed("d")))
    ids = ids_by_title(store)
    store.mark_read([ids["Story a"]], NOW)
    store.mark_shown([ids["Story b"]], NOW)

    counted = {f.id: f for f in store.feeds(with_counts=True)}

    assert (counted[feed.id].story_count, counted[feed.id].unread_count) == (4, 3)
    assert counted[feed.id].new_count == 2
    assert (counted[empty.id].story_count, counted[empty.id].unread_count) == (0, 0)
    assert counted[empty.id].new_count == 0
    plain = store.feeds()[0]
    assert (plain.story_count, plain.unread_count, plain.new_count) == (0, 0, 0)


# --- applying updates -----------------------------------------------------------------------


def test_apply_update_counts_new_and_changed(store: Store, feed: Feed) -> None:
    batch = [parsed("a"), parsed("b"), parsed("c")]

    assert store.apply_update(update(feed.id, *batch)) == (3, 0)
    assert store.apply_update(update(feed.id, *batch)) == (0, 0)

    batch[1] = parsed("b", "Story b, corrected")
    assert store.apply_update(update(feed.id, *batch)) == (0, 1)
    assert sorted(ids_by_title(store)) == ["Story a", "Story b, corrected", "Story c"]

    assert store.apply_update(update(feed.id, *batch, parsed("d"))) == (1, 0)


def test_apply_update_counts_changed_summary_and_content(store: Store, feed: Feed) -> None:
    store.apply_update(update(feed.id, parsed("a"), parsed("b")))
    edited = (parsed("a", summary="new summary"), parsed("b", content="new content"))

    assert store.apply_update(update(feed.id, *edited)) == (0, 2)

    stored = {s.title: s for s in store.stories(summary=True)}
    assert stored["Story a"].summary == "new summary"
    story = store.story(stored["Story b"].id)
    assert story is not None
    assert story.content == "new content"


def test_story_missing_from_a_later_batch_stays_with_its_state(store: Store, feed: Feed) -> None:
    store.apply_update(update(feed.id, parsed("a"), parsed("b")))
    ids = ids_by_title(store)
    store.mark_read([ids["Story b"]], NOW)

    assert store.apply_update(update(feed.id, parsed("a"))) == (0, 0)

    kept = store.story(ids["Story b"])
    assert kept is not None
    assert (kept.read, kept.new) == (True, False)
    assert len(store.stories()) == 2


def test_updating_stories_never_resets_read_or_new(store: Store, feed: Feed) -> None:
    store.apply_update(update(feed.id, parsed("a"), parsed("b"), parsed("c")))
    ids = ids_by_title(store)
    store.mark_read([ids["Story a"]], NOW)
    store.mark_shown([ids["Story b"]], NOW)

    edited = [parsed(key, f"Story {key} v2", content="changed") for key in "abc"]
    assert store.apply_update(update(feed.id, *edited, fetched_at=NOW + HOUR)) == (0, 3)

    states = {s.title: (s.new, s.read) for s in store.stories()}
    assert states == {
        "Story a v2": (False, True),
        "Story b v2": (False, False),
        "Story c v2": (True, False),
    }


def test_update_without_a_date_keeps_the_stored_date(store: Store, feed: Feed) -> None:
    store.apply_update(update(feed.id, parsed("a", published=NOW - 5 * HOUR)))
    store.apply_update(update(feed.id, parsed("a", "edited", published=None)))
    (story,) = store.stories()
    assert story.published == NOW - 5 * HOUR
    assert story.date_flag is DateFlag.OK


# --- listing --------------------------------------------------------------------------------


def test_stories_newest_first_first_seen_standing_in_for_missing_date(
    store: Store, feed: Feed
) -> None:
    store.apply_update(
        update(
            feed.id,
            parsed("old", published=NOW - 30 * HOUR),
            parsed("undated", published=None),
            parsed("recent", published=NOW - 5 * HOUR),
            fetched_at=NOW - 10 * HOUR,
        )
    )
    listed = store.stories()
    assert [s.title for s in listed] == ["Story recent", "Story undated", "Story old"]
    undated = listed[1]
    assert undated.published is None
    assert undated.first_seen == undated.date == NOW - 10 * HOUR
    assert undated.date_flag is DateFlag.MISSING


def test_stories_with_the_same_date_are_ordered_by_id_descending(store: Store, feed: Feed) -> None:
    other = store.add_feed("https://example.org/other.xml", now=NOW)[0]
    same = NOW - HOUR
    store.apply_update(update(feed.id, parsed("a", published=same), parsed("b", published=same)))
    store.apply_update(update(other.id, parsed("c", published=same)))
    store.apply_update(update(feed.id, parsed("d", published=same)))

    listed = store.stories()

    assert [s.id for s in listed] == sorted((s.id for s in listed), reverse=True)
    assert [s.title for s in listed] == ["Story d", "Story c", "Story a", "Story b"]


def test_stories_filters(store: Store, feed: Feed) -> None:
    other = store.add_feed("https://example.org/other.xml", now=NOW)[0]
    store.apply_update(update(feed.id, *(parsed(k, published=NOW - n * HOUR) for n, k in
                                         enumerate("abcd"))))  # fmt: skip
    store.apply_update(update(other.id, parsed("x", published=NOW - 90 * HOUR)))
    ids = ids_by_title(store)
    store.mark_read([ids["Story b"], ids["Story x"]], NOW)

    def titles(**filters: object) -> list[str]:
        return [s.title.removeprefix("Story ") for s in store.stories(**filters)]  # type: ignore[arg-type]

    assert titles() == ["a", "b", "c", "d", "x"]
    assert titles(unread=True) == ["a", "c", "d"]
    assert titles(feed_id=other.id) == ["x"]
    assert titles(feed_id=other.id, unread=True) == []
    assert titles(limit=2) == ["a", "b"]
    assert titles(unread=True, limit=2) == ["a", "c"]
    assert titles(feed_id=feed.id, unread=True, limit=1) == ["a"]
    assert {s.feed_title for s in store.stories(feed_id=feed.id)} == {feed.url}


def test_summary_is_loaded_only_on_request(store: Store, feed: Feed) -> None:
    """With summary=True the start of the content comes too, for feeds without summaries."""
    long_body = "the body " + "x" * 10_000
    store.apply_update(update(feed.id, parsed("a", summary="the gist", content=long_body)))

    (without,) = store.stories()
    (with_summary,) = store.stories(summary=True)

    assert (without.summary, without.content) == ("", "")
    assert with_summary.summary == "the gist"
    assert with_summary.content.startswith("the body ")
    assert 1000 <= len(with_summary.content) < len(long_body)  # a prefix, not all of it


def test_story_includes_summary_and_content(store: Store, feed: Feed) -> None:
    store.apply_update(update(feed.id, parsed("a", summary="the gist", content="the body")))
    (listed,) = store.stories()

    story = store.story(listed.id)

    assert story is not None
    assert (story.title, story.summary, story.content) == ("Story a", "the gist", "the body")
    assert story.link == "https://example.org/a"
    assert story.feed_id == feed.id
    assert store.story(listed.id + 1000) is None


# --- state ------------------------------------------------------------------------------


def test_mark_shown_only_affects_new_stories(store: Store, feed: Feed, db_path: Path) -> None:
    store.apply_update(update(feed.id, parsed("a"), parsed("b")))
    ids = ids_by_title(store)
    a, b = ids["Story a"], ids["Story b"]

    store.mark_shown([a], NOW)
    store.mark_shown([a, b], NOW + HOUR)

    shown = dict(raw_query(db_path, "SELECT id, shown_at FROM stories"))
    assert shown == {a: int(NOW.timestamp()), b: int((NOW + HOUR).timestamp())}
    states = {s.id: (s.new, s.read) for s in store.stories()}
    assert states == {a: (False, False), b: (False, False)}


def test_mark_read_marks_shown_too(store: Store, feed: Feed) -> None:
    store.apply_update(update(feed.id, parsed("a"), parsed("b")))
    ids = ids_by_title(store)

    assert store.mark_read([ids["Story a"]], NOW) == 1
    assert store.mark_read([ids["Story a"]], NOW) == 0

    states = {s.title: (s.new, s.read) for s in store.stories()}
    assert states == {"Story a": (False, True), "Story b": (True, False)}


def test_mark_unread(store: Store, feed: Feed) -> None:
    store.apply_update(update(feed.id, parsed("a"), parsed("b")))
    ids = ids_by_title(store)
    store.mark_read([ids["Story a"]], NOW)

    assert store.mark_unread([ids["Story a"], ids["Story b"]]) == 1
    assert store.mark_unread([ids["Story a"]]) == 0

    states = {s.title: (s.new, s.read) for s in store.stories()}
    assert states == {"Story a": (False, False), "Story b": (True, False)}


def test_marking_many_stories_at_once(store: Store, feed: Feed) -> None:
    store.apply_update(update(feed.id, *(parsed(f"k{n}") for n in range(1200))))
    ids = [s.id for s in store.stories()]

    assert store.mark_read([*ids, max(ids) + 1], NOW) == 1200
    assert store.stories(unread=True) == []
    assert store.mark_unread(ids[:700]) == 700
    assert store.existing_story_ids([*ids, -1, max(ids) + 1]) == set(ids)


def test_mark_all_returns_counts(store: Store, feed: Feed) -> None:
    other = store.add_feed("https://example.org/other.xml", now=NOW)[0]
    store.apply_update(update(feed.id, parsed("a"), parsed("b"), parsed("c")))
    store.apply_update(update(other.id, parsed("x"), parsed("y")))
    store.mark_read([ids_by_title(store)["Story a"]], NOW)

    assert store.mark_all(read=True, now=NOW, feed_id=feed.id) == 2
    assert [s.title for s in store.stories(unread=True)] == ["Story x", "Story y"]
    assert store.mark_all(read=True, now=NOW) == 2
    assert store.mark_all(read=True, now=NOW) == 0
    assert all(not s.new for s in store.stories())
    assert store.mark_all(read=False, now=NOW, feed_id=other.id) == 2
    assert store.mark_all(read=False, now=NOW) == 3
    assert len(store.stories(unread=True)) == 5


def test_existing_story_ids(store: Store, feed: Feed) -> None:
    store.apply_update(update(feed.id, parsed("a"), parsed("b")))
    ids = sorted(ids_by_title(store).values())

    assert store.existing_story_ids([*ids, 9999]) == set(ids)
    assert store.existing_story_ids([9999]) == set()
    assert store.existing_story_ids([]) == set()


# --- query plans ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"limit": 20},
        {"feed_id": 1},
        {"feed_id": 1, "limit": 20},
        {"unread": True},
        {"unread": True, "limit": 20},
        {"read": True, "limit": 20},
        {"since": NOW - 5 * HOUR, "limit": 20},
        {"since": NOW - 5 * HOUR, "unread": True},
        {"feed_ids": [1, 2], "limit": 20},
        {"feed_ids": [1, 2], "since": NOW - 5 * HOUR, "read": True, "limit": 20},
        {"feed_ids": list(range(1, 80)), "limit": 20},
        {"feed_id": 1, "since": NOW - 5 * HOUR, "unread": True, "limit": 20},
    ],
    ids=[
        "all", "all-limit", "feed", "feed-limit", "unread", "unread-limit", "read-limit",
        "since-limit", "since-unread", "feeds-limit", "feeds-since-read-limit",
        "many-feeds-limit", "feed-since-unread-limit",
    ],
)  # fmt: skip
def test_listing_queries_use_an_index_without_sorting(
    store: Store, filters: dict[str, object]
) -> None:
    for n in range(2):
        feed = store.add_feed(f"https://example.org/{n}.xml", now=NOW)[0]
        store.apply_update(update(feed.id, *(parsed(f"k{i}", published=NOW - i * HOUR)
                                             for i in range(100))))  # fmt: skip
    store.mark_all(read=True, now=NOW, feed_id=2)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    try:
        store.stories(**filters)  # type: ignore[arg-type]
    finally:
        store._db.set_trace_callback(None)
    (query,) = (s for s in statements if s.lstrip().upper().startswith("SELECT"))

    plan = [row[3] for row in store._db.execute("EXPLAIN QUERY PLAN " + query)]

    assert not any("TEMP B-TREE" in step for step in plan), plan
    # Several feeds: one index walk per feed, merged in order (MERGE (UNION ALL)).
    stories_steps = [step for step in plan if step.split()[:2] in (["SCAN", "s"], ["SEARCH", "s"])]
    assert len(stories_steps) == (2 if len(filters.get("feed_ids", ())) == 2 else 1), plan
    for step in stories_steps:
        assert "USING INDEX" in step or "USING COVERING INDEX" in step, plan


# --- concurrency ------------------------------------------------------------------------------

WRITER = """
import sys, time
from datetime import UTC, datetime
from pathlib import Path
from storyfeed.updates import FeedUpdate, ParsedStory
from storyfeed.store import Store

path, feed_id, ready, go = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
store = Store.open(path)
try:
    ready.touch()
    deadline = time.monotonic() + 20
    while not go.exists():
        assert time.monotonic() < deadline, "never told to start"
        time.sleep(0.002)
    now = datetime.now(UTC)
    for n in range(200):
        story = ParsedStory(key=f"k{n}", title=f"t{n}", link="https://example.org/")
        result = store.apply_update(
            FeedUpdate(feed_id=feed_id, fetched_at=now, next_fetch_at=now, success=True,
                       stories=(story,))
        )
        assert result == (1, 0), result
        (fresh,) = store.stories(feed_id=feed_id, unread=True)
        assert store.mark_read([fresh.id], now) == 1
finally:
    store.close()
"""


def test_two_processes_writing_at_once_lose_nothing(db_path: Path, tmp_path: Path) -> None:
    opened = Store.open(db_path)
    try:
        feeds = [opened.add_feed(f"https://example.org/{n}.xml", now=NOW)[0] for n in range(2)]
    finally:
        opened.close()
    go = tmp_path / "go"
    ready = [tmp_path / f"ready{n}" for n in range(2)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db_path), str(f.id), str(r), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f, r in zip(feeds, ready, strict=True)
    ]
    try:
        deadline = time.monotonic() + 20
        while not all(r.exists() for r in ready) and time.monotonic() < deadline:
            time.sleep(0.005)
        go.touch()
        outcomes = [w.communicate(timeout=60) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.communicate()

    assert [(w.returncode, err) for w, (_, err) in zip(workers, outcomes, strict=True)] == [
        (0, ""),
        (0, ""),
    ]
    opened = Store.open(db_path)
    try:
        counted = [(f.story_count, f.unread_count) for f in opened.feeds(with_counts=True)]
    finally:
        opened.close()
    assert counted == [(200, 0), (200, 0)]


def test_open_read_transaction_does_not_block_a_writer(store: Store, feed: Feed) -> None:
    store.apply_update(update(feed.id, parsed("a")))
    (story,) = store.stories()
    writer = Store.open(store.path, busy_timeout=0.2)
    try:
        with closing(sqlite3.connect(store.path, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            assert reader.execute("SELECT COUNT(*) FROM stories").fetchone() == (1,)

            assert writer.mark_read([story.id], NOW) == 1
            assert writer.apply_update(update(feed.id, parsed("b"))) == (1, 0)

            assert reader.execute("SELECT COUNT(*) FROM stories").fetchone() == (1,)
            reader.execute("COMMIT")
            assert reader.execute("SELECT COUNT(*) FROM stories").fetchone() == (2,)
    finally:
        writer.close()
    assert [s.read for s in store.stories()] == [False, True]


def test_database_locked_too_long_is_busy_and_unchanged(store: Store, feed: Feed) -> None:
    store.apply_update(update(feed.id, parsed("a")))
    (story,) = store.stories()
    impatient = Store.open(store.path, busy_timeout=0.2)
    try:
        with closing(sqlite3.connect(store.path, isolation_level=None, timeout=0)) as locker:
            locker.execute("BEGIN EXCLUSIVE")
            locker.execute("UPDATE stories SET title = 'uncommitted'")

            started = time.monotonic()
            with pytest.raises(DatabaseBusyError, match="locked"):
                impatient.mark_read([story.id], NOW)
            waited = time.monotonic() - started
            with pytest.raises(DatabaseBusyError):
                impatient.apply_update(update(feed.id, parsed("b")))
            assert [s.title for s in impatient.stories()] == ["Story a"]  # readers go on

            locker.execute("ROLLBACK")
        assert 0.15 <= waited < 5
        (after,) = impatient.stories()
        assert (after.title, after.read, after.new) == ("Story a", False, True)
        assert impatient.mark_read([story.id], NOW) == 1
    finally:
        impatient.close()


def test_a_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    from storyfeed import store as store_module

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(store_module._MIGRATIONS[0])
    old.execute(
        "INSERT INTO feeds (url, added_at, etag, body_hash) "
        "VALUES ('https://example.org/f', 0, '\"v1\"', 'abc')"
    )
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    opened = Store.open(path, seed_urls=["https://seed.example/"])
    try:
        (feed,) = opened.feeds()
        assert feed.url == "https://example.org/f"  # kept, and no seed: not a new database
        assert feed.ttl_seconds is None
        # Forgotten validators: the next fetch is a full one and reads the <ttl>.
        assert (feed.etag, feed.body_hash) == ("", "")
    finally:
        opened.close()
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        columns = {row[1] for row in check.execute("PRAGMA table_info(feeds)")}
        assert "ttl_seconds" in columns
    finally:
        check.close()


def test_ids_are_never_reused(store: Store, feed: Feed) -> None:
    """A removed feed's story numbers do not come back as other stories."""
    store.apply_update(update(feed.id, parsed("a"), parsed("b")))
    highest = max(s.id for s in store.stories())
    other = store.add_feed("https://example.org/other.xml", now=NOW)[0]
    store.remove_feed(feed.id)
    store.apply_update(update(other.id, parsed("c")))
    (story,) = store.stories()
    assert story.id > highest
    assert other.id > feed.id
    assert store.add_feed("https://example.org/again.xml", now=NOW)[0].id > other.id


def test_waiting_for_the_lock_can_be_interrupted(db_path: Path) -> None:
    """The store waits for another writer in short steps, so Ctrl-C gets through."""
    script = f"""
import signal, sqlite3, sys, threading, time
from datetime import UTC, datetime
from pathlib import Path
from storyfeed.store import Store
store = Store.open(Path({str(db_path)!r}), busy_timeout=30)
holder = sqlite3.connect({str(db_path)!r}, isolation_level=None)
holder.execute("BEGIN IMMEDIATE")
threading.Timer(0.5, signal.raise_signal, [signal.SIGINT]).start()
started = time.monotonic()
try:
    store.add_feed("https://example.org/x", now=datetime.now(UTC))
except KeyboardInterrupt:
    print(round(time.monotonic() - started, 2))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 2.0


def test_failures_are_counted_by_the_database(store: Store, feed: Feed) -> None:
    """Two processes that both saw error_count 0 and both failed make it 2, not 1."""
    failed = FeedUpdate(
        feed_id=feed.id, fetched_at=NOW, next_fetch_at=NOW + HOUR, success=False, error="x"
    )
    store.apply_update(failed)
    store.apply_update(failed)
    stored = store.feed(feed.id)
    assert stored is not None
    assert stored.error_count == 2
    store.apply_update(update(feed.id))
    stored = store.feed(feed.id)
    assert stored is not None
    assert stored.error_count == 0


def undo_schema_5(connection: sqlite3.Connection) -> None:
    """Take a database back to schema 4, as an older storyfeed left it."""
    connection.executescript(
        """
        DROP TRIGGER stories_fts_update; DROP TRIGGER stories_fts_delete;
        DROP TABLE stories_fts; DROP TABLE search_index;
        DROP TABLE tombstones; DROP TABLE feed_tags;
        ALTER TABLE feeds DROP COLUMN refresh_interval;
        ALTER TABLE feeds DROP COLUMN notify;
        ALTER TABLE feeds DROP COLUMN diagnosis;
        PRAGMA user_version = 4;
        """
    )


def test_version_4_database_is_migrated_with_every_story_searchable(db_path: Path) -> None:
    opened = Store.open(db_path)
    feed = opened.add_feed("https://example.org/feed.xml", now=NOW)[0]
    opened.apply_update(update(feed.id, parsed("a"), parsed("b")))
    opened.close()
    with closing(sqlite3.connect(db_path)) as connection:
        undo_schema_5(connection)
    reopened = Store.open(db_path)
    try:
        assert reopened.feeds()[0].notify is True
        assert reopened.catch_up_search_index() == 2
    finally:
        reopened.close()
    assert raw_query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert len(fts_ids(db_path, "story")) == 2


def test_version_3_read_stories_keep_having_been_read(db_path: Path) -> None:
    """Migration 4 takes a story read under version 3 as read once, so notify never
    sends it, even after it is marked unread."""
    opened = Store.open(db_path)
    feed = opened.add_feed("https://example.org/feed.xml", now=NOW)[0]
    opened.apply_update(update(feed.id, parsed("a"), parsed("b")))
    (first, _second) = sorted(row[0] for row in raw_query(db_path, "SELECT id FROM stories"))
    opened.mark_read([first], NOW)
    opened.close()
    with closing(sqlite3.connect(db_path)) as connection:
        undo_schema_5(connection)
        connection.execute("ALTER TABLE stories DROP COLUMN first_read_at")
        connection.execute("PRAGMA user_version = 3")
        connection.commit()
    reopened = Store.open(db_path)
    try:
        reopened.mark_unread([first])
    finally:
        reopened.close()
    assert raw_query(db_path, "SELECT id, read_at, first_read_at IS NOT NULL FROM stories") == [
        (first, None, 1),
        (_second, None, 0),
    ]


def test_an_update_for_a_feed_removed_meanwhile_is_dropped(store: Store, feed: Feed) -> None:
    """`remove` while a refresh fetches that feed: its result is dropped, nothing fails."""
    store.remove_feed(feed.id)
    assert store.apply_update(update(feed.id, parsed("a"))) == (0, 0)
    assert store.stories() == []


def test_apply_updates_writes_several_feeds_in_one_transaction(store: Store, feed: Feed) -> None:
    other = store.add_feed("https://other.example/feed", now=NOW)[0]
    gone = store.add_feed("https://gone.example/feed", now=NOW)[0]
    store.remove_feed(gone.id)
    commits = []
    store._db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)

    counts = store.apply_updates(
        [
            update(feed.id, parsed("a"), parsed("b")),
            update(gone.id, parsed("x")),
            update(other.id, parsed("c")),
        ]
    )

    assert counts == [(2, 0), (0, 0), (1, 0)]
    assert len(commits) == 1
    assert sorted(ids_by_title(store)) == ["Story a", "Story b", "Story c"]
    assert {f.id: f.last_fetch_at is not None for f in store.feeds()} == {
        feed.id: True,
        other.id: True,
    }


def test_apply_updates_that_fail_write_none_of_the_batch(store: Store, feed: Feed) -> None:
    other = store.add_feed("https://other.example/feed", now=NOW)[0]
    store._db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON stories WHEN NEW.title = 'Story bad' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )

    with pytest.raises(StoreError):
        store.apply_updates([update(feed.id, parsed("a")), update(other.id, parsed("bad"))])

    assert store.stories() == []
    assert all(f.last_fetch_at is None for f in store.feeds())


# --- schema 5: tags, feed settings, the search index --------------------------------------


def test_tags_are_kept_per_feed_without_case(store: Store, feed: Feed) -> None:
    assert store.add_tags(feed.id, ["News", "tech"]) == 2
    assert store.add_tags(feed.id, ["news", "Tech", "science"]) == 1
    assert store.feed(feed.id).tags == ("News", "science", "tech")  # type: ignore[union-attr]
    assert store.remove_tags(feed.id, ["NEWS"]) == 1
    assert [f.tags for f in store.feeds(with_counts=True)] == [("science", "tech")]
    assert store.remove_tags(feed.id) == 2
    assert store.feeds()[0].tags == ()


def test_a_removed_feed_takes_its_tags_along(store: Store, feed: Feed, db_path: Path) -> None:
    store.add_tags(feed.id, ["news"])
    store.remove_feed(feed.id)
    assert raw_query(db_path, "SELECT COUNT(*) FROM feed_tags") == [(0,)]


def test_feed_settings_change_only_what_is_given(store: Store, feed: Feed) -> None:
    store.set_feed_settings(feed.id, refresh_interval=7200, notify=False)
    changed = store.feed(feed.id)
    assert changed is not None
    assert (changed.refresh_interval, changed.notify, changed.user_title) == (7200, False, "")
    store.set_feed_settings(feed.id, user_title="Mine", status=FeedStatus.PAUSED)
    store.set_feed_settings(feed.id, refresh_interval="default")
    changed = store.feed(feed.id)
    assert changed is not None
    assert (changed.refresh_interval, changed.notify) == (None, False)
    assert (changed.user_title, changed.status) == ("Mine", FeedStatus.PAUSED)


def fts_ids(path: Path, query: str) -> list[object]:
    rows = raw_query(path, "SELECT rowid FROM stories_fts WHERE stories_fts MATCH ?", (query,))
    return sorted(row[0] for row in rows)


def test_the_search_index_catches_up_and_follows_changes(
    store: Store, feed: Feed, db_path: Path
) -> None:
    store.apply_update(update(feed.id, parsed("a"), parsed("b")))
    assert fts_ids(db_path, "story") == []  # not indexed until a search asks
    assert store.catch_up_search_index() == 2
    assert store.catch_up_search_index() == 0
    ids = ids_by_title(store)
    assert fts_ids(db_path, "story") == sorted(ids.values())

    store.apply_update(update(feed.id, parsed("a", "Renamed entirely"), parsed("b")))
    assert fts_ids(db_path, "renamed") == [ids["Story a"]]
    assert fts_ids(db_path, '"story a"') == []

    store.apply_update(update(feed.id, parsed("a", "Renamed entirely"), parsed("b"), parsed("c")))
    assert store.catch_up_search_index() == 1
    store.remove_feed(feed.id)
    assert fts_ids(db_path, "story OR renamed") == []


def test_a_fetch_revives_a_retired_feed_but_never_undoes_a_pause(store: Store, feed: Feed) -> None:
    """A refresh decides its update from the feed as it was when it started: a pause set
    meanwhile (`storyfeed set FEED paused yes` during a cron run) must survive it."""
    answered = replace(update(feed.id, parsed("a")), status=FeedStatus.ACTIVE)
    store.set_feed_settings(feed.id, status=FeedStatus.PAUSED)
    store.apply_update(answered)
    assert store.feed(feed.id).status is FeedStatus.PAUSED  # type: ignore[union-attr]

    store.set_feed_settings(feed.id, status=FeedStatus.GONE)
    store.apply_update(answered)
    assert store.feed(feed.id).status is FeedStatus.ACTIVE  # type: ignore[union-attr]


def test_feeds_due_picks_what_core_is_due_picks(store: Store) -> None:
    """The SQL of feeds_due against core.is_due, over every combination of status,
    next fetch time and Retry-After (before, at and after now; none)."""
    from itertools import product

    from storyfeed.core import is_due

    moments = [None, NOW - timedelta(seconds=1), NOW, NOW + timedelta(seconds=1)]
    statuses = [FeedStatus.ACTIVE, FeedStatus.PAUSED, FeedStatus.GONE]
    for n, (status, next_fetch, retry) in enumerate(product(statuses, moments, moments)):
        feed, _ = store.add_feed(f"https://example.org/{n}.xml", now=NOW)
        store._db.execute(
            "UPDATE feeds SET status = ?, next_fetch_at = ?, retry_after = ? WHERE id = ?",
            (
                status.value,
                None if next_fetch is None else int(next_fetch.timestamp()),
                None if retry is None else int(retry.timestamp()),
                feed.id,
            ),
        )
    store.add_tags(1, ["news"])  # tags come along
    everything = store.feeds()
    expected = [feed for feed in everything if is_due(feed, NOW)]

    assert len(everything) == 48
    assert 0 < len(expected) < 48
    assert store.feeds_due(NOW) == expected
    assert expected[0].id == 1 and expected[0].tags == ("news",)
    assert store.feeds_due(NOW - timedelta(days=1)) == [
        feed for feed in everything if is_due(feed, NOW - timedelta(days=1))
    ]
