"""DMARC evaluation, one branch at a time: each case is a DNS table, the From field, the SPF and
DKIM results, and the verdict expected."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from publicsuffixlist import PublicSuffixList
from tests.dmarc.fakedns import TEMPFAIL, TableResolver

from mailwarden.dmarc import (
    Discovery,
    DMARCEvaluator,
    DMARCPolicy,
    DMARCReason,
    DMARCResult,
    DMARCStatus,
    MultipleAuthors,
    Override,
    OverrideReason,
    PolicyTag,
)
from mailwarden.spf import Identity, SPFReason, SPFResult, SPFStatus

PSL = PublicSuffixList()


@dataclass(frozen=True)
class DKIM:
    result: str
    domain: str


def spf_pass(domain: str, identity: Identity = Identity.MAILFROM) -> SPFResult:
    ip = ipaddress.ip_address("192.0.2.1")
    return SPFResult(
        SPFStatus.PASS,
        identity,
        domain,
        f"bounce@{domain}",
        ip,
        domain,
        "matched",
        SPFReason.MATCHED,
    )


async def evaluate(
    table: dict[str, str | None],
    from_: str | list[str],
    *,
    spf: SPFResult | None = None,
    dkim: tuple[DKIM, ...] = (),
    discovery: Discovery = Discovery.TREE_WALK,
    **options: object,
) -> tuple[DMARCResult, TableResolver]:
    resolver = TableResolver(table)
    evaluator = DMARCEvaluator(resolver, discovery=discovery, psl=PSL, **options)  # type: ignore[arg-type]
    values = [from_] if isinstance(from_, str) else from_
    return await evaluator.evaluate(values, spf, list(dkim)), resolver


ORG = {
    "_dmarc.example.com": "v=DMARC1; p=reject; sp=quarantine; np=none",
    "mail.example.com": "",
    "other.example.com": "",
}


# -- the Author Domain's own record, and alignment ---------------------------------------------


async def test_own_record_pass_by_dkim() -> None:
    result, resolver = await evaluate(ORG, "A <a@example.com>", dkim=(DKIM("pass", "example.com"),))
    assert result.result is DMARCStatus.PASS
    assert (result.policy_tag, result.policy, result.disposition) == (
        PolicyTag.P,
        DMARCPolicy.REJECT,
        DMARCPolicy.NONE,
    )
    assert result.record_source == "author"
    assert result.dkim_aligned == ("example.com",)
    assert result.discovery_method is Discovery.TREE_WALK
    assert resolver.txt_queries() == ["_dmarc.example.com"]  # identical domains: no walk


async def test_own_record_fail_applies_p() -> None:
    result, _ = await evaluate(ORG, "a@example.com", dkim=(DKIM("fail", "example.com"),))
    assert result.result is DMARCStatus.FAIL
    assert result.disposition is DMARCPolicy.REJECT
    assert result.dkim_domains == ()
    assert "no SPF or DKIM pass" in result.reason


@pytest.mark.parametrize(
    ("record", "spf_domain", "dkim_domain", "expected"),
    [
        ("v=DMARC1; p=reject", "mail.example.com", None, DMARCStatus.PASS),  # relaxed SPF
        ("v=DMARC1; p=reject; aspf=s", "mail.example.com", None, DMARCStatus.FAIL),  # strict SPF
        ("v=DMARC1; p=reject; aspf=s", "example.com", None, DMARCStatus.PASS),
        ("v=DMARC1; p=reject", None, "mail.example.com", DMARCStatus.PASS),  # relaxed DKIM
        ("v=DMARC1; p=reject; adkim=s", None, "mail.example.com", DMARCStatus.FAIL),  # strict DKIM
        ("v=DMARC1; p=reject; adkim=s", None, "Example.COM.", DMARCStatus.PASS),  # case, root dot
        ("v=DMARC1; p=reject", "example.net", "example.org", DMARCStatus.FAIL),  # not aligned
        ("v=DMARC1; p=reject; adkim=s", "mail.example.com", "mail.example.com", DMARCStatus.PASS),
    ],
)
async def test_alignment_modes(
    record: str, spf_domain: str | None, dkim_domain: str | None, expected: DMARCStatus
) -> None:
    table = {"_dmarc.example.com": record, "mail.example.com": ""}
    result, _ = await evaluate(
        table,
        "a@example.com",
        spf=spf_pass(spf_domain) if spf_domain else None,
        dkim=(DKIM("pass", dkim_domain),) if dkim_domain else (),
    )
    assert result.result is expected, result.reason


async def test_spf_helo_identity_and_non_pass_do_not_align() -> None:
    helo = spf_pass("example.com", Identity.HELO)
    result, _ = await evaluate(ORG, "a@example.com", spf=helo)
    assert result.result is DMARCStatus.FAIL
    assert result.spf_aligned is None
    softfail = SPFResult(
        SPFStatus.SOFTFAIL,
        Identity.MAILFROM,
        "example.com",
        "x@example.com",
        ipaddress.ip_address("192.0.2.1"),
        "h",
        "r",
        SPFReason.MATCHED,
    )
    result, _ = await evaluate(ORG, "a@example.com", spf=softfail)
    assert result.result is DMARCStatus.FAIL


async def test_spf_alignment_is_reported() -> None:
    result, _ = await evaluate(ORG, "a@example.com", spf=spf_pass("mail.example.com"))
    assert result.result is DMARCStatus.PASS
    assert (result.spf_domain, result.spf_aligned) == ("mail.example.com", True)
    assert result.organizational_domain == "example.com"


# -- policy selection: p, sp, np ----------------------------------------------------------------


async def test_existing_subdomain_gets_sp() -> None:
    result, _ = await evaluate(ORG, "a@mail.example.com")
    assert (result.record_source, result.policy_domain) == ("organizational", "example.com")
    assert (result.policy_tag, result.policy, result.disposition) == (
        PolicyTag.SP,
        DMARCPolicy.QUARANTINE,
        DMARCPolicy.QUARANTINE,
    )
    assert result.author_exists is True


async def test_nonexistent_subdomain_gets_np() -> None:
    table = {**ORG, "_dmarc.example.com": "v=DMARC1; p=none; sp=quarantine; np=reject"}
    result, resolver = await evaluate(table, "a@ghost.example.com")
    assert (result.policy_tag, result.policy) == (PolicyTag.NP, DMARCPolicy.REJECT)
    assert result.author_exists is False
    assert ("ghost.example.com", "A") in [(n, t.value) for n, t in resolver.queries]


@pytest.mark.parametrize(
    ("record", "tag", "policy"),
    [
        ("v=DMARC1; p=reject; sp=quarantine", PolicyTag.SP, DMARCPolicy.QUARANTINE),  # np absent
        ("v=DMARC1; p=quarantine", PolicyTag.P, DMARCPolicy.QUARANTINE),  # neither np nor sp
    ],
)
async def test_np_falls_back_to_sp_then_p(record: str, tag: PolicyTag, policy: DMARCPolicy) -> None:
    result, resolver = await evaluate({"_dmarc.example.com": record}, "a@ghost.example.com")
    assert (result.policy_tag, result.policy) == (tag, policy)
    assert all(t.value == "TXT" for _, t in resolver.queries)  # existence not needed


async def test_no_record_is_none() -> None:
    result, resolver = await evaluate({"example.org": ""}, "a@mail.example.org")
    assert result.result is DMARCStatus.NONE
    assert result.disposition is DMARCPolicy.NONE
    assert resolver.txt_queries() == ["_dmarc.mail.example.org", "_dmarc.example.org", "_dmarc.org"]


async def test_several_records_are_discarded() -> None:
    resolver = TableResolver({})
    evaluator = DMARCEvaluator(resolver)

    async def two(name: str, rdtype: object) -> object:
        from mailwarden.dns import TXT, Answer, NXDomain, RdType

        if name == "_dmarc.example.com":
            records = (TXT((b"v=DMARC1; p=reject",)), TXT((b"v=DMARC1; p=none",)))
            return Answer(name, RdType.TXT, records, 60)
        raise NXDomain(name, RdType.TXT)

    resolver.resolve = two  # type: ignore[assignment,method-assign]
    result = await evaluator.evaluate(["a@example.com"], None, [])
    assert result.result is DMARCStatus.NONE


async def test_unrelated_txt_records_are_ignored() -> None:
    table = {"_dmarc.example.com": "google-site-verification=abc", "_dmarc.com": ""}
    result, _ = await evaluate(table, "a@example.com")
    assert result.result is DMARCStatus.NONE


# -- psd=y / psd=n and the tree walk --------------------------------------------------------------


PSD_TABLE = {
    "_dmarc.example": "v=DMARC1; p=reject; sp=none; np=quarantine; psd=y",
    "brand.example": "",
    "www.brand.example": "",
}


async def test_psd_record_applies_below_the_psd() -> None:
    result, _ = await evaluate(PSD_TABLE, "a@brand.example")
    assert (result.record_source, result.policy_domain) == ("psd", "example")
    assert result.organizational_domain == "brand.example"
    assert (result.policy_tag, result.policy) == (PolicyTag.P, DMARCPolicy.REJECT)
    sub, _ = await evaluate(PSD_TABLE, "a@www.brand.example")
    assert (sub.policy_tag, sub.policy, sub.organizational_domain) == (
        PolicyTag.SP,
        DMARCPolicy.NONE,
        "brand.example",
    )
    ghost, _ = await evaluate(PSD_TABLE, "a@nobody.example")
    assert (ghost.policy_tag, ghost.policy) == (PolicyTag.NP, DMARCPolicy.QUARANTINE)


async def test_psd_y_sets_the_organizational_domain_for_alignment() -> None:
    # d=example (the PSD itself) does not align with brand.example; d=www.brand.example does
    result, _ = await evaluate(PSD_TABLE, "a@brand.example", dkim=(DKIM("pass", "example"),))
    assert result.result is DMARCStatus.FAIL
    result, _ = await evaluate(
        PSD_TABLE, "a@brand.example", dkim=(DKIM("pass", "www.brand.example"),)
    )
    assert result.result is DMARCStatus.PASS


async def test_org_record_wins_over_psd_record() -> None:
    table = {**PSD_TABLE, "_dmarc.brand.example": "v=DMARC1; p=quarantine; sp=reject"}
    result, _ = await evaluate(table, "a@www.brand.example")
    assert (result.policy_domain, result.policy_tag, result.policy) == (
        "brand.example",
        PolicyTag.SP,
        DMARCPolicy.REJECT,
    )


DEPT = {
    "_dmarc.example.com": "v=DMARC1; p=reject",
    "_dmarc.dept.example.com": "v=DMARC1; p=quarantine; psd=n",
    "a.dept.example.com": "",
}


async def test_psd_n_stops_the_walk_and_is_the_org_domain() -> None:
    result, resolver = await evaluate(DEPT, "x@a.dept.example.com")
    assert (result.policy_domain, result.organizational_domain) == (
        "dept.example.com",
        "dept.example.com",
    )
    assert result.policy is DMARCPolicy.QUARANTINE
    assert resolver.txt_queries() == ["_dmarc.a.dept.example.com", "_dmarc.dept.example.com"]


async def test_tree_walk_and_psl_differ_on_psd_n() -> None:
    """d=example.com aligns with a.dept.example.com under the PSL (both example.com) but not
    under the tree walk, where dept.example.com (psd=n) is the Organizational Domain."""
    dkim = (DKIM("pass", "example.com"),)
    walk, _ = await evaluate(DEPT, "x@a.dept.example.com", dkim=dkim)
    psl, _ = await evaluate(DEPT, "x@a.dept.example.com", dkim=dkim, discovery=Discovery.PSL)
    assert (walk.result, walk.discovery_method) == (DMARCStatus.FAIL, Discovery.TREE_WALK)
    assert (psl.result, psl.discovery_method) == (DMARCStatus.PASS, Discovery.PSL)
    assert psl.policy_domain == "example.com"  # the PSL method never looks at dept


async def test_tree_walk_and_psl_differ_on_private_suffixes() -> None:
    """blogspot.com is a (private) public suffix: the PSL makes each blog its own
    Organizational Domain, the tree walk finds blogspot.com's record."""
    table = {"_dmarc.blogspot.com": "v=DMARC1; p=reject", "me.blogspot.com": ""}
    walk, _ = await evaluate(table, "a@me.blogspot.com")
    psl, _ = await evaluate(table, "a@me.blogspot.com", discovery=Discovery.PSL)
    assert (walk.result, walk.policy_domain, walk.policy) == (
        DMARCStatus.FAIL,
        "blogspot.com",
        DMARCPolicy.REJECT,
    )
    assert (psl.result, psl.organizational_domain) == (DMARCStatus.NONE, "me.blogspot.com")


async def test_psd_y_at_the_author_domain_itself_uses_p() -> None:
    table = {"_dmarc.example": "v=DMARC1; p=reject; sp=none; psd=y"}
    result, _ = await evaluate(table, "a@example")
    assert (result.record_source, result.policy_tag, result.policy) == (
        "author",
        PolicyTag.P,
        DMARCPolicy.REJECT,
    )


async def test_long_names_take_at_most_eight_queries() -> None:
    author = "a.b.c.d.e.f.g.h.i.j.mail.example.com"
    result, resolver = await evaluate({"_dmarc.example.com": "v=DMARC1; p=reject"}, f"x@{author}")
    assert resolver.txt_queries() == [
        f"_dmarc.{author}",
        "_dmarc.g.h.i.j.mail.example.com",
        "_dmarc.h.i.j.mail.example.com",
        "_dmarc.i.j.mail.example.com",
        "_dmarc.j.mail.example.com",
        "_dmarc.mail.example.com",
        "_dmarc.example.com",
        "_dmarc.com",
    ]
    assert result.policy_domain == "example.com"
    assert result.dns_queries == 8


async def test_shortest_record_is_the_org_domain() -> None:
    table = {
        "_dmarc.mail.example.com": "v=DMARC1; p=none",
        "_dmarc.example.com": "v=DMARC1; p=reject; sp=quarantine",
        "a.mail.example.com": "",
    }
    result, _ = await evaluate(table, "x@a.mail.example.com")
    assert (result.organizational_domain, result.policy_domain) == ("example.com", "example.com")
    assert result.policy is DMARCPolicy.QUARANTINE


# -- t=y and RFC 7489 pct ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "applied"),
    [
        ("reject", DMARCPolicy.QUARANTINE),
        ("quarantine", DMARCPolicy.NONE),
        ("none", DMARCPolicy.NONE),
    ],
)
async def test_testing_mode_applies_one_level_lower(p: str, applied: DMARCPolicy) -> None:
    result, _ = await evaluate({"_dmarc.example.com": f"v=DMARC1; p={p}; t=y"}, "a@example.com")
    assert result.testing is True
    assert result.requested_policy is DMARCPolicy(p)
    assert (result.policy, result.disposition) == (applied, applied)
    expected = OverrideReason.POLICY_TEST_MODE if applied is not DMARCPolicy(p) else None
    assert result.override_reason is expected


@pytest.mark.parametrize(
    ("draw", "applied"), [(0.2, DMARCPolicy.REJECT), (0.7, DMARCPolicy.QUARANTINE)]
)
async def test_rfc7489_pct_samples(draw: float, applied: DMARCPolicy) -> None:
    table = {"_dmarc.example.com": "v=DMARC1; p=reject; pct=50"}
    result, _ = await evaluate(table, "a@example.com", random=lambda: draw)
    assert result.pct == 50
    assert result.disposition is applied
    assert result.sampled_out is (applied is DMARCPolicy.QUARANTINE)


async def test_pct_ignored_in_a_record_with_t() -> None:
    table = {"_dmarc.example.com": "v=DMARC1; p=reject; pct=0; t=n"}
    result, _ = await evaluate(table, "a@example.com", random=lambda: 0.99)
    assert (result.pct, result.disposition, result.sampled_out) == (None, DMARCPolicy.REJECT, False)


async def test_pct_does_not_touch_a_pass() -> None:
    def never() -> float:
        raise AssertionError("no sample for a pass")

    table = {"_dmarc.example.com": "v=DMARC1; p=reject; pct=10"}
    result, _ = await evaluate(
        table, "a@example.com", dkim=(DKIM("pass", "example.com"),), random=never
    )
    assert (result.result, result.disposition) == (DMARCStatus.PASS, DMARCPolicy.NONE)


# -- invalid p (RFC 9989 §4.7 / §4.10.1) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "expected", "policy"),
    [
        ("v=DMARC1; rua=mailto:d@example.com", DMARCStatus.FAIL, DMARCPolicy.NONE),
        ("v=DMARC1; p=bogus; rua=mailto:d@example.com", DMARCStatus.FAIL, DMARCPolicy.NONE),
        (
            "v=DMARC1; p=reject; sp=bogus; rua=mailto:d@example.com",
            DMARCStatus.FAIL,
            DMARCPolicy.NONE,
        ),
        ("v=DMARC1; p=bogus", DMARCStatus.NONE, None),
        ("v=DMARC1; sp=reject; rua=not a uri", DMARCStatus.NONE, None),
        ("v=DMARC1; p=reject; np=bogus", DMARCStatus.NONE, None),
    ],
)
async def test_missing_or_invalid_p(
    record: str, expected: DMARCStatus, policy: DMARCPolicy | None
) -> None:
    result, _ = await evaluate({"_dmarc.example.com": record}, "a@example.com")
    assert result.result is expected, result.reason
    assert result.policy is policy


async def test_invalid_p_does_not_fall_back_to_the_org_domain() -> None:
    table = {"_dmarc.example.com": "v=DMARC1; p=reject", "_dmarc.sub.example.com": "v=DMARC1"}
    result, resolver = await evaluate(table, "a@sub.example.com")
    assert result.result is DMARCStatus.NONE
    assert resolver.txt_queries() == ["_dmarc.sub.example.com"]


# -- DNS failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["_dmarc.mail.example.com", "_dmarc.example.com"])
async def test_discovery_temperror(failing: str) -> None:
    table = {**ORG, failing: TEMPFAIL}
    result, _ = await evaluate(table, "a@mail.example.com", dkim=(DKIM("pass", "example.com"),))
    assert result.result is DMARCStatus.TEMPERROR
    assert result.disposition is DMARCPolicy.NONE
    assert "temporary" in result.reason


async def test_alignment_walk_temperror_is_not_pass() -> None:
    table = {**ORG, "_dmarc.mail.example.com": TEMPFAIL}
    result, _ = await evaluate(table, "a@example.com", dkim=(DKIM("pass", "mail.example.com"),))
    assert result.result is DMARCStatus.TEMPERROR
    # ...but another aligned identifier is enough for a pass
    result, _ = await evaluate(
        table,
        "a@example.com",
        dkim=(DKIM("pass", "mail.example.com"), DKIM("pass", "example.com")),
    )
    assert result.result is DMARCStatus.PASS


async def test_existence_temperror_on_fail() -> None:
    table = {"_dmarc.example.com": "v=DMARC1; p=none; np=reject", "ghost.example.com": TEMPFAIL}
    result, _ = await evaluate(table, "a@ghost.example.com")
    assert result.result is DMARCStatus.TEMPERROR
    assert "exists" in result.reason


# -- the From field ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("from_", "why"),
    [
        ([], "no From field"),
        (["a@example.com", "b@example.com"], "2 From fields"),
        (["a@example.com, b@example.org"], "several Author Domains (example.com, example.org)"),
        (['"Just a name"'], "no address"),
        (["undisclosed-recipients:;"], "no address"),
        (["a@[192.0.2.1]"], "domain literal"),
        (["<a@example.com"], "unparseable"),
        (["a@-bad-.example"], "invalid domain"),
    ],
)
async def test_from_problems_are_not_evaluated(from_: list[str], why: str) -> None:
    result, resolver = await evaluate(ORG, from_)
    assert result.result is DMARCStatus.PERMERROR
    assert result.evaluated is False
    assert why in result.reason
    assert resolver.queries == []


async def test_several_addresses_of_one_domain_are_evaluated() -> None:
    result, _ = await evaluate(ORG, "a@example.com, B <b@EXAMPLE.com>")
    assert result.result is DMARCStatus.FAIL
    assert result.authors == ("example.com",)


async def test_strictest_of_several_authors() -> None:
    table = {**ORG, "_dmarc.example.org": "v=DMARC1; p=none"}
    result, _ = await evaluate(
        table,
        ["a@example.org", "b@example.com"],
        dkim=(DKIM("pass", "example.org"),),
        multiple_authors=MultipleAuthors.STRICTEST,
    )
    assert (result.result, result.domain, result.disposition) == (
        DMARCStatus.FAIL,
        "example.com",
        DMARCPolicy.REJECT,
    )
    assert result.authors == ("example.org", "example.com")


async def test_u_labels_become_a_labels() -> None:
    table = {"_dmarc.xn--bcher-kva.example": "v=DMARC1; p=reject"}
    result, resolver = await evaluate(
        table, "Jörg <jörg@Bücher.example>", dkim=(DKIM("pass", "bücher.example"),)
    )
    assert (result.result, result.domain) == (DMARCStatus.PASS, "xn--bcher-kva.example")
    assert resolver.txt_queries() == ["_dmarc.xn--bcher-kva.example"]


async def test_evaluate_domain() -> None:
    resolver = TableResolver(ORG)
    evaluator = DMARCEvaluator(resolver)
    result = await evaluator.evaluate_domain("Example.com", None, [])
    assert (result.result, result.domain) == (DMARCStatus.FAIL, "example.com")
    bad = await evaluator.evaluate_domain("not a domain", None, [])
    assert (bad.result, bad.evaluated) == (DMARCStatus.PERMERROR, False)


# -- local policy (RFC 9990 override reasons) ------------------------------------------------------


async def test_local_policy_override() -> None:
    def lists(verdict: DMARCResult) -> Override | None:
        if verdict.result is DMARCStatus.FAIL and verdict.disposition is DMARCPolicy.REJECT:
            return Override(DMARCPolicy.QUARANTINE, OverrideReason.MAILING_LIST, "list traffic")
        return None

    result, _ = await evaluate(ORG, "a@example.com", local_policy=lists)
    assert (result.result, result.policy, result.disposition) == (
        DMARCStatus.FAIL,
        DMARCPolicy.REJECT,
        DMARCPolicy.QUARANTINE,
    )
    assert (result.override_reason, result.override_comment) == (
        OverrideReason.MAILING_LIST,
        "list traffic",
    )
    passed, _ = await evaluate(
        ORG, "a@example.com", dkim=(DKIM("pass", "example.com"),), local_policy=lists
    )
    assert passed.override_reason is None


async def test_psl_method_default_list_loads() -> None:
    resolver = TableResolver(ORG)
    evaluator = DMARCEvaluator(resolver, discovery=Discovery.PSL)
    result = await evaluator.evaluate(["a@mail.example.com"], spf_pass("example.com"), [])
    assert (result.result, result.organizational_domain) == (DMARCStatus.PASS, "example.com")


async def test_psd_org_domain_existence_decides_between_p_and_sp() -> None:
    table = {"_dmarc.example": "v=DMARC1; p=reject; sp=none; psd=y", "brand.example": ""}
    existing, _ = await evaluate(table, "a@brand.example")
    assert (existing.policy_tag, existing.policy, existing.author_exists) == (
        PolicyTag.P,
        DMARCPolicy.REJECT,
        True,
    )
    ghost, _ = await evaluate(table, "a@ghost.example")
    assert (ghost.policy_tag, ghost.policy, ghost.author_exists) == (
        PolicyTag.SP,
        DMARCPolicy.NONE,
        False,
    )


async def test_too_many_author_domains_are_not_evaluated() -> None:
    many = ", ".join(f"a@d{i}.example" for i in range(11))
    result, resolver = await evaluate(ORG, many, multiple_authors=MultipleAuthors.STRICTEST)
    assert (result.result, result.evaluated) == (DMARCStatus.PERMERROR, False)
    assert resolver.queries == []


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.text(max_size=40), max_size=3),
    st.lists(st.tuples(st.sampled_from(["pass", "fail"]), st.text(max_size=20)), max_size=3),
    st.sampled_from(list(MultipleAuthors)),
)
async def test_any_input_gives_a_verdict(
    from_values: list[str], dkim: list[tuple[str, str]], mode: MultipleAuthors
) -> None:
    resolver = TableResolver({**ORG, "_dmarc.com": TEMPFAIL})
    evaluator = DMARCEvaluator(resolver, multiple_authors=mode)
    result = await evaluator.evaluate(from_values, None, [DKIM(r, d) for r, d in dkim])
    assert isinstance(result.result, DMARCStatus)
    assert result.evaluated or result.result is DMARCStatus.PERMERROR


# -- reason codes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "from_", "dkim", "status", "code"),
    [
        (ORG, "a@example.com", ("example.com",), "pass", DMARCReason.ALIGNED),
        (ORG, "a@example.com", ("example.net",), "fail", DMARCReason.NOT_ALIGNED),
        ({}, "a@example.com", (), "none", DMARCReason.NO_RECORD),
        ({"_dmarc.example.com": "v=DMARC1; p=bogus"}, "a@example.com", (), "none",
         DMARCReason.NO_POLICY),
        ({"_dmarc.example.com": TEMPFAIL}, "a@example.com", (), "temperror",
         DMARCReason.DNS_ERROR),
        ({**ORG, "_dmarc.mail.example.com": TEMPFAIL}, "a@example.com", ("mail.example.com",),
         "temperror", DMARCReason.DNS_ERROR),  # alignment walk
        ({"_dmarc.example.com": "v=DMARC1; p=none; np=reject", "ghost.example.com": TEMPFAIL},
         "a@ghost.example.com", (), "temperror", DMARCReason.DNS_ERROR),  # existence (np)
        (ORG, [], (), "permerror", DMARCReason.NO_FROM),
        (ORG, ["a@example.com", "b@example.com"], (), "permerror", DMARCReason.MULTIPLE_FROM),
        (ORG, ["a@example.com, b@example.org"], (), "permerror", DMARCReason.MULTIPLE_AUTHORS),
        (ORG, ['"Just a name"'], (), "permerror", DMARCReason.INVALID_FROM),
    ],
)  # fmt: skip
async def test_reason_codes(
    table: dict[str, str | None],
    from_: str | list[str],
    dkim: tuple[str, ...],
    status: str,
    code: DMARCReason,
) -> None:
    result, _ = await evaluate(table, from_, dkim=tuple(DKIM("pass", d) for d in dkim))
    assert (result.result, result.reason_code) == (DMARCStatus(status), code), result.reason


async def test_reason_code_of_an_invalid_author_domain() -> None:
    evaluator = DMARCEvaluator(TableResolver({}), psl=PSL)
    result = await evaluator.evaluate_domain("-bad-", None)
    assert (result.evaluated, result.reason_code) == (False, DMARCReason.INVALID_FROM)


# -- SPF not checked at all (analyze without a client address) ----------------------------------


@pytest.mark.parametrize(
    ("table", "dkim", "status", "evaluated", "code"),
    [
        (ORG, (), "none", False, DMARCReason.SPF_NOT_EVALUATED),  # a fail cannot be told
        (ORG, ("example.net",), "none", False, DMARCReason.SPF_NOT_EVALUATED),
        (ORG, ("example.com",), "pass", True, DMARCReason.ALIGNED),  # DKIM alone passes
        ({}, (), "none", True, DMARCReason.NO_RECORD),  # known without SPF
        ({"_dmarc.example.com": TEMPFAIL}, (), "temperror", True, DMARCReason.DNS_ERROR),
    ],
)
async def test_without_spf(
    table: dict[str, str | None],
    dkim: tuple[str, ...],
    status: str,
    evaluated: bool,
    code: DMARCReason,
) -> None:
    result, _ = await evaluate(table, "a@example.com", dkim=tuple(DKIM("pass", d) for d in dkim))
    now = result.without_spf()
    assert (now.result, now.evaluated, now.reason_code) == (DMARCStatus(status), evaluated, code)
    if not evaluated:
        assert result.result is DMARCStatus.FAIL
        assert result.disposition.value == "reject"
        assert now.disposition.value == "none"  # nothing to act on
        assert now.policy == result.policy  # what the domain asks is still known
        assert now.reason.startswith("SPF not checked and no ")
        assert now.without_spf() == now
    else:
        assert now is result


async def test_eager_alignment_finishes_without_a_task() -> None:
    """`eager`: two alignments that need Organizational Domains start at once and, their
    answers at hand (a warm cache), finish in the evaluation's first step: no task, no turn of
    the loop. The verdict is the one the tasks of the default give."""
    table = {
        "_dmarc.example.com": "v=DMARC1; p=reject",
        "news.example.com": "",
        "mail.example.com": "",
        "other.example.com": "",
    }
    spf, dkim = spf_pass("mail.example.com"), [DKIM("pass", "other.example.com")]
    expected = await DMARCEvaluator(TableResolver(table)).evaluate(
        ["a@news.example.com"], spf, dkim
    )
    assert (expected.spf_aligned, expected.dkim_aligned) == (True, ("other.example.com",))
    work = DMARCEvaluator(TableResolver(table), eager=True).evaluate(
        ["a@news.example.com"], spf, dkim
    )
    with pytest.raises(StopIteration) as finished:
        work.send(None)
    assert finished.value.value == expected
