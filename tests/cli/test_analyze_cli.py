"""`mailwarden analyze FILE`: JSON field by field, the human output's key lines, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailwarden.cli import run

DATA = Path(__file__).resolve().parents[1] / "analyze" / "data"
ZONE = str(DATA / "zone.txt")
NOW = "2026-11-23T12:00:00"


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "mailwarden.toml"
    path.write_text(
        '[dnsbl]\nuse = []\n[[dnsbl.lists]]\nname = "testbl"\nzone = "bl.example.test"\n'
    )
    return str(path)


def analyze_json(capsys: pytest.CaptureFixture[str], name: str, *extra: str) -> dict[str, object]:
    code, out, err = invoke(
        capsys, "analyze", str(DATA / name), "--dns-zone", ZONE, "--now", NOW, "--json", *extra
    )
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def test_json_keys_and_hops(capsys: pytest.CaptureFixture[str], config: str) -> None:
    data = analyze_json(capsys, "postfix_chain.eml", "--config", config)
    assert list(data) == ["file", "summary", "hops", "boundary", "headers", "reverify", "changes"]
    assert data["file"].endswith("postfix_chain.eml")
    hops = data["hops"]
    assert isinstance(hops, list)
    assert set(hops[0]) == {
        "index",
        "position",
        "from",
        "by",
        "by_comment",
        "with",
        "id",
        "for",
        "time",
        "time_text",
        "delay",
        "trusted",
        "flags",
        "notes",
        "problems",
        "error",
    }
    boundary = hops[1]
    assert boundary["from"]["ip"] == "192.0.2.10"
    assert boundary["with"]["tls"]["version"] == "TLSv1.3"
    assert boundary["id"] == "4Zx1y2"
    assert boundary["delay"] == 2.0
    assert data["boundary"]["hop"] == 2
    assert data["boundary"]["method"] == "authserv-id"
    reverify = data["reverify"]
    assert set(reverify) == {
        "ip",
        "ip_source",
        "helo",
        "mail_from",
        "spf",
        "dkim",
        "arc",
        "dmarc",
        "relays",
    }
    relay = next(r for r in reverify["relays"] if r["ip"] == "192.0.2.10")
    assert relay["dnsbl"][0]["list"] == "testbl"
    rotated = next(c for c in data["changes"] if c["subject"] == "d=example.com s=old2020")
    assert rotated == {
        "method": "dkim",
        "subject": "d=example.com s=old2020",
        "then": "pass",
        "now": "permerror",
        "changed": True,
        "note": rotated["note"],
    }


def test_forged_hop_json(capsys: pytest.CaptureFixture[str], config: str) -> None:
    data = analyze_json(capsys, "forged_hop.eml", "--config", config)
    flags = [h["flags"] for h in data["hops"]]
    assert "forged" in flags[0]
    assert "out-of-order" in flags[1]
    assert flags[2] == ["clock-skew"]
    relay = next(r for r in data["reverify"]["relays"] if r["ip"] == "203.0.113.77")
    assert relay["listed"] == ["testbl"]
    assert [h["trusted"] for h in data["headers"]] == [True, False]


def test_trusted_host_ip_and_no_dnsbl(capsys: pytest.CaptureFixture[str]) -> None:
    data = analyze_json(
        capsys,
        "list_arc.eml",
        "--trusted-host",
        "example.net",
        "--ip",
        "192.0.2.200",
        "--helo",
        "x.example",
        "--no-dnsbl",
    )
    assert data["boundary"]["method"] == "trusted-host"
    assert data["reverify"]["ip"] == "192.0.2.200"
    assert data["reverify"]["ip_source"] == "option"
    assert data["reverify"]["spf"]["result"] == "fail"
    assert data["reverify"]["arc"]["result"] == "pass"
    assert all(r["dnsbl"] is None for r in data["reverify"]["relays"])


def test_no_reverify_reads_only(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(capsys, "analyze", str(DATA / "list_arc.eml"), "--no-reverify", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["reverify"] is None
    assert data["changes"] == []
    assert [h["kind"] for h in data["headers"]] == [
        "authentication-results",
        "arc-set",
        "dkim-signature",
    ]


def test_human_output_key_lines(capsys: pytest.CaptureFixture[str], config: str) -> None:
    code, out, err = invoke(
        capsys,
        "analyze",
        str(DATA / "forged_hop.eml"),
        "--dns-zone",
        ZONE,
        "--now",
        NOW,
        "--config",
        config,
    )
    assert (code, err) == (0, "")
    assert "Received chain (oldest first)" in out
    assert "trust boundary: hop 3 (*), client 203.0.113.77" in out
    assert "hop 1: claims to be written by mx.example.net, a trusted host" in out
    assert "hop 3: 60 s earlier than the hop before" in out
    assert "authentication-results #3 (untrusted):" in out
    assert "Checked again now (client 203.0.113.77, boundary)" in out
    assert "LISTED: relay 203.0.113.77 (hop 3) on testbl: listed for spam" in out
    lines = out.splitlines()
    summary = next(line for line in lines if line.startswith("summary: "))
    assert "3 hops; entered at hop 3 from 203.0.113.77" in summary
    assert "flags: chain-break, clock-skew, forged, out-of-order" in summary


def test_human_output_of_a_rotated_key(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(
        capsys, "analyze", str(DATA / "postfix_chain.eml"), "--dns-zone", ZONE, "--now", NOW
    )
    assert code == 0
    assert "Since the message was received" in out
    assert (
        "CHANGED: dkim d=example.com s=old2020: pass -> permerror (the key was removed since"
        " (rotated away)" in out
    )
    assert "summary: 4 hops" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/file.eml"], "cannot read /nonexistent/file.eml"),
        ([str(DATA / "postfix_chain.eml"), "--ip", "999.1.1.1"], "invalid IP address"),
        ([str(DATA / "postfix_chain.eml"), "--trusted-host", "bad host"], "--trusted-host"),
        ([str(DATA / "postfix_chain.eml"), "--now", "yesterday"], "--now"),
        ([str(DATA / "postfix_chain.eml"), "--dns-zone", "/nonexistent.zone"], "zone file"),
        ([str(DATA / "postfix_chain.eml"), "--config", "/nonexistent.toml"], "cannot read"),
    ],
)
def test_bad_input_exits_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = invoke(capsys, "analyze", *args)
    assert (code, out) == (2, "")
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_not_a_message_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.eml"
    path.write_bytes(b"no colon on this line\r\nX: y\r\n\r\nbody\r\n")
    code, out, err = invoke(capsys, "analyze", str(path), "--no-reverify")
    assert (code, out) == (2, "")
    assert err == f"mailwarden: error: {path}: header line 1 is not a header field: " + (
        "'no colon on this line'\n"
    )


def test_a_message_without_received_fields(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "draft.eml"
    path.write_bytes(b"From: a@example.com\r\nSubject: draft\r\n\r\nbody\r\n")
    code, out, _ = invoke(capsys, "analyze", str(path), "--no-reverify", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["hops"] == []
    assert data["boundary"]["hop"] is None
    assert data["boundary"]["reason"] == "no readable Received field"


BY_ADDRESS = (
    b"Received: from [10.0.0.1] (unknown [10.0.0.1]) by 10.0.0.2;"
    b" Mon, 23 Nov 2026 10:00:02 +0000\r\n"
    b"Received: from mail.example.com (mail.example.com [192.0.2.10]) by [10.0.0.1];"
    b" Mon, 23 Nov 2026 10:00:01 +0000\r\n"
    b"Return-Path: <alice@example.com>\r\n"
    b"From: alice@example.com\r\nSubject: s\r\n\r\nbody\r\n"
)


@pytest.mark.parametrize(
    "hosts",
    [["10.0.0.1", "10.0.0.2"], ["10.0.0.0/24"], ["[10.0.0.1]", "10.0.0.2", "mx.example.net"]],
)
def test_trusted_host_by_address(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, hosts: list[str]
) -> None:
    """Issue 12 item 11: real Received fields name hops by address."""
    path = tmp_path / "by_address.eml"
    path.write_bytes(BY_ADDRESS)
    options = [arg for host in hosts for arg in ("--trusted-host", host)]
    code, out, err = invoke(
        capsys, "analyze", str(path), "--dns-zone", ZONE, "--now", NOW, "--json", *options
    )
    assert (code, err) == (0, "")
    data = json.loads(out)
    boundary = data["boundary"]
    assert (boundary["method"], boundary["hop"], boundary["ip"]) == (
        "trusted-host",
        1,
        "192.0.2.10",
    )
    assert data["reverify"]["spf"]["result"] == "pass"  # example.com allows 192.0.2.0/25
    assert [h["trusted"] for h in data["hops"]] == [True, True]


@pytest.mark.parametrize("host", ["999.1.1.1", "10.0.0.0/33", "fe80::1%eth0", "a b"])
def test_bad_trusted_host_addresses_exit_2(capsys: pytest.CaptureFixture[str], host: str) -> None:
    code, out, err = invoke(
        capsys, "analyze", str(DATA / "postfix_chain.eml"), "--trusted-host", host
    )
    assert (code, out) == (2, "")
    assert "--trusted-host" in err
    assert len(err.strip().splitlines()) == 1


def test_analyze_checks_with_the_pipeline_of_the_configuration(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, config: str
) -> None:
    """The checks run again are the pipeline's, from the configuration analyze loads: its
    DMARC discovery, its DNS lists, its policy's scores."""
    path = tmp_path / "scored.toml"
    path.write_text(
        '[dmarc]\ndiscovery = "psl"\n'
        "[policy.scores]\nIPREV_PERMERROR = 9.5\nRBL_TESTBL = 0.25\n"
        '[dnsbl]\nuse = []\n[[dnsbl.lists]]\nname = "testbl"\nzone = "bl.example.test"\n'
    )
    data = analyze_json(capsys, "postfix_chain.eml", "--config", str(path))
    now = data["reverify"]
    assert now["dmarc"]["discovery_method"] == "psl"
    relays = {r["ip"]: r for r in now["relays"]}
    assert relays["2001:db8:1::10"]["iprev"]["symbol"] == {
        "name": "IPREV_PERMERROR",
        "score": 9.5,
        "detail": "no PTR record (no such domain)",
    }
    forged = analyze_json(capsys, "forged_hop.eml", "--config", str(path))
    listed = next(r for r in forged["reverify"]["relays"] if r["ip"] == "203.0.113.77")
    assert [(s["name"], s["score"]) for s in listed["dnsbl"][0]["symbols"]] == [
        ("RBL_TESTBL", 0.25)
    ]
    default = analyze_json(capsys, "forged_hop.eml", "--config", config)
    listed = next(r for r in default["reverify"]["relays"] if r["ip"] == "203.0.113.77")
    assert [(s["name"], s["score"]) for s in listed["dnsbl"][0]["symbols"]] == [
        ("RBL_TESTBL", 1.0)  # as the list's definition weighs it
    ]
    assert default["reverify"]["dmarc"]["discovery_method"] == "treewalk"
