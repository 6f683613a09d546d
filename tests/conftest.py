"""Shared fixtures: a real Redis (throwaway unless REDIS_URL is set), flushed per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import ConfiguredRedis, redis_url_for_tests

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SHARED = ROOT.parent / "shared"


def _redis_required() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def redis_session_url() -> Iterator[str]:
    if os.environ.get("REDIS_URL") is None and shutil.which("redis-server") is None:
        if _redis_required():
            pytest.fail("CI=true but no Redis: set REDIS_URL or install redis-server")
        pytest.skip("no Redis available (set REDIS_URL or install redis-server)")
    try:
        with redis_url_for_tests() as url:
            client = redis.Redis.from_url(url)
            client.ping()
            client.close()
            yield url
    except (RuntimeError, redis.ConnectionError) as e:
        if _redis_required():
            pytest.fail(f"CI=true but Redis is not usable: {e}")
        pytest.skip(f"Redis not usable: {e}")


@pytest.fixture
def redis_url(redis_session_url: str) -> Iterator[str]:
    """A Redis URL whose database is empty at the start of the test."""
    client = redis.Redis.from_url(redis_session_url)
    client.flushdb()
    yield redis_session_url
    client.flushdb()
    client.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def redis_processes() -> Iterator[list[ConfiguredRedis]]:
    """Servers a test starts from its own config (append them here): killed at the end."""
    if shutil.which("redis-server") is None:
        if _redis_required():
            pytest.fail("CI=true but redis-server is not installed")
        pytest.skip("redis-server is not installed")
    started: list[ConfiguredRedis] = []
    yield started
    for server in started:
        server.crash()
