"""`log.format = "json"`: a long-running command writes one JSON object per line to stderr
(time, level, logger, message), for a log shipper; "text" stays the default and anything
else is refused. Real `alerts worker` processes on both stores."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from alerts.core.config import ConfigError, Settings
from alerts.service.logs import JsonLines, configure_logging
from tests.factories import smtp_config
from tests.processes import run_alerts, start_alerts, wait_for


def test_a_worker_logs_json_lines_when_asked(tmp_path: Path, settings: Settings,
                                              engine: Engine) -> None:
    config = smtp_config(tmp_path, settings, '[log]\nformat = "json"\n')
    worker = start_alerts(config, "worker", log=tmp_path / "worker.log")
    try:
        wait_for(lambda: "alerts worker: pid" in worker.output(), what="the worker's start",
                 process=worker, timeout=30)
    finally:
        assert worker.stop() == 0, worker.output()
    lines = [json.loads(line) for line in worker.output().splitlines() if line.strip()]
    assert lines, "the worker logged nothing"
    assert all(set(line) >= {"time", "level", "logger", "message"} for line in lines)
    assert any(line["message"].startswith("alerts worker: pid") and line["level"] == "INFO"
               and line["logger"] == "alerts.service" for line in lines)
    assert any(line["message"] == "alerts worker: stopped" for line in lines)


def test_an_unknown_log_format_is_refused(tmp_path: Path, settings: Settings,
                                          engine: Engine) -> None:
    config = smtp_config(tmp_path, settings, '[log]\nformat = "xml"\n')
    result = run_alerts(config, "worker")
    assert result.returncode != 0
    assert 'log.format must be "text" or "json", not \'xml\'' in result.stderr
    with pytest.raises(ConfigError):
        configure_logging("xml")


def test_a_json_line_carries_the_traceback_when_there_is_one() -> None:
    try:
        raise ValueError("the feed answered 500")
    except ValueError:
        record = logging.LogRecord("alerts.sources", logging.ERROR, __file__, 1,
                                   "collect failed: %s", ("RIV",), sys.exc_info())
    line = json.loads(JsonLines().format(record))
    assert line["message"] == "collect failed: RIV"
    assert line["level"] == "ERROR"
    assert line["logger"] == "alerts.sources"
    assert line["time"].endswith("+00:00")
    assert "ValueError: the feed answered 500" in line["exception"]
    assert "\n" not in JsonLines().format(record)
