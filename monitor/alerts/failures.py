"""How a sink says *why* it failed, so the deliverer knows whether trying again can help.

A plain :class:`~monitor.errors.SinkError` means "try again later" (the
receiver is down, slow or overloaded): the outbox retries it with backoff for
as long as it takes, because at-least-once is the promise.

:class:`SinkRejected` means the receiver understood the request and refused it
(HTTP 400, 401, 403, 404, 410, 413, 422 ...). Retrying the same bytes will keep
failing until a person fixes the receiver or our config, so the deliverer logs
it at ERROR level and, after ``give_up_after`` attempts (several, because a
receiver that is being redeployed may answer 404 for a minute), moves the
alert to the dead-letter file instead of retrying it forever.

:class:`SinkBusy` carries the receiver's ``Retry-After``: the next attempt is
not earlier than that, whatever the backoff says.
"""

from __future__ import annotations

from monitor.errors import SinkError


class SinkRejected(SinkError):
    """The receiver refused the alert; the same request will not succeed by itself."""


class SinkBusy(SinkError):
    """The receiver asked us to come back later (HTTP 429/503 with ``Retry-After``)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
