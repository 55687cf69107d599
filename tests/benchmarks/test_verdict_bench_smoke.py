"""Smoke test of benchmarks/verdict_bench.py: both stacks run on the corpus, every difference
in results is explained, the JSON summary is complete. No timing assertion."""

from __future__ import annotations

import json

import pytest
from tests.benchmarks.loader import load_benchmark


def test_quick_json_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_benchmark("verdict_bench", monkeypatch)
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
