"""`mailwarden spf check` and `mailwarden spf explain`, run in-process and as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mailwarden.cli import run

ZONE = str(Path(__file__).resolve().parents[2] / "examples" / "example.zone")
OFFLINE = ["--dns-zone", ZONE, "--receiver", "mx.example.net"]


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("ip", "mail_from", "helo", "mailfrom_result", "helo_result"),
    [
        ("192.0.2.10", "alice@example.com", "mail.example.com", "pass", "pass"),
        ("203.0.113.66", "alice@example.com", "spammer.example", "fail", "none"),
        ("198.51.100.7", "bob@example.org", "relay.example.org", "softfail", "fail"),
        ("203.0.113.5", "bob@example.org", "relay.example.org", "pass", "fail"),
        ("2001:db8::10", "", "mail.example.com", "pass", "pass"),
    ],
)
def test_check_json(
    capsys: pytest.CaptureFixture[str],
    ip: str,
    mail_from: str,
    helo: str,
    mailfrom_result: str,
    helo_result: str,
) -> None:
    code, out, err = invoke(
        capsys,
        "spf",
        "check",
        *OFFLINE,
        "--ip",
        ip,
        "--mail-from",
        mail_from,
        "--helo",
        helo,
        "--json",
    )
    assert (code, err) == (0, "")
    data = json.loads(out)
    for key in ("identity", "result", "explanation", "domain", "dns_queries", "received_spf"):
        assert key in data
    assert set(data["helo"]) >= {"result", "explanation", "domain"}
    assert data["identity"] == "mailfrom"
    assert data["result"] == mailfrom_result
    assert data["helo"]["result"] == helo_result
    assert data["received_spf"].startswith(f"Received-SPF: {mailfrom_result} (mx.example.net: ")
    assert data["dns_queries"] >= 1


def test_check_fail_carries_the_explanation(capsys: pytest.CaptureFixture[str]) -> None:
    _code, out, _ = invoke(
        capsys,
        "spf",
        "check",
        *OFFLINE,
        "--ip",
        "203.0.113.66",
        "--mail-from",
        "alice@example.com",
        "--helo",
        "x.example",
        "--json",
    )
    data = json.loads(out)
    assert data["explanation"] == (
        "203.0.113.66 is not allowed to send mail as example.com: "
        "see https://example.com/mail-policy"
    )
    assert data["domain"] == "example.com"
    assert data["helo"]["explanation"] is None


def test_check_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(
        capsys,
        "spf",
        "check",
        *OFFLINE,
        "--ip",
        "203.0.113.66",
        "--mail-from",
        "alice@example.com",
        "--helo",
        "mail.example.com",
    )
    assert code == 0
    assert "mailfrom" in out
    assert "helo" in out
    assert "fail" in out
    assert "explanation: 203.0.113.66 is not allowed" in out
    header = [line for line in out.splitlines() if line.startswith("Received-SPF:")]
    assert len(header) == 1
    assert "client-ip=203.0.113.66" in header[0]
    assert 'envelope-from="alice@example.com"' in header[0]  # RFC 7208 §9.1 example


def test_batch_keeps_order_and_reports_bad_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = [
        {"ip": "192.0.2.10", "mail_from": "alice@example.com", "helo": "mail.example.com"},
        "not json",
        {"ip": "999.1.1.1", "mail_from": "a@example.com", "helo": "h.example.com"},
        {"ip": "203.0.113.66", "mail_from": "alice@example.com", "helo": "x.example"},
        {"ip": "192.0.2.10", "mail_from": "a@bad..domain", "helo": "h.example.com"},
        {"ip": "198.51.100.7", "mail_from": "", "helo": "relay.example.org"},
    ] + [
        {"ip": f"192.0.2.{n}", "mail_from": "alice@example.com", "helo": "mail.example.com"}
        for n in range(150)  # more than the concurrency window
    ]
    batch = tmp_path / "in.jsonl"
    batch.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    )
    code, out, _err = invoke(capsys, "spf", "check", *OFFLINE, "--batch", str(batch), "--json")
    assert code == 1  # some lines could not be evaluated
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == len(lines)
    assert results[0]["result"] == "pass"
    assert results[1]["line"] == 2
    assert "error" in results[1]
    assert "invalid IP address" in results[2]["error"]
    assert results[3]["result"] == "fail"
    assert "invalid domain" in results[4]["error"]
    assert results[5]["result"] == "fail"  # null sender: postmaster@relay.example.org, a -all
    assert results[5]["domain"] == "relay.example.org"
    for n, result in enumerate(results[6:]):
        assert result["result"] == ("pass" if n < 128 else "fail"), n  # ip4:192.0.2.0/25


def test_batch_all_good_exits_zero(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    batch = tmp_path / "in.jsonl"
    batch.write_text(json.dumps({"ip": "192.0.2.10", "mail_from": "a@example.com", "helo": "h"}))
    code, out, _ = invoke(capsys, "spf", "check", *OFFLINE, "--batch", str(batch), "--json")
    assert code == 0
    assert json.loads(out)["result"] == "pass"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ip", "300.1.2.3", "--helo", "h.example"], "invalid IP address"),
        (
            ["--ip", "192.0.2.1", "--helo", "h.example", "--mail-from", "a@exa mple.com"],
            "invalid domain",
        ),
        (
            ["--ip", "192.0.2.1", "--helo", "h.example", "--mail-from", "a@-bad-.com"],
            "invalid domain",
        ),
        (["--ip", "192.0.2.1"], "--ip and --helo are required"),
        (["--batch", "/nonexistent/file.jsonl", "--json"], "/nonexistent/file.jsonl"),
        (
            ["--ip", "192.0.2.1", "--helo", "h", "--dns-zone", "/nonexistent.zone"],
            "cannot read zone file",
        ),
        (
            ["--ip", "192.0.2.1", "--helo", "h", "--dns-server", "not-an-ip"],
            "--dns-server: bad server",
        ),
        (["--ip", "192.0.2.1", "--helo", "h", "--dns-timeout", "abc"], "--dns-timeout"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = invoke(capsys, "spf", "check", *args)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert "Traceback" not in err


def test_bad_zone_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    zone = tmp_path / "bad.zone"
    zone.write_text("example.com. IN A not-an-address\n")
    code, _, err = invoke(
        capsys, "spf", "check", "--dns-zone", str(zone), "--ip", "192.0.2.1", "--helo", "h.example"
    )
    assert code == 2
    assert err.startswith("mailwarden: error: --dns-zone: bad zone file")


def test_explain_domain(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(capsys, "spf", "explain", "example.org", "--dns-zone", ZONE, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["domain"] == "example.org"
    assert data["record"] == "v=spf1 include:_spf.example.net a:relay.example.org/32 ~all"
    assert data["dns_lookups"] == 2
    assert [t["term"] for t in data["terms"]] == [
        "include:_spf.example.net",
        "a:relay.example.org/32",
        "~all",
    ]
    assert data["tree"]["children"][0]["domain"] == "_spf.example.net"
    assert data["warnings"] == []


def test_explain_record_human(capsys: pytest.CaptureFixture[str]) -> None:
    record = "v=spf1 ptr +all"
    code, out, _ = invoke(capsys, "spf", "explain", record, "--dns-zone", ZONE)
    assert code == 0
    assert "ptr" in out
    assert "lets every host on the Internet pass" in out
    assert "RFC 7208 §5.5" in out


def test_explain_rejects_garbage(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = invoke(capsys, "spf", "explain", "not a domain!", "--dns-zone", ZONE)
    assert code == 2
    assert "neither an SPF record" in err


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(capsys, "--help")
    assert code == 0
    assert "Exit status" in out
    assert "70" in out


def test_console_script_never_prints_a_traceback(tmp_path: Path) -> None:
    """A real process: bad input gives exit 2 and one line on stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "mailwarden", "spf", "check", "--ip", "nope", "--helo", "h"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "mailwarden: error: invalid IP address 'nope'"
