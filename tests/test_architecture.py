"""Architecture: only PositionActor code changes stops (DESIGN.md section 1, invariant 1).

An AST scan of the production tree (``tradebot/``, ``actors/``, ``adapters/``): every call
of ``place_stop`` / ``amend_stop`` / ``cancel_stop`` must be inside the ``PositionActor``
class in ``actors/position.py``, or inside the venue adapters that *implement* the port
(``adapters/paper``, ``adapters/bybit``, ``adapters/binance`` and their sandboxes: a venue's
own plumbing). Every other adapter (replay, signals, postgres, ...) is scanned. Tests and
benchmarks are excluded (they drive venues directly to create situations).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STOP_METHODS = {"place_stop", "amend_stop", "cancel_stop"}
ALLOWED_CALLERS = {Path("actors/position.py")}
IMPLEMENTERS = tuple(
    Path("adapters") / v for v in ("paper", "bybit", "binance", "bybit_sandbox", "binance_sandbox")
)


def stop_calls(path: Path) -> list[tuple[int, str, str]]:
    """(line, method, enclosing class) for each call of a stop-changing method."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str, str]] = []

    def visit(node: ast.AST, cls: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, child.name)
                continue
            if isinstance(child, ast.Call):
                f = child.func
                name = (
                    f.attr
                    if isinstance(f, ast.Attribute)
                    else (f.id if isinstance(f, ast.Name) else "")
                )
                if name in STOP_METHODS:
                    found.append((child.lineno, name, cls))
            visit(child, cls)

    visit(tree, "")
    return found


def source_files() -> list[Path]:
    out = []
    for top in ("tradebot", "actors", "adapters"):
        out += [p.relative_to(ROOT) for p in (ROOT / top).rglob("*.py")]
    return sorted(out)


def test_only_the_position_actor_changes_stops() -> None:
    offenders = []
    for rel in source_files():
        if any(rel.is_relative_to(p) for p in IMPLEMENTERS):
            continue
        for line, method, cls in stop_calls(ROOT / rel):
            if rel in ALLOWED_CALLERS and cls == "PositionActor":
                continue
            offenders.append(f"{rel}:{line} {cls or '<module>'}.{method}")
    assert offenders == [], "stop-changing calls outside PositionActor:\n" + "\n".join(offenders)


def test_the_position_actor_does_call_them() -> None:
    """The scan is not vacuous: it finds the PositionActor's own calls."""
    methods = {m for _, m, cls in stop_calls(ROOT / "actors/position.py") if cls == "PositionActor"}
    assert methods == STOP_METHODS


def test_scan_catches_an_offender(tmp_path: Path) -> None:
    bad = tmp_path / "rogue.py"
    bad.write_text(
        "class Trailer:\n    async def go(self, port, s):\n        await port.amend_stop(s, 1)\n"
    )
    assert stop_calls(bad) == [(3, "amend_stop", "Trailer")]
