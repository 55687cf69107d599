"""The openspf conformance suites, read straight from the shared test data.

rfc7208-tests.yml is normative: every case must give its preferred (first) result. In
rfc4408-tests.yml every case runs and must give one of its listed results (RFC 4408 lists the
RFC 7208 answer among the accepted ones where the two differ). pyspf's own extra cases run too,
except those that test pyspf-only extensions (see PYSPF_ONLY).
"""

from __future__ import annotations

import pytest
from tests.spf.suite import SuiteCase, build_resolver, collect_cases, load_cases
from tests.testdata import require_testdata

from mailwarden.dns.cache import CachingResolver
from mailwarden.spf import SPFChecker

RFC7208 = collect_cases("openspf-rfc7208", "rfc7208-tests.yml")
RFC4408 = collect_cases("openspf-rfc7208", "rfc4408-tests.yml")
PYSPF_EXTRA = collect_cases("openspf-rfc7208", "pyspf-extra", "test.yml")

# pyspf extensions outside RFC 7208: its non-standard "default=" modifier (RFC 7208 §6 says
# unknown modifiers are ignored) and the "ambiguous" result of its strict mode.
PYSPF_ONLY = {"default-modifier", "default-modifier-harsh"}


async def run_case(case: SuiteCase) -> tuple[str, str | None]:
    """The interpreter's answer, checked to be the same, field by field, when policies are
    compiled (compile_after=1: on first sight) and when policy trees are prefetched."""
    receiver = case.receiver or "unknown"
    interpreter = SPFChecker(build_resolver(case.zone), receiver=receiver, compile_after=None)
    compiled = SPFChecker(build_resolver(case.zone), receiver=receiver, compile_after=1)
    prefetching = SPFChecker(
        CachingResolver(build_resolver(case.zone)), receiver=receiver, prefetch=True
    )
    result = await interpreter.check_mailfrom(case.host, case.mailfrom, case.helo)
    assert await compiled.check_mailfrom(case.host, case.mailfrom, case.helo) == result
    assert await prefetching.check_mailfrom(case.host, case.mailfrom, case.helo) == result
    await prefetching.drain()
    return result.result.value, result.explanation


def check_explanation(case: SuiteCase, explanation: str | None) -> None:
    if case.explanation is None:
        return
    # The reference harness's default explanation is the literal "DEFAULT". Compared without
    # case: v-macro-ip6 expects %{ir} nibbles in the case the address was typed in, which
    # RFC 7208 §7.3 leaves open (DNS names compare without case, RFC 4343); exact URL
    # escaping is checked in test_check.py.
    got = explanation if explanation is not None else "DEFAULT"
    assert got.lower() == case.explanation.lower()


@pytest.mark.parametrize("case", RFC7208.cases, ids=RFC7208.ids)
async def test_rfc7208(case: SuiteCase | None) -> None:
    if case is None:
        require_testdata("openspf-rfc7208", "rfc7208-tests.yml")
        return
    result, explanation = await run_case(case)
    assert result == case.results[0], f"{case.scenario}: expected {case.results}, got {result}"
    check_explanation(case, explanation)


@pytest.mark.parametrize("case", RFC4408.cases, ids=RFC4408.ids)
async def test_rfc4408(case: SuiteCase | None) -> None:
    if case is None:
        require_testdata("openspf-rfc7208", "rfc4408-tests.yml")
        return
    result, explanation = await run_case(case)
    assert result in case.results, f"{case.scenario}: expected {case.results}, got {result}"
    check_explanation(case, explanation)


@pytest.mark.parametrize("case", PYSPF_EXTRA.cases, ids=PYSPF_EXTRA.ids)
async def test_pyspf_extra(case: SuiteCase | None) -> None:
    if case is None:
        require_testdata("openspf-rfc7208", "pyspf-extra", "test.yml")
        return
    result, explanation = await run_case(case)
    if case.name in PYSPF_ONLY:
        assert result == "neutral"  # RFC 7208 §6: the unknown modifier is ignored
        return
    assert result in case.results, f"{case.scenario}: expected {case.results}, got {result}"
    check_explanation(case, explanation)


@pytest.mark.parametrize(
    ("name", "count"),
    [("rfc7208-tests.yml", 203), ("rfc4408-tests.yml", 191), ("pyspf-extra/test.yml", 16)],
)
def test_suites_are_complete(name: str, count: int) -> None:
    """Every case of each file is collected (counts from SOURCE.md)."""
    path = require_testdata("openspf-rfc7208", *name.split("/"))
    assert len(list(load_cases(path))) == count
