"""Smoke test of benchmarks/spf_bench.py: it runs, both implementations agree, JSON is complete.

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
    return load_benchmark("spf_bench", monkeypatch)


def test_quick_json_run(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    spf = bench.load_pyspf()
    original_lookup = spf.DNSLookup

    assert bench.main(["--quick", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)

    assert set(summary) >= {
        "config",
        "agreement",
        "results",
        "evaluations_per_second",
        "ratios",
        "dns_queries_per_evaluation",
        "pyspf_warm_note",
        "goal",
        "goal_met",
    }
    assert set(summary["evaluations_per_second"]) == {
        "mailwarden_cold",
        "mailwarden_warm",
        "mailwarden_warm_concurrent",
        "pyspf_cold",
        "pyspf_warm",
        "pyspf_shared_cache",
    }
    assert all(eps > 0 for eps in summary["evaluations_per_second"].values())
    assert set(summary["ratios"]) == {
        "cold",
        "warm",
        "warm_concurrent",
        "warm_vs_pyspf_shared_cache",
    }

    # Total agreement, up to the documented pyspf quirks (each checked by re-running pyspf
    # without that quirk and getting mailwarden's answer).
    agreement = summary["agreement"]
    assert agreement["total"] == summary["config"]["queries"] == 200
    assert agreement["unexplained"] == 0, agreement["disagreements"]
    assert set(agreement["explained"]) <= set(agreement["quirks"])
    assert agreement["agree"] + sum(agreement["explained"].values()) == agreement["total"]

    # A mix of outcomes was exercised, and the warm cache kept mailwarden off "the network".
    assert {"pass", "fail", "softfail", "neutral"} <= set(summary["results"])
    dns = summary["dns_queries_per_evaluation"]
    assert dns["mailwarden_cold_upstream"] > 0
    assert dns["mailwarden_warm_upstream"] == 0
    assert dns["pyspf_cold"] > 0

    assert spf.DNSLookup is original_lookup  # pyspf's resolver was put back
