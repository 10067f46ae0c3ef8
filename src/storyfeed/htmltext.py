"""HTML fragments from feeds as plain terminal text; stdlib only.

The tokenizer is our own and linear in its input: html.parser takes quadratic
time on some unclosed constructs, and story text is converted when it is shown,
outside the parse sandbox.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass

from storyfeed.text import clean_line, clean_text

_SPACES = re.compile(r"\s+")
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


# One token of HTML. Every alternative starts with "<" and stops at the next "<"
# (or at the end of a comment or CDATA section), so scanning is linear in the
# input whatever it holds; html.parser is quadratic on some unclosed constructs.
_TOKEN = re.compile(
    r"<!--.*?(?:-->|\Z)"
    r"|<!\[CDATA\[(?P<cdata>.*?)(?:\]\]>|\Z)"
    r"|<(?P<end>/)?(?P<tag>[A-Za-z][A-Za-z0-9:-]*)(?P<attrs>[^<>]*)>"
    r"|<[!?/][^<>]*>",
    re.S,
)
_ATTRIBUTE = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_RAW_TEXT = frozenset({"script", "style"})  # their content is not markup


@dataclass(frozen=True, slots=True)
class Tag:
    name: str  # lower case
    attrs: dict[str, str]
    end: bool = False  # </name>
    closed: bool = False  # <name/>


def tokens(value: str) -> Iterator[str | Tag]:
    """Text (entities decoded) and tags of an HTML fragment, in order."""
    position = 0
    while True:
        match = _TOKEN.search(value, position)
        if match is None:
            break
        if match.start() > position:
            yield html.unescape(value[position : match.start()])
        position = match.end()
        if match["cdata"] is not None:
            yield match["cdata"]
        elif match["tag"] is not None:
            name, attrs = match["tag"].lower(), match["attrs"]
            closed = attrs.endswith("/")
            yield Tag(name, {} if match["end"] else _attributes(attrs), bool(match["end"]), closed)
            if name in _RAW_TEXT and not match["end"] and not closed:
                ending = re.compile(rf"</{name}\s*>", re.I).search(value, position)
                position = ending.end() if ending else len(value)
                yield Tag(name, {}, end=True)
    if position < len(value):
        yield html.unescape(value[position:])


def _attributes(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in _ATTRIBUTE.finditer(text):
        value = match.group(2) or match.group(3) or match.group(4) or ""
        found.setdefault(match.group(1).lower(), html.unescape(value))
    return found


class _TextExtractor:
    """Collects the readable text of an HTML fragment."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._skip = 0
        self._pre = 0
        self._links: list[str] = []

    def feed(self, value: str) -> None:
        for token in tokens(value):
            if isinstance(token, str):
                self.handle_data(token)
            elif token.end:
                self.handle_endtag(token.name)
            elif token.closed:
                # `<br/>` is one line break, not a start and an end tag.
                if token.name not in _SKIP_TAGS and token.name != "pre":
                    self.handle_starttag(token.name, token.attrs)
            else:
                self.handle_starttag(token.name, token.attrs)

    def handle_starttag(self, tag: str, attrs: dict[str, str]) -> None:
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
            alt = attrs.get("alt")
            if alt:
                self.parts.append(f"[image: {alt}]")
        elif tag == "a":
            self._links.append(attrs.get("href") or "")

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


def html_to_text(value: str) -> str:
    """Readable plain text from an HTML fragment (or from plain text)."""
    if "<" not in value and "&" not in value:
        return clean_text(value).strip()
    parser = _TextExtractor()
    parser.feed(value)
    text = clean_text("".join(parser.parts))
    lines = [line.rstrip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def html_to_line(value: str) -> str:
    """One line of plain text from a title that may hold HTML or entities."""
    if "<" in value:
        return clean_line(html_to_text(value))
    return clean_line(html.unescape(value))
