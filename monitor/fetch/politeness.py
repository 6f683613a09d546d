"""Per-host politeness: at most N requests in flight to one host, and a minimum gap between starts.

Thousands of feeds often live on a handful of hosts (``feeds.bbci.co.uk`` serves
dozens); firing them all at once is how fetchers get blocked. The gate is keyed by
host name, so one slow host never holds up the others, and it is taken per HTTP
request (per redirect hop), never across hops, so two redirect chains that cross
each other's hosts cannot deadlock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio


@dataclass
class _Host:
    slots: anyio.Semaphore
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    next_start: float = 0.0
    users: int = 0


class HostGate:
    """Concurrency cap and start spacing per host.

    ``concurrency`` < 1 means no cap; ``spacing`` is seconds between two request
    starts to the same host (0: none). Idle hosts are forgotten so the table does
    not grow with every host ever polled.
    """

    def __init__(
        self, concurrency: int, spacing: float, clock: Callable[[], float] = anyio.current_time
    ) -> None:
        self.concurrency = concurrency
        self.spacing = spacing
        self._clock = clock
        self._hosts: dict[str, _Host] = {}

    def in_use(self, host: str) -> int:
        """Requests to ``host`` that hold or wait for a slot now."""
        entry = self._hosts.get(host)
        return entry.users if entry else 0

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        if self.concurrency < 1 and self.spacing <= 0:
            yield
            return
        entry = self._hosts.get(host)
        if entry is None:
            entry = _Host(anyio.Semaphore(max(1, self.concurrency) if self.concurrency >= 1
                                          else 1 << 30))
            self._hosts[host] = entry
        entry.users += 1
        try:
            async with entry.slots:
                if self.spacing > 0:
                    async with entry.lock:
                        wait = entry.next_start - self._clock()
                        if wait > 0:
                            await anyio.sleep(wait)
                        entry.next_start = self._clock() + self.spacing
                yield
        finally:
            entry.users -= 1
            if entry.users == 0 and entry.next_start <= self._clock():
                self._hosts.pop(host, None)
