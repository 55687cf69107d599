"""Smoke test of benchmarks/http_bench.py: `mailwarden http` and `check --batch` run on the
corpus (DNS from nsd when installed), give equal verdicts, and the summary is complete. No
timing assertion."""

from __future__ import annotations

import json

import pytest
from tests.benchmarks.loader import load_benchmark


def test_quick_json_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_benchmark("http_bench", monkeypatch)
    assert module.main(["--quick", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["messages"] == 6
    assert summary["equal"] == 6
    assert set(summary["per_second"]) == {
        "batch",
        "batch_with_startup",
        "http",
        "http_from_first_request",
    }
    assert all(rate > 0 for rate in summary["per_second"].values())
    assert summary["ratio"] > 0
