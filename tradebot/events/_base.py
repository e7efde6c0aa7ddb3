"""The payload base class and the registry EventType → payload class."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, TypeVar

import attrs

from tradebot.domain import PositionSide
from tradebot.events._catalog import EventType

__all__ = ["PAYLOADS", "Payload", "PositionScoped", "payload", "payload_class"]

P = TypeVar("P", bound="Payload")

PAYLOADS: dict[EventType, type[Payload]] = {}
"""Every event type → its one payload class (filled by :func:`payload` at import)."""


class Payload:
    """Base of the typed event payloads (the ``data`` of one event type).

    Subclasses are ``@attrs.frozen(kw_only=True)`` classes registered with
    :func:`payload`. Conventions: prices in USDT (quote currency), quantities in base units,
    money as :class:`~decimal.Decimal` (a JSON string in ``data``), times as aware UTC
    :class:`~datetime.datetime` (ISO-8601 in ``data``), units as name suffixes (``_s``,
    ``_ms``, ``_pct``, ``_usdt``, ``_h``). An optional field has a default; every other
    field is required. No payload accepts keys it does not declare.
    """

    __slots__ = ()
    EVENT_TYPE: ClassVar[EventType]
    """The event type this class is the payload of (set by :func:`payload`)."""


@attrs.frozen(kw_only=True)
class PositionScoped(Payload):
    """Fields of every event the PositionActor emits.

    Attributes:
        position_side: the position's side; the PositionActor adds it to every event's data.
    """

    position_side: PositionSide | None = None


def payload(event_type: EventType) -> Callable[[type[P]], type[P]]:
    """Class decorator: register the payload class of ``event_type``.

    Raises:
        TypeError: the type already has a class, or the class is registered twice.
    """

    def register(cls: type[P]) -> type[P]:
        if event_type in PAYLOADS:
            raise TypeError(
                f"{event_type} already has payload class {PAYLOADS[event_type].__name__}"
            )
        if "EVENT_TYPE" in cls.__dict__:
            raise TypeError(f"{cls.__name__} is already the payload of {cls.EVENT_TYPE}")
        if getattr(cls, "__attrs_attrs__", None) is None:
            raise TypeError(f"{cls.__name__} must be an attrs class")
        type.__setattr__(cls, "EVENT_TYPE", event_type)
        PAYLOADS[event_type] = cls
        return cls

    return register


def payload_class(event_type: EventType) -> type[Payload]:
    """The payload class of ``event_type``.

    Raises:
        KeyError: no class is registered (every :class:`EventType` has one; a test checks).
    """
    return PAYLOADS[event_type]
