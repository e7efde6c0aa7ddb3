"""The built wheel works on its own: migrations and bundled data inside, no checkout needed.

Builds the wheel from this checkout (``pip wheel --no-deps --no-build-isolation``: the build
backend, hatchling, is in the dev extra, so no network), installs it NOT editable into a
fresh venv, and runs ``tradebot db migrate`` and a 2-hour ``tradebot paper`` window with the
venv's own console script, from a scratch working directory, HOME and TRADEBOT_HOME.

The fresh venv gets the wheel's dependencies from this test venv without copying 300 MB
and without an index: a directory of symlinks to this venv's installed distributions,
minus tradebot itself (its editable hook), matplotlib (the optional ``chart`` extra, to
prove it is optional) and every ``.pth`` file, listed in a ``.pth`` of the fresh venv.
``pip check`` in the fresh venv then proves the wheel's declared requirements are met by
what it sees, and an import probe proves ``tradebot``/``actors``/``adapters`` load from the
wheel's files, not from this checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

# site-packages entries of this venv that the fresh venv must NOT see
_HIDDEN_PREFIXES = (
    "tradebot",  # the editable install (dist-info, hatchling's sql copy)
    "_editable_impl_tradebot",
    "__editable__",
    "actors",
    "adapters",
    "matplotlib",  # the optional [chart] extra
    "mpl_toolkits",
    "pylab",
)


def _run(cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 300) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _dependency_view(target: Path) -> Path:
    """Symlinks to this venv's site-packages entries, minus tradebot and the chart extra."""
    site = Path(sysconfig.get_paths()["purelib"])
    target.mkdir()
    for entry in site.iterdir():
        name = entry.name
        if name.endswith(".pth") or name.lower().startswith(_HIDDEN_PREFIXES):
            continue
        (target / name).symlink_to(entry)
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the wheel once, install it into a fresh venv; paths of both."""
    base = tmp_path_factory.mktemp("wheel")
    home = base / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PIP_NO_INPUT": "1"}
    env.pop("TRADEBOT_SQL_DIR", None)
    dist = base / "dist"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-cache-dir",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        env=env,
        cwd=base,
    )
    (wheel,) = dist.glob("tradebot-*.whl")
    target = base / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(target)
    py = target / "bin" / "python"
    site = Path(
        _run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            env=env,
            cwd=base,
        ).strip()
    )
    (site / "_tradebot_test_deps.pth").write_text(str(_dependency_view(base / "deps")) + "\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "--no-deps",
            "--no-index",
            "--no-cache-dir",
            "-q",
            str(wheel),
        ],
        env=env,
        cwd=base,
    )
    return {"base": base, "wheel": wheel, "venv": target, "site": site, "home": home}


def _env(installed: dict[str, Path], tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRADEBOT_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["HOME"] = str(installed["home"])
    env["TRADEBOT_HOME"] = str(tmp_path / "tradebot-home")
    env["PATH"] = f"{installed['venv'] / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_wheel_ships_migrations_and_bundled_data(installed: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    for sql in sorted((ROOT / "sql").glob("*.sql")):
        assert f"tradebot/sql/{sql.name}" in names, sql.name
    data = ROOT / "tradebot" / "data"
    for f in sorted(p for p in data.rglob("*") if p.is_file()):
        assert f"tradebot/{f.relative_to(ROOT / 'tradebot').as_posix()}" in names, f
    for marker in ("tradebot/py.typed", "actors/py.typed", "adapters/py.typed"):
        assert marker in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(installed["wheel"]).read(meta).decode()
    assert "Provides-Extra: chart" in text
    assert "Requires-Dist: matplotlib>=3.8; extra == 'chart'" in text
    assert "Requires-Dist: trio<0.36,>=0.27" in text


def test_installed_wheel_imports_from_itself(installed: dict[str, Path], tmp_path: Path) -> None:
    env = _env(installed, tmp_path)
    py = str(installed["venv"] / "bin" / "python")
    probe = (
        "import json, importlib.util, tradebot, actors, adapters\n"
        "from adapters.postgres.migrations import find_sql_dir\n"
        "print(json.dumps({'mods': [m.__file__ for m in (tradebot, actors, adapters)],"
        " 'sql': str(find_sql_dir()), 'mpl': importlib.util.find_spec('matplotlib') is None}))"
    )
    got = json.loads(_run([py, "-c", probe], env=env, cwd=tmp_path))
    site = str(installed["site"])
    assert all(m.startswith(site) for m in got["mods"]), got
    assert got["sql"] == str(installed["site"] / "tradebot" / "sql")
    assert got["mpl"] is True  # the chart extra was not installed
    shipped = sorted(p.name for p in (installed["site"] / "tradebot" / "sql").glob("*.sql"))
    assert shipped == sorted(p.name for p in (ROOT / "sql").glob("*.sql"))
    for name in shipped:
        assert (installed["site"] / "tradebot" / "sql" / name).read_bytes() == (
            ROOT / "sql" / name
        ).read_bytes()
    # the wheel's declared requirements are all met (no hidden dependency on the dev venv)
    check = subprocess.run(
        [sys.executable, "-m", "pip", "--python", py, "check"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    tradebot_lines = [ln for ln in check.stdout.splitlines() if ln.lower().startswith("tradebot")]
    assert tradebot_lines == [], check.stdout


def test_installed_wheel_migrates_and_runs_paper(
    installed: dict[str, Path],
    tmp_path: Path,
    empty_db_dsn: str,
    fresh_db_dsn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = _env(installed, tmp_path)
    tradebot = str(installed["venv"] / "bin" / "tradebot")
    out = _run([tradebot, "db", "migrate", "--dsn", empty_db_dsn], env=env, cwd=tmp_path)
    expected = [f"applied {p.stem}" for p in sorted((ROOT / "sql").glob("*.sql"))]
    assert out.splitlines() == expected
    out = _run([tradebot, "db", "migrate", "--dsn", empty_db_dsn], env=env, cwd=tmp_path)
    assert out.strip() == "database is up to date"

    report = tmp_path / "report.json"
    window = ["--from", "2025-05-20T04:00:00Z", "--to", "2025-05-20T06:00:00Z", "--no-progress"]
    out = _run(
        [tradebot, "paper", *window, "--dsn", empty_db_dsn, "--report-json", str(report)],
        env=env,
        cwd=tmp_path,
    )
    doc = json.loads(report.read_text())
    assert f"trades sha256               {doc['trades_sha256']}" in out
    # the same window from this checkout gives the same trades: the wheel's data is the same
    from tradebot.cli import main

    mine = tmp_path / "checkout-report.json"
    assert main(["paper", *window, "--dsn", fresh_db_dsn, "--report-json", str(mine)]) == 0
    capsys.readouterr()
    assert json.loads(mine.read_text())["trades_sha256"] == doc["trades_sha256"]
    assert doc["details"]["window_start"] == "2025-05-20T04:00:00+00:00"
    assert doc["details"]["window_end"] == "2025-05-20T06:00:00+00:00"
    assert doc["positions_opened"] >= 1
    assert doc["invariant_violations"] == 0 and doc["stop_coverage_pct"] == "100.00"
    assert len(doc["trades_sha256"]) == 64


def test_chart_without_the_extra_is_a_clear_error(
    installed: dict[str, Path], tmp_path: Path
) -> None:
    env = _env(installed, tmp_path)
    proc = subprocess.run(
        [
            str(installed["venv"] / "bin" / "tradebot"),
            "paper",
            "--no-progress",
            "--chart",
            str(tmp_path / "equity.png"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip() == (
        "--chart: needs matplotlib, the optional chart extra: pip install 'tradebot[chart]'"
    )
    assert proc.stdout == "" and not (tmp_path / "equity.png").exists()
    assert not (tmp_path / "tradebot-home").exists()  # refused before anything started
