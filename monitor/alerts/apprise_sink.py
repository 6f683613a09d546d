"""Apprise sink: one config entry reaches ntfy, Slack, Telegram, Matrix, e-mail and ~100 more.

Each alert (or digest) becomes a short title and body (:mod:`monitor.alerts.render`)
sent to every Apprise URL of the entry; the sink name is ``apprise:<name>``.
The notification type follows the highest rule severity (critical: failure,
high: warning, else info), which most services show as a colour or icon.

Several URLs in one entry are tracked one by one: when one service fails, the
retry goes only to the URLs that have not taken that alert yet (remembered in
memory; after a restart a retry may reach a service twice, the at-least-once
trade-off). Apprise cannot tell a refusal from an outage, so every failure is
retried with the outbox backoff, never dead-lettered.

Apprise URLs embed tokens and passwords: they are held as secrets, Apprise is
told to keep no state on disk (a hardened unit has no writable home), and the
error text taken from Apprise's log has every secret part of the URLs masked.
``timeout`` becomes Apprise's ``cto``/``rto`` URL options unless a URL sets them.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import apprise

with warnings.catch_warnings():
    # Apprise's PGP helper imports ``imghdr`` (deprecated since Python 3.11) when its
    # plugins load on first use; load it now, quietly, so no alert triggers the warning.
    warnings.simplefilter("ignore", DeprecationWarning)
    import apprise.utils.pgp

from monitor.alerts.render import message
from monitor.alerts.secrets import scrub, secret_parts
from monitor.errors import SinkError
from monitor.store.base import OutboxItem

NOTIFY_TYPE = {"critical": apprise.NotifyType.FAILURE, "high": apprise.NotifyType.WARNING}
MEMORY = 1000  # alert ids whose partial progress is remembered
_LogCapture: Any = apprise.LogCapture  # untyped upstream


def with_timeouts(url: str, timeout: float) -> str:
    """Add Apprise's connect/read timeout options (``cto``/``rto``) unless the URL has them."""
    query = dict(parse_qsl(urlsplit(url).query))
    extra = [f"{k}={timeout:g}" for k in ("cto", "rto") if k not in query]
    if not extra:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(extra)


class AppriseSink:
    """Sends each alert to a set of Apprise URLs. ``name`` is ``apprise:<name>``."""

    def __init__(self, name: str, urls: Sequence[str], *, timeout: float = 10.0) -> None:
        if not urls:
            raise ValueError(f"apprise:{name}: no URLs")
        self.name = f"apprise:{name}"
        asset = apprise.AppriseAsset(storage_mode=apprise.PersistentStoreMode.MEMORY)
        self._targets: list[apprise.Apprise] = []
        self._secrets = secret_parts(urls)
        for i, url in enumerate(urls):
            ap = apprise.Apprise(asset=asset)
            if not ap.add(with_timeouts(url, timeout)):
                raise ValueError(f"{self.name}: URL #{i + 1} is not a valid Apprise URL "
                                 f"(scheme {urlsplit(url).scheme or '?'}://)")
            self._targets.append(ap)
        self.services = [ap[0].service_name or "?" for ap in self._targets]
        # alert id -> indexes of the URLs that already took it
        self._done: OrderedDict[str, set[int]] = OrderedDict()

    async def send(self, item: OutboxItem) -> None:
        try:
            msg = message(json.loads(item.payload))
        except (ValueError, KeyError, TypeError) as e:
            raise SinkError(f"{self.name}: alert {item.alert_id} has an unreadable payload: "
                            f"{e}") from None
        done = self._done.setdefault(item.alert_id, set())
        self._done.move_to_end(item.alert_id)
        while len(self._done) > MEMORY:
            self._done.popitem(last=False)
        failures: list[str] = []
        for i, ap in enumerate(self._targets):
            if i in done:
                continue
            with _LogCapture(level=logging.WARNING) as log:
                ok = await ap.async_notify(
                    body=msg.body, title=msg.title,
                    notify_type=NOTIFY_TYPE.get(msg.severity, apprise.NotifyType.INFO),
                    body_format=apprise.NotifyFormat.TEXT)
                captured = log.getvalue()
            if ok:
                done.add(i)
                continue
            detail = " ".join(line.split(" - ", 2)[-1] for line in captured.splitlines()[-3:])
            failures.append(f"{self.services[i]} (URL #{i + 1}): "
                            f"{scrub(detail, self._secrets) or 'failed'}")
        if failures:
            raise SinkError(f"{self.name}: alert {item.alert_id} not delivered to "
                            f"{len(failures)} of {len(self._targets)} service(s): "
                            + "; ".join(failures))
        self._done.pop(item.alert_id, None)

    async def aclose(self) -> None:
        return None
