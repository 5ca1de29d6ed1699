"""How the long-running commands log: to stderr, as text lines or (`log.format = "json"`)
one JSON object per line (time, level, logger, message, and the traceback when there is one),
for a log shipper to read. The messages are the same either way: the product never puts a
resident's address or words in a log message.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from alerts.core.config import ConfigError

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(log_format: str = "text") -> None:
    """INFO and up to stderr in `log_format`, with the chattiest libraries quietened."""
    if log_format not in FORMATS:
        raise ConfigError(f"log.format must be \"text\" or \"json\", not {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # Their INFO lines repeat for every job run, request and fetch; ours say what matters.
    for noisy in ("apscheduler", "uvicorn", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # aiosmtpd's protocol log names every sender and recipient of inbound mail: addresses
    # never go to logs, so only its errors are let through.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
