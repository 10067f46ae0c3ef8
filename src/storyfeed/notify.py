"""`storyfeed notify`: tell about new stories, once per channel, for cron.

A story is news for a channel when its feed was already notified before it
arrived (a feed's first notification takes its stories so far as history, its
*baseline*), the channel existed before it arrived (a new channel starts from
now), nobody read it first, and the channel has not accepted it yet. A story is
recorded as delivered only after its channel accepted it: a failing channel
keeps its stories for the next run, and channels that succeeded never get them
twice. If the process dies between a channel accepting a story and the record
being written, the story is sent once more (at least once, never lost).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from storyfeed.config import NotifySettings
from storyfeed.core import App, Progress, due_now, refresh
from storyfeed.models import Channel, Feed, FeedStatus, Story
from storyfeed.updates import RefreshResult

STDOUT = "stdout"


@dataclass(frozen=True, slots=True)
class Message:
    """One notification: a story, or a digest of several."""

    title: str
    body: str
    stories: tuple[Story, ...]

    @property
    def lines(self) -> list[str]:
        return [story_line(story) for story in self.stories]


class Sender(Protocol):
    def send(self, message: Message) -> str:
        """Deliver the message; "" when the channel accepted it, else the reason."""
        ...


@dataclass(frozen=True, slots=True)
class Target:
    """A channel as this run was told of it: its key, its label and a sender."""

    key: str
    label: str
    sender: Sender


def channel_key(url: str) -> str:
    """How the database knows a channel: a hash, since the URL holds secrets."""
    return STDOUT if url == STDOUT else hashlib.sha256(url.encode()).hexdigest()


def channel_label(url: str) -> str:
    """A channel's name in messages: its scheme and a short fingerprint, nothing
    more, since tokens hide in every part of an apprise URL (ntfy://TOPIC,
    tgram://BOTTOKEN/CHAT, json://user:pass@host/...)."""
    if url == STDOUT:
        return STDOUT
    try:
        scheme = urlsplit(url).scheme or "?"
    except ValueError:
        scheme = "?"
    return f"{scheme}://*** ({channel_key(url)[:8]})"


# --- pure decisions -----------------------------------------------------------------


def story_line(story: Story) -> str:
    return f"{story.feed_title} — {story.title or '(untitled)'} — {story.link}"


DIGEST_LINES = 25  # a digest names this many stories at most: services cap message sizes


def plan_messages(stories: Sequence[Story], digest_after: int) -> list[Message]:
    """One message per story, or one digest when there are more than ``digest_after``.

    A digest names the newest few and counts the rest, so that it stays within
    what chat services accept (Discord takes 2,000 characters, Telegram 4,096).
    """
    if len(stories) > digest_after:
        shown = list(stories)[-DIGEST_LINES:]
        lines = [story_line(story)[:300] for story in shown]
        if len(stories) > len(shown):
            lines.append(f"… and {len(stories) - len(shown)} more: `storyfeed list` shows them")
        return [Message(f"{len(stories)} new stories", "\n".join(lines), tuple(stories))]
    return [
        Message(story.feed_title, f"{story.title or '(untitled)'}\n{story.link}", (story,))
        for story in stories
    ]


# What notify last said of a feed's trouble (Feed.problem_reported).
QUIET, FAILING, RETIRED = 0, 1, 2


@dataclass(frozen=True, slots=True)
class FeedReport:
    """A feed problem (or its end) worth one line, once."""

    feed: Feed
    line: str
    reported: int  # the feed's problem_reported after this report


def feed_reports(
    feeds: Sequence[Feed], settings: NotifySettings, now: datetime
) -> list[FeedReport]:
    """Problems that have persisted and not been told yet, and recoveries of told ones.

    Quiet otherwise: one failed fetch is not worth an email.
    """
    reports = []
    for feed in feeds:
        if not feed.notify:
            continue  # `storyfeed set FEED notify off`: nothing of this feed, news or trouble
        said = feed.problem_reported
        if feed.status is FeedStatus.GONE:
            if said != RETIRED:
                line = (
                    f"{feed.title}: retired (HTTP 410 Gone); `storyfeed refresh {feed.id}` retries"
                )
                reports.append(FeedReport(feed, line, RETIRED))
        elif feed.status is FeedStatus.ACTIVE and feed.error_count == 0:
            if said != QUIET:
                reports.append(FeedReport(feed, f"{feed.title}: recovered", QUIET))
        elif feed.status is FeedStatus.ACTIVE and said == QUIET and _persisted(feed, settings, now):
            since = feed.failing_since or now
            line = (
                f"{feed.title}: failing since {since:%Y-%m-%d %H:%M} UTC "
                f"({feed.error_count} attempts): {feed.last_error}"
            )
            reports.append(FeedReport(feed, line, FAILING))
    return reports


def _persisted(feed: Feed, settings: NotifySettings, now: datetime) -> bool:
    if feed.error_count >= settings.report_after_failures:
        return True
    started = feed.failing_since
    return started is not None and now - started >= timedelta(seconds=settings.report_after)


def channel_report(channel: Channel, error: str, settings: NotifySettings) -> tuple[str, bool]:
    """A line about a channel's health when it changes in a way worth saying once,
    and the channel's failure_reported flag after it."""
    if error:
        failures = channel.failures + 1
        if failures >= settings.channel_failures and not channel.failure_reported:
            return f"{channel.label}: {failures} failed runs in a row: {error}", True
        return "", channel.failure_reported
    if channel.failure_reported:
        return f"{channel.label}: delivering again", False
    return "", False


# --- the run ------------------------------------------------------------------------


@dataclass(slots=True)
class ChannelOutcome:
    label: str
    channel_id: int = 0
    reported: bool = False  # the channel's failure_reported flag after this run
    delivered: int = 0
    pending: int = 0
    error: str = ""
    report: str = ""  # a line to print (a failure streak, or its end)
    new: bool = False  # first used in this run
    would_send: list[Message] = field(default_factory=list)


@dataclass(slots=True)
class NotifyReport:
    refreshed: list[RefreshResult]
    baseline: int
    feeds: list[FeedReport]
    channels: list[ChannelOutcome]

    @property
    def failed(self) -> bool:
        return any(channel.error for channel in self.channels)


def run_notify(
    app: App,
    targets: Sequence[Target],
    *,
    backlog: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> NotifyReport:
    """Refresh what is due, then deliver each channel's news and record it.

    The caller holds the refresh lock, and calls :func:`settle` once it has shown
    the report. With ``dry_run`` nothing is sent and no baseline, delivery or
    report is recorded (the cache itself is refreshed).
    """
    refreshed = refresh(app, due_now(app), progress=progress)
    now = app.clock()
    reports = feed_reports(app.store.feeds(), app.settings.notify, now)
    baseline = app.store.take_notify_baseline(backlog=backlog, dry_run=dry_run)
    outcomes = [_deliver(app, target, backlog=backlog, dry_run=dry_run) for target in targets]
    return NotifyReport(refreshed=refreshed, baseline=baseline, feeds=reports, channels=outcomes)


def _deliver(app: App, target: Target, *, backlog: bool, dry_run: bool) -> ChannelOutcome:
    settings = app.settings.notify
    outcome = ChannelOutcome(target.label)
    channel = app.store.channel(target.key, target.label, backlog=backlog, create=False)
    if channel is None:
        outcome.new = True
        channel = app.store.channel(target.key, target.label, backlog=backlog, create=not dry_run)
    if channel is None:  # a dry run's new channel: it would start from now
        if not backlog:
            return outcome
        channel = Channel(id=0, key=target.key, label=target.label, after_story=0)
    outcome.channel_id, outcome.reported = channel.id, channel.failure_reported
    if not dry_run:
        app.store.skip_read_stories(channel, app.clock())
    stories = app.store.pending_stories(channel, unseen_feeds=backlog and dry_run)
    messages = plan_messages(stories, settings.digest_after)
    outcome.pending = len(stories)
    if dry_run:
        outcome.would_send = messages
        return outcome
    for message in messages:
        error = target.sender.send(message)
        if error:
            outcome.error = error
            break
        app.store.record_deliveries(channel.id, [s.id for s in message.stories], app.clock())
        outcome.delivered += len(message.stories)
    outcome.pending -= outcome.delivered
    if messages:  # a run with nothing to send says nothing about the channel
        outcome.report, outcome.reported = channel_report(channel, outcome.error, settings)
        app.store.record_channel_run(channel.id, error=outcome.error, now=app.clock())
    return outcome


def settle(app: App, report: NotifyReport) -> None:
    """Remember what was told of feeds and channels, once it has been shown: a run
    that dies before showing it tells it again next time."""
    for feed_report in report.feeds:
        app.store.set_problem_reported(feed_report.feed.id, feed_report.reported)
    for channel in report.channels:
        if channel.report:
            app.store.set_channel_reported(channel.channel_id, channel.reported)


def send_test(targets: Sequence[Target]) -> list[tuple[str, str]]:
    """One test message to each channel; (label, error or "") for each."""
    message = Message("storyfeed test", "storyfeed can reach this channel.", ())
    return [(target.label, target.sender.send(message)) for target in targets]
