"""`mailwarden dmarc record`, run in-process against a zone file."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from mailwarden.cli import run

ZONE = """\
$TTL 300
$ORIGIN example.com.
_dmarc   IN TXT "v=DMARC1; p=reject; sp=quarantine; np=reject; t=y; junk"
mail     IN A 192.0.2.1
$ORIGIN example.
_dmarc   IN TXT "v=DMARC1; p=quarantine; psd=y"
"""


@pytest.fixture
def zone(tmp_path: Path) -> str:
    path = tmp_path / "dmarc.zone"
    path.write_text(ZONE, encoding="utf-8")
    return str(path)


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("domain", "tag", "policy", "exists"),
    [
        ("example.com", "p", "quarantine", None),
        ("mail.example.com", "sp", "none", True),
        ("ghost.example.com", "np", "quarantine", False),
    ],
)
def test_record_json(
    capsys: pytest.CaptureFixture[str],
    zone: str,
    domain: str,
    tag: str,
    policy: str,
    exists: bool | None,
) -> None:
    code, out, err = invoke(capsys, "dmarc", "record", domain, "--dns-zone", zone, "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["domain"] == domain
    assert data["policy_domain"] == "example.com"
    assert data["organizational_domain"] == "example.com"
    assert (data["policy_tag"], data["policy"], data["testing"]) == (tag, policy, True)
    assert data["domain_exists"] is exists
    assert data["record_errors"] == ["malformed term 'junk' ignored"]
    assert data["discovery"] == "treewalk"


def test_psd_record_and_psl_option(capsys: pytest.CaptureFixture[str], zone: str) -> None:
    code, out, _ = invoke(capsys, "dmarc", "record", "brand.example", "--dns-zone", zone, "--json")
    data = json.loads(out)
    assert (code, data["record_source"], data["policy_domain"]) == (0, "psd", "example")
    assert (data["organizational_domain"], data["policy"]) == ("brand.example", "quarantine")
    code, out, _ = invoke(
        capsys, "dmarc", "record", "brand.example", "--dns-zone", zone, "--json", "--psl"
    )
    data = json.loads(out)
    assert (code, data["found"], data["discovery"]) == (0, False, "psl")


def test_human_output(capsys: pytest.CaptureFixture[str], zone: str) -> None:
    code, out, _ = invoke(capsys, "dmarc", "record", "mail.example.com", "--dns-zone", zone)
    assert code == 0
    assert "record at _dmarc.example.com (organizational)" in out
    assert "policy for failing mail: none (from sp=)" in out
    code, out, _ = invoke(capsys, "dmarc", "record", "example.org", "--dns-zone", zone)
    assert code == 0
    assert "no DMARC record applies" in out


@pytest.mark.parametrize("domain", ["bad domain", "-x-.example", "a..b"])
def test_bad_domain(capsys: pytest.CaptureFixture[str], zone: str, domain: str) -> None:
    code, out, err = invoke(capsys, "dmarc", "record", domain, "--dns-zone", zone)
    assert (code, out) == (2, "")
    assert err.startswith("mailwarden: error: ")
    assert len(err.strip().splitlines()) == 1


def test_dns_failure_is_exit_1_as_documented(capsys: pytest.CaptureFixture[str]) -> None:
    """The README says `dmarc record` exits 1 when DNS failed: a server that never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        server = f"127.0.0.1:{sock.getsockname()[1]}"
        code, out, err = invoke(
            capsys, "dmarc", "record", "example.com", "--dns-server", server,
            "--dns-timeout", "0.05", "--dns-retries", "0", "--json",
        )  # fmt: skip
    finally:
        sock.close()
    assert (code, err) == (1, "")
    assert json.loads(out)["error"]
