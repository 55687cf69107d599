"""`mailwarden spf build`: print a valid SPF record from addresses, hosts and providers."""

from __future__ import annotations

import click

from mailwarden import runtime
from mailwarden.spfbuild import (
    MAX_DNS_LOOKUPS,
    build_record,
    count_lookups,
    own_lookups,
    split_strings,
)

from .common import DNSOptions, console, dns_options, fail, json_option, print_json

EPILOG = """\b
Example:
  mailwarden spf build --ip4 192.0.2.1 --ip4 192.0.2.2 --a example.com --all fail
  v=spf1 ip4:192.0.2.1 ip4:192.0.2.2 a:example.com -all

\b
Exit status: 0 the record was printed (warnings on stderr), 2 bad input.
"""


@click.command("build", epilog=EPILOG)
@click.option("--ip4", multiple=True, metavar="ADDR[/LEN]", help="Allow an IPv4 address or range.")
@click.option("--ip6", multiple=True, metavar="ADDR[/LEN]", help="Allow an IPv6 address or range.")
@click.option("--a", "a_names", multiple=True, metavar="NAME", help="Allow the addresses of NAME.")
@click.option(
    "--mx",
    "mx_names",
    multiple=True,
    is_flag=False,
    flag_value="",
    metavar="[NAME]",
    help="Allow the mail exchangers of NAME (of the domain itself without NAME).",
)
@click.option(
    "--include", multiple=True, metavar="DOMAIN", help="Allow what DOMAIN's SPF policy allows."
)
@click.option(
    "--all",
    "all_word",
    type=click.Choice(["fail", "softfail", "neutral"]),
    default="fail",
    show_default=True,
    help="What every other sender gets: -all, ~all or ?all.",
)
@click.option(
    "--resolve",
    is_flag=True,
    help="Fetch the included policies (DNS) and count their lookups too.",
)
@json_option
@dns_options
def build(
    ip4: tuple[str, ...],
    ip6: tuple[str, ...],
    a_names: tuple[str, ...],
    mx_names: tuple[str, ...],
    include: tuple[str, ...],
    all_word: str,
    resolve: bool,
    as_json: bool,
    dns: DNSOptions,
) -> None:
    """Build an SPF record (repeat the options) and warn about limits: more than 10 DNS
    lookups, strings over 255 bytes."""
    try:
        record, warnings = build_record(
            ip4=ip4, ip6=ip6, a=a_names, mx=mx_names, include=include, all=all_word
        )
    except ValueError as exc:
        fail(str(exc))
    lookups = own_lookups(record)
    if resolve:
        lookups, problems = runtime.run(count_lookups(dns.build(), record))
        warnings.extend(p for p in problems if "DNS-querying terms" not in p)
        if lookups > MAX_DNS_LOOKUPS and not any("more than 10" in w for w in warnings):
            warnings.append(
                f"{lookups} DNS lookups with the included policies: more than "
                f"{MAX_DNS_LOOKUPS}, so every check ends in permerror (RFC 7208 §4.6.4)"
            )
    strings = split_strings(record)
    if as_json:
        print_json(
            {
                "record": record,
                "strings": strings,
                "length": len(record.encode("ascii")),
                "dns_lookups": lookups,
                "includes_resolved": resolve,
                "warnings": warnings,
            }
        )
        return
    click.echo(record)
    if len(strings) > 1:
        quoted = " ".join(f'"{s}"' for s in strings)
        click.echo(f"as a zone file TXT value: ( {quoted} )")
    err = console()
    err.stderr = True
    for warning in warnings:
        err.print(f"[yellow]warning[/]: {warning}", soft_wrap=True)
