"""The dashboard page: HTML rendered on the server from the `overview` object.

Everything that came from mail (subjects, addresses, domains, symbols, reasons) is escaped
with `html.escape` where it is written; the page loads nothing from anywhere (no script, no
CDN, styles inline) and is served with a Content-Security-Policy that forbids scripts. Every
number carries `data-key`, the path of the same number in `GET /v1/dashboard`, so a test (and
a curious admin) can check the page against the API.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any

from mailwarden.transactions import TransactionRecord

from .data import ACTIONS, PERIODS
from .svg import COLOURS, OTHER, bars_svg, timeline_svg

__all__ = ["CSP", "login_page", "page", "reports_page"]

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.2em 0 .4em}
nav a{margin-right:.8em}nav a.on{font-weight:bold}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:1em}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6em 1em}
table{border-collapse:collapse;font-size:.9em}td,th{padding:2px 8px;text-align:left;
vertical-align:top;border-bottom:1px solid #eee}td.n{text-align:right}
.figures span{display:inline-block;margin-right:1.2em}.figures b{font-size:1.3em}
.legend span{margin-right:1em;font-size:.85em}.legend i{display:inline-block;width:10px;
height:10px;margin-right:4px}.bad{color:#c62828}.empty{color:#888}
.checks td{font-family:ui-monospace,monospace;font-size:.85em;word-break:break-word}
"""


def _n(key: str, value: object) -> str:
    shown = "–" if value is None else str(value)
    return f'<b data-key="{escape(key)}">{escape(shown)}</b>'


def _td(key: str, value: object) -> str:
    return f'<td class="n" data-key="{escape(key)}">{escape(str(value))}</td>'


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def _nav(period: str, lookup: str) -> str:
    links = "".join(
        f'<a href="/?period={name}"{" class=on" if name == period else ""}>last {name}</a>'
        for name in PERIODS
    )
    return (
        f'<nav>{links}<a href="/reports">DMARC reports</a>'
        '<a href="/metrics">metrics</a>'
        '<form method="get" action="/" style="display:inline">'
        f'<input type="hidden" name="period" value="{escape(period)}">'
        '<input name="lookup" size="40" placeholder="queue id or Message-ID" '
        f'value="{escape(lookup)}"> <button>look up</button></form></nav>'
    )


def _figures(data: dict[str, Any]) -> str:
    items = [f"<span>transactions {_n('total', data['total'])}</span>"]
    for action, count in data["actions"].items():
        items.append(f"<span>{escape(action)} {_n('actions.' + action, count)}</span>")
    return f'<div class="figures">{"".join(items)}</div>'


def _legend(actions: list[str]) -> str:
    return (
        '<div class="legend">'
        + "".join(
            f'<span><i style="background:{COLOURS.get(a, OTHER)}"></i>{escape(a)}</span>'
            for a in actions
        )
        + "</div>"
    )


def _symbols(data: dict[str, Any]) -> str:
    rows = data["top_symbols"]
    table = "".join(
        f"<tr><td>{escape(r['symbol'])}</td>{_td(f'top_symbols.{i}.count', r['count'])}</tr>"
        for i, r in enumerate(rows)
    )
    chart = bars_svg([(r["symbol"], r["count"], str(r["count"])) for r in rows])
    return f"<section><h2>Top symbols</h2>{chart}<table>{table}</table></section>"


def _domains(data: dict[str, Any]) -> str:
    rows = data["top_sender_domains"]
    table = "".join(
        f"<tr><td>{escape(r['domain'])}</td>"
        f"{_td(f'top_sender_domains.{i}.messages', r['messages'])}"
        f"{_td(f'top_sender_domains.{i}.dmarc_pass', r['dmarc_pass'])}"
        f"<td class=n>{r['dmarc_pass_rate'] * 100:.0f}%</td></tr>"
        for i, r in enumerate(rows)
    )
    chart = bars_svg(
        [
            (r["domain"], r["dmarc_pass_rate"] * 100, f"{r['dmarc_pass_rate'] * 100:.0f}%")
            for r in rows
        ],
        unit=" DMARC pass",
    )
    head = "<tr><th>From domain</th><th>messages</th><th>DMARC pass</th><th>rate</th></tr>"
    return (
        "<section><h2>Top sender domains and their DMARC pass rate</h2>"
        f"{chart}<table>{head}{table}</table></section>"
    )


def _refused(data: dict[str, Any]) -> str:
    rows = data["refused_clients"]
    table = "".join(
        f"<tr><td>{escape(r['client_ip'])}</td>"
        f"{_td(f'refused_clients.{i}.refused', r['refused'])}</tr>"
        for i, r in enumerate(rows)
    )
    chart = bars_svg([(r["client_ip"], r["refused"], str(r["refused"])) for r in rows])
    return f"<section><h2>Clients refused most</h2>{chart}<table>{table}</table></section>"


def _greylist(data: dict[str, Any]) -> str:
    g = data["greylist"]
    state = "" if g["enabled"] else '<p class="empty">greylisting is off</p>'
    return (
        f"<section><h2>Greylisting</h2>{state}<div class=figures>"
        f"<span>pending {_n('greylist.pending', g['pending'])}</span>"
        f"<span>passed {_n('greylist.passed', g['passed'])}</span>"
        f"<span>auto-allowed networks {_n('greylist.auto_allowed', g['auto_allowed'])}</span>"
        "</div><div class=figures>"
        f"<span>deferred in period "
        f"{_n('greylist.deferred_in_period', g['deferred_in_period'])}</span>"
        f"<span>passed in period {_n('greylist.passed_in_period', g['passed_in_period'])}</span>"
        "</div></section>"
    )


def _dns(data: dict[str, Any]) -> str:
    d = data["dns"]
    lists = "".join(
        f"<tr><td>{escape(x['name'])}</td><td>{escape(x['zone'])}</td>"
        + (
            "<td>healthy</td>"
            if x["healthy"]
            else f"<td class=bad>unhealthy: {escape(x['reason'])}</td>"
        )
        + "</tr>"
        for x in d["lists"]
    )
    table = f"<table>{lists}</table>" if lists else '<p class="empty">no DNS lists in use</p>'
    return (
        "<section><h2>DNS health</h2><div class=figures>"
        f"<span>query time-outs {_n('dns.query_timeouts', d['query_timeouts'])}</span>"
        f"<span>queries {_n('dns.queries', d['queries'])}</span>"
        f"<span>transactions with a check out of time "
        f"{_n('dns.transactions_timed_out', d['transactions_timed_out'])}</span>"
        f"<span>lists unhealthy {_n('dns.unhealthy', d['unhealthy'])}</span>"
        f"</div>{table}</section>"
    )


def _transaction(record: TransactionRecord | None, lookup: str) -> str:
    if not lookup:
        return ""
    if record is None:
        return (
            f'<section id="transaction"><h2>Transaction {escape(lookup)}</h2>'
            '<p class="empty">not found (kept for [transactions] keep_days)</p></section>'
        )
    rows = [
        ("time", _when(record.time)),
        ("queue id", record.queue_id),
        ("Message-ID", record.message_id),
        ("client", record.client_ip),
        ("HELO", record.helo),
        ("MAIL FROM", record.mail_from),
        ("From domain", record.sender_domain),
        ("Subject", record.subject),
        ("action", record.action),
        ("answered at", record.stage),
        ("reply", record.reply or "relayed (the downstream's answer)"),
        ("greylist", record.greylist),
        ("out of time", ", ".join(record.timed_out)),
        ("symbols", " ".join(record.symbols)),
    ]
    about = "".join(
        f'<tr><th>{escape(k)}</th><td data-field="{escape(k)}">{escape(v)}</td></tr>'
        for k, v in rows
    )
    checks = "".join(
        f"<tr><td>{escape(c.name)}</td><td>{escape(c.result)}</td><td>{escape(c.reason)}</td></tr>"
        for c in record.checks
    )
    return (
        f'<section id="transaction"><h2>Transaction {escape(record.queue_id)}</h2>'
        f"<table>{about}</table><h2>Checks</h2><table class=checks>"
        f"<tr><th>check</th><th>result</th><th>reason</th></tr>{checks}</table></section>"
    )


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )


def page(
    data: dict[str, Any],
    *,
    hostname: str,
    lookup: str = "",
    record: TransactionRecord | None = None,
) -> str:
    """The whole dashboard page for `data` (an `overview`), with the looked-up transaction."""
    actions = [a for a in ACTIONS if a in data["actions"]] + [
        a for a in data["actions"] if a not in ACTIONS
    ]
    head = (
        f"<h1>mailwarden on {escape(hostname)}</h1>{_nav(data['period'], lookup)}"
        f"<p>{escape(_when(data['since']))} to {escape(_when(data['until']))}</p>"
    )
    verdicts = (
        f"<section><h2>Verdicts over time (last {escape(data['period'])})</h2>"
        f"{_figures(data)}{timeline_svg(data['timeline'], actions, data['bucket_seconds'])}"
        f"{_legend(actions)}</section>"
    )
    grid = (
        '<div class="grid">'
        f"{_symbols(data)}{_domains(data)}{_refused(data)}{_greylist(data)}{_dns(data)}</div>"
    )
    return _document(
        f"mailwarden: {hostname}",
        head + _transaction(record, lookup) + verdicts + grid,
    )


def reports_page(fragment: str, *, hostname: str) -> str:
    """The DMARC reports view (`mailwarden.reports.dashboard.reports_view`) as a page."""
    nav = '<nav><a href="/">dashboard</a><a href="/reports" class=on>DMARC reports</a></nav>'
    return _document(
        f"mailwarden: DMARC reports, {hostname}",
        f"<h1>mailwarden on {escape(hostname)}</h1>{nav}{fragment}",
    )


def login_page(*, hostname: str, note: str = "") -> str:
    """The sign-in form: the token of `[http]`, posted once; a cookie keeps the browser in."""
    shown = f'<p class="bad">{escape(note)}</p>' if note else ""
    return _document(
        f"mailwarden: sign in, {hostname}",
        f"<h1>mailwarden on {escape(hostname)}</h1>{shown}"
        '<form method="post" action="/login"><label>Token ([http] token) '
        '<input type="password" name="token" size="40" autocomplete="current-password" '
        "autofocus></label> <button>sign in</button></form>",
    )
