"""nox sessions: lint, typecheck, tests, bench.

``nox -s bench [-- NAME ...]`` runs all or the named benchmarks (``benchmarks/bench_*.py``).
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
