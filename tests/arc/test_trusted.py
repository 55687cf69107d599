"""Trusted sealers: a DMARC fail overridden with reason trusted_forwarder, and when not."""

from __future__ import annotations

from tests.arc.helpers import add_footer, base_message, hop, verifier

from mailwarden.arc import (
    ARCReason,
    ARCResult,
    ARCSetResult,
    ARCStatus,
    parse_aar,
    trusted_forwarder_override,
    trusted_sealer_dmarc_pass,
)
from mailwarden.dmarc import (
    Discovery,
    DMARCEvaluator,
    DMARCPolicy,
    DMARCReason,
    DMARCResult,
    DMARCStatus,
    OverrideReason,
)
from mailwarden.dns import StaticResolver

DMARC_FAIL = DMARCResult(
    DMARCStatus.FAIL,
    "no aligned identifier",
    DMARCReason.NOT_ALIGNED,
    "origin.example",
    Discovery.TREE_WALK,
)


async def _forwarded(results: str = "dmarc=pass header.from=origin.example") -> ARCResult:
    """list.example validates and seals (its AAR says `results`), then fwd.example forwards."""
    message, _ = await hop(base_message(), "list.example", "rsa", auth_results=results)
    message, _ = await hop(
        message, "fwd.example", "sel1", auth_results="dmarc=fail", change=add_footer
    )
    result = await verifier().verify(message)
    assert result.result is ARCStatus.PASS, result.reason
    return result


async def test_trusted_sealer_with_dmarc_pass() -> None:
    result = await _forwarded()
    check = trusted_sealer_dmarc_pass(result, {"List.Example."})
    assert check.passed
    assert check.sealer == "list.example"
    assert check.detail == "trusted sealer list.example (i=1) saw dmarc=pass"
    passed, sealer, _ = check  # a plain (bool, sealer, detail) tuple too
    assert (passed, sealer) == (True, "list.example")


async def test_newest_trusted_set_wins_and_untrusted_ones_do_not_count() -> None:
    result = await _forwarded()
    check = trusted_sealer_dmarc_pass(result, {"fwd.example"})
    assert not check.passed
    assert check.detail == "fwd.example (i=2): its ARC-Authentication-Results says dmarc=fail"
    check = trusted_sealer_dmarc_pass(result, {"fwd.example", "list.example"})
    assert (check.passed, check.sealer) == (True, "list.example")
    check = trusted_sealer_dmarc_pass(result, {"elsewhere.example"})
    assert not check.passed
    assert check.sealer is None
    assert check.detail == "no set of the chain is sealed by a trusted sealer"
    assert not trusted_sealer_dmarc_pass(result, set()).passed


async def test_author_domain_must_match_header_from() -> None:
    result = await _forwarded()
    assert trusted_sealer_dmarc_pass(result, {"list.example"}, author_domain="origin.example")[0]
    check = trusted_sealer_dmarc_pass(result, {"list.example"}, author_domain="other.example")
    assert not check.passed
    assert "need a pass for other.example" in check.detail


async def test_aar_without_dmarc() -> None:
    result = await _forwarded("spf=pass smtp.mailfrom=origin.example")
    check = trusted_sealer_dmarc_pass(result, {"list.example"})
    assert not check.passed
    assert check.detail == "list.example (i=1): its ARC-Authentication-Results has no dmarc result"


def _set(payload: str, *, domain: str = "list.example") -> ARCSetResult:
    return ARCSetResult(1, seal_domain=domain, aar=parse_aar(f"i=1; {payload}"))


def test_failed_or_absent_chain_never_vouches() -> None:
    failed = ARCResult(
        ARCStatus.FAIL,
        "ARC-Seal i=1 did not verify",
        ARCReason.SEAL_INVALID,
        1,
        None,
        (_set("mx; dmarc=pass"),),
    )
    assert trusted_sealer_dmarc_pass(failed, {"list.example"}) == (False, None, "ARC chain is fail")
    none = ARCResult(ARCStatus.NONE, "no ARC sets", ARCReason.NO_SETS)
    assert not trusted_sealer_dmarc_pass(none, {"list.example"}).passed


def test_unparsable_aar() -> None:
    result = ARCResult(
        ARCStatus.PASS, "ok", ARCReason.VALIDATED, 1, 0, (_set("mx; dmarc=pass (unclosed"),)
    )
    check = trusted_sealer_dmarc_pass(result, {"list.example"})
    assert not check.passed
    assert check.detail.endswith("its ARC-Authentication-Results does not parse")


async def test_override_of_a_dmarc_fail() -> None:
    result = await _forwarded()
    override = trusted_forwarder_override(DMARC_FAIL, result, {"list.example"})
    assert override is not None
    assert override.disposition is DMARCPolicy.NONE
    assert override.reason is OverrideReason.TRUSTED_FORWARDER
    assert str(override.reason) == "trusted_forwarder"
    assert "list.example" in override.comment
    assert trusted_forwarder_override(DMARC_FAIL, result, {"fwd.example"}) is None
    passing = DMARCResult(
        DMARCStatus.PASS, "aligned", DMARCReason.ALIGNED, "origin.example", Discovery.TREE_WALK
    )
    assert trusted_forwarder_override(passing, result, {"list.example"}) is None
    other = DMARCResult(
        DMARCStatus.FAIL, "x", DMARCReason.NOT_ALIGNED, "other.example", Discovery.TREE_WALK
    )
    assert trusted_forwarder_override(other, result, {"list.example"}) is None


async def test_override_through_the_dmarc_evaluator() -> None:
    result = await _forwarded()
    static = StaticResolver()
    static.add("_dmarc.origin.example", "TXT", "v=DMARC1; p=reject")
    plain = await DMARCEvaluator(static).evaluate(["Alice <alice@origin.example>"], None, [])
    assert (plain.result, plain.disposition) == (DMARCStatus.FAIL, DMARCPolicy.REJECT)
    evaluator = DMARCEvaluator(
        static, local_policy=lambda v: trusted_forwarder_override(v, result, ["list.example"])
    )
    verdict = await evaluator.evaluate(["Alice <alice@origin.example>"], None, [])
    assert verdict.result is DMARCStatus.FAIL  # the result stands; the disposition is overridden
    assert verdict.disposition is DMARCPolicy.NONE
    assert verdict.override_reason is OverrideReason.TRUSTED_FORWARDER
    assert verdict.override_comment == "trusted sealer list.example (i=1) saw dmarc=pass"
