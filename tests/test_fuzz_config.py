"""Fuzzing the config loader (``tradebot.config.parse_config`` / ``load_config``).

Documented contract: a config text either loads into a ``Config`` or raises
``ConfigError`` whose problems are ``(key_path, reason)`` strings — never another
exception, whatever the TOML holds (wrong types, NaN/inf, huge numbers, unknown keys,
broken syntax). Nothing accepted is lost: a decimal string put into a money/percent key
that loads comes back as exactly that Decimal.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests._fuzz_support import fuzz
from tradebot.config import Config, load_config, parse_config
from tradebot.errors import ConfigError

TEMPLATE = (Path(__file__).resolve().parents[1] / "config.toml").read_text()
LINES = TEMPLATE.splitlines()
ASSIGN = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)(.*)$")
KEY_LINES = [i for i, line in enumerate(LINES) if ASSIGN.match(line)]


def _section_of(i: int) -> str:
    for j in range(i, -1, -1):
        m = re.match(r"^\[([a-z_.]+)\]", LINES[j])
        if m:
            return m.group(1)
    return ""


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


toml_value = st.recursive(
    st.one_of(
        st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
        st.sampled_from(["nan", "inf", "-inf", "1e400", "0.0", "-0.0", "1.5", "true", "false"]),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.text(max_size=20).map(_toml_str),
        st.sampled_from(['"NaN"', '"1e400"', '"-1"', '"0"', '"abc"', '""', '"Infinity"', '"1.5"']),
        st.sampled_from(["1979-05-27T07:32:00Z", "07:32:00", "1979-05-27"]),
    ),
    lambda kids: (
        st.lists(kids, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]")
        | st.dictionaries(st.sampled_from(["a", "BTCUSDT", "x_y"]), kids, max_size=3).map(
            lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}"
        )
    ),
    max_leaves=5,
)


@st.composite
def mutated_config(draw: Any) -> str:
    lines = list(LINES)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.integers(min_value=0, max_value=5))
        i = min(draw(st.sampled_from(KEY_LINES)), len(lines) - 1)
        m = ASSIGN.match(lines[i])
        if kind <= 2 and m:  # a new value for an existing key
            lines[i] = f"{m.group(1)}{m.group(2)}{m.group(3)}{draw(toml_value)}"
        elif kind == 3:  # an unknown key
            name = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10))
            lines.insert(i + 1, f"{name} = {draw(toml_value)}")
        elif kind == 4:  # a line removed
            del lines[i]
        else:  # raw junk
            lines.insert(i, draw(st.text(max_size=30)).replace("\n", " "))
    return "\n".join(lines) + "\n"


def _load(text: str) -> Config | ConfigError:
    try:
        return parse_config(text, environ={}, source="fuzz.toml", require_secrets=False)
    except ConfigError as exc:  # the only exception allowed
        assert exc.problems, "a ConfigError names at least one problem"
        for key, reason in exc.problems:
            assert isinstance(key, str) and key and isinstance(reason, str) and reason
        return exc


def test_template_loads() -> None:
    assert isinstance(_load(TEMPLATE), Config)


@fuzz
@given(mutated_config())
def test_any_mutation_of_the_template_loads_or_is_a_config_error(text: str) -> None:
    _load(text)


@fuzz
@given(st.text(max_size=300))
def test_arbitrary_text_is_a_config_error_or_a_config(text: str) -> None:
    _load(text)


MONEY_KEYS = [
    (i, _section_of(i), ASSIGN.match(LINES[i]).group(2))  # type: ignore[union-attr]
    for i in KEY_LINES
    if re.search(r'= "\d', LINES[i]) and _section_of(i) in ("risk", "stop_loss", "trailing", "aged")
]


@fuzz
@given(st.sampled_from(MONEY_KEYS), st.decimals(min_value=0, max_value=100, places=4))
def test_an_accepted_decimal_is_kept_exactly(where: Any, value: Decimal) -> None:
    i, section, key = where
    lines = list(LINES)
    m = ASSIGN.match(lines[i])
    assert m is not None
    lines[i] = f'{m.group(1)}{key}{m.group(3)}"{value}"'
    cfg = _load("\n".join(lines) + "\n")
    if isinstance(cfg, Config):
        assert getattr(getattr(cfg, section), key) == value


def test_load_config_file_errors_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_bytes(b"\xff\xfe[risk]\n")
    for path in (tmp_path / "bad.toml", tmp_path / "missing.toml", tmp_path):
        try:
            load_config(path, environ={}, require_secrets=False)
        except ConfigError as exc:
            assert exc.problems
