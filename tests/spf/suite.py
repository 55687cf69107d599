"""Reads the openspf YAML test suites (format in openspf-rfc7208/SOURCE.md)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tests.testdata import testdata_dir

from mailwarden.dns import Failure, RdType, StaticResolver

_OLD_NAMES = {"unknown": "permerror", "error": "temperror"}


@dataclass(frozen=True)
class SuiteCase:
    scenario: str
    name: str
    host: str
    mailfrom: str
    helo: str
    results: tuple[str, ...]  # acceptable results, preferred first
    explanation: str | None
    receiver: str | None
    zone: dict[str, list[Any]]


def load_cases(path: Path) -> Iterator[SuiteCase]:
    with path.open("rb") as stream:
        for scenario in yaml.safe_load_all(stream):
            if not scenario:
                continue
            title = scenario.get("description") or scenario.get("comment") or ""
            zone = scenario.get("zonedata") or {}
            for name, test in scenario["tests"].items():
                expected = test["result"]
                results = tuple(
                    _OLD_NAMES.get(r, r)
                    for r in (expected if isinstance(expected, list) else [expected])
                )
                yield SuiteCase(
                    scenario=title.strip(),
                    name=name,
                    host=str(test["host"]),
                    mailfrom=str(test.get("mailfrom") or ""),
                    helo=str(test.get("helo") or ""),
                    results=results,
                    explanation=test.get("explanation"),
                    receiver=test.get("receiver"),
                    zone=zone,
                )


def build_resolver(zone: dict[str, list[Any]]) -> StaticResolver:
    """The scenario's zonedata as a static zone, emulating the reference harness's rules."""
    resolver = StaticResolver()
    for owner, entries in zone.items():
        name = str(owner).lower()
        has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
        published: set[RdType] = set()
        times_out = False
        for entry in entries:
            if entry == "TIMEOUT":
                times_out = True
                continue
            ((rtype, value),) = entry.items()
            if rtype == "SPF":
                if has_txt:
                    continue  # RR type 99 is never queried under RFC 7208
                rtype = "TXT"
            if value == "NONE":
                continue
            rdtype = RdType(rtype)
            if rdtype is RdType.TXT:
                strings = value if isinstance(value, list) else [value]
                resolver.add(name, rdtype, [str(s).encode("utf-8") for s in strings])
            elif rdtype is RdType.MX:
                resolver.add(name, rdtype, (int(value[0]), str(value[1])))
            else:
                resolver.add(name, rdtype, str(value))
            published.add(rdtype)
        if times_out:
            for rdtype in RdType:
                if rdtype not in published:
                    resolver.fail(name, rdtype, Failure.TIMEOUT)
    return resolver


@dataclass(frozen=True)
class Collected:
    """Cases for parametrize; one `None` placeholder when the data is absent."""

    cases: list[SuiteCase | None]
    ids: list[str]


def collect_cases(*parts: str) -> Collected:
    path = testdata_dir().joinpath(*parts)
    if not path.exists():
        return Collected([None], ["testdata-missing"])
    cases: list[SuiteCase | None] = list(load_cases(path))
    return Collected(cases, [c.name for c in cases if c is not None])
