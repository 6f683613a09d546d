"""WebSub (W3C, formerly PubSubHubbub) subscriber logic: pure functions of their inputs and ``now``.

A feed that advertises ``<link rel="hub">`` can push new content to us the moment it
is published instead of waiting for our next poll. The protocol, from our side:

1. **Subscribe**: POST to the hub ``hub.mode=subscribe``, ``hub.topic`` (the feed's
   ``rel="self"`` URL, else the URL we poll), ``hub.callback`` (our public URL plus
   an unguessable per-feed token), ``hub.lease_seconds`` and ``hub.secret``.
2. **Verify intent**: the hub GETs our callback with ``hub.mode``, ``hub.topic``,
   ``hub.challenge`` and ``hub.lease_seconds``. We echo the challenge only for a
   subscription we asked for, on the same topic (else 404), and note the lease.
   ``hub.mode=denied`` tells us the hub refused.
3. **Content**: the hub POSTs the feed body with ``X-Hub-Signature: sha256=<hex>``
   (sha1/sha256/sha384/sha512), an HMAC of the body keyed with our ``hub.secret``.
   A body with a missing or wrong signature is acknowledged (the spec wants a 2xx
   either way, so a forger learns nothing) and dropped.
4. **Renew** before the lease runs out; while a subscription is active the feed is
   still polled, at a long fallback interval, in case the hub goes quiet.
5. **Unsubscribe** when a feed leaves the list: POST ``hub.mode=unsubscribe`` and
   confirm only that intent when the hub checks it. Pushes to a callback we no
   longer know get ``410 Gone``, which the spec lets a hub take as the end.

Discovery: ``rel="hub"``/``rel="self"`` in the HTTP ``Link`` header win over the
same links in the feed document, as the spec asks.

Secrets: one configured ``websub.secret``; each feed's callback token and hub secret
are HMACs of it, so nothing per-feed needs storing and no two hubs share a key.

==========================  ======================================================
timing                      value
==========================  ======================================================
renewal                     ``renew_before`` before the lease ends (at most half
                            the lease, so short leases renew too)
unverified request          asked again after ``retry_after`` (hub never called)
denied                      asked again after ``retry_after`` x 24
==========================  ======================================================
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from monitor.models import FeedState

SubState = Literal["requested", "active", "denied"]
SIGNATURE_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256,
                        "sha384": hashlib.sha384, "sha512": hashlib.sha512}
MAX_LEASE = timedelta(days=365)


@dataclass(frozen=True)
class Subscription:
    """One feed's push subscription as we asked for it and as the hub confirmed it."""

    feed: str  # the feed URL we poll (``FeedState.url``)
    hub: str
    topic: str
    token: str  # last path segment of our callback URL
    state: SubState
    requested_at: datetime
    lease_until: datetime | None = None
    detail: str | None = None  # why a hub denied

    def to_json(self) -> dict[str, Any]:
        return {"feed": self.feed, "hub": self.hub, "topic": self.topic, "token": self.token,
                "state": self.state, "requested_at": self.requested_at.isoformat(),
                "lease_until": self.lease_until.isoformat() if self.lease_until else None,
                "detail": self.detail}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Subscription:
        lease = data.get("lease_until")
        return cls(feed=str(data["feed"]), hub=str(data["hub"]), topic=str(data["topic"]),
                   token=str(data["token"]), state=data["state"],
                   requested_at=datetime.fromisoformat(str(data["requested_at"])),
                   lease_until=datetime.fromisoformat(lease) if lease else None,
                   detail=data.get("detail"))


_LINK = re.compile(r'<([^>]*)>((?:\s*;\s*[^;,"=\s]+\s*(?:=\s*(?:"[^"]*"|[^;,]*))?)*)')
_REL = re.compile(r'(?:^|;)\s*rel\s*=\s*(?:"([^"]*)"|([^;,\s]+))', re.IGNORECASE)


def link_relations(header: str | None) -> dict[str, str]:
    """``rel -> URL`` from an HTTP ``Link`` header (RFC 8288), first occurrence of each rel.

    WebSub publishers may advertise ``rel="hub"`` and ``rel="self"`` here instead of
    (or besides) the feed document, and the spec tells subscribers to prefer the
    header. A rel attribute may list several relations (``rel="hub self"``).
    """
    found: dict[str, str] = {}
    for url, params in _LINK.findall(header or ""):
        for quoted, bare in _REL.findall(params):
            for rel in (quoted or bare).lower().split():
                found.setdefault(rel, url.strip())
    return found


def _mac(secret: str, purpose: str, value: str) -> bytes:
    return hmac.new(secret.encode(), f"{purpose}\0{value}".encode(), hashlib.sha256).digest()


def callback_token(secret: str, feed: str) -> str:
    """Unguessable and stable per feed: strangers cannot find or forge our callbacks."""
    return base64.urlsafe_b64encode(_mac(secret, "callback", feed)[:18]).decode()


def hub_secret(secret: str, topic: str) -> str:
    """The ``hub.secret`` for one topic (hex, 40 chars; the spec caps it at 200 bytes)."""
    return _mac(secret, "hub.secret", topic).hex()[:40]


def callback_url(base: str, token: str) -> str:
    return base.rstrip("/") + "/" + token


def subscribe_form(sub: Subscription, callback: str, secret: str, lease: timedelta,
                   mode: Literal["subscribe", "unsubscribe"] = "subscribe") -> dict[str, str]:
    """The form body of a (un)subscription request to ``sub.hub``."""
    form = {"hub.mode": mode, "hub.topic": sub.topic, "hub.callback": callback}
    if mode == "subscribe":
        form["hub.lease_seconds"] = str(int(lease.total_seconds()))
        form["hub.secret"] = hub_secret(secret, sub.topic)
    return form


def verify_signature(header: str | None, body: bytes, key: str) -> bool:
    """``X-Hub-Signature: <algo>=<hex>`` over ``body`` with ``key``; constant-time compare."""
    if not header or "=" not in header:
        return False
    algo, _, given = header.strip().partition("=")
    digest = SIGNATURE_ALGORITHMS.get(algo.strip().lower())
    if digest is None:
        return False
    expected = hmac.new(key.encode(), body, digest).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


def sign(body: bytes, key: str, algo: str = "sha256") -> str:
    """An ``X-Hub-Signature`` value, as a hub computes it (for tests and tools)."""
    return f"{algo}={hmac.new(key.encode(), body, SIGNATURE_ALGORITHMS[algo]).hexdigest()}"


@dataclass(frozen=True)
class IntentReply:
    """What to answer a hub's verification GET, and the subscription after it."""

    status: int
    body: bytes
    subscription: Subscription | None


def verify_intent(params: Mapping[str, str], sub: Subscription | None,
                  now: datetime, leaving: Subscription | None = None) -> IntentReply:
    """Answer ``GET callback?hub.mode=...``: echo the challenge only for what we asked.

    ``leaving`` is a subscription we asked the hub to end (its feed left the list):
    only its unsubscription is confirmed, so nobody else can end ours.
    """
    mode = params.get("hub.mode", "")
    topic = params.get("hub.topic", "")
    if mode == "unsubscribe" and leaving is not None and topic == leaving.topic:
        challenge = params.get("hub.challenge")
        if not challenge:
            return IntentReply(400, b"missing hub.challenge\n", None)
        return IntentReply(200, challenge.encode(), None)
    if sub is None or topic != sub.topic:
        return IntentReply(404, b"unknown subscription\n", sub)
    if mode == "denied":
        reason = params.get("hub.reason") or "no reason given"
        return IntentReply(200, b"", replace(sub, state="denied", lease_until=None,
                                             detail=reason[:200]))
    challenge = params.get("hub.challenge")
    if not challenge:
        return IntentReply(400, b"missing hub.challenge\n", sub)
    if mode == "subscribe":
        lease = _lease(params.get("hub.lease_seconds"))
        return IntentReply(200, challenge.encode(), replace(
            sub, state="active", lease_until=now + lease if lease else None, detail=None))
    if mode == "unsubscribe":
        # we unsubscribe only on purpose, for a feed that left the list (``leaving``)
        return IntentReply(404, b"not unsubscribing\n", sub)
    return IntentReply(400, b"bad hub.mode\n", sub)


def _lease(value: str | None) -> timedelta | None:
    if value is None or not value.strip().isdigit():
        return None
    return min(timedelta(seconds=int(value)), MAX_LEASE)


def renewal_due(sub: Subscription, now: datetime, *, renew_before: timedelta,
                retry_after: timedelta) -> bool:
    """Whether to (re)send a subscription request now."""
    if sub.state == "active":
        if sub.lease_until is None:
            return False  # hub gave no lease: it is not going to expire
        lease = sub.lease_until - sub.requested_at
        margin = min(renew_before, lease / 2) if lease > timedelta(0) else renew_before
        return now >= sub.lease_until - margin
    wait = retry_after * 24 if sub.state == "denied" else retry_after
    return now >= sub.requested_at + wait


# -- the subscription as part of the feed's stored state --------------------------------

def from_state(state: FeedState, secret: str) -> Subscription | None:
    """The subscription recorded in ``state`` (None when there is none).

    The token is not stored: it is an HMAC of the feed URL, computed again here.
    """
    if not (state.push_hub and state.push_topic and state.push_requested_at
            and state.push_state in ("requested", "active", "denied")):
        return None
    return Subscription(feed=state.url, hub=state.push_hub, topic=state.push_topic,
                        token=callback_token(secret, state.url),
                        state=cast(SubState, state.push_state),
                        requested_at=state.push_requested_at,
                        lease_until=state.push_lease_until, detail=state.push_detail)


def to_state(state: FeedState, sub: Subscription | None) -> FeedState:
    """``state`` with its push fields set from ``sub`` (cleared for None); the rest kept."""
    if sub is None:
        return replace(state, push_hub=None, push_topic=None, push_state=None,
                       push_detail=None, push_requested_at=None, push_lease_until=None)
    return replace(state, push_hub=sub.hub, push_topic=sub.topic, push_state=sub.state,
                   push_detail=sub.detail, push_requested_at=sub.requested_at,
                   push_lease_until=sub.lease_until)


def with_push_of(state: FeedState, source: FeedState) -> FeedState:
    """``state`` carrying ``source``'s push fields (a poll must not undo a hub's answer)."""
    return replace(state, push_hub=source.push_hub, push_topic=source.push_topic,
                   push_state=source.push_state, push_detail=source.push_detail,
                   push_requested_at=source.push_requested_at,
                   push_lease_until=source.push_lease_until)


def is_active(sub: Subscription | None, now: datetime) -> bool:
    """Pushes are flowing: verified, and the lease (if any) not over."""
    return sub is not None and sub.state == "active" and (
        sub.lease_until is None or sub.lease_until > now)


def state_is_active(state: FeedState, now: datetime) -> bool:
    return state.push_state == "active" and (
        state.push_lease_until is None or state.push_lease_until > now)
