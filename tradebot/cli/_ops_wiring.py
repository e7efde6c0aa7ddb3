"""Wiring of the operations surface from a config (``tradebot run``, ``tradebot paper
--speed realtime --ops``).

:func:`ops_journal` wraps the account's journal in a :class:`actors.ops.JournalTap` whose
redactor knows every secret the config names; :func:`open_ops_from_config` starts
:func:`actors.ops.open_operations` with the ``[health]`` / ``[alerts]`` settings, the
control token and the Telegram client (when ``alerts.enabled``), and installs the JSON log
handler of ``[logging]`` with the same redactor.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from tradebot.config import Config
from tradebot.redact import Redactor, secret_values

__all__ = ["ops_journal", "open_ops_from_config", "redactor_for"]


def redactor_for(cfg: Config, environ: Mapping[str, str] | None = None) -> Redactor:
    """A redactor of every secret value ``cfg`` reads from the environment (plus the
    ``$TRADEBOT_DSN`` password and the credential shapes)."""
    return Redactor(secret_values(cfg.secret_env_names(), environ))


def ops_journal(journal: Any, cfg: Config, environ: Mapping[str, str] | None = None) -> Any:
    """``journal`` wrapped in a JournalTap with :func:`redactor_for` ``(cfg)``."""
    from actors.ops import JournalTap

    return JournalTap(journal, redactor_for(cfg, environ))


@asynccontextmanager
async def open_ops_from_config(
    cfg: Config,
    account: Any,
    tap: Any,
    *,
    mode: str,
    environ: Mapping[str, str] | None = None,
    setup_logs: bool = True,
) -> AsyncIterator[Any]:
    """Run :func:`actors.ops.open_operations` for ``account`` (built on ``tap``) from
    ``cfg``; yields the :class:`actors.ops.Operations`.

    Raises:
        ConfigError: ``alerts.enabled`` and its token / chat id variables are unset.
        OSError: the HTTP server cannot bind ``health.host:health.port``.
    """
    from actors.ops import open_operations
    from tradebot.config import resolve_secret
    from tradebot.logs import setup_logging

    env = os.environ if environ is None else environ
    if setup_logs:
        setup_logging(cfg.logging.level, cfg.logging.format, tap.redactor)
    chat = None
    chat_id = ""
    if cfg.alerts.enabled:
        from adapters.telegram import TelegramBot

        token = resolve_secret(cfg.alerts.telegram_token_env, env)
        chat_id = resolve_secret(cfg.alerts.telegram_chat_id_env, env)
        chat = TelegramBot(cfg.alerts.telegram_api_url, token)
    try:
        async with open_operations(
            account,
            tap,
            health=cfg.health,
            alerts=cfg.alerts,
            settings=cfg.position_settings(),
            control_token=env.get(cfg.health.control_token_env, ""),
            chat=chat,
            chat_id=chat_id,
            account_name=cfg.bot.account,
            mode=mode,
        ) as ops:
            yield ops
    finally:
        if chat is not None:
            await chat.aclose()
