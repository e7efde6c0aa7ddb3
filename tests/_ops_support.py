"""A live-like account with its operations surface: the real Bybit adapter against the
in-process Bybit sandbox over loopback, the PostgreSQL journal (embedded server) behind a
JournalTap, ``open_account`` and ``open_operations`` with the HTTP server on a free port."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
from _bybit_support import KEY, SECRET, D, bybit_env, until

from actors.account import Account, open_account
from actors.ops import ChatPort, JournalTap, Operations, SdNotifier, open_operations
from actors.runtime import RestartPolicy
from adapters.bybit import BybitVenue
from adapters.bybit_sandbox import BybitSandbox
from adapters.postgres.journal import open_postgres_journal
from tradebot.clock import WallClock
from tradebot.config import AlertsConfig, HealthConfig
from tradebot.domain import PositionSide
from tradebot.ids import position_id_for
from tradebot.policies import PositionSettings, ProtectionSettings
from tradebot.ports import OpenRequest
from tradebot.redact import Redactor

CONTROL_TOKEN = "ctl-token-7f3a9c1e5b"
TELEGRAM_TOKEN = "123456789:AAH-telegram-secret-token-x9"
T0 = datetime(2025, 5, 20, tzinfo=UTC)
SECRETS = (KEY, SECRET, CONTROL_TOKEN, TELEGRAM_TOKEN)


@attrs.define
class OpsSession:
    sb: BybitSandbox
    venue: BybitVenue
    account: Account
    ops: Operations
    tap: JournalTap
    dsn: str


def request_for(symbol: str, side: PositionSide, qty: str, price: str) -> OpenRequest:
    return OpenRequest(
        position_id=position_id_for("ops-test", symbol, side, T0),
        symbol=symbol,
        position_side=side,
        qty=D(qty),
        reference_price=D(price),
        signal_id=f"sig-{symbol}-{side.value}",
        wave_ts=T0,
    )


@asynccontextmanager
async def ops_session(
    dsn: str,
    spool: Path,
    *,
    chat: ChatPort | None = None,
    chat_id: str = "",
    alerts: AlertsConfig | None = None,
    notifier: SdNotifier | None = None,
    verify_interval_s: float = 1.0,
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    **ops_kwargs: Any,
) -> AsyncIterator[OpsSession]:
    redactor = Redactor(SECRETS)
    settings = PositionSettings(protection=ProtectionSettings(verify_interval_s=verify_interval_s))
    async with open_postgres_journal(dsn, spool_dir=spool) as pg:
        tap = JournalTap(pg, redactor)
        async with bybit_env(journal=tap, hedge=True) as (sb, venue):
            await venue.sync_time()
            instruments = await venue.instruments()
            policy = RestartPolicy(max_restarts=3, window_s=60, backoff_initial_s=0.1, jitter=0.0)
            async with (
                open_account(
                    port=venue,
                    journal=tap,
                    clock=WallClock(),
                    instruments=instruments,
                    settings=settings,
                    leverage={s: 5 for s in symbols},
                    market_symbols=list(symbols),
                    policy=policy,
                ) as account,
                open_operations(
                    account,
                    tap,
                    health=HealthConfig(port=0, market_stale_s=30.0),
                    alerts=alerts or AlertsConfig(),
                    settings=settings,
                    control_token=CONTROL_TOKEN,
                    chat=chat,
                    chat_id=chat_id,
                    account_name="ops-test",
                    mode="live",
                    notifier=notifier or SdNotifier(environ={}),
                    tick_s=0.2,
                    **ops_kwargs,
                ) as ops,
            ):
                await until(lambda: all(account.market.latest(s) for s in symbols))
                await until(
                    lambda: sb.subscriptions("private") == [{"order", "execution", "position"}]
                )
                yield OpsSession(sb, venue, account, ops, tap, dsn)


def secrets_in(text: str) -> list[str]:
    """The test secrets that appear in ``text``."""
    return [s for s in SECRETS if s in text]


def scan_env() -> Mapping[str, str]:
    return dict(os.environ)
