"""The JSON keys of every command are a contract (add, never rename or drop): each command's
output, run offline, still has every key path of tests/cli/data/json_shapes.json, with the same
kind of value (object, list or scalar). The file was taken from the commands as they were
before their results got one `to_dict()` each."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from mailwarden.cli import run
from mailwarden.dkim import sign
from mailwarden.dkim.keygen import key_record, txt_strings

SHAPES = Path(__file__).resolve().parent / "data" / "json_shapes.json"
ANALYZE = Path(__file__).resolve().parents[1] / "analyze" / "data"
KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
MESSAGE = (
    b"From: Alice <alice@a.example>\r\nTo: bob@b.example\r\nSubject: hi\r\n"
    b"Message-ID: <2@a.example>\r\n\r\nHello.\r\n"
)
CONFIG = """\
[dnsbl]
use = []
[[dnsbl.lists]]
name = "testbl"
zone = "bl.example.test"
[[dnsbl.lists]]
name = "testdbl"
zone = "dbl.example.test"
kind = "domain"
"""


def shape(value: Any, path: str = "") -> dict[str, str]:
    """Every key path of a JSON value with the kind of value found there (list items: [])."""
    if isinstance(value, dict):
        out = {path: "object"} if path else {}
        for key, item in value.items():
            out.update(shape(item, f"{path}.{key}" if path else key))
        return out
    if isinstance(value, list):
        out = {path: "list"}
        for item in value:
            out.update(shape(item, f"{path}[]"))
        return out
    return {path: "scalar"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("contract")
    strings = " ".join(f'"{s}"' for s in txt_strings(key_record(KEY)))
    (root / "zone").write_text(
        "$ORIGIN a.example.\n"
        '@ IN TXT "v=spf1 ip4:192.0.2.0/28 -all"\n'
        "mail IN A 192.0.2.10\n"
        f"sel._domainkey IN TXT {strings}\n"
        '_dmarc IN TXT "v=DMARC1; p=reject"\n'
        "10.2.0.192.in-addr.arpa. IN PTR mail.a.example.\n"
        "10.2.0.192.bl.example.test. IN A 127.0.0.2\n"
        "a.example.dbl.example.test. IN A 127.0.0.2\n"
    )
    (root / "mailwarden.toml").write_text(CONFIG)
    signed = sign(MESSAGE, "a.example", "sel", KEY, timestamp=int(time.time())) + MESSAGE
    (root / "good.eml").write_bytes(signed)
    return root


def output(capsys: pytest.CaptureFixture[str], args: list[str]) -> Any:
    code = run(args)
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    lines = captured.out.splitlines()
    return (
        json.loads(captured.out)
        if len(lines) == 1 or captured.out.startswith("{\n")
        else [json.loads(line) for line in lines]
    )


def commands(root: Path) -> dict[str, list[str]]:
    zone = ["--dns-zone", str(root / "zone")]
    message = str(root / "good.eml")
    envelope = ["--ip", "192.0.2.10", "--helo", "mail.a.example", "--mail-from", "alice@a.example"]
    config = ["--config", str(root / "mailwarden.toml")]
    return {
        "check": ["check", message, *envelope, "--hostname", "mx.b.example", "--json", *config,
                  *zone],
        "spf check": ["spf", "check", *envelope, "--receiver", "mx.b.example", "--json", *zone],
        "dkim verify": ["dkim", "verify", message, "--json", *zone],
        "iprev": ["iprev", "192.0.2.10", "--json", *zone],
        "helo": ["helo", "mail.a.example", "--ip", "192.0.2.10", "--json", *zone],
        "dnsbl ip": ["dnsbl", "192.0.2.10", "--zone", "bl.example.test", "--json", *zone],
        "dnsbl domain": ["dnsbl", "a.example", "--zone", "domain:dbl.example.test", "--json",
                         *zone],
        "analyze": ["analyze", str(ANALYZE / "postfix_chain.eml"), "--dns-zone",
                    str(ANALYZE / "zone.txt"), "--now", "2026-11-23T12:00:00Z", "--json", *config],
    }  # fmt: skip


def current_shapes(capsys: pytest.CaptureFixture[str], root: Path) -> dict[str, dict[str, str]]:
    return {name: shape(output(capsys, args)) for name, args in commands(root).items()}


@pytest.mark.parametrize(
    "command",
    ["check", "spf check", "dkim verify", "iprev", "helo", "dnsbl ip", "dnsbl domain", "analyze"],
)
def test_every_pinned_key_is_still_there(
    command: str, setup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pinned = json.loads(SHAPES.read_text())[command]
    now = shape(output(capsys, commands(setup)[command]))
    missing = {path: kind for path, kind in pinned.items() if path not in now}
    assert not missing, f"{command}: keys dropped or renamed: {missing}"
    changed = {path: (kind, now[path]) for path, kind in pinned.items() if now[path] != kind}
    assert not changed, f"{command}: values changed kind: {changed}"


def test_shape_sees_nested_keys_and_list_items() -> None:
    assert shape({"a": [{"b": 1}], "c": None}) == {
        "a": "list",
        "a[]": "object",
        "a[].b": "scalar",
        "c": "scalar",
    }


REASON_CODES = {
    "check": ["spf.reason_code", "spf.helo.reason_code", "dkim[].reason_code",
              "dmarc.reason_code", "iprev.reason_code", "helo.reason_codes",
              "dnsbl.ip[].reason_code", "dnsbl.domains.from[].reason_code"],
    "spf check": ["reason_code", "helo.reason_code"],
    "dkim verify": ["signatures[].reason_code"],
    "iprev": ["reason_code"],
    "helo": ["reason_codes"],
    "dnsbl ip": ["results[].reason_code"],
    "dnsbl domain": ["results[].reason_code"],
    "analyze": ["reverify.spf.reason_code", "reverify.dkim[].reason_code",
                "reverify.dmarc.reason_code", "reverify.arc.reason_code",
                "reverify.relays[].iprev.reason_code", "reverify.relays[].dnsbl[].reason_code"],
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(REASON_CODES))
def test_reason_codes_are_new_keys(
    command: str, setup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pinned = json.loads(SHAPES.read_text())[command]
    now = shape(output(capsys, commands(setup)[command]))
    for path in REASON_CODES[command]:
        assert path in now, f"{command}: no {path}"
        assert path not in pinned  # added beside the words, nothing renamed
