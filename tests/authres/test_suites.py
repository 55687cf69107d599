"""The Authentication-Results suites, read straight from the shared test data.

authres-python (authres 1.2.0's doctests, derived): 23 parse cases, of which the two marked
`expect_error` must fail, and 18 generated headers whose text our formatter must reproduce.
rfc8601-examples: the 10 examples of RFC 8601 Appendix B and §2.7.6.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.testdata import require_testdata
from tests.testdata import testdata_dir as data_root

from mailwarden.authres import (
    AuthenticationResults,
    ParseError,
    parse_authentication_results,
    parse_field,
)

_FIELD = re.compile(r"^\s*authentication-results\s*:", re.IGNORECASE)


def _load(*parts: str) -> dict[str, Any]:
    path = data_root().joinpath(*parts)
    if not path.exists():
        return {}
    with Path(path).open("rb") as stream:
        data: dict[str, Any] = yaml.safe_load(stream)
    return data


AUTHRES = _load("authres-python", "authres-parse-tests.yml")
RFC8601 = _load("rfc8601-examples", "rfc8601-examples.yml")
PARSE_CASES = AUTHRES.get("parse_cases") or [None]
FORMAT_CASES = AUTHRES.get("format_examples") or [None]
EXAMPLES = RFC8601.get("examples") or [None]


def _ids(cases: list[Any], key: str) -> list[str]:
    return [str(c[key]) if c else "missing" for c in cases]


def _result_str(result: Any) -> str:
    """authres' own normalization: no comments, lower-case property names."""
    text = f"{result.method}={result.result}"
    if result.reason is not None:
        text += f' reason="{result.reason}"'
    for prop in result.properties:
        text += f" {prop.ptype}.{prop.name.lower()}={_authres_value(prop.value)}"
    return text


def _authres_value(value: str) -> str:
    return f'"{value}"' if ":" in value else value


def _check_expected(parsed: AuthenticationResults, expect: dict[str, Any]) -> None:
    if "authserv_id" in expect:
        assert parsed.authserv_id == expect["authserv_id"]
    if "all_results_method_result" in expect:
        got = [[r.method, r.result] for r in parsed.results]
        assert got == expect["all_results_method_result"]
    for want in expect.get("results", []):
        result = parsed.results[want["index"]]
        if "method" in want:
            assert result.method.lower() == want["method"]
        if "result" in want:
            assert result.result.lower() == want["result"]
        if "reason" in want:
            assert result.reason == want["reason"]
        if "str" in want:
            assert _result_str(result) == want["str"]
        for prop in want.get("properties", []):
            got = result.properties[prop["index"]]
            assert got.ptype.lower() == prop["type"]
            assert got.name.lower() == prop["name"]
            assert got.value == str(prop["value"])


@pytest.mark.parametrize("case", PARSE_CASES, ids=_ids(PARSE_CASES, "id"))
def test_authres_python_parse(case: dict[str, Any] | None) -> None:
    if case is None:
        require_testdata("authres-python", "authres-parse-tests.yml")
        return
    header = case["header"]
    assert _FIELD.match(header)
    if "expect_error" in case:
        with pytest.raises(ParseError):
            parse_field(header)
        with pytest.raises(ParseError):
            parse_field(header, strict=True)
        return
    parsed = parse_field(header)
    _check_expected(parsed, case["expect"])
    # what we write reads back as the same value
    assert parse_authentication_results(parsed.format_value()) == parsed


@pytest.mark.parametrize("case", FORMAT_CASES, ids=_ids(FORMAT_CASES, "doctest_line"))
def test_authres_python_format(case: dict[str, Any] | None) -> None:
    """Each header authres generates parses, and our formatter writes the same text."""
    if case is None:
        require_testdata("authres-python", "authres-parse-tests.yml")
        return
    expected = " ".join(case["expected"].split())
    parsed = parse_field(expected, strict=True)
    assert "Authentication-Results: " + parsed.format_value() == expected
    unfolded = " ".join(parsed.format_field(width=60).replace("\r\n\t", " ").split())
    assert unfolded == expected


@pytest.mark.parametrize("case", EXAMPLES, ids=_ids(EXAMPLES, "id"))
def test_rfc8601_examples(case: dict[str, Any] | None) -> None:
    if case is None:
        require_testdata("rfc8601-examples", "rfc8601-examples.yml")
        return
    parsed = parse_authentication_results(case["value"], strict=True)
    expect = case["expect"]
    assert parsed.authserv_id == expect["authserv_id"]
    assert parsed.version == expect["version"]
    assert (not parsed.results) == bool(expect.get("none", False))
    assert len(parsed.results) == len(expect["results"])
    for got, want in zip(parsed.results, expect["results"], strict=True):
        assert got.method.lower() == want["method"]
        assert got.version == want["method_version"]
        assert got.result.lower() == want["result"]
        assert got.reason == want["reason"]
        props = [(p.ptype.lower(), p.name.lower(), p.value) for p in got.properties]
        assert props == [(p["type"], p["name"], str(p["value"])) for p in want["properties"]]
        if "comments" in want:  # every comment kept, in order (on the result or its props)
            kept = list(got.comments) + [c for p in got.properties for c in p.comments]
            assert kept == want["comments"]
    if "header_comments" in expect:
        assert list(parsed.comments) == expect["header_comments"]
    assert parse_authentication_results(parsed.format_value()) == parsed


def test_suites_are_complete() -> None:
    require_testdata("authres-python", "authres-parse-tests.yml")
    require_testdata("rfc8601-examples", "rfc8601-examples.yml")
    assert len(PARSE_CASES) == 23
    assert sum("expect_error" in c for c in PARSE_CASES) == 2
    assert len(FORMAT_CASES) == 18
    assert len(EXAMPLES) == 10
