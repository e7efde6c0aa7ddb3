"""Telegram Bot API client (httpx): ``sendMessage`` and ``getUpdates`` long polling.

Implements the chat port the Alerter uses (:class:`actors.ops.ChatPort`). Requests go to
``<api_url>/bot<token>/<method>`` (https://core.telegram.org/bots/api); the token is in
the path, so no error raised here carries the URL: a :class:`TelegramError` names only the
method and what went wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

__all__ = ["TelegramBot", "TelegramError"]


class TelegramError(Exception):
    """A Bot API call failed (network, HTTP status, or ``ok: false``); no secrets inside."""


class TelegramBot:
    """One bot's Bot API client.

    Args:
        api_url: base URL (``https://api.telegram.org``; a loopback stand-in in tests).
        token: the bot token (secret).
        timeout_s: connect/read timeout of ``sendMessage``, seconds.
        transport: an httpx transport (tests).
    """

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base = f"{api_url.rstrip('/')}/bot{token}/"
        self._timeout_s = timeout_s
        self._client = httpx.AsyncClient(transport=transport, timeout=timeout_s)

    async def _call(self, method: str, body: Mapping[str, Any], timeout_s: float) -> Any:
        try:
            resp = await self._client.post(self._base + method, json=body, timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise TelegramError(f"{method}: {type(exc).__name__}") from None
        try:
            doc = resp.json()
        except ValueError:
            raise TelegramError(f"{method}: HTTP {resp.status_code}, not JSON") from None
        if resp.status_code != 200 or not isinstance(doc, dict) or doc.get("ok") is not True:
            desc = doc.get("description", "") if isinstance(doc, dict) else ""
            raise TelegramError(f"{method}: HTTP {resp.status_code} {str(desc)[:200]}")
        return doc.get("result")

    async def send_message(self, chat_id: str, text: str) -> None:
        """Send ``text`` (<= 4096 characters are kept) to ``chat_id``.

        Raises:
            TelegramError: the message was not accepted.
        """
        await self._call(
            "sendMessage",
            {"chat_id": chat_id, "text": text[:4096], "disable_web_page_preview": True},
            self._timeout_s,
        )

    async def get_updates(self, offset: int, timeout_s: int) -> Sequence[Mapping[str, Any]]:
        """Long-poll for updates after ``offset`` (waits up to ``timeout_s`` seconds).

        Raises:
            TelegramError: the call failed.
        """
        result = await self._call(
            "getUpdates",
            {"offset": offset, "timeout": timeout_s, "allowed_updates": ["message"]},
            timeout_s + self._timeout_s,
        )
        return [u for u in result if isinstance(u, dict)] if isinstance(result, list) else []

    async def aclose(self) -> None:
        await self._client.aclose()
