"""Draw docs/list.svg: `storyfeed list` as a terminal shows it, exported by rich.

The picture is made by storyfeed's own listing code (reading.list_stories, then
render.story_table, as `storyfeed list` calls them) on two small feeds written
below, at a pinned time, so it changes only when the output does. A test renders
it again and compares (tests/test_screenshot.py).

    python scripts/screenshot.py [OUTPUT]    # default: docs/list.svg
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
WIDTH = 100
OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "list.svg"

# (title, published, state): state is "read", "unread" or "new"
FEEDS = {
    "LLM Stories": [
        ("MoE and Expert Parallelism: From One Big FFN to 256 Small Ones", "2026-05-31T18:00",
         "new"),
        ("Prefill and Decode Disaggregation: Two Phases on Opposite Machines", "2026-05-27T08:00",
         "new"),
        ("Speculative Decoding, Drawn Step by Step", "2026-05-09T10:00", "unread"),
        ("KV Cache Quantisation Without Tears", "2026-04-21T07:00", "read"),
        ("Why Attention Is Quadratic, and What Flash Attention Changes", "2025-12-24T12:00",
         "read"),
    ],
    "Terminal Notes": [
        ("Sixel, Kitty and iTerm: Pictures in a Terminal", "2026-06-01T08:10", "new"),
        ("A Tour of ECMA-48 Escape Sequences", "2026-05-30T16:45", "unread"),
        ("Writing a Pager in 200 Lines", "2026-05-12T09:00", "read"),
    ],
}  # fmt: skip


def feed_document(title: str, stories: list[tuple[str, str, str]]) -> str:
    slug = title.lower().replace(" ", "-")
    items = "".join(
        f"<item><title>{name}</title><link>https://example.org/{slug}/{number}</link>"
        f"<guid>https://example.org/{slug}/{number}</guid>"
        f"<pubDate>{datetime.fromisoformat(when).strftime('%a, %d %b %Y %H:%M:%S +0000')}"
        "</pubDate></item>"
        for number, (name, when, _state) in enumerate(stories)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://example.org/{slug}/</link>{items}</channel></rss>"
    )


def draw(output: Path) -> None:
    os.environ["TZ"] = "UTC"  # dates are shown in local time
    time.tzset()
    with tempfile.TemporaryDirectory() as home:
        os.environ["STORYFEED_HOME"] = home
        Path(home, "config.toml").write_text('default_feed = ""\n')
        from storyfeed import core, reading, render, subscriptions
        from storyfeed.config import default_paths

        app = core.App(default_paths(), clock=lambda: NOW)
        try:
            states = {}
            for title, stories in FEEDS.items():
                document = Path(home, f"{title}.xml")
                document.write_text(feed_document(title, stories))
                subscriptions.add_feed(app, str(document))
                states.update({name: state for name, _when, state in stories})
            shown = app.store.stories()
            app.store.mark_read([s.id for s in shown if states[s.title] == "read"], NOW)
            app.store.mark_shown([s.id for s in shown if states[s.title] == "unread"], NOW)
            listing = reading.list_stories(app)
            table = render.story_table(listing.stories, NOW, show_feed=True, width=WIDTH)
        finally:
            app.close()
    console = Console(
        file=io.StringIO(),
        width=WIDTH,
        force_terminal=True,
        color_system="truecolor",
        record=True,
        highlight=False,
        legacy_windows=False,
    )
    console.print("$ storyfeed list", style="bold")
    console.print(table)
    output.write_text(console.export_svg(title="storyfeed list", unique_id="storyfeed-list"))


if __name__ == "__main__":
    draw(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT)
