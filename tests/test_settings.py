"""The checks' settings: [policy], [dnsbl], [dmarc] and [greylist], with errors that name the
file, the key and the reason."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.dmarc import Discovery
from mailwarden.gateway import load_config
from mailwarden.greylist import GreylistStage
from mailwarden.policy import ConfigError
from mailwarden.settings import (
    DEFAULT_DNSBL,
    check_settings_from_mapping,
    greylist_settings_from_mapping,
    load_check_settings,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mailwarden.toml"


def test_embedded_defaults() -> None:
    settings = check_settings_from_mapping({})
    assert [lst.name for lst in settings.dnsbl_lists] == list(DEFAULT_DNSBL)
    assert DEFAULT_DNSBL == ("spamcop", "psbl")  # the lists usable without a key
    assert settings.dmarc_discovery is Discovery.TREE_WALK
    assert settings.trusted_sealers == ()
    assert check_settings_from_mapping({}, default_dnsbl=False).dnsbl_lists == ()
    greylist = greylist_settings_from_mapping({})
    assert greylist.enabled
    assert greylist.redis_url is None
    assert greylist.config.stage is GreylistStage.DATA


def test_the_example_file_is_valid_and_documents_the_defaults() -> None:
    gateway = load_config(EXAMPLE)
    settings = check_settings_from_mapping(gateway.raw, gateway.source)
    defaults = check_settings_from_mapping({})
    assert settings.policy.score_of("SPF_FAIL", 0) == defaults.policy.score_of("SPF_FAIL", 0)
    assert settings.policy.hard_reject_symbols == defaults.policy.hard_reject_symbols
    assert [lst.name for lst in settings.dnsbl_lists] == list(DEFAULT_DNSBL)
    assert greylist_settings_from_mapping(gateway.raw) == greylist_settings_from_mapping({})
    assert load_check_settings(EXAMPLE) == settings


def test_a_complete_configuration() -> None:
    raw: dict[str, Any] = {
        "dnsbl": {
            "use": ["zen"],
            "lists": [{"name": "local", "zone": "bl.example.org", "codes": "127.0.0.2=MINE:2"}],
        },
        "dmarc": {"discovery": "psl", "trusted_sealers": ["Lists.Example.ORG"]},
        "greylist": {
            "stage": "rcpt",
            "min_delay": 60,
            "exempt_networks": ["192.0.2.0/24"],
            "exempt_domains": ["Example.COM"],
            "redis": "redis://127.0.0.1:6379/1",
        },
    }
    settings = check_settings_from_mapping(raw, "x.toml")
    assert [lst.name for lst in settings.dnsbl_lists] == ["zen", "local"]
    assert settings.dmarc_discovery is Discovery.PSL
    assert settings.trusted_sealers == ("lists.example.org",)
    greylist = greylist_settings_from_mapping(raw, "x.toml")
    assert greylist.config.stage is GreylistStage.RCPT
    assert greylist.config.min_delay == 60.0
    assert greylist.config.exempt_networks == (ipaddress.ip_network("192.0.2.0/24"),)
    assert greylist.config.exempt_domains == ("example.com",)
    assert greylist.redis_url == "redis://127.0.0.1:6379/1"


@pytest.mark.parametrize(
    ("raw", "key", "reason"),
    [
        ({"dnsbl": {"use": ["nosuchlist"]}}, "dnsbl.use", "unknown list"),
        ({"dnsbl": {"lists": [{"name": "x"}]}}, "dnsbl.lists[0]", "zone"),
        ({"dnsbl": {"use": ["zen", "zen"]}}, "dnsbl", "named twice"),
        ({"dnsbl": {"other": 1}}, "dnsbl.other", "unknown key"),
        ({"dmarc": {"discovery": "guess"}}, "dmarc.discovery", "treewalk"),
        ({"dmarc": {"trusted_sealers": ["not a domain"]}}, "dmarc.trusted_sealers", "domain"),
        ({"policy": {"thresholds": {"reject": "high"}}}, "policy.thresholds.reject", "number"),
        ({"dmarc": 3}, "dmarc", "table"),
    ],
)
def test_check_errors_name_the_key(raw: dict[str, Any], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as error:
        check_settings_from_mapping(raw, "site.toml")
    assert (error.value.source, error.value.key) == ("site.toml", key)
    assert reason in error.value.reason


@pytest.mark.parametrize(
    ("table", "key", "reason"),
    [
        ({"stage": "connect"}, "greylist.stage", "rcpt"),
        ({"min_delay": "5m"}, "greylist.min_delay", "number"),
        ({"min_delay": float("nan")}, "greylist.min_delay", "finite"),
        ({"auto_allow_after": 2.5}, "greylist.auto_allow_after", "whole number"),
        ({"enabled": "yes"}, "greylist.enabled", "true or false"),
        ({"redis": "localhost"}, "greylist.redis", "redis://"),
        ({"exempt_networks": ["not/a/net"]}, "greylist.exempt_networks", ""),
        ({"exempt_domains": "example.com"}, "greylist.exempt_domains", "list"),
        ({"retry_window": 10, "min_delay": 300}, "greylist", "retry_window"),
        ({"colour": "grey"}, "greylist.colour", "unknown key"),
    ],
)
def test_greylist_errors_name_the_key(table: dict[str, Any], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as error:
        greylist_settings_from_mapping({"greylist": table}, "site.toml")
    assert error.value.key == key
    assert reason in error.value.reason


VALUES = st.one_of(
    st.integers(-5, 100_000),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=12),
    st.lists(st.text(max_size=8), max_size=3),
)


@given(
    st.dictionaries(
        st.sampled_from(["stage", "min_delay", "ipv4_prefix", "spf_pool", "redis", "bogus"]),
        VALUES,
        max_size=4,
    )
)
def test_any_greylist_table_gives_settings_or_a_config_error(table: dict[str, Any]) -> None:
    try:
        greylist_settings_from_mapping({"greylist": table})
    except ConfigError as error:
        assert error.key.startswith("greylist")  # noqa: PT017 - the error's contents matter
