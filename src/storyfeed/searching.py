"""Use case: full-text search over the stories, and its query language.

A query is words, as a user types them. Each becomes an FTS5 phrase in double
quotes, so nothing in it (``c++``, ``don't``, ``AND``, ``title:foo``) is read as
FTS5 syntax by accident; the few operators we offer are recognised here:

- ``"a phrase"``: the words next to each other, in that order;
- ``word*``: a prefix (``pars*`` finds parse, parser, parsing);
- ``one OR other``: either (``OR`` in capitals);
- ``-word`` or ``NOT word``: stories without it;
- ``title:word``, ``author:``, ``summary:``, ``content:``: only in that field.

Every other term must match (an implicit AND; a literal ``AND`` is skipped).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from storyfeed.core import App, resolve_feed
from storyfeed.errors import DatabaseBusyError, SearchQueryError
from storyfeed.models import HIT_END, HIT_START
from storyfeed.reports import MarkedStory, SearchHit
from storyfeed.text import clean_line

# Stories whose indexing is worth telling the user about (half a second or more).
LONG_CATCH_UP = 2000

_COLUMNS = ("title", "author", "summary", "content")
# One term: an optional "-", an optional "column:", then a quoted phrase (which a
# missing closing quote ends at the end of the query) or a word; a "*" may follow.
_TERM = re.compile(
    r"(?P<minus>-)?(?:(?P<column>[A-Za-z]+):(?=\S))?"
    r'(?:"(?P<phrase>[^"]*)(?:"|$)|(?P<word>[^\s"]+))(?P<star>\*)?'
)


@dataclass(frozen=True, slots=True)
class _Term:
    text: str
    column: str = ""
    prefix: bool = False
    negated: bool = False

    def fts(self) -> str:
        quoted = '"' + self.text.replace('"', '""') + '"' + (" *" if self.prefix else "")
        return f"{self.column} : {quoted}" if self.column else quoted


def _searchable(text: str) -> bool:
    """Whether FTS5's unicode61 tokenizer finds a token in it (letters, digits or
    private-use characters; everything else separates tokens)."""
    return any(unicodedata.category(c)[0] in "LN" or unicodedata.category(c) == "Co" for c in text)


def _terms(query: str, *, operators: bool = True) -> list[_Term | str]:
    """The query's terms in order, and its operators ("OR", "NOT") as strings
    (without ``operators``, those are words too)."""
    found: list[_Term | str] = []
    position = 0
    while True:
        while position < len(query) and query[position].isspace():
            position += 1
        if position >= len(query):
            return found
        match = _TERM.match(query, position)
        assert match is not None  # any other character than a space starts a phrase or a word
        position = match.end()
        bare = not (match["minus"] or match["column"] or match["star"])
        if operators and bare and match["word"] in {"OR", "AND", "NOT"}:
            if match["word"] != "AND":
                found.append(match["word"])
            continue
        column = (match["column"] or "").lower()
        text = match["phrase"] if match["phrase"] is not None else match["word"]
        if match["column"] and column not in _COLUMNS:
            # Not a field of ours (`https://...`, `c:foo`): the whole of it is words.
            column, text = "", f"{match['column']}:{text}"
        prefix = bool(match["star"])
        if match["word"] is not None and not prefix and text.endswith("*"):
            prefix, text = True, text.rstrip("*")
        if _searchable(text):
            found.append(_Term(text, column, prefix, negated=bool(match["minus"])))


def fts_query(query: str) -> str:
    """The FTS5 MATCH expression for a query as a user typed it.

    Raises SearchQueryError when nothing is left to search for.
    """
    groups: list[list[_Term]] = []  # each group: terms joined by OR
    excluded: list[_Term] = []
    joining = negating = False
    items = _terms(clean_line(query))
    if not any(isinstance(item, _Term) for item in items):
        items = _terms(clean_line(query), operators=False)  # `search OR`: the word
    for item in items:
        if item == "OR":
            joining = bool(groups)
            continue
        if item == "NOT":
            negating = True
            continue
        assert isinstance(item, _Term)
        if item.negated or negating:
            excluded.append(item)
        elif joining:
            groups[-1].append(item)
        else:
            groups.append([item])
        joining = negating = False
    if not groups:
        if excluded:
            raise SearchQueryError(
                "a search needs at least one word to find, not only words to leave out"
            )
        shown = clean_line(query)
        raise SearchQueryError(f"nothing to search for in {shown!r}: it has no letters or digits")
    found = " AND ".join("(" + " OR ".join(term.fts() for term in group) + ")" for group in groups)
    if excluded:
        found = f"({found}) NOT (" + " OR ".join(term.fts() for term in excluded) + ")"
    return found


# --- snippets ----------------------------------------------------------------------

SNIPPET_WIDTH = 120  # characters of text around the first hit
_LEAD = 30  # of which before it
_ENTITY = re.compile(r"&#?[\w\x02\x03]+;")  # the tokenizer finds words in "&amp;" too


def _free_characters(text: str) -> tuple[str, str]:
    """Two private-use characters that ``text`` does not hold: stand-ins for the
    markers while HTML becomes text (which removes every control character)."""
    free = (chr(code) for code in range(0xE000, 0xF900) if chr(code) not in text)
    return next(free), next(free)


def _marked_line(html: str) -> str:
    """A marked HTML fragment as one line of plain text, markers kept."""
    from storyfeed.htmltext import html_to_line

    start, end = _free_characters(html)
    unmarked = _ENTITY.sub(lambda m: m[0].replace(HIT_START, "").replace(HIT_END, ""), html)
    line = html_to_line(unmarked.replace(HIT_START, start).replace(HIT_END, end))
    return line.replace(start, HIT_START).replace(end, HIT_END)


def _spans(marked: str) -> tuple[str, list[tuple[int, int]]]:
    """The text without markers, and where its hits are."""
    plain: list[str] = []
    spans: list[tuple[int, int]] = []
    length, opened = 0, -1
    for piece in re.split(f"([{HIT_START}{HIT_END}])", marked):
        if piece == HIT_START:
            opened = length if opened < 0 else opened
        elif piece == HIT_END:
            if 0 <= opened < length:
                spans.append((opened, length))
            opened = -1
        else:
            plain.append(piece)
            length += len(piece)
    if 0 <= opened < length:
        spans.append((opened, length))
    return "".join(plain), spans


def cut_snippet(marked: str, width: int = SNIPPET_WIDTH) -> str:
    """About ``width`` characters of a marked line around its first hit, cut at
    spaces where one is near, with "…" where text was left out."""
    plain, spans = _spans(marked)
    begin, end = 0, len(plain)
    if len(plain) > width:
        first = spans[0][0] if spans else 0
        begin = max(0, first - _LEAD)
        if begin:
            space = plain.find(" ", begin, first)
            begin = space + 1 if space >= 0 else begin
        end = min(len(plain), begin + width)
        if end < len(plain):
            space = plain.rfind(" ", begin + width * 2 // 3, end)
            end = space if space >= 0 else end
    pieces = ["…"] if begin else []
    position = begin
    for left, right in spans:
        left, right = max(left, begin), min(right, end)
        if left >= right:
            continue
        pieces += [plain[position:left], HIT_START, plain[left:right], HIT_END]
        position = right
    pieces.append(plain[position:end])
    if end < len(plain):
        pieces.append("…")
    return "".join(pieces).strip()


def snippet(found: MarkedStory) -> str:
    """One marked line from the first of summary and content with a hit in its
    text; without one (the hit was in the title, the author or markup), the
    start of the summary or content."""
    for text in (found.summary, found.content):
        if HIT_START in text:
            line = _marked_line(text)
            if HIT_START in line:
                return cut_snippet(line)
    text = found.summary or found.content
    return cut_snippet(_marked_line(text.replace(HIT_START, "").replace(HIT_END, "")))


# --- searching ---------------------------------------------------------------------

IndexProgress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[SearchHit]
    indexed: int = 0  # stories indexed first
    warnings: list[str] = field(default_factory=list)


def search(
    app: App,
    query: str,
    *,
    feeds: Sequence[str] = (),
    limit: int | None = None,
    progress: IndexProgress | None = None,
) -> SearchResult:
    """Stories matching ``query`` (see the module's doc), most relevant first;
    ``limit`` None: all. Stories stored since the last search are indexed first.
    Nothing is marked shown or read."""
    match = fts_query(query)
    known = app.store.feeds() if feeds else []
    feed_ids = list(dict.fromkeys(resolve_feed(known, name).id for name in feeds))
    warnings: list[str] = []
    indexed = 0
    try:
        indexed = app.store.catch_up_search_index(progress)
    except DatabaseBusyError:
        warnings.append(
            "the database is busy, so the newest stories were not indexed; "
            "they may be missing from these results"
        )
    found = app.store.search(match, feed_ids=feed_ids, limit=limit)
    hits = [
        SearchHit(
            story=marked.story,
            rank=rank,
            score=round(-marked.score, 6),
            title=marked.title,
            snippet=snippet(marked),
        )
        for rank, marked in enumerate(found, start=1)
    ]
    return SearchResult(hits, indexed, warnings)
