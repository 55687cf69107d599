"""DKIM audit (RFC 6376, RFC 8301, RFC 8463): the key records of the selectors given plus a
short list of common selector names, all queried at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mailwarden.dkim import KeyRecord, KeyRecordError, KeyType, key_name, parse_key_record
from mailwarden.dns import RdType, Resolver

from .findings import FindingCode, LookupStatus, Section, Severity, query

__all__ = [
    "COMMON_SELECTORS",
    "MIN_RSA_BITS",
    "RECOMMENDED_RSA_BITS",
    "LocalKey",
    "check_dkim",
    "check_key_ages",
]

# Selector names that mail providers and common software use by default: Microsoft 365
# (selector1, selector2), Google Workspace (google), Mailchimp/Mandrill (k1, k2, k3), Amazon
# SES and others (s1, s2), cPanel/Plesk/OpenDKIM/rspamd defaults (default, dkim, mail).
COMMON_SELECTORS = (
    "default",
    "selector1",
    "selector2",
    "google",
    "k1",
    "k2",
    "k3",
    "s1",
    "s2",
    "dkim",
    "mail",
    "smtp",
    "key1",
    "sig1",
)
MIN_RSA_BITS = 1024  # RFC 8301 §3.2: verifiers must not accept smaller keys
RECOMMENDED_RSA_BITS = 2048


def _key_data(selector: str, key: KeyRecord, explicit: bool) -> dict[str, Any]:
    return {
        "selector": selector,
        "given": explicit,
        "key_type": key.key_type.value,
        "key_bits": key.key_bits,
        "testing": key.testing,
        "revoked": key.revoked,
        "hash_algorithms": list(key.hash_algorithms) if key.hash_algorithms else None,
        "service_types": list(key.service_types),
    }


def _judge(section: Section, selector: str, name: str, key: KeyRecord) -> None:
    if key.revoked:
        section.add(
            FindingCode.DKIM_REVOKED,
            Severity.INFO,
            f"selector {selector}: key revoked (empty p=); signatures with it fail",
            f"Fine after a rotation; delete {name} once no mail signed with it is in transit.",
            selector,
        )
        return
    problems = 0
    if key.key_type is KeyType.RSA and key.key_bits < MIN_RSA_BITS:
        problems += 1
        section.add(
            FindingCode.DKIM_KEY_TOO_SMALL,
            Severity.ERROR,
            f"selector {selector}: {key.key_bits}-bit RSA key; verifiers reject keys under "
            f"{MIN_RSA_BITS} bits (RFC 8301 §3.2)",
            f"Generate a {RECOMMENDED_RSA_BITS}-bit key (`mailwarden dkim keygen`), publish it "
            "under a new selector and switch signing to it.",
            selector,
        )
    elif key.key_type is KeyType.RSA and key.key_bits < RECOMMENDED_RSA_BITS:
        problems += 1
        section.add(
            FindingCode.DKIM_KEY_WEAK,
            Severity.WARNING,
            f"selector {selector}: {key.key_bits}-bit RSA key; {RECOMMENDED_RSA_BITS} bits is "
            "the recommended size",
            f"Rotate to a {RECOMMENDED_RSA_BITS}-bit key under a new selector.",
            selector,
        )
    if key.testing:
        problems += 1
        section.add(
            FindingCode.DKIM_TESTING,
            Severity.WARNING,
            f"selector {selector}: t=y, the domain says it is testing DKIM: receivers may "
            "treat its signatures as unsigned",
            f"Remove t=y from {name} once signing works.",
            selector,
        )
    if key.hash_algorithms is not None and "sha256" not in key.hash_algorithms:
        problems += 1
        section.add(
            FindingCode.DKIM_SHA1_ONLY,
            Severity.ERROR,
            f"selector {selector}: h={':'.join(key.hash_algorithms)} allows no sha256; "
            "RFC 8301 forbids rsa-sha1 signatures",
            f"Remove the h= tag from {name} (or set h=sha256) and sign with rsa-sha256.",
            selector,
        )
    if not key.allows_email():
        problems += 1
        section.add(
            FindingCode.DKIM_NOT_EMAIL,
            Severity.ERROR,
            f"selector {selector}: s={':'.join(key.service_types)} excludes e-mail",
            f"Remove the s= tag from {name}.",
            selector,
        )
    if not problems:
        section.add(
            FindingCode.DKIM_KEY_OK,
            Severity.OK,
            f"selector {selector}: {key.key_type.value} key, {key.key_bits} bits",
            subject=selector,
        )


async def _selector(
    resolver: Resolver, section: Section, domain: str, selector: str, explicit: bool
) -> dict[str, Any] | None:
    name = key_name(selector, domain)
    outcome = await query(resolver, name, RdType.TXT)
    if outcome.timed_out:
        section.timeout(name, RdType.TXT, outcome.detail, selector)
        return {"selector": selector, "given": explicit, "error": "timed out"}
    if outcome.answer is None:
        if explicit:
            section.add(
                FindingCode.DKIM_SELECTOR_MISSING,
                Severity.ERROR,
                f"selector {selector}: no key record at {name} "
                f"({'no such name' if outcome.status is LookupStatus.NXDOMAIN else 'no TXT'})",
                f"Publish the public key of selector {selector} as a TXT record at {name}, "
                "or check the selector name in your signer's s= tag.",
                selector,
            )
            return {"selector": selector, "given": explicit, "error": "not found"}
        return None
    errors = []
    for txt in outcome.answer.txt():
        try:
            key = parse_key_record(txt.joined)
        except KeyRecordError as exc:
            errors.append(str(exc))
            continue
        _judge(section, selector, name, key)
        return _key_data(selector, key, explicit)
    section.add(
        FindingCode.DKIM_RECORD_INVALID,
        Severity.ERROR,
        f"selector {selector}: the key record at {name} is unusable: "
        f"{errors[0] if errors else 'no TXT data'}",
        "Publish the record exactly as your signer prints it: v=DKIM1; k=rsa; p=<base64 key>.",
        selector,
    )
    return {"selector": selector, "given": explicit, "error": errors[0] if errors else "empty"}


def _shortlist(names: list[str], size: int = 6) -> str:
    return ", ".join(names[:size]) + (", ..." if len(names) > size else "")


async def check_dkim(
    resolver: Resolver,
    domain: str,
    selectors: tuple[str, ...] = (),
    common: tuple[str, ...] = COMMON_SELECTORS,
) -> Section:
    """The DKIM section: every given selector, and the common ones that exist."""
    section = Section("dkim")
    given = tuple(dict.fromkeys(s.strip().lower() for s in selectors if s.strip()))
    tried = [s for s in common if s not in given]
    results = await asyncio.gather(
        *(_selector(resolver, section, domain, s, True) for s in given),
        *(_selector(resolver, section, domain, s, False) for s in tried),
    )
    keys = [r for r in results if r is not None]
    section.data.update(selectors=keys, common_selectors_tried=tried)
    if not given and not tried:
        section.add(
            FindingCode.DKIM_NOT_CHECKED,
            Severity.INFO,
            "no DKIM selector given and common selectors not tried: DKIM not checked",
            "Give the selector from a DKIM-Signature's s= tag of your mail with --selector.",
            domain,
        )
        return section
    if not any(k.get("key_type") for k in keys) and not any(
        f.severity is Severity.ERROR or f.code.endswith("timeout") for f in section.findings
    ):
        section.add(
            FindingCode.DKIM_NONE_FOUND,
            Severity.INFO if not given else Severity.WARNING,
            f"no DKIM key found for {domain} at the selectors tried "
            f"({_shortlist([*given, *tried])}): DKIM selectors are arbitrary names, "
            "so this proves nothing",
            "Give the selector from a DKIM-Signature's s= tag of your mail with --selector.",
            domain,
        )
    return section


@dataclass(frozen=True, slots=True)
class LocalKey:
    """A key of this host's signing store, for the age check (the audit reads no store)."""

    selector: str
    created: float  # seconds since the epoch
    signing: bool  # active: mail is signed with it now


def check_key_ages(
    section: Section, keys: Iterable[LocalKey], max_age_days: int, now: float
) -> None:
    """Warn about every key still signing that is older than `max_age_days`: the longer a
    key signs, the more mail an attacker who got it can forge, and the longer it has had to
    be cracked or leaked (M3AAWG recommends rotating at least every 6 months)."""
    listed = []
    for key in keys:
        age = max(0.0, now - key.created) / 86400
        listed.append({"selector": key.selector, "age_days": int(age), "signing": key.signing})
        if not key.signing or age <= max_age_days:
            continue
        made = time.strftime("%Y-%m-%d", time.gmtime(key.created))
        section.add(
            FindingCode.DKIM_KEY_OLD,
            Severity.WARNING,
            f"selector {key.selector}: still signing with a key made {made}, {int(age)} days "
            f"ago (more than {max_age_days})",
            "Rotate it: `mailwarden dkim rotate --domain DOMAIN`, or let the schedule do it "
            "([signing] rotate_after_days).",
            key.selector,
        )
    section.data["local_keys"] = listed
