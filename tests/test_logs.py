"""Log lines: one format on stderr, whichever library writes them."""

from __future__ import annotations

import json
import logging

import pytest
from loguru import logger

from monitor.logs import setup_logging


def test_library_records_come_out_in_the_chosen_format(capfd: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", "json")
    try:
        logging.getLogger("aiohttp.client").warning("connection pool {full}: %s", "yes")
        logging.getLogger("apscheduler.scheduler").warning("maximum number of running instances")
    finally:
        logger.remove()
        logging.getLogger().handlers = [h for h in logging.getLogger().handlers
                                        if type(h).__module__ != "monitor.logs"]
    lines = capfd.readouterr().err.splitlines()
    records = [json.loads(line)["record"] for line in lines]   # JSON, every line
    assert [(r["level"]["name"], r["message"]) for r in records] == \
        [("WARNING", "aiohttp.client: connection pool {full}: yes")]
