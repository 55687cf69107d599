"""`MessageVerdict.to_dict()`: the one serializer of the pipeline's verdict (what `mailwarden
check --json` prints), and the views that give the connection-time checks the policy's symbols."""

from __future__ import annotations

import ipaddress
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from mailwarden.cli import run
from mailwarden.dkim import sign
from mailwarden.dkim.keygen import key_record, txt_strings
from mailwarden.dns import StaticResolver
from mailwarden.dnsbl import DEFAULT_LISTS, DNSListChecker
from mailwarden.helo import check_helo
from mailwarden.iprev import IprevReason, IprevResult, IprevStatus
from mailwarden.message import fold_field
from mailwarden.pipeline import build
from mailwarden.pipeline.views import (
    dnsbl_dict,
    helo_dict,
    iprev_dict,
    list_result_dict,
    policy_scorer,
)
from mailwarden.policy import Action, PolicyConfig
from mailwarden.settings import DNSListSettings, GatewaySettings, Settings

KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(7, 39)))
MESSAGE = (
    b"From: Alice <alice@a.example>\r\nTo: bob@b.example\r\nSubject: hi\r\n"
    b"Message-ID: <3@a.example>\r\n\r\nHello.\r\n"
)
GOOD, LIAR = "192.0.2.10", "192.0.2.11"


def zone() -> dict[str, dict[str, Any]]:
    return {
        "a.example": {"TXT": "v=spf1 ip4:192.0.2.0/28 -all"},
        "mail.a.example": {"A": GOOD},
        "sel._domainkey.a.example": {"TXT": key_record(KEY)},
        "_dmarc.a.example": {"TXT": "v=DMARC1; p=reject"},
        "10.2.0.192.in-addr.arpa": {"PTR": "mail.a.example"},
        "11.2.0.192.in-addr.arpa": {"PTR": "liar.a.example"},
        "liar.a.example": {"A": "198.51.100.1"},
        "11.2.0.192.zen.spamhaus.org": {"A": ["127.0.0.4", "127.0.0.10"]},
    }


def signed() -> bytes:
    return sign(MESSAGE, "a.example", "sel", KEY, timestamp=int(time.time())) + MESSAGE


def settings(**policy: Any) -> Settings:
    return Settings(
        gateway=GatewaySettings(hostname="mx.b.example"),
        dnsbl=DNSListSettings(use=("zen",)),
        policy=PolicyConfig(**policy),
    )


async def verdict_of(ip: str, helo: str, **policy: Any) -> Any:
    pipeline = build(settings(**policy), StaticResolver(zone()))
    return await pipeline.check(signed(), ip=ip, helo=helo, mail_from="alice@a.example")


# The keys `check --json` has always printed, in its order (a contract: add, never rename).
KEYS = ["spf", "dkim", "dmarc", "arc", "authentication_results", "iprev", "helo", "dnsbl", "policy"]
IPREV_KEYS = ["ip", "result", "reason_code", "name", "names", "reason", "policy_iprev",
              "dns_queries", "symbol"]  # fmt: skip
HELO_KEYS = ["helo", "name", "kind", "ip", "addresses", "ptr_names", "symbols", "reason_codes",
             "score", "rejected_by"]  # fmt: skip


async def test_the_verdict_serializes_itself() -> None:
    verdict = await verdict_of(LIAR, "localhost")
    data = verdict.to_dict()
    assert list(data) == KEYS
    assert list(data["iprev"]) == IPREV_KEYS
    assert list(data["helo"]) == HELO_KEYS
    assert data["spf"]["received_spf"].startswith("Received-SPF: pass (mx.b.example:")
    assert data["spf"]["helo"]["result"] == "none"
    assert "identity" not in data["spf"]["helo"]
    field = fold_field("Authentication-Results", verdict.authentication_results.format_value())
    assert data["authentication_results"] == field  # folded as the gateway writes it
    assert "\r\n " in field
    assert data["dnsbl"] == {
        "ip": [r.to_dict() for r in verdict.dnsbl.results],
        "domains": {k: [r.to_dict() for r in v.results] for k, v in verdict.rhsbl.items()},
    }
    assert data["dnsbl"]["ip"][0]["symbols"] == ["RBL_ZEN_XBL", "RBL_ZEN_PBL"]  # names only
    assert data["policy"] == verdict.policy.to_dict()
    json.dumps(data)


async def test_the_symbols_shown_carry_the_scores_the_policy_counted() -> None:
    default = (await verdict_of(LIAR, "localhost")).to_dict()
    assert default["iprev"]["symbol"] == {
        "name": "IPREV_FAIL",
        "score": 1.5,
        "detail": "no PTR name resolves back to 192.0.2.11 (checked liar.a.example)",
    }
    assert default["helo"]["symbols"] == [
        {
            "name": "HELO_NOT_FQDN",
            "score": 1.5,
            "detail": "'localhost' is not a fully qualified domain name",
        }
    ]
    assert default["helo"]["score"] == 1.5
    configured = (await verdict_of(LIAR, "localhost", scores={"IPREV_FAIL": 7.0})).to_dict()
    assert configured["iprev"]["symbol"]["score"] == 7.0  # before: the check's own 1.5
    counted = {s["name"]: s["score"] for s in configured["policy"]["symbols"]}
    assert counted["IPREV_FAIL"] == 7.0
    assert counted["RBL_ZEN_XBL"] == 5.0  # the list definition's score


async def test_a_helo_symbol_the_policy_refuses_on_is_rejected_by() -> None:
    default = await verdict_of(GOOD, "localhost")
    assert default.to_dict()["helo"]["rejected_by"] is None
    assert default.policy.action is Action.ACCEPT
    strict = await verdict_of(GOOD, "localhost", hard_reject=("HELO_NOT_FQDN",))
    assert strict.to_dict()["helo"]["rejected_by"] == "HELO_NOT_FQDN"
    assert strict.policy.action is Action.REJECT
    assert (
        str(strict.policy.reply) == "554 5.7.1 Service unavailable; client blocked (HELO_NOT_FQDN)"
    )


async def test_an_unreadable_message_has_arc_not_checked() -> None:
    pipeline = build(settings(), StaticResolver(zone()))
    oversized = b"Subject: " + b"a" * 1_100_000 + b"\r\n\r\nbody\r\n"  # over the header limit
    verdict = await pipeline.check(oversized, ip=GOOD, helo="mail.a.example", mail_from="")
    assert verdict.arc is None
    assert verdict.to_dict()["arc"] == {
        "result": "none",
        "oldest_pass": None,
        "reason": "ARC not checked",
        "sets": 0,
    }


def test_check_prints_the_verdicts_own_dict(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    strings = " ".join(f'"{s}"' for s in txt_strings(key_record(KEY)))
    (tmp_path / "zone").write_text(
        "$ORIGIN a.example.\n"
        '@ IN TXT "v=spf1 ip4:192.0.2.0/28 -all"\n'
        f"sel._domainkey IN TXT {strings}\n"
        "11.2.0.192.in-addr.arpa. IN PTR liar.a.example.\n"
    )
    (tmp_path / "m.eml").write_bytes(signed())
    (tmp_path / "list.jsonl").write_text(
        json.dumps({"file": "m.eml", "ip": LIAR, "helo": "localhost"}) + "\n"
    )
    common = ["--hostname", "mx.b.example", "--dns-zone", str(tmp_path / "zone"), "--json"]
    assert (
        run(["check", str(tmp_path / "m.eml"), "--ip", LIAR, "--helo", "localhost", *common]) == 0
    )
    single = json.loads(capsys.readouterr().out)
    assert run(["check", "--batch", str(tmp_path / "list.jsonl"), *common]) == 0
    line = json.loads(capsys.readouterr().out)
    assert list(single) == KEYS
    assert list(line) == ["file", *KEYS]
    assert line["file"] == "m.eml"
    assert {k: v for k, v in line.items() if k != "file"} == single


# -- the views: each check's own dict, with the policy's symbols --------------------------------


async def test_iprev_dict_adds_the_policys_symbol() -> None:
    result = IprevResult(
        IprevStatus.PERMERROR, ipaddress.IPv4Address("192.0.2.9"), IprevReason.NO_PTR,
        reason="no PTR record",
    )  # fmt: skip
    assert "symbol" not in result.to_dict()
    data = iprev_dict(result, policy_scorer(PolicyConfig()))
    assert data == {**result.to_dict(), "symbol": {"name": "IPREV_PERMERROR", "score": 1.0,
                                                    "detail": "no PTR record"}}  # fmt: skip
    scored = iprev_dict(result, policy_scorer(PolicyConfig(scores={"IPREV_PERMERROR": 0.0})))
    assert scored["symbol"]["score"] == 0.0


async def test_helo_dict_scores_and_refuses_as_the_policy_says() -> None:
    resolver = StaticResolver({"mx.b.example": {"A": "203.0.113.25"}})
    result = await check_helo(resolver, "mx.b.example", GOOD, our_names=["mx.b.example"])
    policy = PolicyConfig(scores={"HELO_FORGED": 8.0})
    data = helo_dict(result, policy_scorer(policy), policy.hard_reject)
    assert list(data) == HELO_KEYS
    assert [(s["name"], s["score"]) for s in data["symbols"]] == [
        ("HELO_FORGED", 8.0),
        ("HELO_MISMATCH_PTR", 0.5),
    ]
    assert data["reason_codes"] == ["forged", "mismatch-ptr"]
    assert (data["score"], data["rejected_by"]) == (8.5, None)
    assert helo_dict(result, policy_scorer(policy), ["HELO_FORGED"])["rejected_by"] == "HELO_FORGED"
    empty = await check_helo(resolver, "[192.0.2.10]", GOOD)
    assert helo_dict(empty, policy_scorer(policy), ())["score"] == 0.0


async def test_dnsbl_dict_scores_by_the_definition_unless_configured() -> None:
    zen = next(lst for lst in DEFAULT_LISTS if lst.name == "zen")
    checker = DNSListChecker(StaticResolver(zone()), [zen])
    report = await checker.check_ip(LIAR)
    default = dnsbl_dict(report, policy_scorer(PolicyConfig()))
    expected = [("RBL_ZEN_XBL", 5.0), ("RBL_ZEN_PBL", 2.0)]
    assert [(s["name"], s["score"]) for s in default["symbols"]] == expected
    assert [(s["name"], s["score"]) for s in default["results"][0]["symbols"]] == expected
    assert list(default) == list(report.to_dict())
    configured = policy_scorer(PolicyConfig(scores={"RBL_ZEN_PBL": 0.5}))
    one = list_result_dict(report.results[0], configured)
    assert [(s["name"], s["score"]) for s in one["symbols"]] == [
        ("RBL_ZEN_XBL", 5.0),
        ("RBL_ZEN_PBL", 0.5),
    ]
