"""The [policy] section as data: defaults, scores, thresholds and their order.

Reading it from TOML is the settings reader's work (tests/settings/test_settings.py).
"""

from __future__ import annotations

import pytest

from mailwarden.policy import Action, PolicyConfig, Thresholds
from mailwarden.schema import InvalidSetting


def test_defaults() -> None:
    config = PolicyConfig()
    assert (
        config.threshold_of(Action.GREYLIST),
        config.threshold_of(Action.ADD_HEADER),
        config.threshold_of(Action.SOFT_REJECT),
        config.threshold_of(Action.REJECT),
    ) == (4.0, 6.0, None, 15.0)
    assert config.score_of("SPF_FAIL", 0.0) == 3.0
    assert config.score_of("NO_SUCH_SYMBOL", 1.5) == 1.5  # what the check suggests
    assert config.score_of("DMARC_POLICY_NONE", 9.0) == 0.0  # fixed by RFC 9989 §5.4


def test_configured_scores_win_over_the_table() -> None:
    config = PolicyConfig(scores={"SPF_FAIL": 10.0})
    assert config.score_of("SPF_FAIL", 0.0) == 10.0
    assert config.score_of("SPF_SOFTFAIL", 0.0) == 1.0  # the default table still applies


@pytest.mark.parametrize(
    ("thresholds", "key"),
    [
        (Thresholds(reject=3.0), "reject"),
        (Thresholds(greylist=7.0), "add_header"),
        (Thresholds(soft_reject=20.0), "reject"),
    ],
)
def test_milder_actions_need_lower_thresholds(thresholds: Thresholds, key: str) -> None:
    with pytest.raises(InvalidSetting) as info:
        thresholds.validate()
    assert info.value.key == key


def test_disabled_actions_are_skipped_in_the_order() -> None:
    Thresholds(greylist=None, add_header=None, soft_reject=None, reject=1.0).validate()


@pytest.mark.parametrize(
    ("scores", "key"),
    [
        ({"spf_fail": 1.0}, "scores.spf_fail"),
        ({"DMARC_POLICY_NONE": 1.0}, "scores.DMARC_POLICY_NONE"),
    ],
)
def test_bad_scores(scores: dict[str, float], key: str) -> None:
    with pytest.raises(InvalidSetting) as info:
        PolicyConfig(scores=scores).validate()
    assert info.value.key == key
