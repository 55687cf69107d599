"""authheaders' DMARC/DKIM end-to-end cases, read straight from the shared test data.

For each case (format in authheaders-dmarc/SOURCE.md): the fake DNS table becomes a resolver;
DKIM results come from our own verifier (mailwarden.dkim) when `checks` has dkim, else from the
dkim= clauses of `prev_ar` (parsed with mailwarden.authres); SPF is never run. DMARC is
evaluated with the Public Suffix List for the RFC 7489 cases and with the RFC 9989 Tree Walk
for all of them (our default); our Authentication-Results must match `expected_ar` clause by
clause (method, result, header.d, header.from, policy.dmarc), not byte for byte.

Implementation choices the suite leaves open (SOURCE.md), and ours:
* dmarc-record-syntax-error: RFC 9989 §4.7 says syntax errors in a record are discarded in
  favour of defaults, so "v=DMARC1; p=none; reject" is a valid p=none record: dmarc=fail with
  policy none (authheaders says permerror). See OUR_CHOICES.
* dmarc-no-from-address: a From without an address is not DMARC-evaluable: permerror (as
  authheaders).
* record-without-p: no valid p and no valid rua: no DMARC processing, no fallback to the
  Organizational Domain's record: none (as authheaders, RFC 9989 §4.10.1).
Multi-From cases run with MultipleAuthors.STRICTEST (RFC 9989 §5.3.1's MAY); our default
(not evaluated) is tested in test_evaluate.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from publicsuffixlist import PublicSuffixList
from tests.dmarc.fakedns import TableResolver
from tests.testdata import require_testdata
from tests.testdata import testdata_dir as data_root

from mailwarden.author import read_authors
from mailwarden.authres import AuthenticationResults, AuthResultsBuilder, parse_field
from mailwarden.dkim import DKIMVerifier
from mailwarden.dmarc import Discovery, DMARCEvaluator, DMARCResult, MultipleAuthors
from mailwarden.message import Message

SUITE = data_root() / "authheaders-dmarc"
AUTHSERV_ID = "example.com"
PSL = PublicSuffixList()

# The one case where we deliberately differ from authheaders (see the module docstring).
OUR_CHOICES: dict[str, dict[str, str]] = {
    "dmarc-record-syntax-error": {"dmarc": "fail", "policy": "none"},
}


def _load() -> dict[str, Any]:
    path = SUITE / "expected.yaml"
    if not path.exists():
        return {}
    with path.open("rb") as stream:
        data: dict[str, Any] = yaml.safe_load(stream)
    return data


DATA = _load()
CASES = DATA.get("cases") or [None]
FROM_CASES = DATA.get("from_domain_cases") or [None]
RUNS = [
    (case, method)
    for case in CASES
    for method in (Discovery.PSL, Discovery.TREE_WALK)
    if case is None
    or method is Discovery.TREE_WALK
    or ("dmarc" in case["checks"] and not (case.get("options") or {}).get("dmarcbis"))
]


def build_resolver() -> TableResolver:
    table: dict[str, str | None] = {}
    for name, value in DATA["dns"].items():
        if isinstance(value, str) and value.startswith("file:"):
            value = (SUITE / value[5:]).read_text(encoding="ascii").strip()
        table[name] = value
    return TableResolver(table)


@dataclass(frozen=True)
class GivenDKIM:
    """A dkim= result taken from a previous Authentication-Results field."""

    result: str
    domain: str


@dataclass(frozen=True)
class Outcome:
    header: AuthenticationResults
    dkim: list[Any]
    dmarc: DMARCResult | None


async def run_case(case: dict[str, Any], method: Discovery) -> Outcome:
    resolver = build_resolver()
    message = Message.from_file(SUITE / case["message"])
    builder = AuthResultsBuilder(AUTHSERV_ID)
    dkim: list[Any] = []
    if case.get("prev_ar"):
        previous = parse_field(case["prev_ar"])
        assert previous.authserv_id == AUTHSERV_ID
        builder.extend(previous.results)
        if "dkim" not in case["checks"]:
            dkim = [
                GivenDKIM(r.result, r.get("header", "d") or "") for r in previous.by_method("dkim")
            ]
    if "dkim" in case["checks"]:
        verified = await DKIMVerifier(resolver).verify(message)
        for result in verified:
            builder.dkim_result(result)
        dkim = list(verified)
    dmarc = None
    if "dmarc" in case["checks"]:
        evaluator = DMARCEvaluator(
            resolver, discovery=method, psl=PSL, multiple_authors=MultipleAuthors.STRICTEST
        )
        dmarc = await evaluator.evaluate([f.text() for f in message.get_all("From")], None, dkim)
        builder.dmarc(dmarc)
    return Outcome(builder.build(), dkim, dmarc)


_ORG_RECORD = re.compile(
    r"organizational domain (\S+) \((\w+)=(\w+)(?:, (\S+) (is NXDOMAIN|exists))?\)"
)
_PSD_RECORD = re.compile(r"tree walk: _dmarc\.(\S+) \(psd=y\)")


def check_record_used(text: str, dmarc: DMARCResult) -> None:
    """The suite's plain-words `record_used`, checked against our structured fields."""
    if text == "author-domain":
        assert dmarc.record_source == "author"
        assert dmarc.policy_domain == dmarc.domain
    elif match := _PSD_RECORD.fullmatch(text):
        assert dmarc.record_source == "psd"
        assert dmarc.policy_domain == match.group(1)
    elif match := _ORG_RECORD.fullmatch(text):
        domain, tag, value, subject, state = match.groups()
        assert dmarc.record_source == "organizational"
        assert dmarc.policy_domain == domain
        assert dmarc.policy_tag is not None
        assert dmarc.policy_tag.value == tag
        assert dmarc.requested_policy is not None
        assert dmarc.requested_policy.value == value
        if subject:
            assert subject == dmarc.domain
            assert dmarc.author_exists is (state == "exists")
    else:
        pytest.fail(f"record_used not understood: {text!r}")


def _ids() -> list[str]:
    return [f"{c['id']}-{m.value}" if c else "missing" for c, m in RUNS]


@pytest.mark.parametrize(("case", "method"), RUNS, ids=_ids())
async def test_authheaders_case(case: dict[str, Any] | None, method: Discovery) -> None:
    if case is None:
        require_testdata("authheaders-dmarc", "expected.yaml")
        return
    outcome = await run_case(case, method)
    expect = {**case["expect"], **OUR_CHOICES.get(case["id"], {})}
    if "dkim" in expect:
        assert outcome.dkim
        assert str(outcome.dkim[0].result) == expect["dkim"]
    if "dkim_d" in expect:
        assert outcome.dkim[0].domain == expect["dkim_d"]
    dmarc = outcome.dmarc
    if "dmarc" in case["checks"]:
        assert dmarc is not None
        assert dmarc.result.value == expect["dmarc"], dmarc.reason
        assert dmarc.discovery_method is method
        if "header_from" in expect:
            assert dmarc.domain == expect["header_from"]
        if "policy" in expect:
            assert dmarc.policy is not None
            assert dmarc.policy.value == expect["policy"]
        if "record_used" in expect:
            check_record_used(expect["record_used"], dmarc)
    else:
        assert dmarc is None
    # our header, clause by clause, against authheaders' (a formatting reference)
    reference = parse_field(case["expected_ar"])
    assert outcome.header.authserv_id == reference.authserv_id
    ours = outcome.header.results
    assert len(ours) == len(reference.results)
    for mine, theirs in zip(ours, reference.results, strict=True):
        assert mine.method == theirs.method
        want_result = theirs.result
        if theirs.method == "dmarc" and case["id"] in OUR_CHOICES:
            want_result = OUR_CHOICES[case["id"]]["dmarc"]
        assert mine.result == want_result
        for ptype, name in (("header", "d"), ("header", "from"), ("policy", "dmarc")):
            if theirs.get(ptype, name) is not None and theirs.get(ptype, name) != "none":
                assert mine.get(ptype, name) == theirs.get(ptype, name), (ptype, name)


@pytest.mark.parametrize(
    "case", FROM_CASES, ids=[c["from"] if c else "missing" for c in FROM_CASES]
)
def test_from_domain(case: dict[str, Any] | None) -> None:
    if case is None:
        require_testdata("authheaders-dmarc", "expected.yaml")
        return
    domains = list(read_authors([case["from"]]).domains)
    assert domains == [case["domain"]]


def test_suite_is_complete() -> None:
    require_testdata("authheaders-dmarc", "expected.yaml")
    assert len(CASES) == 13
    assert len(FROM_CASES) == 4
    assert len(RUNS) == 13 + 10  # PSL runs: the RFC 7489 DMARC cases
    assert all(Path(SUITE / c["message"]).exists() for c in CASES)
