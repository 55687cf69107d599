"""`mailwarden postfix config` and `mailwarden postfix check`: Postfix set up for mailwarden.

`config` prints the main.cf and master.cf lines of the chosen integration (milter, policy
service, gateway in front of Postfix) with per-service timeouts above our deadlines and safe
default actions. `check` reads a running Postfix's configuration through `postconf` (`-n` for
what was written, `-x` for the values in force, `-P` for master.cf's per-service overrides),
reports what is misplaced or unsafe, and negotiates with every configured milter as Postfix
would. Exit status: 0 no error-level finding, 1 at least one (the configuration puts mail at
risk, or a milter does not answer), 2 bad input (no postconf, a configuration directory
postconf cannot read).
"""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from mailwarden import runtime
from mailwarden.milter import NegotiationError, negotiate
from mailwarden.settings import ConfigError, Settings, UnixPath, load_settings, parse_listen

from .common import EXIT_OK, EXIT_PARTIAL, FiniteFloat, fail, json_option, one_line, print_json
from .postfixconf import (
    RESTRICTION_LISTS,
    Finding,
    check_gateway,
    check_milters,
    check_policy,
    milters,
    parse_postconf,
    services,
)

__all__ = ["postfix"]

MILTER_DEFAULT = "127.0.0.1:11332"
NEEDED = (
    *RESTRICTION_LISTS,
    "smtpd_policy_service_timeout",
    "smtpd_policy_service_max_idle",
    "smtpd_policy_service_default_action",
    "smtpd_milters",
    "milter_protocol",
    "milter_default_action",
    "milter_connect_timeout",
    "milter_command_timeout",
    "milter_content_timeout",
    "queue_directory",
    "mail_version",
)


@click.group()
def postfix() -> None:
    """Postfix set up for mailwarden: the lines to write, and a check of a running one."""


def _settings(config: str | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        fail(str(exc))


def _inet(address: tuple[str, int] | UnixPath, *, chroot_note: list[str]) -> str:
    """How main.cf names a listener of ours."""
    if isinstance(address, UnixPath):
        spool = "/var/spool/postfix/"
        if address.startswith(spool):  # smtpd runs chrooted there on Debian
            return f"unix:{address[len(spool) :]}"
        chroot_note.append(
            f"# {address} is outside /var/spool/postfix: a chrooted smtpd cannot reach it"
        )
        return f"unix:{address}"
    host, port = address
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"inet:[{host}]:{port}" if ":" in host else f"inet:{host}:{port}"


def _milter_listen(settings: Settings) -> str:
    """The milter's address: `[milter] listen` when the settings have it, else the default."""
    section: Any = getattr(settings, "milter", None)
    listen = getattr(section, "listen", None)
    return str(listen) if listen else MILTER_DEFAULT


def policy_timeout(settings: Settings) -> int:
    """What Postfix should wait for our answer: our RCPT deadline and a margin."""
    return math.ceil(settings.deadlines.rcpt) + 5


def _milter_budget(settings: Settings) -> tuple[float, float]:
    """What the milter expects of Postfix: `[milter] command_timeout` and `content_timeout`
    when the settings have them (it answers within those), else Postfix's defaults."""
    section: Any = getattr(settings, "milter", None)
    command = getattr(section, "command_timeout", 30.0)
    content = getattr(section, "content_timeout", 300.0)
    return float(command), float(content)


def milter_timeouts(settings: Settings) -> tuple[int, int]:
    """Postfix's milter timeouts to write: above our deadlines and the milter's budget."""
    d = settings.deadlines
    budget_command, budget_content = _milter_budget(settings)
    command = max(math.ceil(budget_command), math.ceil(max(d.connect, d.helo, d.mail, d.rcpt)) + 5)
    return command, max(math.ceil(budget_content), math.ceil(d.data) + 10)


def config_lines(
    settings: Settings, *, milter: bool, policy: bool, gateway: bool
) -> dict[str, str]:
    """The main.cf and master.cf text of the chosen integration."""
    main: list[str] = []
    master: list[str] = []
    notes: list[str] = []
    if policy:
        service = settings.policy_service
        address = _inet(parse_listen(service.listen), chroot_note=notes)
        timeout = policy_timeout(settings)
        entry = (
            f"check_policy_service {{ {address}, timeout={timeout}s, max_idle=300s, "
            "max_ttl=1000s, default_action=DUNNO }"
        )
        main += [
            f"# mailwarden policy service: mailwarden policy --listen {service.listen}",
            *notes,
            "# check_policy_service comes AFTER reject_unauth_destination: placed before it, an",
            "# answer such as OK (from the service, or from anything that answers on its",
            "# address) permits the recipient before relay control runs, and opens the relay.",
            f"# timeout={timeout}s: our answers come within [deadlines] rcpt "
            f"({settings.deadlines.rcpt:g} s); max_idle stays below",
            f"# [policy_service] idle_timeout ({service.idle_timeout:g} s). default_action=DUNNO:",
            "# while the service is down mail flows without its checks; write",
            "# default_action=451 4.3.5 to defer mail instead (senders retry).",
            "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,",
            "    reject_unauth_destination",
            "smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated,",
            "    reject_unauth_destination,",
            f"    {entry}",
        ]
        if service.rate_limits:
            main += [
                "# rate limits of authenticated senders: asked once per message, at its end",
                f"smtpd_end_of_data_restrictions = {entry}",
            ]
        main.append("")
    if milter:
        listen = _milter_listen(settings)
        address = _inet(parse_listen(listen), chroot_note=notes)
        command, content = milter_timeouts(settings)
        main += [
            f"# mailwarden milter: mailwarden milter --listen {listen}",
            f"# timeouts above our deadlines (connect..rcpt: {command - 5} s at most, end of "
            f"data {settings.deadlines.data:g} s); default_action=tempfail:",
            "# while the milter is down senders are told to retry (accept would let mail pass",
            "# unchecked; reject would refuse it for good; Postfix 3.11's default is shutdown)",
            "milter_protocol = 6",
            "milter_default_action = tempfail",
            f"smtpd_milters = {{ {address}, connect_timeout={command}s, "
            f"command_timeout={command}s, content_timeout={content}s, default_action=tempfail }}",
            "# mail submitted locally (sendmail, pickup) is ours: not checked as inbound",
            "non_smtpd_milters =",
            "",
        ]
    if gateway:
        config = settings.gateway
        relay = config.relay_to or ("127.0.0.1", 10025)
        host, port = config.listen
        main += [
            f"# mailwarden serve listens on port 25 ({host}:{port} now: use --listen "
            "0.0.0.0:25) and relays what it",
            f"# accepted to Postfix on {relay[0]}:{relay[1]} (--relay-to); Postfix's public smtpd "
            "is turned off in master.cf.",
            "",
        ]
        master += [
            "# mailwarden serve takes port 25: Postfix's public smtpd is turned off",
            "#smtp      inet  n       -       y       -       -       smtpd",
            "# what mailwarden accepted arrives here; relay control stays (only our domains),",
            "# the checks are not run twice (no milters), and Postfix answers within our",
            "# downstream timeouts (gateway.timeouts)",
            f"{relay[0]}:{relay[1]} inet  n       -       n       -       -       smtpd",
            "  -o smtpd_relay_restrictions=reject_unauth_destination",
            "  -o smtpd_recipient_restrictions=",
            "  -o smtpd_client_restrictions=",
            "  -o smtpd_helo_restrictions=",
            "  -o smtpd_sender_restrictions=",
            "  -o smtpd_milters=",
            "  -o smtpd_tls_security_level=none",
            "",
        ]
    return {"main.cf": "\n".join(main), "master.cf": "\n".join(master)}


@postfix.command("config")
@click.option("--milter", is_flag=True, help="Postfix asks `mailwarden milter` (smtpd_milters).")
@click.option("--policy", is_flag=True, help="Postfix asks `mailwarden policy`.")
@click.option("--gateway", is_flag=True, help="`mailwarden serve` in front of Postfix.")
@click.option("--config", metavar="FILE", help="mailwarden's settings (addresses, deadlines).")
@json_option
def config_command(
    milter: bool, policy: bool, gateway: bool, config: str | None, as_json: bool
) -> None:
    """Print the main.cf and master.cf lines for the chosen integration."""
    if not (milter or policy or gateway):
        fail("choose at least one of --milter, --policy, --gateway")
    settings = _settings(config)
    lines = config_lines(settings, milter=milter, policy=policy, gateway=gateway)
    if as_json:
        print_json(lines)
        return
    for name, text in lines.items():
        if text:
            click.echo(f"# ---- {name} ----")
            click.echo(text)


# -- check ------------------------------------------------------------------------------------


def _postconf(program: str, config_dir: str | None, *args: str) -> str:
    command = [program, *(["-c", config_dir] if config_dir else []), *args]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, errors="replace", timeout=60, check=False
        )
    except OSError as exc:
        fail(f"cannot run {program}: {exc.strerror or exc}")
    except subprocess.TimeoutExpired:
        fail(f"{program} did not answer within 60 s")
    if result.returncode != 0:
        first = (result.stderr or result.stdout or "failed").strip().splitlines()
        fail(f"postconf{' -c ' + config_dir if config_dir else ''}: {one_line(first[0][:300])}")
    return result.stdout


def milter_endpoint(address: str, queue_directory: str) -> tuple[str, int] | None:
    """A milter address as negotiate() takes it: (host, port), or ("unix:/path", 0); a
    relative UNIX path is relative to the queue directory (smtpd's chroot). None if unknown."""
    kind, _, rest = address.partition(":")
    kind = kind.lower()
    if kind in ("unix", "local") and rest:
        path = rest if rest.startswith("/") else str(Path(queue_directory) / rest)
        return f"unix:{path}", 0
    if kind == "inet" and rest:
        host, _, port = rest.rpartition(":")
        host = host.strip("[]")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return host, int(port)
    return None


async def _negotiate_all(
    addresses: list[str], queue_directory: str, seconds: float
) -> list[Finding]:
    async def one(address: str) -> Finding:
        where = f"smtpd_milters: {address}"
        endpoint = milter_endpoint(address, queue_directory)
        if endpoint is None:
            return Finding("error", where, "not an address Postfix can connect to")
        try:
            answer = await negotiate(endpoint[0], endpoint[1], seconds)
        except NegotiationError as exc:
            return Finding("error", where, f"live negotiation failed: {exc}")
        return Finding(
            "ok", where, f"live negotiation: milter protocol version {answer.version} answered"
        )

    return list(await asyncio.gather(*(one(a) for a in addresses)))


@postfix.command("check")
@click.option(
    "-c", "--config-dir", "config_dir", metavar="DIR", help="Postfix's configuration directory."
)
@click.option("--postconf", "program", metavar="PROGRAM", help="postconf to run (default: PATH).")
@click.option("--config", metavar="FILE", help="mailwarden's settings (deadlines, addresses).")
@click.option(
    "--timeout",
    type=FiniteFloat(min=0.1, max=300),
    default=10.0,
    metavar="SECONDS",
    help="Each live milter negotiation (default 10).",
)
@json_option
def check_command(
    config_dir: str | None, program: str | None, config: str | None, timeout: float, as_json: bool
) -> None:
    """Check a running Postfix's configuration for mailwarden (exit 1: a problem found)."""
    settings = _settings(config)
    if config_dir is not None:
        try:
            is_dir = Path(config_dir).is_dir()
        except (OSError, ValueError) as exc:  # a name too long, a NUL
            fail(f"-c {one_line(config_dir[:200])}: {getattr(exc, 'strerror', None) or exc}")
        if not is_dir:
            fail(f"-c {one_line(config_dir[:200])}: not a directory")
    if program is None:
        program = shutil.which("postconf") or shutil.which("postconf", path="/usr/sbin:/sbin")
        if program is None:
            fail("postconf not found: is Postfix installed? (or give --postconf)")
    explicit = parse_postconf(_postconf(program, config_dir, "-n"))
    effective = parse_postconf(_postconf(program, config_dir, "-x", *NEEDED))
    overrides = services(_postconf(program, config_dir, "-P", "-x"))
    service = settings.policy_service
    ours = _inet(parse_listen(service.listen), chroot_note=[])
    configured = milters(effective.get("smtpd_milters", ""))
    findings = check_policy(
        effective,
        overrides,
        answer_deadline=settings.deadlines.rcpt,
        idle_timeout=service.idle_timeout,
        ours=ours,
        expect_policy=not configured,
    )
    if configured:
        d = settings.deadlines
        budget_command, budget_content = _milter_budget(settings)
        command = max(d.connect, d.helo, d.mail, d.rcpt, budget_command)
        findings += check_milters(
            effective, explicit, command=command, content=max(d.data, budget_content)
        )
        queue = effective.get("queue_directory", "/var/spool/postfix")
        addresses = [m.address for m in configured]
        findings += runtime.run(_negotiate_all(addresses, queue, timeout))
    if settings.gateway.relay_to is not None:  # serve in front: Postfix must take its mail
        master = _postconf(program, config_dir, "-M", "-x")
        findings += check_gateway(master, settings.gateway.relay_to)
    errors = sum(f.level == "error" for f in findings)
    warnings = sum(f.level == "warning" for f in findings)
    if as_json:
        print_json(
            {
                "postfix": effective.get("mail_version", ""),
                "config_directory": config_dir or "",
                "findings": [f.to_dict() for f in findings],
                "errors": errors,
                "warnings": warnings,
            }
        )
    else:
        for finding in findings:
            click.echo(f"{finding.level}: {one_line(finding.where)}: {one_line(finding.text)}")
        click.echo(f"{errors} error(s), {warnings} warning(s)")
    sys.stdout.flush()
    raise SystemExit(EXIT_PARTIAL if errors else EXIT_OK)
