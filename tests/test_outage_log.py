"""The store's failures are logged when they start, change or last, and when they end."""

from __future__ import annotations

from monitor.outage import Outage


def test_a_failure_is_logged_once_then_reminded_then_its_end(lines: list[str]) -> None:
    now = [100.0]
    outage = Outage("store", remind_every=60, clock=lambda: now[0])
    outage.recovered("polling resumed")   # nothing was down: nothing to say
    assert lines == []
    for n in range(12):                   # a minute of 5 s ticks, the error alternating
        outage.failed(("refused", "timed out")[n % 2], "polling paused")
        now[0] += 5
    assert lines == ["ERROR store unavailable, polling paused: refused"]
    assert outage.down
    outage.failed("database or disk is full", "polling paused")   # 60 s on: a reminder
    outage.failed("refused", "polling paused")                    # and then quiet again
    assert lines[1:] == [
        "ERROR store unavailable, polling paused (for 60 s): database or disk is full"]
    now[0] += 20
    outage.recovered("polling resumed")
    assert lines[2:] == ["WARNING store available again after 80 s: polling resumed"]
    assert not outage.down
    outage.failed("again")                # a new outage starts its own count
    assert lines[3:] == ["ERROR store unavailable: again"]
