"""Masking the secret parts of notification URLs before any text about them is logged.

Webhook and Apprise URLs carry their credentials in the path or query
(``hooks.slack.com/services/T000/B000/XXXX``, ``tgram://bottoken/chatid``), and
receivers like to echo the request line in their error pages. Every error text
that came from outside passes through :func:`scrub` first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, unquote, urlsplit

MIN_SECRET = 4  # shorter pieces ("api", "v1") are not worth masking and would mangle text


def secret_parts(urls: Iterable[str]) -> list[str]:
    """User, password, host part, path segments and query values of each URL, longest first."""
    found: set[str] = set()
    for url in urls:
        parts = urlsplit(url)
        found.update((parts.password or "", parts.username or "", parts.netloc))
        segments = [seg for seg in parts.path.split("/") if seg]
        found.update(segments)
        found.update(unquote(seg) for seg in segments)
        found.update(v for _, v in parse_qsl(parts.query))
        if parts.path not in ("", "/"):
            found.add(parts.path)
    # Longest first, so a token is masked whole before any piece of it.
    return sorted((p for p in found if len(p) >= MIN_SECRET), key=len, reverse=True)


def scrub(text: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text
