"""The status page (``GET /``): server-rendered HTML, no scripts, readable on a phone.

Shows the account, mode, health (with the failing checks), whether entries are paused, the
open positions (entry, mark, stop, distance from mark to stop, trailing phase, aged phase
and target, stop age) and the last notable events. Every value is HTML-escaped. The page
refreshes itself every 15 s (``<meta http-equiv="refresh">``).
"""

from __future__ import annotations

from html import escape

from actors.ops._state import OpsState

__all__ = ["render_status_page"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;padding:12px;
background:#f6f7f9;color:#1d2329}
h1{font-size:1.25rem;margin:0 0 8px}h2{font-size:1.05rem;margin:18px 0 6px}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-weight:600;color:#fff}
.ok{background:#1a7f37}.bad{background:#cf222e}.warn{background:#9a6700}
.card{background:#fff;border-radius:8px;padding:10px;margin:8px 0;box-shadow:0 1px 2px #0002}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:right;padding:4px 6px;border-bottom:1px solid #e5e7eb;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
.scroll{overflow-x:auto}.muted{color:#656d76;font-size:.85rem}
ul{padding-left:18px;margin:4px 0}li{margin:2px 0}
@media (max-width:640px){#positions thead{display:none}
#positions tr{display:block;border-bottom:2px solid #d0d7de;padding:4px 0}
#positions td{display:flex;justify-content:space-between;border:0;padding:2px 4px}
#positions td::before{content:attr(data-label);color:#656d76;margin-right:12px}
#positions td:first-child{font-weight:700}}
"""


def _v(value: object) -> str:
    return "–" if value is None or value == "" else escape(str(value))


def render_status_page(state: OpsState) -> str:
    """The page's HTML for the current ``state`` (call :meth:`OpsState.refresh` first)."""
    rep = state.report
    acct = state.account
    badge = (
        '<span class="badge ok">healthy</span>'
        if rep.ok
        else ('<span class="badge bad">unhealthy</span>')
    )
    reasons = "".join(f"<li>{escape(r)}</li>" for r in rep.reasons)
    paused = (
        '<span class="badge warn">entries paused</span>'
        if acct.entries.paused
        else '<span class="badge ok">entries on</span>'
    )
    rows = []
    for p in state.positions:
        cells = (
            ("position", f"{_v(p.symbol)} {_v(p.side)}"),
            ("state", _v(p.lifecycle)),
            ("qty", _v(p.qty)),
            ("entry", _v(p.entry_price)),
            ("mark", _v(p.mark_price)),
            ("stop", _v(p.stop_price)),
            ("distance", f"{_v(p.distance_pct)}%"),
            ("trailing", _v(p.trailing)),
            ("aged", _v(p.aged_phase)),
            ("aged target", _v(p.aged_target)),
            ("stop verified", "–" if p.stop_age_s is None else f"{p.stop_age_s:.0f}s ago"),
        )
        tds = "".join(f'<td data-label="{k}">{v}</td>' for k, v in cells)
        rows.append(f'<tr data-symbol="{escape(p.symbol)}" data-side="{escape(p.side)}">{tds}</tr>')
    table = (
        '<div class="scroll"><table id="positions"><thead><tr><th>position</th><th>state</th>'
        "<th>qty</th><th>entry</th><th>mark</th><th>stop</th><th>distance</th>"
        "<th>trailing</th><th>aged</th><th>aged target</th><th>stop verified</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        if rows
        else '<p class="muted" id="positions">no open positions</p>'
    )
    events = "".join(
        f"<li><span class=muted>{escape(e.ts.strftime('%H:%M:%S'))}</span> "
        f"{escape(e.severity.value)} {escape(e.type.value)} "
        f"{_v(e.symbol or e.data.get('stream') or '')}</li>"
        for e in reversed(state.last_events[-12:])
    )
    streams = ", ".join(
        f"{escape(n)} {'up' if s.connected else 'DOWN'}" for n, s in sorted(state.streams.items())
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="15">
<title>tradebot {_v(state.account_name)}</title><style>{_CSS}</style></head>
<body>
<h1>tradebot · {_v(state.account_name)} <span class="muted">{_v(state.mode)}</span></h1>
<div class="card">{badge} {paused}
{f'<ul id="reasons">{reasons}</ul>' if reasons else ""}
<div class="muted">streams: {streams or "–"} · checked {escape(rep.at.strftime("%Y-%m-%d %H:%M:%S"))} UTC</div>
</div>
<h2>Open positions ({len(state.positions)})</h2>
<div class="card">{table}</div>
<h2>Last events</h2>
<div class="card"><ul id="events">{events or "<li class=muted>none</li>"}</ul></div>
</body></html>
"""
