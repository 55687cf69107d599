"""The [signing] and [forwarding] sections: their defaults and what each mistake says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailwarden.dkim import KeyType
from mailwarden.settings import (
    ConfigError,
    build_forwarder,
    build_srs,
    load_settings,
    settings_from_mapping,
)


def test_defaults() -> None:
    settings = load_settings(None)
    signing = settings.signing
    assert signing.algorithms == (KeyType.RSA, KeyType.ED25519)  # RFC 8463 §6: both
    assert signing.rsa_bits == 2048
    assert signing.selector_template == "{algorithm}{yyyymm}"
    assert signing.canonicalization_pair == ("relaxed", "relaxed")
    assert set(signing.oversign) >= {"from", "to", "subject", "date", "reply-to"}
    assert signing.rotate_after_days == 182  # six months
    assert signing.grace_days == 7
    forwarding = settings.forwarding
    assert not forwarding.enabled
    assert forwarding.srs_max_age == 21
    assert forwarding.srs_hash_length == 4
    assert forwarding.srs_separator == "="
    assert forwarding.arc_seal


@pytest.mark.parametrize(
    ("data", "key", "reason"),
    [
        ({"signing": {"algorithms": ["dsa"]}}, "signing.algorithms", "rsa"),
        ({"signing": {"algorithms": []}}, "signing.algorithms", "at least one"),
        ({"signing": {"algorithms": ["rsa", "RSA"]}}, "signing.algorithms", "twice"),
        ({"signing": {"rsa_bits": 1024}}, "signing.rsa_bits", "at least 2048"),
        ({"signing": {"rsa_bits": 8192}}, "signing.rsa_bits", "at most 4096"),
        ({"signing": {"grace_days": 3}}, "signing.grace_days", "at least 7"),
        ({"signing": {"rotate_after_days": -1}}, "signing.rotate_after_days", "at least 0"),
        ({"signing": {"selector_template": "{x}"}}, "signing.selector_template", "unknown {x}"),
        (
            {"signing": {"selector_template": "{yyyymm}"}},
            "signing.selector_template",
            "add {algorithm}",
        ),
        ({"signing": {"selector_template": "a b"}}, "signing.selector_template", "not a selector"),
        ({"signing": {"selector_template": "{algorithm"}}, "signing.selector_template", "template"),
        ({"signing": {"headers": ["to", "subject"]}}, "signing.headers", "from"),
        ({"signing": {"headers": ["from", "bad:name"]}}, "signing.headers", "not a header"),
        ({"signing": {"oversign": [1]}}, "signing.oversign", "header field name"),
        ({"signing": {"canonicalization": "fancy"}}, "signing.canonicalization", "fancy"),
        ({"signing": {"check_interval": 1}}, "signing.check_interval", "at least 10"),
        ({"signing": {"key_dir": "x"}}, "signing.key_dir", "unknown setting"),
        ({"signing": {"keys": [{"domain": "a.example"}]}}, "signing.keys[0].selector", "required"),
        ({"forwarding": {"aliases": "aliases.txt"}}, "forwarding.srs_domain", "SRS domain"),
        ({"forwarding": {"srs_domain": "not a domain"}}, "forwarding.srs_domain", "domain"),
        ({"forwarding": {"srs_domain": "com"}}, "forwarding.srs_domain", "domain"),
        ({"forwarding": {"srs_separator": "/"}}, "forwarding.srs_separator", '"="'),
        ({"forwarding": {"srs_hash_length": 3}}, "forwarding.srs_hash_length", "at least 4"),
        ({"forwarding": {"srs_max_age": 2000}}, "forwarding.srs_max_age", "at most 1000"),
        ({"forwarding": {"relay_to": "mail.example:99999"}}, "forwarding.relay_to", "port"),
        ({"forwarding": {"exclude_domains": [""]}}, "forwarding.exclude_domains", "empty"),
        ({"forwarding": {"arc_seal": "yes"}}, "forwarding.arc_seal", "true or false"),
    ],
)
def test_mistakes_name_key_and_reason(data: dict[str, Any], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(data, "test.toml")
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    config = tmp_path / "mailwarden.toml"
    config.write_text(
        '[forwarding]\naliases = "aliases"\nsrs_domain = "SRS.B.Example."\n'
        'srs_secret_file = "srs.secret"\n[gateway]\nlocal_domains = ["b.example"]\n'
    )
    settings = load_settings(config)
    assert settings.forwarding.aliases == str(tmp_path / "aliases")
    assert settings.forwarding.srs_domain == "srs.b.example"
    (tmp_path / "aliases").write_text("a@b.example: c@d.example\n")
    with pytest.raises(ValueError, match=r"srs\.secret"):
        build_forwarder(settings.forwarding, settings.gateway)
    (tmp_path / "srs.secret").write_text("s1\ns2\n")
    forwarder = build_forwarder(settings.forwarding, settings.gateway)
    assert forwarder.srs.secrets == (b"s1", b"s2")
    assert forwarder.route("a@b.example").remote == ("c@d.example",)


def test_the_default_secret_file_is_made_in_the_data_directory(tmp_path: Path) -> None:
    settings = settings_from_mapping(
        {"forwarding": {"srs_domain": "srs.b.example"}, "gateway": {"data_dir": str(tmp_path)}}
    )
    made = build_srs(settings.forwarding, settings.gateway.data_dir)
    assert (tmp_path / "srs.secret").read_bytes().strip() == made.secrets[0]
    assert build_srs(settings.forwarding, settings.gateway.data_dir).secrets == made.secrets


def test_an_alias_in_the_srs_domain_is_refused(tmp_path: Path) -> None:
    """Every address of the SRS domain is read as an SRS address: an alias there would never
    forward, silently (found by the lab). Refused at start-up, naming the alias."""
    (tmp_path / "aliases").write_text("fwd@srs.b.example: c@d.example\n")
    (tmp_path / "srs.secret").write_text("s1\n")
    settings = settings_from_mapping(
        {
            "forwarding": {
                "srs_domain": "srs.b.example",
                "aliases": str(tmp_path / "aliases"),
                "srs_secret_file": str(tmp_path / "srs.secret"),
            },
            "gateway": {"data_dir": str(tmp_path)},
        }
    )
    with pytest.raises(ValueError, match=r"fwd@srs\.b\.example is in the SRS domain"):
        build_forwarder(settings.forwarding, settings.gateway)
