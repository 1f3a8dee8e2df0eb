"""Structured one-line JSON logs carrying the request id; control characters are escaped (LOG-06)."""

from __future__ import annotations

import json
import logging
import sys

from pmo.core import clock


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        try:
            from flask import g, has_request_context

            request_id = g.get("request_id") if has_request_context() else None
        except Exception:  # pragma: no cover
            request_id = None
        entry = {
            "ts": clock.now().isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id,
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # json.dumps escapes \r, \n and ESC, so one event is always one line.
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str = "INFO") -> None:
    root = logging.getLogger("pmo")
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = True
