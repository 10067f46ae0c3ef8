"""The command line: typer wiring and the one error boundary.

Each command parses its options, calls one use case (in :mod:`storyfeed.core`,
:mod:`~storyfeed.reading`, :mod:`~storyfeed.subscriptions` or :mod:`~storyfeed.notify`)
and prints what :mod:`storyfeed.render` builds: a rich table on a terminal,
tab-separated lines in a pipe, JSON with ``--json``. Every ``StoryfeedError``
becomes one ``storyfeed: error: ...`` line and exit status 1 in :func:`run`.
"""

from __future__ import annotations

import contextlib
import enum
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console, RenderableType

from storyfeed import __version__, config, core, reading, render
from storyfeed.config import default_paths
from storyfeed.errors import InvalidURLError, StoryfeedError
from storyfeed.models import RefreshResult, Story
from storyfeed.text import clean_line

if TYPE_CHECKING:
    from storyfeed import notify
    from storyfeed.deliver import AppriseChannel

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


def _stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


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
) -> None:
    """A terminal feed reader. With no command, runs `list`."""
    state = core.App(default_paths())
    ctx.obj = state
    ctx.call_on_close(state.close)
    if ctx.invoked_subcommand is None:
        _list(state, feed=None, unread=False, limit=None, offline=False, as_json=False)


FeedArg = Annotated[str, typer.Argument(metavar="FEED", help="Feed id, URL, or part of its title.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Say what happened, even when all is well.")
]


@app.command("list")
def list_command(
    ctx: typer.Context,
    feed: Annotated[
        str | None,
        typer.Argument(metavar="[FEED]", help="Only this feed (id, URL, or part of its title)."),
    ] = None,
    unread: Annotated[bool, typer.Option("--unread", help="Only unread stories.")] = False,
    limit: Annotated[
        int | None,
        typer.Option("--limit", "-n", min=1, help="How many stories [default: list_limit, 30]."),
    ] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Do not refresh first.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Refresh feeds that are due, then show the newest stories."""
    _list(_app(ctx), feed=feed, unread=unread, limit=limit, offline=offline, as_json=as_json)


def _list(
    state: core.App,
    *,
    feed: str | None,
    unread: bool,
    limit: int | None,
    offline: bool,
    as_json: bool,
) -> None:
    _require_output()
    chosen = reading.choose_feed(state, feed)
    due = [] if offline else reading.due_for_listing(state, chosen)
    with _progress(len(due), "Refreshing") as progress:
        listing = reading.list_stories(
            state,
            chosen=chosen,
            unread=unread,
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
        _show("No unread stories." if unread else "No stories yet.")
    else:
        console = _console()
        table = render.story_table(
            listing.stories,
            state.clock(),
            show_feed=feed is None and len({s.feed_id for s in listing.stories}) > 1,
            width=console.width,
        )
        _show(table, console)
    # Only now that the output is out have the NEW stories been shown.
    if problem := reading.record_shown(state, listing):
        warn(problem)


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
        typer.Argument(metavar="[FEED]...", help="Only these feeds, fetched even if not due."),
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
        _refresh(state, feeds or [], force=force)


def _busy(verbose: bool) -> NoReturn:
    if verbose:
        warn("another storyfeed is fetching feeds (refresh, notify or list); nothing was done")
    raise typer.Exit(EXIT_BUSY)


def _refresh(state: core.App, feeds: list[str], *, force: bool) -> None:
    chosen, held = core.select_feeds(state, feeds, force=force)
    for feed in held:
        warn(f"{feed.title}: {render.held_back(feed, state.clock())}")
    if not chosen:
        if not held and sys.stderr.isatty():
            hint = "" if force else "; `storyfeed refresh --force` fetches every feed"
            _stderr_console().print(f"Nothing to fetch now{hint}.")
        return
    with _progress(len(chosen), "Refreshing") as progress:
        results = core.refresh(state, chosen, progress=progress)
    lines = [
        line for r in sorted(results, key=lambda r: r.feed.id) if (line := render.refresh_line(r))
    ]
    if _stdout_is_tty():
        console = _console()
        for line in lines:
            _show(line, console)
    else:
        _note("".join(line.plain + "\n" for line in lines))
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
        str | None, typer.Option("--feed", metavar="FEED", help="Every story of one feed.")
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


# --- the error boundary --------------------------------------------------------------


# --- tags ----------------------------------------------------------------------------


# --- feed settings -------------------------------------------------------------------


# --- search --------------------------------------------------------------------------


# --- opml ----------------------------------------------------------------------------


# --- doctor --------------------------------------------------------------------------


@app.command("doctor")
def doctor_command(
    ctx: typer.Context,
    feed: Annotated[
        str | None,
        typer.Argument(metavar="[FEED]", help="Only this feed (id, URL, or part of its title)."),
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


# --- config --------------------------------------------------------------------------


# user:password@ in a URL quoted back by a usage error (`notify json://u:p@h/` without --to)
_CREDENTIALS = re.compile(r"(\w[\w+.-]*://)[^/\s@]+@")


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
    try:
        result = app(args=list(argv) if argv is not None else None, prog_name="storyfeed",
                     standalone_mode=False)  # fmt: skip
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
