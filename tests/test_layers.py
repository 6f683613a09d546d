"""The pure layers stay pure: rule matching and story clustering import no network, store or loop.

``monitor/match`` and ``monitor/stories`` decide things (does a rule match, which story);
they are tested with plain values, replayed offline and benchmarked alone, which holds only
while they never reach for a socket, a store or the event loop. A stray import would not
fail any behaviour test, so this one reads the imports themselves.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MONITOR = Path(__file__).resolve().parent.parent / "monitor"
PURE = ("match", "stories")
FORBIDDEN = {
    "aiohttp", "apscheduler", "asyncio", "feedparser", "httpx", "redis", "socket", "sqlite3",
    "subprocess", "monitor.alerts", "monitor.fetch", "monitor.ingest", "monitor.service",
    "monitor.store", "monitor.cli",
}


def imports(path: Path) -> set[str]:
    """Every module the file imports, at any depth (function-level imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


@pytest.mark.parametrize(
    "path", sorted(p for layer in PURE for p in (MONITOR / layer).rglob("*.py")),
    ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pure_layer_imports_no_io(path: Path) -> None:
    bad = sorted(m for m in imports(path) if forbidden(m))
    assert not bad, f"{path.relative_to(MONITOR.parent)} imports {', '.join(bad)}"


def test_the_check_sees_imports_at_any_depth(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import re\n\ndef f():\n    from redis.asyncio import Redis\n"
                     "    import monitor.store.sqlite\n")
    assert sorted(m for m in imports(probe) if forbidden(m)) == ["monitor.store.sqlite",
                                                                "redis.asyncio"]
