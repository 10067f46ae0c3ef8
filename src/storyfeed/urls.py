"""What a user may type as a feed address, and one spelling per address; stdlib only.

:func:`normalise_url` turns input (an http(s) or file URL, a local path, a bare
host) into a URL or raises InvalidURLError; :func:`canonical_url` gives every
spelling of one address the same form, so a feed cannot be subscribed twice.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes, urlsplit, urlunsplit

from storyfeed.errors import InvalidURLError
from storyfeed.text import clean_line, redact_url

_FILE_SUFFIXES = (".xml", ".rss", ".atom", ".rdf", ".json", ".html", ".htm", ".opml", ".txt")
_HOST_AND_PORT = re.compile(
    r"^(?:localhost|[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}|\d{1,3}(?:\.\d{1,3}){3}):\d+(?:/|$)", re.I
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_url(text: str, cwd: Path | None = None) -> str:
    """A feed URL from what a user typed: http(s)/file URL, local path, or bare host."""
    value = text.strip()
    if not value:
        raise InvalidURLError("an empty URL")
    if "\0" in value or len(value) > 8192:
        raise InvalidURLError("not a usable URL or path")
    if _HOST_AND_PORT.match(value):
        value = "https://" + value  # `example.org:8080/feed`: a host and port, not a scheme
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise InvalidURLError(f"{redact_url(value)!r} is not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme in {"http", "https", "file"}:
        return _checked(value)
    path = _existing_path(value, cwd)
    if path is not None:
        return path.as_uri()
    if len(scheme) > 1:
        raise InvalidURLError(f"cannot subscribe to {scheme}: URLs; use http, https or a file")
    host = value.split("/", 1)[0]
    if "/" not in value and value.lower().endswith(_FILE_SUFFIXES):
        raise InvalidURLError(f"no such file: {value}")
    if "." in host and " " not in value and not value.startswith((".", "/", "~")):
        return _checked("https://" + value)
    raise InvalidURLError(f"{value!r} is neither a URL nor an existing file")


def _checked(url: str) -> str:
    if clean_line(url) != url:
        # Control, bidi or invisible characters (or line breaks) would be stored and shown
        # with the feed: refused, as a feed's own text would have them removed.
        raise InvalidURLError(f"{redact_url(url)!r} holds control or invisible characters")
    parts = urlsplit(url)
    if parts.scheme.lower() != "file":
        if not parts.hostname:
            raise InvalidURLError(f"{redact_url(url)!r} has no host name")
        try:
            parts.port  # noqa: B018 (raises ValueError for a bad port)
        except ValueError as exc:
            raise InvalidURLError(f"{redact_url(url)!r} has an invalid port") from exc
    try:
        return canonical_url(url)
    except ValueError as exc:
        raise InvalidURLError(f"{redact_url(url)!r} is not a valid URL ({exc})") from exc


def _existing_path(value: str, cwd: Path | None) -> Path | None:
    """The resolved path when ``value`` names an existing file; errors are the user's."""
    try:
        path = Path(value).expanduser()
        if not path.is_absolute() and cwd is not None:
            path = cwd / path
        return path.resolve() if path.exists() else None
    except RuntimeError:  # `~nosuchuser/feed.xml`
        return None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InvalidURLError(f"cannot use that path: {reason}") from exc


def canonical_url(url: str) -> str:
    """One spelling per address, so a feed cannot be subscribed twice under two.

    Lower-case scheme and host, no default port, no fragment or empty query, dot
    segments removed; file paths percent-encoded one way (bytes kept as bytes).
    Raises ValueError.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        path = posixpath.normpath(quote(unquote_to_bytes(parts.path)) or "/")
        return urlunsplit(("file", "", "/" + path.lstrip("/"), "", ""))
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    path = remove_dot_segments(parts.path) or "/"
    return urlunsplit((scheme, netloc, path, parts.query, ""))


def remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4: `/a/./b/../c` is `/a/c`; empty segments (`//`) are kept."""
    if "." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")
    for segment in segments:
        if segment == "..":
            if len(output) > 1:
                output.pop()
        elif segment != ".":
            output.append(segment)
    result = "/".join(output)
    if segments[-1] in {".", ".."}:
        result += "/"
    if path.startswith("/") and not result.startswith("/"):
        result = "/" + result
    return result


def same_url(first: str, second: str) -> bool:
    try:
        return canonical_url(first) == canonical_url(second)
    except ValueError:
        return first == second
