"""Prometheus metrics: what every front end and check counts and times.

The front ends call the small functions here (never prometheus-client directly), so the metric
names, labels and the multi-process set-up live in one place. The metric objects are made on
first use, after a worker launcher could choose multi-process values.
"""

from __future__ import annotations

from functools import cache

from prometheus_client import Gauge, Histogram

__all__ = ["connection_closed", "connection_opened", "exposition", "observe_answer"]

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


@cache
def _answer_seconds() -> Histogram:
    return Histogram(
        "mailwarden_answer_seconds",
        "Time a front end took to answer its peer, by front end and stage",
        ["frontend", "stage"],
        buckets=_ANSWER_BUCKETS,
    )


@cache
def _open_connections() -> Gauge:
    return Gauge(
        "mailwarden_open_connections",
        "Connections open now, by front end",
        ["frontend"],
        multiprocess_mode="livesum",
    )


def observe_answer(frontend: str, stage: str, seconds: float) -> None:
    """A front end (`milter`, `policy`, `gateway`, `http`) answered `stage` in `seconds`."""
    _answer_seconds().labels(frontend=frontend, stage=stage).observe(seconds)


def connection_opened(frontend: str) -> None:
    _open_connections().labels(frontend=frontend).inc()


def connection_closed(frontend: str) -> None:
    _open_connections().labels(frontend=frontend).dec()


def exposition() -> tuple[bytes, str]:
    """Every metric in the Prometheus text format: the body of `GET /metrics` and its content
    type."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
