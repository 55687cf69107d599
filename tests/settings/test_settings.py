"""One Settings for the whole product: defaults, the documented example, clear errors.

Attacker's and unlucky user's variants tried on the one reader: unknown tables and keys (typos),
wrong types everywhere (strings for numbers, numbers for strings, tables for values), numbers
that are not finite (nan, inf, 1e309) or out of range, binary and non-UTF-8 files, a directory
or a missing path given as the file, TOML syntax errors, NUL characters in strings, and
command-line overrides with the same mistakes (their errors name the option).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.dmarc import Discovery
from mailwarden.greylist import GreylistStage
from mailwarden.policy import TemperrorHandling
from mailwarden.settings import (
    DEFAULT_DNSBL,
    BareLineEnding,
    ConfigError,
    DownstreamProtocol,
    Settings,
    SMTPLimits,
    load_settings,
    settings_from_mapping,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mailwarden.toml"

# Keys whose value in the example differs from the embedded default, on purpose.
EXAMPLE_NOT_DEFAULT = {"gateway.hostname", "gateway.local_domains", "gateway.data_dir"}


def test_embedded_defaults_need_no_file() -> None:
    settings = load_settings(None)
    assert settings == Settings(gateway=settings.gateway)  # only the host name is looked up
    assert settings.source == "<defaults>"
    assert settings.dns.servers == ()
    assert settings.dns.timeout == 5.0
    gateway = settings.gateway
    assert gateway.listen == ("127.0.0.1", 2525)
    assert gateway.relay_to is None  # the built-in sink
    assert gateway.trusted_networks == ()  # loopback is not trusted
    assert not gateway.is_trusted("127.0.0.1")
    assert gateway.protocol is DownstreamProtocol.SMTP
    assert gateway.bare_lf is BareLineEnding.REJECT
    assert gateway.limits == SMTPLimits()
    assert gateway.timeouts.command == 300  # RFC 5321 §4.5.3.2.7
    assert gateway.timeouts.data_block == 180  # RFC 5321 §4.5.3.2.5
    assert gateway.hostname
    assert [lst.name for lst in settings.dnsbl.selected] == list(DEFAULT_DNSBL)
    assert DEFAULT_DNSBL == ("spamcop", "psbl")  # the lists usable without a key
    assert settings.dmarc.discovery is Discovery.TREE_WALK
    assert settings.greylist.enabled
    assert settings.greylist.redis is None
    assert settings.greylist.config.stage is GreylistStage.DATA
    assert settings.policy.score_of("SPF_FAIL", 0) == 3.0


def _keys(cls: type, prefix: str) -> list[str]:
    """Every key a section reads, dotted (nested sections expanded, flattened ones merged)."""
    hints = typing.get_type_hints(cls)
    keys: list[str] = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        hint = hints[f.name]
        if f.metadata.get("flatten"):
            keys += _keys(hint, prefix)
        elif dataclasses.is_dataclass(hint) and not f.metadata.get("convert"):
            keys += _keys(hint, f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def _example_lines() -> dict[str, tuple[int, bool]]:
    """Dotted key -> (line index, commented out) for every `key = ...` line of the example."""
    found: dict[str, tuple[int, bool]] = {}
    table = ""
    for index, line in enumerate(EXAMPLE.read_text().splitlines()):
        text = line.strip()
        if text.startswith("[") and not text.startswith("[["):
            table = text.strip("[]")
        elif text.startswith("# [[") or text.startswith("[["):
            table = text.lstrip("# ").split("#")[0].strip().strip("[]")
            found.setdefault(table, (index, text.startswith("#")))  # an array of tables
        body = text[2:] if text.startswith("# ") else text
        name = body.split("=")[0].strip()
        if "=" in body and name.replace("_", "").isalnum() and " " not in name:
            found.setdefault(f"{table}.{name}", (index, text.startswith("#")))
    return found


def test_the_example_documents_every_key_with_its_default() -> None:
    lines = EXAMPLE.read_text().splitlines()
    documented = _example_lines()
    expected = _keys(Settings, "")
    missing = [key for key in expected if key not in documented and not key.endswith(".scores")]
    assert not missing, f"not in examples/mailwarden.toml: {missing}"
    for key in expected:
        if key in documented:
            index, _ = documented[key]
            above = lines[index - 1].strip()
            assert above.startswith("#") or "=" in above, f"no comment above {key}"
    example = load_settings(EXAMPLE)
    defaults = load_settings(None)
    for key in expected:
        if key in EXAMPLE_NOT_DEFAULT or key.endswith(".scores"):
            continue
        section = key.split(".")
        ours: Any = example
        theirs: Any = defaults
        if section[0] == "greylist" and not hasattr(example.greylist, section[1]):
            ours, theirs, section = example.greylist.config, defaults.greylist.config, section[1:]
        for name in section:
            ours, theirs = getattr(ours, name), getattr(theirs, name)
        assert ours == theirs, f"{key}: the example shows {ours!r}, the default is {theirs!r}"
    assert example.gateway.local_domains == ("example.net",)
    assert example.gateway.hostname == "mx.example.net"
    assert Path(example.gateway.data_dir) == EXAMPLE.parent / "data"
    assert example.gateway.log_file == "-"


def test_a_complete_file(tmp_path: Path) -> None:
    path = tmp_path / "mw.toml"
    path.write_text(
        """
[dns]
servers = ["192.0.2.53", "[2001:db8::53]:5353"]
zones = ["local.zone"]
timeout = 2
retries = 0
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
dmarc_reject = false
hard_reject = ["RBL_ZEN_SBL"]
on_temperror = "tempfail"
spam_header_prefix = "X-Warden"
[policy.scores]
SPF_FAIL = 5
RBL_ZEN_PBL = 2.5
[policy.thresholds]
greylist = false
add_header = 5
reject = 12
[dnsbl]
use = ["zen"]
[[dnsbl.lists]]
name = "local"
zone = "bl.example.org"
codes = "127.0.0.2=MINE:2"
[dmarc]
discovery = "psl"
trusted_sealers = ["Lists.Example.ORG"]
[greylist]
stage = "rcpt"
min_delay = 60
exempt_networks = ["192.0.2.0/24"]
exempt_domains = ["Example.COM"]
redis = "redis://127.0.0.1:6379/1"
"""
    )
    settings = load_settings(path)
    assert settings.source == str(path)
    assert settings.dns.servers == ("192.0.2.53", "[2001:db8::53]:5353")
    assert settings.dns.zones == (str(tmp_path / "local.zone"),)  # relative to the file
    assert (settings.dns.timeout, settings.dns.retries) == (2.0, 0)
    gateway = settings.gateway
    assert gateway.listen == ("::1", 2600)
    assert gateway.relay_to == ("mailbox.internal", 25)
    assert gateway.protocol is DownstreamProtocol.LMTP
    assert gateway.trusted_networks == (
        ipaddress.ip_network("192.0.2.0/24"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert gateway.is_trusted("192.0.2.9")
    assert gateway.is_trusted("::ffff:192.0.2.9")
    assert not gateway.is_trusted("198.51.100.1")
    assert gateway.local_domains == ("example.net",)
    assert gateway.data_dir == str(tmp_path / "var")
    assert gateway.greet_pause == 0
    assert gateway.limits.max_recipients == 5
    assert gateway.tls.enabled is False
    policy = settings.policy
    assert policy.score_of("SPF_FAIL", 0) == 5.0
    assert policy.score_of("RBL_ZEN_PBL", 0) == 2.5
    assert policy.score_of("SPF_SOFTFAIL", 0) == 1.0  # the default table still applies
    assert policy.thresholds.greylist is None
    assert (policy.thresholds.add_header, policy.thresholds.reject) == (5.0, 12.0)
    assert not policy.dmarc_reject
    assert policy.hard_reject == ("RBL_ZEN_SBL",)
    assert policy.on_temperror is TemperrorHandling.TEMPFAIL
    assert policy.spam_header_prefix == "X-Warden"
    assert [lst.name for lst in settings.dnsbl.selected] == ["zen", "local"]
    assert settings.dmarc.discovery is Discovery.PSL
    assert settings.dmarc.trusted_sealers == ("lists.example.org",)
    greylist = settings.greylist
    assert greylist.config.stage is GreylistStage.RCPT
    assert greylist.config.min_delay == 60.0
    assert greylist.config.exempt_networks == (ipaddress.ip_network("192.0.2.0/24"),)
    assert greylist.config.exempt_domains == ("example.com",)
    assert greylist.redis == "redis://127.0.0.1:6379/1"


ERRORS = [
    ("[dnss]\nservers = []", "dnss", "unknown table"),
    ("[dns]\ntimeout = nan", "dns.timeout", "finite"),
    ("[dns]\ntimeout = inf", "dns.timeout", "finite"),
    ("[dns]\ntimeout = -inf", "dns.timeout", "finite"),
    ("[dns]\ntimeout = 0", "dns.timeout", "at least"),
    ("[dns]\ntimeout = 'x'", "dns.timeout", "a number"),
    ("[dns]\nretries = 1.5", "dns.retries", "whole"),
    ("[dns]\nservers = [1]", "dns.servers", "HOST"),
    ('[dns]\nservers = ["a\\u0000b"]', "dns.servers", "HOST"),
    ("[dns]\nserver = ['x']", "dns.server", "unknown setting"),
    ('[gateway]\nlisten = "nowhere"', "gateway.listen", "missing :PORT"),
    ('[gateway]\nlisten = "host:99999"', "gateway.listen", "invalid port"),
    ('[gateway]\nlisten = "host:²5"', "gateway.listen", "invalid port"),
    ("[gateway]\nlisten = 25", "gateway.listen", "HOST:PORT"),
    ('[gateway]\nprotocol = "uucp"', "gateway.protocol", '"smtp", "lmtp"'),
    ('[gateway]\nbare_lf = "maybe"', "gateway.bare_lf", '"reject", "normalize"'),
    ('[gateway]\ntrusted_networks = ["10.0.0.0/33"]', "gateway.trusted_networks", "network"),
    ("[gateway]\nlocal_domains = 3", "gateway.local_domains", "array of strings"),
    ("[gateway]\ngreet_pause = -1", "gateway.greet_pause", "at least 0"),
    ("[gateway]\ngreet_pause = 1e309", "gateway.greet_pause", "finite"),
    ("[gateway]\ngreet_pause = 3600", "gateway.greet_pause", "at most"),
    ('[gateway]\ngreet_pause = "1"', "gateway.greet_pause", "a number"),
    ("[gateway]\nlsiten = 1", "gateway.lsiten", "unknown setting"),
    ('[gateway]\nhostname = "a b"', "gateway.hostname", "not a host name"),
    ("[gateway.limits]\nmax_recipients = 0", "gateway.limits.max_recipients", "at least 1"),
    ("[gateway.limits]\nmax_recipients = 1.5", "gateway.limits.max_recipients", "whole"),
    ("[gateway.limits]\nmax_bananas = 1", "gateway.limits.max_bananas", "unknown setting"),
    ('[gateway.timeouts]\ncommand = "x"', "gateway.timeouts.command", "a number"),
    ("[gateway.timeouts]\ncommand = nan", "gateway.timeouts.command", "finite"),
    ('[gateway.tls]\ncert_file = "c.pem"', "gateway.tls", "go together"),
    ('[gateway.tls]\nenabled = "yes"', "gateway.tls.enabled", "true or false"),
    ('[gateway]\nquarantine_address = "nobody"', "gateway.quarantine_address", "address"),
    ('gateway = "x"', "gateway", "expected a table"),
    ("[policy]\nbogus = 1\n", "policy.bogus", "unknown setting"),
    ("[policy.scores]\nSPF_FAIL = 'high'\n", "policy.scores.SPF_FAIL", "expected a number"),
    ("[policy.scores]\nSPF_FAIL = nan\n", "policy.scores.SPF_FAIL", "finite"),
    ("[policy.scores]\nspf_fail = 1\n", "policy.scores.spf_fail", "upper-case"),
    ("[policy.scores]\nDMARC_POLICY_NONE = 3\n", "policy.scores.DMARC_POLICY_NONE", "p=none"),
    ("[policy.thresholds]\nquarantine = 3\n", "policy.thresholds.quarantine", "unknown"),
    ("[policy.thresholds]\nreject = 3\n", "policy.thresholds.reject", "below"),
    ("[policy.thresholds]\nreject = 'high'\n", "policy.thresholds.reject", "number"),
    ("[policy.thresholds]\nreject = true\n", "policy.thresholds.reject", "number"),
    ("[policy]\non_temperror = 'maybe'\n", "policy.on_temperror", "tempfail"),
    ("[policy]\ndmarc_reject = 'yes'\n", "policy.dmarc_reject", "true or false"),
    ("[policy]\nhard_reject = 'RBL'\n", "policy.hard_reject", "array"),
    ("[policy]\nspam_header_prefix = 'X Bad:'\n", "policy.spam_header_prefix", "header"),
    ("policy = 3\n", "policy", "table"),
    ('[dnsbl]\nuse = ["nosuchlist"]', "dnsbl.use", "unknown list"),
    ('[[dnsbl.lists]]\nname = "x"', "dnsbl.lists", "zone"),
    ('[dnsbl]\nuse = ["zen", "zen"]', "dnsbl", "named twice"),
    ("[dnsbl]\nother = 1", "dnsbl.other", "unknown setting"),
    ('[dmarc]\ndiscovery = "guess"', "dmarc.discovery", "treewalk"),
    ('[dmarc]\ntrusted_sealers = ["not a domain"]', "dmarc.trusted_sealers", "domain"),
    ("dmarc = 3", "dmarc", "table"),
    ('[greylist]\nstage = "connect"', "greylist.stage", "rcpt"),
    ('[greylist]\nmin_delay = "5m"', "greylist.min_delay", "number"),
    ("[greylist]\nmin_delay = nan", "greylist.min_delay", "finite"),
    ("[greylist]\npass_ttl = inf", "greylist.pass_ttl", "finite"),
    ("[greylist]\nauto_allow_after = 2.5", "greylist.auto_allow_after", "whole number"),
    ('[greylist]\nenabled = "yes"', "greylist.enabled", "true or false"),
    ('[greylist]\nredis = "localhost"', "greylist.redis", "redis://"),
    ('[greylist]\nexempt_networks = ["not/a/net"]', "greylist.exempt_networks", ""),
    ("[greylist]\nexempt_domains = 3", "greylist.exempt_domains", "array"),
    ("[greylist]\nretry_window = 10\nmin_delay = 300", "greylist", "retry_window"),
    ("[greylist]\nipv4_prefix = 33", "greylist.ipv4_prefix", "at most 32"),
    ('[greylist]\ncolour = "grey"', "greylist.colour", "unknown setting"),
    ('[greylist]\nreply_text = "x"', "greylist.reply_text", "unknown setting"),
]


@pytest.mark.parametrize(("text", "key", "reason"), ERRORS)
def test_errors_name_file_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.source == str(path)
    assert info.value.key == key
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{path}: {key}: ")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"[gateway\n", "not valid TOML"),
        (b"\xff\xfe[gateway]\n", "not UTF-8 text (byte 0xff at offset 0)"),
        (b"[gateway]\nhostname = '\xe9'\n", "not UTF-8"),
        (b"\x00\x01\x02binary", "not valid TOML"),
    ],
)
def test_unreadable_files_say_why(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.key == ""  # not about one key: the reason says where
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{path}: ")


def test_a_missing_file_or_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_settings(tmp_path)


def test_command_line_overrides_win_and_name_the_option(tmp_path: Path) -> None:
    path = tmp_path / "mw.toml"
    path.write_text('[dns]\ntimeout = 2\n[gateway]\nlisten = "127.0.0.1:25"\ndata_dir = "v"\n')
    settings = load_settings(
        path,
        overrides={
            "dns.timeout": (7.5, "--dns-timeout"),
            "gateway.data_dir": ("here", "--data-dir"),
        },
    )
    assert settings.dns.timeout == 7.5
    assert settings.gateway.listen == ("127.0.0.1", 25)
    assert settings.gateway.data_dir == "here"  # relative to the working directory, not the file
    for key, value, option, reason in [
        ("dns.timeout", math.nan, "--dns-timeout", "finite"),
        ("dns.timeout", math.inf, "--dns-timeout", "finite"),
        ("gateway.listen", "x", "--listen", "missing :PORT"),
        ("gateway.greet_pause", 1e309, "--greet-pause", "finite"),
        ("gateway.local_domains", ["a", 3], "--local-domain", "domain"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_settings(path, overrides={key: (value, option)})
        assert (info.value.source, info.value.key) == (option, key)
        assert reason in info.value.reason


def test_settings_are_frozen() -> None:
    settings = load_settings(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.gateway = settings.gateway  # type: ignore[misc]


SCALARS = st.one_of(
    st.integers(-5, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.lists(st.one_of(st.text(max_size=8), st.integers()), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
KEYS = {
    "dns": ["servers", "zones", "timeout", "retries", "bogus"],
    "gateway": ["listen", "relay_to", "hostname", "greet_pause", "limits", "tls", "protocol"],
    "policy": ["scores", "thresholds", "hard_reject", "on_temperror", "spam_header_prefix"],
    "dnsbl": ["use", "lists"],
    "dmarc": ["discovery", "trusted_sealers"],
    "greylist": ["stage", "min_delay", "ipv4_prefix", "spf_pool", "redis", "exempt_networks"],
    "other": ["x"],
}


@st.composite
def configurations(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from(sorted(KEYS)), max_size=3, unique=True)):
        keys = draw(st.lists(st.sampled_from(KEYS[section]), max_size=3, unique=True))
        data[section] = {key: draw(SCALARS) for key in keys}
    return data


@given(configurations())
def test_any_configuration_gives_settings_or_a_config_error(data: dict[str, Any]) -> None:
    try:
        settings = settings_from_mapping(data, "fuzz.toml")
    except ConfigError as error:
        where = (error.source, error.key.split(".")[0] in KEYS)
        assert where == ("fuzz.toml", True)
        return
    for value in (settings.dns.timeout, settings.gateway.greet_pause):
        assert math.isfinite(value)


def test_the_example_parses_as_plain_toml() -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    assert set(data) == {
        "dns",
        "gateway",
        "policy",
        "dnsbl",
        "dmarc",
        "deadlines",
        "greylist",
        "policy_service",
        "submission",
        "signing",
        "forwarding",
        "reports",
        "milter",
        "http",
        "transactions",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:11332", "127.0.0.1:11332"),
        ("inet:localhost:8891", "localhost:8891"),
        ("[::1]:11332", "[::1]:11332"),
        ("unix:/run/mailwarden/milter.sock", "unix:/run/mailwarden/milter.sock"),
    ],
)
def test_milter_listen(text: str, expected: str) -> None:
    settings = settings_from_mapping({"milter": {"listen": text}})
    assert settings.milter.listen == expected


@pytest.mark.parametrize(
    "text", ["unix:relative.sock", "unix:/" + "x" * 200, "127.0.0.1", "host:99999", 5]
)
def test_milter_listen_refused(text: object) -> None:
    with pytest.raises(ConfigError, match=r"milter\.listen"):
        settings_from_mapping({"milter": {"listen": text}})


def test_milter_content_timeout_not_below_command_timeout() -> None:
    with pytest.raises(ConfigError, match="content_timeout"):
        settings_from_mapping({"milter": {"command_timeout": 30, "content_timeout": 10}})
