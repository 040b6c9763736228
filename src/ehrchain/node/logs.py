"""Structured JSON logs. Only metadata is logged: never payloads, bodies or queries."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


def configure(level: str, path: Path | None = None) -> None:
    """Send JSON lines to stderr and, if given, to a file."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path))
    for handler in handlers:
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    # The HTTP client logs every request at INFO; the node's own log says what matters.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(root.level, logging.WARNING))
