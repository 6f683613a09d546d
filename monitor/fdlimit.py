"""Raise the soft open-files limit to the hard one at start, as Go's runtime does.

A poll round holds one socket per feed in flight, the aiohttp transport keeps an idle
connection to every host it polled within the keep-alive minute (a few thousand at
10,000 feeds), and the store, the sinks and the parser processes add theirs. Under
systemd the unit sets ``LimitNOFILE=65536``; in a terminal the soft limit is often
1,024 under a hard limit hundreds of times higher, and running out shows up as
"Too many open files" on whichever feed or store call comes next. Raising the soft
limit needs no privilege; it is capped at ``CEILING`` because nothing here needs more.
"""

from __future__ import annotations

import resource

CEILING = 65_536
OPEN_MAX_MACOS = 10_240   # macOS refuses more than this per process, whatever the hard limit


def raise_open_files_limit() -> tuple[int, int]:
    """Soft limit up to min(hard, CEILING), never down; returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = CEILING if hard == resource.RLIM_INFINITY else min(hard, CEILING)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, soft
    for value in (target, min(target, OPEN_MAX_MACOS)):
        if value <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (value, hard))
        except (ValueError, OSError):  # too high for this system, or a sandbox refuses
            continue
        return soft, value
    return soft, soft
