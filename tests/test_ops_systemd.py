"""systemd integration: the bot as a real subprocess (``tradebot paper --speed 10x --ops``)
sends ``READY=1``, periodic ``WATCHDOG=1``, ``STATUS=…`` and ``STOPPING=1`` to a real
``NOTIFY_SOCKET`` (a unix datagram socket this test opens); ``systemd-analyze verify``
accepts ``deploy/tradebot@.service`` (and refuses a broken copy); the JSON log lines and
the redaction of the secrets the config names."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tradebot.logs import setup_logging
from tradebot.redact import Redactor, dsn_without_password, secret_values

ROOT = Path(__file__).resolve().parents[1]
TRADEBOT = str(Path(sys.executable).with_name("tradebot"))
SECRET = "ctl-secret-0123456789abc"


async def test_notify_socket_ready_watchdog_stopping_from_the_bot_subprocess(
    tmp_path: Path,
) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    await sock.bind(str(sock_path))
    cfg = tmp_path / "c.toml"
    cfg.write_text('[health]\nport = 0\ncontrol_token_env = "TB_CTL"\n', encoding="utf-8")
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(sock_path),
        "WATCHDOG_USEC": "1000000",  # → a ping every 0.5 s of the run's clock
        "TB_CTL": SECRET,
    }
    messages: list[str] = []

    async def receive() -> None:
        while True:
            data = await sock.recv(4096)
            messages.append(data.decode())

    with trio.fail_after(180):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            proc = await trio.run_process(
                [
                    TRADEBOT,
                    "paper",
                    "--config",
                    str(cfg),
                    "--speed",
                    "10x",
                    "--from",
                    "2025-05-20T00:00:00Z",
                    "--to",
                    "2025-05-20T00:03:00Z",
                    "--ops",
                    "--no-progress",
                ],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env=env,
            )
            await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
    sock.close()
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    ready = [i for i, m in enumerate(messages) if "READY=1" in m.split("\n")]
    stopping = [i for i, m in enumerate(messages) if "STOPPING=1" in m.split("\n")]
    pings = [i for i, m in enumerate(messages) if m == "WATCHDOG=1"]
    assert len(ready) == 1 and len(stopping) == 1, messages[:10]
    assert ready[0] < stopping[0]
    between = [i for i in pings if ready[0] < i < stopping[0]]
    assert len(between) >= 5, messages  # periodic pings while it ran
    assert any(m.startswith("STATUS=") and "open" in m for m in messages)
    out = proc.stdout.decode() + proc.stderr.decode()
    assert SECRET not in out


def _verify(unit_dir: Path, text: str) -> subprocess.CompletedProcess[str]:
    unit = unit_dir / "tradebot@.service"
    unit.write_text(text, encoding="utf-8")
    inst = unit_dir / "tradebot@main.service"
    if not inst.exists():
        inst.symlink_to(unit.name)
    return subprocess.run(
        ["/usr/bin/systemd-analyze", "verify", str(inst)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    if not Path("/usr/bin/systemd-analyze").exists():
        if os.environ.get("CI"):
            pytest.fail("/usr/bin/systemd-analyze is missing")
        pytest.skip("no systemd-analyze on this machine")
    text = (ROOT / "deploy" / "tradebot@.service").read_text(encoding="utf-8")
    for key in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RestartSec=",
        "User=tradebot",
        "EnvironmentFile=/etc/tradebot/%i.env",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "/etc/tradebot/%i.toml",
    ):
        assert key in text, key
    assert "ExecStart=/opt/tradebot/venv/bin/tradebot run " in text
    local = text.replace("/opt/tradebot/venv/bin/tradebot", TRADEBOT)
    res = _verify(tmp_path, local)
    assert res.returncode == 0, res.stderr
    assert "tradebot@" not in res.stderr, res.stderr  # no warning about our unit
    broken = local.replace("Type=notify", "Type=notifyy").replace(TRADEBOT, "/nonexistent/tb")
    res = _verify(tmp_path, broken)
    assert res.returncode != 0 and "/nonexistent/tb" in res.stderr  # the check can fail


def test_json_logs_are_redacted() -> None:
    env = {"TB_KEY": "api-key-value-123456", "TRADEBOT_DSN": "postgresql://bot:pg-pass-987@db/x"}
    r = Redactor(secret_values(["TB_KEY", "UNSET"], env))
    buf = io.StringIO()
    handler = setup_logging("INFO", "json", r, stream=buf)
    try:
        log = logging.getLogger("tradebot.test")
        log.info(
            "connecting %s with key %s",
            "wss://signals.example/ws?token=tok-abcdef-123&x=1",
            "api-key-value-123456",
            extra={
                "dsn": "postgresql://bot:pg-pass-987@db/x",
                "qty": __import__("decimal").Decimal("0.5"),
            },
        )
        log.debug("not shown at INFO")
        try:
            raise RuntimeError(
                "bad url https://api.telegram.org/bot1234:AAAsecretTOKEN/sendMessage"
            )
        except RuntimeError:
            log.exception("send failed")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert [x["level"] for x in lines] == ["INFO", "ERROR"]
    text = buf.getvalue()
    for secret in ("api-key-value-123456", "tok-abcdef-123", "pg-pass-987", "AAAsecretTOKEN"):
        assert secret not in text
    assert lines[0]["qty"] == "0.5" and lines[0]["logger"] == "tradebot.test"
    assert "RuntimeError" in lines[1]["exc"]
    assert dsn_without_password("postgresql://bot:pg-pass-987@db/x") == "postgresql://bot@db/x"
