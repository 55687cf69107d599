"""`mailwarden dmarc ...`: look up the DMARC record and policy that apply to a domain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from mailwarden import runtime
from mailwarden.dmarc import (
    Discovery,
    DiscoveryTempError,
    DMARCEvaluator,
    DMARCResult,
    DMARCStatus,
    Lookup,
    organizational_domain,
)
from mailwarden.dns import Resolver, is_domain_name, normalize, to_ascii

from .common import EXIT_PARTIAL, DNSOptions, console, dns_options, fail, json_option, print_json


@click.group()
def dmarc() -> None:
    """DMARC (RFC 9989, RFC 7489): discover records and policies."""


@dataclass(frozen=True)
class RecordLookup:
    verdict: DMARCResult
    organizational_domain: str | None
    error: str | None


async def look_up(resolver: Resolver, domain: str, method: Discovery) -> RecordLookup:
    """The policy mail from `domain` would get if it failed DMARC, and where it comes from."""
    evaluator = DMARCEvaluator(resolver, discovery=method)
    verdict = await evaluator.evaluate_domain(domain, None, [])
    org = verdict.organizational_domain
    error = verdict.reason if verdict.result is DMARCStatus.TEMPERROR else None
    if org is None and error is None:
        try:
            org = await organizational_domain(Lookup(resolver), domain, method, evaluator.psl)
        except DiscoveryTempError as exc:  # report it, keep what we have
            error = str(exc)
    return RecordLookup(verdict, org, error)


def record_dict(found: RecordLookup) -> dict[str, Any]:
    verdict = found.verdict
    record = verdict.record
    return {
        "domain": verdict.domain,
        "discovery": verdict.discovery_method.value,
        "found": record is not None,
        "record": record.raw if record else None,
        "tags": dict(record.tags) if record else None,
        "record_errors": list(record.errors) if record else [],
        "policy_domain": verdict.policy_domain,
        "record_source": verdict.record_source,
        "organizational_domain": found.organizational_domain,
        "policy_tag": verdict.policy_tag.value if verdict.policy_tag else None,
        "requested_policy": verdict.requested_policy.value if verdict.requested_policy else None,
        "policy": verdict.policy.value if verdict.policy else None,
        "testing": verdict.testing,
        "pct": verdict.pct,
        "domain_exists": verdict.author_exists,
        "dns_queries": verdict.dns_queries,
        "note": verdict.reason
        if record is None or verdict.result is not DMARCStatus.FAIL
        else None,
        "error": found.error,
    }


@dmarc.command("record")
@click.argument("domain")
@click.option(
    "--psl",
    "use_psl",
    is_flag=True,
    help="Find the Organizational Domain with the Public Suffix List (RFC 7489) instead of the "
    "DNS Tree Walk (RFC 9989).",
)
@json_option
@dns_options
def record(domain: str, use_psl: bool, as_json: bool, dns: DNSOptions) -> None:
    """Show the DMARC record that applies to DOMAIN and the policy mail from it would get."""
    try:
        name = normalize(to_ascii(domain.strip()))
    except ValueError as exc:
        fail(str(exc))
    if not is_domain_name(name):
        fail(f"invalid domain {domain!r}")
    method = Discovery.PSL if use_psl else Discovery.TREE_WALK
    found = runtime.run(look_up(dns.build(), name, method))
    data = record_dict(found)
    if as_json:
        print_json(data)
    else:
        show(data)
    if found.error is not None:
        raise SystemExit(EXIT_PARTIAL)


def show(data: dict[str, Any]) -> None:
    out = console()
    out.print(f"[bold]{data['domain']}[/] (discovery: {data['discovery']})")
    if data["error"]:
        out.print(f"[magenta]error:[/] {data['error']}", markup=True)
    if not data["found"]:
        out.print(f"no DMARC record applies: {data['note']}", markup=False)
        return
    out.print(f"record at _dmarc.{data['policy_domain']} ({data['record_source']}):", markup=False)
    out.print(f"  {data['record']}", markup=False)
    for error in data["record_errors"]:
        out.print(f"  [yellow]record problem:[/] {error}")
    out.print(f"organizational domain: {data['organizational_domain']}", markup=False)
    policy = data["policy"] or "no DMARC processing"
    source = f" (from {data['policy_tag']}=)" if data["policy_tag"] else ""
    out.print(f"policy for failing mail: [bold]{policy}[/]{source}")
    if data["testing"]:
        out.print(f"  t=y: testing, {data['requested_policy']} applied one level lower")
    if data["pct"] is not None:
        out.print(f"  pct={data['pct']} (RFC 7489 sampling)", markup=False)
