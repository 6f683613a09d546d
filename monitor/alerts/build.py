"""Sinks from settings: one place that knows every sink kind and its config section.

Secrets are read here, at start, so a missing secret file or variable stops the
service with a message naming the config key (never the secret), instead of
failing alert by alert later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from loguru import logger

from monitor.alerts.digest import DigestSink
from monitor.alerts.routing import unknown_channels
from monitor.alerts.sinks import JsonlSink, RedisSink, Sink, StdoutSink
from monitor.alerts.webhook import WebhookSink
from monitor.config import Settings, locator
from monitor.errors import ConfigError
from monitor.yamlsafe import KeyPath


def build_sinks(settings: Settings) -> dict[str, Sink]:
    """Every enabled sink by name. Raises ConfigError naming each bad entry's key and line."""
    s = settings.sinks
    sinks: dict[str, Sink] = {}
    problems: list[tuple[KeyPath, str]] = []
    if s.stdout.enabled:
        stdout: Sink = StdoutSink(s.stdout.format)
        sinks["stdout"] = DigestSink(stdout, s.stdout.digest) if s.stdout.digest else stdout
    if s.jsonl.enabled:
        sinks["jsonl"] = JsonlSink(s.jsonl.path)
    redis_url = settings.redis_url()
    if settings.redis_sink_enabled() and redis_url:
        sinks["redis"] = RedisSink(redis_url, channel=s.redis.channel, stream=s.redis.stream,
                                   maxlen=s.redis.maxlen)
    for i, w in enumerate(s.webhooks):
        try:
            secret = w.secret_bytes()
        except ValueError as e:
            key = "secret_file" if w.secret_file is not None else "secret_env"
            problems.append((("sinks", "webhooks", i, key), str(e)))
            continue
        if secret is None:
            logger.warning("webhook {} has no secret: its requests are not signed", w.name)
        hook: Sink = WebhookSink(
            w.name, w.url.get_secret_value(), secret=secret,
            timeout=w.timeout.total_seconds(),
            headers={k: v.get_secret_value() for k, v in w.headers.items()})
        sinks[hook.name] = DigestSink(hook, w.digest) if w.digest else hook
    if s.apprise:
        try:
            from monitor.alerts.apprise_sink import AppriseSink
        except ImportError:
            problems.append((("sinks", "apprise"),
                             "needs the 'apprise' package (pip install apprise)"))
        else:
            for i, a in enumerate(s.apprise):
                try:
                    ap: Sink = AppriseSink(a.name, a.url_list(),
                                           timeout=a.timeout.total_seconds())
                except ValueError as e:
                    key = ("urls" if a.urls else "urls_file" if a.urls_file is not None
                           else "urls_env")
                    problems.append((("sinks", "apprise", i, key), str(e)))
                    continue
                sinks[ap.name] = DigestSink(ap, a.digest) if a.digest else ap
    if problems:
        place = locator(settings)
        raise ConfigError([place(loc, reason) for loc, reason in problems])
    return sinks


def warn_unknown_channels(channels_by_rule: Mapping[str, Iterable[str]],
                          sinks: Iterable[str]) -> dict[str, list[str]]:
    """Log rules whose channels name no sink (their alerts then go to every sink)."""
    bad = unknown_channels(channels_by_rule, list(sinks))
    for rule_id, channels in bad.items():
        logger.warning("rule {} names channel(s) {} that no sink has; configured sinks: {}",
                       rule_id, ", ".join(channels), ", ".join(sinks) or "none")
    return bad
