"""Logging setup: loguru to stderr (journald picks it up), readable or JSON lines."""

from __future__ import annotations

import logging
import sys

from loguru import logger

TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[feed]}</cyan>{message}"
)


def _with_context(record: dict) -> None:  # type: ignore[type-arg]
    feed = record["extra"].get("feed")
    record["extra"]["feed"] = f"[{feed}] " if feed else ""


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    logger.remove()
    logger.configure(patcher=_with_context)  # type: ignore[arg-type]
    if fmt == "json":
        logger.add(sys.stderr, level=level, serialize=True, backtrace=False, diagnose=False)
    else:
        logger.add(sys.stderr, level=level, format=TEXT_FORMAT, backtrace=False, diagnose=False,
                   colorize=None)
    _route_stdlib_logging()


class _ToLoguru(logging.Handler):
    """Library records (APScheduler, asyncio, aiohttp) in the daemon's own format: a
    JSON log stream must not carry plain lines from Python's last-resort handler."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(exception=record.exc_info).log(level, "{}: {}", record.name,
                                                  record.getMessage())


def _route_stdlib_logging() -> None:
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, _ToLoguru)] + [_ToLoguru()]
    # "Run time of job ... was missed" / "maximum number of running instances reached":
    # a tick job still running when the next one is due (a slow store, a hung Redis) is
    # expected and said once by the outage log; APScheduler said it every tick.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
