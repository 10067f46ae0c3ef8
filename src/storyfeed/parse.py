"""Reading feed documents; the only module that uses feedparser.

Pure: bytes and response headers in, a :class:`ParsedFeed` out, or a
:class:`ParseError`. feedparser handles RSS 0.9x/1.0/2.0 and Atom; JSON Feed
1.0/1.1 is read here, since feedparser 6 does not know it. Every string is
sanitised before it leaves this module.
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import io
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from storyfeed.errors import NotAFeedError, ParseError
from storyfeed.htmltext import html_to_line, tokens
from storyfeed.models import DateFlag
from storyfeed.text import clean_line, clean_text
from storyfeed.updates import FeedLink, ParsedFeed, ParsedStory

MAX_KEY = 512
# Caps on what one document can make storyfeed store and print: a title of
# megabytes is an attack, not a title.
MAX_LINE = 1000  # characters of a title, an author or a feed's name
MAX_LINK = 4096  # characters of a link; a longer one is dropped, not cut
MAX_TEXT = 1_000_000  # characters of a summary or a content
MAX_STORIES = 100_000  # stories kept from one document (the first ones)
_TAG_LIKE = re.compile(r"</?[A-Za-z!]")
_FEED_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/feed+json",
        "application/json",
        "application/rdf+xml",
        "application/xml",
        "text/xml",
    }
)
_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S
)


def parse_feed(body: bytes, headers: Mapping[str, str], url: str, now: datetime) -> ParsedFeed:
    """Parse a fetched document; ``url`` is where it came from (the base for links)."""
    stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        raise NotAFeedError("not a feed: the document is empty")
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if stripped.startswith(b"{") or (
        content_type.endswith("json") and not stripped.startswith(b"<")
    ):
        return _parse_json_feed(stripped, url, now)
    if _HTML_START.match(stripped[:4096]):
        raise NotAFeedError("not a feed: the document is an HTML page")
    return _parse_xml_feed(body, headers, url, now)


def load_parsers() -> None:
    """Import the parsers now (a sandbox does so before it caps its memory)."""
    import feedparser  # noqa: F401

    with contextlib.suppress(ImportError):
        from lxml import etree  # noqa: F401
    with contextlib.suppress(ImportError):
        from feedparser.sanitizer import _HTMLSanitizer  # noqa: F401


def is_html(body: bytes, headers: Mapping[str, str]) -> bool:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type in {"text/html", "application/xhtml+xml"} or bool(
        _HTML_START.match(body.lstrip(b"\xef\xbb\xbf")[:4096])
    )


# --- XML feeds (feedparser) -------------------------------------------------


def _parse_xml_feed(body: bytes, headers: Mapping[str, str], url: str, now: datetime) -> ParsedFeed:
    base = _base(url, headers.get("content-location", ""))
    for version, reader in (("rss20", _plain_rss), ("atom10", _plain_atom)):
        fast = reader(body, headers)
        if fast is not None:
            feed, entries = fast
            return _assemble(version, (), feed, entries, base, now)
    return _with_feedparser(body, headers, base, now)


def _with_feedparser(
    body: bytes, headers: Mapping[str, str], base: str, now: datetime
) -> ParsedFeed:
    import feedparser

    response_headers = {
        key: value
        for key, value in headers.items()
        if key in {"content-type", "content-language", "content-encoding"}
    }
    response_headers["content-location"] = _stand_in(base)
    try:
        # Entries' HTML is never rendered as HTML, so feedparser's sanitiser and
        # its rewriting of relative URIs inside content are skipped.
        result = feedparser.parse(
            io.BytesIO(body),
            response_headers=response_headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except MemoryError:
        raise  # the sandbox's budget: its worker reports it and is replaced
    except Exception as exc:  # a third-party parser's failure is the document's fault
        raise ParseError(f"cannot parse the feed: {type(exc).__name__}") from exc
    version = result.get("version") or ""
    entries = result.get("entries") or []
    feed = result.get("feed") or {}
    if not version and not entries:
        problem = result.get("bozo_exception")
        detail = f" ({_describe(problem)})" if problem is not None else ""
        raise NotAFeedError(f"not a feed: no RSS, Atom or JSON Feed document found{detail}")
    warnings: tuple[str, ...] = ()
    if result.get("bozo"):
        warnings = (_describe(result.get("bozo_exception")),)
    origin, stand_in_dir = _origin(base), urljoin(_stand_in(base), ".")
    entries = [_restored(entry, origin, stand_in_dir) for entry in entries]
    feed = _restored(feed, origin, stand_in_dir)
    return _assemble(version, warnings, feed, entries, base, now)


def _assemble(
    version: str,
    warnings: tuple[str, ...],
    feed: Mapping[str, Any],
    entries: list[dict[str, Any]],
    base: str,
    now: datetime,
) -> ParsedFeed:
    """A ParsedFeed from feedparser-shaped dicts (links and ids as the feed wrote them)."""
    feed_author = feed.get("author", "")
    feed_author = clean_line(feed_author) if isinstance(feed_author, str) else ""
    stories = _unique(_xml_story(entry, base, now, feed_author, version) for entry in entries)
    ttl = _ttl_seconds(feed.get("ttl"))
    return ParsedFeed(
        title=_cut(_title(feed.get("title_detail"), feed.get("title", ""), version), MAX_LINE),
        site_url=_link(_absolute(base, feed.get("link", ""))),
        stories=stories,
        ttl_seconds=ttl,
        format=version,
        warnings=warnings,
        without_id=sum(1 for entry in entries if not _has_id(entry.get("id"))),
    )


def _has_id(value: Any) -> bool:
    return (
        isinstance(value, str | int)
        and not isinstance(value, bool)
        and bool(clean_line(str(value)))
    )


# --- the fast path: plain RSS 2.0 and Atom (lxml) -------------------------------------
#
# feedparser's event handlers cost ~400 us a story; most feeds are plain RSS 2.0 or
# Atom, which lxml reads in a few. A document takes the fast path only when it holds
# nothing feedparser would treat specially (a DOCTYPE, xml:base, another charset,
# markup inside a field, an element feedparser maps onto a field we read, ...); the
# fields are then processed as feedparser does, and tests/test_fastpath.py checks
# on every corpus file the fast path takes that the stories are the same.

_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
_ATOM = "{http://www.w3.org/2005/Atom}"
_ITEM_FIELDS = frozenset({"title", "link", "guid", "description", "pubDate", f"{_CONTENT}encoded"})
_CHANNEL_FIELDS = frozenset({"title", "link", "ttl", "description"})
# Local names feedparser maps onto fields we read, in whatever namespace: a document
# holding one elsewhere than above goes to feedparser.
_MAPPED = frozenset(
    {
        *("title", "link", "guid", "id", "description", "summary", "subtitle", "content"),
        *("encoded", "body", "fullitem", "author", "creator", "contributor", "publisher"),
        *("managingeditor", "webmaster", "name", "email", "date", "pubdate", "published"),
        *("updated", "issued", "modified", "created", "source", "abstract", "info"),
        *("tagline", "ttl", "lastbuilddate", "textinput"),
    }
)
# At the channel, only what gives the feed's title, link, author and ttl matters.
_MAPPED_IN_CHANNEL = frozenset(
    {
        *("title", "link", "author", "creator", "contributor", "managingeditor", "name"),
        *("email", "ttl", "source", "textinput", "item", "entry"),
    }
)
_LOOSE_AMPERSAND = re.compile("&([A-Za-z0-9_]+);")
_CP1252 = {
    code: text
    for code in range(0x80, 0xA0)
    if (text := bytes([code]).decode("cp1252", errors="replace")) != "\ufffd"
}
_C1 = re.compile("[\x80-\x9f]")  # str.translate walks every character: look first


Shaped = tuple[dict[str, Any], list[dict[str, Any]]]


def _plain_rss(body: bytes, headers: Mapping[str, str]) -> Shaped | None:
    """feedparser-shaped (feed, entries) of a plain RSS 2.0 document; None for any
    other document."""
    root = _plain_xml(body, headers)
    if root is None or root.tag != "rss" or root.get("version") != "2.0":
        return None
    if root.nsmap.get(None):
        return None
    channels = [child for child in root if child.tag == "channel"]
    if len(channels) != 1 or len(root) != 1:
        return None
    feed: dict[str, Any] = {}
    entries: list[dict[str, Any]] = []
    for child in channels[0]:
        if child.tag == "item":
            entry = _plain_item(child)
            if entry is None:
                return None
            entries.append(entry)
        elif child.tag in _CHANNEL_FIELDS:
            if child.tag in feed or len(child) or child.attrib:
                return None
            feed[child.tag] = _fp_text(child.text or "", link=child.tag == "link")
        elif not _harmless(child, in_channel=True):
            return None
    if "title" in feed:
        feed["title_detail"] = {"value": feed["title"], "type": _fp_type(feed["title"])}
    return feed, entries


def _plain_xml(body: bytes, headers: Mapping[str, str]) -> Any:
    """The root element of a UTF-8 XML document without a DOCTYPE or xml:base, read
    by lxml without entities or network; None otherwise."""
    head = body[:1024].lower()
    if b"<!doctype" in head or b"<!entity" in body[:65536].lower() or b"xml:base" in body:
        return None
    declared = re.match(rb'\s*<\?xml[^>]*encoding=["\']([A-Za-z0-9._-]+)', body[:200])
    if declared and declared.group(1).lower() not in {b"utf-8", b"utf8"}:
        return None
    charset = re.search(r"charset=[\"']?([A-Za-z0-9._-]+)", headers.get("content-type", ""))
    if charset and charset.group(1).lower() not in {"utf-8", "utf8"}:
        return None
    if body.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return None
    try:
        from lxml import etree
    except ImportError:
        return None
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
        remove_comments=True, remove_pis=True,
    )  # fmt: skip
    try:
        body.decode("utf-8")
        return etree.fromstring(body, parser)
    except (etree.XMLSyntaxError, UnicodeDecodeError, ValueError):
        return None


_ATOM_TYPES = {"text": "text/plain", "html": "text/html"}


def _plain_atom(body: bytes, headers: Mapping[str, str]) -> Shaped | None:
    """feedparser-shaped (feed, entries) of a plain Atom 1.0 document; None for any
    other document."""
    root = _plain_xml(body, headers)
    if root is None or root.tag != f"{_ATOM}feed":
        return None
    feed = _atom_fields(root, in_feed=True)
    if feed is None:
        return None
    entries = []
    for child in root:
        if child.tag == f"{_ATOM}entry":
            entry = _atom_fields(child, in_feed=False)
            if entry is None:
                return None
            entries.append(entry)
    return feed, entries


def _atom_fields(element: Any, *, in_feed: bool) -> dict[str, Any] | None:
    """The fields of an Atom feed or entry element, as feedparser gives them."""
    fields: dict[str, Any] = {}
    alternate = None
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or (in_feed and tag == f"{_ATOM}entry"):
            continue
        name = tag[len(_ATOM) :] if tag.startswith(_ATOM) else ""
        if name == "link":
            if len(child) or "href" not in child.attrib:
                return None
            rel = child.get("rel", "alternate")
            kind = child.get("type", "text/html")
            href = _fp_text(child.get("href", ""))
            if rel == "alternate" and kind in {"text/html", "application/xhtml+xml"}:
                if not href or not _web_or_relative(href):
                    return None  # feedparser makes the base of an empty one
                alternate = href
        elif name in {"title", "summary", "content"}:
            if name in fields or len(child) or set(child.attrib) - {"type"}:
                return None
            kind = _ATOM_TYPES.get(child.get("type", "text"))
            if kind is None:
                return None
            value = _fp_text(child.text or "")
            fields[name] = {"type": kind, "value": value}
        elif name in {"id", "published", "updated"}:
            if name in fields or len(child) or child.attrib:
                return None
            fields[name] = _fp_text(child.text or "")
        elif name == "author":
            if "author" in fields or child.attrib:
                return None
            parts = {_local(part.tag): _fp_text(part.text or "") for part in child}
            if set(parts) - {"name", "email", "uri"} or len(parts) != len(child):
                return None
            person, email = parts.get("name", ""), parts.get("email", "")
            fields["author"] = f"{person} ({email})" if person and email else person or email
        elif name in {"category", "generator", "icon", "logo", "rights", "subtitle"}:
            if name != "category" and len(child):
                return None
        elif name or not _harmless(child, in_channel=in_feed):
            return None
    shaped: dict[str, Any] = {}
    if "id" in fields:
        key = fields["id"]
        scheme = urlsplit(key).scheme.lower() if _web_or_relative(key) else "other"
        if scheme in {"http", "https"}:
            key = urljoin(_STAND_IN + "/", key)
        elif not (key.startswith(("tag:", "urn:")) or not key):
            return None
        shaped["id"] = key
    # feedparser takes an id for the link when there is no alternate link.
    if alternate is not None:
        shaped["link"] = alternate
    elif shaped.get("id"):
        shaped["link"] = shaped["id"]
    for name in ("title", "summary"):
        if name in fields:
            shaped[name] = fields[name]["value"]
            shaped[f"{name}_detail"] = fields[name]
    if "content" in fields:
        shaped["content"] = [fields["content"]]
        shaped.setdefault("summary", fields["content"]["value"])
    if "author" in fields:
        shaped["author"] = fields["author"]
    for name in ("published", "updated"):
        if name in fields:
            when = _iso8601(fields[name])
            if when is False:
                return None
            shaped[f"{name}_parsed"] = when
    return shaped


def _iso8601(value: str) -> Any:
    """A UTC struct_time of an RFC 3339 date; None for none; False for anything else."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return False
    if when.tzinfo is None or not re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)", value
    ):
        return False
    try:
        return when.astimezone(UTC).timetuple()
    except (OverflowError, ValueError):
        return False


def _local(tag: Any) -> str:
    return tag.rpartition("}")[2].lower() if isinstance(tag, str) else ""


def _harmless(element: Any, *, in_channel: bool) -> bool:
    """An element that cannot change a field we read."""
    tag = element.tag
    if not isinstance(tag, str):
        return True
    if tag == f"{_ATOM}link":
        return in_channel and element.get("rel", "alternate") != "alternate"
    if in_channel and tag == "image":
        return True  # feedparser keeps the image's title and link apart
    mapped = _MAPPED_IN_CHANNEL if in_channel else _MAPPED
    return _local(tag) not in mapped and not any(
        _local(inner.tag) in mapped for inner in element.iterdescendants()
    )


def _web_or_relative(url: str) -> bool:
    """A link feedparser and we resolve alike (it drops links of other schemes)."""
    if url.startswith(("https://", "http://")) and url.isascii() and "[" not in url:
        return True  # what urlsplit says, without splitting (it raises only on [ or non-ASCII)
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return False
    return scheme in {"", "http", "https"}


def _plain_item(item: Any) -> dict[str, Any] | None:
    fields: dict[str, Any] = {}
    for child in item:
        tag = child.tag
        if tag in _ITEM_FIELDS:
            if tag in fields or len(child) or set(child.attrib) - {"isPermaLink"}:
                return None
            fields[tag] = child
        elif tag == f"{_DC}creator":
            if "author" in fields or len(child):
                return None
            fields["author"] = child
        elif not _harmless(child, in_channel=False):
            return None
    entry: dict[str, Any] = {}
    if "title" in fields:
        title = _fp_text(fields["title"].text or "")
        entry["title"] = title
        entry["title_detail"] = {"value": title, "type": _fp_type(title)}
    if "link" in fields:
        entry["link"] = _fp_text(fields["link"].text or "", link=True)
        if not _web_or_relative(entry["link"]):
            return None
    if "guid" in fields:
        guid = fields["guid"]
        key = _fp_text(guid.text or "")
        permalink = guid.get("isPermaLink", "true") == "true"
        if permalink and key:
            # feedparser resolves a permalink guid like a link
            if not _web_or_relative(key) or not urlsplit(key).scheme:
                return None
            key = urljoin(_STAND_IN + "/", key)
        entry["id"] = key
        if permalink:
            entry.setdefault("link", key)
    if "description" in fields:
        entry["summary"] = _fp_text(fields["description"].text or "")
    encoded = fields.get(f"{_CONTENT}encoded")
    if encoded is not None:
        entry["content"] = [{"type": "text/html", "value": _fp_text(encoded.text or "")}]
        entry.setdefault("summary", entry["content"][0]["value"])
    if "author" in fields:
        author = _fp_text(fields["author"].text or "")
        if "@" in author or "(" in author or "<" in author:
            return None
        entry["author"] = author
    if "pubDate" in fields:
        when = _rfc822(_fp_text(fields["pubDate"].text or ""))
        if when is False:
            return None
        entry["published_parsed"] = when
    return entry


def _fp_text(value: str, *, link: bool = False) -> str:
    """A field's text as feedparser leaves it: stripped, double-encoded UTF-8
    repaired, windows-1252 controls mapped."""
    value = value.strip()
    if link:
        value = _LOOSE_AMPERSAND.sub(r"&\1", value.replace("&amp;", "&"))
    if value.isascii():  # nothing to repair or map (and isascii costs nothing)
        return value
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("iso-8859-1").decode("utf-8")
    return value.translate(_CP1252) if _C1.search(value) else value


def _fp_type(value: str) -> str:
    """feedparser's guess for an RSS text field: HTML when it holds a closing tag or
    an entity, and only known elements and entities."""
    import html.entities

    if not (re.search(r"</(\w+)>", value) or re.search(r"&#?\w+;", value)):
        return "text/plain"
    # feedparser's own list of the elements it counts as HTML (the version is pinned
    # below 7, and tests/test_fastpath.py would catch a change).
    from feedparser.sanitizer import _HTMLSanitizer

    if any(
        t.lower() not in _HTMLSanitizer.acceptable_elements for t in re.findall(r"</?(\w+)", value)
    ):
        return "text/plain"
    if any(e not in html.entities.entitydefs for e in re.findall(r"&(\w+);", value)):
        return "text/plain"
    return "text/html"


def _rfc822(value: str) -> Any:
    """A feedparser-style UTC struct_time of an RFC 822 date; None for none; False
    for a date only feedparser's many parsers might read."""
    import email.utils
    import time as time_module

    if not value:
        return None
    parts = email.utils.parsedate_tz(value)
    if parts is None or parts[9] is None:
        return False
    try:
        return time_module.gmtime(email.utils.mktime_tz(parts))
    except (OverflowError, ValueError, OSError):
        return False


def _base(url: str, location: str) -> str:
    """The base for relative links: the document's Content-Location when it is a web
    address, else where the document came from."""
    if not url or not location.strip():
        return url
    try:
        joined = urljoin(url, location.strip())
        parts = urlsplit(joined)
        usable = parts.scheme in {"http", "https"} and bool(parts.hostname)
    except ValueError:
        return url
    return joined if usable else url


# feedparser resolves guids and Atom ids against the base URL as if they were links
# (an RSS guid's isPermaLink defaults to true), which would change a story's key when
# its feed moves, say from http to https. So feedparser is given a stand-in base with
# the real path (relative links resolve the same, xml:base included) on a host of its
# own; the real origin is put back into links, and left out of keys.
_STAND_IN = "http://storyfeed.invalid"


def _stand_in(base: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(("http", "storyfeed.invalid", parts.path or "/", parts.query, ""))


def _origin(base: str) -> str:
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme else ""


def _restored(item: Mapping[str, Any], origin: str, stand_in_dir: str) -> dict[str, Any]:
    """A plain-dict copy of a feedparser dict, with the real origin in its link and its id
    as written. (A plain dict also escapes FeedParserDict's deprecated fallback from
    ``updated_parsed`` to the published date, which warns: feedparser issue 310.)
    """
    copy = dict(item)
    link, key = copy.get("link"), copy.get("id")
    if isinstance(link, str) and link.startswith(_STAND_IN + "/") and origin:
        copy["link"] = origin + link[len(_STAND_IN) :]
    if isinstance(key, str) and key.startswith(stand_in_dir):
        copy["id"] = key[len(stand_in_dir) :]
    elif isinstance(key, str) and key.startswith(_STAND_IN + "/"):
        copy["id"] = key[len(_STAND_IN) :]
    return copy


def _describe(problem: object) -> str:
    text = clean_line(str(problem))[:200]
    return text or type(problem).__name__


def _title(detail: Any, fallback: Any, version: str) -> str:
    """A title as one line of text. Atom says whether it is text or HTML; an RSS
    title holding tags is HTML (feedparser only recognises tags it would keep)."""
    value = detail.get("value", "") if isinstance(detail, Mapping) else fallback
    if not isinstance(value, str):
        return ""
    kind = str(detail.get("type", "")) if isinstance(detail, Mapping) else ""
    is_html = "html" in kind or (
        not version.startswith("atom") and _TAG_LIKE.search(value) is not None
    )
    return html_to_line(value) if is_html else clean_line(value)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _link(url: str) -> str:
    return url if len(url) <= MAX_LINK else ""


def _absolute(base: str, link: Any) -> str:
    if not isinstance(link, str) or not link.strip():
        return ""
    link = link.strip()
    try:
        if "\\" in link and urlsplit(urljoin(base, link)).scheme in {"http", "https"}:
            # Browsers read a backslash in a web address as a slash, and so do we:
            # else https://evil.example\@bank.example/ would show bank.example as host.
            link = link.replace("\\", "/")
        return clean_line(urljoin(base, link))
    except ValueError:
        return clean_line(link)


def _xml_story(
    entry: Mapping[str, Any], base: str, now: datetime, feed_author: str, version: str
) -> ParsedStory:
    link = _absolute(base, entry.get("link", ""))
    contents = entry.get("content") or []
    content = ""
    for part in contents:
        if isinstance(part, Mapping) and isinstance(part.get("value"), str):
            content = part["value"]
            if "html" in str(part.get("type", "")):
                break
    summary = entry.get("summary", "")
    if not isinstance(summary, str) or summary == content:
        summary = ""  # feedparser copies content into summary; keep one copy
    title = _title(entry.get("title_detail"), entry.get("title", ""), version)
    author = entry.get("author", "")
    published, flag = _date(entry.get("published_parsed") or entry.get("updated_parsed"), now)
    key = entry.get("id", "")
    return _story(
        key=key if isinstance(key, str) else "",
        title=title,
        link=link,
        author=(clean_line(author) if isinstance(author, str) else "") or feed_author,
        summary=clean_text(summary).strip(),
        content=clean_text(content).strip(),
        published=published,
        flag=flag,
    )


def _date(value: Any, now: datetime) -> tuple[datetime | None, DateFlag]:
    """A feedparser ``struct_time`` (always UTC) as a datetime and its flag."""
    if value is None:
        return None, DateFlag.MISSING
    try:
        when = datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError, TypeError):
        return None, DateFlag.MISSING
    return _clamp(when, now)


def _clamp(when: datetime, now: datetime) -> tuple[datetime, DateFlag]:
    if when > now:
        return now, DateFlag.FUTURE
    return when, DateFlag.OK


def _ttl_seconds(value: Any) -> int | None:
    """RSS 2.0 ``<ttl>`` is in minutes."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value.strip()):
        return int(value.strip()) * 60
    return None


def _story(
    *,
    key: str,
    title: str,
    link: str,
    author: str,
    summary: str,
    content: str,
    published: datetime | None,
    flag: DateFlag,
) -> ParsedStory:
    key = clean_line(key) or link
    if not key:
        digest = hashlib.sha256(f"{title}\0{summary}\0{content}".encode()).hexdigest()
        key = f"sha256:{digest}"
    elif len(key) > MAX_KEY:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return ParsedStory(
        key=key,
        title=_cut(title, MAX_LINE),
        link=_link(link),
        author=_cut(author, MAX_LINE),
        summary=_cut(summary, MAX_TEXT),
        content=_cut(content, MAX_TEXT),
        published=published,
        date_flag=flag,
    )


def _unique(stories: Any) -> tuple[ParsedStory, ...]:
    """Drop repeated keys within one document (the first occurrence wins); keep
    the first MAX_STORIES."""
    seen: set[str] = set()
    unique = []
    for story in stories:
        if story.key not in seen:
            seen.add(story.key)
            unique.append(story)
            if len(unique) == MAX_STORIES:
                break
    return tuple(unique)


# --- JSON Feed (https://jsonfeed.org/version/1.1) ---------------------------


def _parse_json_feed(body: bytes, url: str, now: datetime) -> ParsedFeed:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise NotAFeedError("not a feed: invalid JSON") from exc
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith(
        ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/")
    ):
        raise NotAFeedError("not a feed: a JSON document that is not a JSON Feed")
    items = data.get("items")
    if not isinstance(items, list):
        raise ParseError("invalid JSON Feed: 'items' is not a list")
    base = _text(data.get("feed_url")) or url
    feed_author = _json_author(data)
    stories = _unique(
        _json_story(item, base, now, feed_author) for item in items if isinstance(item, dict)
    )
    return ParsedFeed(
        title=_cut(clean_line(_text(data.get("title"))), MAX_LINE),
        site_url=_link(_absolute(base, _text(data.get("home_page_url")))),
        stories=stories,
        format="json" + str(data["version"]).rsplit("/", 1)[-1],
        without_id=sum(
            1 for item in items if isinstance(item, dict) and not _has_id(item.get("id"))
        ),
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _json_author(data: Mapping[str, Any]) -> str:
    """The first author's name: ``authors`` (1.1) or ``author`` (1.0)."""
    authors = data.get("authors")
    author = data.get("author")
    if isinstance(authors, list) and authors and isinstance(authors[0], dict):
        author = authors[0]
    return clean_line(_text(author.get("name"))) if isinstance(author, dict) else ""


def _json_story(item: Mapping[str, Any], base: str, now: datetime, feed_author: str) -> ParsedStory:
    raw_date = _text(item.get("date_published")) or _text(item.get("date_modified"))
    published, flag = _iso_date(raw_date, now)
    content = _text(item.get("content_html")) or _text(item.get("content_text"))
    key = item.get("id")
    return _story(
        key=str(key) if isinstance(key, str | int) and not isinstance(key, bool) else "",
        title=clean_line(_text(item.get("title"))),
        link=_absolute(base, _text(item.get("url")) or _text(item.get("external_url"))),
        author=_json_author(item) or feed_author,
        summary=clean_text(_text(item.get("summary"))).strip(),
        content=clean_text(content).strip(),
        published=published,
        flag=flag,
    )


def _iso_date(value: str, now: datetime) -> tuple[datetime | None, DateFlag]:
    if not value:
        return None, DateFlag.MISSING
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None, DateFlag.MISSING
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        when = when.astimezone(UTC)
    except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00:00+01:00
        return None, DateFlag.MISSING
    return _clamp(when, now)


# --- Feed discovery in HTML pages ------------------------------------------


def find_feed_links(body: bytes, headers: Mapping[str, str], url: str) -> list[FeedLink]:
    """Feeds a page advertises with ``<link rel="alternate" type="...">``, in page order."""
    charset = "utf-8"
    match = re.search(r"charset=([\w-]+)", headers.get("content-type", ""))
    if match:
        charset = match.group(1)
    try:
        text = body.decode(charset, errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    base_href = ""
    links: list[tuple[str, str, str]] = []
    for tag in tokens(text):
        if isinstance(tag, str) or tag.end:
            continue
        if tag.name == "base" and not base_href:
            base_href = tag.attrs.get("href", "")
        elif tag.name == "link":
            rel = tag.attrs.get("rel", "").lower().split()
            kind = tag.attrs.get("type", "").split(";")[0].strip().lower()
            if "alternate" in rel and kind in _FEED_TYPES and tag.attrs.get("href"):
                links.append((tag.attrs["href"], kind, tag.attrs.get("title", "")))
    base = urljoin(url, base_href) if base_href else url
    found: list[FeedLink] = []
    for href, kind, title in links:
        link = FeedLink(url=_absolute(base, href), type=kind, title=clean_line(title))
        if link.url and link.url not in {f.url for f in found}:
            found.append(link)
    return found
