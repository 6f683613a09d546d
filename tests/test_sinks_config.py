"""Sink config: named webhooks and Apprise entries, secrets from file/env, digests, errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from monitor.alerts.build import build_sinks
from monitor.alerts.digest import DigestSink
from monitor.alerts.webhook import WebhookSink
from monitor.config import Settings, describe, load_settings
from monitor.errors import ConfigError
from monitor.service import delivery_lease


def write_config(tmp_path: Path, sinks_yaml: str) -> Path:
    (tmp_path / "feeds.yaml").write_text("feeds: []\n")
    (tmp_path / "rules").mkdir()
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text("feeds: {files: [feeds.yaml]}\nrules: {paths: [rules]}\nstate_dir: state\n"
                   "sinks:\n  stdout: {enabled: false}\n" + sinks_yaml)
    return cfg


def load(tmp_path: Path, sinks_yaml: str, env: dict[str, str] | None = None) -> Settings:
    return load_settings(write_config(tmp_path, sinks_yaml), env=env or {}, search=False)


def test_webhooks_and_apprise_entries_become_named_sinks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "desk.secret").write_text("file-secret\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ops").write_text("cred-secret")
    (tmp_path / "apprise.urls").write_text("# team\njson://127.0.0.1:9/a\n\njson://127.0.0.1:9/b\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    monkeypatch.setenv("HOOK_SECRET", "env-secret")
    s = load(tmp_path, """
  webhooks:
    - {name: desk, url: 'https://hooks.example/T/abc', secret_file: desk.secret, digest: 1h}
    - {name: ops, url: 'http://127.0.0.1:9/ops', secret_file: '${CREDENTIALS_DIRECTORY}/ops',
       timeout: 3s, headers: {Authorization: Bearer tok}}
    - {name: env, url: 'http://127.0.0.1:9/env', secret_env: HOOK_SECRET}
  apprise:
    - {name: team, urls_file: apprise.urls, digest: 15m}
""")
    w = s.sinks.webhooks
    assert [x.secret_bytes() for x in w] == [b"file-secret", b"cred-secret", b"env-secret"]
    assert w[1].timeout.total_seconds() == 3
    assert s.sinks.apprise[0].url_list() == ["json://127.0.0.1:9/a", "json://127.0.0.1:9/b"]
    assert s.sinks.dead_letter == tmp_path / "state" / "dead-letters.jsonl"
    pytest.importorskip("apprise")
    sinks = build_sinks(s)
    assert list(sinks) == ["jsonl", "webhook:desk", "webhook:ops", "webhook:env", "apprise:team"]
    assert isinstance(sinks["webhook:desk"], DigestSink)
    assert isinstance(sinks["webhook:ops"], WebhookSink)
    assert sinks["apprise:team"].name == "apprise:team"


def test_secrets_are_masked_in_the_effective_config(tmp_path: Path) -> None:
    s = load(tmp_path, """
  webhooks:
    - {name: desk, url: 'https://hooks.example/T/tok-in-url', secret: inline-secret,
       headers: {Authorization: Bearer hdr-secret}}
  apprise:
    - {name: team, urls: ['tgram://bot-token/chat']}
""")
    shown = str(describe(s))
    for secret in ("tok-in-url", "inline-secret", "hdr-secret", "bot-token"):
        assert secret not in shown
    assert "desk" in shown


@pytest.mark.parametrize(("sinks_yaml", "where", "why"), [
    ("  webhooks:\n    - {name: a, url: 'ftp://x/'}\n", "sinks.webhooks[0].url", "http"),
    ("  webhooks:\n    - {name: a, url: 'http://x/', secret: s, secret_env: V}\n",
     "sinks.webhooks[0]", "only one of"),
    ("  webhooks:\n    - {name: a, url: 'http://x/'}\n    - {name: a, url: 'http://y/'}\n",
     "sinks", "duplicate name(s) a"),
    ("  webhooks:\n    - {name: 'a b', url: 'http://x/'}\n", "sinks.webhooks[0].name", ""),
    ("  webhooks:\n    - {name: a, url: 'http://x/', digest: -5m}\n",
     "sinks.webhooks[0].digest", ""),
    ("  apprise:\n    - {name: t}\n", "sinks.apprise[0]", "needs urls"),
    ("  stdout: {digest: 0s}\n", "sinks.stdout.digest", "positive"),
])
def test_bad_sink_config_names_the_key(tmp_path: Path, sinks_yaml: str, where: str,
                                       why: str) -> None:
    cfg = write_config(tmp_path, "").read_text().replace("  stdout: {enabled: false}\n", "")
    (tmp_path / "monitor.yaml").write_text(cfg + sinks_yaml)
    with pytest.raises(ConfigError) as exc:
        load_settings(tmp_path / "monitor.yaml", env={}, search=False)
    text = str(exc.value)
    assert where in text and why in text


def test_missing_secret_stops_the_start_naming_the_entry_not_the_secret(tmp_path: Path) -> None:
    s = load(tmp_path, """
  webhooks:
    - {name: ok, url: 'http://127.0.0.1:9/ok', secret: fine}
    - {name: desk, url: 'http://127.0.0.1:9/x', secret_file: nope.secret}
    - {name: env, url: 'http://127.0.0.1:9/y', secret_env: NEWS_MONITOR_TEST_UNSET_VAR}
""")
    with pytest.raises(ConfigError) as exc:
        build_sinks(s)
    text = str(exc.value)
    assert "sinks.webhooks[1]" in text and "nope.secret" in text
    assert "sinks.webhooks[2]" in text and "NEWS_MONITOR_TEST_UNSET_VAR is not set" in text
    assert "sinks.webhooks[0]" not in text


def test_the_delivery_lease_leaves_a_slow_receiver_its_timeout(tmp_path: Path) -> None:
    # A pass cuts off a send at two thirds of its lease, and starts none after one third.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert delivery_lease(load(tmp_path / "a", "")) == timedelta(minutes=1)
    slow = load(tmp_path / "b", """
  webhooks: [{name: desk, url: 'http://127.0.0.1:9/d', timeout: 15s}]
  apprise: [{name: team, urls: ['json://127.0.0.1:9/a'], timeout: 40s}]
""")
    assert delivery_lease(slow) == timedelta(minutes=4)
