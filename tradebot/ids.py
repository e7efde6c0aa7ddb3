"""Deterministic identifiers.

Client order ids must be <= 36 characters of ``[A-Za-z0-9_-]`` (Bybit ``orderLinkId``;
Binance ``newClientOrderId``/``clientAlgoId`` pattern ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$``;
../shared/reference/exchanges.md section 2). Ours are ``tb-<position_id>-<role><seq>``:
they name the position and the order's role, and are reproducible after a restart from the
journaled position id, so an ambiguous outcome is resolved by looking the id up.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from tradebot.domain import OrderRole, PositionSide

__all__ = ["position_id_for", "client_order_id", "parse_client_order_id", "CLIENT_ID_RE"]

CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")


def position_id_for(
    account: str, symbol: str, position_side: PositionSide, opened_for: datetime, attempt: int = 0
) -> str:
    """A 16-hex-char position id, deterministic in (account, symbol, side, wave time, attempt)."""
    key = f"{account}|{symbol}|{position_side.value}|{opened_for.isoformat()}|{attempt}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def client_order_id(position_id: str, role: OrderRole, seq: int = 0) -> str:
    """``tb-<position_id>-<role letter><seq>``, e.g. ``tb-3f2a9c0d11e4b7a2-S3``.

    Raises:
        ValueError: if the result would not be venue-legal (too long, bad characters).
    """
    if seq < 0:
        raise ValueError("seq must be >= 0")
    cid = f"tb-{position_id}-{role.value}{seq}"
    if not CLIENT_ID_RE.match(cid):
        raise ValueError(f"client order id not venue-legal: {cid!r}")
    return cid


def parse_client_order_id(cid: str) -> tuple[str, OrderRole, int] | None:
    """Inverse of :func:`client_order_id`; None for ids that are not ours."""
    m = re.match(r"^tb-([0-9a-f]{1,24})-([A-Z])(\d+)$", cid)
    if not m:
        return None
    try:
        role = OrderRole(m.group(2))
    except ValueError:
        return None
    return m.group(1), role, int(m.group(3))
