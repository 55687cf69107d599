"""Smoke test of benchmarks/warm_profile.py and benchmarks/compare_verdicts.py: a tiny corpus
checked warm and cold, profiled, dumped, and one version compared with itself. No timing
assertion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.benchmarks.loader import load_benchmark

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_warm_and_cold_with_a_profile_and_a_dump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_benchmark("warm_profile", monkeypatch)
    corpus, dump = tmp_path / "corpus.pickle", tmp_path / "verdicts.jsonl"
    argv = ["--messages", "4", "--domains", "2", "--corpus", str(corpus)]
    assert module.main([*argv, "--profile", "warm", "--dump", str(dump), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["messages"] == 4
    assert report["warm_calls_per_message"] > 0
    assert report["warm_cpu_ms_per_message"] > 0
    assert report["cold_cpu_ms_per_message"] > 0
    verdicts = [json.loads(line) for line in dump.read_text().splitlines()]
    assert [v["mode"] for v in verdicts] == ["warm"] * 4 + ["cold"] * 4
    assert all(v["dkim"][0]["result"] == "pass" for v in verdicts)  # every message is signed
    assert corpus.exists()  # kept: a second run checks the same messages
    assert module.main([*argv, "--mode", "warm", "--callgrind", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert "cold_cpu_ms_per_message" not in again


def test_one_version_agrees_with_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_benchmark("compare_verdicts", monkeypatch)
    corpus = tmp_path / "corpus.pickle"
    argv = ["--messages", "3", "--domains", "2", "--corpus", str(corpus)]
    assert module.main([SRC, SRC, *argv]) == 0
    assert "6 verdicts compared: 0 differences" in capsys.readouterr().out
    left = {"a": [1, {"b": "x"}], "c": 1}
    right = {"a": [1, {"b": "y"}], "d": 1}
    assert sorted(module.differences(left, right, frozenset())) == [
        ".a[1].b: 'x' != 'y'",
        ".c: only in left",
        ".d: only in right",
    ]
    assert list(module.differences(left, right, frozenset({"a", "c", "d"}))) == []
