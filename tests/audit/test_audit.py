"""mailwarden.audit over static zones (tests/audit/data/zones.txt) that trigger every finding;
DNS timeouts scripted with StaticResolver.fail must read "timed out", never "not found"."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from mailwarden.audit import (
    CHECKS,
    COMMON_SELECTORS,
    FindingCode,
    LocalKey,
    Severity,
    audit_domain,
    authorization_name,
    lookups_past_limit,
)
from mailwarden.audit.bimi import DMARCEnforcement, bimi_section
from mailwarden.audit.dmarc import enforcement
from mailwarden.audit.findings import LookupStatus, Outcome
from mailwarden.dmarc import parse_record
from mailwarden.dns import Failure, RdType, StaticResolver
from mailwarden.dnsbl import parse_list
from mailwarden.spf.explain import explain_policy

ZONES = Path(__file__).resolve().parent / "data" / "zones.txt"
TEST_LIST = parse_list({"name": "testbl", "zone": "bl.example.test"})
BAD_SELECTORS = ("missing", "weak", "tiny", "test", "old", "broken")


def resolver() -> StaticResolver:
    return StaticResolver.from_master_files([ZONES])


async def audit(
    domain: str, dns: StaticResolver | None = None, selectors: tuple[str, ...] = ()
) -> dict[str, Any]:
    report = await audit_domain(
        dns or resolver(), domain, selectors=selectors, dns_lists=[TEST_LIST]
    )
    data = report.to_dict()
    assert data["status"] == report.worst.value
    return data


def codes(data: dict[str, Any], check: str | None = None) -> dict[str, str]:
    """code -> severity (the worst when a code appears several times)."""
    order = [s.value for s in Severity]
    out: dict[str, str] = {}
    for finding in data["findings"]:
        if check is None or finding["check"] == check:
            old = out.get(finding["code"])
            if old is None or order.index(finding["severity"]) > order.index(old):
                out[finding["code"]] = finding["severity"]
    return out


async def test_good_domain_is_all_ok() -> None:
    data = await audit("good.example", selectors=("sel1",))
    assert data["status"] == "ok"
    assert data["counts"] == {"ok": 7, "info": 0, "warning": 0, "error": 0}
    assert all(f["fix"] is None for f in data["findings"])
    host = data["mx"]["hosts"][0]
    assert (host["preference"], host["host"]) == (10, "mx1.good.example")
    assert [a["ip"] for a in host["addresses"]] == ["192.0.2.20", "2001:db8:20::1"]
    assert host["addresses"][0]["ptr"] == ["mx1.good.example"]
    assert host["addresses"][0]["fcrdns"] == "pass"
    assert host["addresses"][1]["fcrdns_name"] == "mx1.good.example"
    assert host["addresses"][0]["dnsbl"] == [
        {"list": "testbl", "zone": "bl.example.test", "status": "not-listed", "reason": ""}
    ]
    assert data["spf"]["record"].startswith("v=spf1 ip4:192.0.2.0/24")
    assert data["spf"]["dns_lookups"] == 1
    assert data["spf"]["tree"]["children"][0]["domain"] == "_spf.provider.example"
    selectors = {s["selector"]: s for s in data["dkim"]["selectors"]}
    assert selectors["sel1"] == {
        "selector": "sel1",
        "given": True,
        "key_type": "rsa",
        "key_bits": 2048,
        "testing": False,
        "revoked": False,
        "hash_algorithms": None,
        "service_types": ["*"],
    }
    assert selectors["google"]["key_type"] == "ed25519"
    assert selectors["google"]["given"] is False
    assert "sel1" not in data["dkim"]["common_selectors_tried"]
    assert data["dmarc"]["policy"] == {
        "p": "reject",
        "sp": None,
        "np": None,
        "t": False,
        "pct": None,
        "domain": "reject",
        "subdomains": "reject",
        "nonexistent": "reject",
        "testing": False,
    }
    assert data["dmarc"]["source"] == "author"
    assert data["dmarc"]["discovery_method"] == "treewalk"
    external = next(r for r in data["dmarc"]["reports"] if r["external"])
    assert external == {
        "tag": "rua",
        "uri": "mailto:agg@reports.example",
        "external": True,
        "authorized": True,
        "domain": "reports.example",
        "authorization_record": "good.example._report._dmarc.reports.example",
    }
    assert data["bimi"]["logo"] == "https://good.example/logo.svg"
    assert data["bimi"]["authority"] == "https://good.example/vmc.pem"


BAD_EXPECTED = {
    "mx-cname": "warning",
    "mx-no-address": "error",
    "mx-no-ptr": "warning",
    "mx-listed": "error",
    "mx-fcrdns-fail": "warning",
    "spf-ptr": "warning",
    "spf-wide-range": "warning",
    "spf-neutral-all": "warning",
    "spf-include-missing": "error",
    "spf-pass-all": "error",
    "spf-too-many-lookups": "error",
    "spf-void-lookups": "error",
    "dkim-selector-missing": "error",
    "dkim-key-weak": "warning",
    "dkim-key-too-small": "error",
    "dkim-testing": "warning",
    "dkim-revoked": "info",
    "dkim-record-invalid": "error",
    "dmarc-record-error": "warning",
    "dmarc-policy-none": "warning",
    "dmarc-testing": "warning",
    "dmarc-pct": "warning",
    "dmarc-report-uri": "warning",
    "dmarc-report-unauthorized": "error",
    "dmarc-report-authorized": "ok",
    "bimi-logo-not-https": "error",
    "bimi-no-certificate": "info",
    "bimi-dmarc-not-enforced": "error",
}


async def test_bad_domain_triggers_every_finding() -> None:
    data = await audit("bad.example", selectors=BAD_SELECTORS)
    assert codes(data) == BAD_EXPECTED
    assert data["status"] == "error"
    for finding in data["findings"]:
        if finding["severity"] in ("warning", "error"):
            assert finding["fix"], finding["code"]  # every problem comes with a fix


async def test_bad_domain_details() -> None:
    data = await audit("bad.example", selectors=BAD_SELECTORS)
    spf = data["spf"]
    assert spf["dns_lookups"] == 12
    assert spf["void_lookups"] == 3
    assert spf["past_limit"] == [
        "chain.example: include:chain2.example",
        "chain2.example: a:h4.chain.example",
    ]
    too_many = next(f for f in data["findings"] if f["code"] == "spf-too-many-lookups")
    assert "include:chain2.example" in too_many["message"]
    listed = next(f for f in data["findings"] if f["code"] == "mx-listed")
    assert listed["subject"] == "203.0.113.9"
    assert "spam source" in listed["message"]
    unauthorized = next(f for f in data["findings"] if f["code"] == "dmarc-report-unauthorized")
    assert "bad.example._report._dmarc.thirdparty.example" in unauthorized["fix"]
    reports = {r["uri"]: r for r in data["dmarc"]["reports"]}
    assert reports["mailto:fail@thirdparty2.example"]["authorized"] is True
    assert reports["mailto:fail@thirdparty2.example"]["tag"] == "ruf"
    assert reports["mailto:agg@thirdparty.example"]["authorized"] is False
    assert reports["https://reports.bad.example/r"]["authorized"] is None
    assert data["dmarc"]["policy"]["domain"] == "none"
    assert data["dmarc"]["policy"]["pct"] == 50
    selectors = {s["selector"]: s for s in data["dkim"]["selectors"]}
    assert selectors["tiny"]["key_bits"] == 512
    assert selectors["old"]["revoked"] is True
    assert selectors["test"]["testing"] is True
    assert selectors["missing"] == {"selector": "missing", "given": True, "error": "not found"}
    hosts = {h["host"]: h for h in data["mx"]["hosts"]}
    assert hosts["gone.bad.example"]["addresses"] == []
    assert hosts["fcr.bad.example"]["addresses"][0]["fcrdns"] == "fail"


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        (
            "dup.example",
            {
                "mx-null": "info",
                "spf-multiple-records": "error",
                "dkim-none-found": "info",
                "dmarc-multiple-records": "error",
                "bimi-none": "info",
            },
        ),
        (
            "nomx.example",
            {
                "mx-implicit": "warning",
                "spf-none": "error",
                "dkim-none-found": "info",
                "dmarc-none": "error",
                "bimi-none": "info",
            },
        ),
        (
            "sub.good.example",
            {
                "mx-implicit": "warning",
                "spf-none": "error",
                "dkim-none-found": "info",
                "dmarc-inherited": "info",
                "dmarc-enforced": "ok",
                "dmarc-report-authorized": "ok",
                "bimi-none": "info",
            },
        ),
        ("nothing.example", {"domain-nxdomain": "error"}),
        (
            "syntax.example",
            {
                "mx-ip-literal": "error",
                "spf-syntax": "error",
                "dmarc-no-policy": "error",
                "dmarc-no-rua": "info",
                "bimi-multiple": "error",
            },
        ),
        (
            "loop.example",
            {
                "mx-null-mixed": "error",
                "spf-include-loop": "error",
                "spf-include-broken": "error",
                "dkim-sha1-only": "error",
                "dkim-not-email": "error",
                "dmarc-subdomains-none": "warning",
                "bimi-version": "error",
            },
        ),
        (
            "near.example",
            {
                "spf-record-size": "info",
                "spf-lookups-near-limit": "info",
                "spf-mx-too-many": "error",
                "dmarc-nonexistent-none": "warning",
            },
        ),
        ("shop.psdzone", {"dmarc-psd": "warning"}),
        ("nomail.example", {"mx-none": "warning"}),
        ("soft.example", {"spf-softfail-all": "info"}),
        ("noall.example", {"spf-no-all": "warning"}),
    ],
)
async def test_other_zones(domain: str, expected: dict[str, str]) -> None:
    data = await audit(domain, selectors=("sha1", "web") if domain == "loop.example" else ())
    found = codes(data)
    for code, severity in expected.items():
        assert found.get(code) == severity, code


ZONE_DOMAINS = (
    "good.example",
    "bad.example",
    "dup.example",
    "nomx.example",
    "sub.good.example",
    "nothing.example",
    "syntax.example",
    "loop.example",
    "near.example",
    "shop.psdzone",
    "nomail.example",
    "soft.example",
    "noall.example",
)
SELECTORS = ("sel1", *BAD_SELECTORS, "sha1", "web")
# tested without zones (dkim-key-old needs this host's keys: test_local_key_ages)
PURE_ONLY = {"bimi-declined", "bimi-syntax", "dkim-not-checked", "dkim-key-old"}


def source_codes() -> set[str]:
    """Every finding code the audit package can produce, read from its source."""
    root = Path(audit_domain.__code__.co_filename).parent
    codes: set[str] = set()
    for path in root.glob("*.py"):
        used = re.findall(r"FindingCode\.([A-Z0-9_]+)", path.read_text())
        codes.update(FindingCode[name].value for name in used)
    return codes | {f"{check}-dns-timeout" for check in CHECKS}


def test_every_finding_code_is_produced_somewhere() -> None:
    assert {code.value for code in FindingCode} == source_codes()


async def test_the_zones_trigger_every_finding() -> None:
    seen: set[str] = set()
    for domain in ZONE_DOMAINS:
        data = await audit(domain, selectors=SELECTORS)
        seen.update(f["code"] for f in data["findings"])
    for name, rdtype in [("bad.example", None), ("_dmarc.good.example", None)]:
        dns = resolver()
        dns.fail(name, rdtype)
        data = await audit(name.removeprefix("_dmarc."), dns, selectors=("weak",))
        seen.update(f["code"] for f in data["findings"])
    seen.update(f["code"] for f in (await audit("nomx.example"))["findings"])
    dns = resolver()
    dns.fail("good.example", RdType.MX)
    dns.fail("default._bimi.good.example", RdType.TXT)
    dns.fail("sel1._domainkey.good.example", RdType.TXT)
    seen.update(f["code"] for f in (await audit("good.example", dns, ("sel1",)))["findings"])
    assert source_codes() - PURE_ONLY <= seen
    assert source_codes() >= seen


@pytest.mark.parametrize(
    ("age_days", "signing", "warned"),
    [(199, True, False), (201, True, True), (400, False, False), (0, True, False)],
)
async def test_local_key_ages(age_days: int, signing: bool, warned: bool) -> None:
    now = 1_714_521_600.0
    key = LocalKey("sel1", now - age_days * 86400 - 60, signing)
    report = await audit_domain(
        resolver(), "good.example", local_keys=[key], max_key_age_days=200, now=now
    )
    data = report.to_dict()
    old = [f for f in data["findings"] if f["code"] == "dkim-key-old"]
    assert len(old) == (1 if warned else 0)
    if warned:
        assert old[0]["severity"] == "warning"
        assert old[0]["subject"] == "sel1"
        assert f"{age_days} days ago (more than 200)" in old[0]["message"]
        assert "mailwarden dkim rotate" in old[0]["fix"]
    assert data["dkim"]["local_keys"] == [
        {"selector": "sel1", "age_days": age_days, "signing": signing}
    ]
    assert any(s["selector"] == "sel1" and s["given"] for s in data["dkim"]["selectors"])


async def test_no_local_keys_no_new_json() -> None:
    assert "local_keys" not in (await audit("good.example"))["dkim"]


async def test_spf_multiple_records_lists_them() -> None:
    data = await audit("dup.example")
    assert data["spf"]["records"] == ["v=spf1 ip4:192.0.2.1 -all", "v=spf1 ip4:192.0.2.2 -all"]
    assert data["spf"]["record"] is None
    assert data["mx"]["null_mx"] is True


async def test_inherited_dmarc_policy_for_a_subdomain() -> None:
    data = await audit("sub.good.example")
    assert data["dmarc"]["source"] == "organizational"
    assert data["dmarc"]["policy_domain"] == "good.example"
    assert data["dmarc"]["policy"]["domain"] == "reject"


@pytest.mark.parametrize(
    ("name", "rdtype", "check", "not_expected", "subject"),
    [
        ("bad.example", RdType.TXT, "spf", "spf-none", None),
        ("_dmarc.bad.example", RdType.TXT, "dmarc", "dmarc-none", None),
        ("bad.example", RdType.MX, "mx", "mx-none", None),
        ("default._bimi.bad.example", RdType.TXT, "bimi", "bimi-none", None),
        ("weak._domainkey.bad.example", RdType.TXT, "dkim", "dkim-selector-missing", None),
        ("mx.bad.example", RdType.A, "mx", "mx-no-address", "mx.bad.example"),
        ("9.113.0.203.in-addr.arpa", RdType.PTR, "mx", "mx-no-ptr", "203.0.113.9"),
        ("9.113.0.203.bl.example.test", None, "mx", "mx-listed", "203.0.113.9"),
        (
            "bad.example._report._dmarc.thirdparty.example",
            RdType.TXT,
            "dmarc",
            "dmarc-report-unauthorized",
            None,
        ),
        ("chain.example", RdType.TXT, "spf", "spf-include-missing", "chain.example"),
    ],
)
async def test_timeouts_are_reported_as_timeouts(
    name: str, rdtype: RdType | None, check: str, not_expected: str, subject: str | None
) -> None:
    dns = resolver()
    dns.fail(name, rdtype, Failure.TIMEOUT)
    data = await audit("bad.example", dns, selectors=("weak",))
    timeouts = [
        f for f in data["findings"] if f["check"] == check and f["code"].endswith("timeout")
    ]
    assert timeouts, codes(data, check)
    assert all("timed out" in f["message"] for f in timeouts)
    assert all(f["severity"] == "warning" for f in timeouts)
    wrong = [
        f
        for f in data["findings"]
        if f["code"] == not_expected and (subject is None or f["subject"] == subject)
    ]
    assert wrong == []


async def test_everything_timing_out_says_so() -> None:
    dns = resolver()
    for name in ("nomx.example", "_dmarc.nomx.example", "default._bimi.nomx.example"):
        dns.fail(name)
    report = await audit_domain(dns, "nomx.example", common_selectors=())
    found = report.to_dict()
    assert {f["code"] for f in found["findings"]} == {
        "mx-dns-timeout",
        "spf-dns-timeout",
        "dmarc-dns-timeout",
        "bimi-dns-timeout",
        "dkim-not-checked",
    }


async def test_sections_run_concurrently_through_one_cache() -> None:
    dns = resolver()
    await audit_domain(dns, "good.example", selectors=("sel1",))
    assert len(dns.queries) == len(set(dns.queries))  # each name/type asked once
    assert ("sel1._domainkey.good.example", RdType.TXT) in dns.queries
    for selector in COMMON_SELECTORS:
        assert (f"{selector}._domainkey.good.example", RdType.TXT) in dns.queries


async def test_lookups_past_limit_follows_evaluation_order() -> None:
    explanation = await explain_policy(resolver(), domain="bad.example")
    assert lookups_past_limit(explanation.root, 10) == [
        "chain.example: include:chain2.example",
        "chain2.example: a:h4.chain.example",
    ]
    assert lookups_past_limit(explanation.root, 12) == []


def test_authorization_name() -> None:
    assert (
        authorization_name("example.com", "reports.example")
        == "example.com._report._dmarc.reports.example"
    )


@pytest.mark.parametrize(
    ("text", "own", "enforced"),
    [
        ("v=DMARC1; p=reject", True, True),
        ("v=DMARC1; p=quarantine; sp=none", True, False),
        ("v=DMARC1; p=reject; t=y", True, False),
        ("v=DMARC1; p=reject; pct=20", True, False),
        ("v=DMARC1; p=none", True, False),
        ("v=DMARC1; p=reject; sp=quarantine", False, True),
    ],
)
def test_enforcement_for_bimi(text: str, own: bool, enforced: bool) -> None:
    assert enforcement(parse_record(text), own).enforced is enforced


def test_bimi_record_variants() -> None:
    enforced = DMARCEnforcement(True, "")

    def section_codes(record: str) -> set[str]:
        from mailwarden.dns import TXT, Answer

        answer = Answer("default._bimi.x.example", RdType.TXT, (TXT((record.encode(),)),), 60)
        section = bimi_section("x.example", Outcome(LookupStatus.FOUND, answer), enforced)
        return {f.code for f in section.findings}

    assert section_codes("v=BIMI1; l=https://x.example/l.svg; a=https://x.example/a.pem") == {
        "bimi-ok"
    }
    assert section_codes("v=BIMI1; l=; a=") == {"bimi-declined"}
    assert section_codes("v=BIMI1; l=https://x.example/l.svg; l=x") == {"bimi-syntax"}
    assert section_codes("other text") == {"bimi-none"}


def test_every_check_has_a_section() -> None:
    assert CHECKS == ("mx", "spf", "dkim", "dmarc", "bimi")
