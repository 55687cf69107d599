"""Every signing case of the ValiMail ARC test suite, read from the suite's YAML file.

Per SOURCE.md: seal with the scenario's key, domain, selector, srv-id, timestamp t and AMS
header list; cv= from validating the chain already present against the scenario's DNS; the
AAR copies this srv-id's Authentication-Results. Each produced value is compared with the
expected one as a set of tag strings, whitespace removed; RSA PKCS#1 v1.5 is deterministic, so
equal b= values mean byte-identical signed data.
"""

from __future__ import annotations

import pytest
from tests.arc.suite import (
    SIGNING_FILE,
    SigningCase,
    resolver_for,
    signing_cases,
    source_counts,
    tag_set,
    to_message,
)
from tests.testdata import require_testdata

from mailwarden.arc import (
    ARCStatus,
    ARCVerifier,
    merge_authentication_results,
    seal,
)
from mailwarden.dkim import load_private_key

CASES = signing_cases()
FIELDS = (
    ("ARC-Seal", "AS"),
    ("ARC-Message-Signature", "AMS"),
    ("ARC-Authentication-Results", "AAR"),
)


def _params() -> list[object]:
    if not CASES:
        return [pytest.param(None, id="testdata-missing")]
    return [pytest.param(case, id=case.id) for case in CASES]


@pytest.mark.parametrize("case", _params())
async def test_signing_case(case: SigningCase | None) -> None:
    require_testdata("arc-test-suite", SIGNING_FILE)
    assert case is not None
    test = case.test
    message = to_message(test["message"])
    chain = await ARCVerifier(resolver_for(case.txt_records)).verify(message)
    payload = merge_authentication_results(message, test["srv-id"])
    assert payload is not None
    produced = dict(
        seal(
            message,
            domain=case.domain,
            selector=case.selector,
            private_key=load_private_key(case.private_key.encode("ascii")),
            authserv_id=test["srv-id"],
            auth_results=payload,
            chain_validation=chain.result,
            headers=test["sig-headers"].split(":"),
            timestamp=test["t"],
        )
    )
    for name, key in FIELDS:
        assert tag_set(produced.get(name, "")) == tag_set(test[key]), name
    if produced:  # what we made validates, on top of the chain as received
        sealed = message.prepend([f"{n}: {v}\r\n".encode() for n, v in produced.items()])
        again = await ARCVerifier(resolver_for(case.txt_records)).verify(sealed)
        want = ARCStatus.PASS if chain.result is not ARCStatus.FAIL else ARCStatus.FAIL
        assert again.result is want, again.reason


def test_every_case_is_counted() -> None:
    require_testdata("arc-test-suite", SIGNING_FILE)
    assert len({case.id for case in CASES}) == len(CASES) == source_counts()[SIGNING_FILE] == 17
