"""Prometheus metrics: what every front end and check counts and times.

The front ends, the pipeline and the DNS cache call the small functions here (never
prometheus-client directly), so the metric names, labels and the multi-process set-up live in
one place. The metric objects are made on first use, after a worker launcher could choose
multi-process values (`use_worker_processes`); label children are kept in small caches so a
hot path pays one dictionary look-up and one increment.

Metrics (all prefixed `mailwarden_`):

    answer_seconds{frontend,stage}            histogram  a front end's answer to its peer
    open_connections{frontend}                gauge      connections open now
    replies_total{frontend,code}              counter    every reply a front end sent
    transactions_total{action,stage,code,enhanced}  counter  final answers to transactions
    symbols_total{symbol}                     counter    symbols the policy saw
    auth_results_total{method,result}         counter    SPF, DKIM, DMARC, ARC results
    stage_seconds{stage}                      histogram  connect, helo, mail, rcpt, data
    check_seconds{check}                      histogram  spf, spf_helo, dkim, arc, dmarc,
                                                         iprev, helo, dnsbl, rhsbl
    dns_queries_total{rdtype,outcome}         counter    queries sent (answer, nxdomain,
                                                         nodata, timeout, error)
    dns_query_seconds{rdtype}                 histogram  each query sent
    dns_cache_total{result}                   counter    hit, miss, coalesced
    greylist_decisions_total{decision}        counter    deferred, passed
    greylist_entries{state}                   gauge      pending, passed, allowed
    dns_list_healthy{list}                    gauge      1 healthy, 0 marked unhealthy
"""

from __future__ import annotations

import contextlib
import os
from bisect import bisect_left
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # prometheus-client itself is imported when a first metric is made
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "account_alert",
    "check_seconds",
    "connection_closed",
    "connection_opened",
    "counting_nothing",
    "dns_cache",
    "dns_list_health",
    "dns_query",
    "exposition",
    "greylist_decision",
    "greylist_entries",
    "observe_answer",
    "reply_sent",
    "stage_seconds",
    "total",
    "transaction",
    "use_one_process",
    "use_worker_processes",
    "verdict_seen",
    "worker_exited",
]

# Postfix's milter and policy time budgets are 30 s (command) and 300 s (content): the buckets
# reach beyond them so an answer that came too late is still counted where it fell.
_ANSWER_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    100,
    300,
)
# A check is a few milliseconds warm, a few hundred cold; the deadlines end at 10-20 s.
_CHECK_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    20,
)
# A DNS query: loopback sub-millisecond, a far server 100 ms, a silent one the timeout.
_DNS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

_MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


@cache
def _prometheus() -> None:
    """Import prometheus-client (45 ms of a command's start-up: only once something is
    counted or shown) and set it up: Prometheus's 0.0.4 text format, which every scraper
    reads; no `_created` series (they double the output and no dashboard uses them)."""
    import prometheus_client

    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


# -- the metric objects, made on first use ---------------------------------------------------
@cache
def _answer_seconds() -> Histogram:
    _prometheus()
    from prometheus_client import Histogram

    return Histogram(
        "mailwarden_answer_seconds",
        "Time a front end took to answer its peer, by front end and stage",
        ["frontend", "stage"],
        buckets=_ANSWER_BUCKETS,
    )


@cache
def _open_connections() -> Gauge:
    _prometheus()
    from prometheus_client import Gauge

    return Gauge(
        "mailwarden_open_connections",
        "Connections open now, by front end",
        ["frontend"],
        multiprocess_mode="livesum",
    )


@cache
def _replies() -> Counter:
    _prometheus()
    from prometheus_client import Counter

    return Counter(
        "mailwarden_replies", "Replies a front end sent, by reply code", ["frontend", "code"]
    )


@cache
def _transactions() -> Counter:
    _prometheus()
    from prometheus_client import Counter

    return Counter(
        "mailwarden_transactions",
        "Transactions answered, by action, the stage that answered and the reply",
        ["action", "stage", "code", "enhanced"],
    )


@cache
def _symbols() -> Counter:
    _prometheus()
    from prometheus_client import Counter

    return Counter("mailwarden_symbols", "Symbols the policy saw, by name", ["symbol"])


@cache
def _auth_results() -> Counter:
    _prometheus()
    from prometheus_client import Counter

    return Counter(
        "mailwarden_auth_results",
        "Authentication results (spf, dkim, dmarc, arc) by result",
        ["method", "result"],
    )


@cache
def _stage_seconds() -> Histogram:
    _prometheus()
    from prometheus_client import Histogram

    return Histogram(
        "mailwarden_stage_seconds",
        "Time the checks of one stage took (connect, helo, mail, rcpt, data)",
        ["stage"],
        buckets=_CHECK_BUCKETS,
    )


@cache
def _check_seconds() -> Histogram:
    _prometheus()
    from prometheus_client import Histogram

    return Histogram(
        "mailwarden_check_seconds",
        "Time one check took (spf, spf_helo, dkim, arc, dmarc, iprev, helo, dnsbl, rhsbl)",
        ["check"],
        buckets=_CHECK_BUCKETS,
    )


@cache
def _dns_queries() -> Counter:
    _prometheus()
    from prometheus_client import Counter

    return Counter(
        "mailwarden_dns_queries",
        "DNS queries sent (not answered from the cache), by type and outcome",
        ["rdtype", "outcome"],
    )


@cache
def _dns_query_seconds() -> Histogram:
    _prometheus()
    from prometheus_client import Histogram

    return Histogram(
        "mailwarden_dns_query_seconds",
        "Time one DNS query took, by type",
        ["rdtype"],
        buckets=_DNS_BUCKETS,
    )


@cache
def _dns_cache() -> Counter:
    _prometheus()
    from prometheus_client import Counter

    return Counter(
        "mailwarden_dns_cache",
        "DNS look-ups by what the cache did (hit, miss, coalesced)",
        ["result"],
    )


@cache
def _greylist_decisions() -> Counter:
    _prometheus()
    from prometheus_client import Counter

    return Counter(
        "mailwarden_greylist_decisions",
        "Greylisting decisions (deferred, passed)",
        ["decision"],
    )


@cache
def _greylist_entries() -> Gauge:
    _prometheus()
    from prometheus_client import Gauge

    return Gauge(
        "mailwarden_greylist_entries",
        "Greylist entries in the store (pending, passed, allowed), as last counted",
        ["state"],
        multiprocess_mode="mostrecent",
    )


@cache
def _account_alerts() -> Counter:
    _prometheus()
    from prometheus_client import Counter

    return Counter(
        "mailwarden_submission_alerts",
        "Accounts held as possibly compromised, by the sign that was seen",
        ["sign"],
    )


@cache
def _dns_list_healthy() -> Gauge:
    _prometheus()
    from prometheus_client import Gauge

    return Gauge(
        "mailwarden_dns_list_healthy",
        "1 when the DNS list passes its RFC 5782 section 5 test entries, 0 when unhealthy",
        ["list"],
        multiprocess_mode="mostrecent",
    )


# -- label children, cached: the hot path's cost is a look-up and an increment ---------------
# A hot-path call goes straight to the child's value objects (prometheus-client's `_value`,
# `_sum`, `_buckets`, `_upper_bounds`), skipping the per-call checks of `inc` and `observe`
# (they cost more than the increment); tests/metrics/test_metrics.py checks the figures are
# those of the public calls, and without those attributes the public calls are used.
_Increment = Callable[[float], None]


def _incrementer(child: Counter) -> _Increment:
    value = getattr(child, "_value", None)
    if value is None or not callable(getattr(value, "inc", None)):  # pragma: no cover
        return child.inc
    inc: _Increment = value.inc
    return inc


def _observer(child: Histogram) -> _Increment:
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if bounds is None or buckets is None or total is None:  # pragma: no cover
        return child.observe
    adds = [bucket.inc for bucket in buckets]
    add_sum = total.inc
    bounds = list(bounds)

    def observe(amount: float) -> None:
        add_sum(amount)
        adds[bisect_left(bounds, amount)](1)  # the first bucket whose bound holds it

    return observe


@cache
def _symbol(name: str) -> _Increment:
    return _incrementer(_symbols().labels(symbol=name))


@cache
def _auth(method: str, result: str) -> _Increment:
    return _incrementer(_auth_results().labels(method=method, result=result))


@cache
def _stage(stage: str) -> _Increment:
    return _observer(_stage_seconds().labels(stage=stage))


@cache
def _check(check: str) -> _Increment:
    return _observer(_check_seconds().labels(check=check))


@cache
def _cache_result(result: str) -> _Increment:
    return _incrementer(_dns_cache().labels(result=result))


@cache
def _query(rdtype: str, outcome: str) -> _Increment:
    return _incrementer(_dns_queries().labels(rdtype=rdtype, outcome=outcome))


@cache
def _query_seconds(rdtype: str) -> _Increment:
    return _observer(_dns_query_seconds().labels(rdtype=rdtype))


@cache
def _answer(frontend: str, stage: str) -> _Increment:
    return _observer(_answer_seconds().labels(frontend=frontend, stage=stage))


@cache
def _reply(frontend: str, code: int) -> _Increment:
    return _incrementer(_replies().labels(frontend=frontend, code=str(code)))


@cache
def _transaction(action: str, stage: str, code: int | None, enhanced: str) -> _Increment:
    labels = {"action": action, "stage": stage, "code": str(code) if code else ""}
    return _incrementer(_transactions().labels(**labels, enhanced=enhanced))


@cache
def _connections(frontend: str) -> Gauge:
    return _open_connections().labels(frontend=frontend)


_CACHES = (
    _answer_seconds,
    _open_connections,
    _replies,
    _transactions,
    _symbols,
    _auth_results,
    _stage_seconds,
    _check_seconds,
    _dns_queries,
    _dns_query_seconds,
    _dns_cache,
    _account_alerts,
    _greylist_decisions,
    _greylist_entries,
    _dns_list_healthy,
)
_CHILDREN = (
    _symbol,
    _auth,
    _stage,
    _check,
    _cache_result,
    _query,
    _query_seconds,
    _answer,
    _reply,
    _transaction,
    _connections,
)


# -- what callers record ---------------------------------------------------------------------
def observe_answer(frontend: str, stage: str, seconds: float) -> None:
    """A front end (`milter`, `policy`, `gateway`, `http`) answered `stage` in `seconds`."""
    _answer(frontend, stage)(seconds)


def connection_opened(frontend: str) -> None:
    _connections(frontend).inc()


def connection_closed(frontend: str) -> None:
    _connections(frontend).dec()


def reply_sent(frontend: str, code: int) -> None:
    _reply(frontend, code)(1)


def transaction(action: str, stage: str, code: int | None = None, enhanced: str = "") -> None:
    """A transaction got its final answer at `stage` (`rcpt`, `data`): the policy's `action`
    and the reply sent (`code` None: relayed, the downstream's answer was the client's)."""
    _transaction(action, stage, code, enhanced)(1)


def verdict_seen(symbols: list[str], results: list[tuple[str, str]]) -> None:
    """One verdict: its symbols' names and its (method, result) authentication results."""
    for name in symbols:
        _symbol(name)(1)
    for method, result in results:
        _auth(method, result)(1)


def stage_seconds(stage: str, seconds: float) -> None:
    _stage(stage)(seconds)


def check_seconds(check: str, seconds: float) -> None:
    _check(check)(seconds)


def dns_cache(result: str) -> None:
    """The DNS cache answered a look-up (`hit`), sent a query (`miss`) or joined one in
    flight (`coalesced`)."""
    _cache_result(result)(1)


def dns_query(rdtype: str, outcome: str, seconds: float) -> None:
    """One query sent: `outcome` is answer, nxdomain, nodata, timeout or error."""
    _query(rdtype, outcome)(1)
    _query_seconds(rdtype)(seconds)


def greylist_decision(decision: str) -> None:
    _greylist_decisions().labels(decision=decision).inc()


def account_alert(sign: str) -> None:
    """The submission server held an account (`sign`: volume, recipients, logins, ...)."""
    _account_alerts().labels(sign=sign).inc()


def greylist_entries(pending: int, passed: int, allowed: int) -> None:
    """The greylist store's counts, as last read (the dashboard and the health loop read
    them)."""
    gauge = _greylist_entries()
    gauge.labels(state="pending").set(pending)
    gauge.labels(state="passed").set(passed)
    gauge.labels(state="allowed").set(allowed)


def dns_list_health(name: str, healthy: bool) -> None:
    _dns_list_healthy().labels(list=name).set(1 if healthy else 0)


_RECORDERS = (
    "observe_answer",
    "connection_opened",
    "connection_closed",
    "reply_sent",
    "transaction",
    "verdict_seen",
    "stage_seconds",
    "check_seconds",
    "dns_cache",
    "dns_query",
    "greylist_decision",
    "account_alert",
    "greylist_entries",
    "dns_list_health",
)


def _nothing(*args: Any, **kwargs: Any) -> None:
    """A recording function while nothing is counted."""


@contextlib.contextmanager
def counting_nothing() -> Iterator[None]:
    """Within it, the functions that record (`verdict_seen`, `dns_query`, ...) do nothing:
    for a command whose figures nobody can read (`check` serves no /metrics), which then
    neither pays for counting nor imports prometheus-client. Worker processes forked inside
    inherit it. Callers reach the functions through the module (`metrics.dns_query(...)`),
    so they see the swap."""
    names = globals()
    saved = {name: names[name] for name in _RECORDERS}
    names.update(dict.fromkeys(_RECORDERS, _nothing))
    try:
        yield
    finally:
        names.update(saved)


# -- several worker processes ----------------------------------------------------------------
def use_worker_processes(directory: Path) -> None:
    """Count in shared files under `directory`, so the figures of forked worker processes are
    added up (prometheus-client's multi-process mode). Call it in the launcher before forking
    any worker and before anything is counted; the directory is emptied (figures of an
    earlier run must not be added in). The `/metrics` of any worker then shows the sum."""
    directory = Path(directory)
    if directory.exists():
        for entry in directory.iterdir():
            if entry.suffix == ".db":
                entry.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[_MULTIPROCESS_ENV] = str(directory)
    from prometheus_client import values

    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    _forget_metrics()


def use_one_process() -> None:
    """Back to counting in this process's memory: undoes `use_worker_processes` for a
    launcher that goes on once its workers ended (`serve --workers` run in-process, by a test
    or an embedding program); the figures counted meanwhile are left in the files."""
    os.environ.pop(_MULTIPROCESS_ENV, None)
    from prometheus_client import values

    values.ValueClass = values.MutexValue
    _forget_metrics()


def worker_exited(pid: int) -> None:
    """A worker process ended: its live gauges (open connections) stop counting."""
    if os.environ.get(_MULTIPROCESS_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _forget_metrics() -> None:
    """Metrics made before the mode changed are unregistered and made again on next use."""
    from prometheus_client import REGISTRY

    for made in _CACHES:
        if made.cache_info().currsize:
            with contextlib.suppress(KeyError):
                REGISTRY.unregister(made())
        made.cache_clear()
    for child in _CHILDREN:
        child.cache_clear()


def _registry() -> CollectorRegistry:
    """This process's registry, or one that adds up every worker's files."""
    _prometheus()
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, values

    directory = os.environ.get(_MULTIPROCESS_ENV)
    if directory and values.ValueClass is not values.MutexValue:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def total(sample: str, **labels: str) -> float:
    """The sum of the samples named `sample` whose labels include `labels` (every worker's
    in multi-process mode): what the dashboard shows of the metrics."""
    found = 0.0
    for family in _registry().collect():
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                found += s.value
    return found


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus's text format, and its content type: this process's, or
    every worker's added up in multi-process mode."""
    from prometheus_client import generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

    return generate_latest(_registry()), CONTENT_TYPE_PLAIN_0_0_4
