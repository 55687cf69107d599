"""Smoke test of benchmarks/arc_bench.py: it runs, both implementations agree, JSON is complete.

No timing assertion: the figures depend on the machine. The script is loaded from its path
(benchmarks/ is not a package).
"""

from __future__ import annotations

import json
from types import ModuleType

import pytest
from tests.benchmarks.loader import load_benchmark


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_benchmark("arc_bench", monkeypatch)


def test_quick_json_run(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--quick", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)

    assert set(summary) >= {
        "config",
        "agreement",
        "outcomes",
        "validations_per_second",
        "ratios",
        "goal",
        "goal_met",
    }
    agreement = summary["agreement"]
    assert agreement["total"] == summary["config"]["messages"] == 12
    assert agreement["disagreements"] == 0, agreement["examples"]
    # both outcomes were exercised, chains of one to three sets
    assert summary["outcomes"]["pass"] > 0
    assert summary["outcomes"]["fail"] > 0
    assert summary["config"]["arc_sets_per_message"] == 2.0
    assert set(summary["validations_per_second"]) == {
        "mailwarden_cold",
        "mailwarden_warm",
        "dkimpy",
    }
    assert all(value > 0 for value in summary["validations_per_second"].values())
    assert set(summary["ratios"]) == {"cold", "warm"}
