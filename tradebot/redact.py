"""Secret redaction for logs, journal event data and alerts (docs/ARCHITECTURE.md §10).

Two layers, both applied by :meth:`Redactor.text`:

1. **Known values**: the values of the environment variables the config names in its
   ``*_env`` keys (API key and secret, Telegram token, signal token, control token) and the
   password of ``$TRADEBOT_DSN`` are replaced wherever they appear, verbatim (values
   shorter than :data:`MIN_SECRET_LEN` characters are ignored: they would mask ordinary
   words).
2. **Shapes** that carry a credential whatever its value:

   * a password in a URL or DSN: ``postgresql://user:PASS@host`` → ``user:****@``;
     ``password=PASS`` in a key=value DSN → ``password=****``;
   * credential query parameters: ``?token=…``, ``&api_key=…``, ``apikey``, ``key``,
     ``secret``, ``signature``, ``sign``, ``password``, ``access_token``, ``listenKey``
     → ``=****``;
   * a Telegram bot token in a Bot API path: ``/bot123456:ABC…/`` → ``/bot****/``;
   * an ``Authorization: Bearer …`` value → ``Bearer ****``.

:meth:`Redactor.data` walks a JSON-like value (mappings, lists, tuples) and redacts every
string in it, keeping its shape and types (a Decimal stays a Decimal), so redacted event
data still matches its payload class. Mapping values under a key that names a secret
(``password``, ``token``, ``api_key``, ``secret``, ...) are replaced whole.

The replacement marker is :data:`MASK` (``****``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "MASK",
    "MIN_SECRET_LEN",
    "Redactor",
    "dsn_without_password",
    "mask_dsn",
    "secret_values",
]

MASK = "****"
MIN_SECRET_LEN = 6
"""Known secret values shorter than this many characters are not searched for."""

_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]+)(@)")
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
_QUERY = re.compile(
    r"([?&;](?:token|api_?key|key|secret|signature|sign|password|passwd|access_token|"
    r"listenkey|auth)=)([^&#\s\"']+)",
    re.IGNORECASE,
)
_TELEGRAM = re.compile(r"(/bot)(\d+:[A-Za-z0-9_-]+)")
_BEARER = re.compile(r"(\bBearer\s+)([A-Za-z0-9._~+/=-]+)", re.IGNORECASE)
_SECRET_KEYS = re.compile(
    r"^(password|passwd|token|api_?key|api_?secret|secret|signature|authorization|"
    r"telegram_token|control_token)$",
    re.IGNORECASE,
)


def mask_dsn(dsn: str) -> str:
    """``dsn`` with its password (URI or ``password=`` form) replaced by ``****``."""
    return _KV_PASSWORD.sub(rf"\g<1>{MASK}", _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", dsn))


def dsn_without_password(dsn: str) -> str:
    """``dsn`` with its password removed (``user:PASS@`` → ``user@``, ``password=PASS``
    dropped): a hint a user can paste, with the password supplied by ``PGPASSWORD`` or
    ``~/.pgpass``."""
    out = _URL_PASSWORD.sub(lambda m: m.group(1)[:-1] + "@", dsn)
    return re.sub(r"\s{2,}", " ", _KV_PASSWORD.sub("", out)).strip()


class Redactor:
    """Replaces secrets in text and in JSON-like data (see the module docstring).

    Args:
        secrets: known secret values (short or empty ones are ignored).

    Thread-safe after construction (immutable); :meth:`add` returns a new Redactor.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len)
        self._secrets: tuple[str, ...] = tuple(reversed(values))  # longest first
        self._known = (
            re.compile("|".join(re.escape(s) for s in self._secrets)) if self._secrets else None
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def add(self, *secrets: str) -> Redactor:
        """A Redactor that also knows ``secrets``."""
        return Redactor((*self._secrets, *secrets))

    def text(self, value: str) -> str:
        """``value`` with every known secret and credential shape masked."""
        if self._known is not None:
            value = self._known.sub(MASK, value)
        if ":" in value or "=" in value or "Bearer" in value or "bearer" in value:
            value = _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", value)
            value = _KV_PASSWORD.sub(rf"\g<1>{MASK}", value)
            value = _QUERY.sub(rf"\g<1>{MASK}", value)
            value = _TELEGRAM.sub(rf"\g<1>{MASK}", value)
            value = _BEARER.sub(rf"\g<1>{MASK}", value)
        return value

    def data(self, value: Any) -> Any:
        """``value`` (str, mapping, list, tuple, or anything else) with secrets masked;
        the same object when nothing changed (cheap for the common case)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            changed = False
            for k, v in value.items():
                nv = (
                    MASK
                    if isinstance(k, str) and isinstance(v, str) and v and _SECRET_KEYS.match(k)
                    else self.data(v)
                )
                changed = changed or nv is not v
                out[k] = nv
            return out if changed else value
        if isinstance(value, (list, tuple)):
            items = [self.data(v) for v in value]
            if all(a is b for a, b in zip(items, value, strict=True)):
                return value
            return type(value)(items) if isinstance(value, tuple) else items
        return value


def secret_values(env_names: Iterable[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of the named environment variables that are set, plus the password of
    ``$TRADEBOT_DSN`` when it has one (for :class:`Redactor`)."""
    env = os.environ if environ is None else environ
    out = [env[n] for n in env_names if n and env.get(n)]
    dsn = env.get("TRADEBOT_DSN", "")
    for m in _URL_PASSWORD.finditer(dsn):
        out.append(m.group(2))
    for m in _KV_PASSWORD.finditer(dsn):
        out.append(m.group(2).strip("'"))
    return out
