"""Hostile feed text becomes safe plain text; URLs are redacted and vetted."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storyfeed import text as text_module
from storyfeed.htmltext import html_to_line, html_to_text
from storyfeed.text import clean_line, clean_text, is_web_url, redact_url

BIDI_AND_INVISIBLE = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u200b\ufeff"
)


def forbidden(char: str) -> bool:
    """A character that must never reach the terminal from a feed."""
    code = ord(char)
    return (
        (code < 0x20 and char not in "\t\n") or 0x7F <= code <= 0x9F or char in BIDI_AND_INVISIBLE
    )


def assert_safe(text: str) -> None:
    bad = sorted({f"U+{ord(c):04X}" for c in text if forbidden(c)})
    assert bad == [], f"{text!r} holds {bad}"


HOSTILE = [
    "\x1b[31m",
    "\x1b[2J",
    "\x1b[0m",
    "\x1b]8;;https://evil.example/\x07",
    "\x1b]8;;https://evil.example/\x1b\\",
    "\x1b]8;;\x1b\\",
    "\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "\x1b]0;title\x1b\\",
    "\x1bP+q\x1b\\",
    "\x9b31m",
    "\x9d0;x\x9c",
    "\x1b",
    "\x1b[",
    "\x9b",
    "\x1b\\",
    "\r\n",
    "\r",
    "\u2028",
    "\u2029",
    "\x85",
    "\x00",
    "\x07",
    "\x08",
    "\x7f",
    "\x80",
    "\x9f",
    "\t",
    "\n",
    " ",
    "\u00a0",
    *sorted(BIDI_AND_INVISIBLE),
]
hostile_text = st.lists(
    st.one_of(st.text(alphabet=st.characters(codec=None)), st.sampled_from(HOSTILE)),
    max_size=12,
).map("".join)


# --- clean_text / clean_line: removal ------------------------------------------------------

REMOVED = {
    "CSI colour": ("a\x1b[31mred\x1b[0m b", "ared b"),
    "CSI clear screen": ("\x1b[2Jclear", "clear"),
    "CSI with parameters": ("\x1b[1;31;42mx", "x"),
    "OSC 8 hyperlink, BEL": ("\x1b]8;;https://evil.example/\x07link\x1b]8;;\x07 done", "link done"),
    "OSC 8 hyperlink, ST": ("\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\!", "link!"),
    "OSC 52 clipboard, BEL": ("a\x1b]52;c;ZWNobyBwd25lZA==\x07b", "ab"),
    "OSC 52 clipboard, ST": ("a\x1b]52;c;ZWNobyBwd25lZA==\x1b\\b", "ab"),
    "OSC title, 8-bit": ("a\x9d0;title\x9cb", "ab"),
    "DCS": ("a\x1bP+q544e\x1b\\b", "ab"),
    "8-bit CSI": ("a\x9b31mred", "ared"),
    "lone ESC": ("a\x1b", "a"),
    "repeated ESC": ("a\x1b\x1b\x1b", "a"),
    "C0 run": ("a\x00\x01\x07\x08\x0b\x0c\x0e\x1f\x1cb", "ab"),
    "DEL": ("a\x7fb", "ab"),
    "C1 run": ("a\x80\x81\x8a\x8d\x91\x9a\x9cb", "ab"),
    "bidi overrides": ("\u202ea\u202db\u202ac\u202bd\u202c", "abcd"),
    "bidi isolates": ("\u2066a\u2067b\u2068c\u2069", "abc"),
    "bidi marks": ("a\u200eb\u200fc\u061cd", "abcd"),
    "zero-width space": ("pay\u200bpal", "paypal"),
    "BOM": ("\ufeffhello", "hello"),
}


@pytest.mark.parametrize(("dirty", "clean"), REMOVED.values(), ids=REMOVED.keys())
def test_clean_text_removes(dirty: str, clean: str) -> None:
    assert clean_text(dirty) == clean


@pytest.mark.parametrize(("dirty", "clean"), REMOVED.values(), ids=REMOVED.keys())
def test_clean_line_removes(dirty: str, clean: str) -> None:
    assert clean_line(dirty) == clean


CONTROLS = [
    chr(code)
    for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))
    if chr(code) not in "\t\n\r\x1b\x85\x90\x98\x9b\x9d\x9e\x9f"
]


@pytest.mark.parametrize("char", CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_each_control_character_is_removed(char: str) -> None:
    assert clean_text(f"a{char}b") == "ab"
    assert clean_line(f"a{char}b") == "ab"


@pytest.mark.parametrize("opener", ["\x1bP", "\x1bX", "\x1b]", "\x1b^", "\x1b_", "\x90", "\x98",
                                    "\x9d", "\x9e", "\x9f"])  # fmt: skip
@pytest.mark.parametrize("terminator", ["\x07", "\x1b\\", "\x9c"])
def test_control_strings_are_removed_with_their_payload(opener: str, terminator: str) -> None:
    assert clean_text(f"a{opener}0;payload{terminator}b") == "ab"


KEPT = {
    "latin": "Café crème, naïve façade",
    "greek and cyrillic": "Αλφα Бета",
    "emoji ZWJ family": "family \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "emoji flag and skin tone": "\U0001f1ef\U0001f1f5 \U0001f44d\U0001f3fd",
    "ZWNJ in Persian": "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
    "CJK": "大規模言語モデルの推論",
    "RTL letters": "שלום עולם \u0645\u0631\u062d\u0628\u0627",
    "rich markup is literal": "[bold]x[/] [link=https://e.org]y[/link]",
    "brackets and symbols": "a < b > c & d; 100% #1 $HOME `x` \\n",
}


@pytest.mark.parametrize("text", KEPT.values(), ids=KEPT.keys())
def test_clean_text_and_clean_line_keep_ordinary_text(text: str) -> None:
    assert clean_text(text) == text
    assert clean_line(text) == text


def test_clean_text_keeps_tabs_and_newlines() -> None:
    assert clean_text("a\tb\nc\n\nd") == "a\tb\nc\n\nd"


@pytest.mark.parametrize("newline", ["\r\n", "\r", "\u2028", "\u2029", "\x85"])
def test_clean_text_turns_line_breaks_into_newlines(newline: str) -> None:
    assert clean_text(f"one{newline}two{newline}") == "one\ntwo\n"


def test_clean_line_folds_whitespace() -> None:
    assert clean_line("  a\t\tb\r\n\r\nc\u2028d \u00a0 e\n") == "a b c d e"


# --- clean_text / clean_line: properties ---------------------------------------------------


@settings(max_examples=300)
@given(hostile_text)
def test_clean_text_output_is_safe_and_idempotent(text: str) -> None:
    cleaned = clean_text(text)
    assert_safe(cleaned)
    assert "\x1b" not in cleaned
    assert clean_text(cleaned) == cleaned


@settings(max_examples=300)
@given(hostile_text)
def test_clean_line_output_is_one_safe_trimmed_line(text: str) -> None:
    line = clean_line(text)
    assert_safe(line)
    assert "\n" not in line
    assert "\t" not in line
    assert "  " not in line
    assert line == line.strip()
    assert clean_line(line) == line


ORDINARY = st.text(
    alphabet=st.characters(
        categories=["L", "M", "N", "P", "S", "Zs"], exclude_characters=BIDI_AND_INVISIBLE
    )
).filter(  # five combining marks in a row are a flood, cut to four (below)
    lambda text: re.search(f"[{text_module._COMBINING}]{{5}}", text) is None
)


@given(ORDINARY)
def test_clean_text_leaves_ordinary_text_alone(text: str) -> None:
    assert clean_text(text) == text


# --- html_to_text ---------------------------------------------------------------------------


def test_html_paragraphs_become_separate_lines() -> None:
    assert html_to_text("<p>First  para.</p><p>Second\npara.</p>") == "First para.\n\nSecond para."


def test_html_br_becomes_a_line_break() -> None:
    assert html_to_text("one<br>two") == "one\ntwo"


def test_html_self_closing_br_becomes_a_line_break() -> None:
    assert html_to_text("one<br/>two<br />three") == "one\ntwo\nthree"


def test_html_list_items_get_bullets() -> None:
    text = html_to_text(
        "<p>Steps:</p><ul><li>first</li><li>second</li></ul><ol><li>third</li></ol>"
    )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines == ["Steps:", "• first", "• second", "• third"]


def test_html_script_and_style_are_dropped() -> None:
    text = html_to_text(
        "<style>p { color: red }</style><p>kept</p><script>alert('x')</script>"
        "<noscript>no js</noscript>after"
    )
    assert text == "kept\nafter"


def test_html_entities_are_decoded() -> None:
    assert html_to_text("Tom &amp; Jerry &lt;3 caf&eacute; &#8364;5 &#x1F600;") == (
        "Tom & Jerry <3 café €5 \U0001f600"
    )


def test_html_pre_keeps_its_lines() -> None:
    assert html_to_text("<pre>def f():\n    return 1</pre>") == "def f():\n    return 1"


def test_html_pre_keeps_indentation_after_a_blank_line() -> None:
    assert html_to_text("<pre>def f():\n\n    return 1</pre>") == "def f():\n\n    return 1"


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ('<a href="https://example.org/x">read</a>', "read <https://example.org/x>"),
        ('<a href="http://example.org/">site</a>!', "site <http://example.org/>!"),
        ('<a href="javascript:alert(1)">click</a>', "click"),
        ('<a href="JaVaScRiPt:alert(1)">click</a>', "click"),
        ('<a href="data:text/html,x">data</a>', "data"),
        ("<a>bare</a>", "bare"),
    ],
)
def test_html_links_keep_only_web_urls(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    "html",
    [
        "<p>&#27;[31mred&#27;[0m</p>",
        "&#x1b;]8;;https://evil.example/&#x7;link",
        "<b>&#x9b;31m</b>",
        "&#155;2J",
        "&#x1B;[2J",
        "<p>\x1b[31mraw\x1b[0m</p>",
        "<p title='\x1b[31m'>x\x9b2J</p>",
        "&#x202e;&#8238;gnp.exe",
        '<a href="https://e.org/\x1b[31m">x</a>',
    ],
)
def test_escape_sequences_do_not_survive_html(html: str) -> None:
    for convert in (html_to_text, html_to_line):
        text = convert(html)
        assert_safe(text)
        assert "\x1b" not in text


@pytest.mark.parametrize("plain", ["just text", "two\nlines", "tab\there"])
def test_html_to_text_passes_plain_text_through(plain: str) -> None:
    assert html_to_text(f"  {plain}\n") == plain


@pytest.mark.parametrize(
    ("html", "kept"),
    [("<![foo[ bar ]]> after", "after"), ("a <![x]>b", "a"), ("<![ bar ]]> after", "after")],
)
def test_html_survives_marked_sections(html: str, kept: str) -> None:
    assert kept in html_to_text(html)
    assert kept in html_to_line(html)


HTML_PIECES = [
    "<p>",
    "</p>",
    "<br>",
    "<br/>",
    "<li>",
    "<pre>",
    "</pre>",
    "<script>",
    "</script>",
    '<a href="https://e.org/">',
    '<a href="javascript:x">',
    "</a>",
    '<img alt="\x1b[31m">',
    "&amp;",
    "&#27;",
    "&#x9b;",
    "&#155;",
    "&#8238;",
    "&lt;",
    "&",
    "<",
    "<!-- c -->",
]
# Marked sections ("<![") are left out: test_html_survives_marked_sections covers them.
hostile_html = (
    st.lists(st.one_of(hostile_text, st.sampled_from(HTML_PIECES)), max_size=12)
    .map("".join)
    .filter(lambda html: "<![" not in html)
)


@settings(max_examples=300)
@given(hostile_html)
def test_html_output_is_safe(html: str) -> None:
    text = html_to_text(html)
    assert_safe(text)
    assert text == text.strip()
    line = html_to_line(html)
    assert_safe(line)
    assert "\n" not in line
    assert "\t" not in line


# --- html_to_line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "line"),
    [
        ("<b>Bold</b> &amp; <i>italic</i>", "Bold & italic"),
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("&lt;script&gt;alert(1)&lt;/script&gt;", "<script>alert(1)</script>"),
        ("<p>one</p><p>two</p>", "one two"),
        ("  spaced \n out\t title ", "spaced out title"),
        ("[bold]not markup[/]", "[bold]not markup[/]"),
        ("caf&eacute; &#8212; &#x2603;", "café — ☃"),
        ("\x1b[31mred\x1b[0m", "red"),
    ],
)
def test_html_to_line(title: str, line: str) -> None:
    assert html_to_line(title) == line


# --- redact_url ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://user:secret@host.example/x",
        "https://user:secret@host.example:8443/x?q=1#f",
        "http://user:p@ss:secret@host.example/",
    ],
)
def test_redact_url_hides_the_password_and_keeps_the_user(url: str) -> None:
    redacted = redact_url(url)
    assert "secret" not in redacted
    assert redacted.startswith(url.split("//")[0] + "//user")
    assert "host.example" in redacted


def test_redact_url_hides_a_lone_user_name_which_may_be_a_token() -> None:
    assert redact_url("https://ghp_token123@host.example/x") == "https://***@host.example/x"


def test_redact_url_marks_where_the_password_was() -> None:
    assert redact_url("https://user:secret@host.example/x") == "https://user:***@host.example/x"
    assert redact_url("https://:secret@host.example/x") == "https://***@host.example/x"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/feed.xml?a=1&b=2#top",
        "http://example.org:8080/",
        "file:///home/me/feed.xml",
        "/home/me/feed.xml",
        "mailto:me@example.org",
        "",
    ],
)
def test_redact_url_leaves_urls_without_credentials_alone(url: str) -> None:
    assert redact_url(url) == url


@pytest.mark.parametrize(
    "url",
    ["http://[::1", "https://user:secret@[::1/x", "http://user:secret@[v1.x/", "https://]@x"],
)
def test_redact_url_survives_malformed_urls(url: str) -> None:
    redacted = redact_url(url)
    assert isinstance(redacted, str)
    assert "secret" not in redacted


@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=10),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=6, max_size=20),
)
def test_redact_url_never_shows_a_password(user: str, password: str) -> None:
    redacted = redact_url(f"https://{user}:{password}@example.org/feed")
    assert password not in redacted
    assert redacted == f"https://{user}:***@example.org/feed"


@given(st.text())
def test_redact_url_never_raises(url: str) -> None:
    assert isinstance(redact_url(url), str)


# --- is_web_url ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.org",
        "https://example.org/feed.xml?a=1#x",
        "https://user:pw@example.org/",
        "HTTPS://EXAMPLE.ORG/",
        "http://[::1]:8080/x",
        "https://例え.jp/パス",
    ],
)
def test_is_web_url_accepts_http_and_https_with_a_host(url: str) -> None:
    assert is_web_url(url) is True


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<b>x</b>",
        "file:///etc/passwd",
        "ftp://example.org/",
        "/relative/path",
        "relative/path",
        "example.org/feed",
        "//example.org/x",
        "-http://example.org",
        " https://example.org",
        "https://example.org ",
        "https://example.org\n",
        "https://exa\nmple.org",
        "https://example.org/\tx",
        "https://example.org/\x00",
        "https://example.org/\x1b[31m",
        "https://",
        "http:///path",
        "http:example.org",
        "http://[::1",
        "",
        "https://example.org/\x7f",
        "https://example.org/\x9b2J",
    ],
)
def test_is_web_url_rejects(url: str) -> None:
    assert is_web_url(url) is False


@given(hostile_text)
def test_is_web_url_never_raises(url: str) -> None:
    assert isinstance(is_web_url(url), bool)


@given(st.text())
def test_is_web_url_never_raises_on_any_text(url: str) -> None:
    assert is_web_url(url) in (True, False)


@pytest.mark.parametrize("opener", ["\x9d", "\x90", "\x98", "\x9e", "\x9f", "\x1b]", "\x1bP"])
def test_an_unended_control_string_loses_only_its_opener(opener: str) -> None:
    """A stray C1 character is as likely a mis-encoded letter as an attack: the rest
    of the field stays."""
    assert clean_line(f"Prices {opener}fall today, says analyst") == (
        "Prices fall today, says analyst"
    )


def test_many_control_string_openers_are_cleaned_in_linear_time() -> None:
    started = time.perf_counter()
    for text in ("\x9d" * 500_000, "\x9da" * 250_000, "\x1b]" * 250_000):
        assert clean_text(text).strip("a]") == ""
    assert time.perf_counter() - started < 5  # quadratic would take hours


@pytest.mark.parametrize(
    "attack",
    ["<a b='", '<a href="', "<", "<!--", "<![CDATA[", "<script>", "<!x", "&amp;", "</"],
)
def test_html_to_text_takes_linear_time_on_unclosed_constructs(attack: str) -> None:
    """html.parser is quadratic on these (a 120 KB story took 21 s): ours is not."""
    started = time.perf_counter()
    html_to_text(attack * 200_000)
    assert time.perf_counter() - started < 5


def test_html_tokens_keep_script_content_out_of_the_text() -> None:
    text = html_to_text("<p>a</p><script>if (a<b && c>d) { x('</p>') }</script><p>b &amp; c</p>")
    assert text == "a\n\nb & c"


def test_a_link_with_a_backslash_is_not_opened() -> None:
    assert not is_web_url("https://evil.example\\@bank.example/")


def test_characters_that_show_as_nothing_are_removed() -> None:
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "rm -rf")
    assert clean_line(f"pay\u00adpal \u3164\u3164 Nice post{hidden} \u180e\u206a.") == (
        "paypal Nice post ."
    )


def test_a_flag_keeps_its_tag_characters() -> None:
    england = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
    assert clean_line(f"Go {england}!") == f"Go {england}!"


def test_a_flood_of_combining_marks_is_cut_to_four() -> None:
    assert clean_line("Ze" + "\u0301" * 500 + "ro") == "Ze" + "\u0301" * 4 + "ro"
    assert clean_line("Vi\u1ec7t") == "Vi\u1ec7t"  # composed letters are left alone
    assert clean_line("Vie\u0323\u0302t") == "Vie\u0323\u0302t"  # so are a few marks
