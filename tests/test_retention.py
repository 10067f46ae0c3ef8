"""Retention end to end: `storyfeed prune`, tombstones, VACUUM and the automatic policy,
against a feed served on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from conftest import Result
from storyfeed import retention
from storyfeed.config import Paths, load_settings
from storyfeed.core import App
from storyfeed.store import Store
from storyfeed.updates import FeedUpdate, ParsedStory

Run = Callable[..., Result]
NOW = datetime.now(UTC)
DAY = timedelta(days=1)


class DatedFeed:
    """An RSS feed of numbered stories, each with an age in days; 304s like a real site."""

    def __init__(self, server: HTTPServer, path: str = "/feed.xml") -> None:
        self.ages: dict[int, float] = {}
        self.content = ""  # added to every story's description
        self.guid_prefix = ""  # a feed that makes up new guids changes it on every fetch
        server.expect_request(path).respond_with_handler(self._handle)
        self.url = server.url_for(path)

    def add(self, number: int, age_days: float) -> None:
        self.ages[number] = age_days

    @staticmethod
    def link(number: int) -> str:
        return f"https://dated.example/{number}/"

    def line(self, number: int) -> str:
        """The stdout line `notify` prints for the story."""
        return f"Dated — Story {number} — {self.link(number)}"

    def body(self) -> bytes:
        items = "".join(
            f"<item><title>Story {n}</title><link>{self.link(n)}</link>"
            f"<guid>{self.guid_prefix}{self.link(n)}</guid>"
            f"<description>About {n}. {self.content}</description>"
            f"<pubDate>{format_datetime(NOW - age * DAY, usegmt=True)}</pubDate></item>"
            for n, age in sorted(self.ages.items(), key=lambda item: item[1])
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            "<title>Dated</title><link>https://dated.example/</link>"
            f"<description>d</description>{items}</channel></rss>"
        ).encode()

    def _handle(self, request: Request) -> Response:
        body = self.body()
        etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(body, content_type="application/rss+xml", headers={"ETag": etag})


@pytest.fixture
def feed(httpserver: HTTPServer) -> DatedFeed:
    """Five stories: 1, 2 and 3 are about a year old or more, 4 and 5 from this week."""
    served = DatedFeed(httpserver)
    for number, age in ((1, 500), (2, 400), (3, 360), (4, 3), (5, 1)):
        served.add(number, age)
    return served


def query(home: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(home / "storyfeed.db")) as db:
        return db.execute(sql).fetchall()


def make_due(home: Path) -> None:
    with closing(sqlite3.connect(home / "storyfeed.db")) as db, db:
        db.execute("UPDATE feeds SET next_fetch_at = 0")


def titles(run: Run) -> dict[str, str]:
    """Story title -> status (new, unread, read), from the cache."""
    listed = run("list", "--offline", "--limit", "1000")
    assert listed.code == 0, listed
    return {row.split("\t")[4]: row.split("\t")[1] for row in listed.out.splitlines()}


def subscribe(run: Run, feed: DatedFeed) -> None:
    added = run("add", feed.url)
    assert added.code == 0, added
    assert "5 stories" in added.out


def test_pruned_stories_never_come_back_nor_are_notified(
    run: Run, home: Path, feed: DatedFeed
) -> None:
    subscribe(run, feed)
    first = run("notify", "--backlog")  # the five are sent once
    assert first.code == 0, first
    assert sorted(first.out.splitlines()) == sorted(feed.line(n) for n in range(1, 6))
    assert query(home, "SELECT COUNT(*) FROM deliveries") == [(5,)]

    pruned = run("prune", "--include-unread")
    assert pruned.code == 0, pruned
    assert pruned.out.splitlines() == ["1\t3\t0\tDated", "total\t3\t0\t" + pruned.out.split()[-1]]
    assert set(titles(run)) == {"Story 4", "Story 5"}
    assert query(home, "SELECT COUNT(*) FROM tombstones") == [(3,)]
    assert query(home, "SELECT COUNT(*) FROM deliveries") == [(2,)]  # went with their stories

    # The feed still lists the three and gains a sixth: only the sixth arrives.
    feed.add(6, 0.1)
    feed.content = "Edited."  # and every story changed, so the old ones would be updated
    make_due(home)
    sent = run("notify")
    assert sent.code == 0, sent
    assert sent.out.splitlines() == [feed.line(6)]
    assert titles(run) == {"Story 6": "new", "Story 5": "unread", "Story 4": "unread"}
    make_due(home)
    refreshed = run("refresh")
    assert refreshed.code == 0, refreshed
    assert set(titles(run)) == {"Story 4", "Story 5", "Story 6"}
    assert query(home, "SELECT COUNT(*) FROM stories") == [(3,)]
    assert query(home, "SELECT COUNT(*) FROM deliveries") == [(3,)]

    # Removing the feed takes its tombstones along.
    assert run("remove", "Dated").code == 0
    assert query(home, "SELECT COUNT(*) FROM tombstones") == [(0,)]


def test_pruned_stories_stay_gone_when_the_feed_changes_their_guids(
    run: Run, home: Path, feed: DatedFeed
) -> None:
    subscribe(run, feed)
    assert run("notify", "--backlog").code == 0
    assert run("prune", "--include-unread").code == 0
    assert set(titles(run)) == {"Story 4", "Story 5"}

    # Every story gets a new guid, and a new story arrives: only it is stored and sent.
    feed.guid_prefix = "urn:fetch:2:"
    feed.add(6, 0.1)
    make_due(home)
    sent = run("notify")
    assert sent.code == 0, sent
    assert sent.out.splitlines() == [feed.line(6)]
    assert titles(run) == {"Story 6": "new", "Story 5": "unread", "Story 4": "unread"}
    assert query(home, "SELECT COUNT(*) FROM stories") == [(3,)]

    # Again, by a forced refresh and with the old stories edited: still not back.
    feed.guid_prefix = "urn:fetch:3:"
    feed.content = "Edited."
    refreshed = run("refresh", "--force")
    assert refreshed.code == 0, refreshed
    assert refreshed.out == "Dated: 3 updated\n"  # 4, 5 and 6 edited; none new
    assert titles(run) == {"Story 6": "unread", "Story 5": "unread", "Story 4": "unread"}
    assert query(home, "SELECT COUNT(*) FROM stories") == [(3,)]
    assert query(home, "SELECT COUNT(*) FROM tombstones") == [(3,)]
    make_due(home)
    again = run("notify")
    assert again.code == 0, again
    assert again.out == ""


def test_only_a_pruned_storys_link_and_title_together_keep_a_new_key_out(
    tmp_path: Path,
) -> None:
    old = NOW - 400 * DAY

    def update(feed_id: int, *stories: tuple[str, str, str]) -> FeedUpdate:
        parsed = tuple(
            ParsedStory(key=key, title=title, link=link, published=old)
            for key, title, link in stories
        )
        return FeedUpdate(
            feed_id=feed_id, fetched_at=NOW, next_fetch_at=NOW, success=True, stories=parsed
        )

    with closing(Store.open(tmp_path / "storyfeed.db")) as store:
        first = update(0, ("a", "Moved", "https://x.example/1"), ("b", "No link", ""))
        feed, _ = store.add_feed("http://127.0.0.1/feed.xml", now=NOW, first=first)
        other, _ = store.add_feed("http://127.0.0.1/other.xml", now=NOW)
        assert store.prune(NOW - 180 * DAY, keep_unread=False, now=NOW) == {feed.id: 2}

        same = update(feed.id, ("a2", "Moved", "https://x.example/1"))
        assert store.apply_update(same) == (0, 0)
        retitled = update(feed.id, ("a3", "Moved again", "https://x.example/1"))
        assert store.apply_update(retitled) == (1, 0)
        # Without a link, a story is known by its key alone.
        assert store.apply_update(update(feed.id, ("b2", "No link", ""))) == (1, 0)
        assert store.apply_update(update(feed.id, ("b", "No link", ""))) == (0, 0)
        # Tombstones are the feed's own.
        elsewhere = update(other.id, ("a", "Moved", "https://x.example/1"))
        assert store.apply_update(elsewhere) == (1, 0)


def test_unread_stories_are_kept_unless_asked(run: Run, home: Path, feed: DatedFeed) -> None:
    subscribe(run, feed)
    ids = {title: story_id for story_id, title in query(home, "SELECT id, title FROM stories")}
    assert run("mark", "read", str(ids["Story 2"]), str(ids["Story 5"])).code == 0

    kept = run("prune", "--json")  # keep-unread is the default
    assert kept.code == 0, kept
    report = json.loads(kept.out)
    assert list(report) == [
        "dry_run", "before", "keep_unread", "feeds", "pruned", "kept_unread", "freed_bytes",
        "vacuumed", "file_bytes",
    ]  # fmt: skip
    assert report["keep_unread"] is True
    assert report["feeds"] == [{"feed_id": 1, "feed": "Dated", "pruned": 1, "kept_unread": 2}]
    assert (report["pruned"], report["kept_unread"], report["dry_run"]) == (1, 2, False)
    assert set(titles(run)) == {"Story 1", "Story 3", "Story 4", "Story 5"}

    explicit = json.loads(run("prune", "--keep-unread", "--json").out)
    assert (explicit["pruned"], explicit["kept_unread"]) == (0, 2)

    everything = json.loads(run("prune", "--include-unread", "--json").out)
    assert (everything["pruned"], everything["kept_unread"]) == (2, 0)
    assert set(titles(run)) == {"Story 4", "Story 5"}


def test_config_decides_the_defaults(run: Run, home: Path, feed: DatedFeed) -> None:
    subscribe(run, feed)
    (home / "config.toml").write_text(
        'default_feed = ""\nprune_after = "390d"\nprune_keep_unread = false\n'
    )
    report = json.loads(run("prune", "--dry-run", "--json").out)  # 500 and 400 days old
    assert (report["pruned"], report["keep_unread"]) == (2, False)
    before = datetime.fromisoformat(report["before"])
    assert abs(before - (NOW - 390 * DAY)) < timedelta(minutes=5)
    (home / "config.toml").write_text('default_feed = ""\n')
    report = json.loads(run("prune", "--dry-run", "--json").out)  # 180 days, unread kept
    assert (report["pruned"], report["kept_unread"], report["keep_unread"]) == (0, 3, True)


def test_older_than_takes_ages_and_dates(run: Run, home: Path, feed: DatedFeed) -> None:
    subscribe(run, feed)
    for older_than, count in (("450d", 1), ("54w", 2), ("1y", 2), ("2d", 4)):
        result = run("prune", "--dry-run", "--include-unread", "--older-than", older_than)
        assert result.code == 0, result
        assert result.out.splitlines()[-1].split("\t")[:2] == ["total", str(count)], older_than
    day = (NOW - 390 * DAY).date().isoformat()
    result = run("prune", "--dry-run", "--include-unread", "--older-than", day, "--json")
    assert json.loads(result.out)["before"] == f"{day}T00:00:00Z"
    assert json.loads(result.out)["pruned"] == 2


@pytest.mark.parametrize(
    ("older_than", "fragment"),
    [
        ("6m", "m means minutes"),
        ("12h", "less than a day"),
        ("soon", "neither an age"),
        ("-3d", "neither an age"),
        ("2999-01-01", "in the future"),
        ("2026-02-30", "not a date"),
        ("3000y", "before the year 1"),
        ("1000000w", "before the year 1"),
    ],
)
def test_a_bad_age_is_a_usage_error(run: Run, older_than: str, fragment: str) -> None:
    result = run("prune", "--older-than", older_than)
    assert result.code == 2, result
    assert fragment in result.err
    assert "Traceback" not in result.err


def test_dry_run_changes_nothing(run: Run, home: Path, feed: DatedFeed) -> None:
    subscribe(run, feed)
    before = query(home, "SELECT id, key, read_at, shown_at FROM stories ORDER BY id")
    dry = run("prune", "--dry-run", "--include-unread", "--json")
    assert dry.code == 0, dry
    report = json.loads(dry.out)
    assert (report["dry_run"], report["pruned"], report["vacuumed"]) == (True, 3, False)
    assert report["freed_bytes"] > 0  # an estimate
    assert query(home, "SELECT id, key, read_at, shown_at FROM stories ORDER BY id") == before
    assert query(home, "SELECT COUNT(*) FROM tombstones") == [(0,)]
    assert not (home / "last-prune").exists()


def test_much_freed_compacts_the_file_and_says_so(
    run: Run, home: Path, feed: DatedFeed, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed.content = "Long text. " * 20_000  # some 220 kB a story: the old three are most of the file
    subscribe(run, feed)
    monkeypatch.setattr(retention, "VACUUM_BYTES", 100_000)
    size_before = (home / "storyfeed.db").stat().st_size
    result = run("prune", "--include-unread", "--json")
    assert result.code == 0, result
    report = json.loads(result.out)
    assert report["vacuumed"] is True
    assert report["freed_bytes"] > 500_000
    assert "compacting the database (VACUUM" in result.err
    size_after = (home / "storyfeed.db").stat().st_size
    assert size_after == report["file_bytes"] < size_before - 500_000
    assert query(home, "PRAGMA freelist_count") == [(0,)]

    # Nothing freed: no VACUUM.
    again = run("prune", "--include-unread", "--older-than", "450d", "--json")
    assert json.loads(again.out)["vacuumed"] is False
    assert "VACUUM" not in again.err


def test_should_vacuum_needs_a_large_share_and_size() -> None:
    mib = 1024 * 1024
    assert retention.should_vacuum(16 * mib, 4 * mib)
    assert not retention.should_vacuum(17 * mib, 4 * mib)  # under 25%
    assert not retention.should_vacuum(4 * mib, 3 * mib)  # a lot, but only 3 MiB


def test_the_policy_runs_after_a_refresh_at_most_daily(
    run: Run, home: Path, feed: DatedFeed
) -> None:
    subscribe(run, feed)
    (home / "config.toml").write_text(
        'default_feed = ""\nprune_after = "30d"\nprune_keep_unread = false\n'
    )
    assert titles(run).keys() == {f"Story {n}" for n in range(1, 6)}  # --offline: no refresh
    make_due(home)
    assert run("refresh").code == 0
    assert set(titles(run)) == {"Story 4", "Story 5"}
    stamp = int((home / "last-prune").read_text())
    assert abs(stamp - NOW.timestamp()) < 600

    # Within the day, the policy does not run again: an old story that arrives stays.
    feed.add(7, 100)
    make_due(home)
    assert run("refresh").code == 0
    assert "Story 7" in titles(run)
    # A day later it does, after the refresh of a listing.
    (home / "last-prune").write_text(f"{stamp - 25 * 3600}\n")
    make_due(home)
    listed = run("list")
    assert listed.code == 0, listed
    assert "Story 7" in listed.out  # shown, then pruned after the listing
    assert "Story 7" not in titles(run)
    assert int((home / "last-prune").read_text()) >= stamp


def test_the_policy_is_off_by_default_and_costs_no_file(home: Path) -> None:
    paths = Paths(config_dir=home, data_dir=home)
    app = App(paths, load_settings(paths.config_file))
    assert app.settings.prune_after == 0
    assert not retention.policy_due(app)
    (home / "config.toml").write_text('default_feed = ""\nprune_after = "180d"\n')
    app = App(paths, load_settings(paths.config_file), clock=lambda: NOW)
    assert retention.policy_due(app)  # never ran
    (home / "last-prune").write_text(f"{int(NOW.timestamp()) - 3600}\n")
    assert not retention.policy_due(app)
    (home / "last-prune").write_text("garbage\n")
    assert retention.policy_due(app)
    (home / "last-prune").write_text(f"{int(NOW.timestamp()) + 7200}\n")  # a clock set back
    assert retention.policy_due(app)


def test_cutoff() -> None:
    assert retention.cutoff(None, 0, NOW) == NOW - 180 * DAY
    assert retention.cutoff(None, 86400 * 30, NOW) == NOW - 30 * DAY
    assert retention.cutoff("26w", 0, NOW) == NOW - 182 * DAY
    assert retention.cutoff("2026-05-01", 0, datetime(2026, 6, 1, tzinfo=UTC)) == datetime(
        2026, 5, 1, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="less than a day"):
        retention.cutoff("3600", 0, NOW)


def test_prune_output_on_a_terminal(
    run: Run, feed: DatedFeed, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscribe(run, feed)
    from storyfeed import cli

    monkeypatch.setattr(cli, "_stdout_is_tty", lambda: True)
    shown = run("prune", "--dry-run")
    assert shown.code == 0, shown
    assert "Would prune" in shown.out and "Unread kept" in shown.out
    summary = " ".join(shown.out.split())
    assert "Would prune 0 stories from 0 feeds" in summary
    assert "3 old unread kept" in summary
    done = run("prune", "--include-unread")
    assert "Pruned 3 stories from 1 feed" in " ".join(done.out.split())


def test_pruned_stories_leave_the_search_index(run: Run, home: Path, feed: DatedFeed) -> None:
    from storyfeed.store import Store

    subscribe(run, feed)
    store = Store.open(home / "storyfeed.db")
    try:
        assert store.catch_up_search_index() == 5
    finally:
        store.close()
    match = "SELECT rowid FROM stories_fts WHERE stories_fts MATCH 'about' ORDER BY rowid"
    assert len(query(home, match)) == 5
    assert run("prune", "--include-unread").code == 0
    assert query(home, match) == query(home, "SELECT id FROM stories ORDER BY id")
    assert len(query(home, match)) == 2


@pytest.mark.parametrize("batch", [1, 2, 3, 5000])
def test_batches_pass_over_the_kept_stories(
    run: Run, home: Path, httpserver: HTTPServer, batch: int
) -> None:
    """Read and unread old stories interleaved, and stories sharing a date: every
    read old one goes, whatever the batch size, and nothing else."""
    from storyfeed.store import Store

    served = DatedFeed(httpserver, "/many.xml")
    for number in range(1, 21):
        served.add(number, 200 + number // 3)  # groups of equal dates
    served.add(21, 2)
    run("add", served.url)
    ids = {title: story_id for story_id, title in query(home, "SELECT id, title FROM stories")}
    read = [ids[f"Story {n}"] for n in range(1, 22) if n % 3 != 1]
    assert run("mark", "read", *map(str, read)).code == 0
    store = Store.open(home / "storyfeed.db")
    try:
        pruned = store.prune(NOW - 100 * DAY, keep_unread=True, now=NOW, batch=batch)
    finally:
        store.close()
    expected_gone = {f"Story {n}" for n in range(1, 21) if n % 3 != 1}
    assert pruned == {1: len(expected_gone)}
    left = {title for (title,) in query(home, "SELECT title FROM stories")}
    assert left == {f"Story {n}" for n in range(1, 22)} - expected_gone
    tombstoned = {key for (key,) in query(home, "SELECT key FROM tombstones")}
    assert tombstoned == {served.link(int(t.split()[1])) for t in expected_gone}
