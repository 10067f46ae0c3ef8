"""Sending notifications through apprise; the only module that uses it.

apprise knows ntfy, email, Slack, Matrix, Telegram, Discord, webhooks and
desktop notifications by URL; storyfeed only says what to send. Its log is
kept to ourselves (it would otherwise reach stderr) and read for the reason of
a failure.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from storyfeed.text import clean_line


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


class AppriseChannel:
    """One apprise URL: a place that accepts (or refuses) messages."""

    def __init__(self, url: str) -> None:
        self._url = url
        with _library_warnings_hidden():
            self._apprise = apprise.Apprise()
            if not self._apprise.add(url):
                raise InvalidChannelURL("not a notification URL apprise knows")

    def send(self, title: str, body: str) -> str:
        """Deliver one plain-text message; "" when it was accepted, else why not."""
        with (
            _library_warnings_hidden(),
            apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as log,  # type: ignore[no-untyped-call]
        ):
            accepted = self._apprise.notify(
                body=body, title=title, body_format=apprise.NotifyFormat.TEXT
            )
            text = log.getvalue()
        if accepted:
            return ""
        lines = [line for line in text.splitlines() if line.strip()]
        reason = clean_line(lines[-1] if lines else "the service did not accept the message")
        return reason.replace(self._url, "***")[:300]
