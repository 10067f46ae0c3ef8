"""The feed readers under test behind one interface: storyfeed, newsboat and sfeed.

A reader keeps all its state in one directory (its *home*). For each it knows how
to subscribe a fresh home to a list of URLs, the command that refreshes it, how
many stories it holds and how many bytes they take, the command that lists what
is unread, and how to build a home holding a big archive of stories quickly
(cached between runs, keyed by everything the result depends on).

Every command runs with a small, fixed environment: no proxy settings, ``HOME``
inside the home, so that nothing of the user's own set-up takes part.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import gen

CONCURRENCY = 16  # fetches at once, for every reader
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)  # archive feeds are never due
UNREAD_EVERY = 10  # one archive story in ten is unread, the rest read
UNREACHABLE = "http://127.0.0.1:9"  # archive feeds' server: never contacted


class BenchError(Exception):
    """A step that must work did not."""


@dataclass(frozen=True, slots=True)
class Command:
    """One command to measure: what to run, where, with which environment."""

    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    tty: bool = False  # standard output is a terminal (else a file)


@dataclass(frozen=True, slots=True)
class Footprint:
    """What a reader's stored stories take on disk."""

    stories: int
    file_bytes: int  # the database or files, whole
    text_bytes: int  # the stories' own text (titles, links, ids, authors, bodies)


def base_env(home: Path) -> dict[str, str]:
    """The environment every measured command gets."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "xterm-256color",
        "NO_PROXY": "127.0.0.1,localhost",
        "TZ": "UTC",
    }
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    return env


def _run(command: Command, what: str) -> subprocess.CompletedProcess[str]:
    """Run a set-up step (not measured); a failure is a BenchError."""
    done = subprocess.run(
        command.argv,
        cwd=command.cwd,
        env=command.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()[-1500:]}")
    return done


def _count(database: Path, query: str) -> int:
    with sqlite3.connect(database) as db:
        return int(db.execute(query).fetchone()[0] or 0)


def _file_bytes(*paths: Path) -> int:
    return sum(path.stat().st_size for path in paths if path.exists())


def _atomic_build(target: Path, build: Callable[[Path], None]) -> Path:
    """Build ``target`` (a file or directory) through a temporary name, so that an
    interrupted build never looks finished."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.unlink(missing_ok=True)
    try:
        build(partial)
        partial.rename(target)
    finally:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
    return target


class Reader(ABC):
    """One feed reader."""

    name: str
    essential = False  # a failure of an essential reader fails the benchmark
    reads_json_feed = False  # else it is given an RSS twin of each JSON feed

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def subscribe(self, home: Path, urls: Sequence[str]) -> None:
        """Make ``home`` (an empty directory) a new reader of ``urls``."""

    @abstractmethod
    def refresh(self, home: Path, *, force: bool) -> Command:
        """Fetch every feed (``force``: even those not due)."""

    @abstractmethod
    def footprint(self, home: Path) -> Footprint: ...

    @abstractmethod
    def listing(self, home: Path, *, offline: bool) -> Command | None:
        """List what is unread; ``offline``: without looking for due feeds (None:
        the reader has no such mode)."""

    @abstractmethod
    def archive_key(self, stories: int) -> str:
        """The cache name of an archive of ``stories`` stories."""

    @abstractmethod
    def build_archive(self, target: Path, stories: int, seed: int) -> None:
        """Build the state of a reader holding the archive at ``target``."""

    @abstractmethod
    def adopt_archive(self, archive: Path, home: Path) -> None:
        """Make ``home`` a reader of the archive (a copy: the cache stays as built)."""

    def archive(self, cache: Path, stories: int, seed: int) -> Path:
        """The cached archive state, built first if needed."""
        target = cache / self.archive_key(stories)
        return _atomic_build(target, lambda path: self.build_archive(path, stories, seed))


# --- storyfeed -----------------------------------------------------------------------


class Storyfeed(Reader):
    """storyfeed, run as its users run it (its console script, else ``python -m``)."""

    name = "storyfeed"
    essential = True
    reads_json_feed = True

    def __init__(self, python: str) -> None:
        self.python = python
        script = Path(python).parent / "storyfeed"
        self.argv = [str(script)] if os.access(script, os.X_OK) else [python, "-m", "storyfeed"]

    def env(self, home: Path) -> dict[str, str]:
        return {**base_env(home), "STORYFEED_HOME": str(home)}

    def command(self, home: Path, *args: str, tty: bool = False) -> Command:
        return Command([*self.argv, *args], home, self.env(home), tty)

    def version(self) -> str:
        return _run(self.command(Path.cwd(), "--version"), "storyfeed --version").stdout.strip()

    def write_config(self, home: Path) -> None:
        # refresh_interval at its maximum: a listing finds nothing due.
        home.joinpath("config.toml").write_text(
            'default_feed = ""\n'
            f"concurrency = {CONCURRENCY}\n"
            f"per_host = {CONCURRENCY}\n"
            'refresh_interval = "30d"\n'
        )

    def subscribe(self, home: Path, urls: Sequence[str]) -> None:
        self.write_config(home)
        _run(self.command(home, "feeds"), "storyfeed feeds (creating the database)")
        try:
            with sqlite3.connect(home / "storyfeed.db") as db:
                db.executemany(
                    "INSERT INTO feeds (url, added_at) VALUES (?, 0)", [(url,) for url in urls]
                )
        except sqlite3.Error as exc:  # the schema moved on: try the command, if there is one
            if "import" not in _run(self.command(home, "--help"), "storyfeed --help").stdout:
                raise BenchError(f"cannot subscribe storyfeed to the feeds: {exc}") from exc
            opml = home / "feeds.opml"
            opml.write_text(_opml(urls))
            _run(self.command(home, "import", str(opml)), "storyfeed import")
        if (found := self.footprint(home).stories) != 0:
            raise BenchError(f"a new storyfeed database holds {found} stories")

    def refresh(self, home: Path, *, force: bool) -> Command:
        return self.command(home, "refresh", *(["--force"] if force else []))

    def footprint(self, home: Path) -> Footprint:
        database = home / "storyfeed.db"
        text = (
            "SELECT COUNT(*), SUM(length(CAST(key AS BLOB)) + length(CAST(title AS BLOB)) + "
            "length(CAST(link AS BLOB)) + length(CAST(author AS BLOB)) + "
            "length(CAST(summary AS BLOB)) + length(CAST(content AS BLOB))) FROM stories"
        )
        with sqlite3.connect(database) as db:
            count, text_bytes = db.execute(text).fetchone()
        wal = database.with_name(database.name + "-wal")
        return Footprint(int(count), _file_bytes(database, wal), int(text_bytes or 0))

    def listing(self, home: Path, *, offline: bool) -> Command:
        return self.command(home, "list", *(["--offline"] if offline else []), tty=True)

    def archive_key(self, stories: int) -> str:
        from storyfeed.store import SCHEMA_VERSION

        return f"storyfeed-schema{SCHEMA_VERSION}-gen{gen.GENERATOR_VERSION}-{stories}.db"

    def build_archive(self, target: Path, stories: int, seed: int) -> None:
        """Through storyfeed's own Store: one apply_update per feed, as a refresh would
        write it, then all but one story in ten marked read."""
        from storyfeed.models import FeedStatus
        from storyfeed.store import Store
        from storyfeed.updates import FeedUpdate, ParsedStory

        now = datetime.now(UTC)
        store = Store.open(target)
        try:
            for index, items in gen.archive(seed, stories):
                feed, _ = store.add_feed(f"{UNREACHABLE}/archive/{index:04d}.rss", now=now)
                parsed = tuple(
                    ParsedStory(
                        key=s.guid,
                        title=s.title,
                        link=s.link,
                        author=s.author,
                        summary=s.summary,
                        content=s.content,
                        published=s.published,
                    )
                    for s in items
                )
                update = FeedUpdate(
                    feed_id=feed.id,
                    fetched_at=now,
                    next_fetch_at=FAR_FUTURE,
                    success=True,
                    status=FeedStatus.ACTIVE,
                    feed_title=f"Archive feed {index}",
                    site_url=f"https://archive{index}.example.org/",
                    etag='"archive"',
                    stories=parsed,
                )
                store.apply_update(update)
            store.mark_all(read=True, now=now)
            store.mark_unread(range(UNREAD_EVERY, stories + 1, UNREAD_EVERY))
        finally:
            store.close()
        for suffix in ("-wal", "-shm"):
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        if (found := _count(target, "SELECT COUNT(*) FROM stories")) != stories:
            raise BenchError(f"the storyfeed archive holds {found:,} stories, not {stories:,}")

    def adopt_archive(self, archive: Path, home: Path) -> None:
        self.write_config(home)
        shutil.copyfile(archive, home / "storyfeed.db")


def _opml(urls: Sequence[str]) -> str:
    from xml.sax.saxutils import quoteattr

    outlines = "\n".join(f'    <outline type="rss" xmlUrl={quoteattr(url)}/>' for url in urls)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">\n'
        f"  <head><title>bench</title></head>\n  <body>\n{outlines}\n  </body>\n</opml>\n"
    )


# --- newsboat ------------------------------------------------------------------------


class Newsboat(Reader):
    """newsboat: ``-x reload`` refreshes, ``-x print-unread`` lists (it prints how
    many articles are unread after loading its whole cache: its way of listing
    what is unread without a terminal user interface)."""

    name = "newsboat"

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def version(self) -> str:
        out = _run(Command([self.executable, "-v"], Path.cwd(), base_env(Path.cwd())), "newsboat")
        return out.stdout.splitlines()[0].split(" - ")[0].strip()

    def command(self, home: Path, *args: str) -> Command:
        argv = [self.executable, "-u", "urls", "-c", "cache.db", "-C", "config", *args]
        return Command(argv, home, base_env(home / "user"))

    def _write_setup(self, home: Path, urls: Sequence[str]) -> None:
        (home / "user").mkdir(exist_ok=True)
        home.joinpath("urls").write_text("".join(url + "\n" for url in urls))
        home.joinpath("config").write_text(f"reload-threads {CONCURRENCY}\n")

    def subscribe(self, home: Path, urls: Sequence[str]) -> None:
        self._write_setup(home, urls)

    def refresh(self, home: Path, *, force: bool) -> Command:
        return self.command(home, "-x", "reload")  # newsboat fetches every feed each time

    def footprint(self, home: Path) -> Footprint:
        database = home / "cache.db"
        if not database.exists():
            return Footprint(0, 0, 0)
        text = (
            "SELECT COUNT(*), SUM(length(CAST(guid AS BLOB)) + length(CAST(title AS BLOB)) + "
            "length(CAST(author AS BLOB)) + length(CAST(url AS BLOB)) + "
            "length(CAST(content AS BLOB))) FROM rss_item WHERE deleted = 0"
        )
        with sqlite3.connect(database) as db:
            count, text_bytes = db.execute(text).fetchone()
        return Footprint(int(count), _file_bytes(database), int(text_bytes or 0))

    def listing(self, home: Path, *, offline: bool) -> Command | None:
        return self.command(home, "-x", "print-unread") if offline else None

    def archive_key(self, stories: int) -> str:
        version = self.version().replace(" ", "-")
        return f"{version}-gen{gen.GENERATOR_VERSION}-{stories}"

    def build_archive(self, target: Path, stories: int, seed: int) -> None:
        """newsboat makes its cache's schema (on a first run); the rows go in by SQL."""
        target.mkdir()
        feeds = gen.archive_feeds(stories)
        urls = [f"{UNREACHABLE}/archive/{index:04d}.rss" for index in range(len(feeds))]
        self._write_setup(target, urls)
        _run(self.command(target, "-x", "print-unread"), "newsboat (creating its cache)")
        with sqlite3.connect(target / "cache.db") as db:
            for index, items in gen.archive(seed, stories):
                db.execute(
                    "INSERT INTO rss_feed (rssurl, url, title) VALUES (?, ?, ?)",
                    (urls[index], f"https://archive{index}.example.org/", f"Archive feed {index}"),
                )
                db.executemany(
                    "INSERT INTO rss_item (guid, title, author, url, feedurl, pubDate, content, "
                    "unread) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (s.guid, s.title, s.author, s.link, urls[index],
                         int(s.published.timestamp()), s.content or s.summary,
                         int(number % UNREAD_EVERY == 0))
                        for number, s in enumerate(items)
                    ],
                )  # fmt: skip
        found = self.footprint(target).stories
        if found != stories:
            raise BenchError(f"the newsboat archive holds {found:,} stories, not {stories:,}")

    def adopt_archive(self, archive: Path, home: Path) -> None:
        shutil.copytree(archive, home, dirs_exist_ok=True)


# --- sfeed ---------------------------------------------------------------------------


def _sfeed_field(text: str) -> str:
    """sfeed(5): backslash, newline and tab escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


class Sfeed(Reader):
    """sfeed: ``sfeed_update sfeedrc`` refreshes (``maxjobs`` at once; it has no
    conditional GET, so every refresh downloads every feed), ``sfeed_plain`` over
    its feed files lists."""

    name = "sfeed"

    def __init__(self, update: str, plain: str) -> None:
        self.update = update
        self.plain = plain

    def version(self) -> str:
        query = shutil.which("dpkg-query")
        if query:
            done = subprocess.run(
                [query, "-W", "-f", "${Version}", "sfeed"],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode == 0 and done.stdout.strip():
                return f"sfeed {done.stdout.strip()}"
        return "sfeed"

    def subscribe(self, home: Path, urls: Sequence[str]) -> None:
        (home / "feeds").mkdir()
        lines = "".join(f'\tfeed "{url.rsplit("/", 1)[-1]}" "{url}"\n' for url in urls)
        home.joinpath("sfeedrc").write_text(
            f'sfeedpath="{home / "feeds"}"\nmaxjobs={CONCURRENCY}\n\nfeeds() {{\n{lines}}}\n'
        )

    def refresh(self, home: Path, *, force: bool) -> Command:
        return Command([self.update, str(home / "sfeedrc")], home, base_env(home))

    def _files(self, home: Path) -> list[Path]:
        return sorted(path for path in (home / "feeds").iterdir() if path.is_file())

    def footprint(self, home: Path) -> Footprint:
        stories = text_bytes = file_bytes = 0
        for path in self._files(home):
            data = path.read_bytes()
            file_bytes += len(data)
            for line in data.splitlines():
                fields = line.split(b"\t")
                stories += 1
                # title, link, content, id, author: what the other readers' figures count
                text_bytes += sum(len(fields[i]) for i in (1, 2, 3, 5, 6) if i < len(fields))
        return Footprint(stories, file_bytes, text_bytes)

    def listing(self, home: Path, *, offline: bool) -> Command | None:
        if not offline:
            return None
        return Command([self.plain, *map(str, self._files(home))], home, base_env(home))

    def archive_key(self, stories: int) -> str:
        return f"sfeed-gen{gen.GENERATOR_VERSION}-{stories}"

    def build_archive(self, target: Path, stories: int, seed: int) -> None:
        """Its TSV files, written directly (sfeed(5) describes the format)."""
        (target / "feeds").mkdir(parents=True)
        for index, items in gen.archive(seed, stories):
            lines = (
                "\t".join((
                    str(int(s.published.timestamp())), _sfeed_field(s.title), s.link,
                    _sfeed_field(s.content or s.summary), "html", s.guid,
                    _sfeed_field(s.author), "", "|".join(s.tags),
                )) + "\n"
                for s in items
            )  # fmt: skip
            target.joinpath("feeds", f"{index:04d}.rss").write_text("".join(lines))

    def adopt_archive(self, archive: Path, home: Path) -> None:
        # sfeed_plain only reads: the cached files serve as they are.
        (home / "feeds").symlink_to(archive / "feeds")


def find_peers(*, wanted: bool) -> tuple[list[Reader], list[str]]:
    """The peers installed here, and a note for each one missing."""
    if not wanted:
        return [], []
    peers: list[Reader] = []
    missing: list[str] = []
    newsboat = shutil.which("newsboat")
    if newsboat:
        peers.append(Newsboat(newsboat))
    else:
        missing.append("newsboat is not installed")
    update, plain = shutil.which("sfeed_update"), shutil.which("sfeed_plain")
    if update and plain:
        peers.append(Sfeed(update, plain))
    else:
        missing.append("sfeed is not installed")
    return peers, missing
