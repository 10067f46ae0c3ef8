"""Sending notifications through apprise; the only module that uses it.

apprise knows ntfy, email, Slack, Matrix, Telegram, Discord, webhooks and
desktop notifications by URL; storyfeed only says what to send. Its log is
kept to ourselves (it would otherwise reach stderr) and read for the reason of
a failure.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def _library_warnings_hidden() -> Iterator[None]:
    """apprise's plugins import the stdlib's deprecated imghdr (Python 3.11-3.12):
    its warning is apprise's business, not our users'."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


with _library_warnings_hidden():
    import apprise

# apprise logs through the standard logging module; with no handler configured,
# Python's last-resort handler would print its warnings on our stderr.
_log = logging.getLogger(apprise.LOGGER_NAME)
_log.addHandler(logging.NullHandler())
_log.propagate = False


class InvalidChannelURL(ValueError):
    """apprise does not know what to do with the URL."""


# One URL: a scheme, then printable characters without spaces or commas (apprise
# splits a string on those and would quietly make several channels of one).
_ONE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s,]*")


class AppriseChannel:
    """One apprise URL: a place that accepts (or refuses) messages.

    A send that has not finished within ``timeout`` seconds counts as failed (the
    message may still arrive: then it is sent once more next time, at least once).
    """

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        if not _ONE_URL.fullmatch(url) or not url.isprintable() or not url.isascii():
            raise InvalidChannelURL("not one notification URL (give each its own --to)")
        self._timeout = timeout
        with _library_warnings_hidden():
            self._apprise = apprise.Apprise()
            if not self._apprise.add(url) or len(self._apprise) != 1:
                raise InvalidChannelURL("not a notification URL apprise knows")

    def send(self, title: str, body: str) -> str:
        """Deliver one plain-text message; "" when it was accepted, else why not.

        The reason never quotes apprise's log, which names topics, hosts and
        tokens: it is reduced to a status code or a kind of failure.
        """
        outcome: list[tuple[bool, str]] = []
        worker = threading.Thread(
            target=lambda: outcome.append(self._notify(title, body)), daemon=True
        )
        worker.start()
        worker.join(self._timeout)
        if not outcome:  # a receiver that trickles its answer: give up on it for now
            return f"no answer within {self._timeout:g} s"
        accepted, log = outcome[0]
        return "" if accepted else failure_reason(log)

    def _notify(self, title: str, body: str) -> tuple[bool, str]:
        with (
            _library_warnings_hidden(),
            apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as log,  # type: ignore[no-untyped-call]
        ):
            accepted = self._apprise.notify(
                body=body, title=title, body_format=apprise.NotifyFormat.TEXT
            )
            return bool(accepted), str(log.getvalue())


def failure_reason(log: str) -> str:
    """What went wrong, in words that cannot carry a secret."""
    lowered = log.lower()
    status = re.search(r"(?:error=|http |status |code )([1-5][0-9]{2})\b", lowered)
    if status:
        return f"the service answered HTTP {status.group(1)}"
    if "timed out" in lowered or "timeout" in lowered:
        return "the service did not answer in time"
    if "connect" in lowered or "refused" in lowered or "resolve" in lowered:
        return "could not connect to the service"
    return "the service did not accept the message"
