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
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\ufeff\ufff9-\ufffb\ud800-\udfff]"
)
_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029\x85]")
_SPACES = re.compile(r"\s+")


# Any character one of the patterns above acts on; most text has none, and one
# scan for them is cheaper than three substitutions.
_SUSPECT = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\ufeff\ufff9-\ufffb\ud800-\udfff]"
)


def clean_text(value: str) -> str:
    """Remove escape sequences and control/bidi characters; keep newlines and tabs."""
    if not _SUSPECT.search(value):
        return value
    value = _LINE_BREAKS.sub("\n", value)
    value = _ESCAPES.sub("", value)
    return _INVISIBLE.sub("", value)


def clean_line(value: str) -> str:
    """:func:`clean_text`, then fold all whitespace into single spaces."""
    return _SPACES.sub(" ", clean_text(value)).strip()


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
    if not url or any(c.isspace() for c in url) or clean_text(url) != url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname)
