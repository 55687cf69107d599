"""Smoke test of benchmarks/dns_bench.py: it runs against a private nsd, every candidate's
outcomes are right (the script checks them before counting), and its JSON is complete.

No timing assertion: the figures depend on the machine.
"""

from __future__ import annotations

import json

import pytest
from tests.benchmarks.loader import load_benchmark
from tests.dns.nsd import nsd_program
from tests.testdata import unavailable


def test_quick_json_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if nsd_program() is None:
        unavailable("nsd is not installed (Debian package nsd; make system-deps)")
    module = load_benchmark("dns_bench", monkeypatch)
    assert module.main(["--quick", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["config"]["queries"] == 200
    assert summary["config"]["loops"][0] == "asyncio"
    results = summary["results"]
    expected = {"harness", "dnspython", "mailwarden", "mw-protocol", "mw+cache"}
    expected |= {"c-ares"} if summary["c_ares"] else set()
    assert set(results) == expected
    for name in expected:
        for loop in summary["config"]["loops"]:
            for mode in ("concurrent", "sequential"):
                figures = results[name][loop][mode]
                assert figures["cpu_us_per_query"] > 0
                assert figures["queries_per_s"] > 0
    ratios = summary["ratios_vs_dnspython_on_asyncio"]["mailwarden"]["asyncio"]["concurrent"]
    assert ratios["cpu_vs_dnspython"] > 0
    assert summary["goal_cpu_us_per_query"] == 60.0


def test_without_nsd_it_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_benchmark("dns_bench", monkeypatch)
    monkeypatch.setattr(module, "nsd_program", lambda: None)
    assert module.main(["--quick"]) == 2
    assert "nsd is not installed" in capsys.readouterr().err
