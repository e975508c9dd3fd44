"""``log-format json``: one JSON object per log line, for log collectors that parse fields.

A leaf module (no txzserver imports): zope/startup.py puts it on the handlers of the event
log and of the ``<logger>`` sections, and a PasteDeploy ini can name it as a formatter class
(``[formatter_json] class = txzserver.jsonlog.JsonFormatter``).

Every line has ``time`` (ISO-8601, UTC, milliseconds), ``level``, ``logger`` and ``message``;
``exception`` when the record has a traceback; and the record's ``json_fields`` (a dict the
access log adds: client, method, path, status, ...), which cannot override those four.
"""

import json
import logging
from datetime import datetime, timezone

#: What every line has; a record's json_fields cannot replace these.
BASE_FIELDS = ("time", "level", "logger", "message")


class JsonFormatter(logging.Formatter):
    """Formats a LogRecord as one line of JSON (newlines inside values are escaped)."""

    def format(self, record):
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        fields = getattr(record, "json_fields", None)
        if isinstance(fields, dict):
            for name, value in fields.items():
                if name not in BASE_FIELDS:
                    line[name] = value
        return json.dumps(line, ensure_ascii=False, default=str)


def use_json(loggers):
    """Give every handler of ``loggers`` (Logger objects) the JSON formatter."""
    formatter = JsonFormatter()
    for logger in loggers:
        for handler in logger.handlers:
            handler.setFormatter(formatter)
