"""Smoke test of benchmarks/reports_bench.py at small sizes: every figure is there and every
recorded message was written. No timing assertion (machine-dependent)."""

from __future__ import annotations

import json
from types import ModuleType

import pytest
from tests.benchmarks.loader import load_benchmark


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_benchmark("reports_bench", monkeypatch)


def test_quick_json_run(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--quick", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    gateway = summary["gateway"]
    assert gateway["with_recording_msgs_per_s"] > 0
    assert gateway["without_recording_msgs_per_s"] > 0
    assert gateway["ratio"] > 0
    assert gateway["evaluations_recorded"] == gateway["messages_sent_with_recording"] == 40
    assert summary["recorder"]["written_per_s"] > 0
    imported = summary["import"]
    assert imported["files"] >= 35
    assert imported["ours_reports_read"] >= 34  # every sample but the empty file
    assert imported["ratio_ours_vs_parsedmarc"] > 0


def test_text_output_without_the_gateway(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--quick", "--no-gateway"]) == 0
    out = capsys.readouterr().out
    assert "recorder alone" in out
    assert "ours/parsedmarc" in out
