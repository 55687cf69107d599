"""Smoke test of benchmarks/milter_bench.py: it runs end to end and its JSON is complete.

No timing assertion: the figures depend on the machine. Postfix takes part when the machine
can run it (root and Postfix installed); otherwise the summary says so with null.
"""

from __future__ import annotations

import json
import os
import shutil
from types import ModuleType

import pytest
from tests.benchmarks.loader import load_benchmark


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_benchmark("milter_bench", monkeypatch)


def test_quick_json_run(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--quick", "--json", "--workers", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == {"config", "postfix"}
    assert summary["config"]["clients"] == 10
    assert summary["config"]["workers"] == 2
    figures = summary["postfix"]
    if os.geteuid() != 0 or not shutil.which("postfix", path="/usr/sbin:/usr/bin"):
        assert figures is None
        return
    assert figures["without_msgs_per_s"] > 0
    assert figures["with_msgs_per_s"] > 0
    assert figures["milter_cpu_ms_per_message"] > 0  # both workers' time counted
    assert figures["ratio"] == pytest.approx(
        figures["with_msgs_per_s"] / figures["without_msgs_per_s"], rel=0.01
    )
    assert figures["added_median_ms"] == pytest.approx(
        figures["with_median_ms"] - figures["without_median_ms"], abs=0.02
    )
