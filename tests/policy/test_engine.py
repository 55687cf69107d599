"""The pure decision: every rule, the thresholds, the explanation and the headers."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.policy import (
    Action,
    Facts,
    PolicyConfig,
    TemperrorHandling,
    Thresholds,
    decide,
    dkim_symbols,
    dmarc_symbols,
    spf_symbols,
)
from mailwarden.spf import Identity, SPFReason, SPFResult, SPFStatus
from mailwarden.symbols import Symbol


def symbols(*names: str) -> list[Symbol]:
    return [Symbol(name, 0.0, f"{name.lower()} seen") for name in names]


def test_clean_authenticated_mail_is_accepted() -> None:
    verdict = decide(Facts(symbols("SPF_PASS", "DKIM_VALID", "DMARC_PASS")))
    assert verdict.action is Action.ACCEPT
    assert verdict.score == -2.0
    assert verdict.reply is None
    assert not verdict.spam


@pytest.mark.parametrize(
    ("extra", "action"),
    [
        (4.0, Action.GREYLIST),
        (6.0, Action.ADD_HEADER),
        (14.99, Action.ADD_HEADER),
        (15.0, Action.REJECT),
        (3.99, Action.ACCEPT),
    ],
)
def test_thresholds_pick_the_strictest_action_reached(extra: float, action: Action) -> None:
    verdict = decide(Facts([Symbol("CUSTOM", extra)]))
    assert verdict.action is action
    assert verdict.spam is (action is Action.ADD_HEADER)
    if action is Action.REJECT:
        assert verdict.reply is not None
        assert (verdict.reply.code, verdict.reply.status) == (550, "5.7.1")
    if action is Action.GREYLIST:
        assert verdict.reply is not None
        assert verdict.reply.code == 451


def test_soft_reject_threshold_when_configured() -> None:
    config = PolicyConfig(thresholds=Thresholds(soft_reject=10.0))
    verdict = decide(Facts([Symbol("CUSTOM", 11.0)]), config)
    assert verdict.action is Action.SOFT_REJECT
    assert verdict.reply is not None
    assert str(verdict.reply).startswith("451 4.7.1")


def test_dmarc_reject_refuses_outright_whatever_the_score() -> None:
    facts = Facts(
        symbols("DMARC_POLICY_REJECT", "DKIM_VALID"),
        dmarc_disposition="reject",
        dmarc_domain="bank.example",
    )
    verdict = decide(facts)
    assert verdict.action is Action.REJECT
    assert verdict.reply is not None
    assert str(verdict.reply) == "550 5.7.1 Rejected by the DMARC policy of bank.example"
    lenient = decide(facts, PolicyConfig(dmarc_reject=False, thresholds=Thresholds(reject=None)))
    assert lenient.action is Action.ADD_HEADER  # the symbol's 8 points still weigh


def test_dmarc_quarantine_marks_as_spam() -> None:
    verdict = decide(
        Facts(symbols("DMARC_POLICY_QUARANTINE"), dmarc_disposition="quarantine"),
        PolicyConfig(scores={"DMARC_POLICY_QUARANTINE": 0.0}),
    )
    assert verdict.action is Action.ADD_HEADER
    assert verdict.spam
    assert ("X-Spam-Flag", "YES") in verdict.headers()


def test_p_none_never_changes_handling() -> None:
    verdict = decide(
        Facts(symbols("DMARC_POLICY_NONE"), dmarc_disposition="none"),
        PolicyConfig(scores={"DMARC_POLICY_NONE": 50.0}),  # ignored: fixed by RFC 9989 §5.4
    )
    assert verdict.action is Action.ACCEPT
    assert verdict.score == 0.0


def test_hard_dnsbl_hits_reject() -> None:
    facts = Facts([Symbol("RBL_ZEN_XBL", 4.0, "zen.spamhaus.org: 127.0.0.4"), *symbols("SPF_PASS")])
    verdict = decide(facts)
    assert verdict.action is Action.REJECT
    assert verdict.reply is not None
    assert verdict.reply.code == 554
    assert "RBL_ZEN_XBL" in verdict.reasons[0]
    scored_only = decide(facts, PolicyConfig(hard_reject=()))
    assert scored_only.action is Action.ACCEPT  # 4.0 - 0.5: below the greylist threshold


def test_authenticated_and_trusted_clients_are_not_filtered() -> None:
    spammy = [Symbol("RBL_ZEN_SBL", 20.0)]
    assert decide(Facts(spammy, authenticated=True)).action is Action.ACCEPT
    assert decide(Facts(spammy, trusted_network=True)).action is Action.ACCEPT


def test_temperror_never_becomes_a_pass() -> None:
    """By default a deciding check in temperror defers the message unless DMARC passed; the
    old behaviour (judge on what is known) is an explicit choice."""
    facts = Facts(symbols("DMARC_TEMPERROR", "SPF_TEMPERROR"))
    tempfail = decide(facts)
    assert tempfail.action is Action.SOFT_REJECT
    assert tempfail.reply is not None
    assert str(tempfail.reply).startswith("451 4.7.0")
    spf_only = decide(Facts(symbols("SPF_TEMPERROR")))
    assert str(spf_only.reply).startswith("451 4.7.24")  # RFC 7372: SPF validation error
    accepting = decide(facts, PolicyConfig(on_temperror=TemperrorHandling.ACCEPT))
    assert accepting.action is Action.ACCEPT
    assert any("judged on what is known" in r for r in accepting.reasons)
    assert "DMARC_PASS" not in {s.name for s in accepting.symbols}


def test_a_dns_failure_never_turns_a_dmarc_fail_into_an_accept() -> None:
    """SPF could not be checked and DMARC failed under p=reject: the SPF pass might have
    aligned, so the client retries (451) rather than being refused or accepted."""
    facts = Facts(symbols("SPF_TEMPERROR", "DKIM_INVALID"), dmarc_disposition="reject")
    assert decide(facts).action is Action.SOFT_REJECT
    lenient = decide(facts, PolicyConfig(on_temperror=TemperrorHandling.ACCEPT))
    assert lenient.action is Action.REJECT  # accept mode still honours the DMARC fail


def test_dmarc_pass_outweighs_an_unrelated_temperror() -> None:
    """A third-party signature whose key cannot be fetched does not hold up mail whose author
    domain is authenticated."""
    facts = Facts(symbols("DKIM_TEMPERROR", "DKIM_VALID", "DMARC_PASS"), dmarc_passed=True)
    verdict = decide(facts)
    assert verdict.action is Action.ACCEPT
    assert any("DMARC passed" in r for r in verdict.reasons)


@pytest.mark.parametrize(
    ("failed", "status"),
    [
        (["SPF_FAIL"], "5.7.23"),
        (["DKIM_INVALID"], "5.7.20"),
        (["IPREV_FAIL"], "5.7.25"),
        (["SPF_FAIL", "DKIM_INVALID"], "5.7.26"),
        ([], "5.7.1"),
    ],
)
def test_refusals_by_score_name_the_failed_check(failed: list[str], status: str) -> None:
    """RFC 7372 §3 enhanced status codes for SPF, DKIM and reverse DNS failures."""
    verdict = decide(Facts([Symbol("CUSTOM", 20.0), *symbols(*failed)]))
    assert verdict.action is Action.REJECT
    assert verdict.reply is not None
    assert (verdict.reply.code, verdict.reply.status) == (550, status)
    soft = decide(
        Facts([Symbol("CUSTOM", 20.0), *symbols(*failed)]),
        PolicyConfig(thresholds=Thresholds(soft_reject=10.0, reject=None)),
    )
    assert soft.reply is not None
    assert soft.reply.status == "4" + status[1:]


def test_dnswl_clients_are_never_greylisted() -> None:
    verdict = decide(Facts([Symbol("CUSTOM", 5.0), Symbol("DNSWL_MED", 0.0)]))
    assert verdict.action is Action.ACCEPT
    assert "never greylisted" in verdict.reasons[-1]


def test_configured_scores_override_defaults_and_suggestions() -> None:
    config = PolicyConfig(scores={"SPF_FAIL": 10.0, "HELO_FORGED": 0.0})
    verdict = decide(Facts([Symbol("SPF_FAIL", 0.0), Symbol("HELO_FORGED", 5.0)]), config)
    assert verdict.score == 10.0
    unknown = decide(Facts([Symbol("SOMETHING_NEW", 2.5)]))
    assert unknown.score == 2.5  # the check's own suggestion


def test_each_symbol_counts_once() -> None:
    verdict = decide(Facts([Symbol("CUSTOM", 3.0), Symbol("CUSTOM", 3.0)]))
    assert verdict.score == 3.0
    assert len(verdict.symbols) == 1


def test_verdict_explains_itself_as_json_and_header() -> None:
    verdict = decide(Facts([Symbol("SPF_FAIL", 0.0, "a.example: matched -all")]))
    data = json.loads(json.dumps(verdict.to_dict()))
    assert data["action"] == "accept"
    assert data["symbols"] == [
        {"name": "SPF_FAIL", "score": 3.0, "detail": "a.example: matched -all"}
    ]
    assert data["reasons"] == ["score 3 is below every threshold"]
    assert verdict.header_value() == "action=accept; score=3.00; symbols=SPF_FAIL(3)"
    names = [name for name, _ in verdict.headers()]
    assert names == ["X-Mailwarden-Verdict", "X-Spam-Score", "X-Spam-Status"]


def spf(result: SPFStatus, identity: Identity = Identity.MAILFROM) -> SPFResult:
    return SPFResult(
        result,
        identity,
        "a.example",
        "x@a.example",
        ipaddress.ip_address("192.0.2.1"),
        "h",
        "r",
        SPFReason.MATCHED,
    )


@dataclass
class FakeDKIM:
    result: str
    domain: str = "a.example"
    reason: str = "r"


@dataclass
class FakeDMARC:
    result: str
    disposition: str = "none"
    policy: str = "none"
    domain: str = "a.example"
    reason: str = "r"
    evaluated: bool = True


def test_symbols_from_verdicts() -> None:
    assert [
        s.name for s in spf_symbols(spf(SPFStatus.SOFTFAIL), spf(SPFStatus.FAIL, Identity.HELO))
    ] == [
        "SPF_SOFTFAIL",
        "SPF_HELO_FAIL",
    ]
    assert [s.name for s in spf_symbols(spf(SPFStatus.PASS), spf(SPFStatus.NONE))] == ["SPF_PASS"]
    names = [s.name for s in dkim_symbols([FakeDKIM("pass"), FakeDKIM("fail"), FakeDKIM("pass")])]
    assert names == ["DKIM_VALID", "DKIM_INVALID"]
    assert [s.name for s in dkim_symbols([])] == ["DKIM_NONE"]
    assert [s.name for s in dmarc_symbols(FakeDMARC("fail", "reject"))] == ["DMARC_POLICY_REJECT"]
    assert [s.name for s in dmarc_symbols(FakeDMARC("pass"))] == ["DMARC_PASS"]
    assert [s.name for s in dmarc_symbols(FakeDMARC("temperror"))] == ["DMARC_TEMPERROR"]
    assert [s.name for s in dmarc_symbols(FakeDMARC("permerror", evaluated=False))] == [
        "DMARC_NOT_EVALUATED"
    ]


SYMBOL_NAMES = st.sampled_from(
    [
        *("SPF_PASS", "SPF_FAIL", "DKIM_VALID", "DMARC_POLICY_REJECT", "RBL_ZEN_PBL"),
        *("DNSWL_HI", "DMARC_TEMPERROR", "HELO_FORGED", "PREGREET", "CUSTOM"),
    ]
)


@given(
    st.lists(st.tuples(SYMBOL_NAMES, st.floats(-20, 20)), max_size=8),
    st.sampled_from([None, "none", "quarantine", "reject"]),
)
def test_any_facts_give_a_consistent_verdict(
    items: list[tuple[str, float]], disposition: str | None
) -> None:
    verdict = decide(Facts([Symbol(n, s) for n, s in items], dmarc_disposition=disposition))
    assert verdict.action in Action
    assert verdict.reasons
    assert (verdict.reply is not None) == (
        verdict.action in (Action.GREYLIST, Action.SOFT_REJECT, Action.REJECT)
    )
    if disposition == "reject":  # refused, or deferred when a check could not finish
        deferred = verdict.action is Action.SOFT_REJECT
        assert verdict.action is Action.REJECT or (deferred and "DMARC_TEMPERROR" in dict(items))
    if disposition == "quarantine":  # marked as spam, unless not delivered at all
        assert verdict.spam or verdict.action in (Action.SOFT_REJECT, Action.REJECT)
    json.loads(json.dumps(verdict.to_dict()))
