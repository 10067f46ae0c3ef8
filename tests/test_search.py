"""Search: the index kept in step, the query language, snippets, and `storyfeed search`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from rich.console import Console
from werkzeug import Request, Response

from conftest import NOW, Result
from storyfeed import render, searching
from storyfeed.config import default_paths
from storyfeed.core import App
from storyfeed.errors import SearchQueryError
from storyfeed.models import HIT_END, HIT_START, DateFlag, Story
from storyfeed.reports import MarkedStory, SearchHit
from storyfeed.store import Store
from storyfeed.updates import FeedUpdate, ParsedStory

Run = Callable[..., Result]
HOUR = timedelta(hours=1)


def parsed(
    key: str, title: str, *, summary: str = "", content: str = "", author: str = ""
) -> ParsedStory:
    return ParsedStory(
        key=key,
        title=title,
        link=f"https://example.org/{key}",
        author=author,
        summary=summary,
        content=content,
        published=NOW - HOUR,
        date_flag=DateFlag.OK,
    )


def update(feed_id: int, *stories: ParsedStory) -> FeedUpdate:
    return FeedUpdate(
        feed_id=feed_id, fetched_at=NOW, next_fetch_at=NOW + HOUR, success=True, stories=stories
    )


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    opened = Store.open(home / "data" / "storyfeed.sqlite3")
    yield opened
    opened.close()


def found(
    store: Store, query: str, *, feed_ids: tuple[int, ...] = (), limit: int | None = None
) -> list[str]:
    """Titles a query finds after the catch-up a search does."""
    store.catch_up_search_index()
    match = searching.fts_query(query)
    return [m.story.title for m in store.search(match, feed_ids=feed_ids, limit=limit)]


# --- the index in step with the stories -------------------------------------------------


def test_insert_update_delete_and_later_stories(store: Store) -> None:
    feed, _ = store.add_feed("https://example.org/a.xml", now=NOW)
    store.apply_update(update(feed.id, parsed("1", "Walrus facts", summary="tusks and whiskers")))
    assert found(store, "whiskers") == ["Walrus facts"]

    # Changed text: the new words are found, the old ones no longer.
    store.apply_update(update(feed.id, parsed("1", "Walrus facts", summary="flippers only")))
    assert found(store, "flippers") == ["Walrus facts"]
    assert found(store, "whiskers") == []

    # A story stored after a catch-up is found by the next search.
    store.apply_update(update(feed.id, parsed("2", "Seal news", content="<p>more whiskers</p>")))
    assert found(store, "whiskers") == ["Seal news"]

    # Gone with its feed: no longer found, and the index holds nothing of it.
    store.remove_feed(feed.id)
    assert found(store, "walrus OR seal OR whiskers OR flippers") == []


def test_a_story_changed_before_it_was_indexed_is_indexed_as_it_is_now(store: Store) -> None:
    feed, _ = store.add_feed("https://example.org/a.xml", now=NOW)
    store.apply_update(update(feed.id, parsed("1", "Draft", summary="early words")))
    store.apply_update(update(feed.id, parsed("1", "Final", summary="late words")))
    assert found(store, "late") == ["Final"]
    assert found(store, "early OR draft") == []


def test_catch_up_counts_and_is_done_once(store: Store) -> None:
    feed, _ = store.add_feed("https://example.org/a.xml", now=NOW)
    store.apply_update(update(feed.id, *(parsed(str(i), f"Story {i}") for i in range(7))))
    reports: list[tuple[int, int]] = []
    assert store.catch_up_search_index(lambda done, total: reports.append((done, total))) == 7
    assert reports[0] == (0, 7) and reports[-1] == (7, 7)
    assert store.catch_up_search_index() == 0


def test_a_long_catch_up_goes_in_steps(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("storyfeed.store._INDEX_STEP", 3)
    feed, _ = store.add_feed("https://example.org/a.xml", now=NOW)
    store.apply_update(update(feed.id, *(parsed(str(i), f"Puffin {i}") for i in range(10))))
    reports: list[tuple[int, int]] = []
    assert store.catch_up_search_index(lambda done, total: reports.append((done, total))) == 10
    assert reports == [(0, 10), (3, 10), (6, 10), (9, 10), (10, 10)]
    assert len(found(store, "puffin")) == 10


def test_a_refresh_during_a_catch_up_waits_and_its_stories_come_next(home: Path) -> None:
    """Both are write transactions: the refresh waits for the catch-up, and its
    stories, with higher ids, are indexed by the next search."""
    path = home / "data" / "storyfeed.sqlite3"
    searcher = Store.open(path)
    feed, _ = searcher.add_feed("https://example.org/a.xml", now=NOW)
    searcher.apply_update(update(feed.id, parsed("1", "Old otter")))
    refreshed = threading.Event()

    def refresh() -> None:
        writer = Store.open(path)
        writer.apply_update(update(feed.id, parsed("2", "New otter")))
        writer.close()
        refreshed.set()

    thread = threading.Thread(target=refresh)

    def in_the_middle(done: int, total: int) -> None:
        if done == 0:
            thread.start()
            assert not refreshed.wait(0.5)  # held back by the catch-up's transaction

    assert searcher.catch_up_search_index(in_the_middle) == 1
    thread.join(10)
    assert refreshed.is_set()
    assert [m.story.title for m in searcher.search('"otter"')] == ["Old otter"]
    assert searcher.catch_up_search_index() == 1
    assert {m.story.title for m in searcher.search('"otter"')} == {"Old otter", "New otter"}
    searcher.close()


def test_ranking_favours_titles_then_newest(store: Store) -> None:
    feed, _ = store.add_feed("https://example.org/a.xml", now=NOW)
    store.apply_update(
        update(
            feed.id,
            parsed("1", "Unrelated", content="a long text that mentions kelp once " * 3),
            parsed("2", "Kelp forests", content="about the sea"),
            parsed("3", "Unrelated too", summary="kelp kelp"),
        )
    )
    assert found(store, "kelp") == ["Kelp forests", "Unrelated too", "Unrelated"]
    store.apply_update(update(feed.id, parsed("4", "Twin"), parsed("5", "Twin")))
    twins = store.search('"twin"')
    assert [m.story.id for m in twins] == sorted((m.story.id for m in twins), reverse=True)


def test_search_narrows_to_feeds_and_limits(store: Store) -> None:
    one, _ = store.add_feed("https://example.org/1.xml", now=NOW)
    two, _ = store.add_feed("https://example.org/2.xml", now=NOW)
    store.apply_update(update(one.id, *(parsed(f"a{i}", f"Heron {i}") for i in range(5))))
    store.apply_update(update(two.id, parsed("b", "Heron b")))
    assert found(store, "heron", feed_ids=(two.id,)) == ["Heron b"]
    assert len(found(store, "heron", limit=2)) == 2
    assert len(found(store, "heron")) == 6


# --- the query language ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("c++", '("c++")'),
        ("don't", """("don't")"""),
        ('"a phrase"', '("a phrase")'),
        ("one two", '("one") AND ("two")'),
        ("one AND two", '("one") AND ("two")'),
        ("one OR two three", '("one" OR "two") AND ("three")'),
        ("pars*", '("pars" *)'),
        ('"kv cache"*', '("kv cache" *)'),
        ("title:foo", '(title : "foo")'),
        ('Author:"Ann Lee"', '(author : "Ann Lee")'),
        ("http://x.org/a", '("http://x.org/a")'),
        ("llm -vision NOT audio", '(("llm")) NOT ("vision" OR "audio")'),
        ('say "hi', '("say") AND ("hi")'),
        ('a"b', '("a") AND ("b")'),
        ("AND", '("AND")'),
        ("OR x", '("x")'),
    ],
)
def test_query_translation(query: str, expected: str) -> None:
    assert searching.fts_query(query) == expected


@pytest.mark.parametrize("query", ["", "   ", "***", '"', "- -- ...", "-word", "NOT word"])
def test_queries_with_nothing_to_find_are_clean_errors(query: str) -> None:
    with pytest.raises(SearchQueryError):
        searching.fts_query(query)


QUERY_CHARACTERS = st.sampled_from(list(" aZé9-*\":()^{}+'\\,.ORNTAD\x00\u202e\ud800"))
QUERY_WORDS = st.sampled_from(["OR", "AND", "NOT", "title:", "near", "NEAR(", "-", "*", '"'])


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    opened = Store.open(tmp_path_factory.mktemp("fuzz") / "storyfeed.sqlite3")
    feed, _ = opened.add_feed("https://example.org/a.xml", now=NOW)
    opened.apply_update(update(feed.id, parsed("1", "Title OR AND", summary="a b é 9 z")))
    opened.catch_up_search_index()
    yield opened
    opened.close()


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.text(),
        st.text(QUERY_CHARACTERS),
        st.lists(st.one_of(QUERY_WORDS, st.text(QUERY_CHARACTERS, max_size=3))).map(" ".join),
    )
)
def test_any_query_gives_results_or_a_clean_error(fuzz_store: Store, query: str) -> None:
    try:
        match = searching.fts_query(query)
    except SearchQueryError:
        return
    assert isinstance(fuzz_store.search(match), list)


# --- snippets -----------------------------------------------------------------------------


def marked(summary: str = "", content: str = "", title: str = "T") -> MarkedStory:
    return MarkedStory(a_story(), -1.0, title, summary, content)


def a_story() -> Story:
    return Story(
        id=1,
        feed_id=1,
        feed_title="Feed [bold]",
        title="T",
        link="https://example.org/1",
        author="",
        summary="",
        published=NOW,
        first_seen=NOW,
        new=True,
        read=False,
    )


def test_snippet_turns_html_into_text_and_keeps_the_marks() -> None:
    html = (
        '<p>Tom &amp; <a href="https://x.org/">\x02jerry\x03</a></p><script>jerry()</script>'
        "&\x02amp\x03;"
    )
    assert searching.snippet(marked(summary=html)) == "Tom & \x02jerry\x03 <https://x.org/> &"


def test_snippet_is_a_window_around_the_first_hit() -> None:
    text = "before " * 40 + "\x02needle\x03 " + "after " * 40
    cut = searching.snippet(marked(content=text))
    plain = cut.replace(HIT_START, "").replace(HIT_END, "")
    assert cut.startswith("…") and cut.endswith("…")
    assert "\x02needle\x03" in cut
    assert len(plain) <= searching.SNIPPET_WIDTH + 2
    assert plain.index("needle") <= 35


def test_snippet_without_a_hit_in_the_text_is_its_start() -> None:
    assert searching.snippet(marked(summary="<b>Plain</b> start")) == "Plain start"
    assert searching.snippet(marked(content="x" * 300)).endswith("…")


def test_a_hit_cut_by_the_window_stays_balanced() -> None:
    cut = searching.cut_snippet("w " * 50 + "\x02" + "y" * 200 + "\x03", width=120)
    assert cut.count(HIT_START) == cut.count(HIT_END) == 1


def test_the_table_highlights_hits_and_never_reads_markup() -> None:
    hit = SearchHit(a_story(), 1, 1.0, "[red]Tom\x02cat\x03[/red]", "a \x02cat\x03 here")
    table = render.search_table([hit], NOW, show_feed=True, width=100)
    out = StringIO()
    Console(file=out, width=100, color_system=None).print(table)
    assert "[red]Tomcat[/red]" in out.getvalue()
    assert "a cat here" in out.getvalue()
    text = render.marked_text(hit.snippet)
    assert text.plain == "a cat here"
    assert [(span.start, span.end) for span in text.spans] == [(2, 5)]


# --- the command --------------------------------------------------------------------------


def rss(*items: tuple[str, str, str]) -> bytes:
    """An RSS document of (guid, title, description) items."""
    body = "".join(
        f"<item><guid>{guid}</guid><title>{escape(title)}</title>"
        f"<link>https://blog.example/{guid}</link>"
        f"<pubDate>Wed, 27 May 2026 0{n}:00:00 +0000</pubDate>"
        f"<description>{escape(text)}</description></item>"
        for n, (guid, title, text) in enumerate(items)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Zoo</title>'
        f"<link>https://blog.example/</link>{body}</channel></rss>"
    ).encode()


class Site:
    def __init__(self, server: HTTPServer, path: str, body: bytes) -> None:
        self.body = body
        server.expect_request(path).respond_with_handler(self.handle)
        self.url = server.url_for(path)

    def handle(self, request: Request) -> Response:
        return Response(self.body, content_type="application/rss+xml")


def rows(result: Result) -> list[list[str]]:
    return [line.split("\t") for line in result.out.splitlines()]


def test_add_refresh_search_end_to_end(run: Run, httpserver: HTTPServer) -> None:
    zoo = Site(
        httpserver,
        "/zoo.xml",
        rss(
            ("p1", "Penguins", "<p>Penguins <b>waddle</b> on ice.</p>"),
            ("p2", "Lions", "Lions sleep; c++ code and don't panic."),
        ),
    )
    assert run("add", zoo.url).code == 0

    result = run("search", "waddle")
    assert result.code == 0, result
    [row] = rows(result)
    assert row[4:] == ["Penguins", "https://blog.example/p1", "Penguins waddle on ice."]
    assert row[1] == "new"

    # Searching shows nothing as seen: the stories are still NEW for `list`.
    assert {r[1] for r in rows(run("list", "--offline"))} == {"new"}

    for query in ("c++", "don't", '"a phrase"', "AND", "title:lions", "-", "x)(", "NEAR("):
        tried = run("search", query)
        assert tried.code in {0, 1}, (query, tried)
        assert "Traceback" not in tried.err
        assert tried.code == 0 or tried.err.startswith("storyfeed: error: ")
    assert [r[4] for r in rows(run("search", "title:lions"))] == ["Lions"]
    assert [r[4] for r in rows(run("search", "lions", "-panic"))] == []

    zoo.body = rss(
        ("p1", "Penguins", "<p>Penguins <b>swim</b> fast.</p>"),
        ("p2", "Lions", "Lions sleep."),
        ("p3", "Otters", "Otters waddle too."),
    )
    assert run("refresh", "--force").code == 0
    assert [r[4] for r in rows(run("search", "waddle"))] == ["Otters"]
    assert [r[4] for r in rows(run("search", "swim"))] == ["Penguins"]

    records = json.loads(run("search", "--json", "otters").out)
    assert records[0]["title"] == "Otters"
    assert records[0]["snippet"] == "Otters waddle too."
    assert records[0]["rank"] == 1 and records[0]["score"] > 0
    assert set(records[0]) == {
        "id", "feed_id", "feed", "title", "link", "author", "published", "first_seen",
        "new", "read", "summary", "snippet", "rank", "score",
    }  # fmt: skip

    assert run("remove", "1").code == 0
    assert run("search", "waddle").out == ""


def test_search_options_and_errors(run: Run, httpserver: HTTPServer) -> None:
    one = Site(httpserver, "/one.xml", rss(*((f"a{i}", f"Gull {i}", "sea") for i in range(4))))
    two = Site(httpserver, "/two.xml", rss(("b", "Gull b", "sea")))
    assert run("add", one.url, "--title", "One").code == 0
    assert run("add", two.url, "--title", "Two").code == 0
    assert len(rows(run("search", "gull"))) == 5
    assert len(rows(run("search", "gull", "-n", "2"))) == 2
    assert [r[4] for r in rows(run("search", "gull", "--feed", "two"))] == ["Gull b"]
    assert len(rows(run("search", "gull", "--feed", "One", "--feed", "2"))) == 5

    empty = run("search", " ")
    assert empty.code == 2
    assert empty.err.startswith("storyfeed: error: ")
    only_not = run("search", "--", "-gull")
    assert only_not.code == 1 and only_not.out == ""
    assert only_not.err.count("\n") == 1 and "leave out" in only_not.err
    unknown = run("search", "gull", "--feed", "nope")
    assert unknown.code == 1 and "no feed matches" in unknown.err


def test_a_long_catch_up_is_announced(run: Run) -> None:
    store = Store.open(default_paths().database)
    feed, _ = store.add_feed("https://example.org/a.xml", now=NOW)
    count = searching.LONG_CATCH_UP + 10
    store.apply_update(update(feed.id, *(parsed(str(i), f"Story {i}") for i in range(count))))
    store.close()
    result = run("search", "story", "--all")
    assert result.code == 0
    assert len(result.out.splitlines()) == count
    assert result.err == f"storyfeed: indexing {count:,} stories for search (once)...\n"
    assert run("search", "story").err == ""


def test_a_busy_database_still_searches_what_is_indexed() -> None:
    from storyfeed.config import default_paths

    app = App(default_paths())
    feed, _ = app.store.add_feed("https://example.org/a.xml", now=NOW)
    app.store.apply_update(update(feed.id, parsed("1", "Indexed ibis")))
    app.store.catch_up_search_index()
    app.store.apply_update(update(feed.id, parsed("2", "Late ibis")))
    other = Store.open(app.paths.database)
    other._db.execute("BEGIN IMMEDIATE")  # another process writing for a long while
    app.store.busy_timeout = 0.2
    started = time.monotonic()
    result = searching.search(app, "ibis")
    assert time.monotonic() - started < 5
    assert [hit.story.title for hit in result.hits] == ["Indexed ibis"]
    assert result.warnings and "busy" in result.warnings[0]
    other._db.execute("ROLLBACK")
    other.close()
    app.close()


@pytest.mark.parametrize("mistyped", ["--limt", "--jsno"])
def test_a_mistyped_option_is_a_usage_error_not_search_words(run: Run, mistyped: str) -> None:
    result = run("search", "kiwi", mistyped, "1")
    assert result.code == 2
    assert mistyped in result.err and result.out == ""


def test_all_and_limit_do_not_go_together(run: Run) -> None:
    result = run("search", "kiwi", "--all", "--limit", "3")
    assert result.code == 2
    assert "--all" in result.err
