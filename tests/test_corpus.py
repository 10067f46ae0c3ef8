"""Every file of the third-party feed corpus goes through parse and store without crashing.

The corpus (see its README.md) holds ~4,300 RSS, Atom, JSON Feed and non-feed files.
Each one is treated as an opaque response body: parsed, stored, and stored again.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from conftest import CORPUS, NOW
from storyfeed.errors import NotAFeedError, ParseError
from storyfeed.parse import parse_feed
from storyfeed.store import Store
from storyfeed.updates import FeedUpdate, ParsedFeed

if not CORPUS.is_dir():
    pytest.skip(
        f"feed corpus not found at {CORPUS} (set STORYFEED_CORPUS to its folder)",
        allow_module_level=True,
    )

SKIPPED_NAMES = {"SOURCE.md", "LICENSE", "README.md"}
PARSE_TIME_LIMIT = 5.0  # seconds per file; a healthy parser needs under 1.5 s for any of them


def corpus_files() -> list[Path]:
    return sorted(
        path for path in CORPUS.rglob("*") if path.is_file() and path.name not in SKIPPED_NAMES
    )


def _problem(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def test_corpus_parses_and_stores_idempotently(tmp_path: Path) -> None:
    files = corpus_files()
    assert len(files) > 4000, f"the corpus looks incomplete: {len(files)} files"
    failures: list[str] = []
    parsed_feeds: list[tuple[str, ParsedFeed]] = []
    not_a_feed = parse_errors = 0
    slowest = (0.0, "")

    for path in files:
        relative = path.relative_to(CORPUS).as_posix()
        body = path.read_bytes()
        started = time.perf_counter()
        try:
            parsed = parse_feed(body, {}, f"https://corpus.example/{relative}", NOW)
        except NotAFeedError:
            not_a_feed += 1
            continue
        except ParseError:
            parse_errors += 1
            continue
        except Exception as exc:
            failures.append(f"{relative}: parse raised {_problem(exc)}")
            continue
        finally:
            elapsed = time.perf_counter() - started
            slowest = max(slowest, (elapsed, relative))
            if elapsed > PARSE_TIME_LIMIT:
                failures.append(f"{relative}: parsing took {elapsed:.1f} s")
        if not isinstance(parsed, ParsedFeed):
            failures.append(f"{relative}: parse returned {type(parsed).__name__}")
            continue
        parsed_feeds.append((relative, parsed))

    store = Store.open(tmp_path / "c.db")
    stories_stored = 0
    try:
        for relative, parsed in parsed_feeds:
            url = f"https://corpus.example/{relative}"
            try:
                feed = store.add_feed(url, now=NOW)[0]
                update = FeedUpdate(
                    feed_id=feed.id,
                    fetched_at=NOW,
                    next_fetch_at=NOW,
                    success=True,
                    feed_title=parsed.title or None,
                    site_url=parsed.site_url or None,
                    stories=parsed.stories,
                )
                first_new, _ = store.apply_update(update)
                second_new, _ = store.apply_update(update)
            except Exception as exc:
                failures.append(f"{relative}: store raised {_problem(exc)}")
                continue
            if first_new != len(parsed.stories):
                failures.append(
                    f"{relative}: first pass added {first_new} of {len(parsed.stories)} stories"
                )
            if second_new != 0:
                failures.append(f"{relative}: second pass added {second_new} stories")
            stored = store.stories(feed_id=feed.id)
            stories_stored += len(stored)
            if len(stored) != len(parsed.stories):
                failures.append(
                    f"{relative}: {len(stored)} stories stored for {len(parsed.stories)} parsed"
                )
    finally:
        store.close()

    with sqlite3.connect(tmp_path / "c.db") as db:
        total, empty_keys = db.execute(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE TRIM(key) = '') FROM stories"
        ).fetchone()
    db.close()
    assert total == stories_stored
    if empty_keys:
        failures.append(f"{empty_keys} stored stories have an empty key")

    print(
        f"\ncorpus: {len(files)} files, {len(parsed_feeds)} parsed, {not_a_feed} not a feed, "
        f"{parse_errors} other parse errors, {len(failures)} failures, "
        f"{stories_stored} stories stored; slowest {slowest[1]} ({slowest[0]:.2f} s)"
    )
    assert not failures, f"{len(failures)} corpus failures:\n" + "\n".join(failures[:100])
