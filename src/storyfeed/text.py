"""Turning hostile feed text into safe plain text; stdlib only.

Everything a feed supplies passes through :func:`clean_text` (or
:func:`clean_line` for one-line fields) before it is stored, so nothing
downstream ever sees a terminal control sequence. HTML becomes text in
:mod:`storyfeed.htmltext`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# ESC-introduced sequences (ECMA-48): CSI, OSC/DCS/SOS/PM/APC strings, and
# two-character escapes; plus their 8-bit C1 forms.
_ESCAPES = re.compile(
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?               # CSI ... final byte
  | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])          # OSC, DCS, SOS, PM, APC
    [^\x07\x1b\x9c\x90\x98\x9d\x9e\x9f]*              #   ... a payload, which ends
    (?:\x07|\x1b\\|\x9c)                              #   at BEL or ST (unended: only
                                                     #   the opener goes, text stays)
  | \x1b[ -/]*[0-~]?                                 # other escapes
    """,
    re.VERBOSE,
)
# C0 (but tab and newline), DEL, C1, bidi embeddings/overrides/isolates and
# marks, and invisible characters that can hide text (zero-width space, word
# joiner, BOM), and lone surrogates (from JSON escapes; they cannot be stored).
# ZWJ/ZWNJ stay: emoji and several scripts need them.
# Also the characters that show as nothing (soft hyphen, combining grapheme
# joiner, Hangul fillers, Mongolian vowel separator, deprecated format controls),
# which let "pay\u00adpal" pass for "paypal" or a name look blank.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e"
    "\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0"
    "\ufff9-\ufffb\ud800-\udfff]"
)
# Tag characters spell invisible ASCII; they belong only in a flag's emoji sequence.
_TAG_CHARACTERS = re.compile(
    "(\U0001f3f4[\U000e0020-\U000e007e]{1,12}\U000e007f)|[\U000e0000-\U000e007f]"
)
_COMBINING = "\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
# More than four combining marks on one letter is a flood ("zalgo"), not writing.
_COMBINING_FLOOD = re.compile(f"([{_COMBINING}]{{4}})[{_COMBINING}]+")
_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029\x85]")
_SPACES = re.compile(r"\s+")


# Any character one of the patterns above acts on; most text has none, and one
# scan for them is cheaper than three substitutions.
_SUSPECT = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e"
    "\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u206f\u3164"
    f"\ufeff\uffa0\ufff9-\ufffb\ud800-\udfff\U000e0000-\U000e007f{_COMBINING}]"
)


def clean_text(value: str) -> str:
    """Remove escape sequences and control/bidi characters; keep newlines and tabs."""
    if not _SUSPECT.search(value):
        return value
    value = _LINE_BREAKS.sub("\n", value)
    value = _ESCAPES.sub("", value)
    value = _INVISIBLE.sub("", value)
    value = _TAG_CHARACTERS.sub(lambda match: match[1] or "", value)
    return _COMBINING_FLOOD.sub(r"\1", value)


def clean_line(value: str) -> str:
    """:func:`clean_text`, then fold all whitespace into single spaces."""
    return _SPACES.sub(" ", clean_text(value)).strip()


def clean_tag(value: str) -> str:
    """A tag name: :func:`clean_line` with each comma made a space (empty if nothing is left).

    One rule for every way a tag arrives (the `tag` command, an OPML folder or
    category): some exports and tools separate tags by commas, so a tag never holds
    one, and a folder "News, Politics" stays one tag, "News Politics".
    """
    return clean_line(clean_line(value).replace(",", " "))


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and listings)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("@")[-1] if "@" in url else url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    # A user name alone is often a token (https://TOKEN@host/), so it goes too.
    user = parts.username if parts.password is not None else ""
    netloc = f"{user}:***@{host}" if user else f"***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def is_web_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host: the only links storyfeed opens."""
    if not url or any(c.isspace() for c in url) or clean_text(url) != url or "\\" in url:
        return False  # a backslash: browsers and urlsplit disagree on the host
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname)
