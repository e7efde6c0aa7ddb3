"""cattrs machinery of :mod:`tradebot.config`: strict scalar hooks, one structure function
per settings record whose field hooks check each field's own definition (its
:class:`~tradebot.bounds.Bound` or attrs validator), and the translation of cattrs' error
tree into ``(key_path, reason)`` pairs with :func:`cattrs.transform_error`.
"""

from __future__ import annotations

import decimal
import difflib
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Literal, NewType

import attrs
import cattrs
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, override

from tradebot.bounds import BOUND, Bound, CrossFieldError, FieldValueError, is_config_key
from tradebot.signals._settings import WaveSettings

__all__ = ["CONVERTER", "LEVERAGE", "Leverage", "config_keys", "problems_of"]

#: Leverage of one symbol, 1..125 (the highest leverage Bybit and Binance offer on any
#: USDT perpetual; each symbol's own cap is in its instrument rules).
Leverage = NewType("Leverage", int)
LEVERAGE = Bound("integer", low="1", high="125")


def config_keys(record: type) -> list[str]:
    """The config-file keys of a section record (its fields minus ``CONFIG=False`` ones)."""
    return [f.name for f in attrs.fields(record) if is_config_key(f)]


# -- structuring: strict scalar hooks ------------------------------------------------------


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _s_decimal(value: Any, _: type) -> Decimal:
    # NaN / Infinity parse here; every decimal field's Bound refuses them with its range.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"expected a decimal string, got {_describe(value)}")
    try:
        return Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except decimal.InvalidOperation:
        raise ValueError(f"expected a decimal string, got {_describe(value)}") from None


def _s_opt_decimal(value: Any, _: type) -> Decimal | None:
    if value is None or (isinstance(value, str) and value.strip() in ("", "off")):
        return None
    return _s_decimal(value, Decimal)


def _s_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {_describe(value)}")
    return value


def _s_leverage(value: Any, _: type) -> Leverage:
    n = _s_int(value, int)
    reason = LEVERAGE.problem(n)
    if reason is not None:
        raise ValueError(f"{reason} (got {value!r})")
    return Leverage(n)


def _s_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {_describe(value)}")
    return float(value)


def _s_opt_float(value: Any, _: type) -> float | None:
    if value is None or (isinstance(value, str) and value.strip() in ("", "off")):
        return None
    return _s_float(value, float)


def _s_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_describe(value)}")
    return value


def _s_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_describe(value)}")
    return value


def _is_literal(t: Any) -> bool:
    return typing.get_origin(t) is Literal


def _s_literal(value: Any, t: Any) -> Any:
    choices = typing.get_args(t)
    if value not in choices:
        raise ValueError(f"expected one of {', '.join(map(repr, choices))}, got {_describe(value)}")
    return value


# -- structuring: one function per record, range-checking field hooks ----------------------

_NUMERIC = (Decimal, int, float, Decimal | None, float | None)
_ARRAYS = (tuple, frozenset, list, set)


def _field_hook(conv: cattrs.Converter, field: attrs.Attribute[Any]) -> Callable[[Any, Any], Any]:
    """Structure one field, then check it against its own definition: its :class:`Bound`
    and its attrs validator. Raised here, a problem carries cattrs' attribute note, so
    every field's problem is reported at once under its key path."""
    bound: Bound | None = field.metadata.get(BOUND)
    validator = field.validator
    origin = typing.get_origin(field.type)
    base: list[Callable[[Any, Any], Any]] = []  # resolved on first use (nested records)

    def hook(value: Any, t: Any) -> Any:
        if origin in _ARRAYS and not isinstance(value, list):
            raise ValueError(f"expected an array, got {_describe(value)}")
        if origin is dict and not isinstance(value, Mapping):
            raise ValueError(f"expected a table, got {_describe(value)}")
        if not base:
            base.append(conv.get_structure_hook(t))
        out = base[0](value, t)
        if bound is not None:
            reason = bound.problem(out)
            if reason is not None:
                raise ValueError(f"{reason} (got {value!r})")
        elif validator is not None:
            validator(None, field, out)
        return out

    return hook


def _record_hook(conv: cattrs.Converter, cl: type) -> Callable[[Any, Any], Any]:
    attrs.resolve_types(cl)
    overrides: dict[str, Any] = {}  # field name -> cattrs AttributeOverride
    for f in attrs.fields(cl):
        if not is_config_key(f):
            overrides[f.name] = override(omit=True)
            continue
        if f.type in _NUMERIC and BOUND not in f.metadata:  # pragma: no cover - dev error
            raise TypeError(f"{cl.__name__}.{f.name}: numeric setting without a Bound")
        overrides[f.name] = override(struct_hook=_field_hook(conv, f))
    inner: Callable[[Any, Any], Any] = make_dict_structure_fn(cl, conv, **overrides)

    def hook(value: Any, t: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a table, got {_describe(value)}")
        return inner(value, t)

    return hook


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(Decimal, _s_decimal)
    conv.register_structure_hook(Decimal | None, _s_opt_decimal)  # type: ignore[arg-type]
    conv.register_structure_hook(float | None, _s_opt_float)  # type: ignore[arg-type]
    conv.register_structure_hook(int, _s_int)
    conv.register_structure_hook(Leverage, _s_leverage)
    conv.register_structure_hook(float, _s_float)
    conv.register_structure_hook(bool, _s_bool)
    conv.register_structure_hook(str, _s_str)
    conv.register_structure_hook_func(_is_literal, _s_literal)
    conv.register_structure_hook_factory(attrs.has, lambda cl: _record_hook(conv, cl))
    return conv


CONVERTER = _make_converter()


# -- errors: cattrs' paths, our reasons ----------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# fields of a section record that another section sets
_SET_ELSEWHERE: dict[tuple[type, str], str] = {
    (WaveSettings, "account"): "bot.account",
    (WaveSettings, "risk"): "[risk]",
}


def _unknown_key(path: str, record: type, key: str) -> tuple[str, str]:
    elsewhere = _SET_ELSEWHERE.get((record, key))
    if elsewhere is not None:
        return _join(path, key), f"unknown key (set by {elsewhere})"
    close = difflib.get_close_matches(key, config_keys(record), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return _join(path, key), f"unknown key{hint}"


def _reasons(exc: BaseException, path: str) -> list[tuple[str, str]]:
    """One leaf exception of cattrs' error tree at key ``path`` → ``(key, reason)``."""
    if isinstance(exc, ForbiddenExtraKeysError):
        return [_unknown_key(path, exc.cl, k) for k in sorted(exc.extra_fields)]
    if isinstance(exc, CrossFieldError):
        prefix = f"{path}." if path else ""
        return [(_join(path, exc.key), exc.reason(prefix))]
    if isinstance(exc, FieldValueError):
        return [(path, exc.reason)]
    if isinstance(exc, KeyError):
        return [(path, "required key is missing")]
    if isinstance(exc, (ValueError, TypeError, ArithmeticError)):
        return [(path, str(exc) or type(exc).__name__)]
    return [(path, f"{type(exc).__name__}: {exc}")]


def problems_of(exc: Exception) -> list[tuple[str, str]]:
    """cattrs' validation error → ``(key_path, reason)`` pairs via
    :func:`cattrs.transform_error`: it walks the tree and builds each path; our formatter
    only files each leaf exception and hands back its index as the "message"."""
    leaves: list[BaseException] = []

    def file(leaf: BaseException, _type: Any) -> str:
        leaves.append(leaf)
        return str(len(leaves) - 1)

    problems: list[tuple[str, str]] = []
    for line in cattrs.transform_error(exc, "$", file):
        index, _, where = line.partition(" @ ")  # our index never contains " @ "
        path = where.removeprefix("$").removeprefix(".")
        problems.extend(_reasons(leaves[int(index)], path))
    return problems
