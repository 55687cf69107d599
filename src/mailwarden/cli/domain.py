"""`mailwarden domain check`: audit a domain's mail setup (MX, SPF, DKIM, DMARC, BIMI)."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from mailwarden import runtime
from mailwarden.audit import (
    CHECKS,
    COMMON_SELECTORS,
    DomainAudit,
    LocalKey,
    Severity,
    audit_domain,
)
from mailwarden.dns import is_domain_name, to_ascii
from mailwarden.signing import DirectoryStore, Stage, StoreError, store_path

from .common import (
    EXIT_DNS_FAILED,
    EXIT_OK,
    EXIT_PARTIAL,
    DNSOptions,
    console,
    dns_options,
    fail,
    json_option,
    print_json,
)

EPILOG = f"""\b
Exit status:
  0   no error-level finding (warnings and info may exist), every DNS lookup answered
  1   at least one error-level finding: run it in CI to keep the domain right
  2   bad input (domain, option, zone or config file): nothing was checked
  3   no error-level finding, but DNS lookups timed out or failed: some checks were
      not done (JSON "dns_failed" names them), so the domain is not vouched for

\b
Common DKIM selectors tried besides --selector:
  {", ".join(COMMON_SELECTORS)}
"""

STYLE = {
    Severity.OK: "green",
    Severity.INFO: "cyan",
    Severity.WARNING: "yellow",
    Severity.ERROR: "bold red",
}


@click.group("domain")
def domain() -> None:
    """Audit a domain's mail setup as receivers see it."""


@domain.command("check", epilog=EPILOG)
@click.argument("name")
@click.option(
    "--selector", multiple=True, metavar="SELECTOR", help="A DKIM selector to check (repeatable)."
)
@click.option(
    "--common-selectors/--no-common-selectors",
    default=True,
    show_default=True,
    help="Also try the common DKIM selector names (listed below).",
)
@click.option(
    "--dnsbl/--no-dnsbl", default=True, show_default=True, help="Check MX addresses on DNS lists."
)
@json_option
@dns_options
def check(
    name: str,
    selector: tuple[str, ...],
    common_selectors: bool,
    dnsbl: bool,
    as_json: bool,
    dns: DNSOptions,
) -> None:
    """Check DOMAIN's MX hosts (addresses, reverse DNS, DNS lists), SPF (include tree and
    lookup count), DKIM keys, DMARC (policies, report authorization) and BIMI.

    The keys this host signs DOMAIN with (`mailwarden dkim rotate`) are checked too, and a
    warning is given for each that has signed longer than [signing] max_key_age_days.

    Every finding has a severity (ok, info, warning, error) and a fix. DNS timeouts are
    reported as timeouts, never as missing records.
    """
    try:
        target = to_ascii(name.strip().rstrip(".").lower())
    except ValueError as exc:
        fail(f"invalid domain {name!r}: {exc}")
    if not is_domain_name(target) or "." not in target:
        fail(f"{name!r} is not a domain name")
    for item in selector:
        if not item.strip() or not is_domain_name(item.strip().lower()):
            fail(f"invalid DKIM selector {item!r}")
    settings = dns.settings()
    lists = settings.dnsbl.selected if dnsbl else ()  # [dnsbl] of --config, else the defaults
    try:  # this host's own signing keys of the domain: their age is checked too
        local = [
            LocalKey(key.selector, key.created, key.stage is Stage.ACTIVE)
            for key in DirectoryStore(store_path(settings)).load()
            if key.domain == target and key.stage is not Stage.REVOKED
        ]
    except StoreError as exc:
        fail(f"key store: {exc}")
    resolver = dns.build(settings)
    report = runtime.run(
        audit_domain(
            resolver,
            target,
            selectors=selector,
            common_selectors=COMMON_SELECTORS if common_selectors else (),
            dns_lists=lists,
            local_keys=local,
            max_key_age_days=settings.signing.max_key_age_days,
        )
    )
    if as_json:
        print_json(report.to_dict())
    else:
        show(report)
    if report.has_errors:
        sys.exit(EXIT_PARTIAL)
    sys.exit(EXIT_DNS_FAILED if report.dns_failed else EXIT_OK)


def show(report: DomainAudit) -> None:
    out = console()
    spf = report.sections["spf"].data
    dmarc = report.sections["dmarc"].data
    for check_name in CHECKS:
        section = report.sections[check_name]
        table = Table(
            title=f"{check_name.upper()} [{STYLE[section.worst]}]{section.worst.value}[/]",
            title_justify="left",
        )
        table.add_column("severity", overflow="fold")
        table.add_column("finding", overflow="fold")
        table.add_column("fix", overflow="fold")
        for finding in section.findings:
            table.add_row(
                f"[{STYLE[finding.severity]}]{finding.severity.value}[/]",
                _plain(finding.message),
                _plain(finding.fix or "-"),
            )
        out.print(table)
        if check_name == "spf" and spf.get("record"):
            out.print(f"  record: {spf['record']}", markup=False)
            out.print(
                f"  DNS lookups: {spf['dns_lookups']} of {spf['dns_lookup_limit']}, "
                f"void lookups: {spf['void_lookups']}",
                markup=False,
            )
        if check_name == "dmarc" and dmarc.get("record"):
            policy = dmarc["policy"]
            out.print(f"  record: {dmarc['record']} (at {dmarc['policy_domain']})", markup=False)
            out.print(
                f"  policy: domain {policy['domain']}, subdomains {policy['subdomains']}, "
                f"non-existent subdomains {policy['nonexistent']}, testing {policy['testing']}"
                f" ({dmarc['discovery_method']}, {dmarc['source']} record)",
                markup=False,
            )
    counts = report.counts()
    out.print(
        f"{report.domain}: [{STYLE[report.worst]}]{report.worst.value}[/] - "
        f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info, "
        f"{counts['ok']} ok"
    )
    if report.dns_failed:
        out.print(
            f"[magenta]DNS failed[/] for {', '.join(report.dns_failed)}: those checks were not "
            "done in full (timeouts or SERVFAIL); run it again or check the name servers"
        )


def _plain(text: str) -> str:
    return text.replace("[", "\\[")
