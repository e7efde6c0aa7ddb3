"""Load the bundled instrument rules (``tradebot/data/market/instruments.json``)."""

from __future__ import annotations

import json
from importlib import resources

from tradebot.domain import Instrument, InstrumentStatus
from tradebot.money import to_decimal

__all__ = ["load_instruments"]


def load_instruments(text: str | None = None) -> dict[str, Instrument]:
    """Parse instruments JSON (a list of ``{symbol, tick_size, qty_step, min_qty,
    min_notional, status}`` with decimal strings) into ``Instrument`` by symbol.

    Args:
        text: the JSON text; None reads the bundled ``tradebot/data/market/instruments.json``.

    Raises:
        ValueError / TypeError: malformed entries (with the symbol in the message).
    """
    if text is None:
        text = (resources.files("tradebot") / "data" / "market" / "instruments.json").read_text()
    out: dict[str, Instrument] = {}
    for row in json.loads(text):
        sym = str(row["symbol"])
        out[sym] = Instrument(
            symbol=sym,
            tick_size=to_decimal(row["tick_size"], field=f"{sym}.tick_size"),
            qty_step=to_decimal(row["qty_step"], field=f"{sym}.qty_step"),
            min_qty=to_decimal(row["min_qty"], field=f"{sym}.min_qty"),
            min_notional=to_decimal(row["min_notional"], field=f"{sym}.min_notional"),
            status=InstrumentStatus(row.get("status", "TRADING")),
        )
    return out
