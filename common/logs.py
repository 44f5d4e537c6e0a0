"""Log records that say which tenant, run, step and execution they are about; JSON lines on request.

The engine binds the ids it works on with `bound(...)` (a context variable: per batch and per item, no
statement, nothing shared between threads). `EngineContextFilter` copies them (or ids passed as
`extra=`) onto each record, and a short `[tenant=1 run=5 ...]` prefix for the text format. `JsonFormatter` writes one object per line:
time, level, logger, message, the ids, and the exception's traceback when there is one.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime

FIELDS = ("tenant_id", "run_id", "step_id", "execution_id")
_current: ContextVar[dict[str, int] | None] = ContextVar("rowbell_log_context", default=None)


def current() -> dict[str, int]:
    return _current.get() or {}


@contextlib.contextmanager
def bound(**ids: int | None) -> Iterator[None]:
    token = _current.set({**current(), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _current.reset(token)


class EngineContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ids = current()
        for name in FIELDS:
            if getattr(record, name, None) is None and name in ids:
                setattr(record, name, ids[name])
        present = [(name, getattr(record, name, None)) for name in FIELDS]
        prefix = " ".join(
            f"{name.removesuffix('_id')}={value}" for name, value in present if value is not None
        )
        record.context = f"[{prefix}] " if prefix else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
