"""The command line: typer wiring and the one error boundary.

Each command parses its options, calls one use case (in :mod:`storyfeed.core`,
:mod:`~storyfeed.reading`, :mod:`~storyfeed.subscriptions`, :mod:`~storyfeed.notify`,
:mod:`~storyfeed.searching`, :mod:`~storyfeed.moving`, :mod:`~storyfeed.retention` or
:mod:`~storyfeed.doctor`; all but the first two imported by the commands that use them)
and prints what :mod:`storyfeed.render` builds: a rich table on a terminal,
tab-separated lines in a pipe, JSON with ``--json``. Every ``StoryfeedError``
becomes one ``storyfeed: error: ...`` line and exit status 1 in :func:`run`.
"""

from __future__ import annotations

import contextlib
import copy
import enum
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console, RenderableType

from storyfeed import __version__, config, core, reading, render
from storyfeed.config import default_paths
from storyfeed.errors import InvalidURLError, StoryfeedError
from storyfeed.models import Story
from storyfeed.text import clean_line

if TYPE_CHECKING:
    from storyfeed import notify
    from storyfeed.deliver import AppriseChannel
    from storyfeed.updates import RefreshResult

# notify and subscriptions are imported by the commands that use them: a listing
# should not pay for them.

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BUSY = 75  # EX_TEMPFAIL: another refresh or notify holds the lock; try again later

app = typer.Typer(
    name="storyfeed",
    help="A terminal feed reader: RSS, Atom and JSON Feed, cached in SQLite.",
    no_args_is_help=False,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


# --- output ------------------------------------------------------------------------


class _OutputClosed(Exception):
    """Whoever read our standard output went away (`storyfeed list | head`)."""


class OutputError(StoryfeedError):
    """Standard output cannot be written (a full disk, say)."""


@contextmanager
def _writing() -> Iterator[None]:
    """Turn failures to write stdout into _OutputClosed or OutputError.

    typer treats EPIPE itself (exit 1, silently), so a broken pipe must not
    leave here as an OSError.
    """
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError as exc:
        raise _OutputClosed from exc
    except OSError as exc:
        raise OutputError(f"cannot write to standard output: {exc.strerror or exc}") from exc


_stdout_closed = False  # started with `>&-`: what a command exists to show goes nowhere


def _require_output() -> None:
    if _stdout_closed:
        raise OutputError("standard output is closed; nothing can be shown")


def _out(text: str) -> None:
    _require_output()
    with _writing():
        sys.stdout.write(text)


def _out_lines(lines: Iterable[str]) -> None:
    _require_output()
    with _writing():
        for line in lines:
            sys.stdout.write(line + "\n")


def _show(renderable: RenderableType, console: Console | None = None) -> None:
    _require_output()
    with _writing():
        (console or _console()).print(renderable)


def _note(text: str) -> None:
    """A confirmation of work already done: lost quietly if nobody reads it."""
    with contextlib.suppress(_OutputClosed, OutputError), _writing():
        sys.stdout.write(text)


class ColorChoice(enum.StrEnum):
    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


_color = ColorChoice.AUTO  # set by --color


def _stdout_is_tty() -> bool:
    """Whether to draw for a terminal (`--color always` draws for one, piped too)."""
    return _color is ColorChoice.ALWAYS or sys.stdout.isatty()


def _console(*, stderr: bool = False) -> Console:
    # auto: rich colours a terminal unless NO_COLOR is set (https://no-color.org).
    if _color is ColorChoice.ALWAYS:
        return Console(stderr=stderr, highlight=False, soft_wrap=False, force_terminal=True,
                       no_color=False)  # fmt: skip
    no_color = True if _color is ColorChoice.NEVER else None
    return Console(stderr=stderr, highlight=False, soft_wrap=False, no_color=no_color)


def _stderr_console() -> Console:
    return _console(stderr=True)


def warn(message: str) -> None:
    _to_stderr(f"storyfeed: warning: {clean_line(message)}\n")


def error(message: str) -> None:
    _to_stderr(f"storyfeed: error: {clean_line(message)}\n")


def _to_stderr(text: str) -> None:
    with contextlib.suppress(OSError):  # nowhere left to complain to
        sys.stderr.write(text)
        sys.stderr.flush()


@contextmanager
def _progress(total: int, label: str) -> Iterator[core.Progress | None]:
    """A transient progress bar on stderr when it is a terminal; otherwise nothing."""
    if total == 0 or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=_stderr_console(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)

        def advance(result: RefreshResult, done: int, _total: int) -> None:
            bar.update(task, completed=done)

        yield advance


def _app(ctx: typer.Context) -> core.App:
    obj = ctx.find_root().obj
    assert isinstance(obj, core.App)
    return obj


# --- commands ----------------------------------------------------------------------


def _version(value: bool) -> None:
    if value:
        _out(f"storyfeed {__version__}\n")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
    color: Annotated[
        ColorChoice,
        typer.Option(
            "--color",
            case_sensitive=False,
            help="Colour and tables: auto (on a terminal, no colour if NO_COLOR is set), "
            "always (even piped), never.",
        ),
    ] = ColorChoice.AUTO,
) -> None:
    """A terminal feed reader. With no command, runs `list`."""
    global _color
    _color = color
    state = core.App(default_paths())
    ctx.obj = state
    ctx.call_on_close(state.close)
    if ctx.invoked_subcommand is None:
        _list(state, ListFilters(), limit=None, offline=False, as_json=False)


def _complete_feed(incomplete: str) -> list[tuple[str, str]]:
    """FEED completions from the database: feed ids, each with its name as help (zsh
    and fish show it). typer keeps only the values that start with what was typed."""
    try:
        feeds = core.feeds_to_complete(default_paths())
    except Exception:  # a shell's completion must never see a traceback
        return []
    return [(str(feed.id), feed.title) for feed in feeds if str(feed.id).startswith(incomplete)]


FeedArg = Annotated[
    str,
    typer.Argument(
        metavar="FEED", help="Feed id, URL, or part of its title.", autocompletion=_complete_feed
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Say what happened, even when all is well.")
]


# --- list --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListFilters:
    """What `list` narrows to: feeds named or tagged, read state, a start date."""

    feeds: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    unread: bool = False
    read: bool = False
    since: str | None = None


@app.command("list")
def list_command(
    ctx: typer.Context,
    feed: Annotated[
        str | None,
        typer.Argument(
            metavar="[FEED]",
            help="Only this feed (id, URL, or part of its title).",
            autocompletion=_complete_feed,
        ),
    ] = None,
    unread: Annotated[bool, typer.Option("--unread", help="Only unread stories.")] = False,
    limit: Annotated[
        int | None,
        typer.Option("--limit", "-n", min=1, help="How many stories [default: list_limit, 30]."),
    ] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Do not refresh first.")] = False,
    as_json: JsonOpt = False,
    feeds: Annotated[
        list[str] | None,
        typer.Option(
            "--feed",
            metavar="FEED",
            help="Stories of this feed (repeatable).",
            autocompletion=_complete_feed,
        ),
    ] = None,
    tags: Annotated[
        list[str] | None,
        typer.Option("--tag", metavar="TAG", help="Stories of feeds with this tag (repeatable)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="WHEN",
            help="Only stories dated since: 12h, 2d, 3w back, today, yesterday, "
            "or a date (2026-05-01, 2026-05-01T08:00; UTC unless an offset is given).",
        ),
    ] = None,
    read: Annotated[bool, typer.Option("--read", help="Only read stories.")] = False,
    everything: Annotated[
        bool, typer.Option("--all", help="Every story that matches: no limit.")
    ] = False,
) -> None:
    """Refresh feeds that are due, then show the newest stories.

    --feed and --tag choose feeds (a story of any of them qualifies); --since,
    --unread and --read narrow further.
    """
    if read and unread:
        raise typer.BadParameter("--read and --unread exclude each other", param_hint="--read")
    if everything and limit is not None:
        raise typer.BadParameter("--all and --limit exclude each other", param_hint="--all")
    filters = ListFilters(
        feeds=(*([feed] if feed is not None else []), *(feeds or [])),
        tags=tuple(tags or ()),
        unread=unread,
        read=read,
        since=since,
    )
    _list(_app(ctx), filters, limit=0 if everything else limit, offline=offline, as_json=as_json)


def _list(
    state: core.App,
    filters: ListFilters,
    *,
    limit: int | None,
    offline: bool,
    as_json: bool,
) -> None:
    _require_output()
    since = None
    if filters.since is not None:
        try:
            since = reading.parse_since(filters.since, state.clock())
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--since") from None
    chosen = reading.choose_feeds(state, filters.feeds, filters.tags)
    due = [] if offline else reading.due_for_listing(state, chosen)
    with _progress(len(due), "Refreshing") as progress:
        listing = reading.list_stories(
            state,
            chosen=chosen,
            unread=filters.unread,
            read=filters.read,
            since=since,
            limit=limit,
            due=due,
            summary=as_json,
            progress=progress,
        )
    for message in listing.warnings:
        warn(message)
    if as_json:
        _out(render.stories_json(listing.stories, reading.story_summary) + "\n")
    elif not _stdout_is_tty():
        _out_lines(render.story_lines(listing.stories))
    elif not listing.stories:
        _show(_nothing_listed(filters, since is not None or chosen is not None))
    else:
        console = _console()
        table = render.story_table(
            listing.stories,
            state.clock(),
            show_feed=len({s.feed_id for s in listing.stories}) > 1,
            width=console.width,
        )
        _show(table, console)
    # Only now that the output is out have the NEW stories been shown.
    if problem := reading.record_shown(state, listing):
        warn(problem)
    if listing.refreshed:
        _auto_prune(state)


def _nothing_listed(filters: ListFilters, narrowed: bool) -> str:
    state = "unread " if filters.unread else "read " if filters.read else ""
    if narrowed:
        return f"No {state}stories match."
    return f"No {state}stories." if state else "No stories yet."


@app.command("open")
def open_command(
    ctx: typer.Context,
    story_id: Annotated[
        int | None,
        typer.Argument(metavar="[ID]", help="Story id; the newest unread story if left out."),
    ] = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the URL instead of opening it.")
    ] = False,
) -> None:
    """Open a story in the browser and mark it read."""
    reading.open_story(_app(ctx), story_id, _print_link if print_only else _open_in_browser)


def _print_link(url: str) -> None:
    _out(url + "\n")


def _open_in_browser(url: str) -> None:
    """Start a browser; where none starts, the link is printed instead."""
    import webbrowser

    try:
        opened = webbrowser.open(url, new=2)
    except (webbrowser.Error, OSError):
        opened = False
    if not opened:
        warn("no browser could be started; here is the link")
        _print_link(url)


@app.command("read")
def read_command(
    ctx: typer.Context,
    story_id: Annotated[int, typer.Argument(metavar="ID", help="Story id.")],
) -> None:
    """Show a story as text in the terminal and mark it read."""
    state = _app(ctx)

    def show(story: Story, body: str) -> None:
        if _stdout_is_tty():
            _show(render.story_view(story, body, state.clock()))
        else:
            _out(render.story_plain(story, body) + "\n")

    reading.read_story(state, story_id, show)


@app.command("refresh")
def refresh_command(
    ctx: typer.Context,
    feeds: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[FEED]...",
            help="Only these feeds, fetched even if not due.",
            autocompletion=_complete_feed,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Fetch every active feed, ignoring intervals.")
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Fetch the feeds that are due now."""
    state = _app(ctx)
    with state.refresh_lock() as locked:
        if not locked:
            _busy(verbose)
        _refresh(state, feeds or [], force=force, verbose=verbose)


def _busy(verbose: bool) -> NoReturn:
    if verbose:
        warn("another storyfeed is fetching feeds (refresh, notify or list); nothing was done")
    raise typer.Exit(EXIT_BUSY)


def _refresh(state: core.App, feeds: list[str], *, force: bool, verbose: bool) -> None:
    chosen, held = core.select_feeds(state, feeds, force=force)
    for feed in held:
        warn(f"{feed.title}: {render.held_back(feed, state.clock())}")
    if not chosen:
        if not held and (verbose or sys.stderr.isatty()):
            hint = "" if force else "; `storyfeed refresh --force` fetches every feed"
            _stderr_console().print(f"Nothing to fetch now{hint}.")
        return
    started = time.monotonic()
    with _progress(len(chosen), "Refreshing") as progress:
        results = core.refresh(state, chosen, progress=progress)
    seconds = time.monotonic() - started
    lines = [
        line
        for r in sorted(results, key=lambda r: r.feed.id)
        if (line := render.refresh_line(r, verbose=verbose))
    ]
    if _stdout_is_tty():
        console = _console()
        for line in lines:
            _show(line, console)
    else:
        _note("".join(line.plain + "\n" for line in lines))
    if verbose:
        say(render.refresh_summary(results, seconds))
    _auto_prune(state, verbose=verbose)
    if any(result.failed for result in results):
        raise typer.Exit(EXIT_FAILED)


@app.command("add")
def add_command(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="Feed URL, web page, file:// URL or local path.")],
    title: Annotated[str, typer.Option("--title", help="Name to show for the feed.")] = "",
) -> None:
    """Subscribe to a feed (a web page is searched for its feed links)."""
    from storyfeed import subscriptions

    subscription = subscriptions.add_feed(_app(ctx), url, title=title, cwd=Path.cwd())
    feed = subscription.feed
    noun = "story" if subscription.new == 1 else "stories"
    lines = [f"Subscribed to {feed.title} (feed {feed.id}): {subscription.new} {noun}."]
    lines += [
        f"  The page also offers: {link.url} ({link.title or link.type})"
        for link in subscription.other_links
    ]
    _note("".join(line + "\n" for line in lines))


@app.command("remove")
def remove_command(ctx: typer.Context, feed: FeedArg) -> None:
    """Unsubscribe from a feed and delete its stories."""
    from storyfeed import subscriptions

    removed, count = subscriptions.remove_feed(_app(ctx), feed)
    _note(f"Removed {removed.title} (feed {removed.id}) and {count} stories.\n")


@app.command("feeds")
def feeds_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List subscriptions with their health."""
    from storyfeed import subscriptions

    state = _app(ctx)
    feeds = subscriptions.feed_health(state)
    if as_json:
        _out(render.feeds_json(feeds) + "\n")
    elif _stdout_is_tty():
        console = _console()
        _show(render.feed_table(feeds, state.clock(), width=console.width), console)
    else:
        _out_lines(render.feed_lines(feeds))


class MarkAction(enum.StrEnum):
    READ = "read"
    UNREAD = "unread"


@app.command("mark")
def mark_command(
    ctx: typer.Context,
    action: Annotated[MarkAction, typer.Argument(help="read or unread.")],
    story_ids: Annotated[list[int] | None, typer.Argument(metavar="[ID]...")] = None,
    all_stories: Annotated[bool, typer.Option("--all", help="Every story.")] = False,
    feed: Annotated[
        str | None,
        typer.Option(
            "--feed",
            metavar="FEED",
            help="Every story of one feed.",
            autocompletion=_complete_feed,
        ),
    ] = None,
) -> None:
    """Mark stories read or unread."""
    if not story_ids and not all_stories and feed is None:
        raise typer.BadParameter("name story ids, or use --all or --feed FEED", param_hint="ID")
    changed = reading.mark(
        _app(ctx),
        read=action is MarkAction.READ,
        story_ids=story_ids or [],
        all_stories=all_stories,
        feed=feed,
    )
    if _stdout_is_tty():
        noun = "story" if changed == 1 else "stories"
        _note(f"Marked {changed} {noun} {action.value}.\n")


@app.command("notify")
def notify_command(
    ctx: typer.Context,
    to: Annotated[
        list[str] | None,
        typer.Option(
            "--to",
            metavar="URL",
            help="An apprise URL to notify (repeatable); default: [notify] urls, else stdout.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be sent; record nothing.")
    ] = False,
    backlog: Annotated[
        bool, typer.Option("--backlog", help="Send the stories already there, not only news.")
    ] = False,
    test: Annotated[
        bool, typer.Option("--test", help="Send one test message to each channel, nothing else.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Stories and the run's summary as JSON lines.")
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """For cron: refresh, then tell each channel about new stories, once."""
    from storyfeed import notify

    state = _app(ctx)
    urls = list(dict.fromkeys(u.strip() for u in to or state.settings.notify.urls))
    urls = urls or [notify.STDOUT]
    if config.holds_secrets_readable_by_others(state.paths.config_file, state.settings):
        warn(f"{state.paths.config_file} holds notification URLs and others can read it; "
             "chmod 600 it")  # fmt: skip
    timeout = state.settings.notify.send_timeout
    targets = [_target(url, as_json=as_json, timeout=timeout) for url in urls]
    if test and dry_run:
        _note("".join(f"{t.label}: would send a test message\n" for t in targets))
        return
    if test:
        failed = [(label, reason) for label, reason in notify.send_test(targets) if reason]
        for label, reason in failed:
            error(f"{label}: {reason}")
        if not failed:
            _note("".join(f"{t.label}: test message accepted\n" for t in targets))
        raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)
    with state.refresh_lock() as locked:
        if not locked:
            _busy(verbose)
        report = notify.run_notify(state, targets, backlog=backlog, dry_run=dry_run)
        _notify_output(report, dry_run=dry_run, as_json=as_json, verbose=verbose, backlog=backlog)
        if not dry_run:
            notify.settle(state, report)
            _auto_prune(state, verbose=verbose)
    if report.failed:
        raise typer.Exit(EXIT_FAILED)


def _target(url: str, *, as_json: bool, timeout: float) -> notify.Target:
    from storyfeed import notify

    label = notify.channel_label(url)
    if url == notify.STDOUT:
        return notify.Target(notify.channel_key(url), label, _StdoutSender(as_json))
    from storyfeed import deliver

    try:
        channel = deliver.AppriseChannel(url, timeout=timeout)
    except deliver.InvalidChannelURL as exc:
        raise InvalidURLError(f"{label}: {exc}") from None
    return notify.Target(notify.channel_key(url), label, _AppriseSender(channel))


class _StdoutSender:
    """The default channel: one line per story (`feed — title — link`), which cron
    mails; with --json, one JSON object per story."""

    def __init__(self, as_json: bool) -> None:
        self._as_json = as_json

    def send(self, message: notify.Message) -> str:
        if self._as_json:
            lines = [
                render.json_line(render.story_record(s, reading.story_summary(s)))
                for s in message.stories
            ]
        else:
            lines = message.lines or [f"{message.title}: {message.body}"]
        try:
            _out_lines(lines)
        except (_OutputClosed, OutputError):
            return "standard output cannot be written"
        return ""


class _AppriseSender:
    def __init__(self, channel: AppriseChannel) -> None:
        self._channel = channel

    def send(self, message: notify.Message) -> str:
        return self._channel.send(message.title, message.body)


def _notify_output(
    report: notify.NotifyReport, *, dry_run: bool, as_json: bool, verbose: bool, backlog: bool
) -> None:
    """Quiet when all is well: only news, lasting problems and their ends are told."""
    for feed_report in report.feeds:
        say(feed_report.line)
    for channel in report.channels:
        if channel.report:
            say(channel.report)
        if verbose and channel.new:
            start = "sent the backlog" if backlog else "it starts with the stories that come next"
            say(f"{channel.label}: a new channel; {start}")
        for message in channel.would_send:
            if as_json:
                would = {"channel": channel.label, "title": message.title,
                         "stories": [story.id for story in message.stories]}  # fmt: skip
                _out_lines([render.json_line({"would_send": would})])
            else:
                _out_lines([f"{channel.label}: would send: {message.title}"] + [
                    f"  {line}" for line in message.lines
                ])  # fmt: skip
        if verbose:
            say(f"{channel.label}: {channel.delivered} delivered, {channel.pending} pending"
                + (f" ({channel.error})" if channel.error else ""))  # fmt: skip
    if verbose and report.baseline:
        say(f"took {report.baseline} stories as the baseline: they were there before "
            "notify first saw their feeds (--backlog sends them)")  # fmt: skip
    if as_json:
        summary = {
            "dry_run": dry_run,
            "baseline": report.baseline,
            "channels": [
                {
                    "channel": c.label,
                    "delivered": c.delivered,
                    "pending": c.pending,
                    "error": c.error or None,
                    "would_send": sum(len(m.stories) for m in c.would_send),
                }
                for c in report.channels
            ],
            "feeds": [{"feed_id": r.feed.id, "message": r.line} for r in report.feeds],
        }
        _out_lines([render.json_line({"summary": summary})])


def say(message: str) -> None:
    """A line for the user on stderr that is neither an error nor a warning."""
    _to_stderr(f"storyfeed: {clean_line(message)}\n")


# --- tags ----------------------------------------------------------------------------


TagsArg = Annotated[list[str], typer.Argument(metavar="TAG...", help="Tag names.")]


@app.command("tag")
def tag_command(ctx: typer.Context, feed: FeedArg, tags: TagsArg) -> None:
    """Give a feed tags (`list --tag TAG` shows their stories)."""
    from storyfeed import subscriptions

    try:
        tagged, added = subscriptions.tag_feed(_app(ctx), feed, tags)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="TAG") from None
    _note(f"{tagged.title} (feed {tagged.id}): {_tag_list(tagged.tags)} ({added} added).\n")


@app.command("untag")
def untag_command(
    ctx: typer.Context,
    feed: FeedArg,
    tags: Annotated[list[str] | None, typer.Argument(metavar="[TAG]...", help="Tag names.")] = None,
    all_tags: Annotated[bool, typer.Option("--all", help="Every tag of the feed.")] = False,
) -> None:
    """Take tags from a feed."""
    from storyfeed import subscriptions

    if bool(tags) == all_tags:
        raise typer.BadParameter("name tags, or use --all (not both)", param_hint="TAG")
    untagged, removed = subscriptions.untag_feed(_app(ctx), feed, None if all_tags else tags)
    _note(f"{untagged.title} (feed {untagged.id}): {_tag_list(untagged.tags)} "
          f"({removed} removed).\n")  # fmt: skip


def _tag_list(tags: Sequence[str]) -> str:
    return "tags " + ", ".join(tags) if tags else "no tags"


@app.command("tags")
def tags_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List tags with how many feeds carry each."""
    from storyfeed import subscriptions

    counts = subscriptions.tag_counts(_app(ctx))
    if as_json:
        _out(render.tags_json((c.tag, c.feed_ids) for c in counts) + "\n")
    elif not _stdout_is_tty():
        _out_lines(render.tag_lines((c.tag, len(c.feed_ids)) for c in counts))
    elif not counts:
        _show("No tags yet; `storyfeed tag FEED TAG` adds one.")
    else:
        _show(render.tag_table([(c.tag, len(c.feed_ids)) for c in counts]))


# --- feed settings -------------------------------------------------------------------


@app.command("set")
def set_command(
    ctx: typer.Context,
    feed: FeedArg,
    key: Annotated[
        str | None,
        typer.Argument(metavar="[KEY]", help="interval, title, paused or notify."),
    ] = None,
    value: Annotated[
        str | None,
        typer.Argument(
            metavar="[VALUE]",
            help='interval: 30m, 2h, 1d or default; title: a name, or default (or "") for '
            "the feed's own; paused: yes or no; notify: on or off.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the settings as JSON.")] = False,
) -> None:
    """Change one of a feed's own settings; with no KEY, show them."""
    from storyfeed import subscriptions

    state = _app(ctx)
    interval = state.settings.refresh_interval
    if key is None:
        shown = subscriptions.feed_settings(state, feed)
    elif value is None:
        keys = ", ".join(subscriptions.SETTING_KEYS)
        raise typer.BadParameter(f"{key} needs a value (settings: {keys})", param_hint="VALUE")
    else:
        try:
            shown = subscriptions.change_setting(state, feed, key, value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="KEY VALUE") from None
        if not as_json:
            now = dict(render.feed_settings(shown, interval))[key.strip().lower()]
            _note(f"{shown.title} (feed {shown.id}): {key.strip().lower()} {now}.\n")
            return
    if as_json:
        _out(render.feed_settings_json(shown) + "\n")
    elif _stdout_is_tty():
        _show(render.feed_settings_view(shown, interval))
    else:
        _out_lines(render.feed_settings_lines(shown, interval))


# --- search --------------------------------------------------------------------------


@app.command(
    "search",
    # `-word` (leave out) is a query term, not an option.
    context_settings={"ignore_unknown_options": True},
    epilog=(
        "Query syntax: words must all match (in any field, any case, accents ignored); "
        '"a phrase" matches those words in order; word* matches a prefix; '
        "one OR other matches either; -word or NOT word leaves out stories with it; "
        "title:word, author:word, summary:word and content:word look in one field. "
        "Anything else (c++, don't) is searched for as the words in it; AND changes nothing. "
        "Put the query after -- when it starts with -n; quote words that start with --."
    ),
)
def search_command(
    ctx: typer.Context,
    query: Annotated[
        list[str], typer.Argument(metavar="QUERY...", help="Words to search for (see below).")
    ],
    feeds: Annotated[
        list[str] | None,
        typer.Option(
            "--feed",
            metavar="FEED",
            help="Only this feed (repeatable).",
            autocompletion=_complete_feed,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", "-n", min=1, help="How many stories [default: list_limit, 30]."),
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Every matching story.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Search titles, authors, summaries and content; the best matches first."""
    from storyfeed import searching

    # Unknown options reach the query (so that `search llm -vision` needs no --): a
    # mistyped long option (--limt, --jsno) must not silently become search words.
    if mistyped := next((word for word in query if re.match(r"--[A-Za-z]", word)), None):
        raise typer.BadParameter(
            f"no such option {mistyped}; to search for it, quote it: '\"{mistyped}\"'",
            param_hint="QUERY",
        )
    if every and limit is not None:
        raise typer.BadParameter("--all and --limit do not go together", param_hint="--all")
    text = " ".join(query)
    if not text.strip():
        raise typer.BadParameter("give words to search for", param_hint="QUERY")
    _require_output()
    state = _app(ctx)
    with _indexing(searching.LONG_CATCH_UP) as progress:
        result = searching.search(
            state,
            text,
            feeds=feeds or [],
            limit=None if every else limit or state.settings.list_limit,
            progress=progress,
        )
    for message in result.warnings:
        warn(message)
    hits = result.hits
    if as_json:
        _out(render.search_json(hits, reading.story_summary) + "\n")
    elif not _stdout_is_tty():
        _out_lines(render.search_lines(hits))
    elif not hits:
        _show("No stories match.")
    else:
        console = _console()
        show_feed = len({hit.story.feed_id for hit in hits}) > 1
        _show(render.search_table(hits, state.clock(), show_feed=show_feed, width=console.width))


@contextmanager
def _indexing(quiet_below: int) -> Iterator[Callable[[int, int], None]]:
    """Progress of a search index catch-up: nothing for a short one; for a long one
    a line on stderr, and a transient bar when stderr is a terminal."""
    from rich.progress import Progress

    bar: Progress | None = None
    task = None

    def advance(done: int, total: int) -> None:
        nonlocal bar, task
        if total < quiet_below:
            return
        if done == 0 and bar is None:
            if not sys.stderr.isatty():
                say(f"indexing {total:,} stories for search (once)...")
                return
            bar = Progress(console=_stderr_console(), transient=True)
            bar.start()
            task = bar.add_task("Indexing for search", total=total)
        if bar is not None and task is not None:
            bar.update(task, completed=done)

    try:
        yield advance
    finally:
        if bar is not None:
            bar.stop()


# --- opml ----------------------------------------------------------------------------


@app.command("import")
def import_command(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="An OPML file; - reads standard input.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be imported; change nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Subscribe to the feeds of an OPML file; its folders become tags."""
    from storyfeed import moving

    from_stdin = str(file) == "-"
    data = moving.read_opml(sys.stdin.buffer if from_stdin else file)
    name = "standard input" if from_stdin else str(file)
    report = moving.import_opml(_app(ctx), data, dry_run=dry_run, name=name)
    if as_json:
        _out(render.import_json(report) + "\n")
        return
    for skipped in report.skipped:
        warn(f"skipped {skipped.url}: {skipped.reason}")
    _note(render.import_summary(report) + "\n")


@app.command("export")
def export_command(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Argument(metavar="[FILE]", help="Where to write; standard output if left out."),
    ] = None,
) -> None:
    """Write every subscription, with its tags, as an OPML 2.0 file."""
    from storyfeed import moving

    state = _app(ctx)
    if file is None or str(file) == "-":
        _require_output()
        with _writing():
            sys.stdout.buffer.write(moving.export_opml(state))
        return
    count = moving.save_opml(state, file)
    if _stdout_is_tty():
        _note(f"Wrote {count} {'feed' if count == 1 else 'feeds'} to {file}.\n")


# --- doctor --------------------------------------------------------------------------


@app.command("doctor")
def doctor_command(
    ctx: typer.Context,
    feed: Annotated[
        str | None,
        typer.Argument(
            metavar="[FEED]",
            help="Only this feed (id, URL, or part of its title).",
            autocompletion=_complete_feed,
        ),
    ] = None,
    as_json: JsonOpt = False,
    refresh: Annotated[
        bool,
        typer.Option("--refresh", help="Fetch FEED (without FEED: every active feed) first."),
    ] = False,
) -> None:
    """Explain each feed's last fetch and check the database; fetches nothing by itself.

    Exits 1 when the database check finds damage, or when the named FEED is failing.
    """
    from storyfeed import doctor

    state = _app(ctx)
    if refresh:
        with state.refresh_lock() as locked:
            if not locked:
                _busy(verbose=True)
            # Failures are what the report is about: they do not end the command here.
            chosen, _held = core.select_feeds(state, [feed] if feed else [], force=True)
            with _progress(len(chosen), "Refreshing") as progress:
                core.refresh(state, chosen, progress=progress)
    report = doctor.examine(state, feed)
    if as_json:
        _out(render.doctor_json(report.record) + "\n")
    elif _stdout_is_tty():
        _show(render.doctor_view(report.checkups))
    else:
        _out_lines(render.doctor_lines(report.checkups))
    if report.failed:
        raise typer.Exit(EXIT_FAILED)


# --- retention -----------------------------------------------------------------------


def _older_than(value: str | None) -> str | None:
    """Checks --older-than's spelling; the date it means depends on the clock."""
    from storyfeed import retention

    if value is not None:
        try:
            retention.cutoff(value, 0, core.utcnow())
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


@app.command("prune")
def prune_command(
    ctx: typer.Context,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="AGE",
            callback=_older_than,
            help="An age (180d, 26w, 1y) or a date (2026-05-01) [default: prune_after, else 180d].",
        ),
    ] = None,
    keep_unread: Annotated[
        bool | None,
        typer.Option(
            "--keep-unread/--include-unread",
            help="Keep unread stories, or prune them too [default: prune_keep_unread, true].",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; change nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete old stories; a feed that still lists them never brings them back."""
    from storyfeed import retention

    state = _app(ctx)
    before = retention.cutoff(older_than, state.settings.prune_after, state.clock())
    keep = state.settings.prune_keep_unread if keep_unread is None else keep_unread
    report = retention.prune(
        state, before=before, keep_unread=keep, dry_run=dry_run, before_vacuum=_vacuum_notice
    )
    if report.problem:
        warn(report.problem)
    if as_json:
        _out(render.prune_json(report) + "\n")
    elif not _stdout_is_tty():
        _out_lines(render.prune_lines(report))
    else:
        console = _console()
        if report.feeds:
            _show(render.prune_table(report), console)
        _show(render.prune_summary(report), console)


def _vacuum_notice(file_bytes: int, free_bytes: int) -> None:
    free, total = render.size(free_bytes), render.size(file_bytes)
    say(f"compacting the database (VACUUM: {free} of {total} are free); "
        "storyfeed commands that write to it wait meanwhile")  # fmt: skip


def _auto_prune(state: core.App, *, verbose: bool = False) -> None:
    """config.toml's prune_after, at most once a day, after a refresh; quiet unless
    asked or compacting the database in front of someone."""
    if not state.settings.prune_after:
        return
    from storyfeed import retention

    notice = _vacuum_notice if verbose or sys.stderr.isatty() else None
    try:
        report = retention.apply_policy(state, before_vacuum=notice)
    except StoryfeedError as exc:
        warn(f"automatic prune skipped: {exc}")
        return
    if report is not None and report.problem:
        warn(report.problem)
    if report is not None and verbose:
        say(f"prune_after: {render.prune_summary(report)}")


# --- config --------------------------------------------------------------------------


@app.command("config")
def config_command(
    ctx: typer.Context,
    template: Annotated[
        bool,
        typer.Option(
            "--template", help="Print a complete config.toml: every setting at its default."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show each setting in effect and where it came from (secrets hidden)."""
    if template:
        _out(config.template())
        return
    values = config.effective_settings(_app(ctx).paths)
    if as_json:
        _out(render.settings_json(values) + "\n")
    elif _stdout_is_tty():
        _show(render.settings_table(values))
    else:
        _out_lines(render.settings_lines(values))


# --- the error boundary --------------------------------------------------------------


# user:password@ in a URL quoted back by a usage error (`notify json://u:p@h/` without --to)
_CREDENTIALS = re.compile(r"(\w[\w+.-]*://)[^/\s@]+@")


def _app_for(args: Sequence[str]) -> typer.Typer:
    """The app, holding only the command ``args`` name when they name one: typer
    inspects every command's signature each time it starts (~0.3 ms a command), and
    `storyfeed list` should not pay for twenty others. Help, completion and typos
    get the whole app."""
    if "_STORYFEED_COMPLETE" in os.environ:
        return app
    name, after_option = None, False
    for arg in args:
        if not arg.startswith("-") and not after_option:
            name = arg
            break
        after_option = arg == "--color"  # the root option that takes a value
    else:
        return app
    chosen = [info for info in app.registered_commands if info.name == name]
    if not chosen:
        return app
    lean = copy.copy(app)
    lean.registered_commands = chosen
    return lean


def main(argv: Sequence[str] | None = None) -> None:
    """Run storyfeed and exit: 0 ok, 1 failed, 2 usage error, 130 interrupted."""
    sys.exit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command; every error becomes a line on stderr and an exit status."""
    global _stdout_closed
    _stdout_closed = sys.stdout is None
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:  # started with the descriptor closed (`>&-`)
            setattr(sys, name, Path(os.devnull).open("w"))  # noqa: SIM115 (lives as long as we do)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = _app_for(args)(args=args, prog_name="storyfeed", standalone_mode=False)
    except StoryfeedError as exc:
        error(str(exc))
        return EXIT_FAILED
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        error(_CREDENTIALS.sub(r"\1***@", exc.format_message()))
        code = int(getattr(exc, "exit_code", EXIT_USAGE))
        ctx = getattr(exc, "ctx", None)
        if code == EXIT_USAGE and ctx is not None:
            sys.stderr.write(f"Try '{ctx.command_path} --help'.\n")
        return code
    except (typer.Abort, KeyboardInterrupt):
        result = EXIT_INTERRUPTED
    except _OutputClosed:
        # Nobody reads any more; keep the interpreter's last flush from complaining.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        if os.environ.get("STORYFEED_DEBUG"):
            raise
        error(f"internal error: {type(exc).__name__}: {exc} (STORYFEED_DEBUG=1 shows details)")
        return EXIT_FAILED
    code = int(result) if isinstance(result, int) else EXIT_OK
    if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into this status
        sys.stderr.write(("\n" if sys.stderr.isatty() else "") + "storyfeed: interrupted\n")
    return code
