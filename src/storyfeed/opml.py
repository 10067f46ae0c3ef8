"""OPML subscription lists, pure: bytes -> feeds to subscribe to, and feeds -> bytes.

The only module that reads or writes OPML. A file comes from elsewhere (another
reader's export, a download), so it is parsed as hostile XML: no DTD, no entity
expansion, no network, a size cap and an outline cap. Folders (outlines that hold
outlines) and the ``category`` attribute become tags; what URLs are acceptable is
the importer's business (:mod:`storyfeed.moving`).

A feed's own settings travel as attributes in storyfeed's namespace (NAMESPACE),
which other readers ignore: ``storyfeed:interval`` (seconds), ``storyfeed:paused``
("yes"), ``storyfeed:notify`` ("off") and ``storyfeed:title``: "user" when ``text``
is a name the user gave, "feed" when it is only the feed's own title, which an
import then leaves to the feed (the next fetch brings it, and later renames follow).

listparser was considered and left out: it reads with an HTML parser in recovery
mode, so malformed XML passes unnoticed (its ``bozo`` flag is raised for a date
it cannot read, not for broken XML), and ``parse()`` given a string that starts
with ``http`` fetches it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from lxml import etree

from storyfeed.errors import InvalidOPMLError
from storyfeed.models import Feed, FeedStatus
from storyfeed.text import clean_line
from storyfeed.text import clean_tag as text_clean_tag

MAX_BYTES = 20 * 1024 * 1024
MAX_OUTLINES = 100_000
MAX_TAG_LENGTH = 100
MAX_TITLE_LENGTH = 500
# FreshRSS exports its web-scraping sources with a page URL in xmlUrl; they are not feeds.
# What XML 1.0 cannot hold at all (U+FFFE, U+FFFF and the like survive clean_line,
# and a JSON Feed's title may have them): dropped when writing, or lxml refuses.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NOT_FEED_TYPES = {"html+xpath", "xml+xpath", "html+xpath+json+dotnotation", "json+dotnotation"}
NAMESPACE = "https://github.com/storyfeed/storyfeed/opml"
_YES = {"yes", "true", "on", "1"}
_NO = {"no", "false", "off", "0"}


@dataclass(frozen=True, slots=True)
class OPMLFeed:
    """One feed outline, as the file has it (its URL not validated yet)."""

    url: str
    title: str = ""
    site_url: str = ""
    tags: tuple[str, ...] = ()
    problem: str = ""  # why this outline cannot be a subscription, if the file says
    # storyfeed's own attributes (None or "": the file does not say, or says nonsense);
    # the interval as written (seconds), for the importer to check against its range
    interval: str = ""
    paused: bool | None = None
    notify: bool | None = None
    title_is_feeds: bool = False  # `title` is the feed's own, not a name to keep


def parse_opml(data: bytes) -> list[OPMLFeed]:
    """The feed outlines of an OPML 1.0/2.0 document, in document order.

    Raises InvalidOPMLError for anything that is not a well-formed OPML file
    within the caps; a feed that appears in several folders appears once per
    folder (merging is by URL, which is the importer's to compare).
    """
    if len(data) > MAX_BYTES:
        raise InvalidOPMLError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise InvalidOPMLError(f"not well-formed XML: {clean_line(exc.msg)}") from None
    if root is None:
        raise InvalidOPMLError("the file is empty")
    if root.getroottree().docinfo.internalDTD is not None:
        # OPML has no use for one; declared entities are how XML bombs are built.
        raise InvalidOPMLError("the file declares a DTD (<!DOCTYPE ...>), which OPML does not use")
    if etree.QName(root).localname.lower() != "opml":
        raise InvalidOPMLError(
            f"not an OPML file (the document is <{clean_line(etree.QName(root).localname)}>)"
        )
    body = next((child for child in root if _named(child, "body")), None)
    if body is None:
        raise InvalidOPMLError("an OPML file without a <body>")
    return _feeds(body)


def _named(element: etree._Element, name: str) -> bool:
    return isinstance(element.tag, str) and etree.QName(element).localname.lower() == name


def _feeds(body: etree._Element) -> list[OPMLFeed]:
    found: list[OPMLFeed] = []
    count = 0
    # (element, the tags of the folders it sits in): a stack, not recursion, so
    # that depth costs nothing but memory (lxml caps it at 256 anyway).
    stack: list[tuple[etree._Element, tuple[str, ...]]] = [
        (child, ()) for child in reversed(body) if _named(child, "outline")
    ]
    while stack:
        element, tags = stack.pop()
        count += 1
        if count > MAX_OUTLINES:
            raise InvalidOPMLError(f"the file holds more than {MAX_OUTLINES:,} outlines")
        attrs = _attributes(element)
        name = _title(attrs)
        url = attrs.get("xmlurl", "").strip()
        children = [child for child in element if _named(child, "outline")]
        if url:
            found.append(_feed(url, name, attrs, tags, _our_attributes(element)))
        elif children and name:
            tags = merge_tags((*tags, name))
        stack.extend((child, tags) for child in reversed(children))
    return found


def _attributes(element: etree._Element) -> dict[str, str]:
    """Attributes without a namespace, by lower-case name (`xmlUrl`, `xmlurl`)."""
    return {
        str(key).lower(): str(value)
        for key, value in element.attrib.items()
        if not str(key).startswith("{")
    }


def _title(attrs: dict[str, str]) -> str:
    # OPML 2.0 requires `text`; newsboat writes only `title`.
    title = clean_line(attrs.get("text", "")) or clean_line(attrs.get("title", ""))
    return title[:MAX_TITLE_LENGTH]


def _our_attributes(element: etree._Element) -> dict[str, str]:
    """storyfeed's namespaced attributes, by lower-case local name."""
    prefix = "{" + NAMESPACE + "}"
    return {
        str(key)[len(prefix) :].lower(): str(value).strip().lower()
        for key, value in element.attrib.items()
        if str(key).startswith(prefix)
    }


def _flag(value: str | None) -> bool | None:
    if value in _YES:
        return True
    if value in _NO:
        return False
    return None


def _feed(
    url: str,
    title: str,
    attrs: dict[str, str],
    folders: tuple[str, ...],
    ours: dict[str, str],
) -> OPMLFeed:
    kind = attrs.get("type", "").strip().lower()
    problem = ""
    if kind in _NOT_FEED_TYPES:
        problem = f"a web-scraping source (type {clean_line(kind)}), not a feed"
    elif kind in {"include", "link", "source"}:
        problem = f"a link to another outline (type {kind}), not a feed"
    # `category`: comma-separated, each a slash-delimited path ("/News/Tech").
    categories = [part for path in attrs.get("category", "").split(",") for part in path.split("/")]
    return OPMLFeed(
        url=url,
        title=title,
        site_url=attrs.get("htmlurl", "").strip(),
        tags=merge_tags((*folders, *categories)),
        problem=problem,
        interval=clean_line(ours.get("interval", ""))[:40],
        paused=_flag(ours.get("paused")),
        notify=_flag(ours.get("notify")),
        title_is_feeds=ours.get("title") == "feed",
    )


def clean_tag(name: str) -> str:
    """A tag name from a file: :func:`storyfeed.text.clean_tag` (a comma becomes a
    space), cut to MAX_TAG_LENGTH characters."""
    return text_clean_tag(name)[:MAX_TAG_LENGTH].strip()


def merge_tags(*groups: Iterable[str]) -> tuple[str, ...]:
    """Clean, non-empty tag names, each once (compared without case: the first
    spelling stays)."""
    seen: dict[str, str] = {}
    for name in (name for group in groups for name in group):
        tag = clean_tag(name)
        if tag and tag.casefold() not in seen:
            seen[tag.casefold()] = tag
    return tuple(seen.values())


def write_opml(feeds: Sequence[Feed], now: datetime) -> bytes:
    """An OPML 2.0 document of these feeds: one folder per tag holding its feeds (a
    feed with several tags is in each, as Feedly and Inoreader export), then the
    untagged feeds at the top level; folders and feeds in the order of their names."""
    root = etree.Element("opml", version="2.0", nsmap={"storyfeed": NAMESPACE})
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = "storyfeed subscriptions"
    etree.SubElement(head, "dateCreated").text = format_datetime(now, usegmt=True)
    body = etree.SubElement(root, "body")
    # By name, not by id: a list imported elsewhere and exported again reads the same.
    feeds = sorted(feeds, key=lambda feed: (_name(feed).casefold(), feed.url))
    by_tag: dict[str, tuple[str, list[Feed]]] = {}
    for feed in feeds:
        for tag in feed.tags:
            by_tag.setdefault(tag.casefold(), (tag, []))[1].append(feed)
    for key in sorted(by_tag):
        tag, tagged = by_tag[key]
        name = _NOT_XML.sub("", tag)
        folder = etree.SubElement(body, "outline", text=name, title=name)
        for feed in tagged:
            _outline(folder, feed)
    for feed in feeds:
        if not feed.tags:
            _outline(body, feed)
    etree.indent(root, space="  ")
    document: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return document + b"\n"


def _name(feed: Feed) -> str:
    return _NOT_XML.sub("", clean_line(feed.user_title or feed.feed_title)) or feed.url


def _outline(parent: etree._Element, feed: Feed) -> None:
    # `text` is required; a feed known by nothing but its URL is named by it (and
    # an importer that finds the URL as the name keeps no title).
    name = _name(feed)
    attrs = {"type": "rss", "text": name, "title": name, "xmlUrl": _NOT_XML.sub("", feed.url)}
    if feed.site_url:
        attrs["htmlUrl"] = _NOT_XML.sub("", feed.site_url)
    ours = {"title": "user" if feed.user_title else "feed"}
    if feed.refresh_interval is not None:
        ours["interval"] = str(feed.refresh_interval)
    if feed.status is FeedStatus.PAUSED:
        ours["paused"] = "yes"
    if not feed.notify:
        ours["notify"] = "off"
    attrs.update({f"{{{NAMESPACE}}}{key}": value for key, value in ours.items()})
    etree.SubElement(parent, "outline", attrs)
