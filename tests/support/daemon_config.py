"""The config a daemon test starts from: one loopback feed, the shipped rules, quiet sinks."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def daemon_config(tmp_path: Path, feed_url: str, *, outlet: str = "Outlet F",
                  language: str | None = "en", rules: Path = ROOT / "rules",
                  rules_opts: str = "", store: str = "", poll: str = "",
                  sinks: str = "", more: str = "") -> Path:
    """Write ``feeds.yaml`` and ``monitor.yaml`` under ``tmp_path``; the config's path.

    ``rules_opts``, ``store``, ``poll`` and ``sinks`` are extra YAML lines for those
    sections (indented two spaces, newline-terminated), ``more`` whole sections;
    stdout and metrics are off, loopback is allowed.
    """
    feeds = tmp_path / "feeds.yaml"
    lang = f"  language: {language}\n" if language else ""
    feeds.write_text(f"- url: {feed_url}\n  outlet: {outlet}\n{lang}")
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\nfeeds:\n  files: [{feeds}]\n"
        f"rules:\n  paths: [{rules}]\n{rules_opts}"
        + (f"store:\n{store}" if store else "")
        + "poll:\n  allow_networks: [127.0.0.0/8]\n" + poll
        + "sinks:\n  stdout:\n    enabled: false\n" + sinks
        + "metrics:\n  enabled: false\n" + more)
    return config
