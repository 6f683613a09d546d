"""One exception tree for the whole service.

Third-party errors (httpx, redis, sqlite3, yaml, feedparser) are caught at the
boundary that called them and re-raised as one of these with ``raise ... from e``,
so callers handle *our* vocabulary and every message names the thing at fault::

    MonitorError
    ├── ConfigError        config file or environment: every problem at once, with key paths
    ├── RuleError          rule files: every problem at once, with file, line and column
    ├── FeedError          one feed failed (fetch or parse); the feed is named, others go on
    │   ├── FetchError     transport, HTTP status, deadline, size cap, redirects
    │   └── ParseError     the bytes were not a feed feedparser could read
    ├── StoreError         the state back end did not answer or refused a write
    │   ├── LeaseHeld      another instance holds a lease (``Store.exclusive``): not a fault
    │   └── LeaseLost      the lease this holder had ran out and was taken: its writes refused
    └── SinkError          a sink did not take an alert; it stays in the outbox
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class MonitorError(Exception):
    """Base of every error the service raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file a person wrote: where it is and why it is wrong."""

    source: str
    where: str
    reason: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        loc = self.source
        if self.line is not None:
            loc += f":{self.line}"
            if self.column is not None:
                loc += f":{self.column}"
        where = f" {self.where}:" if self.where else ""
        return f"{loc}:{where} {self.reason}"


class _ProblemsError(MonitorError):
    """An error carrying every problem found, so a person fixes them in one go."""

    kind = "problems"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        n = len(self.problems)
        head = f"{n} {self.kind} error{'s' if n != 1 else ''}"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))

    def __reduce__(self) -> tuple[type[_ProblemsError], tuple[tuple[Problem, ...]]]:
        return (type(self), (self.problems,))


class ConfigError(_ProblemsError):
    kind = "config"


class RuleError(_ProblemsError):
    kind = "rule"


class FeedError(MonitorError):
    """A feed could not be polled. ``kind`` is a short, stable label for metrics and the CLI."""

    def __init__(self, feed: str, kind: str, detail: str) -> None:
        self.feed = feed
        self.kind = kind
        self.detail = detail
        super().__init__(f"feed {feed}: {kind}: {detail}")

    def __reduce__(self) -> tuple[type[FeedError], tuple[str, str, str]]:
        # Parse errors cross the process-pool boundary: keep them picklable.
        return (type(self), (self.feed, self.kind, self.detail))


class FetchError(FeedError):
    """Transport or HTTP-level failure. ``retry_after`` is the server's wish, in seconds."""

    def __init__(
        self, feed: str, kind: str, detail: str, *, status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(feed, kind, detail)
        self.status = status
        self.retry_after = retry_after

    def __reduce__(self) -> Any:
        return (_rebuild_fetch_error, (self.feed, self.kind, self.detail, self.status,
                                       self.retry_after))


def _rebuild_fetch_error(feed: str, kind: str, detail: str, status: int | None,
                         retry_after: float | None) -> FetchError:
    return FetchError(feed, kind, detail, status=status, retry_after=retry_after)


class ParseError(FeedError):
    pass


class StoreError(MonitorError):
    pass


class LeaseHeld(StoreError):
    """The lease asked for stays with another holder past the wait: the store is fine.

    A StoreError still (a caller that cannot go on without the lease fails as before), but
    one that only wanted a turn if it was free, as delivery to a sink does, skips it.
    """


class LeaseLost(StoreError):
    """A write made inside ``Store.exclusive`` found the lease held by another token.

    The holder outlived its lease (a stalled event loop, a slow send) and another
    instance took it, so the write was refused as a whole: acting on a decision made
    under a lease that is gone would let two holders settle the same work. A caller
    leaves that work to the new holder rather than treating the store as failing.
    """


class SinkError(MonitorError):
    pass
