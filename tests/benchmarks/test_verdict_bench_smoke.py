"""Smoke test of benchmarks/verdict_bench.py: both stacks run on the corpus, every difference
in results is explained, the JSON summary is complete. No timing assertion."""

from __future__ import annotations

import json

import pytest
from tests.benchmarks.loader import load_benchmark
from tests.testdata import unavailable


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
    assert summary["dns_queries_per_message"] > 0
    assert "over_dns" not in summary  # --quick leaves out the run against nsd


def test_quick_run_over_dns_with_workers_and_rspamd(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check --batch --workers 2` against nsd gives the verdicts of one process, and rspamd
    (when installed) reaches the same SPF, DKIM, DMARC and ARC results."""
    module = load_benchmark("verdict_bench", monkeypatch)
    if module.nsd_program() is None:
        unavailable("nsd is not installed (Debian package nsd; make system-deps)")
    assert module.main(["--quick", "--json", "--dns-peers", "--workers", "2"]) == 0
    dns = json.loads(capsys.readouterr().out)["over_dns"]
    assert dns["workers_agree_with_one_process"] is True
    assert {"mailwarden_batch_1", "mailwarden_batch_2", "python_stack_dns"} <= set(
        dns["per_second"]
    )
    assert dns["python_stack_dns_agrees"] is True
    assert dns["ratio_vs_python_stack_dns"] > 0
    if module.rspamd_peer.rspamd_program() is not None:
        assert {"rspamd_1", "rspamd_2"} <= set(dns["per_second"])
        assert dns["agreement_with_rspamd"] == dns["messages"]
        assert dns["ratio_vs_rspamd_same_workers"] > 0
