"""Every validation case of the ValiMail ARC test suite, read from the suite's YAML file.

The expected chain status is the file's `cv`, lower-cased; the three cases with an empty `cv`
are read as fail (SOURCE.md, RFC 8617 §5.2 steps 2-3), and only those three.
"""

from __future__ import annotations

from collections import Counter

import pytest
from tests.arc.suite import (
    EMPTY_CV_READ_AS_FAIL,
    VALIDATION_FILE,
    ValidationCase,
    load_documents,
    resolver_for,
    source_counts,
    suite_dir,
    to_message,
    validation_cases,
)
from tests.testdata import require_testdata

from mailwarden.arc import ARCStatus, ARCVerifier

CASES = validation_cases()


def _params() -> list[object]:
    if not CASES:  # data absent: one case that skips (or fails under CI)
        return [pytest.param(None, id="testdata-missing")]
    return [pytest.param(case, id=case.id) for case in CASES]


@pytest.mark.parametrize("case", _params())
async def test_validation_case(case: ValidationCase | None) -> None:
    require_testdata("arc-test-suite", VALIDATION_FILE)
    assert case is not None
    resolver = resolver_for(case.txt_records)
    result = await ARCVerifier(resolver).verify(to_message(case.message))
    assert result.result == case.expected, result.reason
    if result.result is ARCStatus.FAIL:
        assert result.reason
    if result.result is ARCStatus.PASS:
        assert result.oldest_pass is not None
        assert result.instances == len(result.sets) >= 1
        assert all(s.seal_result is ARCStatus.PASS for s in result.sets)


def test_every_case_is_counted() -> None:
    require_testdata("arc-test-suite", VALIDATION_FILE)
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) == 175
    # SOURCE.md counts the ids a plain YAML load keeps: 171
    plain = [
        tid
        for doc in load_documents(VALIDATION_FILE, keep_duplicates=False)
        for tid in doc["tests"]
    ]
    assert len(plain) == source_counts()[VALIDATION_FILE] == 171
    shadowed = sorted(tid for tid in ids if "#" in tid)
    assert shadowed == [
        "as_fields_b_eol_wsp#2",
        "as_fields_b_head_case#2",
        "as_fields_b_head_unfold#2",
        "as_fields_b_inl_wsp#2",
    ]
    assert (suite_dir() / "SOURCE.md").exists()


def test_expectation_totals_match_source_md() -> None:
    require_testdata("arc-test-suite", VALIDATION_FILE)
    plain = [
        test["cv"]
        for doc in load_documents(VALIDATION_FILE, keep_duplicates=False)
        for test in doc["tests"].values()
    ]
    # SOURCE.md: Pass 54, Fail 109, None 5, "" 3
    assert Counter(plain) == {"Pass": 54, "Fail": 109, "None": 5, "": 3}
    empty = {case.id for case in CASES if case.cv == ""}
    assert empty == EMPTY_CV_READ_AS_FAIL
