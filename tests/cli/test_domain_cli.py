"""`mailwarden domain check`: JSON field by field, exit codes for CI, human key lines, timeouts
over a real (unanswering) socket reported as timeouts."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwarden.cli import run
from mailwarden.cli.common import DNSOptions
from mailwarden.dns import StaticResolver

ZONE = str(Path(__file__).resolve().parents[1] / "audit" / "data" / "zones.txt")


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


def check_json(
    capsys: pytest.CaptureFixture[str], domain: str, *extra: str
) -> tuple[int, dict[str, object]]:
    code, out, err = invoke(capsys, "domain", "check", domain, "--dns-zone", ZONE, "--json", *extra)
    assert err == ""
    return code, json.loads(out)


def test_good_domain_exits_0(capsys: pytest.CaptureFixture[str], config: str) -> None:
    code, data = check_json(capsys, "good.example", "--selector", "sel1", "--config", config)
    assert code == 0
    assert list(data) == [
        "domain",
        "status",
        "counts",
        "mx",
        "spf",
        "dkim",
        "dmarc",
        "bimi",
        "findings",
        "dns_failed",
    ]
    assert data["dns_failed"] == []
    assert data["domain"] == "good.example"
    assert data["status"] == "ok"
    assert data["counts"] == {"ok": 7, "info": 0, "warning": 0, "error": 0}
    mx = data["mx"]
    assert isinstance(mx, dict)
    assert mx["status"] == "ok"
    assert mx["null_mx"] is False
    address = mx["hosts"][0]["addresses"][0]
    assert address == {
        "ip": "192.0.2.20",
        "ptr": ["mx1.good.example"],
        "fcrdns": "pass",
        "fcrdns_name": "mx1.good.example",
        "dnsbl": [
            {"list": "testbl", "zone": "bl.example.test", "status": "not-listed", "reason": ""}
        ],
    }
    spf = data["spf"]
    assert isinstance(spf, dict)
    assert set(spf) >= {"record", "records", "dns_lookups", "void_lookups", "past_limit", "tree"}
    dmarc = data["dmarc"]
    assert isinstance(dmarc, dict)
    assert dmarc["policy"]["domain"] == "reject"
    finding = data["findings"][0]
    assert set(finding) == {"check", "code", "severity", "subject", "message", "fix"}


def test_error_findings_exit_1(capsys: pytest.CaptureFixture[str], config: str) -> None:
    code, data = check_json(
        capsys, "bad.example", "--selector", "tiny", "--selector", "missing", "--config", config
    )
    assert code == 1
    assert data["status"] == "error"
    by_code = {f["code"]: f for f in data["findings"]}
    assert by_code["mx-listed"]["severity"] == "error"
    assert by_code["spf-too-many-lookups"]["message"].startswith("12 DNS lookups in all")
    assert by_code["dkim-key-too-small"]["subject"] == "tiny"
    assert by_code["dmarc-report-unauthorized"]["subject"] == "mailto:agg@thirdparty.example"
    assert by_code["bimi-dmarc-not-enforced"]["fix"].startswith("Set p=quarantine")
    spf = data["spf"]
    assert spf["past_limit"] == [
        "chain.example: include:chain2.example",
        "chain2.example: a:h4.chain.example",
    ]


def test_subdomain_and_duplicates_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = check_json(capsys, "sub.good.example", "--no-dnsbl")
    assert data["status"] == "error"  # no SPF record at the subdomain
    assert code == 1
    code, data = check_json(capsys, "dup.example", "--no-common-selectors", "--no-dnsbl")
    assert code == 1


def test_warnings_only_exit_0(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    zone = tmp_path / "zone"
    zone.write_text(
        "$ORIGIN warn.example.\n"
        "@ IN MX 10 mx.warn.example.\n"
        '@ IN TXT "v=spf1 ptr ~all"\n'
        "mx IN A 192.0.2.40\n"
        '_dmarc IN TXT "v=DMARC1; p=none; rua=mailto:d@warn.example"\n'
        "40.2.0.192.in-addr.arpa. IN PTR mx.warn.example.\n"
    )
    code, out, err = invoke(
        capsys, "domain", "check", "warn.example", "--dns-zone", str(zone), "--no-dnsbl", "--json"
    )
    data = json.loads(out)
    assert (code, err) == (0, "")
    assert data["status"] == "warning"
    assert {f["code"]: f["severity"] for f in data["findings"]} == {
        "mx-host-ok": "ok",
        "spf-ptr": "warning",
        "spf-softfail-all": "info",
        "dkim-none-found": "info",
        "dmarc-policy-none": "warning",
        "bimi-none": "info",
    }


def test_human_output_key_lines(capsys: pytest.CaptureFixture[str], config: str) -> None:
    code, out, err = invoke(
        capsys, "domain", "check", "bad.example", "--dns-zone", ZONE, "--config", config
    )
    assert (code, err) == (1, "")
    for title in ("MX error", "SPF error", "DKIM", "DMARC error", "BIMI error"):
        assert title in out
    assert "  DNS lookups: 12 of 10, void lookups: 3" in out
    assert (
        "  policy: domain none, subdomains none, non-existent subdomains none, testing True" in out
    )
    last = out.strip().splitlines()[-1]
    assert last.startswith("bad.example: error - ")
    assert "error(s)" in last


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A UDP socket that never answers: every query times out."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def test_timeouts_are_not_missing_records(
    capsys: pytest.CaptureFixture[str], silent_server: str
) -> None:
    code, out, err = invoke(
        capsys,
        "domain",
        "check",
        "example.com",
        "--dns-server",
        silent_server,
        "--dns-timeout",
        "0.05",
        "--dns-retries",
        "0",
        "--no-common-selectors",
        "--no-dnsbl",
        "--json",
    )
    data = json.loads(out)
    # no error-level finding (timeouts are warnings), but nothing was checked: a CI gate must
    # not pass, so a status of its own (3), and the checks DNS failed for are named
    assert (code, err) == (3, "")
    assert data["dns_failed"] == ["mx", "spf", "dmarc", "bimi"]
    codes = {f["code"] for f in data["findings"]}
    assert codes == {
        "mx-dns-timeout",
        "spf-dns-timeout",
        "dkim-not-checked",
        "dmarc-dns-timeout",
        "bimi-dns-timeout",
    }
    assert all(
        "timed out" in f["message"] for f in data["findings"] if f["code"].endswith("timeout")
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not a domain"], "is not a domain name"),
        (["localhost"], "is not a domain name"),
        (["example.com", "--selector", "bad selector"], "invalid DKIM selector"),
        (["example.com", "--config", "/nonexistent.toml"], "cannot read"),
        (["example.com", "--dns-zone", "/nonexistent.zone"], "cannot read zone file"),
    ],
)
def test_bad_input_exits_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = invoke(capsys, "domain", "check", *args)
    assert (code, out) == (2, "")
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(capsys, "domain", "check", "--help")
    assert code == 0
    assert "1   at least one error-level finding" in out
    assert "2   bad input" in out
    assert "3   no error-level finding, but DNS lookups timed out or failed" in out
    assert "selector1, selector2" in out


def test_dns_failure_is_said_in_human_output(
    capsys: pytest.CaptureFixture[str], silent_server: str
) -> None:
    code, out, err = invoke(
        capsys,
        "domain",
        "check",
        "example.com",
        "--dns-server",
        silent_server,
        "--dns-timeout",
        "0.05",
        "--dns-retries",
        "0",
        "--no-common-selectors",
        "--no-dnsbl",
    )
    assert (code, err) == (3, "")
    assert "DNS failed for mx, spf, dmarc, bimi: those checks were not done in full" in out


def test_error_finding_wins_over_dns_failure(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error-level finding is certain whatever else timed out: exit 1, not 3."""
    resolver = StaticResolver()
    resolver.load_master_text(
        '$ORIGIN .\n$TTL 300\nbroken.example. TXT "v=spf1 +all"\n'
        "broken.example. MX 10 mx.broken.example.\nmx.broken.example. A 192.0.2.9\n"
    )
    resolver.fail("_dmarc.broken.example")
    monkeypatch.setattr(DNSOptions, "build", lambda self, *args, **kwargs: resolver)
    code, out, err = invoke(
        capsys, "domain", "check", "broken.example", "--no-common-selectors", "--no-dnsbl", "--json"
    )
    data = json.loads(out)
    assert "spf-pass-all" in {f["code"] for f in data["findings"]}
    assert data["dns_failed"] == ["dmarc"]
    assert (code, err) == (1, "")
