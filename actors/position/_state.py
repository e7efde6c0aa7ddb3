"""The one state record of a position and its snapshot codec.

Owns: :class:`PositionRecord` — everything a restarted PositionActor resumes from: the
lifecycle, quantities, entry, the intended and the live stop, client-id sequence numbers,
trailing state, take-profit levels and the aged exit order.
Consumes: ``position.snapshot`` event data (:func:`load_snapshot`).
Emits: ``position.snapshot`` event data (:func:`snapshot_data`). The JSON shape is the one
journals already hold (keys below), so restarts from existing journals keep working:

``lifecycle`` (Lifecycle value), ``symbol``, ``position_side``, ``entry_client_order_id``,
``requested_qty`` / ``filled_qty`` / ``qty`` (Decimal strings, base units),
``entry_price`` / ``stop_price`` / ``aged_exit_price`` (Decimal strings in USDT or null),
``opened_at`` (ISO-8601 UTC or null), ``stop_client_order_id`` / ``stop_venue_order_id``
("" when none), ``seq`` (role letter → last sequence number), ``trailing``
(:meth:`TrailingState.to_dict`), ``tp_levels_done`` (sorted level indexes), ``tp_orders``
(client order id → level), ``aged_client_order_id``, ``aged_started``, ``adopted``,
``close_reason``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from tradebot.domain import OrderRole, PositionSide
from tradebot.ids import client_order_id
from tradebot.policies import TrailingState
from tradebot.ports import StopState

from ._lifecycle import Lifecycle, LifecycleMachine

__all__ = ["SEQ_SKIP_ON_RESTART", "PositionRecord", "load_snapshot", "snapshot_data"]

SEQ_SKIP_ON_RESTART = 100
"""Client-id sequence numbers a restarted actor skips: ids used after the last snapshot
must never be reused (Bybit refuses any reused orderLinkId; Binance any id of an open
order)."""


def _new_seq() -> dict[str, int]:
    return {r.value: 0 for r in OrderRole}


@attrs.define
class PositionRecord:
    """The persisted state of one position (prices in USDT, quantities in base units).

    Attributes:
        position_id: 16 hex chars (:func:`tradebot.ids.position_id_for`).
        symbol: instrument symbol.
        position_side: LONG or SHORT.
        lifecycle: the position's :class:`LifecycleMachine` (the only way to change state).
        entry_cid: client order id of the entry.
        req_qty: requested entry quantity.
        filled_qty: entry quantity filled.
        qty: quantity held now (what the venue showed last).
        entry_price: average entry fill price, None before the fill.
        opened_at: when the position became ACTIVE (aware UTC).
        stop: the live stop as the venue showed it (None = none known).
        stop_price: the stop we intend (= the live one normally).
        seq: last sequence number per order role letter (client order ids).
        trailing: trailing-stop state (high/low-water mark, phase, update count).
        tp_done: take-profit level indexes done (filled or skipped).
        tp_orders: live take-profit orders, client order id → level index.
        aged_cid: client order id of the live aged exit order ("" = none).
        aged_price: its limit price.
        aged_started: the aged-exit schedule has started (journaled once).
        adopted: found on the exchange without our intent (reconciler).
        origin: ``tradebot`` or ``legacy`` (imported by ``tradebot import legacy``).
        imported: imported and not yet seen on the venue by tradebot.
        close_reason: why the position ended (or failed).
    """

    position_id: str
    symbol: str
    position_side: PositionSide
    lifecycle: LifecycleMachine
    entry_cid: str
    req_qty: Decimal = Decimal(0)
    filled_qty: Decimal = Decimal(0)
    qty: Decimal = Decimal(0)
    entry_price: Decimal | None = None
    opened_at: datetime | None = None
    stop: StopState | None = None
    stop_price: Decimal | None = None
    seq: dict[str, int] = attrs.Factory(_new_seq)
    trailing: TrailingState = attrs.Factory(TrailingState)
    tp_done: set[int] = attrs.Factory(set)
    tp_orders: dict[str, int] = attrs.Factory(dict)
    aged_cid: str = ""
    aged_price: Decimal | None = None
    aged_started: bool = False
    adopted: bool = False
    origin: str = "tradebot"
    imported: bool = False
    close_reason: str = ""

    @classmethod
    def new(
        cls,
        position_id: str,
        symbol: str,
        position_side: PositionSide,
        *,
        adopted: bool = False,
        on_illegal: Callable[[Lifecycle, Lifecycle, str], None] | None = None,
    ) -> PositionRecord:
        """A fresh record in OPENING; ``on_illegal`` journals illegal transitions."""
        return cls(
            position_id=position_id,
            symbol=symbol,
            position_side=position_side,
            lifecycle=LifecycleMachine(f"position {position_id}", on_illegal),
            entry_cid=client_order_id(position_id, OrderRole.ENTRY, 0),
            adopted=adopted,
        )

    @property
    def state(self) -> Lifecycle:
        """The lifecycle state (read-only; change it with ``lifecycle.transition``)."""
        return self.lifecycle.state

    def next_cid(self, role: OrderRole) -> str:
        """The next client order id of ``role`` (``tb-<position>-<role><seq>``)."""
        self.seq[role.value] += 1
        return client_order_id(self.position_id, role, self.seq[role.value])


def _dec_str(v: Decimal | None) -> str | None:
    return None if v is None else str(v)


def snapshot_data(r: PositionRecord) -> dict[str, Any]:
    """``position.snapshot`` data of ``r`` (the JSON shape in the module docstring)."""
    out = {
        "lifecycle": r.state.value,
        "symbol": r.symbol,
        "position_side": r.position_side.value,
        "entry_client_order_id": r.entry_cid,
        "requested_qty": str(r.req_qty),
        "filled_qty": str(r.filled_qty),
        "qty": str(r.qty),
        "entry_price": _dec_str(r.entry_price),
        "opened_at": None if r.opened_at is None else r.opened_at.isoformat(),
        "stop_price": _dec_str(r.stop_price),
        "stop_client_order_id": r.stop.client_order_id if r.stop else "",
        "stop_venue_order_id": r.stop.venue_order_id if r.stop else "",
        "seq": dict(r.seq),
        "trailing": r.trailing.to_dict(),
        "tp_levels_done": sorted(r.tp_done),
        "tp_orders": dict(r.tp_orders),
        "aged_client_order_id": r.aged_cid,
        "aged_exit_price": _dec_str(r.aged_price),
        "aged_started": r.aged_started,
        "adopted": r.adopted,
        "close_reason": r.close_reason,
    }
    if r.origin != "tradebot":  # imported positions only: the shape of ours is unchanged
        out["origin"] = r.origin
        out["imported"] = r.imported
    return out


def load_snapshot(r: PositionRecord, d: Mapping[str, Any]) -> None:
    """Restore ``r`` (a fresh record) from snapshot data ``d``; absent keys keep defaults.

    Sequence numbers skip :data:`SEQ_SKIP_ON_RESTART` ahead. The live stop is not restored
    (the venue is asked again); ``stop_price`` is.

    Raises:
        ValueError: a value that is not of its type (e.g. an unknown lifecycle).
    """

    def dec(key: str) -> Decimal | None:
        v = d.get(key)
        return None if v is None else Decimal(str(v))

    r.lifecycle.restore(Lifecycle(d.get("lifecycle", "OPENING")))
    r.entry_cid = str(d.get("entry_client_order_id", r.entry_cid))
    r.req_qty = dec("requested_qty") or Decimal(0)
    r.filled_qty = dec("filled_qty") or Decimal(0)
    r.qty = dec("qty") or Decimal(0)
    r.entry_price = dec("entry_price")
    oa = d.get("opened_at")
    r.opened_at = None if oa is None else datetime.fromisoformat(oa)
    r.stop_price = dec("stop_price")
    r.seq.update({str(k): int(v) + SEQ_SKIP_ON_RESTART for k, v in dict(d.get("seq", {})).items()})
    r.trailing = TrailingState.from_dict(d.get("trailing", {}))
    r.tp_done = {int(i) for i in d.get("tp_levels_done", [])}
    r.tp_orders = {str(k): int(v) for k, v in dict(d.get("tp_orders", {})).items()}
    r.aged_cid = str(d.get("aged_client_order_id", ""))
    r.aged_price = dec("aged_exit_price")
    r.aged_started = bool(d.get("aged_started", False))
    r.adopted = bool(d.get("adopted", r.adopted))
    r.origin = "legacy" if d.get("origin") == "legacy" else "tradebot"
    r.imported = bool(d.get("imported", False))
    r.close_reason = str(d.get("close_reason", ""))
