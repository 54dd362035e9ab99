"""LOG_FORMAT=json: one JSON object per log line, for log collectors.

The record has passed runs.redaction.ScrubSecretsFilter first (the handler's filter), so
the message and the traceback text are already scrubbed; this only lays them out.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        # One line whatever the message holds: json.dumps escapes newlines.
        return json.dumps(entry, ensure_ascii=False)
