"""nox sessions: lint, typecheck, tests, bench, wheel.

``nox -s bench [-- NAME ...]`` runs all or the named benchmarks (``benchmarks/bench_*.py``).
``nox -s wheel`` builds the deployable wheel into ``dist/`` (``tests/test_packaging.py``
installs such a wheel into a fresh venv and runs ``tradebot db migrate`` and ``paper``).
"""

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

PACKAGES = ["tradebot", "actors", "adapters"]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check + format check + the layering contracts (import-linter)."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy strict on the three packages."""
    session.install("-e", ".[dev]")
    session.run("mypy", *PACKAGES)


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: print tables and append JSON lines to .bench/results.jsonl."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def wheel(session: nox.Session) -> None:
    """Build the wheel (with ``sql/`` as ``tradebot/sql`` and ``tradebot/data``) into dist/."""
    session.install("pip>=23")
    session.run("python", "-m", "pip", "wheel", "--no-deps", "-w", "dist", ".")
