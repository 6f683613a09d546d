"""HTTP caching and back-off semantics as pure functions over header values.

Kept apart from the client so the rules can be tested with tables and a fixed
``now`` (the way Miniflux tests ``response_handler.go``):

* ``Retry-After``: delta-seconds or an HTTP date (RFC 9110 §10.2.3); a date in
  the past means "now"; garbage means "no wish".
* Freshness lifetime: ``Cache-Control: max-age`` wins over ``Expires``
  (RFC 9111 §4.2.1); ``no-cache``/``no-store`` ask for nothing; ``s-maxage`` is
  for shared caches and ignored by us, a private client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|[,\s])(?:no-cache|no-store)(?:$|[,\s=])", re.IGNORECASE)


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP date (IMF-fixdate, RFC 850 or asctime) as an aware UTC datetime, or None."""
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None:  # pragma: no cover - older Pythons returned None
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def format_http_date(dt: datetime) -> str:
    """``dt`` as an IMF-fixdate, the form servers expect in If-Modified-Since."""
    return format_datetime(dt.astimezone(UTC), usegmt=True)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds the server asks us to wait, or None when it asks nothing we can read."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    when = parse_http_date(text)
    if when is None:
        return None
    return max(0.0, (when - now).total_seconds())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    low = name.lower()
    for k, v in headers.items():
        if k.lower() == low:
            return v
    return None


def cache_lifetime(headers: Mapping[str, str], now: datetime) -> float | None:
    """How long (seconds) the response says it stays fresh, or None when it says nothing.

    ``Age`` is subtracted (a cache in between already used part of the lifetime);
    ``Expires`` is measured against the response's ``Date`` when present, so a
    server whose clock is off by an hour still gets what it meant.
    """
    cc = _header(headers, "cache-control") or ""
    if _NO_CACHE.search(cc):
        return None
    m = _MAX_AGE.search(cc)
    age = 0.0
    age_text = (_header(headers, "age") or "").strip()
    if age_text.isdigit():
        age = float(age_text)
    if m:
        return max(0.0, float(m.group(1)) - age)
    expires = _header(headers, "expires")
    if expires is None:
        return None
    when = parse_http_date(expires)
    if when is None:
        return 0.0  # RFC 9111: an invalid Expires means "already expired"
    base = parse_http_date(_header(headers, "date")) or now
    return max(0.0, (when - base).total_seconds() - age)
