"""Shared by the SPF tests: a checker over a static zone, and the expansion of an exp= text."""

from __future__ import annotations

from mailwarden.dns import StaticResolver
from mailwarden.spf import SPFChecker, SPFStatus

SENDER = "strong-bad@email.example.com"


def checker_for(zone: dict[str, dict[str, object]], **options: object) -> SPFChecker:
    return SPFChecker(StaticResolver(zone), **options)  # type: ignore[arg-type]


async def explained(text: str, ip: str = "192.0.2.3", **options: object) -> str | None:
    """The expansion of `text` as the exp= explanation of a failing policy."""
    zone: dict[str, dict[str, object]] = {
        "email.example.com": {"TXT": "v=spf1 -all exp=why.example.com"},
        "why.example.com": {"TXT": text},
    }
    result = await checker_for(zone, **options).check_mailfrom(ip, SENDER, "mx.example.org")
    assert result.result is SPFStatus.FAIL
    return result.explanation
