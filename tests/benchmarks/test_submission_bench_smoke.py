"""Smoke test of benchmarks/submission_bench.py: it runs end to end and its JSON is complete.

No timing assertion: the figures depend on the machine. Postfix is the smarthost when the
machine can run it, else the built-in sink.
"""

from __future__ import annotations

import json
from types import ModuleType

import pytest
from tests.benchmarks.loader import load_benchmark


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_benchmark("submission_bench", monkeypatch)


def test_quick_json_run(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--quick", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == {
        "config",
        "smarthost",
        "direct_msgs_per_s",
        "submission_msgs_per_s",
        "ratio",
    }
    assert summary["config"]["clients"] == 10
    assert summary["smarthost"] in ("postfix", "sink")
    assert summary["direct_msgs_per_s"] > 0
    assert summary["submission_msgs_per_s"] > 0
    assert summary["ratio"] == pytest.approx(
        summary["submission_msgs_per_s"] / summary["direct_msgs_per_s"], rel=0.01
    )
