"""Smoke test of benchmarks/greylist_bench.py at 1,000 keys: it runs on all three stores,
they agree, and the JSON summary is complete. No timing assertion (machine-dependent)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType

import pytest
from tests.benchmarks.loader import load_benchmark
from tests.greylist.redis_server import redis_server


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_benchmark("greylist_bench", monkeypatch)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def test_quick_json_run(
    bench: ModuleType, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--quick", "--json", "--redis", redis_url]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) >= {
        "config",
        "peer_note",
        "load_seconds",
        "decisions_per_second",
        "concurrent_decisions_per_second",
        "ratios_vs_memory",
        "agreement",
        "actions",
    }
    assert summary["config"]["keys"] == 1000
    stores = {"memory", "sqlite", "redis"}
    assert set(summary["decisions_per_second"]) == stores
    assert all(v > 0 for v in summary["decisions_per_second"].values())
    assert all(v > 0 for v in summary["concurrent_decisions_per_second"].values())
    agreement = summary["agreement"]
    assert agreement["identical"] == dict.fromkeys(stores, agreement["decisions"])
    assert agreement["expected"] == agreement["decisions"] == 500
    # The seeded mix: known and retried triplets pass, first sightings are deferred.
    assert summary["actions"] == {"pass": 400, "defer": 100}
    assert "no Python greylisting library" in summary["peer_note"]


def test_text_output_and_store_selection(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--keys", "200", "--decisions", "100", "--stores", "memory,sqlite"]) == 0
    out = capsys.readouterr().out
    assert "200 stored keys" in out
    assert "sqlite" in out
    assert "redis" not in out.split("\n", 2)[2]
    with pytest.raises(SystemExit):
        bench.main(["--stores", "sqlite"])  # memory is the reference
