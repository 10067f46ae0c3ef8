"""`storyfeed doctor`: what each feed's last fetch saw and why, and the database's health.

Nothing is fetched here: every fetch records what it saw (``feeds.diagnosis``,
written by :func:`storyfeed.core.fetch_diagnosis`), and this module only
assembles a report from that, the feeds' error streaks and the database's own
account of itself. The assembling is pure (:func:`feed_checkup`,
:func:`storyfeed_checkup`); :func:`examine` gathers what they need.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storyfeed import __version__
from storyfeed.config import Paths, Settings
from storyfeed.core import App, fetch_interval, resolve_feed
from storyfeed.models import (
    Feed,
    FeedStatus,
)
from storyfeed.reports import Checkup, DatabaseHealth, Finding, Verdict
from storyfeed.text import clean_line, redact_url

Record = dict[str, Any]  # one JSON object of `doctor --json`


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """Checkups to show, the same as JSON, and whether doctor should exit 1."""

    checkups: tuple[Checkup, ...]
    record: Record
    failed: bool


def examine(app: App, name: str | None = None) -> DoctorReport:
    """The report on storyfeed and every feed (or the one ``name`` names).

    It fails when the database check finds damage, or when the named feed's
    verdict is FAIL; failing feeds among all of them are reported, not failed on.
    """
    store = app.store
    feeds = store.feeds(with_counts=True)
    if name is not None:
        feeds = [resolve_feed(feeds, name)]
    diagnoses = store.diagnoses()
    health = store.health()
    now = app.clock()
    database = app.paths.database
    wal = database.with_name(database.name + "-wal")
    itself, itself_record = storyfeed_checkup(
        app.paths,
        health,
        config_exists=app.paths.config_file.is_file(),
        database_bytes=_file_size(database),
        wal_bytes=_file_size(wal),
    )
    checked = [
        feed_checkup(feed, load_diagnosis(diagnoses.get(feed.id, "")), app.settings, now)
        for feed in feeds
    ]
    failed = bool(health.problems) or (name is not None and checked[0][0].verdict is Verdict.FAIL)
    return DoctorReport(
        checkups=(itself, *(checkup for checkup, _ in checked)),
        record={"storyfeed": itself_record, "feeds": [record for _, record in checked]},
        failed=failed,
    )


def _file_size(path: Path) -> int:
    try:
        return int(path.stat().st_size)
    except OSError:
        return 0


def load_diagnosis(text: str) -> Record | None:
    """A stored diagnosis, or None when none was recorded (or it is unreadable)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# --- storyfeed itself ----------------------------------------------------------------


def storyfeed_checkup(
    paths: Paths,
    health: DatabaseHealth,
    *,
    config_exists: bool,
    database_bytes: int,
    wal_bytes: int,
) -> tuple[Checkup, Record]:
    """Paths, the database's size, schema and integrity, and the search index's lag."""
    config_state = "present" if config_exists else "absent: the defaults apply"
    wal = f" (+ {size_text(wal_bytes)} write-ahead log)" if wal_bytes else ""
    findings = [
        Finding("config", Verdict.INFO, f"{paths.config_file} ({config_state})"),
        Finding("data", Verdict.INFO, str(paths.data_dir)),
        Finding(
            "database",
            Verdict.INFO,
            f"{paths.database}: {size_text(database_bytes)}{wal}, schema "
            f"{health.schema_version}, SQLite {health.sqlite_version}",
        ),
    ]
    if health.problems:
        shown = "; ".join(clean_line(problem) for problem in health.problems[:3])
        more = len(health.problems) - 3
        findings.append(
            Finding(
                "integrity",
                Verdict.FAIL,
                f"{health.check} found damage: {shown}"
                + (f" (and {more} more)" if more > 0 else ""),
                _repair_advice(paths, health.problems),
            )
        )
    else:
        findings.append(Finding("integrity", Verdict.OK, f"{health.check}: ok"))
    findings.append(
        Finding(
            "contents",
            Verdict.INFO,
            f"{_count(health.feeds, 'feed')}, {_count(health.stories, 'story', 'stories')}",
        )
    )
    if health.unindexed:
        lag = f"{_count(health.unindexed, 'story', 'stories')} not indexed yet"
        findings.append(Finding("search index", Verdict.INFO, lag, "the next search indexes them"))
    else:
        findings.append(Finding("search index", Verdict.OK, "up to date"))
    checkup = Checkup(subject=f"storyfeed {__version__}", findings=tuple(findings))
    record: Record = {
        "version": __version__,
        "verdict": checkup.verdict.value,
        "config_dir": str(paths.config_dir),
        "config_file": str(paths.config_file),
        "config_file_exists": config_exists,
        "data_dir": str(paths.data_dir),
        "database": str(paths.database),
        "database_bytes": database_bytes,
        "wal_bytes": wal_bytes,
        "free_bytes": health.free_bytes,
        "schema_version": health.schema_version,
        "sqlite_version": health.sqlite_version,
        "check": health.check,
        "check_ok": not health.problems,
        "check_problems": list(health.problems),
        "feeds": health.feeds,
        "stories": health.stories,
        "search_index": {
            "indexed_through": health.indexed_through,
            "newest_story": health.newest_story,
            "unindexed": health.unindexed,
        },
        "findings": _finding_records(findings),
    }
    return checkup, record


def _repair_advice(paths: Paths, problems: tuple[str, ...]) -> str:
    if all(
        " index " in problem or problem.startswith("wrong # of entries") for problem in problems
    ):
        # Only indexes disagree with their tables: rebuilding them loses nothing.
        return f"the tables are sound, the indexes are not: `sqlite3 {paths.database} REINDEX`"
    return (
        f"copy {paths.database} aside first; `sqlite3 {paths.database} .recover | sqlite3 "
        "recovered.db` salvages what is readable; moving the database away starts afresh"
    )


# --- one feed --------------------------------------------------------------------------


_UNPAUSE = (
    "`storyfeed set FEED paused no` unpauses it; `storyfeed refresh FEED` fetches it once, paused"
)


def feed_checkup(
    feed: Feed, diagnosis: Mapping[str, Any] | None, settings: Settings, now: datetime
) -> tuple[Checkup, Record]:
    """What the feed's last fetch saw and what it means, with advice where there is some."""
    findings: list[Finding] = []
    if feed.status is FeedStatus.GONE:
        findings.append(
            Finding(
                "status",
                Verdict.FAIL,
                "retired: the server answered 410 Gone, so it is not fetched any more",
                "`storyfeed refresh FEED` tries it again; `storyfeed remove FEED` unsubscribes",
            )
        )
    elif feed.status is FeedStatus.PAUSED:
        findings.append(Finding("status", Verdict.WARN, "paused: not fetched", _UNPAUSE))
    if diagnosis is None:
        findings.append(_unrecorded(feed))
    else:
        findings += _fetch_findings(feed, diagnosis)
    findings += _schedule_findings(feed, diagnosis or {}, settings, now)
    findings += _streak_findings(feed)
    checkup = Checkup(subject=feed.title, findings=tuple(findings), feed_id=feed.id)
    asked = _server_asked(feed, diagnosis or {})
    record: Record = {
        "id": feed.id,
        "title": feed.title,
        "url": redact_url(feed.url),
        "status": feed.status.value,
        "verdict": checkup.verdict.value,
        "last_fetch": dict(diagnosis) if diagnosis is not None else None,
        "schedule": {
            "server_max_age": asked.get("max_age"),
            "server_expires_in": asked.get("expires_in"),
            "ttl": feed.ttl_seconds,
            "interval": _interval(feed, diagnosis or {}, settings),
            "next_fetch": _iso(_next_fetch(feed)) or None,
            "retry_after": _iso(feed.retry_after) or None,
        },
        "errors": {
            "count": feed.error_count,
            "failing_since": _iso(feed.failing_since) or None,
            "last_error": feed.last_error or None,
            "last_error_at": _iso(feed.last_error_at) or None,
        },
        "findings": _finding_records(findings),
    }
    return checkup, record


def _unrecorded(feed: Feed) -> Finding:
    if feed.last_fetch_at is None:
        return Finding(
            "last fetch", Verdict.WARN, "never fetched", "`storyfeed refresh FEED` fetches it now"
        )
    return Finding(
        "last fetch",
        Verdict.INFO,
        f"at {_iso(feed.last_fetch_at)}, before storyfeed recorded what fetches see",
        "the next refresh records it",
    )


def _fetch_findings(feed: Feed, d: Mapping[str, Any]) -> list[Finding]:
    status, outcome, error = d.get("status"), str(d.get("outcome", "")), str(d.get("error", ""))
    size, elapsed = int(d.get("bytes") or 0), d.get("elapsed_ms")
    took = f" in {elapsed} ms" if isinstance(elapsed, int) else ""
    at = str(d.get("at", ""))
    findings = []
    if outcome == "not_modified":
        findings.append(Finding("last fetch", Verdict.OK, f"HTTP 304 Not Modified{took}, at {at}"))
    elif outcome == "ok" and not error:
        what = f"HTTP {status}" if status else "read the file"
        kind = str(d.get("headers", {}).get("content-type", ""))
        kind = f" ({kind})" if kind else ""
        text = f"{what}: {size_text(size)}{kind}{took}, at {at}"
        findings.append(Finding("last fetch", Verdict.OK, text))
    elif outcome == "ok":
        findings.append(
            Finding("last fetch", Verdict.FAIL, f"HTTP {status}, at {at}, but: {error}")
            if status
            else Finding("last fetch", Verdict.FAIL, f"at {at}: {error}")
        )
    elif outcome == "gone":
        findings.append(Finding("last fetch", Verdict.FAIL, f"HTTP 410 Gone, at {at}"))
    else:
        findings.append(Finding("last fetch", Verdict.FAIL, f"{error or 'failed'}, at {at}"))
    redirects = [hop for hop in d.get("redirects", []) if isinstance(hop, list) and len(hop) == 2]
    if redirects:
        chain = " → ".join(f"{url} ({code})" for code, url in redirects)
        final = str(d.get("final_url", ""))
        findings.append(
            Finding("redirects", Verdict.INFO, f"{chain} → {final}", _redirect_advice(d))
        )
    findings += _conditional_findings(feed, d, size)
    parse = d.get("parse")
    if isinstance(parse, Mapping):
        findings += _parse_findings(parse, at)
    return findings


def _redirect_advice(d: Mapping[str, Any]) -> str:
    """Where storyfeed asks next: permanent redirects at the start of the chain move
    the subscription (core's moved_to), a temporary one stops that."""
    redirects = d.get("redirects", [])
    permanent = 0
    while permanent < len(redirects) and redirects[permanent][0] in {301, 308}:
        permanent += 1
    if not permanent:
        return "the redirects are temporary: storyfeed keeps asking the first address"
    target = redirects[permanent][1] if permanent < len(redirects) else d.get("final_url", "")
    return f"storyfeed now asks {target}, where the permanent redirects lead"


def _conditional_findings(feed: Feed, d: Mapping[str, Any], size: int) -> list[Finding]:
    verdict = d.get("conditional")
    if verdict == "honoured":
        return [
            Finding(
                "conditional GET",
                Verdict.OK,
                "honoured: the server answers 304 when nothing changed",
            )
        ]
    if verdict == "ignored":
        return [
            Finding(
                "conditional GET",
                Verdict.WARN,
                "ignored: the validators were sent and the same document came back",
                f"the server ignores conditional GET: every refresh downloads {size_text(size)}",
            )
        ]
    if verdict == "not offered":
        return [
            Finding(
                "conditional GET",
                Verdict.WARN,
                "not offered: the server sends neither ETag nor Last-Modified",
                f"every refresh downloads {size_text(size)}",
            )
        ]
    if verdict == "unknown" and d.get("outcome") == "ok":
        sent = d.get("sent_validators") or {}
        why = (
            "the document had changed since the last fetch"
            if sent.get("etag") or sent.get("last_modified")
            else "the validators are sent from the next fetch on"
        )
        return [Finding("conditional GET", Verdict.INFO, f"not known yet: {why}")]
    return []


def _parse_findings(parse: Mapping[str, Any], fetched_at: str) -> list[Finding]:
    stories = int(parse.get("stories") or 0)
    parsed_at = str(parse.get("at", ""))
    when = "" if parsed_at == fetched_at else f" (read at {parsed_at}; unchanged since)"
    kind = str(parse.get("format") or "unknown format")
    findings = [
        Finding("document", Verdict.OK, f"{kind}: {_count(stories, 'story', 'stories')}{when}")
    ]
    if warning := str(parse.get("warning") or ""):
        findings.append(
            Finding(
                "parse warning",
                Verdict.WARN,
                warning,
                "storyfeed read the feed anyway; its publisher may want to fix it",
            )
        )
    if without_id := int(parse.get("without_id") or 0):
        findings.append(
            Finding(
                "identity",
                Verdict.WARN,
                f"{without_id} of {stories} stories have no guid/id",
                "no guid: stories are keyed by link (else by title and text), so a story "
                "whose link changes comes back as new",
            )
        )
    if without_date := int(parse.get("without_date") or 0):
        findings.append(
            Finding(
                "dates",
                Verdict.WARN,
                f"{without_date} of {stories} stories have no date",
                "they are dated by when storyfeed first saw them",
            )
        )
    if future := int(parse.get("future_dates") or 0):
        findings.append(
            Finding(
                "dates",
                Verdict.WARN,
                f"{future} of {stories} stories are dated in the future",
                "their dates are clamped to when storyfeed first saw them",
            )
        )
    return findings


def _server_asked(feed: Feed, d: Mapping[str, Any]) -> dict[str, int]:
    """What the last response asked for, in seconds: max-age, and Expires counted
    from the response's Date (from the fetch when there is none)."""
    asked: dict[str, int] = {}
    if isinstance(d.get("max_age"), int):
        asked["max_age"] = d["max_age"]
    headers = d.get("headers") or {}
    expires = _http_date(str(headers.get("expires", "")))
    sent = _http_date(str(headers.get("date", ""))) or _parse_iso(str(d.get("at", "")))
    if expires is not None and sent is not None:
        asked["expires_in"] = int((expires - sent).total_seconds())
    return asked


def _interval(feed: Feed, d: Mapping[str, Any], settings: Settings) -> int:
    asked = _server_asked(feed, d)
    interval = fetch_interval(
        settings, asked.get("max_age"), feed.ttl_seconds, feed.refresh_interval
    )
    return int(interval.total_seconds())


def _next_fetch(feed: Feed) -> datetime | None:
    """When a refresh fetches the feed next; None for a retired or paused feed, which
    only naming it fetches (as `storyfeed feeds` shows it)."""
    return feed.next_fetch_at if feed.status is FeedStatus.ACTIVE else None


def _interval_source(feed: Feed, interval: int) -> str:
    if not feed.refresh_interval:
        return ""
    own = duration_text(feed.refresh_interval)
    if interval > feed.refresh_interval:
        return f"; the feed's own interval of {own} is raised by what the server asks"
    return "; the feed's own interval, from `storyfeed set FEED interval`"


def _schedule_findings(
    feed: Feed, d: Mapping[str, Any], settings: Settings, now: datetime
) -> list[Finding]:
    if feed.status is not FeedStatus.ACTIVE:
        return []
    asked = _server_asked(feed, d)
    hints = []
    cache_control = str((d.get("headers") or {}).get("cache-control", ""))
    if "max_age" in asked:
        hints.append(f"max-age {duration_text(asked['max_age'])}")
    elif cache_control:
        hints.append(f"Cache-Control: {cache_control}")
    if "expires_in" in asked:
        seconds = asked["expires_in"]
        hints.append(
            f"Expires {duration_text(seconds)} after the response"
            if seconds > 0
            else "Expires already past"
        )
    if feed.ttl_seconds:
        hints.append(f"<ttl> {duration_text(feed.ttl_seconds)}")
    server = "the server asks for " + ", ".join(hints) if hints else "the server gives no hint"
    interval = _interval(feed, d, settings)
    next_fetch = _iso(feed.next_fetch_at) or "now"
    findings = [
        Finding(
            "schedule",
            Verdict.INFO,
            f"{server}; storyfeed waits {duration_text(interval)} between fetches (longer "
            f"after errors{_interval_source(feed, interval)}), next at {next_fetch}",
        )
    ]
    if feed.retry_after is not None and feed.retry_after > now:
        findings.append(
            Finding(
                "retry-after",
                Verdict.WARN,
                f"the server asked storyfeed to wait until {_iso(feed.retry_after)}",
                "storyfeed does not ask before then, not even with `refresh --force`",
            )
        )
    return findings


def _streak_findings(feed: Feed) -> list[Finding]:
    if feed.error_count:
        since = _iso(feed.failing_since or feed.last_error_at)
        if feed.status is FeedStatus.GONE:
            advice = "storyfeed stopped trying at the 410; `storyfeed refresh FEED` tries again"
        elif feed.status is FeedStatus.PAUSED:
            advice = f"storyfeed does not try a paused feed: {_UNPAUSE}"
        else:
            advice = (
                f"storyfeed keeps trying, less often each time; next try at "
                f"{_iso(feed.next_fetch_at) or 'the next refresh'}"
            )
        return [
            Finding(
                "error streak",
                Verdict.FAIL,
                f"{_count(feed.error_count, 'failure')} in a row since {since}: {feed.last_error}",
                advice,
            )
        ]
    if feed.last_success_at is not None:
        return [Finding("error streak", Verdict.OK, "none")]
    return []


# --- small helpers ----------------------------------------------------------------------


def _finding_records(findings: list[Finding]) -> list[Record]:
    return [
        {"topic": f.topic, "verdict": f.verdict.value, "text": f.text, "advice": f.advice or None}
        for f in findings
    ]


def _count(n: int, noun: str, plural: str = "") -> str:
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def size_text(n: int) -> str:
    """A byte count for people: 812 bytes, 12.3 kB, 2.1 MB."""
    if n < 1000:
        return f"{n} bytes"
    value, unit = n / 1e3, "kB"
    for bigger in ("MB", "GB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"


def duration_text(seconds: int) -> str:
    """A duration for people: 45 s, 30 min, 2 h, 1.5 d."""
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{round(seconds / 60)} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} d"


def _iso(when: datetime | None) -> str:
    return "" if when is None else f"{when.astimezone(UTC):%Y-%m-%dT%H:%M:%S}Z"


def _parse_iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _http_date(text: str) -> datetime | None:
    if not text:
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
