"""OPML: the parser and writer (opml.py), and `import`/`export` end to end."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lxml import etree
from pytest_httpserver import HTTPServer
from werkzeug import Response

from conftest import DATA, NOW, Result
from storyfeed import opml
from storyfeed.errors import InvalidOPMLError
from storyfeed.models import Feed, FeedStatus
from storyfeed.text import clean_line

Run = Callable[..., Result]
OPML = DATA / "opml"


def outline(url: str, title: str = "", extra: str = "") -> str:
    return f'<outline type="rss" text="{title}" xmlUrl="{url}" {extra}/>'


def document(body: str, head: str = "<head><title>t</title></head>") -> bytes:
    prolog = '<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">'
    return f"{prolog}{head}<body>{body}</body></opml>".encode()


def parsed(path: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(f.url, f.title, f.tags) for f in opml.parse_opml(path.read_bytes())]


# --- the exports of other readers -----------------------------------------------------


def test_newsboat_export_category_attribute_gives_tags() -> None:
    assert parsed(OPML / "newsboat.opml") == [
        ("https://lwn.example.net/headlines/rss", "LWN.net", ("linux", "news")),
        ("https://blog.example.org/feed.atom", "A Blog & Its Author", ()),
        ("http://planet.example.com/rss20.xml", "Planet Example", ("linux",)),
    ]


def test_feedly_export_a_feed_in_two_folders_appears_in_each() -> None:
    assert parsed(OPML / "feedly.opml") == [
        ("https://ars.example.com/feed/", "Ars Example", ("Tech",)),
        ("https://news.example.com/rss", "Hacker Example", ("Tech",)),
        ("https://news.example.com/rss", "Hacker Example", ("Must read",)),
        ("https://nature.example.org/subjects/news.rss", "Nature Example", ("Science",)),
    ]


def test_inoreader_export_nested_folders_give_every_level_as_a_tag() -> None:
    assert parsed(OPML / "inoreader.xml") == [
        ("https://tech.example.de/rss.xml", "Über Tech", ("News", "Tech")),
        ("https://world.example.com/feeds/all.rss", "World", ("News",)),
        ("https://talk.example.fm/rss", "Talk Show", ("Podcasts",)),
    ]


def test_miniflux_export_categories_and_an_empty_one() -> None:
    feeds = opml.parse_opml((OPML / "miniflux.opml").read_bytes())
    assert [(f.title, f.tags) for f in feeds] == [
        ("Miniflux", ("All",)),
        ("Go Example Blog", ("All",)),
        ("xkcd example", ("Comics",)),
    ]
    assert feeds[0].site_url == "https://miniflux.example.app/"


def test_freshrss_export_namespaced_attributes_and_scraped_sources() -> None:
    feeds = opml.parse_opml((OPML / "freshrss.opml.xml").read_bytes())
    assert [(f.title, f.tags, bool(f.problem)) for f in feeds] == [
        ("FreshRSS releases", ("Uncategorized",), False),
        ("Scraped page", ("Uncategorized",), True),
        ("Python Insider", ("Programming",), False),
        ("Bad scheme", ("Programming",), False),  # the importer refuses its URL
    ]
    assert "not a feed" in feeds[1].problem


def test_declared_encodings_and_the_opml_namespace_are_understood() -> None:
    latin = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<opml version="1.1">'
        '<body><outline text="Caf\xe9"><outline text="Cr\xe8me" xmlURL="https://a.example/"/>'
        "</outline></body></opml>"
    ).encode("latin-1")
    spaced = (
        '\ufeff<opml xmlns="http://opml.org/spec2" version="2.0"><head/><body>'
        '<outline text="x" xmlUrl="https://b.example/"/></body></opml>'
    ).encode()
    assert [(f.title, f.tags) for f in opml.parse_opml(latin)] == [("Crème", ("Café",))]
    assert [f.url for f in opml.parse_opml(spaced)] == ["https://b.example/"]


# --- malformed and hostile files ------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not well-formed XML"),
        (b'<opml version="2.0"><body><outline xmlUrl="https://a.example/"/>', "well-formed"),
        (b"<rss><channel/></rss>", "not an OPML file"),
        (b'<opml version="2.0"><head/></opml>', "without a <body>"),
        (b"\xff\xfe\x00garbage", "not well-formed XML"),
    ],
)
def test_malformed_files_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidOPMLError, match=message):
        opml.parse_opml(data)


BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE opml [\n <!ENTITY lol "lol">\n'
    + b"".join(
        f' <!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">\n'.encode()
        for i in range(1, 10)
    )
    + b']>\n<opml version="1.0"><body><outline text="&lol9;" xmlUrl="https://a.example/&lol9;"/>'
    b"</body></opml>"
)


def test_billion_laughs_is_refused_at_once() -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidOPMLError):
        opml.parse_opml(BILLION_LAUGHS)
    assert time.perf_counter() - started < 1


def test_an_external_entity_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the-secret")
    data = (
        f'<?xml version="1.0"?>\n<!DOCTYPE opml [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>\n'
        '<opml version="2.0"><body><outline text="x&xxe;" xmlUrl="https://a.example/"/>'
        "</body></opml>"
    ).encode()
    with pytest.raises(InvalidOPMLError) as raised:
        opml.parse_opml(data)
    assert "the-secret" not in str(raised.value)


def test_a_doctype_without_entities_is_refused_too() -> None:
    data = b"<!DOCTYPE opml [<!ELEMENT opml ANY>]><opml><body/></opml>"
    with pytest.raises(InvalidOPMLError, match="DTD"):
        opml.parse_opml(data)


def test_a_file_over_the_size_cap_is_refused_unread() -> None:
    data = document(" " * opml.MAX_BYTES)
    with pytest.raises(InvalidOPMLError, match="larger than 20 MiB"):
        opml.parse_opml(data)


def test_too_many_outlines_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(opml, "MAX_OUTLINES", 50)
    body = "".join(outline(f"https://a.example/{i}", "x") for i in range(51))
    with pytest.raises(InvalidOPMLError, match="more than 50 outlines"):
        opml.parse_opml(document(body))


def test_names_and_tags_are_sanitised_trimmed_and_capped() -> None:
    body = (
        '<outline text="  \u202eEvil\u202c&#x9b;31m ">'
        f'<outline text="{"t" * 150}">'
        + outline("https://a.example/", "Na&#x9d;8;;x&#x9c;me", 'category="  ,/ / ,one/Two, ONE"')
        + "</outline></outline><outline text='   '>"
        + outline("https://b.example/", "B")
        + "</outline>"
    )
    first, second = opml.parse_opml(document(body))
    assert first.title == "Name"
    assert first.tags == ("Evil", "t" * 100, "one", "Two")
    assert second.tags == ()


def test_a_comma_in_a_folder_or_category_becomes_a_space() -> None:
    body = (
        '<outline text="News, Politics">'
        + outline("https://a.example/", "A", 'category="/World,Europe/Local,,Elections ,"')
        + "</outline>"
    )
    (found,) = opml.parse_opml(document(body))
    assert found.tags == ("News Politics", "World", "Europe", "Local", "Elections")
    assert opml.clean_tag(" a ,b,, c ") == "a b c"


def test_storyfeed_attributes_are_read_by_namespace_not_by_prefix() -> None:
    ns = f'xmlns:sf="{opml.NAMESPACE}" xmlns:other="https://other.example/"'
    body = (
        outline("https://a.example/", "A", 'sf:interval="21600" sf:paused="YES" sf:notify="off"')
        + outline("https://b.example/", "B", 'sf:title="feed" sf:notify="maybe"')
        + outline("https://c.example/", "C", 'other:interval="60" other:title="feed" paused="yes"')
    )
    data = document(body).replace(b'<opml version="2.0">', f'<opml version="2.0" {ns}>'.encode())
    a, b, c = opml.parse_opml(data)
    assert (a.interval, a.paused, a.notify, a.title_is_feeds) == ("21600", True, False, False)
    assert (b.interval, b.paused, b.notify, b.title_is_feeds) == ("", None, None, True)
    assert (c.interval, c.paused, c.notify, c.title_is_feeds) == ("", None, None, False)


# --- the writer -----------------------------------------------------------------------


def test_export_has_a_folder_per_tag_and_untagged_feeds_at_the_top() -> None:
    feeds = [
        Feed(id=1, url="https://a.example/feed", user_title="A", tags=("News", "tech")),
        Feed(id=2, url="https://b.example/rss", feed_title="B", site_url="https://b.example/"),
        Feed(id=3, url="https://c.example/atom", tags=("Tech",)),
    ]
    root = etree.fromstring(opml.write_opml(feeds, NOW))
    assert root.get("version") == "2.0"
    assert root.findtext("head/dateCreated") == "Mon, 01 Jun 2026 12:00:00 GMT"
    body = root.find("body")
    assert body is not None
    shape = [
        (o.get("text"), [(c.get("text"), c.get("xmlUrl"), c.get("type")) for c in o]) for o in body
    ]
    assert shape == [
        ("News", [("A", "https://a.example/feed", "rss")]),
        ("tech", [("A", "https://a.example/feed", "rss"), (
            "https://c.example/atom", "https://c.example/atom", "rss")]),
        ("B", []),
    ]  # fmt: skip
    assert body[2].get("htmlUrl") == "https://b.example/"
    assert body[0][0].get("htmlUrl") is None


def test_export_drops_what_xml_cannot_hold() -> None:
    feed = Feed(id=1, url="https://a.example/", user_title="A\ufffeB\uffff", tags=("t\ufffe",))
    (found,) = opml.parse_opml(opml.write_opml([feed], NOW))
    assert (found.title, found.tags) == ("AB", ("t",))


NAMES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
    max_size=20,
)


FEEDS = st.builds(
    lambda user_title, feed_title, tags, interval, paused, notify: Feed(
        id=0,
        url="",
        user_title=user_title,
        feed_title=feed_title,
        tags=opml.merge_tags(tags),
        refresh_interval=interval,
        status=FeedStatus.PAUSED if paused else FeedStatus.ACTIVE,
        notify=notify,
    ),
    NAMES,
    NAMES,
    st.lists(NAMES.filter(lambda t: t.strip()), max_size=3),
    st.none() | st.integers(min_value=60, max_value=30 * 24 * 60 * 60),
    st.booleans(),
    st.booleans(),
)


@settings(max_examples=60, deadline=None)
@example(
    feeds=[
        Feed(id=0, url="", user_title="A\ufffe", tags=opml.merge_tags(["b\uffff", "\u202e", "B"])),
        Feed(id=0, url="", feed_title="Own", tags=("x",), refresh_interval=60, notify=False),
        Feed(id=0, url="", user_title="\x9d0\x07", status=FeedStatus.PAUSED),
    ]
)
@given(feeds=st.lists(FEEDS, max_size=8))
def test_write_then_parse_gives_back_every_feed_title_tag_and_setting(feeds: list[Feed]) -> None:
    written = [
        replace(feed, id=i, url=f"https://feeds.example/{i}") for i, feed in enumerate(feeds)
    ]
    back: dict[str, tuple[opml.OPMLFeed, set[str]]] = {}
    for found in opml.parse_opml(opml.write_opml(written, NOW)):
        _, tags = back.setdefault(found.url, (found, set()))
        tags.update(found.tags)

    def kept(text: str) -> str:
        return opml.clean_tag(opml._NOT_XML.sub("", opml.clean_tag(text)))

    def settings_of(f: opml.OPMLFeed) -> tuple[str, bool | None, bool | None, bool]:
        return (f.interval, f.paused, f.notify, f.title_is_feeds)

    assert {
        url: (f.title, settings_of(f), {t.casefold() for t in tags})
        for url, (f, tags) in back.items()
    } == {
        f.url: (
            _name_kept(f),
            (
                "" if f.refresh_interval is None else str(f.refresh_interval),
                True if f.status is FeedStatus.PAUSED else None,
                None if f.notify else False,
                not f.user_title,
            ),
            {kept(t).casefold() for t in f.tags} - {""},
        )
        for f in written
    }


def _name_kept(feed: Feed) -> str:
    # A user title that cleans to nothing still hides the feed's own (as `feeds` shows it).
    name = clean_line(opml._NOT_XML.sub("", clean_line(feed.user_title or feed.feed_title)))
    return name or feed.url


# --- end to end -----------------------------------------------------------------------


def import_json(run: Run, *args: str) -> dict[str, object]:
    result = run("import", "--json", *args)
    assert result.code == 0, result
    report = json.loads(result.out)
    assert isinstance(report, dict)
    return report


def exported(run: Run) -> list[tuple[str, str, tuple[str, ...]]]:
    """(url, title, tags) of each feed in `storyfeed export`, tags merged by URL."""
    result = run("export")
    assert result.code == 0, result.err
    merged: dict[str, tuple[str, tuple[str, ...]]] = {}
    for found in opml.parse_opml(result.out.encode()):
        title, tags = merged.get(found.url, (found.title, ()))
        merged[found.url] = (title, opml.merge_tags(tags, found.tags))
    return sorted((url, title, tuple(sorted(tags))) for url, (title, tags) in merged.items())


def test_import_then_feeds_shows_them_and_export_their_tags(run: Run) -> None:
    report = import_json(run, str(OPML / "inoreader.xml"))
    assert report == {
        "added": 3,
        "already_subscribed": 0,
        "skipped": 0,
        "tags_applied": 4,
        "dry_run": False,
        "skipped_feeds": [],
    }
    feeds = json.loads(run("feeds", "--json").out)
    assert [(f["title"], f["url"], f["site_url"]) for f in feeds] == [
        ("Über Tech", "https://tech.example.de/rss.xml", "https://tech.example.de/"),
        ("World", "https://world.example.com/feeds/all.rss", "https://world.example.com"),
        ("Talk Show", "https://talk.example.fm/rss", "https://talk.example.fm"),
    ]
    assert all(f["last_success"] is None for f in feeds)  # nothing was fetched
    assert exported(run) == [
        ("https://talk.example.fm/rss", "Talk Show", ("Podcasts",)),
        ("https://tech.example.de/rss.xml", "Über Tech", ("News", "Tech")),
        ("https://world.example.com/feeds/all.rss", "World", ("News",)),
    ]


def test_a_feed_in_two_folders_is_one_feed_with_two_tags(run: Run) -> None:
    report = import_json(run, str(OPML / "feedly.opml"))
    assert (report["added"], report["tags_applied"]) == (3, 4)
    assert ("https://news.example.com/rss", "Hacker Example", ("Must read", "Tech")) in exported(
        run
    )


def test_import_twice_adds_nothing_the_second_time(run: Run) -> None:
    first = import_json(run, str(OPML / "miniflux.opml"))
    second = import_json(run, str(OPML / "miniflux.opml"))
    assert (first["added"], first["already_subscribed"]) == (3, 0)
    assert (second["added"], second["already_subscribed"], second["tags_applied"]) == (0, 3, 0)
    assert len(json.loads(run("feeds", "--json").out)) == 3


def test_any_spelling_of_a_subscribed_url_is_already_subscribed(run: Run, tmp_path: Path) -> None:
    import_json(run, str(OPML / "newsboat.opml"))
    respelled = document(
        outline("HTTPS://LWN.EXAMPLE.NET:443/headlines/./rss#top", "again")
        + outline("feed://planet.example.com/rss20.xml", "as feed:")
    )
    path = tmp_path / "again.opml"
    path.write_bytes(respelled)
    report = import_json(run, str(path))
    assert (report["added"], report["already_subscribed"]) == (0, 2)


def test_invalid_urls_are_skipped_with_a_reason_each(run: Run) -> None:
    result = run("import", str(OPML / "freshrss.opml.xml"))
    assert result.code == 0, result
    assert result.out == (
        "Imported 2 feeds (0 already subscribed, 2 skipped as invalid); 2 tags applied. "
        "The next refresh fetches them.\n"
    )
    warnings = result.err.splitlines()
    assert len(warnings) == 2
    assert warnings[0].startswith("storyfeed: warning: skipped https://shop.example.com/news: ")
    assert warnings[1] == ("storyfeed: warning: skipped javascript:alert(1): not an http(s) URL")


def test_hostile_urls_and_relative_paths_are_skipped(run: Run, tmp_path: Path) -> None:
    (tmp_path / "feed.xml").write_text("<rss/>")
    body = "".join(
        outline(url, "x")
        for url in [
            "feed.xml",  # relative to wherever storyfeed runs: not a URL
            "ftp://files.example/feed",
            "https://user:pw@secret.example:99999/feed",
            "data:text/xml,&lt;rss/&gt;",
        ]
    )
    path = tmp_path / "hostile.opml"
    path.write_bytes(document(body))
    report = import_json(run, str(path))
    assert report["added"] == 0
    skipped = report["skipped_feeds"]
    assert isinstance(skipped, list)
    assert len(skipped) == 4
    assert "pw" not in json.dumps(skipped)


def test_local_files_are_skipped_with_a_reason(run: Run, tmp_path: Path) -> None:
    body = (
        outline("file:///etc/passwd", "passwd")
        + outline("FILE:///etc/shadow", "shadow")
        + outline("feed:file:///etc/hosts", "hosts")
        + outline(f"file://{DATA / 'blog.rss'}", "blog")
        + outline("https://a.example/feed", "A")
    )
    path = tmp_path / "local.opml"
    path.write_bytes(document(body))
    result = run("import", str(path))
    assert result.code == 0, result
    assert result.out.startswith("Imported 1 feed")
    warnings = result.err.splitlines()
    assert len(warnings) == 4
    for warning in [warnings[0], warnings[1], warnings[3]]:
        assert warning.endswith(": local files are not imported; use storyfeed add")
    assert [f["url"] for f in json.loads(run("feeds", "--json").out)] == ["https://a.example/feed"]


def test_a_settings_value_out_of_range_skips_the_feed_and_nonsense_is_ignored(
    run: Run, tmp_path: Path
) -> None:
    ns = f'xmlns:storyfeed="{opml.NAMESPACE}"'
    body = (
        outline("https://a.example/", "A", 'storyfeed:interval="5"')
        + outline("https://b.example/", "B", 'storyfeed:interval="99999999999999"')
        + outline("https://c.example/", "C", 'storyfeed:interval="6h"')
        + outline("https://d.example/", "D", 'storyfeed:paused="maybe" storyfeed:title="who"')
        + outline("https://e.example/", "E", 'storyfeed:interval="3600" storyfeed:notify="no"')
    )
    path = tmp_path / "settings.opml"
    path.write_bytes(document(body).replace(b'version="2.0"', f'version="2.0" {ns}'.encode()))
    report = import_json(run, str(path))
    assert report["added"] == 2
    assert report["skipped_feeds"] == [
        {
            "url": f"https://{host}.example/",
            "reason": f"storyfeed:interval {value!r} is not a number of seconds from 60 to 2592000",
        }
        for host, value in [("a", "5"), ("b", "99999999999999"), ("c", "6h")]
    ]
    assert settings_of(run) == {
        "https://d.example/": ("D", None, False, True),
        "https://e.example/": ("E", 3600, False, False),
    }


def test_tag_and_import_give_a_name_with_a_comma_the_same_tag(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "folders.opml"
    path.write_bytes(
        document(
            '<outline text="News, Politics">' + outline("https://a.example/", "A") + "</outline>"
        )
    )
    assert import_json(run, str(path))["tags_applied"] == 1
    path.write_bytes(document(outline("https://b.example/", "B")))
    import_json(run, str(path))
    result = run("tag", "B", "news,  politics", "World ,")
    assert result.code == 0, result
    feeds = json.loads(run("feeds", "--json").out)
    assert [f["tags"] for f in feeds] == [["News Politics"], ["News Politics", "World"]]
    refused = run("tag", "B", " , ")
    assert (refused.code, refused.err.splitlines()[0]) == (
        2,
        "storyfeed: error: Invalid value for TAG: a tag cannot be empty",
    )


def test_malformed_opml_imports_nothing(run: Run, tmp_path: Path) -> None:
    good = (OPML / "feedly.opml").read_bytes()
    path = tmp_path / "cut.opml"
    path.write_bytes(good[: len(good) - 40])
    result = run("import", str(path))
    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith(f"storyfeed: error: {path}: not well-formed XML: ")
    assert len(result.err.splitlines()) == 1
    assert json.loads(run("feeds", "--json").out) == []


def test_a_missing_file_is_one_error_line(run: Run, tmp_path: Path) -> None:
    result = run("import", str(tmp_path / "nope.opml"))
    assert result.code == 1
    assert result.err.startswith("storyfeed: error: cannot read ")
    assert "No such file" in result.err


def test_a_file_over_20_mib_is_refused_before_it_is_read_whole(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "huge.opml"
    with path.open("wb") as handle:
        handle.write(document(""))
        handle.truncate(opml.MAX_BYTES + 1)
    result = run("import", str(path))
    assert result.code == 1
    assert result.err == f"storyfeed: error: {path} is larger than 20 MiB\n"


def test_dry_run_changes_nothing(run: Run) -> None:
    report = import_json(run, "--dry-run", str(OPML / "inoreader.xml"))
    assert (report["added"], report["tags_applied"], report["dry_run"]) == (3, 4, True)
    assert json.loads(run("feeds", "--json").out) == []
    result = run("import", "--dry-run", str(OPML / "inoreader.xml"))
    assert result.out.startswith("Would import 3 feeds")


def settings_of(run: Run) -> dict[str, tuple[str | None, int | None, bool, bool]]:
    """url -> (user title, interval, paused, notify) of every feed."""
    feeds = json.loads(run("feeds", "--json").out)
    result = {}
    for feed in feeds:
        shown = json.loads(run("set", str(feed["id"]), "--json").out)
        result[feed["url"]] = (
            shown["user_title"],
            feed["refresh_interval"],
            feed["paused"],
            feed["notify"],
        )
    return result


def test_export_to_a_file_round_trips_into_a_fresh_database(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer
) -> None:
    blog = (DATA / "blog.rss").read_bytes()
    served = {"/own.xml": blog}
    httpserver.expect_request("/mine.xml").respond_with_data(
        blog, content_type="application/rss+xml"
    )
    httpserver.expect_request("/own.xml").respond_with_handler(
        lambda request: Response(served[request.path], content_type="application/rss+xml")
    )
    mine, own = httpserver.url_for("/mine.xml"), httpserver.url_for("/own.xml")
    for name in ["newsboat.opml", "feedly.opml", "inoreader.xml", "miniflux.opml"]:
        import_json(run, str(OPML / name))
    assert run("add", mine, "--title", "Mine").code == 0
    assert run("add", own).code == 0
    for command in [
        (mine, "interval", "6h"),
        (mine, "notify", "off"),
        ("https://ars.example.com/feed/", "paused", "yes"),
        (own, "interval", "1m"),
        (own, "paused", "yes"),
    ]:
        assert run("set", *command).code == 0
    first = exported(run)
    first_settings = settings_of(run)
    assert first_settings[mine] == ("Mine", 21600, False, False)
    assert first_settings[own] == (None, 60, True, True)
    target = tmp_path / "out" / "subscriptions.opml"
    target.parent.mkdir()
    result = run("export", str(target))
    assert result.code == 0, result
    assert [p.name for p in target.parent.iterdir()] == ["subscriptions.opml"]  # no temp left
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "config.toml").write_text('default_feed = ""\n')
    monkeypatch.setenv("STORYFEED_HOME", str(fresh))
    report = import_json(run, str(target))
    assert report["added"] == len(first) == 14
    assert settings_of(run) == first_settings  # the feed's own title is not made the user's
    assert run("refresh", own).code == 0  # the paused feed, named, brings its title back
    assert exported(run) == first
    served["/own.xml"] = blog.replace(b"<title>Test Blog</title>", b"<title>Renamed</title>", 1)
    assert run("refresh", own).code == 0
    assert json.loads(run("set", own, "--json").out)["title"] == "Renamed"  # it follows the feed
    served["/own.xml"] = blog
    assert run("refresh", own).code == 0
    again = tmp_path / "again.opml"
    assert run("export", str(again)).code == 0

    def without_date(path: Path) -> bytes:
        root = etree.fromstring(path.read_bytes())
        root.find("head").remove(root.find("head/dateCreated"))
        return etree.tostring(root)

    assert without_date(again) == without_date(target)


def test_export_replaces_a_file_whole_and_refuses_a_directory(run: Run, tmp_path: Path) -> None:
    import_json(run, str(OPML / "newsboat.opml"))
    target = tmp_path / "subs.opml"
    target.write_text("old")
    target.chmod(0o640)
    assert run("export", str(target)).code == 0
    assert len({found.url for found in opml.parse_opml(target.read_bytes())}) == 3
    assert target.stat().st_mode & 0o777 == 0o640
    link = tmp_path / "link.opml"
    link.symlink_to(target)
    assert run("export", str(link)).code == 0
    assert link.is_symlink()
    result = run("export", str(tmp_path))
    assert result.code == 1
    assert result.err == f"storyfeed: error: {tmp_path} is a directory\n"
    result = run("export", str(tmp_path / "no" / "such" / "dir.opml"))
    assert result.code == 1
    assert result.err.startswith("storyfeed: error: cannot write ")


def test_export_with_nothing_subscribed_is_a_valid_empty_list(run: Run) -> None:
    result = run("export")
    assert result.code == 0
    assert opml.parse_opml(result.out.encode()) == []


def test_imported_feeds_are_fetched_by_the_next_refresh(
    run: Run, httpserver: HTTPServer, tmp_path: Path
) -> None:
    blog = (DATA / "blog.rss").read_bytes()
    httpserver.expect_request("/one.xml").respond_with_data(
        blog, content_type="application/rss+xml"
    )
    httpserver.expect_request("/two.xml").respond_with_data(
        blog.replace(b"<guid", b"<guid>two-</guid><ignored"), content_type="application/rss+xml"
    )
    path = tmp_path / "mine.opml"
    path.write_bytes(
        document(
            '<outline text="Blogs">'
            + outline(httpserver.url_for("/one.xml"), "One")
            + outline(httpserver.url_for("/two.xml"), "Two")
            + "</outline>"
        )
    )
    assert import_json(run, str(path))["added"] == 2
    assert httpserver.log == []  # importing fetched nothing
    assert run("refresh").code == 0
    stories = json.loads(run("list", "--offline", "--json", "-n", "100").out)
    assert {s["feed"] for s in stories} == {"One", "Two"}
    assert len([s for s in stories if s["feed"] == "One"]) == 8


def test_a_big_list_imports_in_well_under_a_second(run: Run, tmp_path: Path) -> None:
    body = "".join(
        f'<outline text="Folder {folder}">'
        + "".join(
            outline(f"https://site{folder}-{i}.example/feed.xml", f"Feed {folder}-{i}")
            for i in range(100)
        )
        + "</outline>"
        for folder in range(50)
    )
    path = tmp_path / "big.opml"
    path.write_bytes(document(body))
    started = time.perf_counter()
    report = import_json(run, str(path))
    elapsed = time.perf_counter() - started
    assert (report["added"], report["tags_applied"]) == (5000, 5000)
    assert elapsed < 1.0, f"{elapsed:.2f} s"


def test_import_reads_standard_input(
    run: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = (OPML / "newsboat.opml").open("rb")
    monkeypatch.setattr("sys.stdin", type("Stdin", (), {"buffer": source})())
    try:
        assert import_json(run, "-")["added"] == 3
    finally:
        source.close()


def test_the_date_written_is_the_clock_s() -> None:
    root = etree.fromstring(opml.write_opml([], datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)))
    assert root.findtext("head/dateCreated") == "Fri, 02 Jan 2026 03:04:05 GMT"


def test_export_writes_through_to_a_pipe(run: Run, tmp_path: Path) -> None:
    """`storyfeed export /dev/stdout | ...` or a named pipe: not a file to replace."""
    import os
    import threading

    assert run("add", str(DATA / "blog.rss")).code == 0
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()

    result = run("export", str(pipe))

    reader.join(10)
    assert result.code == 0, result
    assert b"blog.rss" in received[0] and b"<opml" in received[0]
    assert pipe.exists() and not pipe.is_file()  # still the pipe, not a file put in its place
