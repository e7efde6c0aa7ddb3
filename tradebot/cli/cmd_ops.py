"""Operator commands against the running account process, over its control API.

``tradebot status``, ``tradebot positions [--json]``, ``tradebot close SYMBOL SIDE
[--fraction F]``, ``tradebot pause``, ``tradebot resume`` — each with ``--config PATH``
(default ``./config.toml``): the process is found at ``health.host:health.port`` (a
wildcard host is reached on loopback) and authenticated with the bearer token from the env
var named by ``health.control_token_env``. ``--url`` overrides the address.

``close`` is a message to that position's owner (its PositionActor closes it reduce-only
and keeps managing its own stop); ``--fraction`` in (0, 1] closes that part only.

Exit codes: 0 done; 1 the process cannot be reached, refused the request (401/403), or the
close did not happen (no such position, close failed); 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config", type=Path, default=Path("config.toml"), help="the account's config file"
        )
        p.add_argument("--url", default="", help="control API base URL (default: from config)")
        p.add_argument("--timeout", type=float, default=90.0, help="request timeout, seconds")

    p = subparsers.add_parser("status", help="health and state of the running account")
    common(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=lambda a: _run(a, "GET", "/control/status", None))
    p = subparsers.add_parser("positions", help="open positions of the running account")
    common(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=lambda a: _run(a, "GET", "/control/positions", None))
    p = subparsers.add_parser("close", help="close one position (through its owner)")
    common(p)
    p.add_argument("symbol", help="instrument, e.g. BTCUSDT")
    p.add_argument("side", type=str.upper, choices=["LONG", "SHORT"], help="position side")
    p.add_argument("--fraction", default=None, help="close this part only, in (0, 1]")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_close)
    for name, what in (("pause", "new entries off"), ("resume", "new entries on")):
        p = subparsers.add_parser(name, help=f"{what} (open positions stay managed)")
        common(p)
        p.add_argument("--reason", default="", help="journaled with the command")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(
            func=lambda a, n=name: _run(a, "POST", f"/control/{n}", {"reason": a.reason})
        )


def _close(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"symbol": args.symbol.upper(), "side": args.side, "source": "cli"}
    if args.fraction is not None:
        body["fraction"] = args.fraction
    return _run(args, "POST", "/control/close", body)


def _target(args: argparse.Namespace) -> tuple[str, str, str] | None:
    from tradebot.config import load_config
    from tradebot.errors import ConfigError

    try:
        cfg = load_config(args.config, require_secrets=False)
    except ConfigError as exc:
        for key, reason in exc.problems:
            print(f"{key}: {reason}", file=sys.stderr)
        return None
    host = cfg.health.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    url = args.url or (
        f"http://[{host}]:{cfg.health.port}" if ":" in host else f"http://{host}:{cfg.health.port}"
    )
    var = cfg.health.control_token_env
    return url.rstrip("/"), os.environ.get(var, ""), var


def _run(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None) -> int:
    import httpx

    target = _target(args)
    if target is None:
        return 2
    url, token, var = target
    if not token:
        print(f"environment variable {var} (health.control_token_env) is not set", file=sys.stderr)
        return 2
    try:
        resp = httpx.request(
            method,
            url + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=args.timeout,
        )
    except httpx.HTTPError as exc:
        print(
            f"cannot reach the bot at {url}: {type(exc).__name__} (is it running?)", file=sys.stderr
        )
        return 1
    try:
        doc = resp.json()
    except ValueError:
        print(f"{url}{path}: HTTP {resp.status_code}, not JSON", file=sys.stderr)
        return 1
    if resp.status_code in (401, 403):
        print(f"refused (HTTP {resp.status_code}): {doc.get('error', '')}", file=sys.stderr)
        return 1
    if resp.status_code == 400:
        print(f"bad request: {doc.get('error', '')}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        print(json.dumps(doc, indent=2))
    else:
        print(_human(path, doc))
    if resp.status_code != 200 or (isinstance(doc, dict) and doc.get("ok") is False):
        return 1
    return 0


def _human(path: str, doc: Any) -> str:
    if path.endswith("/positions"):
        if not doc:
            return "no open positions"
        cols = (
            "symbol",
            "side",
            "lifecycle",
            "qty",
            "entry_price",
            "mark_price",
            "stop_price",
            "distance_pct",
            "trailing",
            "aged_phase",
        )
        rows = [[str(p.get(c) if p.get(c) is not None else "-") for c in cols] for p in doc]
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
        return "\n".join(lines)
    if path.endswith("/status"):
        h = doc["health"]
        lines = [
            f"account {doc['account']} ({doc['mode']}): {h['status']}",
            *(f"  - {r}" for r in h["reasons"]),
            f"open positions: {doc['open_positions']}",
            f"entries: {'PAUSED' if doc['entries_paused'] else 'on'}",
        ]
        if doc.get("safe_mode"):
            lines.append(f"SAFE MODE: {doc['safe_mode']}")
        return "\n".join(lines)
    if path.endswith("/close"):
        return ("closed: " if doc.get("ok") else "not closed: ") + str(doc.get("detail", ""))
    return "entries paused" if doc.get("entries_paused") else "entries on"
