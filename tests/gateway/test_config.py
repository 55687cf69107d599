"""The [gateway] configuration: embedded defaults, the documented example, clear errors."""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from mailwarden.gateway import (
    BareLineEnding,
    ConfigError,
    DownstreamProtocol,
    GatewayConfig,
    SMTPLimits,
    Timeouts,
    TLSConfig,
    load_config,
    parse_hostport,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mailwarden.toml"


def test_embedded_defaults_need_no_file() -> None:
    config = load_config(None)
    assert config.listen == ("127.0.0.1", 2525)
    assert config.relay_to is None  # the built-in sink
    assert config.trusted_networks == ()  # loopback is not trusted
    assert not config.is_trusted("127.0.0.1")
    assert config.protocol is DownstreamProtocol.SMTP
    assert config.bare_lf is BareLineEnding.REJECT
    assert config.limits == SMTPLimits()
    assert config.timeouts.command == 300  # RFC 5321 §4.5.3.2.7
    assert config.timeouts.data_block == 180  # RFC 5321 §4.5.3.2.5
    assert config.hostname


def test_example_documents_every_setting() -> None:
    text = EXAMPLE.read_text()
    data = tomllib.loads(text)
    gateway = data["gateway"]
    nested = {"limits": SMTPLimits, "timeouts": Timeouts, "tls": TLSConfig}
    top = {f.name for f in fields(GatewayConfig)} - {"raw", "source"}
    assert set(gateway) == top
    for name, cls in nested.items():
        assert set(gateway[name]) == {f.name for f in fields(cls)}, name
        assert gateway[name] == {f.name: getattr(cls(), f.name) for f in fields(cls)}, name
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            previous = lines[index - 1]
            assert previous.startswith("#") or "=" in previous, f"no comment above: {line}"
    config = load_config(EXAMPLE)
    assert config.local_domains == ("example.net",)
    assert config.hostname == "mx.example.net"
    assert Path(config.data_dir) == EXAMPLE.parent / "data"
    assert config.log_file == "-"


def test_file_settings_and_raw_tables(tmp_path: Path) -> None:
    path = tmp_path / "mw.toml"
    path.write_text(
        """
[gateway]
listen = "[::1]:2600"
relay_to = "mailbox.internal"
protocol = "lmtp"
trusted_networks = ["192.0.2.0/24", "2001:db8::/32"]
local_domains = ["Example.NET."]
data_dir = "var"
greet_pause = 0
[gateway.limits]
max_recipients = 5
[gateway.tls]
enabled = false
[policy]
reject = 15
[dns]
servers = ["192.0.2.53"]
"""
    )
    config = load_config(path)
    assert config.listen == ("::1", 2600)
    assert config.relay_to == ("mailbox.internal", 25)
    assert config.protocol is DownstreamProtocol.LMTP
    assert config.trusted_networks == (
        ipaddress.ip_network("192.0.2.0/24"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert config.is_trusted("192.0.2.9")
    assert config.is_trusted("::ffff:192.0.2.9")
    assert not config.is_trusted("198.51.100.1")
    assert config.local_domains == ("example.net",)
    assert config.data_dir == str(tmp_path / "var")
    assert config.greet_pause == 0
    assert config.limits.max_recipients == 5
    assert config.tls.enabled is False
    assert config.raw["policy"] == {"reject": 15}
    assert config.raw["dns"] == {"servers": ["192.0.2.53"]}
    assert config.source == str(path)


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('[gateway]\nlisten = "nowhere"', "gateway.listen", "missing :PORT"),
        ('[gateway]\nlisten = "host:99999"', "gateway.listen", "invalid port"),
        ('[gateway]\nprotocol = "uucp"', "gateway.protocol", "one of smtp, lmtp"),
        ('[gateway]\nbare_lf = "maybe"', "gateway.bare_lf", "one of reject, normalize"),
        (
            '[gateway]\ntrusted_networks = ["10.0.0.0/33"]',
            "gateway.trusted_networks",
            "not a network",
        ),
        ("[gateway]\nlocal_domains = 3", "gateway.local_domains", "list of strings"),
        ("[gateway]\ngreet_pause = -1", "gateway.greet_pause", "number >= 0"),
        ('[gateway]\ngreet_pause = "1"', "gateway.greet_pause", "number >= 0"),
        ("[gateway]\nlsiten = 1", "gateway.lsiten", "unknown setting"),
        ("[gateway.limits]\nmax_recipients = 0", "gateway.limits.max_recipients", "positive"),
        ("[gateway.limits]\nmax_recipients = 1.5", "gateway.limits.max_recipients", "whole"),
        ("[gateway.limits]\nmax_bananas = 1", "gateway.limits.max_bananas", "unknown setting"),
        ('[gateway.timeouts]\ncommand = "x"', "gateway.timeouts.command", "a number"),
        ('[gateway.tls]\ncert_file = "c.pem"', "gateway.tls", "go together"),
        ('[gateway.tls]\nenabled = "yes"', "gateway.tls.enabled", "true or false"),
        ('[gateway]\nquarantine_address = "nobody"', "gateway.quarantine_address", "address"),
        ('gateway = "x"', "gateway", "must be a table"),
        ("[gateway\n", "-", "not valid TOML"),
    ],
)
def test_errors_name_file_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path)
    assert info.value.key == key
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{path}: {key}: ")


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config("/nonexistent/mailwarden.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:25", ("127.0.0.1", 25)),
        ("[::1]:2525", ("::1", 2525)),
        ("mx.example.net:587", ("mx.example.net", 587)),
        ("::1", ("::1", 25)),
        ("mx.example.net", ("mx.example.net", 25)),
    ],
)
def test_hostport(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text, 25) == expected
