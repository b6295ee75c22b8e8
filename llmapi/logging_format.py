"""LOG_FORMAT=json: each log line one JSON object (time, level, logger, message, and the traceback
when there is one), for log shippers that read JSON."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson


def utc_time(epoch_seconds: float) -> str:
    """RFC 3339 in UTC with milliseconds, as every log line of ours shows time."""
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()
