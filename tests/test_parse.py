"""Tests of storyfeed.parse: feed documents in, sanitised ParsedFeed values out."""

from __future__ import annotations

import json
import re
import time
import warnings
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import DATA, NOW
from storyfeed.errors import NotAFeedError, ParseError
from storyfeed.htmltext import html_to_text
from storyfeed.models import DateFlag
from storyfeed.parse import find_feed_links, is_html, parse_feed
from storyfeed.updates import FeedLink, ParsedFeed, ParsedStory

# C0 except tab and newline, DEL, C1 (which holds the 8-bit CSI/OSC), and the
# bidi embeddings, overrides and isolates.
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HEX64 = re.compile(r"[0-9a-f]{64}")


def parse(body: bytes, headers: dict[str, str] | None = None, **kwargs: Any) -> ParsedFeed:
    url = kwargs.pop("url", "https://feeds.example/feed")
    now = kwargs.pop("now", NOW)
    return parse_feed(body, headers or {}, url, now)


def rss(items: str, channel: str = "<title>T</title><link>https://t.example/</link>") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>{channel}'
        f"{items}</channel></rss>"
    ).encode()


def atom(entries: str, head: str = "<title>T</title>") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<feed xmlns="http://www.w3.org/2005/Atom">{head}<id>urn:t</id>'
        f"<updated>2026-05-01T00:00:00Z</updated>{entries}</feed>"
    ).encode()


def json_feed(items: list[dict[str, Any]], **top: Any) -> bytes:
    document = {"version": "https://jsonfeed.org/version/1.1", "title": "T", **top}
    document["items"] = items
    return json.dumps(document).encode()


def iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    assert when.utcoffset() == timedelta(0), f"{when!r} is not in UTC"
    return when.isoformat().replace("+00:00", "Z")


def string_fields(parsed: ParsedFeed) -> list[tuple[str, str]]:
    """Every string a parsed feed carries, named for assertion messages."""
    found = [("title", parsed.title), ("site_url", parsed.site_url), ("format", parsed.format)]
    found += [("warning", warning) for warning in parsed.warnings]
    for index, story in enumerate(parsed.stories):
        for field in fields(ParsedStory):
            value = getattr(story, field.name)
            if isinstance(value, str):
                found.append((f"stories[{index}].{field.name}", value))
    return found


# --- fixtures with an expected result beside them ---------------------------------


def _fixture_cases() -> list[Any]:
    cases = []
    for expected in sorted(DATA.glob("*.expected.json")):
        name = expected.name.removesuffix(".expected.json")
        documents = [
            path
            for path in DATA.glob(f"{name}.*")
            if path != expected and not path.name.endswith(".expected.json")
        ]
        assert len(documents) == 1, f"{expected.name}: expected one feed beside it: {documents}"
        cases.append(pytest.param(documents[0], expected, id=name))
    return cases


FIXTURES = _fixture_cases()


def test_fixture_set_covers_the_formats() -> None:
    names = {case.id for case in FIXTURES}
    assert {"blog", "atom_base", "rdf", "rss091", "feed10", "feed11", "dates", "keys"} <= names


def _check_story(story: ParsedStory, want: dict[str, Any], where: str) -> None:
    for name, value in want.items():
        if name == "published":
            got: Any = iso(story.published)
        elif name == "date_flag":
            got = story.date_flag.name.lower()
        elif name == "summary_text":
            got = html_to_text(story.summary)
        elif name == "content_text":
            got = html_to_text(story.content)
        else:
            got = getattr(story, name)
        assert got == value, f"{where}.{name}: {got!r} != {value!r}"


@pytest.mark.parametrize(("document", "expected"), FIXTURES)
def test_fixture(document: Path, expected: Path) -> None:
    want = json.loads(expected.read_text(encoding="utf-8"))
    parsed = parse_feed(
        document.read_bytes(),
        want.get("headers", {}),
        want.get("url", f"https://feeds.example/data/{document.name}"),
        NOW,
    )
    assert isinstance(parsed, ParsedFeed)
    assert parsed.title == want["title"]
    assert parsed.site_url == want["site_url"]
    assert len(parsed.stories) == want["count"]
    if "format" in want:
        assert parsed.format == want["format"]
    if "ttl_seconds" in want:
        assert parsed.ttl_seconds == want["ttl_seconds"]
    if "first" in want:
        _check_story(parsed.stories[0], want["first"], "first")
    if "stories" in want:
        assert len(want["stories"]) <= len(parsed.stories)
        for index, story_want in enumerate(want["stories"]):
            _check_story(parsed.stories[index], story_want, f"stories[{index}]")
    if "newest_first" in want:
        ordered = sorted(parsed.stories, key=lambda s: s.published or NOW, reverse=True)
        assert [s.title for s in ordered] == want["newest_first"]
    for story in parsed.stories:
        assert story.key, "every story has a key"
        if story.published is not None:
            assert story.published <= NOW
    assert len({story.key for story in parsed.stories}) == len(parsed.stories)
    for name, value in string_fields(parsed):
        assert not FORBIDDEN.search(value), f"{name} = {value!r}"


def test_koi8_fixture_depends_on_its_header() -> None:
    """Without the charset header the koi8 fixture must not come out as Cyrillic, so the
    fixture test above really checks that the header is used."""
    try:
        parsed = parse((DATA / "koi8.rss").read_bytes())
    except ParseError:
        return
    assert parsed.title != "Утренние новости"


# --- titles, entities, markup -------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ('<title type="html">&lt;b&gt;x&lt;/b&gt;</title>', "x"),
        (
            '<title type="html">&lt;b&gt;Caf&amp;eacute;&lt;/b&gt; &amp;amp; tea</title>',
            "Café & tea",
        ),
        ('<title type="html">&lt;script&gt;alert(1)&lt;/script&gt;Safe</title>', "Safe"),
        ('<title type="text">a &lt; b</title>', "a < b"),
        ('<title type="text">x &lt;b&gt; y</title>', "x <b> y"),
        ('<title type="text">AT&amp;T &amp;amp; more</title>', "AT&T &amp; more"),
        ("<title>Caf&#233; &#x2603;</title>", "Café ☃"),
        ('<title type="text">  spread\n\t over   lines  </title>', "spread over lines"),
        (
            '<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">A <b>bold</b> step'
            "</div></title>",
            "A bold step",
        ),
    ],
)
def test_atom_title_types(title: str, expected: str) -> None:
    parsed = parse(atom(f"<entry><id>urn:1</id>{title}</entry>"))
    assert parsed.stories[0].title == expected


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("<title>&lt;b&gt;x&lt;/b&gt;</title>", "x"),
        ("<title><![CDATA[<em>Fish</em> &amp; chips]]></title>", "Fish & chips"),
        ("<title>a &lt; b</title>", "a < b"),
        ("<title>Tom &amp; Jerry</title>", "Tom & Jerry"),
        ("<title>[bold]x[/]</title>", "[bold]x[/]"),
    ],
)
def test_rss_titles(title: str, expected: str) -> None:
    parsed = parse(rss(f"<item>{title}<guid isPermaLink='false'>g</guid></item>"))
    assert parsed.stories[0].title == expected


def test_feed_title_with_html_becomes_plain() -> None:
    parsed = parse(atom("", head='<title type="html">&lt;i&gt;Plain&lt;/i&gt; text</title>'))
    assert parsed.title == "Plain text"


@pytest.mark.parametrize(
    "markup", ["[bold]x[/]", "[link=https://evil.example]click[/link]", "[red on black]"]
)
def test_rich_markup_is_kept_as_text(markup: str) -> None:
    body = json_feed(
        [{"id": "1", "title": markup, "summary": markup, "authors": [{"name": markup}]}]
    )
    story = parse(body).stories[0]
    assert story.title == markup
    assert story.summary == markup
    assert story.author == markup
    rss_story = parse(rss(f"<item><guid>g</guid><title>{markup}</title></item>")).stories[0]
    assert rss_story.title == markup


# --- hostile text: escapes, C1 and bidi controls ----------------------------------------

HOSTILE = (
    "\x1b[31mRed\x1b[0m \u202eevil\u202c \u2066iso\u2069 \x80C1\x99"
    " \x1b]8;;https://evil.example/\x07link\x1b]8;;\x07 \x9b2Jgone"
)
HOSTILE_CLEAN = "Red evil iso C1 link gone"


def _assert_clean(value: str) -> None:
    assert not FORBIDDEN.search(value), repr(value)
    assert "\x1b" not in value


def test_hostile_json_feed_is_sanitised() -> None:
    body = json_feed(
        [
            {
                "id": "1",
                "url": "https://t.example/1",
                "title": HOSTILE,
                "summary": HOSTILE,
                "content_text": HOSTILE,
                "authors": [{"name": HOSTILE}],
            }
        ],
        title=HOSTILE,
    )
    parsed = parse(body)
    story = parsed.stories[0]
    assert parsed.title == HOSTILE_CLEAN
    assert story.title == HOSTILE_CLEAN
    assert story.author == HOSTILE_CLEAN
    assert " ".join(story.summary.split()) == HOSTILE_CLEAN
    assert " ".join(story.content.split()) == HOSTILE_CLEAN
    for _, value in string_fields(parsed):
        _assert_clean(value)


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_hostile_xml_feed_is_sanitised(kind: str) -> None:
    # ESC and BEL are not allowed in XML 1.0, so this also goes through
    # feedparser's fallback parser, as a broken real-world feed would. feedparser
    # reads C1 characters in XML as windows-1252 (U+0080 becomes a euro sign), so
    # only their absence as controls is asserted here.
    text = HOSTILE
    if kind == "rss":
        body = rss(
            f"<item><guid>g</guid><title>{text}</title><dc:creator>{text}</dc:creator>"
            f"<description>{text}</description></item>",
            channel=f"<title>{text}</title>",
        )
    else:
        body = atom(
            f"<entry><id>urn:1</id><title>{text}</title><author><name>{text}</name></author>"
            f"<summary>{text}</summary></entry>",
            head=f"<title>{text}</title>",
        )
    parsed = parse(body)
    story = parsed.stories[0]
    for value in (story.title, story.author, parsed.title, html_to_text(story.summary)):
        assert value.startswith("Red evil iso "), repr(value)
        assert "link" in value
        for leftover in ("[31m", "[0m", "]8;;", "evil.example", "\u202e", "\u2066"):
            assert leftover not in value, repr(value)
    for _, value in string_fields(parsed):
        _assert_clean(value)


def test_bidi_and_c1_in_well_formed_xml_are_removed() -> None:
    """U+202E and C1 characters are legal in XML 1.0: the strict parser keeps them."""
    body = rss(
        "<item><guid>g</guid><title>invoice\u202efdp.exe</title>"
        "<dc:creator>\u2067Ann\u2069\u0085Lee</dc:creator>"
        "<description>one\u009b31mtwo</description></item>"
    )
    story = parse(body).stories[0]
    assert story.title == "invoicefdp.exe"
    assert story.author.startswith("Ann")
    assert story.author.endswith("Lee")
    assert "one" in story.summary
    assert "two" in story.summary
    for value in (story.title, story.author, story.summary):
        _assert_clean(value)


def test_control_characters_in_links_and_keys_are_removed() -> None:
    body = json_feed(
        [{"id": "id\x1b[2J-1\u202e", "url": "https://t.example/\x9bpath", "title": "t"}]
    )
    story = parse(body).stories[0]
    assert story.key == "id-1"
    _assert_clean(story.link)
    assert story.link.startswith("https://t.example/")


# --- dates -----------------------------------------------------------------------------


def test_missing_date_is_flagged() -> None:
    story = parse(rss("<item><guid>g</guid><title>t</title></item>")).stories[0]
    assert story.published is None
    assert story.date_flag is DateFlag.MISSING


@pytest.mark.parametrize(
    "item",
    [
        "<pubDate>Fri, 01 Jan 2100 00:00:00 GMT</pubDate>",
        "<pubDate>Mon, 01 Jun 2026 12:00:01 GMT</pubDate>",
    ],
)
def test_future_date_is_clamped_to_now(item: str) -> None:
    story = parse(rss(f"<item><guid>g</guid><title>t</title>{item}</item>")).stories[0]
    assert story.published == NOW
    assert story.date_flag is DateFlag.FUTURE


def test_future_is_relative_to_the_given_now() -> None:
    item = "<item><guid>g</guid><title>t</title><pubDate>Fri, 01 Jan 2100 00:00:00 GMT</pubDate>"
    later = datetime(2200, 1, 1, tzinfo=UTC)
    story = parse(rss(item + "</item>"), now=later).stories[0]
    assert story.published == datetime(2100, 1, 1, tzinfo=UTC)
    assert story.date_flag is DateFlag.OK


def test_date_equal_to_now_is_not_future() -> None:
    body = json_feed([{"id": "1", "date_published": NOW.isoformat()}])
    story = parse(body).stories[0]
    assert story.published == NOW
    assert story.date_flag is DateFlag.OK


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            rss("<item><guid>g</guid><pubDate>Thu, 01 Jan 1970 00:00:00 GMT</pubDate></item>"),
            datetime(1970, 1, 1, tzinfo=UTC),
        ),
        (
            rss("<item><guid>g</guid><pubDate>Wed, 31 Dec 1969 23:59:59 GMT</pubDate></item>"),
            datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
        ),
        (
            atom("<entry><id>urn:1</id><updated>1901-03-04T05:06:07+01:00</updated></entry>"),
            datetime(1901, 3, 4, 4, 6, 7, tzinfo=UTC),
        ),
        (
            json_feed([{"id": "1", "date_published": "1800-02-03T04:05:06-02:00"}]),
            datetime(1800, 2, 3, 6, 5, 6, tzinfo=UTC),
        ),
    ],
)
def test_dates_before_1970(body: bytes, expected: datetime) -> None:
    story = parse(body).stories[0]
    assert story.published == expected
    assert story.published.utcoffset() == timedelta(0)
    assert story.date_flag is DateFlag.OK


@pytest.mark.parametrize("value", ["sometime after lunch", ""])
def test_unparseable_rss_date_is_missing_without_warnings(value: str) -> None:
    body = rss(f"<item><guid isPermaLink='false'>g</guid><pubDate>{value}</pubDate></item>")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        story = parse(body).stories[0]
    assert story.published is None
    assert story.date_flag is DateFlag.MISSING
    assert [str(w.message)[:60] for w in caught] == []


def test_json_feed_naive_and_invalid_dates() -> None:
    body = json_feed(
        [
            {"id": "a", "date_published": "not a date"},
            {"id": "b", "date_published": "2026-02-30T00:00:00Z"},
            {"id": "c", "date_published": 1714000000},
        ]
    )
    for story in parse(body).stories:
        assert story.published is None
        assert story.date_flag is DateFlag.MISSING


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"], ids=["year1", "year9999"]
)
def test_json_feed_date_out_of_range(value: str) -> None:
    parsed = parse(json_feed([{"id": "1", "title": "t", "date_published": value}]))
    story = parsed.stories[0]
    assert (story.published, story.date_flag) in {
        (None, DateFlag.MISSING),
        (NOW, DateFlag.FUTURE),
    }


# --- keys --------------------------------------------------------------------------------


def test_key_prefers_guid_then_link() -> None:
    body = rss(
        "<item><title>a</title><link>https://t.example/a</link>"
        "<guid isPermaLink='false'>urn:a</guid></item>"
        "<item><title>b</title><link>https://t.example/b</link></item>"
    )
    assert [s.key for s in parse(body).stories] == ["urn:a", "https://t.example/b"]


def test_key_without_guid_or_link_is_a_stable_content_hash() -> None:
    def key(item: str) -> str:
        (story,) = parse(rss(f"<item>{item}</item>")).stories
        return story.key

    base = key("<title>Alpha</title><description>Body one.</description>")
    assert base.startswith("sha256:")
    assert HEX64.fullmatch(base.removeprefix("sha256:"))
    assert base == key("<title>Alpha</title><description>Body one.</description>")
    assert base != key("<title>Beta</title><description>Body one.</description>")
    assert base != key("<title>Alpha</title><description>Body two.</description>")
    other_feed = parse(
        rss("<item><title>Alpha</title><description>Body one.</description></item>"),
        url="https://elsewhere.example/rss",
    )
    assert other_feed.stories[0].key == base


def test_json_feed_hash_key_depends_on_content() -> None:
    first = parse(json_feed([{"title": "Alpha", "content_text": "one"}])).stories[0].key
    second = parse(json_feed([{"title": "Alpha", "content_text": "two"}])).stories[0].key
    assert first.startswith("sha256:")
    assert first != second


def test_duplicate_guids_first_wins() -> None:
    body = rss(
        "<item><guid isPermaLink='false'>dup</guid><title>First</title></item>"
        "<item><guid isPermaLink='false'>other</guid><title>Other</title></item>"
        "<item><guid isPermaLink='false'>dup</guid><title>Second</title></item>"
    )
    stories = parse(body).stories
    assert [(s.key, s.title) for s in stories] == [("dup", "First"), ("other", "Other")]


def test_identical_items_without_ids_are_kept_once() -> None:
    item = "<item><title>Same</title><description>Same.</description></item>"
    assert len(parse(rss(item * 3)).stories) == 1


def test_duplicate_json_feed_ids_first_wins() -> None:
    body = json_feed([{"id": 7, "title": "First"}, {"id": "7", "title": "Second"}])
    stories = parse(body).stories
    assert [(s.key, s.title) for s in stories] == [("7", "First")]


@pytest.mark.parametrize(
    "body",
    [
        rss("<item><guid>12345</guid><title>t</title><link>https://a.example/p/1</link></item>"),
        atom("<entry><id>post-7</id><title>t</title></entry>"),
    ],
    ids=["rss-guid", "atom-id"],
)
def test_key_does_not_depend_on_the_feed_url(body: bytes) -> None:
    """A guid like "12345" (RSS 2.0 defaults isPermaLink to true) must not become
    "http://a.example/12345": when the feed moves to https, every story would get a
    new key and come back as NEW."""
    before = parse(body, url="http://a.example/feed").stories[0].key
    after = parse(body, url="https://a.example/feed").stories[0].key
    assert before == after
    assert before in {"12345", "post-7"}


def test_long_guid_is_hashed() -> None:
    prefix = "urn:long:" + "x" * 600
    exact = "urn:exact:" + "y" * (512 - len("urn:exact:"))
    body = rss(
        f"<item><guid isPermaLink='false'>{prefix}A</guid><title>a</title></item>"
        f"<item><guid isPermaLink='false'>{prefix}B</guid><title>b</title></item>"
        f"<item><guid isPermaLink='false'>{exact}</guid><title>c</title></item>"
    )
    a, b, c = parse(body).stories
    for story in (a, b):
        assert story.key.startswith("sha256:")
        assert HEX64.fullmatch(story.key.removeprefix("sha256:"))
    assert a.key != b.key, "long keys differing only at the end stay distinct"
    assert c.key == exact, "a 512-character guid is kept as it is"
    again = parse(body).stories
    assert [s.key for s in again] == [a.key, b.key, c.key]


def test_json_feed_numeric_and_boolean_ids() -> None:
    body = json_feed(
        [
            {"id": 12345, "url": "https://t.example/n", "title": "number"},
            {"id": True, "url": "https://t.example/bool", "title": "boolean"},
            {"id": "", "url": "https://t.example/empty", "title": "empty"},
        ]
    )
    keys = [s.key for s in parse(body).stories]
    assert keys == ["12345", "https://t.example/bool", "https://t.example/empty"]


# --- links and bases -----------------------------------------------------------------


def test_atom_relative_links_resolve_against_xml_base_and_url() -> None:
    body = atom(
        '<entry><id>urn:1</id><link href="one.html"/></entry>'
        '<entry xml:base="https://base.example/dir/"><id>urn:2</id><link href="two.html"/>'
        "</entry>"
        '<entry xml:base="sub/"><id>urn:3</id><link href="../three.html"/></entry>',
        head='<title>T</title><link href="/home"/>',
    )
    parsed = parse(body, url="https://feeds.example/a/feed.atom")
    assert parsed.site_url == "https://feeds.example/home"
    assert [s.link for s in parsed.stories] == [
        "https://feeds.example/a/one.html",
        "https://base.example/dir/two.html",
        "https://feeds.example/a/three.html",
    ]


def test_content_location_header_is_the_base() -> None:
    body = rss("<item><guid>g</guid><link>post/1</link></item>")
    parsed = parse(body, {"content-location": "https://cdn.example/x/feed.xml"})
    assert parsed.stories[0].link == "https://cdn.example/x/post/1"


@pytest.mark.parametrize(
    "location",
    ["javascript:alert(1);", "data:text/html,x", "file:///etc/", "JavaScript://x/", "http://["],
)
def test_content_location_that_is_not_a_web_address_is_ignored(location: str) -> None:
    body = rss("<link>/home</link><item><guid>g</guid><link>/post/1</link></item>")
    parsed = parse(body, {"content-location": location})
    assert parsed.stories[0].link == "https://feeds.example/post/1"
    assert parsed.site_url == "https://feeds.example/home"


def test_json_feed_relative_urls() -> None:
    body = json_feed(
        [
            {"id": "1", "url": "posts/1"},
            {"id": "2", "external_url": "/ext/2"},
        ],
        home_page_url="/",
    )
    parsed = parse(body, url="https://j.example/feeds/feed.json")
    assert parsed.site_url == "https://j.example/"
    assert [s.link for s in parsed.stories] == [
        "https://j.example/feeds/posts/1",
        "https://j.example/ext/2",
    ]


# --- authors -------------------------------------------------------------------------


def test_json_feed_author_forms() -> None:
    version_1 = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1",
            "items": [{"id": "1", "author": {"name": "One Author"}}],
        }
    ).encode()
    assert parse(version_1).stories[0].author == "One Author"
    version_11 = json_feed(
        [
            {"id": "a", "authors": [{"name": "First"}, {"name": "Second"}]},
            {"id": "b", "authors": [], "author": {"name": "Legacy"}},
            {"id": "c", "authors": [{"url": "https://x.example"}]},
            {"id": "d", "author": "just a string"},
        ]
    )
    assert [s.author for s in parse(version_11).stories] == ["First", "Legacy", "", ""]


@pytest.mark.parametrize("kind", ["atom", "json10", "json11"])
def test_feed_author_applies_to_items_without_one(kind: str) -> None:
    """RFC 4287 4.2.1 and JSON Feed 1.0/1.1 both say an entry without an author has
    the feed's author."""
    if kind == "atom":
        body = atom(
            "<entry><id>urn:1</id><title>t</title></entry>",
            head="<title>T</title><author><name>Feed Person</name></author>",
        )
    elif kind == "json10":
        body = json.dumps(
            {
                "version": "https://jsonfeed.org/version/1",
                "author": {"name": "Feed Person"},
                "items": [{"id": "1"}],
            }
        ).encode()
    else:
        body = json_feed([{"id": "1"}], authors=[{"name": "Feed Person"}])
    assert parse(body).stories[0].author == "Feed Person"


# --- ttl -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [("60", 3600), (" 15 ", 900), ("0", 0), ("soon", None), ("-5", None), ("1.5", None)],
)
def test_ttl_is_minutes(ttl: str, seconds: int | None) -> None:
    parsed = parse(rss("<item><guid>g</guid></item>", channel=f"<title>T</title><ttl>{ttl}</ttl>"))
    assert parsed.ttl_seconds == seconds


def test_no_ttl() -> None:
    assert parse(rss("")).ttl_seconds is None
    assert parse(atom("")).ttl_seconds is None
    assert parse(json_feed([])).ttl_seconds is None


@pytest.mark.parametrize("ttl", ["²", "³⁰", "①"])
def test_ttl_with_unicode_digits_is_ignored(ttl: str) -> None:
    parsed = parse(rss("<item><guid>g</guid></item>", channel=f"<title>T</title><ttl>{ttl}</ttl>"))
    assert parsed.ttl_seconds is None
    assert len(parsed.stories) == 1


# --- charsets ----------------------------------------------------------------------------


def test_latin1_declared_only_in_the_header() -> None:
    text = rss("<item><guid>g</guid><title>Crème brûlée à la carte</title></item>").decode()
    body = text.replace('<?xml version="1.0" encoding="utf-8"?>\n', "").encode("iso-8859-1")
    assert b"\xe8" in body
    parsed = parse(body, {"content-type": "application/rss+xml; charset=ISO-8859-1"})
    assert parsed.stories[0].title == "Crème brûlée à la carte"


def test_header_charset_for_a_cyrillic_feed() -> None:
    text = rss("<item><guid>g</guid><title>Привет, мир</title></item>").decode()
    body = text.replace('<?xml version="1.0" encoding="utf-8"?>\n', "").encode("windows-1251")
    parsed = parse(body, {"content-type": "text/xml; charset=windows-1251"})
    assert parsed.stories[0].title == "Привет, мир"


def test_utf8_bom_is_accepted() -> None:
    body = b"\xef\xbb\xbf" + rss("<item><guid>g</guid><title>\xc3\xa9t\xc3\xa9</title></item>")
    assert parse(body).stories[0].title == "été"
    json_body = b"\xef\xbb\xbf" + json_feed([{"id": "1", "title": "été"}])
    assert parse(json_body).stories[0].title == "été"


def test_json_feed_lone_surrogates_do_not_survive() -> None:
    """A JSON "\\ud800" escape decodes to a lone surrogate, which cannot be written as
    UTF-8: storing such a title makes Store.apply_update raise UnicodeEncodeError."""
    body = b'{"version": "https://jsonfeed.org/version/1.1", "title": "T\\udfff",'
    body += b' "items": [{"id": "1", "title": "a\\ud800b", "content_text": "\\udc00"}]}'
    parsed = parse(body)
    unencodable = []
    for name, value in string_fields(parsed):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            unencodable.append(name)
    assert unencodable == []
    assert parsed.stories[0].key == "1"


# --- documents that are not feeds -----------------------------------------------------------


NOT_FEEDS = {
    "empty": (b"", {}),
    "whitespace": (b" \r\n\t  \n", {}),
    "bom only": (b"\xef\xbb\xbf", {}),
    "html page": (
        b"<!DOCTYPE html>\n<html><head><title>Home</title></head><body><p>Hi</p></body></html>",
        {"content-type": "text/html; charset=utf-8"},
    ),
    "html without doctype": (b"<!-- generated -->\n<html lang='en'><body>x</body></html>", {}),
    "html as xml": (b"<html><head><title>x</title></head><body></body></html>", {}),
    "json object": (b'{"name": "not a feed", "items": [1, 2]}', {}),
    "json wrong version": (b'{"version": "2.0", "items": []}', {}),
    "json array": (b"[1, 2, 3]", {"content-type": "application/json"}),
    "json string": (b'"https://jsonfeed.org/version/1.1"', {"content-type": "application/json"}),
    "invalid json": (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', {}),
    "invalid utf-8 json": (b'{"version": "\xff\xfe"}', {}),
    "plain text": (b"Just some words.\nNothing else.\n", {"content-type": "text/plain"}),
    "other xml": (b'<?xml version="1.0"?><note><to>A</to><body>B</body></note>', {}),
}


@pytest.mark.parametrize(("body", "headers"), NOT_FEEDS.values(), ids=NOT_FEEDS.keys())
def test_not_a_feed(body: bytes, headers: dict[str, str]) -> None:
    with pytest.raises(NotAFeedError) as caught:
        parse_feed(body, headers, "https://feeds.example/x", NOW)
    assert isinstance(caught.value, ParseError)
    assert str(caught.value).startswith("not a feed")


def test_json_feed_without_items_is_a_parse_error() -> None:
    body = b'{"version": "https://jsonfeed.org/version/1.1", "title": "No items"}'
    with pytest.raises(ParseError):
        parse(body)


@pytest.mark.parametrize(
    "body",
    [
        rss(""),
        atom(""),
        json_feed([]),
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        b' xmlns="http://purl.org/rss/1.0/"><channel><title>T</title></channel></rdf:RDF>',
    ],
    ids=["rss", "atom", "json", "rdf"],
)
def test_feed_with_no_stories_is_valid(body: bytes) -> None:
    parsed = parse(body)
    assert parsed.stories == ()
    assert parsed.title == "T"


def test_broken_xml_that_is_still_a_feed_carries_a_warning() -> None:
    body = rss("<item><guid isPermaLink='false'>g</guid><title>Fish &chips</title></item>")
    parsed = parse(body)
    assert [s.key for s in parsed.stories] == ["g"]
    assert parsed.warnings
    assert all(warning for warning in parsed.warnings)


# --- is_html and find_feed_links --------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        (b"<!DOCTYPE html><html><body></body></html>", {}, True),
        (b"\xef\xbb\xbf  <!-- x -->\n<HTML>", {}, True),
        (b"<head><title>x</title></head>", {}, True),
        (rss(""), {"content-type": "text/html; charset=utf-8"}, True),
        (b"<rss/>", {"content-type": "application/xhtml+xml"}, True),
        (rss(""), {}, False),
        (rss(""), {"content-type": "application/rss+xml"}, False),
        (atom(""), {}, False),
        (json_feed([]), {"content-type": "application/feed+json"}, False),
        (b"", {}, False),
        (b"<htmlish/>", {}, False),
    ],
)
def test_is_html(body: bytes, headers: dict[str, str], expected: bool) -> None:
    assert is_html(body, headers) is expected


PAGE = b"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>A page</title>
%(base)s
<link rel="stylesheet" type="text/css" href="style.css">
<link rel="alternate" type="text/html" hreflang="fr" href="/fr/">
<link rel="alternate" type="application/rss+xml" title="Posts (RSS)" href="feed.rss">
<link rel="alternate" type="application/atom+xml" title="Posts (Atom)"
      href="https://cdn.example/atom.xml">
<link rel="icon" type="image/png" href="icon.png">
<link rel="alternate" type="application/feed+json" title="Posts (JSON)" href="/feed.json">
<link rel="alternate" type="application/pdf" href="print.pdf">
<link rel="alternate" type="application/rss+xml" title="Same again" href="feed.rss">
<link rel="ALTERNATE" type="Application/RSS+XML" title="Comments" href="comments.rss?a=1&amp;b=2">
<link rel="alternate" type="application/rss+xml" title="No href">
</head>
<body><a rel="alternate" type="application/rss+xml" href="body-anchor.rss">an anchor</a></body>
</html>
"""


def test_find_feed_links_relative_to_page() -> None:
    page = PAGE % {b"base": b""}
    links = find_feed_links(
        page, {"content-type": "text/html"}, "https://site.example/blog/post.html"
    )
    assert links == [
        FeedLink("https://site.example/blog/feed.rss", "application/rss+xml", "Posts (RSS)"),
        FeedLink("https://cdn.example/atom.xml", "application/atom+xml", "Posts (Atom)"),
        FeedLink("https://site.example/feed.json", "application/feed+json", "Posts (JSON)"),
        FeedLink(
            "https://site.example/blog/comments.rss?a=1&b=2", "application/rss+xml", "Comments"
        ),
    ]


def test_find_feed_links_honours_base_href() -> None:
    page = PAGE % {b"base": b'<base href="/static/v2/">'}
    links = find_feed_links(page, {}, "https://site.example/blog/post.html")
    assert [link.url for link in links] == [
        "https://site.example/static/v2/feed.rss",
        "https://cdn.example/atom.xml",
        "https://site.example/feed.json",
        "https://site.example/static/v2/comments.rss?a=1&b=2",
    ]


def test_find_feed_links_with_absolute_base() -> None:
    page = PAGE % {b"base": b'<base href="https://other.example/root/">'}
    links = find_feed_links(page, {}, "https://site.example/blog/post.html")
    assert links[0].url == "https://other.example/root/feed.rss"


def test_find_feed_links_none() -> None:
    page = b"<html><head><link rel='stylesheet' href='a.css'></head><body>x</body></html>"
    assert find_feed_links(page, {}, "https://site.example/") == []


def test_find_feed_links_cleans_titles() -> None:
    page = (
        b'<link rel="alternate" type="application/atom+xml" href="/a"'
        b' title="News\x1b[2J \xe2\x80\xaeFeed">'
    )
    (link,) = find_feed_links(page, {}, "https://site.example/x")
    assert link.title == "News Feed"


# --- properties ---------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
)


def _check_result(body: bytes, headers: dict[str, str]) -> None:
    try:
        parsed = parse_feed(body, headers, "https://feeds.example/p/feed", NOW)
    except ParseError:
        return
    assert isinstance(parsed, ParsedFeed)
    for name, value in string_fields(parsed):
        assert isinstance(value, str)
        assert not FORBIDDEN.search(value), f"{name} = {value!r}"
    for story in parsed.stories:
        assert isinstance(story, ParsedStory)
        assert story.key
        assert story.published is None or story.published <= NOW


@PROPERTY_SETTINGS
@given(
    body=st.binary(max_size=2048),
    content_type=st.sampled_from(
        ["", "application/rss+xml", "application/json", "text/html", "text/xml; charset=utf-16"]
    ),
)
def test_arbitrary_bytes(body: bytes, content_type: str) -> None:
    _check_result(body, {"content-type": content_type} if content_type else {})


TEXT = st.text(max_size=300)


@PROPERTY_SETTINGS
@given(title=TEXT, summary=TEXT, author=TEXT, guid=TEXT, link=TEXT, date=TEXT)
def test_arbitrary_text_in_rss(
    title: str, summary: str, author: str, guid: str, link: str, date: str
) -> None:
    body = (
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>{title}</title><link>{link}</link>"
        f"<item><title>{title}</title><guid>{guid}</guid><link>{link}</link>"
        f"<description>{summary}</description><dc:creator>{author}</dc:creator>"
        f"<pubDate>{date}</pubDate></item>"
        f"<item><title><![CDATA[{summary}]]></title></item></channel></rss>"
    )
    _check_result(body.encode("utf-8"), {})


@PROPERTY_SETTINGS
@given(title=TEXT, summary=TEXT, author=TEXT, guid=TEXT, link=TEXT, date=TEXT)
def test_arbitrary_text_in_atom(
    title: str, summary: str, author: str, guid: str, link: str, date: str
) -> None:
    quoted = link.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    body = (
        '<feed xmlns="http://www.w3.org/2005/Atom">'
        f'<title type="html">{title}</title><id>{guid}</id>'
        f'<entry><title type="text">{title}</title><id>{guid}</id><link href="{quoted}"/>'
        f"<author><name>{author}</name></author><updated>{date}</updated>"
        f'<summary type="html">{summary}</summary><content>{summary}</content></entry></feed>'
    )
    _check_result(body.encode("utf-8"), {})


@PROPERTY_SETTINGS
@given(title=TEXT, summary=TEXT, author=TEXT, key=st.one_of(TEXT, st.integers()), link=TEXT)
def test_arbitrary_text_in_json_feed(
    title: str, summary: str, author: str, key: str | int, link: str
) -> None:
    body = json_feed(
        [
            {
                "id": key,
                "title": title,
                "url": link,
                "summary": summary,
                "content_html": summary,
                "authors": [{"name": author}],
            }
        ],
        title=title,
        home_page_url=link,
    )
    _check_result(body, {})


def test_titles_authors_and_links_are_capped() -> None:
    long = "word " * 1000
    body = rss(
        f"<item><guid>g</guid><title>{long}</title><author>{long}</author>"
        f"<link>https://example.org/{'a' * 5000}</link><description>{'x' * 1_200_000}"
        "</description></item>"
    ).replace(b"<channel>", f"<channel><title>{long}</title>".encode())
    parsed = parse(body)
    (story,) = parsed.stories
    assert len(story.title) == len(parsed.title) == 1000
    assert story.title.endswith("word…") and parsed.title.endswith("word…")
    assert len(story.author) <= 1000
    assert story.link == ""  # a cut link would lead somewhere else
    assert len(story.summary) == 1_000_000


def test_rss_title_with_tags_is_html_but_atom_text_is_literal() -> None:
    title = "&lt;b&gt;Bold&lt;/b&gt; &lt;script&gt;alert(1)&lt;/script&gt; &amp;amp; co"
    assert parse(rss(f"<item><guid>g</guid><title>{title}</title></item>")).stories[0].title == (
        "Bold & co"
    )
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>g</id>'
        f'<title type="text">{title}</title></entry></feed>'
    ).encode()
    assert parse(atom).stories[0].title == "<b>Bold</b> <script>alert(1)</script> &amp; co"


def test_feed_link_discovery_takes_linear_time() -> None:
    page = (
        b'<!doctype html><html><head><link rel="alternate" type="application/rss+xml" '
        b'href="/feed.xml"></head><body>' + b"<a b='" * 1_000_000
    )
    started = time.perf_counter()
    links = find_feed_links(page, {}, "https://example.org/")
    assert time.perf_counter() - started < 5
    assert [link.url for link in links] == ["https://example.org/feed.xml"]


def test_a_backslash_in_a_web_link_is_a_slash_as_browsers_read_it() -> None:
    body = rss("<item><guid>g</guid><link>https://evil.example\\@bank.example/</link></item>")
    assert parse(body).stories[0].link == "https://evil.example/@bank.example/"


def test_one_document_gives_at_most_max_stories() -> None:
    from storyfeed import parse as parse_module

    items = [{"id": str(n)} for n in range(parse_module.MAX_STORIES + 5)]
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": items}).encode()
    stories = parse(body).stories
    assert len(stories) == parse_module.MAX_STORIES
    assert stories[0].key == "0"
