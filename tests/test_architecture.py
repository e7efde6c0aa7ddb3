"""Architecture: only the PositionActor's stop keeper touches stops (docs/ARCHITECTURE.md
§1 invariant 1).

Two locks on one door:

* Types: the stop methods live on :class:`tradebot.ports.StopPort`; the PositionActor's
  parts other than the stop keeper hold a :class:`tradebot.ports.PositionVenuePort` without
  them, so a stop call there fails ``mypy --strict`` (:func:`test_mypy_refuses_a_stop_call_on_the_narrow_port`).
* This AST scan of the production tree (``tradebot/``, ``actors/``, ``adapters/``): no module
  other than the stop keeper (``actors/position/_stop_keeper.py``) and the port's own
  definition (``tradebot/ports.py``) may obtain a StopPort (import or name it) or reach a
  stop method (``place_entry``, ``place_stop``, ``amend_stop``, ``cancel_stop``) by any
  route the scan knows: an attribute (call, alias ``f = port.place_stop``,
  ``functools.partial(port.place_stop, ...)``), a bare name (``from m import place_stop``),
  a string handed to ``getattr`` / ``operator.methodcaller`` / ``attrgetter`` or used as a
  subscript (``vars(port)["place_stop"]``), or an entry that carries a stop
  (``EntryRequest(..., stop_price=...)``, ``attrs.evolve(req, stop_price=...)``).
  Venue adapters that *implement* the port (``adapters/paper``, ``adapters/bybit``,
  ``adapters/binance`` and their sandboxes) are not scanned: their plumbing is the port.
  Tests and benchmarks are excluded (they drive venues directly to create situations).

A name built at run time (``getattr(port, "place_" + "stop")``) escapes any static scan;
that is what the type lock is for.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STOP_PORT_METHODS = frozenset({"place_entry", "place_stop", "amend_stop", "cancel_stop"})
STOP_PORT_NAMES = frozenset({"StopPort"})
STOP_KEEPER = Path("actors/position/_stop_keeper.py")
PORT_DEFINITION = Path("tradebot/ports.py")
RECONCILER_ZOMBIE_CANCEL_MODULES: dict[Path, frozenset[str]] = {
    Path("actors/reconcile/_zombie.py"): frozenset({"cancel_stop"}),
}
"""The Reconciler's own narrow zombie-cancel port and the stop methods it may call there
(only ``cancel_stop``, for a zombie stop that no live actor owns: our client-id prefix,
no position). It never obtains a StopPort."""
IMPLEMENTERS = tuple(
    Path("adapters") / v for v in ("paper", "bybit", "binance", "bybit_sandbox", "binance_sandbox")
)
_NAME_LOOKUPS = frozenset({"getattr", "hasattr", "attrgetter", "methodcaller", "__getattribute__"})
_ENTRY_BUILDERS = frozenset({"EntryRequest", "place_entry", "evolve", "submit_entry"})
_CAPABILITY_OBJECTS = frozenset({"capabilities", "caps", "_caps"})
"""``Capabilities.amend_stop`` is a flag (the venue can amend in place), not the method."""


def _func_name(f: ast.expr) -> str:
    if isinstance(f, ast.Attribute):
        return f.attr
    if isinstance(f, ast.Name):
        return f.id
    return ""


def stop_port_uses(source: str, filename: str = "<snippet>") -> list[tuple[int, str]]:
    """``(line, what)`` for every way ``source`` obtains a StopPort or a stop method."""
    tree = ast.parse(source, filename=filename)
    found: list[tuple[int, str]] = []
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute):
            if node.attr in STOP_PORT_METHODS:
                obj = node.value
                owner = obj.attr if isinstance(obj, ast.Attribute) else getattr(obj, "id", "")
                if not (node.attr == "amend_stop" and owner in _CAPABILITY_OBJECTS):
                    found.append((line, f"attribute .{node.attr}"))
            elif node.attr in STOP_PORT_NAMES:
                found.append((line, f"name {node.attr}"))
        elif isinstance(node, ast.Name) and node.id in STOP_PORT_METHODS | STOP_PORT_NAMES:
            found.append((line, f"name {node.id}"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                last = alias.name.rsplit(".", 1)[-1]
                if last in STOP_PORT_METHODS | STOP_PORT_NAMES:
                    found.append((line, f"import {alias.name}"))
        elif isinstance(node, ast.Call):
            name = _func_name(node.func)
            if name in _NAME_LOOKUPS:
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and arg.value in STOP_PORT_METHODS:
                        found.append((line, f"{name}({arg.value!r})"))
            if name in _ENTRY_BUILDERS:
                if any(k.arg == "stop_price" for k in node.keywords):
                    found.append((line, f"{name}(stop_price=...)"))
                if name == "EntryRequest" and len(node.args) >= 5:
                    found.append((line, "EntryRequest(<5th positional: stop_price>)"))
        elif isinstance(node, ast.Subscript):
            key = node.slice
            if isinstance(key, ast.Constant) and key.value in STOP_PORT_METHODS:
                found.append((line, f"[{key.value!r}]"))
        elif (
            isinstance(node, ast.Constant)
            and id(node) not in docstrings
            and isinstance(node.value, str)
            and node.value in STOP_PORT_NAMES
        ):
            found.append((line, f"string {node.value!r}"))
    return sorted(set(found))


def source_files() -> list[Path]:
    out = []
    for top in ("tradebot", "actors", "adapters"):
        out += [p.relative_to(ROOT) for p in (ROOT / top).rglob("*.py")]
    return sorted(out)


def _allowed(rel: Path, what: str) -> bool:
    if rel in (STOP_KEEPER, PORT_DEFINITION):
        return True
    methods = RECONCILER_ZOMBIE_CANCEL_MODULES.get(rel, frozenset())
    return any(what == f"attribute .{m}" for m in methods)


def test_only_the_stop_keeper_obtains_a_stop_port() -> None:
    offenders = []
    for rel in source_files():
        if any(rel.is_relative_to(p) for p in IMPLEMENTERS):
            continue
        for line, what in stop_port_uses((ROOT / rel).read_text(), str(rel)):
            if not _allowed(rel, what):
                offenders.append(f"{rel}:{line} {what}")
    assert offenders == [], "StopPort obtained outside the stop keeper:\n" + "\n".join(offenders)


def test_the_stop_keeper_does_call_them() -> None:
    """The scan is not vacuous: it finds the stop keeper's own calls of every method."""
    uses = stop_port_uses((ROOT / STOP_KEEPER).read_text())
    assert {w for _, w in uses} >= {f"attribute .{m}" for m in STOP_PORT_METHODS}
    assert ("name StopPort") in {w for _, w in uses}


OFFENDERS = {
    "direct call": "async def f(port, s):\n    await port.amend_stop(s, 1)\n",
    "alias": "def f(port):\n    move = port.place_stop\n    return move\n",
    "getattr with a string": "def f(port):\n    return getattr(port, 'cancel_stop')\n",
    "functools.partial": (
        "import functools\ndef f(port, req):\n    return functools.partial(port.place_stop, req)\n"
    ),
    "operator.methodcaller": (
        "import operator\ncall = operator.methodcaller('place_stop', None)\n"
    ),
    "vars()[...]": "def f(port):\n    return vars(type(port))['amend_stop']\n",
    "place_entry(stop_price=...)": (
        "async def f(port, req):\n    await port.place_entry(req, stop_price=1)\n"
    ),
    "EntryRequest(stop_price=...)": (
        "from tradebot.ports import EntryRequest\n"
        "r = EntryRequest(symbol='X', position_side=None, qty=1, client_order_id='c',"
        " stop_price=1)\n"
    ),
    "EntryRequest positional stop": "r = EntryRequest('X', None, 1, 'c', 2)\n",
    "attrs.evolve(stop_price=...)": "import attrs\ndef f(req):\n    return attrs.evolve(req, stop_price=1)\n",
    "import StopPort": "from tradebot.ports import StopPort\n",
    "annotate ports.StopPort": (
        "from tradebot import ports\ndef f(p: 'ports.StopPort') -> None: ...\n"
        "def g(p: ports.StopPort) -> None: ...\n"
    ),
    "import a stop method": "from somewhere import place_stop as ps\n",
}


@pytest.mark.parametrize("name", sorted(OFFENDERS))
def test_scan_flags_each_offending_snippet(name: str) -> None:
    assert stop_port_uses(textwrap.dedent(OFFENDERS[name])), name


def test_scan_lets_harmless_code_pass() -> None:
    ok = textwrap.dedent(
        '''
        """Mentions place_stop and StopPort in a docstring only."""
        async def f(venue, keeper, caps):
            await venue.place_reduce(None)
            await keeper.move_stop(1, "trailing")
            journal = {"what": "place_stop"}  # a label, not a lookup
            return caps.amend_stop, venue.capabilities.amend_stop
        '''
    )
    assert stop_port_uses(ok) == []


def test_mypy_refuses_a_stop_call_on_the_narrow_port(tmp_path: Path) -> None:
    """The type lock: what the actor's parts hold has no stop method (mypy --strict)."""
    from mypy import api

    snippet = tmp_path / "rogue.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from decimal import Decimal
            from tradebot.ports import PositionVenuePort, StopState

            async def trail(venue: PositionVenuePort, stop: StopState) -> None:
                await venue.amend_stop(stop, Decimal("1"))
            """
        )
    )
    out, _err, status = api.run(
        [
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--follow-imports",
            "silent",
            str(snippet),
        ]
    )
    assert status == 1, out
    assert '"PositionVenuePort" has no attribute "amend_stop"' in out
