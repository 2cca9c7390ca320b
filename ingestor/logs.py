"""JSON-lines logging: one object per line with time, level, logger, message and the record's extras.

Written here rather than taken from python-json-logger: fifteen lines on msgspec, which the image carries anyway,
against one more runtime dependency encoding through the standard library's slower json.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_"))
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(doc, enc_hook=str).decode()


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter at INFO (aiokafka joins, azure-core request lines) is not ours to print.
    for noisy in ("aiokafka", "azure", "azure.core.pipeline.policies.http_logging_policy"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
