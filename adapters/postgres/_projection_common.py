"""What every projection shares: the event shape it reads, the skip, the row helpers.

Owns :class:`ProjectionSkip` (the event cannot be projected: it is still stored, the
journal counts the reason), :class:`ProjectableEvent` (the stored event with JSON-form
``data``), the ``Projection`` signature ``(cursor, event, payload)`` and the helpers the
projections of :mod:`adapters.postgres.projections` use: a required event field, the
order role in one of our client order ids, whether an ``orders`` row exists, and the
``positions`` update that skips when the position has no row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import psycopg

from tradebot.domain import OrderRole
from tradebot.ids import parse_client_order_id

__all__ = ["Cursor", "Projection", "ProjectableEvent", "ProjectionSkip"]


class ProjectionSkip(Exception):
    """The event cannot be projected (bad data, missing event field, unknown row); it is
    still stored."""


class ProjectableEvent(Protocol):
    """What a projection reads: the stored event with JSON-form ``data``."""

    @property
    def event_id(self) -> Any: ...
    @property
    def ts(self) -> datetime: ...
    @property
    def type(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def position_id(self) -> str | None: ...
    @property
    def client_order_id(self) -> str | None: ...
    @property
    def symbol(self) -> str | None: ...
    @property
    def jdata(self) -> Mapping[str, Any]: ...


Cursor = psycopg.Cursor[Any]
Projection = Callable[[Cursor, ProjectableEvent, Any], None]


def _field(ev: ProjectableEvent, name: str) -> str:
    value = getattr(ev, name)
    if not value:
        raise ProjectionSkip(f"missing event field {name!r}")
    return str(value)


def _role_of(cid: str | None) -> OrderRole | None:
    parsed = parse_client_order_id(cid) if cid else None
    return parsed[1] if parsed else None


def _stop_role(cid: str | None) -> str:
    return "EMERGENCY_STOP" if _role_of(cid) is OrderRole.EMERGENCY_STOP else "STOP"


def _order_exists(cur: Cursor, cid: str) -> bool:
    cur.execute("SELECT 1 FROM orders WHERE client_order_id = %s", (cid,))
    return cur.fetchone() is not None


def _update_position(cur: Cursor, ev: ProjectableEvent, sql: str, params: tuple[Any, ...]) -> None:
    pid = _field(ev, "position_id")
    cur.execute(f"UPDATE positions SET {sql} WHERE position_id = %s", (*params, pid))
    if cur.rowcount == 0:
        raise ProjectionSkip("no positions row for this position_id")
