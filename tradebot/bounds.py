"""Settings fields declared once: default, unit and valid range on the field itself.

Every settings record — the policy records (``tradebot/policies``), the signal-intake records
(``tradebot/signals/_settings.py``) and the config-only sections
(``tradebot/_config_sections.py``) — declares each numeric field with :func:`decimal_field`,
:func:`int_field` or :func:`number_field`. The unit is the suffix of the field name (``_pct``
percent, 2 = 2 %; ``_usdt`` USDT; ``_s`` seconds; ``_ms`` milliseconds; ``_h`` hours;
``_min`` minutes). The
valid range is a :class:`Bound` in the field's metadata (key :data:`BOUND`), enforced from
that one definition in two places:

- an attrs validator when a record is built in code (``ValueError`` naming the field);
- the config loader (:mod:`tradebot.config`), per field while it structures the TOML, so
  every bad value of a file is reported at once under its key path
  (``risk.position_size_usdt: must be a finite decimal in (0, 1e12] (got '1e400')``).

"Finite" means more than ``Decimal.is_finite()``: NaN and ±Infinity are refused, and every
decimal field has an explicit upper bound, because ``Decimal('1e400')`` is finite yet makes
``quantize`` to a qty step raise ``InvalidOperation`` (the wave processor crash-looped on
``position_size_usdt = "1e400"``).

A rule between fields of one record (``position_size_usdt <= max_exposure_usdt``) raises
:class:`CrossFieldError` from the record's ``__attrs_post_init__``: it names the fields
relatively, so the config loader prints both key paths.

Metadata key :data:`CONFIG` = False marks a field that is not a config-file key (a
resolved secret, a value derived from another section, an internal knob).
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal

import attrs

__all__ = [
    "BOUND",
    "CONFIG",
    "Bound",
    "CrossFieldError",
    "FieldValueError",
    "decimal_field",
    "env_var_name",
    "int_field",
    "is_config_key",
    "number_field",
    "setting",
    "url",
]

BOUND = "tradebot.bound"
CONFIG = "tradebot.config_key"

Kind = Literal["decimal", "integer", "number"]

_ARTICLE = {"decimal": "a finite decimal", "integer": "an integer", "number": "a finite number"}


@attrs.frozen
class Bound:
    """The valid range of one numeric field.

    Attributes:
        kind: ``"decimal"`` (:class:`~decimal.Decimal`: money, prices, percents, fees,
            scores; a TOML string), ``"integer"`` or ``"number"`` (``float``: durations).
        low / high: the limits as written (``"0"``, ``"1e12"``); None = unbounded side.
        low_open / high_open: True excludes the limit (``> low`` / ``< high``).
        optional: None ("off", absent from the file) is allowed.
    """

    kind: Kind
    low: str | None = None
    high: str | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False

    def describe(self) -> str:
        """``a finite decimal in (0, 100)``, ``an integer >= 1``, ... (+ ``or off``)."""
        what = _ARTICLE[self.kind]
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"{what} in {left}{self.low}, {self.high}{right}"
        elif self.low is not None:
            text = f"{what} {'>' if self.low_open else '>='} {self.low}"
        elif self.high is not None:
            text = f"{what} {'<' if self.high_open else '<='} {self.high}"
        else:
            text = what
        return text + (' or "" (off)' if self.optional else "")

    def problem(self, value: Any) -> str | None:
        """None when ``value`` is valid, else the reason (``must be ...``)."""
        if value is None:
            return None if self.optional else f"must be {self.describe()}"
        if not self._in_range(value):
            return f"must be {self.describe()}"
        return None

    def _in_range(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind == "decimal":
            if not isinstance(value, (Decimal, int)):
                return False
            v: Decimal | int | float = value
            if isinstance(value, Decimal) and not value.is_finite():
                return False
        elif self.kind == "integer":
            if not isinstance(value, int):
                return False
            v = value
        else:
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                return False
            v = value
        if self.low is not None:
            low = Decimal(self.low)
            if v < low or (self.low_open and v == low):
                return False
        if self.high is not None:
            high = Decimal(self.high)
            if v > high or (self.high_open and v == high):
                return False
        return True

    def validate(self, _instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        """attrs validator: :class:`FieldValueError` ``<field> must be ... (got <value>)``."""
        reason = self.problem(value)
        if reason is not None:
            raise FieldValueError(attribute.name, f"{reason} (got {value!r})")


class FieldValueError(ValueError):
    """One field's value is invalid.

    Attributes:
        field: the field name.
        reason: ``must be ... (got ...)``, without the field name (the config loader puts
            the key path in front instead).
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field} {reason}")


class CrossFieldError(ValueError):
    """A rule between fields of one record is broken.

    Attributes:
        key: the field reported (relative to the record: ``"position_size_usdt"``,
            ``"levels[1].profit_pct"``).
        template: the reason; ``{0}``, ``{1}``, ... stand for the ``others``.
        others: the other fields of the rule (relative names).

    ``str(exc)`` is ``"<key> <reason>"`` with the relative names; the config loader puts the
    section's key path in front of each name instead.
    """

    def __init__(self, key: str, template: str, others: tuple[str, ...] = ()) -> None:
        self.key = key
        self.template = template
        self.others = others
        super().__init__(f"{key} {self.reason('')}")

    def reason(self, prefix: str) -> str:
        """The reason with each other field written as ``prefix + name``."""
        return self.template.format(*(prefix + o for o in self.others))


def _bound(
    kind: Kind,
    gt: str | None,
    ge: str | None,
    lt: str | None,
    le: str | None,
    optional: bool,
) -> Bound:
    if (gt is not None and ge is not None) or (lt is not None and le is not None):
        raise TypeError("give one of gt/ge and one of lt/le")
    return Bound(
        kind,
        low=gt if gt is not None else ge,
        high=lt if lt is not None else le,
        low_open=gt is not None,
        high_open=lt is not None,
        optional=optional,
    )


def _field(default: Any, bound: Bound, config: bool) -> Any:
    return attrs.field(
        default=default,
        validator=bound.validate,
        metadata={BOUND: bound, CONFIG: config},
    )


def decimal_field(
    default: Any,
    *,
    gt: str | None = None,
    ge: str | None = None,
    lt: str | None = None,
    le: str | None = None,
    optional: bool = False,
    config: bool = True,
) -> Any:
    """A :class:`~decimal.Decimal` field (money, price, percent, fee, score).

    Args:
        default: the default as a decimal string, None (off; needs ``optional``) or
            ``attrs.NOTHING`` (required: no default).
        gt / ge / lt / le: the range, as decimal strings (``"0"``, ``"1e12"``).
        optional: None is a valid value ("off").
        config: whether it is a config-file key (see :data:`CONFIG`).
    """
    return _field(
        default if default is None or default is attrs.NOTHING else Decimal(default),
        _bound("decimal", gt, ge, lt, le, optional),
        config,
    )


def int_field(
    default: int,
    *,
    gt: str | None = None,
    ge: str | None = None,
    lt: str | None = None,
    le: str | None = None,
    config: bool = True,
) -> Any:
    """An ``int`` field (counts, attempts, milliseconds, ports)."""
    return _field(default, _bound("integer", gt, ge, lt, le, False), config)


def number_field(
    default: float | None,
    *,
    gt: str | None = None,
    ge: str | None = None,
    lt: str | None = None,
    le: str | None = None,
    optional: bool = False,
    config: bool = True,
) -> Any:
    """A finite ``float`` field (durations: ``_s``, ``_h``, ``_min``; never money)."""
    return _field(default, _bound("number", gt, ge, lt, le, optional), config)


def setting(
    default: Any = attrs.NOTHING,
    *,
    factory: Callable[[], Any] | None = None,
    validator: Callable[[Any, attrs.Attribute[Any], Any], None] | None = None,
    config: bool = True,
    repr: bool = True,
) -> Any:
    """Any other settings field: a string, a choice, a flag, a collection.

    ``validator`` (an attrs validator) is the one definition of its valid values;
    ``config=False`` keeps it out of the config file.
    """
    if factory is not None:
        return attrs.field(
            factory=factory, validator=validator, metadata={CONFIG: config}, repr=repr
        )
    return attrs.field(default=default, validator=validator, metadata={CONFIG: config}, repr=repr)


def is_config_key(field: attrs.Attribute[Any]) -> bool:
    """Whether a settings field is a key of the config file (metadata :data:`CONFIG`)."""
    return bool(field.metadata.get(CONFIG, True))


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def env_var_name(*, allow_empty: bool = False) -> Validator:
    """attrs validator: the NAME of an environment variable (``[A-Za-z_][A-Za-z0-9_]*``),
    never the secret itself; ``allow_empty``: ``""`` = not used."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if allow_empty and value == "":
            return
        if not isinstance(value, str) or _ENV_NAME.fullmatch(value) is None:
            empty = ' or "" (none)' if allow_empty else ""
            raise FieldValueError(
                attribute.name,
                f"must be an environment variable NAME such as TRADEBOT_API_KEY{empty}, "
                f"never the secret itself (got {value!r})",
            )

    return check


def url(*schemes: str, allow_empty: bool = False) -> Validator:
    """attrs validator: a URL with one of ``schemes`` and a host; ``allow_empty``: ``""`` =
    the default."""

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if allow_empty and value == "":
            return
        ok = isinstance(value, str)
        if ok:
            try:
                parts = urllib.parse.urlsplit(value)
                ok = parts.scheme in schemes and bool(parts.hostname)
                _ = parts.port  # a port that is not a number in 0..65535 raises
            except ValueError:
                ok = False
        if not ok:
            names = " or ".join(f"{s}://" for s in schemes)
            empty = ' or "" (the default)' if allow_empty else ""
            raise FieldValueError(attribute.name, f"must be a {names} URL{empty} (got {value!r})")

    return check
