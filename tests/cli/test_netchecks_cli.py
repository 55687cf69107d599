"""`mailwarden iprev`, `mailwarden helo` and `mailwarden dnsbl`, offline over a zone file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailwarden.cli import run

ZONE_TEXT = """\
$ORIGIN .
$TTL 300
1.2.0.192.in-addr.arpa.            PTR   mail.example.com.
2.2.0.192.in-addr.arpa.            PTR   liar.example.net.
mail.example.com.                  A     192.0.2.1
liar.example.net.                  A     198.51.100.9
1.2.0.192.zen.spamhaus.org.        A     127.0.0.2
1.2.0.192.zen.spamhaus.org.        A     127.0.0.10
1.2.0.192.zen.spamhaus.org.        TXT   "see https://check.spamhaus.org/"
3.2.0.192.zen.spamhaus.org.        A     127.255.255.254
10.2.0.192.list.dnswl.org.         A     127.0.5.3
2.0.0.127.zen.spamhaus.org.        A     127.0.0.2
2.0.0.127.bl.spamcop.net.          A     127.0.0.2
spam.example.dbl.spamhaus.org.     A     127.0.1.2
1.2.0.192.bl.example.              A     127.0.0.2
"""


@pytest.fixture
def offline(tmp_path: Path) -> list[str]:
    zone = tmp_path / "net.zone"
    zone.write_text(ZONE_TEXT, encoding="utf-8")
    return ["--dns-zone", str(zone)]


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("ip", "result", "symbol"),
    [
        ("192.0.2.1", "pass", "IPREV_PASS"),
        ("192.0.2.2", "fail", "IPREV_FAIL"),
        ("192.0.2.3", "permerror", "IPREV_PERMERROR"),
    ],
)
def test_iprev_json(
    capsys: pytest.CaptureFixture[str], offline: list[str], ip: str, result: str, symbol: str
) -> None:
    code, out, err = invoke(capsys, "iprev", ip, *offline, "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["result"] == result
    assert data["symbol"]["name"] == symbol
    assert data["policy_iprev"] == ip
    assert set(data) >= {"ip", "name", "names", "reason", "dns_queries"}


def test_iprev_human(capsys: pytest.CaptureFixture[str], offline: list[str]) -> None:
    code, out, _ = invoke(capsys, "iprev", "192.0.2.1", *offline)
    assert code == 0
    assert "iprev 192.0.2.1: pass" in out
    assert "mail.example.com" in out


def test_helo_json_and_human(capsys: pytest.CaptureFixture[str], offline: list[str]) -> None:
    code, out, _ = invoke(
        capsys,
        "helo",
        "mx.ours.example",
        "--ip",
        "192.0.2.2",
        "--our-name",
        "mx.ours.example",
        *offline,
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert {s["name"] for s in data["symbols"]} == {"HELO_FORGED", "HELO_NORESOLVE"}
    assert data["kind"] == "domain"
    assert data["rejected_by"] is None
    code, out, _ = invoke(capsys, "helo", "mail.example.com", "--ip", "192.0.2.1", *offline)
    assert "HELO_MATCHES_CLIENT" in out


def test_dnsbl_ip(capsys: pytest.CaptureFixture[str], offline: list[str]) -> None:
    code, out, err = invoke(capsys, "dnsbl", "192.0.2.1", *offline, "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["kind"] == "ip"
    assert [s["name"] for s in data["symbols"]] == ["RBL_ZEN_SBL", "RBL_ZEN_PBL"]
    assert data["listed"] == ["zen"]
    zen = next(r for r in data["results"] if r["list"] == "zen")
    assert zen["codes"] == ["127.0.0.2", "127.0.0.10"]
    assert zen["reason"] == "see https://check.spamhaus.org/"
    assert zen["query"] == "1.2.0.192.zen.spamhaus.org"

    _, out, _ = invoke(capsys, "dnsbl", "192.0.2.10", *offline, "--json")
    assert json.loads(out)["allowed"] == ["dnswl"]

    _, out, _ = invoke(capsys, "dnsbl", "192.0.2.3", *offline, "--json")
    data = json.loads(out)
    assert data["symbols"] == []
    assert any("zen" in w for w in data["warnings"])


def test_dnsbl_domain_selected_lists_and_health(
    capsys: pytest.CaptureFixture[str], offline: list[str]
) -> None:
    _, out, _ = invoke(capsys, "dnsbl", "Spam.Example", *offline, "--json")
    data = json.loads(out)
    assert data["kind"] == "domain"
    assert [s["name"] for s in data["symbols"]] == ["RHSBL_DBL_SPAM"]

    _, out, _ = invoke(
        capsys,
        "dnsbl",
        "192.0.2.1",
        "--list",
        "spamcop",
        "--zone",
        "bl.example",
        *offline,
        "--json",
    )
    data = json.loads(out)
    assert [r["list"] for r in data["results"]] == ["spamcop", "bl.example"]
    assert [s["name"] for s in data["symbols"]] == ["RBL_BL_EXAMPLE"]

    _, out, _ = invoke(
        capsys,
        "dnsbl",
        "192.0.2.1",
        "--list",
        "zen",
        "--list",
        "psbl",
        "--health",
        *offline,
        "--json",
    )
    health = json.loads(out)["health"]
    assert health["psbl"]["healthy"] is False  # no test entry in the zone
    assert health["zen"]["healthy"] is False  # no IPv6 test entry
    assert "DQS" in health["zen"]["needs_key"]


def test_dnsbl_show_lists(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(capsys, "dnsbl", "--show-lists", "--json")
    assert code == 0
    lists = {row["name"]: row for row in json.loads(out)}
    assert {"zen", "spamcop", "barracuda", "dnswl", "dbl"} <= set(lists)
    assert "DQS" in lists["zen"]["needs_key"]
    assert lists["zen"]["codes"]["127.0.0.2"] == {"symbol": "RBL_ZEN_SBL", "score": 4.0}
    assert lists["surbl"]["bitmask"]["8"]["symbol"] == "RHSBL_SURBL_PH"
    code, out, _ = invoke(capsys, "dnsbl", "--show-lists")
    assert "barracuda" in out


def test_dnsbl_same_list_twice_is_one(
    capsys: pytest.CaptureFixture[str], offline: list[str]
) -> None:
    code, out, _ = invoke(
        capsys, "dnsbl", "192.0.2.1", "--zone", "bl.example", "--zone", "BL.example.",
        "--list", "zen", "--list", "zen", *offline, "--json",
    )  # fmt: skip
    assert code == 0
    assert [r["list"] for r in json.loads(out)["results"]] == ["zen", "bl.example"]


def test_dnsbl_human(capsys: pytest.CaptureFixture[str], offline: list[str]) -> None:
    code, out, _ = invoke(capsys, "dnsbl", "192.0.2.3", *offline)
    assert code == 0
    assert "DNS lists for 192.0.2.3" in out
    assert "warning" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["iprev", "999.1.1.1"], "invalid IP address"),
        (["helo", "x.example", "--ip", "nope"], "invalid IP address"),
        (["dnsbl", "not a domain"], "neither an IP address nor a domain"),
        (["dnsbl"], "give an IP address or a domain"),
        (["dnsbl", "192.0.2.1", "--list", "nosuch"], "unknown list 'nosuch'"),
        (["dnsbl", "192.0.2.1", "--zone", "url:x.example"], "bad zone"),
        (["dnsbl", "example.com", "--list", "zen"], "no domain list selected"),
        (["iprev", "192.0.2.1", "--dns-zone", "/nonexistent.zone"], "cannot read zone file"),
        # scoped IPv6 used to exit 70; 999.1.1.1 was looked up as a domain by dnsbl
        (["iprev", "fe80::1%eth0"], "scoped IPv6 address"),
        (["helo", "x.example", "--ip", "fe80::1%eth0"], "scoped IPv6 address"),
        (["helo", "x.example", "--ip", "192.0.2.1", "--our-address", "fe80::1%lo"], "scoped"),
        (["helo", "x.example", "--ip", "192.0.2.1", "--our-address", "1.2.3"], "four numbers"),
        (["dnsbl", "fe80::1%eth0"], "scoped IPv6 address"),
        (["dnsbl", "999.1.1.1"], "an IPv4 address is four numbers 0..255"),
        (["dnsbl", "192.0.2"], "an IPv4 address is four numbers 0..255"),
        (["iprev", "192.0.2.1", "--dns-timeout", "nan"], "not a finite number"),
        # found by the hostile-arguments test: one zone as block and allow list exited 70
        (
            ["dnsbl", "192.0.2.1", "--zone", "bl.example", "--allow-zone", "bl.example"],
            "'bl.example': the list bl.example is already given as another kind or type",
        ),
        (["dnsbl", "192.0.2.1", "--list", "zen", "--zone", "zen"], "the list zen is already"),
    ],
)
def test_bad_input(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, out, err = invoke(capsys, *args)
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1
