"""The dashboard's numbers, as one JSON object: what `GET /v1/dashboard` answers and the page
draws (the page is rendered from this very object, so its numbers are the API's).

Windows: the last hour (5-minute bars), day (hourly bars) and week (6-hour bars). Transactions
come from the store of recent transactions; greylisting's pending, passed and auto-allowed
entries from the greylist store; DNS health from the metrics (query time-outs since start)
and the DNS lists' RFC 5782 §5 health checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailwarden import metrics
from mailwarden.dnsbl import DNSListChecker
from mailwarden.greylist import GreylistStore
from mailwarden.transactions import Summary, TransactionStore

__all__ = ["ACTIONS", "PERIODS", "Period", "overview"]

HOUR = 3600


@dataclass(frozen=True, slots=True)
class Period:
    name: str
    seconds: int
    bucket: int


PERIODS = {
    "hour": Period("hour", HOUR, 300),
    "day": Period("day", 24 * HOUR, HOUR),
    "week": Period("week", 7 * 24 * HOUR, 6 * HOUR),
}
# the policy's actions, mildest first (the order of the bars' stacks)
ACTIONS = ("accept", "greylist", "add_header", "soft_reject", "reject")
GREYLIST_ENTRIES_READ = 100_000  # entries counted at most (a page load reads them)


def _timeline(summary: Summary, period: Period, since: float) -> list[dict[str, Any]]:
    count = period.seconds // period.bucket
    rows = []
    for index in range(count):
        counts = summary.timeline.get(index, {})
        rows.append(
            {
                "start": since + index * period.bucket,
                "counts": {a: counts[a] for a in sorted(counts)},
                "total": sum(counts.values()),
            }
        )
    return rows


async def _greylist(store: GreylistStore | None, now: float, auto_after: int) -> dict[str, Any]:
    if store is None:
        return {"enabled": False, "pending": None, "passed": None, "auto_allowed": None}
    entries = await store.entries(now, limit=GREYLIST_ENTRIES_READ)
    passed = sum(1 for e in entries if e.passed)
    networks = await store.networks(now)
    auto = sum(1 for n in networks if auto_after and n.passes >= auto_after)
    allowed = len(await store.allowed(now))
    metrics.greylist_entries(len(entries) - passed, passed, allowed)
    return {
        "enabled": True,
        "pending": len(entries) - passed,
        "passed": passed,
        "auto_allowed": auto,
    }


def _dns(checker: DNSListChecker | None, timed_out: int) -> dict[str, Any]:
    lists = []
    if checker is not None:
        for lst in checker.lists:
            health = checker.health[lst.name]
            metrics.dns_list_health(lst.name, health.healthy)
            lists.append(
                {
                    "name": lst.name,
                    "zone": lst.zone,
                    "healthy": health.healthy,
                    "reason": "" if health.healthy else health.reason,
                }
            )
    return {
        "query_timeouts": int(metrics.total("mailwarden_dns_queries_total", outcome="timeout")),
        "queries": int(metrics.total("mailwarden_dns_queries_total")),
        "transactions_timed_out": timed_out,
        "lists": lists,
        "unhealthy": sum(1 for x in lists if not x["healthy"]),
    }


async def overview(
    store: TransactionStore,
    period: Period,
    now: float,
    *,
    greylist: GreylistStore | None = None,
    auto_allow_after: int = 0,
    dnsbl: DNSListChecker | None = None,
    top: int = 10,
) -> dict[str, Any]:
    """Every number of the dashboard for the window of `period` ending at `now`."""
    since = float(int(now - period.seconds) // period.bucket * period.bucket + period.bucket)
    until = since + period.seconds
    summary = await store.summary(since, until, period.bucket, top=top)
    return {
        "period": period.name,
        "since": since,
        "until": until,
        "bucket_seconds": period.bucket,
        "total": summary.total,
        "actions": {
            a: summary.actions.get(a, 0) for a in sorted(set(ACTIONS) | set(summary.actions))
        },
        "timeline": _timeline(summary, period, since),
        "top_symbols": [{"symbol": s, "count": n} for s, n in summary.symbols],
        "top_sender_domains": [
            {
                "domain": d.domain,
                "messages": d.messages,
                "dmarc_pass": d.dmarc_pass,
                "dmarc_pass_rate": round(d.pass_rate, 4),
            }
            for d in summary.domains
        ],
        "refused_clients": [{"client_ip": ip, "refused": n} for ip, n in summary.refused_clients],
        "greylist": {
            **await _greylist(greylist, now, auto_allow_after),
            "deferred_in_period": summary.greylist["deferred"],
            "passed_in_period": summary.greylist["passed"],
        },
        "dns": _dns(dnsbl, summary.timed_out),
    }
