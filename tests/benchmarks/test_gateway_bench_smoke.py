"""Smoke test of benchmarks/gateway_bench.py: it runs end to end and its JSON is complete.

No timing assertion: the figures depend on the machine. The script is loaded from its path
(benchmarks/ is not a package). Postfix takes part when the machine can run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tests.benchmarks.loader import load_benchmark


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_benchmark("gateway_bench", monkeypatch)


def test_quick_json_run(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--quick", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == {"config", "downstreams", "idle_memory", "large_memory"}
    assert summary["config"]["clients"] == 10
    sink = summary["downstreams"]["sink"]
    assert set(sink) == {
        "direct_msgs_per_s",
        "gateway_msgs_per_s",
        "ratio",
        "gateway_cpu_ms_per_message",
        "downstream_cpu_ms_per_message",
        "client_cpu_ms_per_message",
        "cpu_bound_ratio",
        "gateway_cpu_budget_ms",
    }
    assert sink["gateway_cpu_ms_per_message"] > 0
    assert sink["downstream_cpu_ms_per_message"] > 0
    assert sink["client_cpu_ms_per_message"] > 0
    assert 0 < sink["cpu_bound_ratio"] < 1  # the gateway's CPU comes on top
    assert sink["gateway_cpu_budget_ms"] >= 0
    assert sink["direct_msgs_per_s"] > 0
    assert sink["gateway_msgs_per_s"] > 0
    assert sink["ratio"] == pytest.approx(
        sink["gateway_msgs_per_s"] / sink["direct_msgs_per_s"], rel=0.01
    )
    postfix = summary["downstreams"]["postfix"]
    assert postfix is None or postfix["gateway_msgs_per_s"] > 0
    assert postfix is None or postfix["downstream_cpu_ms_per_message"] > 0  # Postfix's tree
    idle = summary["idle_memory"]
    assert idle["connections"] == 50
    assert idle["rss_idle_mib"] > 0
    assert idle["rss_before_mib"] > 0
    large = summary["large_memory"]
    assert large["messages"] == 2
    assert large["size_mib"] == pytest.approx(1.0, abs=0.1)
    assert large["rss_peak_mib"] >= large["rss_before_mib"]
    assert large["rise_mib"] == pytest.approx(
        large["rss_peak_mib"] - large["rss_before_mib"], abs=0.11
    )


def test_tree_cpu_counts_descendants_that_ended(bench: ModuleType) -> None:
    """A process whose child worked and ended (reaped): the child's CPU is counted."""
    child = "x = 0\nfor i in range(4_000_000): x += i\n"
    parent = (
        "import subprocess, sys\n"
        f"subprocess.run([sys.executable, '-c', {child!r}], check=True)\n"
        "print('done', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", parent], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "done\n"
        own = proc_cpu(proc.pid)
        assert bench.tree_cpu(proc.pid) >= own + 0.1  # the loop takes well over 0.1 s
    finally:
        proc.communicate("")


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
