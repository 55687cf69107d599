"""Smoke test of benchmarks/latency_bench.py: it runs, every verdict is right, JSON is complete.

No timing assertion beyond a generous bound: the figures depend on the machine.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "latency_bench.py"


def test_quick_json_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("latency_bench_under_test", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--json", "--delay", "0.005"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["messages"] == 6
    assert set(summary["by_floor"]) == {"4 rounds", "5 rounds", "6 rounds"}
    assert summary["mean_ratio"] >= 1.0  # nothing beats the floor
    assert summary["mean_ratio"] < 5.0  # lookups that should run concurrently do
