"""HTML fragments from feeds as plain terminal text; stdlib only.

Apart from :mod:`storyfeed.text` so that commands that never convert HTML (a
listing) do not pay for importing ``html.parser``.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from storyfeed.text import clean_line, clean_text

_SPACES = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>?")
_BLANK_LINES = re.compile(r"\n{3,}")

_BLOCK_TAGS = frozenset(
    {
        *("address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt"),
        *("figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6"),
        *("header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table"),
        *("tbody", "td", "tfoot", "th", "thead", "tr", "ul"),
    }
)
_VOID_BLOCKS = frozenset({"br", "hr", "li"})  # no line break at their end tag
_SKIP_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript", "svg"})


class _TextExtractor(HTMLParser):
    """Collects the readable text of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._pre = 0
        self._links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag == "pre":
            self._pre += 1
            self.parts.append("\n\n")
        elif tag == "li":
            self.parts.append("\n  • ")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n" if tag in {"p", "blockquote", "h1", "h2", "h3"} else "\n")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.parts.append(f"[image: {alt}]")
        elif tag == "a":
            self._links.append(dict(attrs).get("href") or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # `<br/>` is one line break, not a start and an end tag.
        if tag not in _SKIP_TAGS and tag != "pre":
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
            self.parts.append("\n\n")
        elif tag in _BLOCK_TAGS and tag not in _VOID_BLOCKS:
            self.parts.append("\n")
        elif tag == "a" and self._links:
            href = self._links.pop()
            if href.startswith(("http://", "https://")):
                self.parts.append(f" <{href}>")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.parts.append(data if self._pre else _SPACES.sub(" ", data))

    def parse_marked_section(self, i: int, report: int = 1) -> int:
        """``<![CDATA[...]]>`` is text; other marked sections are skipped.

        The standard library raises AssertionError on sections it does not
        know (``<![foo[``), which a feed can contain.
        """
        raw = self.rawdata
        if raw.startswith("<![CDATA[", i):
            end = raw.find("]]>", i + 9)
            if end < 0:
                return -1
            self.handle_data(raw[i + 9 : end])
            return end + 3
        end = raw.find("]>", i + 3)
        return -1 if end < 0 else end + 2


def html_to_text(value: str) -> str:
    """Readable plain text from an HTML fragment (or from plain text)."""
    if "<" not in value and "&" not in value:
        return clean_text(value).strip()
    parser = _TextExtractor()
    try:
        parser.feed(value)
        parser.close()
    except AssertionError:  # html.parser's reaction to some malformed declarations
        parser.parts = [_TAG.sub(" ", value)]
    text = clean_text("".join(parser.parts))
    lines = [line.rstrip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def html_to_line(value: str) -> str:
    """One line of plain text from a title that may hold HTML or entities."""
    if "<" in value:
        return clean_line(html_to_text(value))
    return clean_line(html.unescape(value))
