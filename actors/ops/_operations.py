"""``open_operations``: the operations surface of one running account.

Starts, in its own nursery (inside the account's lifetime):

* the :class:`OpsState` observer on the journal tap (health + metrics);
* the HTTP server (``/health``, ``/metrics``, ``/``, ``/control/*``) when
  ``health.enabled``;
* the supervised :class:`Alerter` (Telegram sender and command poller when a chat port is
  given);
* the health loop: every ``tick_s`` it refreshes the state, sends ``WATCHDOG=1`` every
  watchdog interval, ``STATUS=…`` when the health summary changes, and asks the Alerter
  for its periodic check. The watchdog ping does not depend on health (a stream outage
  must not get the process killed while it manages positions); a hung event loop stops
  the pings and systemd restarts the process.

The launcher calls :meth:`Operations.ready` once start-up and reconciliation are done
(``READY=1``) and :meth:`Operations.stopping` when its graceful stop begins
(``STOPPING=1``; also sent when the block exits). Nothing here can stop trading: a failure
inside the loop is logged and the loop goes on.

Integration (``tradebot run``)::

    tap = JournalTap(journal, redactor)
    async with open_account(port=venue, journal=tap, ...) as account:
        async with open_operations(account, tap, cfg=..., ...) as ops:
            ... reconcile ...
            ops.ready()
            await shutdown_requested.wait()
            ops.stopping()
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from actors.account import Account
from actors.ops._alerter import Alerter, ChatPort, CheckNow
from actors.ops._control import Operator
from actors.ops._http import OpsApp, serve_ops
from actors.ops._notify import SdNotifier
from actors.ops._state import OpsState
from actors.ops._tap import JournalTap
from actors.runtime import Address, ChildSpec, RestartPolicy, journal_sink, supervise
from tradebot.config import AlertsConfig, HealthConfig
from tradebot.errors import ActorStopped, MailboxFull
from tradebot.policies import PositionSettings

__all__ = ["Operations", "open_operations"]

_log = logging.getLogger("tradebot.ops")


@attrs.define
class Operations:
    """The running operations surface (yielded by :func:`open_operations`).

    Attributes:
        state: health, metrics, positions view.
        operator: the operator commands.
        notifier: the sd_notify sender.
        url: base URL of the HTTP server (``http://127.0.0.1:8787``), "" when disabled.
        alerter: the Alerter's address.
    """

    state: OpsState
    operator: Operator
    notifier: SdNotifier
    url: str
    alerter: Address[object]
    _stopping: bool = False

    def ready(self, status: str = "running") -> None:
        """``READY=1``: start-up (and reconciliation) are done."""
        self.notifier.ready(status)

    def stopping(self, status: str = "stopping") -> None:
        """``STOPPING=1``: the graceful stop began (idempotent)."""
        if not self._stopping:
            self._stopping = True
            self.notifier.stopping(status)


@asynccontextmanager
async def open_operations(
    account: Account,
    tap: JournalTap,
    *,
    health: HealthConfig,
    alerts: AlertsConfig,
    settings: PositionSettings,
    control_token: str = "",
    chat: ChatPort | None = None,
    chat_id: str = "",
    account_name: str = "",
    mode: str = "",
    notifier: SdNotifier | None = None,
    tick_s: float = 1.0,
    policy: RestartPolicy | None = None,
) -> AsyncIterator[Operations]:
    """Run the operations surface of ``account`` for the duration of the block.

    Args:
        account: the running account (``open_account``), built on ``tap``.
        tap: the journal tap the account journals through.
        health / alerts: ``[health]`` / ``[alerts]`` settings.
        settings: the account's position settings (verify interval, aged schedule).
        control_token: the control API bearer token ("" = control API refuses all).
        chat: Telegram client (``adapters.telegram.TelegramBot``), None = no Telegram.
        chat_id: the alert chat id (allowlisted for commands with
            ``alerts.command_chat_ids``).
        account_name / mode: shown by the status page and ``tradebot status``.
        notifier: sd_notify sender (default: from ``$NOTIFY_SOCKET`` / ``$WATCHDOG_USEC``,
            period ``health.watchdog_interval_s`` without them).
        tick_s: health loop period, seconds (> 0); the watchdog period caps it.
        policy: restart policy of the Alerter (default ``RestartPolicy()``).

    Yields:
        :class:`Operations`.

    Raises:
        OSError: the HTTP server cannot bind ``health.host:health.port``.
    """
    notifier = notifier or SdNotifier(default_interval_s=health.watchdog_interval_s)
    state = OpsState(
        account=account,
        clock=account.clock,
        settings=settings,
        health=health,
        alerts=alerts,
        account_name=account_name,
        mode=mode,
    )
    operator = Operator(state)
    unsubscribe = [tap.observe(state.on_event)]
    current: dict[str, Alerter] = {}

    def make_alerter() -> Alerter:
        a = Alerter(
            settings=alerts,
            state=state,
            operator=operator,
            chat=chat,
            chat_id=chat_id,
            allowed_chat_ids=alerts.chat_ids(),
            redact=tap.redactor.text,
        )
        current["a"] = a
        return a

    def observe(ev: object) -> None:
        a = current.get("a")
        if a is not None:
            a.observe(ev)  # type: ignore[arg-type]

    unsubscribe.append(tap.observe(observe))
    shutdown = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            sup = await nursery.start(
                supervise,
                [ChildSpec("alerter", make_alerter)],
                policy or RestartPolicy(),
                journal_sink(tap, account.clock),
            )
            alerter: Address[object] = sup.address("alerter")
            url = ""
            if health.enabled:
                app = OpsApp(state, operator, control_token)
                url = await nursery.start(serve_ops, app, health.host, health.port, shutdown)
            ops = Operations(state, operator, notifier, url, alerter)
            nursery.start_soon(_health_loop, ops, min(tick_s, notifier.interval_s))
            try:
                yield ops
            finally:
                ops.stopping()
                shutdown.set()
                with trio.move_on_after(3) as cs:
                    cs.shield = True
                    await sup.stop(2.0)
                nursery.cancel_scope.cancel()
    finally:
        for u in unsubscribe:
            u()
        notifier.close()


async def _health_loop(ops: Operations, tick_s: float) -> None:
    state, notifier = ops.state, ops.notifier
    last_ping = -1e18
    while True:
        try:
            report = await state.refresh()
            notifier.status(
                ("healthy" if report.ok else "UNHEALTHY: " + "; ".join(report.reasons))[:200]
                + f"; {len(state.positions)} open"
                + ("; entries paused" if state.account.entries.paused else "")
            )
            try:
                ops.alerter.send_nowait(CheckNow())
            except (MailboxFull, ActorStopped):
                pass
        except Exception:
            _log.exception("health loop: refresh failed")
        now = trio.current_time()
        if now - last_ping >= notifier.interval_s * 0.999:
            notifier.watchdog()
            last_ping = now
        await trio.sleep(tick_s)
