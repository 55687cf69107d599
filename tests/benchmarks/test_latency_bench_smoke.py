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


def test_quick_run_over_real_sockets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--nsd: nsd on loopback behind the delaying relay; every verdict right, figures sane."""
    module = load_benchmark("latency_bench", monkeypatch)
    argv = ["--nsd", "--quick", "--json", "--delay", "0.005", "--in-flight", "5", "--burst", "12"]
    assert module.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mode"] == "nsd"
    assert summary["sequential"]["p50_ratio"] >= 1.0  # the relay's delay is real
    assert summary["in_flight"]["messages"] == 12
    assert 0 < summary["in_flight"]["p50_ms"] <= summary["in_flight"]["p99_ms"]
    assert summary["in_flight"]["udp_dropped"] >= 0
