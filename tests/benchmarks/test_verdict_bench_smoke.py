"""Smoke test of benchmarks/verdict_bench.py: both stacks run on the corpus, every difference
in results is explained, the JSON summary is complete. No timing assertion."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "verdict_bench.py"


def test_quick_json_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("verdict_bench_under_test", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["messages"] == 4
    assert summary["unexplained_differences"] == []
    assert set(summary["per_second"]) == {
        "mailwarden_warm",
        "mailwarden_cold",
        "python_stack",
        "python_stack_memoised_psl",
    }
