"""The one codec between payload classes and the JSON-safe ``data`` of an event.

:func:`encode` turns a payload into the JSON-safe mapping stored in ``Event.data`` (and in
``events.data``): Decimal → exact string, datetime → ISO-8601, enums → their value
(:class:`~tradebot.domain.OrderRole` → its name, e.g. ``"TAKE_PROFIT"``), tuples → lists,
every declared field present (None where absent). :func:`decode_data` is the inverse and
the validator: the data must have every required field, no undeclared key, and values of
the declared types (no float for money, no bool for a number, aware times only, finite
decimals), else :class:`EventSchemaError` names each offending key.

Built on one ``cattrs`` converter (``forbid_extra_keys``) with strict hooks for the
primitives (cattrs' defaults would coerce ``"5"`` to 5 and anything to ``str``).
A field whose data key differs from its Python name declares it in the field metadata
(``attrs.field(metadata={"key": "retCode"})``, the venue's name).
"""

from __future__ import annotations

import collections.abc
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.v import format_exception

from tradebot.domain import OrderRole
from tradebot.events._base import PAYLOADS, Payload
from tradebot.events._catalog import EventType
from tradebot.events._json import jsonable

__all__ = ["EventSchemaError", "decode", "decode_data", "encode"]


class EventSchemaError(ValueError):
    """An event's data does not match its payload class.

    Attributes:
        event_type: the event's type.
        errors: one line per problem, with the key path (``data.qty``).
    """

    def __init__(self, event_type: EventType | str, errors: list[str]) -> None:
        self.event_type = event_type
        self.errors = errors
        name = event_type.value if isinstance(event_type, EventType) else str(event_type)
        cls = PAYLOADS.get(event_type) if isinstance(event_type, EventType) else None
        what = f" does not match {cls.__name__}" if cls is not None else ""
        super().__init__(f"event {name}: data{what}: " + "; ".join(errors))


# -- strict primitive hooks ----------------------------------------------------------------


def _type_name(value: Any) -> str:
    return type(value).__name__


def _str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {_type_name(value)}")
    return value


def _int(value: Any, _: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {_type_name(value)}")
    return value


def _float(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {_type_name(value)}")
    return float(value)


def _bool(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {_type_name(value)}")
    return value


def _decimal(value: Any, _: Any) -> Decimal:
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        try:
            d = Decimal(value.strip() if isinstance(value, str) else value)
        except InvalidOperation:
            raise ValueError(f"not a decimal: {value!r}") from None
    else:
        raise TypeError(f"expected a decimal string, got {_type_name(value)}")
    if not d.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    return d


def _datetime(value: Any, _: Any) -> datetime:
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO-8601 time: {value!r}") from None
    else:
        raise TypeError(f"expected an ISO-8601 time string, got {_type_name(value)}")
    if ts.tzinfo is None:
        raise ValueError(f"time without a UTC offset: {value!r}")
    return ts


def _order_role(value: Any, _: Any) -> OrderRole:
    if isinstance(value, str):
        for role in OrderRole:
            if value in (role.name, role.value):
                return role
    raise ValueError(f"not an OrderRole name: {value!r}")


def _is_json_object(t: Any) -> bool:
    origin = typing.get_origin(t)
    return origin in (dict, collections.abc.Mapping) and typing.get_args(t)[1:] == (Any,)


def _json_object(value: Any, _: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise TypeError(f"expected a JSON object, got {_type_name(value)}")
    return dict(value)


def _is_homogeneous_tuple(t: Any) -> bool:
    args = typing.get_args(t)
    return typing.get_origin(t) is tuple and len(args) == 2 and args[1] is Ellipsis


def _make_converter(detailed: bool) -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=detailed)
    for tp, hook in (
        (str, _str),
        (int, _int),
        (float, _float),
        (bool, _bool),
        (Decimal, _decimal),
        (datetime, _datetime),
        (OrderRole, _order_role),
    ):
        conv.register_structure_hook(tp, hook)
    conv.register_unstructure_hook(Decimal, str)
    conv.register_unstructure_hook(datetime, lambda ts: ts.isoformat())
    conv.register_unstructure_hook(OrderRole, lambda role: role.name)
    conv.register_structure_hook_func(_is_json_object, _json_object)
    conv.register_unstructure_hook_func(_is_json_object, jsonable)
    conv.register_structure_hook_func(lambda t: t is Any, lambda v, _: v)
    conv.register_unstructure_hook_func(lambda t: t is Any, jsonable)

    def structure_tuple(value: Any, t: Any) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a list, got {_type_name(value)}")
        elem = typing.get_args(t)[0]
        return tuple(conv.structure(v, elem) for v in value)

    conv.register_structure_hook_func(_is_homogeneous_tuple, structure_tuple)
    conv.register_unstructure_hook_func(
        _is_homogeneous_tuple,
        lambda value: [conv.unstructure(v) for v in value],
    )

    def renames(cls: type) -> dict[str, Any]:
        return {
            a.name: override(rename=a.metadata["key"])
            for a in attrs.fields(cls)
            if "key" in a.metadata
        }

    def structure_factory(cls: type) -> Callable[[Any, Any], Any]:
        return make_dict_structure_fn(
            cls,
            conv,
            _cattrs_forbid_extra_keys=True,
            _cattrs_detailed_validation=detailed,
            **renames(cls),
        )

    def unstructure_factory(cls: type) -> Callable[[Any], Any]:
        return make_dict_unstructure_fn(cls, conv, **renames(cls))

    conv.register_structure_hook_factory(attrs.has, structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return conv


# Validation takes the fast path; only a failure is structured again for the messages.
_FAST = _make_converter(detailed=False)
_DETAILED = _make_converter(detailed=True)


def encode(p: Payload) -> dict[str, Any]:
    """The JSON-safe ``data`` of payload ``p`` (see the module docstring)."""
    data: dict[str, Any] = _FAST.unstructure(p)
    return data


def decode_data(event_type: EventType, data: Mapping[str, Any]) -> Payload:
    """The payload of an event of ``event_type`` from its JSON-form ``data``.

    Raises:
        EventSchemaError: ``data`` is not a mapping, misses a required field, has a key the
            class does not declare, or a value of the wrong type (each problem listed with
            its key path).
    """
    cls = PAYLOADS[event_type]
    if not isinstance(data, Mapping):
        raise EventSchemaError(event_type, [f"expected a JSON object, got {_type_name(data)}"])
    try:
        result: Payload = _FAST.structure(data, cls)
        return result
    except Exception:
        pass
    try:
        result = _DETAILED.structure(data, cls)
    except Exception as exc:
        raise EventSchemaError(
            event_type, cattrs.transform_error(exc, path="data", format_exception=_format)
        ) from None
    return result  # pragma: no cover - the fast path refused what the detailed one took


def _format(exc: BaseException, tp: Any) -> str:
    # the strict hooks above say exactly what was wrong; keep their words
    if type(exc) in (TypeError, ValueError) and str(exc):
        return str(exc)
    return format_exception(exc, tp)


class _HasData(Protocol):
    @property
    def type(self) -> EventType: ...
    @property
    def data(self) -> Mapping[str, Any]: ...


def decode(event: _HasData) -> Payload:
    """The typed payload of ``event`` (its ``data`` may hold domain values: they are made
    JSON-safe first, exactly as a journal stores them).

    Raises:
        EventSchemaError: as :func:`decode_data`.
    """
    return decode_data(event.type, jsonable(event.data))
