"""Process logging: JSON lines to stdout for journald, secrets redacted (docs/ARCHITECTURE.md
§10).

:func:`setup_logging` installs one handler on the root logger:

* ``format="json"``: one JSON object per line — ``ts`` (ISO 8601 UTC, milliseconds),
  ``level``, ``logger``, ``msg``, plus the record's ``extra`` fields (Decimal → string,
  datetime → ISO 8601, anything else → ``str``) and ``exc`` (the formatted traceback) when
  there is one;
* ``format="text"``: ``ts level logger: msg`` for a terminal.

Every record passes a :class:`RedactingFilter` first: the message, the arguments, the
extra fields and the traceback are redacted with a :class:`tradebot.redact.Redactor`
(known secret values and credential shapes). The level comes from ``[logging] level``.
Noisy third-party loggers (``httpx``, ``httpcore``, ``hypercorn.access``) are held at
WARNING so a request never logs a URL with a token in it, and nothing logs per tick.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any

from tradebot.redact import Redactor

__all__ = ["JsonFormatter", "RedactingFilter", "setup_logging"]

_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
_QUIET = ("httpx", "httpcore", "hypercorn.access", "hypercorn.error", "trio-websocket")


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message, arguments, extra fields and traceback text
    (in place; always lets the record through)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        r = self.redactor
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            msg = str(record.msg)
        record.msg = r.text(msg)
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD:
                setattr(record, key, r.data(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = r.text(record.exc_text)
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = _jsonable(value)
        if record.exc_text:
            out["exc"] = record.exc_text
        elif record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(
    level: str = "INFO",
    fmt: str = "json",
    redactor: Redactor | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Install the process's one log handler on the root logger (replacing handlers an
    earlier call installed) and return it.

    Args:
        level: ``DEBUG`` / ``INFO`` / ``WARNING`` / ``ERROR`` (config ``[logging] level``).
        fmt: ``json`` or ``text`` (config ``[logging] format``).
        redactor: secrets to mask (default: shapes only, no known values).
        stream: where lines go (default ``sys.stdout``).

    Raises:
        ValueError: an unknown level or format.
    """
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError(f"logging level must be DEBUG, INFO, WARNING or ERROR (got {level!r})")
    if fmt not in ("json", "text"):
        raise ValueError(f"logging format must be json or text (got {fmt!r})")
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.set_name("tradebot")
    handler.addFilter(RedactingFilter(redactor or Redactor()))
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == "tradebot":
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    return handler
