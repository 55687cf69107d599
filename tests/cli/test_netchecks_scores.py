"""`iprev`, `helo` and `dnsbl` show the policy's scores: the defaults as they always were, and
what the configuration file's [policy] says (scores, hard_reject) when it says something."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailwarden.cli import run

ZONE = """\
$ORIGIN .
$TTL 300
2.2.0.192.in-addr.arpa.            PTR   liar.example.net.
liar.example.net.                  A     198.51.100.9
2.2.0.192.zen.spamhaus.org.        A     127.0.0.4
2.2.0.192.bl.example.              A     127.0.0.2
"""
CONFIG = """\
[policy]
hard_reject = ["HELO_FORGED"]
[policy.scores]
IPREV_FAIL = 2.75
HELO_FORGED = 8.0
RBL_ZEN_XBL = 0.5
"""


@pytest.fixture
def offline(tmp_path: Path) -> list[str]:
    (tmp_path / "net.zone").write_text(ZONE)
    return ["--dns-zone", str(tmp_path / "net.zone"), "--json"]


@pytest.fixture
def configured(tmp_path: Path, offline: list[str]) -> list[str]:
    (tmp_path / "policy.toml").write_text(CONFIG)
    return [*offline, "--config", str(tmp_path / "policy.toml")]


def output(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert run(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_iprev(
    capsys: pytest.CaptureFixture[str], offline: list[str], configured: list[str]
) -> None:
    assert output(capsys, "iprev", "192.0.2.2", *offline)["symbol"]["score"] == 1.5
    assert output(capsys, "iprev", "192.0.2.2", *configured)["symbol"]["score"] == 2.75


def test_helo(
    capsys: pytest.CaptureFixture[str], offline: list[str], configured: list[str]
) -> None:
    args = ["helo", "mx.ours.example", "--ip", "192.0.2.2", "--our-name", "mx.ours.example"]
    default = output(capsys, *args, *offline)
    assert [(s["name"], s["score"]) for s in default["symbols"]] == [
        ("HELO_FORGED", 5.0),
        ("HELO_NORESOLVE", 1.0),
    ]
    assert (default["score"], default["rejected_by"]) == (6.0, None)
    strict = output(capsys, *args, *configured)
    assert [(s["name"], s["score"]) for s in strict["symbols"]] == [
        ("HELO_FORGED", 8.0),
        ("HELO_NORESOLVE", 1.0),
    ]
    assert (strict["score"], strict["rejected_by"]) == (9.0, "HELO_FORGED")


def test_dnsbl(
    capsys: pytest.CaptureFixture[str], offline: list[str], configured: list[str]
) -> None:
    args = ["dnsbl", "192.0.2.2", "--list", "zen", "--zone", "bl.example"]
    default = output(capsys, *args, *offline)
    scores = [("RBL_ZEN_XBL", 5.0), ("RBL_BL_EXAMPLE", 1.0)]  # as the definitions weigh them
    assert [(s["name"], s["score"]) for s in default["symbols"]] == scores
    listed = [(s["name"], s["score"]) for r in default["results"] for s in r["symbols"]]
    assert listed == scores
    strict = output(capsys, *args, *configured)
    assert [(s["name"], s["score"]) for s in strict["symbols"]] == [
        ("RBL_ZEN_XBL", 0.5),
        ("RBL_BL_EXAMPLE", 1.0),
    ]


def test_the_tables_show_the_policys_scores(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, configured: list[str]
) -> None:
    human = [a for a in configured if a != "--json"]
    run(["helo", "mx.ours.example", "--ip", "192.0.2.2", "--our-name", "mx.ours.example", *human])
    assert "HELO_FORGED" in (out := capsys.readouterr().out)
    assert "│     8 │" in out
    run(["dnsbl", "192.0.2.2", "--list", "zen", *human])
    assert "RBL_ZEN_XBL(0.5)" in capsys.readouterr().out
