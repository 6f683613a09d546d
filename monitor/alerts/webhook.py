"""Webhook sink: the alert's JSON POSTed to a URL, signed, with its id for idempotency.

Request::

    POST <url>
    Content-Type: application/json
    X-News-Monitor-Alert-Id: a_3f...        (a digest's id for a digest message)
    X-News-Monitor-Event: story.new          (or story.updated, digest)
    X-News-Monitor-Signature: sha256=<hex HMAC-SHA256(secret, body)>   (when a secret is set)
    <the alert payload, news-monitor.alert/1, byte for byte as in the stream>

The receiver verifies the signature over the raw body with a constant-time
compare and drops repeats by ``X-News-Monitor-Alert-Id``: delivery is
at-least-once, so the same id can arrive twice (a reply lost on the way back).

What the answer means:

* ``2xx``: taken, the alert leaves this sink's queue;
* ``408``, ``429``, ``5xx``, timeouts, refused or reset connections: the receiver
  is busy or down, so the outbox retries with backoff (honouring ``Retry-After``)
  for as long as it takes;
* any other ``3xx``/``4xx``: refused (wrong URL, wrong credentials, payload
  rejected). Logged at ERROR level and retried a few times, then moved to the
  dead-letter file (see :mod:`monitor.alerts.delivery`). Redirects are not
  followed: re-POSTing an alert to wherever a redirect points is not something
  to do silently; configure the final URL.

The URL (which often carries a token, as Slack's do) and the secret never
appear in logs or errors: messages name the sink and the URL's scheme and host.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from monitor.alerts.failures import SinkBusy, SinkRejected
from monitor.alerts.secrets import scrub, secret_parts
from monitor.errors import SinkError
from monitor.store.base import OutboxItem

SIGNATURE_HEADER = "X-News-Monitor-Signature"
ID_HEADER = "X-News-Monitor-Alert-Id"
EVENT_HEADER = "X-News-Monitor-Event"
USER_AGENT = "news-monitor/0.1 (webhook)"
RETRYABLE = frozenset({408, 425, 429})


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str) -> bool:
    """What a receiver does (and what tests use): constant-time check of the header."""
    return hmac.compare_digest(sign(secret, body), header.strip())


def safe_target(url: str) -> str:
    """Scheme, host and port only: paths and queries of webhook URLs are often secrets."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify(status: int, sink: str, alert_id: str, detail: str,
             retry_after: str | None) -> SinkError | None:
    """None for a taken alert, else the error that tells the deliverer what to do."""
    if 200 <= status < 300:
        return None
    msg = f"{sink}: alert {alert_id} answered HTTP {status}{': ' + detail if detail else ''}"
    if status in RETRYABLE or status >= 500:
        return SinkBusy(msg, retry_after_seconds(retry_after))
    return SinkRejected(msg)


class WebhookSink:
    """POSTs each alert (or digest) to one URL. ``name`` is ``webhook:<name>``."""

    def __init__(
        self, name: str, url: str, *, secret: bytes | None = None, timeout: float = 10.0,
        headers: Mapping[str, str] | None = None, client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = f"webhook:{name}"
        self._url = url
        self._secret = secret
        self.target = safe_target(url)
        self._secrets = secret_parts([url])
        self._headers = {"User-Agent": USER_AGENT, **dict(headers or {})}
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False)
        self._own_client = client is None

    def request_headers(self, item: OutboxItem, body: bytes) -> dict[str, str]:
        headers = {**self._headers, "Content-Type": "application/json", ID_HEADER: item.alert_id}
        try:
            payload = json.loads(item.payload)
            event = payload.get("event") or ("digest" if "digest" in payload.get("schema", "")
                                              else "")
        except (ValueError, AttributeError):
            event = ""
        if event:
            headers[EVENT_HEADER] = str(event)
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        return headers

    async def send(self, item: OutboxItem) -> None:
        body = item.payload.encode("utf-8")
        try:
            resp = await self._client.post(self._url, content=body,
                                           headers=self.request_headers(item, body))
        except httpx.TimeoutException as e:
            raise SinkError(f"{self.name} ({self.target}): alert {item.alert_id} timed out "
                            f"({type(e).__name__})") from None
        except httpx.HTTPError as e:
            # str(e) of a connection error can name the full URL: keep only its kind.
            raise SinkError(f"{self.name} ({self.target}): alert {item.alert_id} not "
                            f"delivered: {type(e).__name__}") from None
        detail = " ".join(resp.text[:300].split()) if resp.status_code >= 300 else ""
        detail = scrub(detail, self._secrets)[:200]
        err = classify(resp.status_code, f"{self.name} ({self.target})", item.alert_id, detail,
                       resp.headers.get("retry-after"))
        if err is not None:
            raise err

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()
