"""`mailwarden dkim verify / sign / keygen`, run in-process (and once as a subprocess)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tests.dkim.test_verify import weak_rsa_key

from mailwarden.cli import run

MESSAGE = (
    b"From: Alice <alice@example.com>\n"
    b"To: Bob <bob@example.net>\n"
    b"Subject: hello\n"
    b"Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
    b"\n"
    b"Hi Bob.\n"
)


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    """An rsa and an ed25519 key made with keygen, and a zone file publishing both."""
    zone_lines = []
    out: dict[str, Path] = {}
    for algorithm, selector in (("rsa", "r1"), ("ed25519", "e1")):
        path = tmp_path / f"{selector}.pem"
        code, stdout, err = invoke(
            capsys,
            "dkim",
            "keygen",
            "--domain",
            "example.com",
            "--selector",
            selector,
            "--algorithm",
            algorithm,
            "--output",
            str(path),
            "--json",
        )
        assert (code, err) == (0, ""), err
        data = json.loads(stdout)
        assert data["name"] == f"{selector}._domainkey.example.com"
        assert data["private_key_file"] == str(path)
        strings = " ".join(f'"{s}"' for s in data["txt_strings"])
        zone_lines.append(f"{data['name']}. IN TXT ( {strings} )")
        out[algorithm] = path
    zone = tmp_path / "keys.zone"
    zone.write_text("\n".join(zone_lines) + "\n")
    out["zone"] = zone
    return out


def test_keygen_human_output_and_file_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "k.pem"
    code, out, _ = invoke(
        capsys,
        "dkim",
        "keygen",
        "-d",
        "example.com",
        "-s",
        "sel",
        "--bits",
        "1024",
        "-o",
        str(path),
    )
    assert code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    record_line = [line for line in out.splitlines() if "IN TXT" in line]
    assert record_line[0].startswith('sel._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; p=')
    strings = record_line[0].split("( ", 1)[1].rstrip(" )").split('" "')
    assert all(len(s.strip('"')) <= 255 for s in strings)
    # never overwrite
    code, _, err = invoke(
        capsys, "dkim", "keygen", "-d", "example.com", "-s", "sel", "-o", str(path)
    )
    assert code == 2
    assert "already exists" in err


def test_keygen_2048_splits_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(
        capsys,
        "dkim",
        "keygen",
        "-d",
        "example.com",
        "-s",
        "big",
        "-o",
        str(tmp_path / "big.pem"),
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["bits"] == 2048
    assert len(data["txt_strings"]) == 2
    assert all(len(s) <= 255 for s in data["txt_strings"])
    assert "".join(data["txt_strings"]) == data["record"]


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_sign_then_verify(
    algorithm: str,
    keys: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "in.eml"
    source.write_bytes(MESSAGE)
    selector = "r1" if algorithm == "rsa" else "e1"
    code = run(
        [
            "dkim",
            "sign",
            str(source),
            "--domain",
            "example.com",
            "--selector",
            selector,
            "--key",
            str(keys[algorithm]),
            "--headers",
            "from,to,subject,date",
        ]
    )
    signed = capsys.readouterr().out.encode()  # ASCII: sys.stdout.buffer under capsys
    assert code == 0
    assert signed.endswith(MESSAGE)  # bare-LF file: the signature uses bare LF too
    assert b"\r" not in signed
    signed_path = tmp_path / "signed.eml"
    signed_path.write_bytes(signed)
    code, out, err = invoke(
        capsys, "dkim", "verify", str(signed_path), "--dns-zone", str(keys["zone"]), "--json"
    )
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert list(data) == ["signatures"]
    (entry,) = data["signatures"]
    assert set(entry) >= {  # the keys of old, and the result's own to_dict() since
        "result",
        "reason",
        "reason_code",
        "domain",
        "selector",
        "algorithm",
        "key_bits",
        "header_b",
        "identity",
    }
    assert (entry["result"], entry["reason_code"]) == ("pass", "verified")
    assert entry["selector"] == selector
    assert entry["algorithm"] == f"{algorithm}-sha256"
    assert entry["key_bits"] == (2048 if algorithm == "rsa" else 256)
    assert len(entry["header_b"]) >= 8
    # human output, and a tampered copy
    code, out, _ = invoke(
        capsys, "dkim", "verify", str(signed_path), "--dns-zone", str(keys["zone"])
    )
    assert code == 0
    assert "pass" in out
    assert "header.d=example.com" in out
    signed_path.write_bytes(signed.replace(b"Hi Bob.", b"Hi Bob!"))
    code, out, _ = invoke(
        capsys, "dkim", "verify", str(signed_path), "--dns-zone", str(keys["zone"]), "--json"
    )
    assert json.loads(out)["signatures"][0]["result"] == "fail"


def test_sign_json(
    keys: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.eml"
    source.write_bytes(MESSAGE.replace(b"\n", b"\r\n"))
    code, out, _ = invoke(
        capsys,
        "dkim",
        "sign",
        str(source),
        "-d",
        "example.com",
        "-s",
        "e1",
        "--key",
        str(keys["ed25519"]),
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["header"].startswith("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;")
    assert data["signed_headers"].count("from") == 2


def test_verify_unsigned_gives_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plain.eml"
    path.write_bytes(MESSAGE)
    zone = tmp_path / "empty.zone"
    zone.write_text("")
    code, out, _ = invoke(capsys, "dkim", "verify", str(path), "--dns-zone", str(zone), "--json")
    assert code == 0
    assert json.loads(out) == {"signatures": []}
    code, out, _ = invoke(capsys, "dkim", "verify", str(path), "--dns-zone", str(zone))
    assert code == 0
    assert "none" in out


def test_verify_now_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--now checks t=/x= at a given time: a signature with x= passes before it, not after."""
    from mailwarden.dkim import generate_key, key_record, sign
    from mailwarden.dkim.keygen import zone_entry

    key = generate_key("ed25519")
    header = sign(
        MESSAGE.replace(b"\n", b"\r\n"),
        "example.com",
        "s",
        key,
        timestamp=1_600_000_000,
        expiration=1_600_003_600,
    )
    path = tmp_path / "m.eml"
    path.write_bytes(header + MESSAGE.replace(b"\n", b"\r\n"))
    zone = tmp_path / "z.zone"
    zone.write_text(zone_entry("s", "example.com", key_record(key)) + "\n")
    results = {}
    for now in ("1600000100", "2020-09-13T12:30:00", "1600003601"):
        code, out, _ = invoke(
            capsys, "dkim", "verify", str(path), "--dns-zone", str(zone), "--now", now, "--json"
        )
        assert code == 0
        results[now] = json.loads(out)["signatures"][0]
    assert results["1600000100"]["result"] == "pass"
    assert results["2020-09-13T12:30:00"]["result"] == "pass"
    assert results["1600003601"]["result"] == "permerror"
    assert "expired" in results["1600003601"]["reason"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dkim", "verify", "/nonexistent.eml"], "cannot read /nonexistent.eml"),
        (["dkim", "verify", "{bad}"], "is not a header field"),
        (["dkim", "verify", "{msg}", "--now", "yesterday"], "--now 'yesterday'"),
        (["dkim", "sign", "{msg}", "-d", "example.com", "-s", "s", "--key", "{msg}"], "{msg}:"),
        (["dkim", "sign", "{msg}", "-d", "bad domain", "-s", "s", "--key", "{key}"], "invalid"),
        (["dkim", "sign", "{nofrom}", "-d", "example.com", "-s", "s", "--key", "{key}"], "no From"),
        (["dkim", "keygen", "-d", "example.com", "-s", "s", "--bits", "100"], "1024<=x<=4096"),
        (["dkim", "keygen", "-d", "example.com", "-s", "s", "--bits", "nan"], "--bits"),
        (["dkim", "keygen", "-d", "ex ample", "-s", "s"], "invalid domain"),
        (
            [
                "dkim",
                "keygen",
                "-d",
                "example.com",
                "-s",
                "s",
                "--algorithm",
                "ed25519",
                "--bits",
                "2048",
            ],
            "--bits applies to RSA",
        ),
        (["dkim", "sign", "{msg}", "-s", "s", "--key", "{key}"], "--domain"),
        (
            [
                "dkim",
                "sign",
                "{msg}",
                "-d",
                "example.com",
                "-s",
                "s",
                "--key",
                "{key}",
                "--headers",
                "from,x header",
            ],
            "invalid header field name 'x header'",
        ),
        (
            ["dkim", "sign", "{msg}", "-d", "example.com", "-s", "s", "--key", "{weak}"],
            "512-bit RSA key is too short: RFC 8301 §3.2",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.eml"
    bad.write_bytes(b"this is not a header\n\nbody\n")
    msg = tmp_path / "m.eml"
    msg.write_bytes(MESSAGE)
    nofrom = tmp_path / "nofrom.eml"
    nofrom.write_bytes(b"To: x@example.net\n\nbody\n")
    from mailwarden.dkim import generate_key, write_private_key

    key = tmp_path / "k.pem"
    write_private_key(key, generate_key("ed25519"))
    weak = tmp_path / "weak.pem"
    write_private_key(weak, weak_rsa_key())
    names = {
        "bad": str(bad),
        "msg": str(msg),
        "nofrom": str(nofrom),
        "key": str(key),
        "weak": str(weak),
    }
    argv = [a.format(**names) for a in args]
    code, out, err = invoke(capsys, *argv)
    assert code == 2, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert message.format(**names) in err
    assert "Traceback" not in err


def test_console_script_never_prints_a_traceback(tmp_path: Path) -> None:
    """A real process: a missing zone file gives exit 2 and one line on stderr."""
    path = tmp_path / "m.eml"
    path.write_bytes(MESSAGE)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailwarden",
            "dkim",
            "verify",
            str(path),
            "--dns-zone",
            str(tmp_path / "missing.zone"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("mailwarden: error: --dns-zone: cannot read zone file")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_verify_prints_the_clauses_the_gateway_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dkim verify` and the pipeline (whose Authentication-Results the gateway adds, and
    `check --json` shows) write each signature's clause through one builder."""
    import time

    from cryptography.hazmat.primitives.asymmetric import ed25519

    from mailwarden.authres import parse_field
    from mailwarden.dkim import key_record, sign

    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(7, 39)))
    (tmp_path / "zone").write_text(
        f'sel._domainkey.a.example. IN TXT "{key_record(key)}"\n'
        'a.example. IN TXT "v=spf1 ip4:192.0.2.0/28 -all"\n'
    )
    body = b"From: <alice@a.example>\r\nTo: <bob@b.example>\r\nSubject: hi\r\n\r\nHello.\r\n"
    good = sign(body, "a.example", "sel", key, timestamp=int(time.time()))
    gone = sign(body, "a.example", "gone", key, timestamp=int(time.time()))  # no key: permerror
    (tmp_path / "m.eml").write_bytes(good + gone + body)
    zone = ["--dns-zone", str(tmp_path / "zone")]
    code, out, err = invoke(capsys, "dkim", "verify", str(tmp_path / "m.eml"), *zone)
    assert (code, err) == (0, "")
    printed = [line.strip() for line in out.splitlines() if line.strip().startswith("dkim=")]
    code, out, err = invoke(
        capsys, "check", str(tmp_path / "m.eml"), "--ip", "192.0.2.1", "--helo", "a.example",
        "--mail-from", "alice@a.example", "--json", *zone,
    )  # fmt: skip
    assert err == ""
    written = parse_field(json.loads(out)["authentication_results"])
    assert printed == [r.format() for r in written.by_method("dkim")]
    assert printed[0].startswith("dkim=pass header.d=a.example")
    assert printed[1].startswith('dkim=permerror reason="no key for selector')
