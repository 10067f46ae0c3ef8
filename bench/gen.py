"""A deterministic corpus of feeds for the benchmark: RSS 2.0, Atom and JSON Feed.

Every feed is derived from ``(seed, index, revision)`` alone, so the first 200
feeds of a 1,000-feed corpus are the 200-feed corpus, and a feed can be moved to
a later revision (new stories on top, a few bodies edited) and back again,
byte for byte. File modification times are set from the revision too, so a
server's ETag and Last-Modified change exactly when a feed does.

Sizes follow what real feeds look like: 20-100 stories per feed; about half the
feeds carry whole posts (HTML of a few kilobytes, now and then tens), the rest
summaries of a few hundred characters.

JSON feeds have an RSS twin with the same stories for the peers, which do not
read JSON Feed. :func:`archive` makes the big story collections the listing
measurements need.

Run it on its own to write a corpus: ``python bench/gen.py DIR --feeds 200``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

GENERATOR_VERSION = 1  # bump when the output changes, so caches built from it are rebuilt
FORMATS = ("rss", "atom", "json")
SUFFIXES = {"rss": ".rss", "atom": ".atom", "json": ".json"}
CONTENT_TYPES = {
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".json": "application/feed+json",
}
BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)  # the newest story of revision 0
NEW_PER_REVISION = 5  # stories a changed feed gains per revision
EDITED_PER_REVISION = 2  # existing stories whose text a revision edits
CHANGE_EVERY = 10  # feeds with index % CHANGE_EVERY == 0 are the ones that change

_VOCABULARY = (
    "the of and to in is that for it as with was on be by this are at from or an have not "
    "which but they all were we when your can said there use each she do how their if will "
    "up other about out many then them these so some her would make like him into time has "
    "look two more write go see number no way could people my than first water been call who "
    "oil its now find long down day did get come made may part over new sound take only "
    "little work know place year live me back give most very after thing our just name good "
    "sentence man think say great where help through much before line right too mean old any "
    "same tell boy follow came want show also around form three small set put end does "
    "another well large must big even such because turn here why ask went men read need land "
    "different home us move try kind hand picture again change off play spell air away animal "
    "house point page letter mother answer found study still learn should world high every "
    "near add food between own below country plant last school father keep tree never start "
    "city earth eye light thought head under story saw left few while along might close "
    "something seem next hard open example begin life always those both paper together got "
    "group often run important until children side feet car mile night walk white sea began "
    "grow took river four carry state once book hear stop without second later miss idea "
    "enough eat face watch far really almost let above girl sometimes mountain cut young talk "
    "soon list song being leave family kernel compiler latency throughput cache database query "
    "index server request protocol release version parser memory process thread network "
    "benchmark café naïve résumé déjà façade coöperate"
)
_WORDS = _VOCABULARY.split()
_NAMES = (
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
    "Ken Thompson",
    "Margaret Hamilton",
    "Niklaus Wirth",
    "José Martínez",
    "Zoë Øvergaard",
)
_TAGS = ("python", "databases", "networking", "release", "essay", "howto", "news", "rust", "linux")


@dataclass(frozen=True, slots=True)
class Story:
    """One generated story; ``content`` is empty in a summary-only feed."""

    guid: str
    title: str
    link: str
    author: str
    published: datetime
    summary: str
    content: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FeedFile:
    """One feed of the corpus: its file name and how many stories it holds."""

    index: int
    name: str  # the file name, e.g. "0007.json"
    format: str
    stories: int
    size: int


@dataclass(frozen=True, slots=True)
class Corpus:
    """A generated corpus on disk."""

    root: Path
    seed: int
    feeds: tuple[FeedFile, ...]

    @property
    def stories(self) -> int:
        return sum(feed.stories for feed in self.feeds)

    @property
    def size(self) -> int:
        return sum(feed.size for feed in self.feeds)

    def head(self, count: int) -> Corpus:
        """The first ``count`` feeds (the corpus of that size)."""
        return Corpus(self.root, self.seed, self.feeds[:count])

    def urls(self, base: str, *, peer: bool = False) -> list[str]:
        """The feeds' URLs under ``base``; ``peer``: the twins peers read."""
        return [f"{base}/{peer_name(f.index) if peer else f.name}" for f in self.feeds]

    def changing(self) -> list[FeedFile]:
        """The feeds a partial change touches: one in ``CHANGE_EVERY``."""
        return [feed for feed in self.feeds if feed.index % CHANGE_EVERY == 0]


# --- text ------------------------------------------------------------------------------


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(6, 22))
    # Some inline markup, as in real posts.
    roll = rng.random()
    if roll < 0.15:
        at = rng.randrange(len(words))
        slug = "-".join(rng.choices(_WORDS, k=3))
        words[at] = f'<a href="https://ref{rng.randrange(500)}.example.net/{slug}">{words[at]}</a>'
    elif roll < 0.25:
        at = rng.randrange(len(words))
        words[at] = f"<em>{words[at]}</em>"
    elif roll < 0.32:
        at = rng.randrange(len(words))
        words[at] = f"<code>{words[at]}()</code>"
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice(".....?!")


def _paragraph(rng: random.Random) -> str:
    return "<p>" + " ".join(_sentence(rng) for _ in range(rng.randint(2, 7))) + "</p>"


def _block(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.78:
        return _paragraph(rng)
    if roll < 0.86:
        items = "".join(f"<li>{_sentence(rng)}</li>" for _ in range(rng.randint(2, 6)))
        return f"<ul>{items}</ul>"
    if roll < 0.92:
        lines = "\n".join(
            "    " * rng.randint(0, 2) + " ".join(rng.choices(_WORDS, k=rng.randint(2, 8)))
            for _ in range(rng.randint(3, 12))
        )
        return f"<pre><code>{escape(lines)}</code></pre>"
    if roll < 0.96:
        return f"<blockquote>{_paragraph(rng)}</blockquote>"
    image = f"https://img.example.net/{rng.randrange(10**6)}.png"
    return f'<figure><img src="{image}" alt="{rng.choice(_WORDS)}" width="640"></figure>'


def _html(rng: random.Random, size: int) -> str:
    """HTML of about ``size`` characters."""
    blocks: list[str] = []
    length = 0
    while length < size:
        block = _block(rng)
        blocks.append(block)
        length += len(block) + 1
    return "\n".join(blocks)


def _title(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(4, 12))
    title = " ".join(word.capitalize() if rng.random() < 0.5 else word for word in words)
    if rng.random() < 0.1:
        title += " & " + rng.choice(_WORDS)  # an ampersand to escape now and then
    return title[0].upper() + title[1:]


# --- feeds -----------------------------------------------------------------------------


def _feed_rng(seed: int, index: int, purpose: str) -> random.Random:
    # A string seed is hashed with SHA-512: the same on every run and platform.
    return random.Random(f"{seed}:{index}:{purpose}")  # noqa: S311 (not cryptography)


@dataclass(frozen=True, slots=True)
class _FeedShape:
    title: str
    site: str
    stories: int
    full: bool  # whole posts, or summaries only
    spacing_hours: float  # between two stories


def _shape(seed: int, index: int) -> _FeedShape:
    rng = _feed_rng(seed, index, "shape")
    return _FeedShape(
        title=f"{_title(rng)[:40].rstrip()} (feed {index})",
        site=f"https://blog{index}.example.org",
        stories=rng.randint(20, 100),
        full=rng.random() < 0.5,
        spacing_hours=rng.uniform(6, 24 * 14),
    )


def _story(seed: int, index: int, number: int, shape: _FeedShape, edit: int) -> Story:
    """Story ``number`` of a feed (0 is its first ever, higher is newer); ``edit``
    is the revision that last edited its text (0: never)."""
    rng = _feed_rng(seed, index, f"story:{number}")
    title = _title(rng)
    slug = "-".join(title.lower().split()[:5]).replace("&", "and")
    if shape.full:
        size = int(min(max(rng.lognormvariate(7.7, 0.7), 600), 40_000))  # median ~2,200
        content = _html(rng, size)
        summary = _sentence(rng) + " " + _sentence(rng)
    else:
        content = ""
        summary = _html(rng, rng.randint(150, 800))
    if edit:
        edited = _feed_rng(seed, index, f"edit:{number}:{edit}")
        note = f"<p><strong>Update {edit}:</strong> {_sentence(edited)}</p>"
        content, summary = (content + note, summary) if content else ("", summary + note)
    return Story(
        guid=f"tag:blog{index}.example.org,2024:post-{number}",
        title=title,
        link=f"{shape.site}/{2020 + number // 400}/{number:05d}-{slug}",
        author=rng.choice(_NAMES),
        published=BASE_TIME - timedelta(hours=shape.spacing_hours * (shape.stories - 1 - number)),
        summary=summary,
        content=content,
        tags=tuple(rng.sample(_TAGS, rng.randint(0, 3))),
    )


def feed_stories(seed: int, index: int, revision: int = 0) -> list[Story]:
    """The stories a feed lists at ``revision``, newest first.

    Revision ``r`` adds ``NEW_PER_REVISION * r`` stories on top (the oldest fall off
    the end, as in a real feed's window) and edits the text of a few others.
    """
    shape = _shape(seed, index)
    newest = shape.stories - 1 + NEW_PER_REVISION * revision
    numbers = range(newest, newest - shape.stories, -1)
    edited: dict[int, int] = {}
    for rev in range(1, revision + 1):
        rng = _feed_rng(seed, index, f"edits:{rev}")
        for number in rng.sample(numbers, EDITED_PER_REVISION):
            edited[number] = rev
    stories = []
    for number in numbers:
        story = _story(seed, index, number, shape, edited.get(number, 0))
        if number >= shape.stories:  # published after revision 0: newer than BASE_TIME
            hours = number - shape.stories + 1
            story = replace(story, published=BASE_TIME + timedelta(hours=hours))
        stories.append(story)
    return stories


def feed_format(index: int) -> str:
    return FORMATS[index % len(FORMATS)]


def feed_name(index: int) -> str:
    return f"{index:04d}{SUFFIXES[feed_format(index)]}"


def peer_name(index: int) -> str:
    """The file peers read: newsboat and sfeed do not read JSON Feed, so a JSON feed
    has an RSS twin holding the same stories."""
    name = feed_name(index)
    return name + ".rss" if feed_format(index) == "json" else name


def render(seed: int, index: int, revision: int = 0, fmt: str | None = None) -> bytes:
    """The document of feed ``index`` at ``revision`` (in ``fmt``, by default its own)."""
    shape = _shape(seed, index)
    stories = feed_stories(seed, index, revision)
    fmt = fmt or feed_format(index)
    if fmt == "rss":
        return _rss(shape, stories)
    if fmt == "atom":
        return _atom(shape, stories, index)
    return _json_feed(shape, stories)


def _rss(shape: _FeedShape, stories: Sequence[Story]) -> bytes:
    def item(story: Story) -> Iterator[str]:
        yield "<item>"
        yield f"<title>{escape(story.title)}</title>"
        yield f"<link>{escape(story.link)}</link>"
        yield f'<guid isPermaLink="false">{escape(story.guid)}</guid>'
        yield f"<pubDate>{format_datetime(story.published)}</pubDate>"
        yield f"<dc:creator>{escape(story.author)}</dc:creator>"
        yield from (f"<category>{tag}</category>" for tag in story.tags)
        yield f"<description>{escape(story.summary)}</description>"
        if story.content:
            body = story.content.replace("]]>", "]]]]><![CDATA[>")
            yield f"<content:encoded><![CDATA[{body}]]></content:encoded>"
        yield "</item>"

    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/">',
        "<channel>",
        f"<title>{escape(shape.title)}</title>",
        f"<link>{shape.site}/</link>",
        f"<description>Posts from {escape(shape.title)}</description>",
        "<language>en</language>",
        f"<lastBuildDate>{format_datetime(stories[0].published)}</lastBuildDate>",
    ]
    for story in stories:
        lines.extend(item(story))
    lines += ["</channel>", "</rss>", ""]
    return "\n".join(lines).encode()


def _atom(shape: _FeedShape, stories: Sequence[Story], index: int) -> bytes:
    def entry(story: Story) -> Iterator[str]:
        stamp = story.published.isoformat().replace("+00:00", "Z")
        yield "<entry>"
        yield f'<title type="html">{escape(story.title)}</title>'
        yield f"<id>{escape(story.guid)}</id>"
        yield f'<link rel="alternate" type="text/html" href={quoteattr(story.link)}/>'
        yield f"<published>{stamp}</published>"
        yield f"<updated>{stamp}</updated>"
        yield f"<author><name>{escape(story.author)}</name></author>"
        yield from (f'<category term="{tag}"/>' for tag in story.tags)
        yield f'<summary type="html">{escape(story.summary)}</summary>'
        if story.content:
            yield f'<content type="html">{escape(story.content)}</content>'
        yield "</entry>"

    updated = stories[0].published.isoformat().replace("+00:00", "Z")
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">',
        f"<title>{escape(shape.title)}</title>",
        f"<id>tag:blog{index}.example.org,2024:feed</id>",
        f"<updated>{updated}</updated>",
        f'<link rel="alternate" type="text/html" href="{shape.site}/"/>',
    ]
    for story in stories:
        lines.extend(entry(story))
    lines += ["</feed>", ""]
    return "\n".join(lines).encode()


def _json_feed(shape: _FeedShape, stories: Sequence[Story]) -> bytes:
    items = []
    for story in stories:
        item: dict[str, object] = {
            "id": story.guid,
            "url": story.link,
            "title": story.title,
            "content_html": story.content or story.summary,
            "date_published": story.published.isoformat().replace("+00:00", "Z"),
            "authors": [{"name": story.author}],
        }
        if story.content:
            item["summary"] = story.summary
        if story.tags:
            item["tags"] = list(story.tags)
        items.append(item)
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": shape.title,
        "home_page_url": f"{shape.site}/",
        "language": "en",
        "items": items,
    }
    return (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode()


# --- on disk ---------------------------------------------------------------------------


def revision_mtime(revision: int) -> int:
    """The modification time of a feed file at ``revision``: a whole hour apart, so
    the (one-second) Last-Modified and nginx's ETag change with every revision."""
    return int(BASE_TIME.timestamp()) + 3600 * revision


def _write(path: Path, body: bytes, when: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(body)
    os.utime(tmp, (when, when))
    tmp.replace(path)  # a server never sees half a file


def write_feed(root: Path, seed: int, index: int, revision: int = 0) -> FeedFile:
    """Write feed ``index`` at ``revision`` (and its peers' twin) into ``root``."""
    when = revision_mtime(revision)
    body = render(seed, index, revision)
    _write(root / feed_name(index), body, when)
    if peer_name(index) != feed_name(index):
        _write(root / peer_name(index), render(seed, index, revision, "rss"), when)
    shape = _shape(seed, index)
    return FeedFile(index, feed_name(index), feed_format(index), shape.stories, len(body))


def write_corpus(root: Path, count: int, seed: int = 1) -> Corpus:
    """Write feeds ``0 .. count-1`` at revision 0 into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    return Corpus(root, seed, tuple(write_feed(root, seed, i) for i in range(count)))


def change_feeds(corpus: Corpus, revision: int) -> int:
    """Move the changing tenth of ``corpus`` to ``revision`` (0 restores it); return how
    many stories that revision adds over revision 0."""
    for feed in corpus.changing():
        write_feed(corpus.root, corpus.seed, feed.index, revision)
    return NEW_PER_REVISION * revision * len(corpus.changing())


ARCHIVE_SPACING_HOURS = 8.0  # between two stories of one archive feed


def archive_feeds(stories: int) -> list[int]:
    """How many stories each feed of an archive of ``stories`` stories holds: a
    hundred feeds of a hundred for 10,000, a thousand of a thousand for 1,000,000."""
    feeds = min(1000, max(1, stories // 100))
    share, extra = divmod(stories, feeds)
    return [share + (1 if i < extra else 0) for i in range(feeds)]


def archive(seed: int, stories: int, pool_size: int = 2000) -> Iterator[tuple[int, list[Story]]]:
    """A long-time reader's archive of ``stories`` stories: (feed index, its stories
    newest first) per feed. The texts are drawn from a pool of stories of the
    corpus' distribution; guids, links and dates are each story's own."""
    pool: list[Story] = []
    index = 0
    while len(pool) < pool_size:
        pool.extend(feed_stories(seed, 1_000_000 + index))
        index += 1
    for feed, count in enumerate(archive_feeds(stories)):
        site = f"https://archive{feed}.example.org"
        newest = BASE_TIME - timedelta(minutes=7 * feed)
        items = []
        for number in range(count - 1, -1, -1):
            text = pool[(feed * 7919 + number) % pool_size]
            items.append(
                Story(
                    guid=f"tag:archive{feed}.example.org,2020:post-{number}",
                    title=text.title,
                    link=f"{site}/p/{number:06d}",
                    author=text.author,
                    published=newest
                    - timedelta(hours=ARCHIVE_SPACING_HOURS * (count - 1 - number)),
                    summary=text.summary,
                    content=text.content,
                    tags=text.tags,
                )
            )
        yield feed, items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    corpus = write_corpus(args.dir, args.feeds, args.seed)
    print(
        f"{len(corpus.feeds)} feeds, {corpus.stories:,} stories, "
        f"{corpus.size / 1e6:.1f} MB in {args.dir}"
    )


if __name__ == "__main__":
    main()
