"""`mailwarden spf check` and `mailwarden spf explain`, run in-process and as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.spf.suite import SuiteCase, build_resolver, collect_cases
from tests.testdata import require_testdata

from mailwarden.cli import run
from mailwarden.cli.common import DNSOptions

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
    assert results[4]["result"] == "none"  # RFC 7208 §4.3: a malformed domain gives none
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
        (["--ip", "fe80::1%eth0", "--helo", "h.example"], "scoped IPv6 address"),
        (
            ["--ip", "192.0.2.1", "--helo", "h.example", "--mail-from", "a@example.com\r\nX: y"],
            "control characters",
        ),
        (["--ip", "192.0.2.1"], "null reverse-path is checked as postmaster@HELO"),
        (["--helo", "h.example"], "--ip is required"),
        (["--ip", "192.0.2.1", "--helo", "h", "--dns-timeout", "nan"], "not a finite number"),
        (["--ip", "192.0.2.1", "--helo", "h", "--dns-timeout", "inf"], "not a finite number"),
        (["--ip", "192.0.2.1", "--helo", "h", "--dns-timeout", "1e309"], "not a finite number"),
        (["--ip", "192.0.2.1", "--helo", "h", "--dns-retries", "10" * 30], "--dns-retries"),
        (["--batch", "/nonexistent/file.jsonl", "--json"], "/nonexistent/file.jsonl"),
        (
            ["--ip", "192.0.2.1", "--helo", "h", "--dns-zone", "/nonexistent.zone"],
            "cannot read zone file",
        ),
        (
            ["--ip", "192.0.2.1", "--helo", "h", "--dns-server", "not an ip"],
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


def test_mail_from_alone_needs_no_helo(capsys: pytest.CaptureFixture[str]) -> None:
    """--helo used to be required even for a MAIL FROM check."""
    code, out, err = invoke(
        capsys, "spf", "check", *OFFLINE, "--ip", "192.0.2.10", "--mail-from", "a@example.com",
        "--json",
    )  # fmt: skip
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert (data["identity"], data["result"], data["helo"]) == ("mailfrom", "pass", None)
    assert "helo=" not in data["received_spf"]
    code, out, _ = invoke(
        capsys, "spf", "check", *OFFLINE, "--ip", "192.0.2.10", "--mail-from", "a@example.com"
    )
    assert code == 0
    assert "mailfrom" in out
    assert "│ helo" not in out


@pytest.mark.parametrize(
    ("mail_from", "helo"),
    [
        ("a@a..b", "h.example"),  # used to be exit 2, while --helo a..b gave none
        ("a@exa mple.com", "h.example"),
        ("a@-bad-.com", "h.example"),
        ("a@" + "x" * 64 + ".example", "h.example"),
        ("foo@[1.2.3.5]", "h.example"),
        ("", "a..b"),
    ],
)
def test_a_malformed_domain_gives_none_alone_and_in_a_batch(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mail_from: str, helo: str
) -> None:
    """RFC 7208 §4.3: a malformed domain is "none", the same on the command line and in a
    batch."""
    code, out, err = invoke(
        capsys, "spf", "check", *OFFLINE, "--ip", "192.0.2.1", "--mail-from", mail_from,
        "--helo", helo, "--json",
    )  # fmt: skip
    assert (code, err) == (0, "")
    single = json.loads(out)
    assert single["result"] == "none"
    batch = tmp_path / "in.jsonl"
    batch.write_text(json.dumps({"ip": "192.0.2.1", "mail_from": mail_from, "helo": helo}) + "\n")
    code, out, _ = invoke(capsys, "spf", "check", *OFFLINE, "--batch", str(batch), "--json")
    assert code == 0
    assert json.loads(out) == single


RFC7208 = collect_cases("openspf-rfc7208", "rfc7208-tests.yml")


@pytest.mark.parametrize("case", RFC7208.cases, ids=RFC7208.ids)
def test_openspf_cases_give_the_same_result_alone_and_in_a_batch(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    case: SuiteCase | None,
) -> None:
    """Every RFC 7208 case through the command line, once with options and once as a batch
    line, over the case's own DNS data: both give the suite's result (toolonglabel,
    emptylabel and domain-literal used to be error lines in a batch)."""
    if case is None:
        require_testdata("openspf-rfc7208", "rfc7208-tests.yml")
        return
    monkeypatch.setattr(
        DNSOptions, "build", lambda self, *args, **kwargs: build_resolver(case.zone)
    )
    args = ["--ip", case.host, "--mail-from", case.mailfrom]
    if case.helo:
        args += ["--helo", case.helo]
    code, out, err = invoke(capsys, "spf", "check", *args, "--json")
    assert (code, err) == (0, ""), err
    single = json.loads(out)
    assert single["result"] == case.results[0]
    batch = tmp_path / "in.jsonl"
    line = {"ip": case.host, "mail_from": case.mailfrom}
    batch.write_text(json.dumps(line | ({"helo": case.helo} if case.helo else {})) + "\n")
    code, out, err = invoke(capsys, "spf", "check", "--batch", str(batch), "--json")
    assert (code, err) == (0, ""), out
    assert json.loads(out)["result"] == case.results[0]


def test_batch_lines_that_are_blank_binary_or_scoped_do_not_stop_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = json.dumps({"ip": "192.0.2.10", "mail_from": "a@example.com", "helo": "h.example"})
    batch = tmp_path / "in.jsonl"
    batch.write_bytes(
        (good + "\n\n").encode()
        + b'{"ip": "192.0.2.10", "helo": "h\xe3.example"}\n'
        + json.dumps({"ip": "fe80::1%eth0", "helo": "h.example"}).encode()
        + b"\n"
        + json.dumps({"ip": "192.0.2.10", "helo": "h.example", "mail_from": "a@b\r\nX: y"}).encode()
        + b"\n"
        + json.dumps({"ip": "192.0.2.10", "helo": 7}).encode()
        + b"\n"
        + json.dumps({"ip": "192.0.2.10", "mail_from": ""}).encode()
        + b"\n"
        + (good + "\n").encode()
    )
    code, out, err = invoke(capsys, "spf", "check", *OFFLINE, "--batch", str(batch), "--json")
    assert (code, err) == (1, "")
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 8
    assert lines[0]["result"] == lines[7]["result"] == "pass"
    errors = {line["line"]: line["error"] for line in lines if "error" in line}
    assert errors[2] == "empty line"  # not "Expecting value: line 2 column 1"
    assert errors[3].startswith("not UTF-8 text")
    assert "scoped IPv6 address" in errors[4]
    assert "control characters" in errors[5]
    assert errors[6] == '"helo" is missing or not a string'
    assert "null reverse-path" in errors[7]


def test_scoped_address_never_reaches_received_spf(capsys: pytest.CaptureFixture[str]) -> None:
    """It used to be accepted and written into Received-SPF with its zone id."""
    code, out, err = invoke(
        capsys, "spf", "check", *OFFLINE, "--ip", "fe80::1%eth0", "--helo", "h.example"
    )
    assert (code, out) == (2, "")
    assert "scoped IPv6 address" in err
