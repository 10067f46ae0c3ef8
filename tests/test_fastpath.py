"""The fast paths for plain RSS 2.0 and Atom give the same stories as feedparser.

For every corpus file the fast path takes, its ParsedFeed must equal feedparser's
(the warnings, which nothing reads, aside); every other file goes to feedparser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from conftest import CORPUS, DATA, NOW
from storyfeed import parse
from storyfeed.errors import ParseError

if not CORPUS.is_dir():
    pytest.skip(f"feed corpus not found at {CORPUS}", allow_module_level=True)

BASE = "https://corpus.example/dir/feed.xml"


def documents() -> list[Path]:
    names = {"SOURCE.md", "LICENSE", "README.md"}
    return sorted(
        p for p in [*CORPUS.rglob("*"), *DATA.glob("*")] if p.is_file() and p.name not in names
    )


@pytest.mark.parametrize(
    ("version", "reader"), [("rss20", parse._plain_rss), ("atom10", parse._plain_atom)]
)
def test_the_fast_path_agrees_with_feedparser_on_every_file_it_takes(
    version: str, reader: Callable[..., Any]
) -> None:
    taken, differ = 0, []
    for path in documents():
        body = path.read_bytes()
        fast = reader(body, {})
        if fast is None:
            continue
        taken += 1
        ours = parse._assemble(version, (), *fast, BASE, NOW)
        try:
            reference = parse._with_feedparser(body, {}, BASE, NOW)
        except ParseError as exc:
            differ.append(f"{path}: feedparser refuses it ({exc})")
            continue
        if replace(reference, warnings=()) != ours:
            differ.append(str(path))
    assert taken > 300, f"the fast path took only {taken} files"
    assert differ == [], f"{len(differ)} of {taken} differ:\n" + "\n".join(differ[:40])
