"""Postfix's configuration as `postconf` prints it, read and judged for mailwarden.

Pure functions (no Postfix, no I/O): `restrictions` splits a restriction list as Postfix does
(commas or spaces, `{ ... }` grouping a service with its per-service settings, Postfix 3.0+),
`milters` reads smtpd_milters the same way, `duration` reads Postfix's time values, and
`check_policy` / `check_milters` return the problems of a configuration, each a `Finding`
with a level: error (mail is at risk: an open relay, mail refused while a filter is down),
warning (works, but not as intended), ok (what was checked and found right).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "RESTRICTION_LISTS",
    "Finding",
    "Service",
    "check_gateway",
    "check_milters",
    "check_policy",
    "duration",
    "parse_postconf",
    "restrictions",
    "services",
]

# The lists Postfix evaluates for each RCPT, in its order (smtpd_relay_restrictions first).
RESTRICTION_LISTS = (
    "smtpd_client_restrictions",
    "smtpd_helo_restrictions",
    "smtpd_sender_restrictions",
    "smtpd_relay_restrictions",
    "smtpd_recipient_restrictions",
    "smtpd_data_restrictions",
    "smtpd_end_of_data_restrictions",
)
RELAY_CONTROL = ("reject_unauth_destination", "defer_unauth_destination")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class Finding:
    level: str  # "error", "warning" or "ok"
    where: str  # the parameter (and master.cf service) concerned
    text: str

    def to_dict(self) -> dict[str, str]:
        return {"level": self.level, "where": self.where, "text": self.text}


@dataclass(frozen=True, slots=True)
class Service:
    """One entry of a restriction or milter list: `check_policy_service inet:...` with its
    per-service settings (`{ inet:..., timeout=10s }`), or a plain restriction."""

    name: str  # the restriction (or, for a milter list, the address)
    address: str = ""  # for check_policy_service: its argument
    options: Mapping[str, str] = field(default_factory=dict)


def parse_postconf(text: str) -> dict[str, str]:
    """`name = value` lines (postconf -n / -x / -P output) as a dict; other lines ignored."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip():
            values[name.strip()] = value.strip()
    return values


def _tokens(value: str) -> list[str | list[str]]:
    """Postfix's list syntax: items separated by commas or white space; `{ a, b=c }` is one
    item whose parts are separated by commas (inside braces, spaces belong to values)."""
    items: list[str | list[str]] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in ", \t\r\n":
            i += 1
            continue
        if c == "{":
            end = value.find("}", i)
            inner = value[i + 1 : end if end >= 0 else n]
            items.append([part.strip() for part in inner.split(",") if part.strip()])
            i = end + 1 if end >= 0 else n
            continue
        j = i
        while j < n and value[j] not in ", \t\r\n{":
            j += 1
        items.append(value[i:j])
        i = j
    return items


def _service(parts: list[str]) -> tuple[str, dict[str, str]]:
    address = parts[0] if parts else ""
    options: dict[str, str] = {}
    for part in parts[1:]:
        name, _, value = part.partition("=")
        options[name.strip().lower()] = value.strip()
    return address, options


def restrictions(value: str) -> list[Service]:
    """A restriction list: `check_policy_service` with its address (and options)."""
    items = _tokens(value)
    out: list[Service] = []
    i = 0
    while i < len(items):
        item = items[i]
        if isinstance(item, list):  # a stray group: keep it visible as it is
            out.append(Service("{" + ", ".join(item) + "}"))
            i += 1
            continue
        name = item.lower()
        if name == "check_policy_service" and i + 1 < len(items):
            argument = items[i + 1]
            parts = argument if isinstance(argument, list) else [argument]
            address, options = _service(parts)
            out.append(Service(name, address, options))
            i += 2
            continue
        out.append(Service(name))
        i += 1
    return out


def milters(value: str) -> list[Service]:
    """smtpd_milters: addresses, each alone or `{ address, option=value, ... }`."""
    out = []
    for item in _tokens(value):
        parts = item if isinstance(item, list) else [item]
        address, options = _service(parts)
        if address:
            out.append(Service(address, address, options))
    return out


def duration(value: str, unit: str = "s") -> float | None:
    """A Postfix time value (`100s`, `5m`, `30`: `unit` when none is written), or None."""
    match = re.fullmatch(r"\s*(\d{1,9})\s*([smhdw]?)\s*", value or "")
    if match is None:
        return None
    return int(match.group(1)) * _UNITS[match.group(2) or unit]


def _permits(action: str) -> bool:
    """access(5) actions that accept at once (OK, PERMIT, a 2xx code): as a default action
    they skip every later restriction."""
    word = action.strip().split(" ", 1)[0] if action.strip() else ""
    return word.upper() in ("OK", "PERMIT") or (word.isdigit() and word.startswith("2"))


def check_policy(
    effective: Mapping[str, str],
    overrides: Mapping[str, Mapping[str, str]],
    *,
    answer_deadline: float,
    idle_timeout: float,
    ours: str = "",
    expect_policy: bool = True,
) -> list[Finding]:
    """Where the policy services sit and how Postfix will treat them. `effective` holds the
    main.cf values (defaults included), `overrides` master.cf's `-o` per service; our
    answers come within `answer_deadline`, our idle connections are closed after
    `idle_timeout`; `ours` is our address as main.cf names it; `expect_policy` False when a
    milter is configured (then a missing policy service is no finding)."""
    findings: list[Finding] = []
    contexts = [("main.cf", dict(effective))]
    for service, values in overrides.items():
        if any(name in values for name in RESTRICTION_LISTS):
            contexts.append((f"master.cf {service}", {**effective, **values}))
    seen = False
    for where, values in contexts:
        relay = restrictions(values.get("smtpd_relay_restrictions", ""))
        recipient = restrictions(values.get("smtpd_recipient_restrictions", ""))
        guarded = _guards(relay)
        control = [i for i in (*relay, *recipient) if i.name in RELAY_CONTROL]
        if not control:
            findings.append(
                Finding(
                    "error",
                    f"{where}: smtpd_relay_restrictions",
                    "neither list has reject_unauth_destination: anything may be relayed",
                )
            )
        for name in RESTRICTION_LISTS:
            for index, item in enumerate(restrictions(values.get(name, ""))):
                if item.name != "check_policy_service":
                    continue
                seen = True
                label = f"{where}: {name}: check_policy_service {item.address}"
                if ours and item.address == ours:
                    label += " (mailwarden)"
                findings += _placement(name, index, values, guarded, label)
                findings += _policy_options(item, values, label, answer_deadline, idle_timeout)
    if not seen and expect_policy:  # neither a policy service nor a milter: nothing asks us
        findings.append(
            Finding("warning", "main.cf", "no check_policy_service and no milter is configured")
        )
    return findings


def _guards(items: list[Service]) -> bool:
    """Whether the list refuses unauthorised relaying before any policy service is asked."""
    for item in items:
        if item.name in RELAY_CONTROL:
            return True
        if item.name == "check_policy_service":
            return False
    return False


def _placement(
    name: str, index: int, values: Mapping[str, str], guarded: bool, label: str
) -> list[Finding]:
    items = restrictions(values.get(name, ""))
    before = [i.name for i in items[:index]]
    control_before = any(n in RELAY_CONTROL for n in before)
    if name == "smtpd_relay_restrictions" and not control_before:
        text = (
            "placed before reject_unauth_destination: an answer such as OK (from this "
            "service, or anything answering on its address) permits relaying anywhere"
        )
        return [Finding("error", label, text)]
    if name == "smtpd_recipient_restrictions" and not control_before and not guarded:
        text = (
            "placed before reject_unauth_destination, and smtpd_relay_restrictions does not "
            "refuse unauthorised relaying first: an OK answer opens the relay"
        )
        return [Finding("error", label, text)]
    if name == "smtpd_recipient_restrictions" and not control_before:
        text = (
            "placed before reject_unauth_destination in this list: safe only while "
            "smtpd_relay_restrictions refuses unauthorised relaying first; move it after"
        )
        return [Finding("warning", label, text)]
    if name in ("smtpd_relay_restrictions", "smtpd_recipient_restrictions"):
        return [Finding("ok", label, "placed after reject_unauth_destination")]
    if name in ("smtpd_data_restrictions", "smtpd_end_of_data_restrictions"):
        return [Finding("ok", label, "asked once per message (rate limits)")]
    return [
        Finding(
            "warning",
            label,
            "asked outside the recipient restrictions: mailwarden's checks answer at RCPT "
            "(smtpd_recipient_restrictions, after reject_unauth_destination)",
        )
    ]


def _policy_options(
    item: Service,
    values: Mapping[str, str],
    label: str,
    answer_deadline: float,
    idle_timeout: float,
) -> list[Finding]:
    findings = []
    timeout_text = item.options.get("timeout") or values.get("smtpd_policy_service_timeout", "")
    timeout = duration(timeout_text or "100s")
    if timeout is not None and timeout < answer_deadline:
        findings.append(
            Finding(
                "warning",
                label,
                f"Postfix waits {timeout:g} s for an answer (timeout), but an answer may take "
                f"up to {answer_deadline:g} s ([deadlines] rcpt): raise timeout above it",
            )
        )
    idle_text = item.options.get("max_idle") or values.get("smtpd_policy_service_max_idle", "")
    idle = duration(idle_text or "300s")
    if idle is not None and idle >= idle_timeout:
        findings.append(
            Finding(
                "warning",
                label,
                f"Postfix keeps an idle connection {idle:g} s (max_idle), longer than ours "
                f"({idle_timeout:g} s): Postfix may write to a connection we closed",
            )
        )
    default = item.options.get("default_action") or values.get(
        "smtpd_policy_service_default_action", "451 4.3.5 Server configuration problem"
    )
    if _permits(default):
        findings.append(
            Finding(
                "error",
                label,
                f"default_action {default!r} accepts every recipient while the service is "
                "down, skipping the restrictions after it: use DUNNO or 451 4.3.5",
            )
        )
    return findings


def check_milters(
    effective: Mapping[str, str], explicit: Mapping[str, str], *, command: float, content: float
) -> list[Finding]:
    """The milter settings: protocol 6, a safe default action, timeouts above our answer
    times (`command`: connect/HELO/MAIL/RCPT deadlines; `content`: the end-of-data one)."""
    findings: list[Finding] = []
    if "milter_protocol" not in explicit:
        findings.append(
            Finding(
                "warning",
                "milter_protocol",
                "not set: write milter_protocol = 6 (mailwarden speaks version 6)",
            )
        )
    protocol = effective.get("milter_protocol", "6")
    if not protocol.isdigit() or int(protocol) < 6:
        findings.append(
            Finding("error", "milter_protocol", f"{protocol!r}: mailwarden needs version 6")
        )
    for where, service in [
        ("smtpd_milters", m) for m in milters(effective.get("smtpd_milters", ""))
    ]:
        label = f"{where}: {service.address}"
        action = service.options.get("default_action") or effective.get(
            "milter_default_action", "tempfail"
        )
        findings += _default_action(label, action)
        for key, ours, default in (
            ("connect_timeout", command, "30s"),
            ("command_timeout", command, "30s"),
            ("content_timeout", content, "300s"),
        ):
            text = service.options.get(key) or effective.get(f"milter_{key}", default)
            seconds = duration(text)
            if seconds is not None and seconds < ours:
                findings.append(
                    Finding(
                        "warning",
                        label,
                        f"{key} {text}: our answer may take up to {ours:g} s ([deadlines], "
                        "[milter]); Postfix would give up first and apply the default action",
                    )
                )
    return findings


def _default_action(label: str, action: str) -> list[Finding]:
    word = action.strip().lower()
    if word == "accept":
        return [
            Finding(
                "warning",
                label,
                "default_action accept: while the milter is down, mail passes unchecked",
            )
        ]
    if word == "reject":
        return [
            Finding(
                "error",
                label,
                "default_action reject: while the milter is down, every message is refused "
                "for good (use tempfail: senders retry)",
            )
        ]
    if word in ("tempfail", "shutdown", "quarantine"):
        return [Finding("ok", label, f"default_action {word}")]
    return [Finding("error", label, f"default_action {action!r} is not one Postfix knows")]


def services(overrides_text: str) -> dict[str, dict[str, str]]:
    """postconf -P output (`service/type/name = value`) by service."""
    by_service: dict[str, dict[str, str]] = {}
    for key, value in parse_postconf(overrides_text).items():
        service, _, name = key.rpartition("/")
        if service:
            by_service.setdefault(service, {})[name] = value
    return by_service


def check_gateway(master: str, relay_to: tuple[str, int]) -> list[Finding]:
    """`mailwarden serve` relays to `relay_to`: an smtpd must listen there (postconf -M
    output: `service type private unpriv chroot wakeup maxproc command ...`)."""
    host, port = relay_to
    where = f"master.cf: {host}:{port}"
    for line in master.splitlines():
        fields = line.split()
        if len(fields) < 8 or fields[1] != "inet":
            continue
        service = fields[0]
        listen_host, _, listen_port = service.rpartition(":")
        number = {"smtp": "25", "submission": "587", "smtps": "465"}.get(listen_port, listen_port)
        if number != str(port) or listen_host.strip("[]") not in ("", host, "0.0.0.0", "::"):
            continue
        if fields[7] != "smtpd":
            return [Finding("error", where, f"{service} runs {fields[7]}, not smtpd")]
        return [Finding("ok", where, f"{service} inet smtpd takes what mailwarden serve relays")]
    text = "mailwarden serve relays here ([gateway] relay_to) but no smtpd listens there"
    return [Finding("error", where, text)]
