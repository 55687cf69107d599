"""Smoke test of benchmarks/latency_bench.py: it runs, every verdict is right, JSON is complete.

No timing assertion beyond a generous bound: the figures depend on the machine.
"""

from __future__ import annotations

import json

import pytest
from tests.benchmarks.loader import load_benchmark


def test_quick_json_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_benchmark("latency_bench", monkeypatch)
    assert module.main(["--quick", "--json", "--delay", "0.005"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["messages"] == 6
    assert set(summary["by_floor"]) == {"4 rounds", "5 rounds", "6 rounds"}
    assert summary["mean_ratio"] >= 1.0  # nothing beats the floor
    assert summary["mean_ratio"] < 5.0  # lookups that should run concurrently do
