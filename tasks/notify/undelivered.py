"""The error a delivery run raises when some messages stayed queued in the sent-log (SMTP down or
refused): the run fails visibly, after trying them all, and the next run sends what is left.

Its own small module so that the notification modules can subclass it without importing the
email machinery (jinja2, smtplib) at start-up."""

from __future__ import annotations

from typing import Any


class NotDelivered(RuntimeError):
    """Built from the run's summary; `describe` words it for the run's state message."""

    def __init__(self, summary: Any):
        self.summary = summary
        super().__init__(self.describe(summary))

    @staticmethod
    def describe(summary: Any) -> str:
        raise NotImplementedError

    def __reduce__(self) -> tuple[type[NotDelivered], tuple[Any]]:
        # Prefect pickles a failed run's exception: rebuild it from the summary, not the message.
        return (type(self), (self.summary,))
