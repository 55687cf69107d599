"""`mailwarden spf build`: the record on stdout, warnings on stderr, JSON, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailwarden.cli import run


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_issue_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke(
        capsys,
        "spf",
        "build",
        "--ip4",
        "1.2.3.4",
        "--ip4",
        "1.2.3.5",
        "--a",
        "example.com",
        "--all",
        "fail",
    )
    assert (code, out, err) == (0, "v=spf1 ip4:1.2.3.4 ip4:1.2.3.5 a:example.com -all\n", "")


def test_mx_with_and_without_a_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(
        capsys, "spf", "build", "--mx", "--mx", "example.org", "--include", "_spf.example.net"
    )
    assert code == 0
    assert out == "v=spf1 mx mx:example.org include:_spf.example.net -all\n"


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(
        capsys, "spf", "build", "--ip6", "2001:db8::/32", "--all", "softfail", "--json"
    )
    assert code == 0
    assert json.loads(out) == {
        "record": "v=spf1 ip6:2001:db8::/32 ~all",
        "strings": ["v=spf1 ip6:2001:db8::/32 ~all"],
        "length": 29,
        "dns_lookups": 0,
        "includes_resolved": False,
        "warnings": [],
    }


def test_warnings_for_lookups_and_long_records(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["spf", "build"]
    for n in range(11):
        args += ["--include", f"_spf{n}.example.com"]
    for n in range(8):
        args += ["--ip6", f"2001:db8:{n:x}::/48"]
    code, out, err = invoke(capsys, *args)
    assert code == 0
    record = out.splitlines()[0]
    assert record.startswith("v=spf1 ip6:2001:db8::/48 ip6:2001:db8:1::/48 ")
    assert out.splitlines()[1].startswith("as a zone file TXT value: ( ")
    assert "warning: 11 DNS-querying terms" in err
    assert "more than one TXT string holds (255)" in err
    code, out, _ = invoke(capsys, *args, "--json")
    data = json.loads(out)
    assert data["dns_lookups"] == 11
    assert len(data["strings"]) == 2
    assert all(len(s) <= 255 for s in data["strings"])
    assert "".join(data["strings"]) == data["record"]
    assert len(data["warnings"]) == 3
    assert "answers over 512 bytes need TCP" in data["warnings"][2]


def test_resolve_counts_the_includes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    zone = tmp_path / "zone"
    lines = ["$ORIGIN example.net."]
    lines.append(
        '_spf IN TXT "v=spf1 ' + " ".join(f"a:h{n}.example.net" for n in range(9)) + ' -all"'
    )
    lines += [f"h{n} IN A 192.0.2.{n + 1}" for n in range(9)]
    zone.write_text("\n".join(lines) + "\n")
    code, out, _ = invoke(
        capsys,
        "spf",
        "build",
        "--include",
        "_spf.example.net",
        "--a",
        "mail.example.com",
        "--resolve",
        "--dns-zone",
        str(zone),
        "--json",
    )
    data = json.loads(out)
    assert code == 0
    assert data["includes_resolved"] is True
    assert data["dns_lookups"] == 11
    assert any("11 DNS lookups with the included policies" in w for w in data["warnings"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ip4", "1.2.3.999"], "--ip4 '1.2.3.999': not an IPv4 address"),
        (["--ip6", "2001:db8::/200"], "prefix length"),
        (["--a", "-bad-.example"], "not a domain name"),
        (["--all", "pass"], "Invalid value for '--all'"),
    ],
)
def test_bad_input_exits_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = invoke(capsys, "spf", "build", *args)
    assert (code, out) == (2, "")
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
