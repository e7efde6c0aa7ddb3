"""JSON-safe conversion of domain values (the encoding every journal uses)."""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import attrs

__all__ = ["dumps", "jsonable"]


def jsonable(value: Any) -> Any:
    """Convert a domain value into JSON-safe primitives. Never raises.

    Decimal → str (exact), datetime → ISO-8601, date → ISO, Enum → value, UUID → str,
    attrs instance → dict, Mapping → dict with str keys, list/tuple/set → list, bytes →
    latin-1 text, float NaN/inf → str. Unknown objects → ``repr``.
    """
    t = type(value)  # exact types first (the common case): same answers, fewer checks
    if t is str or t is int or t is bool or value is None:
        return value
    if t is Decimal:
        return str(value)
    if t is dict:
        return {k if type(k) is str else str(k): jsonable(v) for k, v in value.items()}
    try:
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return (
                value
                if value == value and value not in (float("inf"), float("-inf"))
                else str(value)
            )
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, enum.Enum):
            return jsonable(value.value)
        if isinstance(value, uuid.UUID):
            return str(value)
        if attrs.has(type(value)):
            return {f.name: jsonable(getattr(value, f.name)) for f in attrs.fields(type(value))}
        if isinstance(value, Mapping):
            return {str(k): jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [jsonable(v) for v in value]
        if isinstance(value, (bytes, bytearray)):
            return bytes(value).decode("latin-1")
        if isinstance(value, BaseException):
            return f"{type(value).__name__}: {value}"
        return repr(value)
    except Exception as exc:  # pragma: no cover - defensive: journaling must never raise
        return f"<unserializable {type(value).__name__}: {exc!r}>"


def dumps(value: Any) -> str:
    """JSON text of :func:`jsonable` ``(value)``; compact, keys in insertion order."""
    return json.dumps(jsonable(value), separators=(",", ":"), ensure_ascii=False)
