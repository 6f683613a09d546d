"""The CLI's promises to an operator: what ``check`` refuses, exit codes, per-command options."""

from __future__ import annotations

from pathlib import Path

from tests.test_replay_cli import ROOT, cli

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


def write_setup(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "feeds.yaml").write_text("- url: http://127.0.0.1:9/feed.xml\n")
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(f"state_dir: state\nfeeds: {{files: [feeds.yaml]}}\n"
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
