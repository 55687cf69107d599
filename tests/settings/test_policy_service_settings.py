"""`[policy_service]`: listen addresses (TCP or UNIX), modes, bounds."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.settings import (
    ConfigError,
    GreylistMode,
    SPFMode,
    UnixPath,
    parse_listen,
    settings_from_mapping,
)


def test_defaults() -> None:
    config = settings_from_mapping({}).policy_service
    assert config.listen == "127.0.0.1:10040"
    assert config.greylist is GreylistMode.SCORE
    assert config.spf is SPFMode.PREPEND
    assert config.dnsbl is True
    assert config.rate_limits is False
    assert config.idle_timeout > 300  # beyond Postfix's smtpd_policy_service_max_idle


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("127.0.0.1:10040", "127.0.0.1:10040"),
        ("[::1]:10040", "[::1]:10040"),
        ("localhost:1", "localhost:1"),
        ("unix:/var/spool/postfix/private/policy", "unix:/var/spool/postfix/private/policy"),
    ],
)
def test_listen_forms(text: str, normal: str) -> None:
    config = settings_from_mapping({"policy_service": {"listen": text}}).policy_service
    assert config.listen == normal
    assert parse_listen(config.listen) == parse_listen(text)  # normalised text reads back


@pytest.mark.parametrize(
    "text",
    ["unix:relative/path", "unix:", "127.0.0.1", "127.0.0.1:99999", "unix:/" + "a" * 200, 5],
)
def test_bad_listen_names_the_key(text: object) -> None:
    with pytest.raises(ConfigError, match=re.escape("policy_service.listen")):
        settings_from_mapping({"policy_service": {"listen": text}})


def test_unix_path_type() -> None:
    assert isinstance(parse_listen("unix:/run/x.sock"), UnixPath)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("greylist", "sometimes"),
        ("spf", "strict"),
        ("max_line", 10),
        ("max_attributes", 0),
        ("idle_timeout", 0),
        ("read_timeout", float("inf")),
        ("max_connections", 0),
        ("nosuchkey", 1),
    ],
)
def test_bad_values_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"policy_service.{key}")):
        settings_from_mapping({"policy_service": {key: value}})


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_parse_listen_raises_only_value_error(text: str) -> None:
    try:
        parsed = parse_listen(text)
    except ValueError:
        return
    normal = f"unix:{parsed}" if isinstance(parsed, UnixPath) else None
    if normal is not None:
        assert parse_listen(normal) == parsed
