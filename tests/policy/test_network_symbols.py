"""The connection-time checks' symbols are the policy's: named from typed results (iprev, HELO)
or by the DNS lists' definitions, scored only here, in one order of precedence. Every name and
score users saw before scoring moved here is pinned below."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pytest

from mailwarden.dns import StaticResolver
from mailwarden.dnsbl import DEFAULT_LISTS, DNSListChecker, parse_list
from mailwarden.helo import HeloFinding, HeloKind, HeloName, HeloReason, HeloResult
from mailwarden.iprev import IprevReason, IprevResult, IprevStatus
from mailwarden.policy import (
    DEFAULT_SCORES,
    HELO_SYMBOLS,
    Action,
    Facts,
    ListedSymbol,
    PolicyConfig,
    decide,
    dnsbl_symbols,
    helo_symbols,
    iprev_symbols,
)
from mailwarden.symbols import Symbol

CLIENT = ipaddress.IPv4Address("192.0.2.1")

# The scores iprev and HELO gave their own symbols before the policy scored them
# (iprev.IPREV_SCORES, helo.HELO_SCORES): the policy gives the same.
BEFORE = {
    "IPREV_PASS": 0.0,
    "IPREV_FAIL": 1.5,
    "IPREV_TEMPERROR": 0.0,
    "IPREV_PERMERROR": 1.0,
    "HELO_BAD_SYNTAX": 2.0,
    "HELO_BARE_IP": 2.0,
    "HELO_NOT_FQDN": 1.5,
    "HELO_IP_LITERAL": 0.0,
    "HELO_IP_LITERAL_MISMATCH": 2.5,
    "HELO_FORGED": 5.0,
    "HELO_NORESOLVE": 1.0,
    "HELO_TEMPERROR": 0.0,
    "HELO_MISMATCH_PTR": 0.5,
    "HELO_MATCHES_CLIENT": 0.0,
    "HELO_MATCHES_PTR": 0.0,
}


def test_iprev_and_helo_scores_are_the_policys_now() -> None:
    assert {name: PolicyConfig().score_of(name) for name in BEFORE} == BEFORE
    produced = {f"IPREV_{s.value.upper()}" for s in IprevStatus} | set(HELO_SYMBOLS.values())
    assert produced == set(BEFORE)
    assert {name: DEFAULT_SCORES[name] for name in produced} == BEFORE


# What each built-in list's answers scored before (the symbol carried the definition's score):
# through the policy they score the same. The last answers match no code: the list's default
# symbol weighs its default_score, even where a code gives the same name another score.
@pytest.mark.parametrize(
    ("lst", "answer", "expected"),
    [
        ("zen", "127.0.0.2", [("RBL_ZEN_SBL", 4.0)]),
        ("zen", "127.0.0.3", [("RBL_ZEN_CSS", 3.0)]),
        ("zen", "127.0.0.4", [("RBL_ZEN_XBL", 5.0)]),
        ("zen", "127.0.0.7", [("RBL_ZEN_XBL", 5.0)]),
        ("zen", "127.0.0.9", [("RBL_ZEN_DROP", 6.0)]),
        ("zen", "127.0.0.10", [("RBL_ZEN_PBL", 2.0)]),
        ("zen", "127.0.0.30", [("RBL_ZEN_BCL", 5.0)]),
        ("zen", "127.0.0.99", [("RBL_ZEN", 3.0)]),
        ("spamcop", "127.0.0.2", [("RBL_SPAMCOP", 3.0)]),
        ("spamcop", "127.0.0.3", [("RBL_SPAMCOP", 1.0)]),
        ("barracuda", "127.0.0.2", [("RBL_BARRACUDA", 3.0)]),
        ("psbl", "127.0.0.2", [("RBL_PSBL", 2.0)]),
        ("dnswl", "127.0.9.0", [("DNSWL_NONE", 0.0)]),
        ("dnswl", "127.0.9.1", [("DNSWL_LOW", -1.0)]),
        ("dnswl", "127.0.9.2", [("DNSWL_MED", -2.5)]),
        ("dnswl", "127.0.9.3", [("DNSWL_HI", -5.0)]),
        ("dbl", "127.0.1.2", [("RHSBL_DBL_SPAM", 4.0)]),
        ("dbl", "127.0.1.4", [("RHSBL_DBL_PHISH", 6.0)]),
        ("dbl", "127.0.1.5", [("RHSBL_DBL_MALWARE", 6.0)]),
        ("dbl", "127.0.1.6", [("RHSBL_DBL_BOTNET", 6.0)]),
        ("dbl", "127.0.1.104", [("RHSBL_DBL_ABUSED", 2.0)]),
        ("dbl", "127.0.1.9", [("RHSBL_DBL", 3.0)]),
        ("surbl", "127.0.0.8", [("RHSBL_SURBL_PH", 5.0)]),
        ("surbl", "127.0.0.16", [("RHSBL_SURBL_MW", 5.0)]),
        ("surbl", "127.0.0.64", [("RHSBL_SURBL_ABUSE", 4.0)]),
        ("surbl", "127.0.0.136", [("RHSBL_SURBL_PH", 5.0), ("RHSBL_SURBL_CR", 3.0)]),
        ("surbl", "127.0.0.1", [("RHSBL_SURBL", 1.0)]),
    ],
)
async def test_dns_list_scores_are_the_definitions_through_the_policy(
    lst: str, answer: str, expected: list[tuple[str, float]]
) -> None:
    definition = next(d for d in DEFAULT_LISTS if d.name == lst)
    subject = "192.0.2.1" if definition.kind.value == "ip" else "listed.example"
    qname = ("1.2.0.192" if subject == "192.0.2.1" else subject) + "." + definition.zone
    resolver = StaticResolver({qname: {"A": answer}})
    checker = DNSListChecker(resolver, [definition])
    report = await (
        checker.check_ip(subject) if subject == "192.0.2.1" else checker.check_domain(subject)
    )
    verdict = decide(Facts(dnsbl_symbols([report])))
    assert [(s.name, s.score) for s in verdict.symbols] == expected


def iprev(status: IprevStatus, reason: str = "", name: str | None = None) -> IprevResult:
    code = IprevReason.CONFIRMED if status is IprevStatus.PASS else IprevReason.DNS_ERROR
    return IprevResult(status, CLIENT, code, (), name, reason)


@pytest.mark.parametrize(
    ("result", "symbol"),
    [
        (iprev(IprevStatus.PASS, name="mail.example.com"), Symbol("IPREV_PASS", 0.0,
                                                                  "mail.example.com")),
        (iprev(IprevStatus.FAIL, "no PTR name resolves back"), Symbol("IPREV_FAIL", 0.0,
                                                                      "no PTR name resolves back")),
        (iprev(IprevStatus.TEMPERROR, "PTR lookup failed"), Symbol("IPREV_TEMPERROR", 0.0,
                                                                   "PTR lookup failed")),
        (iprev(IprevStatus.PERMERROR, "no PTR record"), Symbol("IPREV_PERMERROR", 0.0,
                                                               "no PTR record")),
    ],
)  # fmt: skip
def test_iprev_symbols(result: IprevResult, symbol: Symbol) -> None:
    assert iprev_symbols(result) == [symbol]


def test_no_result_no_symbol() -> None:
    assert iprev_symbols(None) == []
    assert helo_symbols(None) == []
    assert dnsbl_symbols([None, None]) == []


def helo(*codes: HeloReason) -> HeloResult:
    findings = tuple(HeloFinding(code, f"{code.value} seen") for code in codes)
    return HeloResult(HeloName(HeloKind.DOMAIN, "x.example", "x.example"), CLIENT, findings)


def test_every_helo_finding_has_its_symbol() -> None:
    assert set(HELO_SYMBOLS) == {code.value for code in HeloReason}
    assert len(set(HELO_SYMBOLS.values())) == len(HELO_SYMBOLS)


def test_helo_symbols_keep_the_order_and_details_found() -> None:
    result = helo(HeloReason.BARE_IP, HeloReason.FORGED)
    assert helo_symbols(result) == [
        Symbol("HELO_BARE_IP", 0.0, "bare-ip seen"),
        Symbol("HELO_FORGED", 0.0, "forged seen"),
    ]


def test_a_helo_code_the_table_lacks_still_gets_a_name() -> None:
    @dataclass
    class Finding:
        code: str
        detail: str

    @dataclass
    class Result:
        findings: tuple[Finding, ...]

    assert helo_symbols(Result((Finding("brand-new", "x"),))) == [Symbol("HELO_BRAND_NEW", 0, "x")]


@dataclass
class Report:
    symbols: tuple[Symbol, ...]


def test_dnsbl_symbols_keep_the_definitions_names_scores_and_order() -> None:
    a = Report((Symbol("RBL_ZEN_XBL", 5.0, "xbl"), Symbol("RBL_ZEN_PBL", 2.0, "pbl")))
    b = Report((Symbol("RHSBL_DBL_SPAM", 4.0, "dbl"),))
    assert dnsbl_symbols([a, None, b]) == [
        ListedSymbol("RBL_ZEN_XBL", 5.0, "xbl"),
        ListedSymbol("RBL_ZEN_PBL", 2.0, "pbl"),
        ListedSymbol("RHSBL_DBL_SPAM", 4.0, "dbl"),
    ]


# [policy.scores] > the list definition (a ListedSymbol's score) > DEFAULT_SCORES > the
# symbol's own suggestion; DMARC_POLICY_NONE is fixed at 0 (RFC 9989 §5.4) whatever anyone says.
@pytest.mark.parametrize(
    ("configured", "symbol", "expected"),
    [
        ({}, Symbol("IPREV_FAIL"), 1.5),  # the table
        ({"IPREV_FAIL": 4.0}, Symbol("IPREV_FAIL"), 4.0),  # the configuration
        ({}, ListedSymbol("RBL_MINE", 2.5), 2.5),  # the list definition
        ({"RBL_MINE": 0.5}, ListedSymbol("RBL_MINE", 2.5), 0.5),  # the configuration first
        ({}, ListedSymbol("HELO_FORGED", 9.0), 9.0),  # a list's definition over the table
        ({"HELO_FORGED": 1.0}, ListedSymbol("HELO_FORGED", 9.0), 1.0),
        ({}, ListedSymbol("DNSWL_MINE", 0.0), 0.0),  # a definition's 0 is a score too
        ({}, Symbol("SOMETHING_NEW", 2.5), 2.5),  # only the suggestion is left
        ({}, Symbol("SPF_FAIL", 0.0), 3.0),  # the table over a suggestion
        ({}, Symbol("HELO_FORGED", 9.0), 5.0),
        ({}, ListedSymbol("DMARC_POLICY_NONE", 5.0), 0.0),
        ({"DMARC_POLICY_NONE": 0.0}, Symbol("DMARC_POLICY_NONE", 7.0), 0.0),
    ],
)
def test_score_precedence(configured: dict[str, float], symbol: Symbol, expected: float) -> None:
    verdict = decide(Facts([symbol]), PolicyConfig(scores=configured))
    assert verdict.symbols[0].score == expected


def test_only_what_is_configured_is_in_scores() -> None:
    assert PolicyConfig().scores == {}


async def test_a_custom_list_is_weighed_by_its_definition_unless_configured() -> None:
    mine = parse_list({"name": "mine", "zone": "bl.example", "codes": "127.0.0.2=MINE_HIT:2.25"})
    resolver = StaticResolver({"1.2.0.192.bl.example": {"A": "127.0.0.2"}})
    report = await DNSListChecker(resolver, [mine]).check_ip("192.0.2.1")
    symbols = dnsbl_symbols([report])
    assert [(s.name, s.score) for s in decide(Facts(symbols)).symbols] == [("MINE_HIT", 2.25)]
    configured = PolicyConfig(scores={"MINE_HIT": 7.0})
    assert [s.score for s in decide(Facts(symbols), configured).symbols] == [7.0]


def test_helo_findings_never_refuse_unless_the_policy_says_so() -> None:
    """RFC 5321 §4.1.4: a HELO name alone is no reason to refuse; a site may choose to."""
    symbols = helo_symbols(helo(HeloReason.FORGED))
    default = decide(Facts(symbols))
    assert default.action is Action.GREYLIST  # 5.0 weighs, nothing refuses
    assert default.hard_rejects == ()
    strict = decide(Facts(symbols), PolicyConfig(hard_reject=("HELO_FORGED",)))
    assert strict.action is Action.REJECT
    assert strict.hard_rejects == ("HELO_FORGED",)
    assert strict.reply is not None
    assert (strict.reply.code, strict.reply.status) == (554, "5.7.1")
    assert "HELO_FORGED is a hard reject: forged seen" in strict.reasons


def test_hard_rejects_are_recorded_even_when_an_earlier_rule_decides() -> None:
    verdict = decide(
        Facts([Symbol("RBL_ZEN_SBL"), Symbol("RBL_ZEN_XBL")], authenticated=True),
    )
    assert verdict.action is Action.ACCEPT
    assert verdict.hard_rejects == ("RBL_ZEN_SBL", "RBL_ZEN_XBL")  # in the configuration's order
