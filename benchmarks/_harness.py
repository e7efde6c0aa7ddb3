"""Benchmark harness: each benchmark module ``benchmarks/bench_<name>.py`` defines
``run(record) -> None`` and calls ``record(metric, value, unit)`` for every figure.

Figures are printed as a table and appended as JSON lines
``{"benchmark", "metric", "value", "unit", "git_sha", "utc"}`` to ``.bench/results.jsonl``.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / ".bench" / "results.jsonl"

Record = Callable[[str, float, str], None]


def _git_sha() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except Exception:
        return "unknown"


def available() -> list[str]:
    import benchmarks

    return sorted(
        i.name[len("bench_") :]
        for i in pkgutil.iter_modules(benchmarks.__path__)
        if i.name.startswith("bench_")
    )


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}")
        return 2
    RESULTS.parent.mkdir(exist_ok=True)
    sha = _git_sha()
    rows: list[tuple[str, str, float, str]] = []
    with RESULTS.open("a") as out:
        for name in names:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            print(f"== {name}", flush=True)
            t0 = time.perf_counter()

            def record(metric: str, value: float, unit: str, _name: str = name) -> None:
                rows.append((_name, metric, value, unit))
                print(f"   {metric:<48} {value:>16,.3f} {unit}", flush=True)
                out.write(
                    json.dumps(
                        {
                            "benchmark": _name,
                            "metric": metric,
                            "value": value,
                            "unit": unit,
                            "git_sha": sha,
                            "utc": datetime.now(UTC).isoformat(),
                        }
                    )
                    + "\n"
                )
                out.flush()

            module.run(record)
            print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)
    print()
    print(f"{'benchmark':<14} {'metric':<48} {'value':>16} unit")
    for bench, metric, value, unit in rows:
        print(f"{bench:<14} {metric:<48} {value:>16,.3f} {unit}")
    print(f"\nappended {len(rows)} figures to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
