"""The CLI's promises to an operator: what ``check`` refuses, exit codes, per-command options."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.feed_server import FeedServer
from tests.support.http_sink import HttpSink
from tests.test_e2e import rss
from tests.test_replay_cli import ROOT, cli
from tests.test_webhook_service import ITEMS, RULES

SINKS = """sinks:
  stdout: {enabled: false}
  webhooks:
    - name: desk
      url: http://127.0.0.1:9/desk
      secret_file: desk.secret
  apprise:
    - name: team
      urls_env: NM_TEST_UNSET_APPRISE_URLS
"""


def write_setup(tmp_path: Path, extra: str = "", state_dir: str = "state") -> Path:
    if not (tmp_path / "feeds.yaml").exists():
        (tmp_path / "feeds.yaml").write_text("- url: http://127.0.0.1:9/feed.xml\n")
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(f"state_dir: {state_dir}\nfeeds: {{files: [feeds.yaml]}}\n"
                   f"rules: {{paths: [{ROOT / 'rules'}]}}\nmetrics: {{enabled: false}}\n"
                   + extra)
    return cfg


def test_check_refuses_missing_sink_secrets_as_run_does(tmp_path: Path) -> None:
    cfg = write_setup(tmp_path, SINKS)
    res = cli("check", "--config", str(cfg), cwd=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "ok:" not in res.stdout
    assert f"{cfg}:10:7: sinks.webhooks[0].secret_file" in res.stderr
    assert "desk.secret" in res.stderr
    assert f"{cfg}:13:7: sinks.apprise[0].urls_env" in res.stderr
    assert "NM_TEST_UNSET_APPRISE_URLS is not set" in res.stderr
    # The daemon refuses the same config at start, for the same reasons.
    once = cli("once", "--config", str(cfg), cwd=tmp_path)
    assert once.returncode == 2
    assert f"{cfg}:10:7: sinks.webhooks[0].secret_file" in once.stderr

    (tmp_path / "desk.secret").write_text("desk-key\n")
    fixed = cfg.read_text().replace("urls_env: NM_TEST_UNSET_APPRISE_URLS",
                                    "urls: ['json://127.0.0.1:9/team']")
    cfg.write_text(fixed)
    res = cli("check", "--config", str(cfg), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "ok:" in res.stdout


def test_a_state_dir_under_a_regular_file_is_a_setup_error_for_once_and_check(
        tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("not a folder\n")
    cfg = write_setup(tmp_path, state_dir="plain/state")
    for command in ("once", "check"):
        res = cli(command, "--config", str(cfg), cwd=tmp_path)
        assert res.returncode == 2, (command, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr
        assert (f"{cfg}:1:1: state_dir: cannot create {tmp_path / 'plain' / 'state'}: "
                "Not a directory") in res.stderr


def without_root_override() -> list[str]:
    """A command prefix under which permissions apply, root or not (skip if none works)."""
    if os.geteuid() != 0:
        return []
    drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
    if shutil.which("setpriv") is None or subprocess.run([*drop, "true"], check=False).returncode:
        pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE")
    return drop


def test_a_state_dir_that_is_not_writable_is_a_setup_error(tmp_path: Path) -> None:
    prefix = without_root_override()
    (tmp_path / "ro").mkdir(mode=0o555)
    cfg = write_setup(tmp_path, state_dir="ro")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWS_MONITOR_")}
    try:
        for command in ("once", "check"):
            res = subprocess.run([*prefix, sys.executable, "-m", "monitor", command, "--config",
                                  str(cfg)], cwd=tmp_path, env=env, capture_output=True,
                                 text=True, timeout=120, check=False)
            assert res.returncode == 2, (command, res.stdout, res.stderr)
            assert "Traceback" not in res.stderr
            assert f"state_dir: cannot write in {tmp_path / 'ro'}: Permission denied" in res.stderr
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_check_tries_the_state_dir_but_leaves_nothing_behind(tmp_path: Path) -> None:
    cfg = write_setup(tmp_path, state_dir="var/lib/state")
    res = cli("check", "--config", str(cfg), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "var").exists()
    (tmp_path / "kept").mkdir()
    cfg = write_setup(tmp_path, state_dir="kept")
    assert cli("check", "--config", str(cfg), cwd=tmp_path).returncode == 0
    assert list((tmp_path / "kept").iterdir()) == []


def test_no_enabled_rule_is_said_by_check_and_by_the_daemon(tmp_path: Path) -> None:
    # valid, but nothing would ever alert: an emptied rules file, a wrong rules.paths
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "off.yaml").write_text(
        "rules:\n  - id: off\n    query: ceasefire\n    enabled: false\n")
    cfg = write_setup(tmp_path)
    cfg.write_text(cfg.read_text().replace(str(ROOT / "rules"), str(tmp_path / "rules")))
    res = cli("check", "--config", str(cfg), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "no enabled rules" in res.stderr and "1 rules" in res.stdout
    with FeedServer() as srv:
        cfg = one_empty_feed(tmp_path, srv)
        cfg.write_text(cfg.read_text().replace(str(ROOT / "rules"), str(tmp_path / "rules")))
        once = cli("once", "--config", str(cfg), cwd=tmp_path)
    assert once.returncode == 0, once.stderr
    assert "no enabled rules" in once.stderr


def test_an_alert_file_that_cannot_be_appended_to_is_a_setup_error(tmp_path: Path) -> None:
    # outside state_dir it was found only at the first delivery, as endless retries
    (tmp_path / "out").mkdir()
    (tmp_path / "a-file").write_text("")
    cfg = write_setup(tmp_path, f"sinks:\n  jsonl:\n    path: {tmp_path / 'out'}\n"
                                f"  dead_letter: {tmp_path / 'a-file' / 'x' / 'dead.jsonl'}\n")
    for command in ("check", "once"):
        res = cli(command, "--config", str(cfg), cwd=tmp_path)
        assert res.returncode == 2, res.stdout + res.stderr
        assert f"sinks.jsonl.path: {tmp_path / 'out'} is a folder" in res.stderr
        assert f"sinks.dead_letter: {tmp_path / 'a-file'} is not a folder" in res.stderr
    # a folder the sink would create is fine
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "out"), str(tmp_path / "new" / "a.jsonl"))
                   .replace(str(tmp_path / "a-file" / "x"), str(tmp_path / "new")))
    assert cli("check", "--config", str(cfg), cwd=tmp_path).returncode == 0


def one_empty_feed(tmp_path: Path, srv: FeedServer) -> Path:
    """A config polling one empty feed on ``srv``, alerts nowhere: a ``once`` that succeeds."""
    srv.set("/f.xml", rss([]))
    (tmp_path / "feeds.yaml").write_text(f"- url: {srv.url('/f.xml')}\n")
    return write_setup(tmp_path, "poll: {allow_networks: [127.0.0.0/8]}\n"
                                 "sinks: {stdout: {enabled: false}}\n")


def test_log_options_work_after_the_command_as_before_it(tmp_path: Path) -> None:
    with FeedServer() as srv:
        cfg = one_empty_feed(tmp_path, srv)
        default = cli("once", "--config", str(cfg), cwd=tmp_path)
        assert default.returncode == 0, default.stderr
        assert "polled 1 feeds" in default.stderr
        for args in (["once", "--log-level", "error"], ["--log-level", "ERROR", "once"]):
            quiet = cli(*args, "--config", str(cfg), cwd=tmp_path)
            assert quiet.returncode == 0, quiet.stderr
            assert "polled" not in quiet.stderr
        as_json = cli("once", "--log-format", "json", "--config", str(cfg), cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    records = [json.loads(line)["record"] for line in as_json.stderr.splitlines()]
    assert any(r["message"].startswith("polled 1 feeds") for r in records)


def test_once_fails_when_an_alert_is_left_undelivered_or_every_feed_failed(
        tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    with FeedServer() as srv, HttpSink() as rx:
        srv.set("/f.xml", rss(ITEMS))
        srv.set("/down.xml", b"", status=503)
        (tmp_path / "feeds.yaml").write_text(f"- url: {srv.url('/f.xml')}\n")

        def once(state_dir: str) -> tuple[int, str]:
            cfg = write_setup(tmp_path, "poll: {allow_networks: [127.0.0.0/8]}\n"
                              f"sinks:\n  stdout: {{enabled: false}}\n"
                              f"  webhooks: [{{name: desk, url: '{rx.url('/desk')}'}}]\n",
                              state_dir=state_dir)
            cfg.write_text(cfg.read_text().replace(str(ROOT / "rules"), "rules"))
            res = cli("once", "--config", str(cfg), cwd=tmp_path)
            return res.returncode, res.stderr

        rx.script("/desk", 503)
        code, err = once("refused")
        assert code == 1, err
        assert "2 alerts, 1 deliveries, 1 failed deliveries" in err  # jsonl took its one
        rx.script("/desk", 200)
        code, err = once("delivered")
        assert code == 0, err
        assert "2 alerts, 3 deliveries, 0 failed deliveries" in err

        (tmp_path / "feeds.yaml").write_text(f"- url: {srv.url('/down.xml')}\n")
        code, err = once("all-down")
        assert code == 1, err
        # One feed down among working ones is no failure of the run (tests/test_feeds_cli.py).


def test_a_store_not_answering_at_start_is_a_temporary_failure(tmp_path: Path) -> None:
    """75, not 2: Redis not up yet passes by itself, so the unit restarts on it."""
    from tests.support.redis_server import free_port

    cfg = write_setup(tmp_path, f"store: {{url: 'redis://127.0.0.1:{free_port()}/0'}}\n")
    res = cli("once", "--config", str(cfg), cwd=tmp_path)
    assert res.returncode == 75, res.stdout + res.stderr
    assert "store is unavailable" in res.stderr
    broken = write_setup(tmp_path, "poll: {interval: never}\n")
    assert cli("once", "--config", str(broken), cwd=tmp_path).returncode == 2
