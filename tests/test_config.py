"""Config: defaults run the service, every error names file, key path and line, env overrides."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

import monitor.yamlsafe
from monitor.config import changed_keys, load_settings, redact_url
from monitor.errors import ConfigError
from monitor.yamlsafe import YamlError, load_yaml

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "feeds.yaml").write_text("- url: https://example.org/feed.xml\n")
    (tmp_path / "rules").mkdir(exist_ok=True)
    p = tmp_path / "monitor.yaml"
    p.write_text("feeds:\n  files: [feeds.yaml]\nrules:\n  paths: [rules]\n" + text)
    return p


def test_shipped_example_config_is_valid() -> None:
    s = load_settings(ROOT / "deploy" / "monitor.yaml", env={})
    assert s.poll.interval == timedelta(minutes=15)
    assert s.feeds.files[0] == ROOT / "deploy" / "feeds.yaml"
    assert s.rules.paths[0].resolve() == (ROOT / "rules").resolve()
    assert s.sinks.jsonl.path == s.state_dir / "alerts.jsonl"
    assert not s.redis_sink_enabled()


def test_all_errors_at_once_with_lines(tmp_path: Path) -> None:
    p = write(tmp_path, "poll:\n  interval: 5 fortnights\n  bogus: 1\n"
                        "sinks:\n  stdout:\n    format: xml\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(p, env={})
    text = str(exc.value)
    assert len(exc.value.problems) == 3
    assert f"{p}:6:3: poll.interval: not a duration" in text
    assert f"{p}:7:3: poll.bogus: unknown key" in text
    assert "sinks.stdout.format" in text and ":10:" in text


def test_semantic_errors_name_the_key(tmp_path: Path) -> None:
    p = write(tmp_path, "poll:\n  min_interval: 2h\n  max_interval: 1h\n"
                        "store:\n  url: ftp://user:hunter2@host/x\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(p, env={})
    text = str(exc.value)
    assert "poll.min_interval: must not exceed poll.max_interval" in text
    assert "store.url" in text and "hunter2" not in text and "***" in text


@pytest.mark.parametrize("value", ["0", "1.5", "high"])
def test_a_join_threshold_outside_0_1_is_refused(tmp_path: Path, value: str) -> None:
    p = write(tmp_path, f"stories:\n  join_threshold: {value}\n")
    with pytest.raises(ConfigError, match=r"stories\.join_threshold"):
        load_settings(p, env={})


@pytest.mark.parametrize("value", ["-0.1", "1.5", "high"])
def test_a_split_bar_outside_0_1_is_refused(tmp_path: Path, value: str) -> None:
    p = write(tmp_path, f"stories:\n  split_bar: {value}\n")
    with pytest.raises(ConfigError, match=r"stories\.split_bar"):
        load_settings(p, env={})
    assert load_settings(write(tmp_path, "stories:\n  split_bar: 0\n"),
                         env={}).stories.split_bar == 0


@pytest.mark.parametrize("text", ["alerts:\n  seen_ttl: 1d\n",
                                  "alerts:\n  seen_ttl: 5d\npoll:\n  max_article_age: 7d\n"])
def test_seen_keys_kept_shorter_than_an_article_lives_are_refused(tmp_path: Path,
                                                                  text: str) -> None:
    with pytest.raises(ConfigError, match=r"alerts\.seen_ttl"):
        load_settings(write(tmp_path, text), env={})
    load_settings(write(tmp_path, "alerts:\n  seen_ttl: 3d\n"), env={})   # the window: fine


def test_a_sink_url_redis_cannot_open_is_refused_by_check(tmp_path: Path) -> None:
    # Anything but redis://, rediss://, unix:// and redis+sentinel:// would pass `check`
    # and then stop the daemon at start.
    p = write(tmp_path, "redis:\n  url: redis+cluster://:hunter2@h1:7000,h2:7000/0\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(p, env={})
    text = str(exc.value)
    assert "redis.url: unsupported Redis URL" in text and "hunter2" not in text
    for good in ("redis://h:6379/0", "rediss://h:6380/0", "unix:///run/redis/redis.sock",
                 "redis+sentinel://h1:26379,h2/mymaster/1"):
        assert load_settings(p, env={"NEWS_MONITOR_REDIS_URL": good}).redis_url() == good


def test_missing_feed_list_and_rules_are_reported(tmp_path: Path) -> None:
    p = tmp_path / "monitor.yaml"
    p.write_text("feeds:\n  files: [nope.yaml]\nrules:\n  paths: [norules]\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(p, env={})
    assert len(exc.value.problems) == 2
    assert "feeds.files[0]: feed list not found" in str(exc.value)


def test_environment_overrides_and_aliases(tmp_path: Path) -> None:
    p = write(tmp_path, "poll:\n  interval: 10m\n")
    s = load_settings(p, env={"NEWS_MONITOR_POLL__INTERVAL": "90s",
                              "NEWS_MONITOR_REDIS_URL": "redis://:pw@127.0.0.1:6379/2",
                              "NEWS_MONITOR_SINKS__STDOUT__FORMAT": "json"})
    assert s.poll.interval == timedelta(seconds=90)
    assert s.redis_url() == "redis://:pw@127.0.0.1:6379/2"
    assert s.redis_sink_enabled()
    assert s.sinks.stdout.format == "json"
    assert "pw" not in repr(s)


def test_changed_keys_name_what_differs_secrets_included(tmp_path: Path) -> None:
    """A reload compares settings: a new password is a change although dumps mask it."""
    from monitor.service import restart_needed

    a = load_settings(write(tmp_path, "redis:\n  url: redis://:one@127.0.0.1:6379/0\n"), env={})
    b = load_settings(write(tmp_path, "redis:\n  url: redis://:two@127.0.0.1:6379/0\n"
                                      "poll:\n  timeout: 7s\n  interval: 5m\n"), env={})
    assert changed_keys(a, a) == []
    assert changed_keys(a, b) == ["redis.url", "poll.interval", "poll.timeout"]
    assert restart_needed(a, b) == ["redis.url", "poll.timeout"]   # the interval applies live
    assert "one" not in " ".join(changed_keys(a, b)) and "two" not in " ".join(changed_keys(a, b))


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    p = write(tmp_path, "")
    with pytest.raises(ConfigError) as exc:
        load_settings(p, env={"NEWS_MONITOR_POLL__CONCURRENCY": "many"})
    assert "environment NEWS_MONITOR_POLL__CONCURRENCY: poll.concurrency" in str(exc.value)


def test_password_file_fills_the_redis_url(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret/+\n")
    p = write(tmp_path, "redis:\n  url: redis://127.0.0.1:6379/0\n  password_file: pw\n")
    s = load_settings(p, env={})
    assert s.redis_url() == "redis://:s3cret%2F%2B@127.0.0.1:6379/0"
    assert redact_url(s.redis_url() or "") == "redis://:***@127.0.0.1:6379/0"


def test_defaults_without_a_file_use_the_checkout(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(None, env={}, search=False)
    assert s.rules.paths[0] == ROOT / "rules"
    assert s.state_dir == tmp_path / "state"


@pytest.fixture(params=["libyaml", "python"])
def yaml_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every check holds whichever parser builds the tree (libyaml when PyYAML has it)."""
    if request.param == "libyaml":
        if not getattr(yaml, "__with_libyaml__", False):
            pytest.skip("PyYAML built without libyaml")
        monkeypatch.setattr(monitor.yamlsafe, "_Loader", yaml.CSafeLoader)
    else:
        monkeypatch.setattr(monitor.yamlsafe, "_Loader", yaml.SafeLoader)
    return str(request.param)


@pytest.mark.parametrize(("text", "reason"), [
    ("a: &x [1, 2]\nb: *x\n", "aliases"),
    ("a: &x 1\nb: *x\n", "aliases"),
    ("a: 1\na: 2\n", "duplicate key 'a'"),
    ("a: [1\n", "invalid YAML"),
    ("a:\n  <<: {b: 1}\n", "merge keys"),
])
@pytest.mark.usefixtures("yaml_parser")
def test_unsafe_yaml_is_refused(text: str, reason: str) -> None:
    with pytest.raises(YamlError) as exc:
        load_yaml(text, "f.yaml")
    assert reason in str(exc.value)
    assert exc.value.problem.line is not None


@pytest.mark.usefixtures("yaml_parser")
def test_yaml_marks_point_at_keys() -> None:
    doc = load_yaml("a: 1\nb:\n  - x\n  - y: 2\n", "f.yaml")
    assert doc.data == {"a": 1, "b": ["x", {"y": 2}]}
    typed = load_yaml("n: 3\nf: 1.5\nt: true\nz: null\nd: 2024-05-01\ns: '3'\n", "f.yaml")
    assert typed.data == {"n": 3, "f": 1.5, "t": True, "z": None, "s": "3",
                          "d": date(2024, 5, 1)}
    assert typed.line_of(("s",)) == (6, 1)
    assert doc.line_of(("b", 1, "y")) == (4, 5)
    assert doc.line_of(("b", 1, "zzz")) == (4, 5)


def test_systemd_credential_supplies_the_password(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "redis-password").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    p = write(tmp_path, "store:\n  url: redis://127.0.0.1:6379/1\n")
    s = load_settings(p, env={"NEWS_MONITOR_REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert s.redis_url() == "redis://:from-systemd@127.0.0.1:6379/0"
    assert s.store_url() == "redis://:from-systemd@127.0.0.1:6379/1"


def test_an_alert_file_not_writable_for_now_stops_check_but_only_warns_the_daemon(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A read-only mount may be mended while the daemon runs (its sinks retry); refused
    # at start, the daemon would poll nothing and systemd would not restart it (exit 2).
    # Root writes anywhere, so the permission is what is stood in for here.
    import os

    import monitor.config

    out = tmp_path / "ro" / "alerts.jsonl"
    out.parent.mkdir()
    out.write_text("")
    settings = load_settings(write(tmp_path, f"sinks:\n  jsonl:\n    path: {out}\n"), env={})
    real = os.access
    monkeypatch.setattr(monitor.config.os, "access",
                        lambda p, mode: False if Path(p) == out else real(p, mode))
    assert monitor.config.prepare_state_dir(settings) == \
        [f"sinks.jsonl.path: cannot write to {out}"]
    with pytest.raises(ConfigError, match=r"sinks\.jsonl\.path: cannot write to"):
        monitor.config.prepare_state_dir(settings, keep=False, strict=True)
