"""Shared fixtures: a real Redis (throwaway unless REDIS_URL is set), flushed per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from loguru import logger

from tests.support.redis_server import ConfiguredRedis, RedisServer, redis_url_for_tests

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


def _private_redis(persist: bool) -> Iterator[RedisServer]:
    server = RedisServer(persist=persist)
    try:
        server.start()
    except RuntimeError as e:
        if _redis_required():
            pytest.fail(f"CI=true but redis-server cannot start: {e}")
        pytest.skip(str(e))
    yield server
    server.cleanup()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis only this test uses, so it may stop it, flush it or restart it empty."""
    yield from _private_redis(persist=False)


@pytest.fixture
def own_redis_persistent() -> Iterator[RedisServer]:
    """The same, with an append-only file: stopped and started, it keeps its data."""
    yield from _private_redis(persist=True)


@pytest.fixture
def lines() -> Iterator[list[str]]:
    """Log lines from INFO up, as "LEVEL message"."""
    got: list[str] = []
    sink = logger.add(lambda m: got.append(f"{m.record['level'].name} {m.record['message']}"),
                      level="INFO")
    yield got
    logger.remove(sink)


@pytest.fixture
def logs() -> Iterator[list[str]]:
    """Every log line from DEBUG up, in loguru's default format ("time | LEVEL | where - message").

    Wider than ``lines``: tests that prove something never reaches the log (a secret)
    must see the debug lines too.
    """
    got: list[str] = []
    sink = logger.add(lambda m: got.append(str(m)), level="DEBUG")
    yield got
    logger.remove(sink)
