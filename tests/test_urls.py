"""What a user may type as a feed address, and one spelling per address."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storyfeed.errors import InvalidURLError
from storyfeed.urls import canonical_url, normalise_url, remove_dot_segments, same_url


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("https://h.example//a//b.xml", "https://h.example//a//b.xml"),  # not a host
        ("HTTP://Example.ORG:80/Feed?", "http://example.org/Feed"),
        ("https://example.org:443/a/./b/../c", "https://example.org/a/c"),
        ("https://example.org", "https://example.org/"),
        ("https://u:p@Example.org/x#frag", "https://u:p@example.org/x"),
        ("http://[::1]:8080/feed", "http://[::1]:8080/feed"),
        ("file:///tmp/%ff%fe.xml", "file:///tmp/%FF%FE.xml"),  # bytes stay bytes
        ("file:///tmp/with space.xml", "file:///tmp/with%20space.xml"),
        ("file:///tmp/%7e/x.xml", "file:///tmp/~/x.xml"),
    ],
)
def test_canonical_url(typed: str, expected: str) -> None:
    assert canonical_url(typed) == expected
    assert canonical_url(expected) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/./b/../c/", "/a/c/"),
        ("/a/b/..", "/a/"),
        ("/..", "/"),
        ("/a//b/./", "/a//b/"),
        ("/plain", "/plain"),
    ],
)
def test_remove_dot_segments(path: str, expected: str) -> None:
    assert remove_dot_segments(path) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("localhost:8080/feed", "https://localhost:8080/feed"),
        ("127.0.0.1:8080/feed", "https://127.0.0.1:8080/feed"),
        ("example.org:8080/feed", "https://example.org:8080/feed"),
        ("example.org/blog", "https://example.org/blog"),
    ],
)
def test_hosts_typed_without_a_scheme(typed: str, expected: str) -> None:
    assert normalise_url(typed) == expected


@pytest.mark.parametrize(
    ("typed", "fragment"),
    [
        ("feed.xml", "no such file"),
        ("x" * 300 + "/feed.xml", "cannot use that path"),
        ("/" + "x" * 300 + "/feed.xml", "cannot use that path"),
        ("~nosuchuserxyz/feed.xml", "neither a URL nor an existing file"),
        ("file:///tmp/a\0b.xml", "not a usable URL"),
        ("http://[::1", "not a valid URL"),
        ("http://example.org:99999/", "invalid port"),
        ("gopher://example.org/", "cannot subscribe to gopher"),
    ],
)
def test_unusable_input(typed: str, fragment: str) -> None:
    with pytest.raises(InvalidURLError, match=fragment):
        normalise_url(typed)


def test_local_paths_become_file_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feed = tmp_path / "my feed.xml"
    feed.write_text("<rss/>")
    monkeypatch.chdir(tmp_path)
    assert normalise_url("my feed.xml") == feed.resolve().as_uri()
    assert normalise_url(str(feed)) == feed.resolve().as_uri()
    with pytest.raises(InvalidURLError):
        normalise_url("./my feed.xml", cwd=Path(os.sep))  # relative to another folder
    assert same_url(normalise_url("my feed.xml"), f"file://{tmp_path}/my%20feed.xml")


@pytest.mark.parametrize(
    "url",
    [
        "https://a.example/\u202elmx.sser",  # right-to-left override
        "https://a.example/feed\x9b2J",  # C1 CSI
        "https://a.example/\u200bfeed",  # zero-width space
        "https://a.example/fe\ned",
        "https://a.example/a\tb",
    ],
)
def test_urls_holding_control_or_invisible_characters_are_refused(url: str) -> None:
    with pytest.raises(InvalidURLError, match="control or invisible"):
        normalise_url(url)
