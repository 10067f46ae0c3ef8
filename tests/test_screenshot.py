"""README's picture of `storyfeed list` shows what the listing code draws today."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def words(svg: str) -> list[str]:
    """The picture's text, cell by cell (rich's SVG template may change; this must not)."""
    return re.findall(r"<text [^>]*>([^<]*)</text>", svg)


def test_the_readme_screenshot_is_current(tmp_path: Path) -> None:
    drawn = tmp_path / "list.svg"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "screenshot.py"), str(drawn)],
        check=True,
        timeout=120,
    )
    current = (REPO / "docs" / "list.svg").read_text()
    message = "the listing changed: run scripts/screenshot.py and commit docs/list.svg"
    assert words(drawn.read_text()) == words(current), message
    text = "".join(words(current)).replace("&#160;", " ")
    assert "NEW" in text and "Terminal Notes" in text
    assert "docs/list.svg" in (REPO / "README.md").read_text()
