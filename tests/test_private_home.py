"""The test suite never touches the developer's real home (issue 17 item 6).

``tests/conftest.py`` gives every test its own ``TRADEBOT_HOME`` and ``HOME`` (autouse)
and unsets ``TRADEBOT_DSN``: whatever a test runs — ``main(["paper", ...])``, the embedded
server, a spool — resolves inside that private directory.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from adapters.postgres.embedded import default_home, embedded_pgdata
from tradebot.cli import main
from tradebot.config import default_config

REAL_HOME = Path(pwd.getpwuid(os.getuid()).pw_dir)


def test_every_default_path_is_private(_private_home: Path) -> None:
    assert os.environ["TRADEBOT_HOME"] == str(_private_home)
    assert Path(os.environ["HOME"]) != REAL_HOME
    assert "TRADEBOT_DSN" not in os.environ
    for path in (
        default_home(),
        embedded_pgdata(),
        default_config().home_path(),
        default_config().spool_path(),
        Path("~").expanduser(),
    ):
        assert REAL_HOME not in path.resolve().parents and path.resolve() != REAL_HOME
        assert path.resolve().is_relative_to(_private_home.parent), path


def test_a_paper_run_from_the_cli_writes_only_into_the_private_home(
    _private_home: Path, fresh_db_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    real = REAL_HOME / ".local" / "share" / "tradebot" / "paper-spool"
    before = real.stat().st_mtime_ns if real.exists() else None
    rc = main(
        [
            "paper",
            "--from",
            "2025-05-20T04:00:00Z",
            "--to",
            "2025-05-20T04:20:00Z",
            "--dsn",
            fresh_db_dsn,
            "--no-progress",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert (_private_home / "paper-spool").is_dir()
    assert (real.stat().st_mtime_ns if real.exists() else None) == before
