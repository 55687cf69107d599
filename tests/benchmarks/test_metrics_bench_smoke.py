"""Smoke test of benchmarks/metrics_bench.py: it runs, both modes check the corpus, the no-op
switch really switches the metrics off and puts them back. No timing assertion."""

from __future__ import annotations

import json
from types import ModuleType

import pytest
from prometheus_client import REGISTRY
from tests.benchmarks.loader import load_benchmark

from mailwarden import metrics


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_benchmark("metrics_bench", monkeypatch)


def test_quick_json_run(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--quick", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["messages"] == 6
    assert summary["per_second"]["with_metrics"] > 0
    assert summary["per_second"]["without_metrics"] > 0
    assert summary["cost_ratio"] > 0


def test_the_switch_turns_the_metrics_off_and_back(bench: ModuleType) -> None:
    def count() -> float:
        return REGISTRY.get_sample_value("mailwarden_dns_cache_total", {"result": "hit"}) or 0.0

    metrics.dns_cache("hit")
    before = count()
    with bench.metrics_off():
        metrics.dns_cache("hit")
        assert count() == before
    metrics.dns_cache("hit")
    assert count() == before + 1
