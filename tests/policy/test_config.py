"""Policy configuration from TOML: values, and errors that name file, key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.policy import (
    ConfigError,
    PolicyConfig,
    TemperrorHandling,
    load_policy_config,
    policy_config_from_mapping,
)


def test_defaults_without_a_file() -> None:
    config = PolicyConfig()
    assert (config.greylist_threshold, config.add_header_threshold, config.reject_threshold) == (
        4.0,
        6.0,
        15.0,
    )
    assert config.score_of("SPF_FAIL", 0.0) == 3.0


def test_a_complete_file(tmp_path: Path) -> None:
    path = tmp_path / "mailwarden.toml"
    path.write_text(
        """
[policy]
dmarc_reject = false
hard_reject = ["RBL_ZEN_SBL"]
on_temperror = "tempfail"
temperror_symbols = ["DMARC_TEMPERROR"]
spam_header_prefix = "X-Warden"

[policy.scores]
SPF_FAIL = 5
RBL_ZEN_PBL = 2.5

[policy.thresholds]
greylist = false
add_header = 5
reject = 12
"""
    )
    config = load_policy_config(path)
    assert config.score_of("SPF_FAIL", 0) == 5.0
    assert config.score_of("RBL_ZEN_PBL", 0) == 2.5
    assert config.greylist_threshold is None
    assert (config.add_header_threshold, config.reject_threshold) == (5.0, 12.0)
    assert not config.dmarc_reject
    assert config.hard_reject_symbols == ("RBL_ZEN_SBL",)
    assert config.on_temperror is TemperrorHandling.TEMPFAIL
    assert config.spam_header_prefix == "X-Warden"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[policy]\nbogus = 1\n", "policy.bogus", "unknown key"),
        ("[policy.scores]\nSPF_FAIL = 'high'\n", "policy.scores.SPF_FAIL", "expected a number"),
        ("[policy.scores]\nspf_fail = 1\n", "policy.scores.spf_fail", "upper-case"),
        ("[policy.scores]\nDMARC_POLICY_NONE = 3\n", "policy.scores.DMARC_POLICY_NONE", "p=none"),
        ("[policy.thresholds]\nquarantine = 3\n", "policy.thresholds.quarantine", "unknown"),
        ("[policy.thresholds]\nreject = 3\n", "policy.thresholds.reject", "below"),
        ("[policy]\non_temperror = 'maybe'\n", "policy.on_temperror", "tempfail"),
        ("[policy]\ndmarc_reject = 'yes'\n", "policy.dmarc_reject", "true or false"),
        ("[policy]\nhard_reject = 'RBL'\n", "policy.hard_reject", "list"),
        ("[policy]\nspam_header_prefix = 'X Bad:'\n", "policy.spam_header_prefix", "header"),
        ("policy = 3\n", "policy", "table"),
        ("[policy\n", "-", "not valid TOML"),
    ],
)
def test_errors_name_file_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_policy_config(path)
    assert error.value.source == str(path)
    assert error.value.key == key
    assert reason in error.value.reason
    assert str(path) in str(error.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy_config(tmp_path / "missing.toml")


@given(
    st.dictionaries(
        st.sampled_from(["scores", "thresholds", "dmarc_reject", "on_temperror", "other"]),
        st.one_of(
            st.integers(), st.text(max_size=5), st.booleans(), st.dictionaries(st.text(), st.text())
        ),
    )
)
def test_any_mapping_gives_a_config_or_a_config_error(data: dict[str, object]) -> None:
    outcome: PolicyConfig | ConfigError
    try:
        outcome = policy_config_from_mapping(data)
    except ConfigError as error:
        outcome = error
    if isinstance(outcome, ConfigError):
        assert outcome.key.startswith("policy")
    else:
        assert isinstance(outcome, PolicyConfig)
