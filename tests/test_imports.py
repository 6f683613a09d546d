"""What the daemon imports is memory it keeps: tools it never runs stay out of the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# httpx's command-line client and what it pulls in when installed (rich, pygments).
NEVER = ("httpx._main", "rich", "pygments")


def test_daemon_modules_do_not_import_httpx_command_line_client() -> None:
    code = textwrap.dedent(f"""
        import sys
        import monitor.cli, monitor.service, monitor.alerts.webhook, monitor.fetch.http
        import httpx
        found = sorted(m for m, mod in sys.modules.items() if mod is not None
                       and (m.split(".")[0] in {NEVER!r} or m in {NEVER!r}))
        assert not found, found
        assert callable(httpx.main) and httpx.AsyncClient  # httpx itself is whole
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
