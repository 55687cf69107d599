"""Smoke test of benchmarks/dkim_bench.py: it runs at a tiny size and both sides agree.

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
    return load_benchmark("dkim_bench", monkeypatch)


def test_quick_json_run(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--quick", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) >= {
        "config",
        "agreement",
        "per_second",
        "ratios",
        "goal",
        "goal_met",
        "primitive_verify_us",
        "goal_met_by_algorithm",
        "ed25519_budget",
    }
    assert all(value > 0 for value in summary["primitive_verify_us"].values())
    budget = summary["ed25519_budget"]
    # per_second is rounded to 0.1: on a slow run (113/s under tracemalloc) that rounding
    # alone moves 1e6 / per_second by up to 0.05 / 113 of itself (4 us).
    rate = summary["per_second"]["verify_ed25519_mailwarden"]
    assert budget["mailwarden_us"] == pytest.approx(1e6 / rate, rel=0.05 / rate + 1e-5, abs=0.1)
    assert budget["mailwarden_rest_us"] == pytest.approx(
        budget["mailwarden_us"] - budget["mailwarden_check_us"], abs=0.2
    )
    assert budget["dkimpy_rest_us"] == pytest.approx(
        budget["dkimpy_us"] - budget["dkimpy_check_us"], abs=0.2
    )
    assert summary["agreement"] == {"total": 20, "disagreements": 0}
    expected = {
        f"{kind}_{alg}_{who}"
        for kind in ("verify", "sign")
        for alg in ("rsa", "ed25519")
        for who in ("mailwarden", "dkimpy")
    }
    assert set(summary["per_second"]) == expected
    assert all(value > 0 for value in summary["per_second"].values())
    assert set(summary["ratios"]) == {"verify_rsa", "verify_ed25519", "sign_rsa", "sign_ed25519"}


def test_messages_are_the_asked_size(bench: ModuleType) -> None:
    import random

    message = bench.make_message(random.Random(1), 0, 10_240)
    assert 9_000 < len(message) < 11_500
    assert b"\r\n\r\n" in message
    assert b"\n" not in message.replace(b"\r\n", b"")


def test_human_report(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "verify rsa-2048" in out
    assert "ratio" in out
    assert "ed25519 per message (us): mailwarden" in out
    assert "ed25519 goal needs our rest <=" in out
