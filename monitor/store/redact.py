"""Store URLs fit to print: the password is replaced by ``***``.

Store URLs end up in error messages, logs and ``news-monitor`` output, and a Redis
URL often carries the password (``redis://:secret@host:6379/0``, or
``?password=secret``). Every message the store writes goes through ``redact_url``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_PARAMS = frozenset({"password", "pass", "passwd", "pwd", "secret", "token"})


def redact_url(url: str | None) -> str:
    """``url`` with any password masked; unparsable input is masked as a whole."""
    if not url:
        return repr(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable store url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        # "user:pw" keeps the user; a lone "secret@" (a password to some clients) goes whole.
        netloc = f"{user}:{MASK}@{hostport}" if colon else f"{MASK}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode(
                [(k, MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*"
            )
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing secret; urlunsplit would also normalize "sqlite:///x" away
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub(text: str, url: str | None) -> str:
    """Remove the URL's secrets from a message a library wrote (belt and braces)."""
    if not url:
        return text
    try:
        parts = urlsplit(url)
    except ValueError:
        return text
    text = text.replace(url, redact_url(url))
    secrets = [parts.password or ""]
    secrets += [v for k, v in parse_qsl(parts.query) if k.lower() in _SECRET_PARAMS]
    if "@" in parts.netloc and ":" not in parts.netloc.rpartition("@")[0]:
        secrets.append(parts.netloc.rpartition("@")[0])
    for secret in secrets:
        if len(secret) >= 3:
            text = text.replace(secret, MASK)
    return text
