"""Logging setup: loguru to stderr (journald picks it up), readable or JSON lines."""

from __future__ import annotations

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
