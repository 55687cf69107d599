"""Explain an SPF policy to a person: each term in plain words, the include tree with its DNS
lookup count (also past the limit of 10, which evaluation stops at), and what is risky."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mailwarden.dns import DNSError, NoData, NXDomain, RdType, Resolver, TemporaryFailure

from .interpreter import SPFLimits
from .record import (
    DNS_MECHANISMS,
    Mechanism,
    MechanismKind,
    Qualifier,
    Record,
    SPFSyntaxError,
    is_spf_record,
    parse_record,
)

_QUALIFIER_WORD = {
    Qualifier.PASS: "pass",
    Qualifier.FAIL: "fail",
    Qualifier.SOFTFAIL: "softfail",
    Qualifier.NEUTRAL: "neutral",
}


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class NodeError(StrEnum):
    """Why a record of the tree could not be read or followed (beside the words in `error`)."""

    NOT_FETCHED = "not-fetched"  # no resolver: nothing was looked up
    DNS_ERROR = "dns-error"  # timeout or SERVFAIL: a check would give temperror (RFC 7208 §4.4)
    NO_DOMAIN = "no-domain"  # NXDOMAIN: none at the top, permerror when included (§5.2)
    NO_RECORD = "no-record"  # no v=spf1 record: the same
    MULTIPLE_RECORDS = "multiple-records"  # permerror (§4.5)
    SYNTAX_ERROR = "syntax-error"  # permerror (§4.6)
    MACROS = "macros"  # the target depends on the sender: not followed (§7)
    LOOP = "loop"  # already included above: a loop


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    message: str


@dataclass(frozen=True, slots=True)
class TermInfo:
    term: str
    kind: str  # mechanism name or "modifier"
    result: str | None  # what a match yields (mechanisms only)
    description: str
    dns_lookups: int  # lookups this term itself costs (RFC 7208 §4.6.4)


@dataclass(slots=True)
class PolicyNode:
    """One record in the include/redirect tree."""

    domain: str
    via: str  # "" for the root, else the term that led here
    record: str | None = None
    error: str | None = None
    error_code: NodeError | None = None  # set with `error`
    terms: list[TermInfo] = field(default_factory=list)
    children: list[PolicyNode] = field(default_factory=list)
    own_lookups: int = 0
    void_lookups: int = 0

    def fail(self, code: NodeError, error: str) -> None:
        self.error_code, self.error = code, error

    @property
    def total_lookups(self) -> int:
        return self.own_lookups + sum(child.total_lookups for child in self.children)

    @property
    def total_void_lookups(self) -> int:
        return self.void_lookups + sum(child.total_void_lookups for child in self.children)

    def to_dict(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "via": self.via or None,
            "record": self.record,
            "error": self.error,
            "error_code": self.error_code.value if self.error_code else None,
            "dns_lookups": self.own_lookups,
            "total_dns_lookups": self.total_lookups,
            "void_lookups": self.void_lookups,
            "terms": [_term_dict(t) for t in self.terms],
            "children": [child.to_dict() for child in self.children],
        }


def _term_dict(term: TermInfo) -> dict[str, object]:
    return {
        "term": term.term,
        "kind": term.kind,
        "result": term.result,
        "description": term.description,
        "dns_lookups": term.dns_lookups,
    }


@dataclass(slots=True)
class Explanation:
    """The whole explanation of one policy."""

    root: PolicyNode
    findings: list[Finding]

    @property
    def dns_lookups(self) -> int:
        return self.root.total_lookups

    @property
    def void_lookups(self) -> int:
        return self.root.total_void_lookups

    def to_dict(self) -> dict[str, object]:
        return {
            "domain": self.root.domain or None,
            "record": self.root.record,
            "terms": [_term_dict(t) for t in self.root.terms],
            "dns_lookups": self.dns_lookups,
            "void_lookups": self.void_lookups,
            "tree": self.root.to_dict(),
            "warnings": [
                {"severity": f.severity.value, "message": f.message} for f in self.findings
            ],
        }


def describe_term(mechanism: Mechanism, domain: str) -> str:
    """What a mechanism allows, in plain words."""
    target = mechanism.domain.text if mechanism.domain is not None else (domain or "the domain")
    kind = mechanism.kind
    cidr = ""
    if kind in (MechanismKind.A, MechanismKind.MX) and (
        mechanism.cidr4 != 32 or mechanism.cidr6 != 128
    ):
        cidr = f" (widened to /{mechanism.cidr4} for IPv4, /{mechanism.cidr6} for IPv6)"
    if kind is MechanismKind.ALL:
        return "every sender not matched before"
    if kind is MechanismKind.IP4 or kind is MechanismKind.IP6:
        assert mechanism.network is not None
        size = mechanism.network.num_addresses
        return f"addresses in {mechanism.network} ({_count(size)})"
    if kind is MechanismKind.A:
        return f"the addresses {target} resolves to{cidr}"
    if kind is MechanismKind.MX:
        return f"the addresses of the mail exchangers (MX) of {target}{cidr}"
    if kind is MechanismKind.INCLUDE:
        return f"senders that {target}'s own SPF policy passes"
    if kind is MechanismKind.PTR:
        return (
            f"clients whose verified reverse DNS name is {target} or below it "
            "(slow and discouraged, RFC 7208 §5.5)"
        )
    return f"any client when the name {target} (after macro expansion) has an A record"


def _count(size: int) -> str:
    return "1 address" if size == 1 else f"{size:,} addresses"


def _describe_modifier(name: str, value: str, record: Record) -> str:
    if name == "redirect":
        if record.has_all:
            return f"ignored: the record has an 'all' mechanism (would use {value}'s policy)"
        return f"when nothing matched, {value}'s policy decides instead"
    if name == "exp":
        return f"on fail, the explanation text is fetched from the TXT record of {value}"
    return "unknown modifier, ignored (RFC 7208 §6)"


def explain_record(record: Record, domain: str = "") -> list[TermInfo]:
    """Each term of a record in plain words, with its own DNS lookup cost."""
    terms = [
        TermInfo(
            term=m.text,
            kind=m.kind.value,
            result=_QUALIFIER_WORD[m.qualifier],
            description=describe_term(m, domain),
            dns_lookups=1 if m.kind in DNS_MECHANISMS else 0,
        )
        for m in record.mechanisms
    ]
    for modifier in record.modifiers:
        counts = modifier.name == "redirect" and not record.has_all
        terms.append(
            TermInfo(
                term=modifier.text,
                kind="modifier",
                result=None,
                description=_describe_modifier(modifier.name, modifier.value.text, record),
                dns_lookups=1 if counts else 0,
            )
        )
    return terms


async def fetch_spf_records(resolver: Resolver, domain: str) -> list[str]:
    """The v=spf1 TXT records of a domain (DNSError when the lookup fails)."""
    answer = await resolver.resolve(domain, RdType.TXT)
    return [
        txt.joined.decode("ascii", "replace") for txt in answer.txt() if is_spf_record(txt.joined)
    ]


class _Explainer:
    def __init__(self, resolver: Resolver | None, limits: SPFLimits) -> None:
        self.resolver = resolver
        self.limits = limits
        self.findings: list[Finding] = []
        self.seen: set[str] = set()

    def add(self, severity: Severity, message: str) -> None:
        self.findings.append(Finding(severity, message))

    async def node_for_domain(self, domain: str, via: str, depth: int) -> PolicyNode:
        node = PolicyNode(domain=domain, via=via)
        if self.resolver is None:
            node.fail(NodeError.NOT_FETCHED, "not fetched (no DNS)")
            return node
        try:
            records = await fetch_spf_records(self.resolver, domain)
        except TemporaryFailure as exc:
            node.fail(NodeError.DNS_ERROR, f"DNS timeout or failure: {exc.detail or exc.kind}")
            self.add(
                Severity.ERROR,
                f"{domain}: DNS lookup failed ({exc.detail or exc.kind}): temperror",
            )
            return node
        except (NXDomain, NoData) as exc:
            records = []
            if isinstance(exc, NXDomain):
                node.fail(NodeError.NO_DOMAIN, "domain does not exist")
        if not records:
            if node.error is None:
                node.fail(NodeError.NO_RECORD, "no SPF record")
            if via:
                self.add(
                    Severity.ERROR, f"{via} points to {domain}, which has no SPF record: permerror"
                )
            return node
        if len(records) > 1:
            node.fail(
                NodeError.MULTIPLE_RECORDS, f"{len(records)} SPF records (RFC 7208 §4.5: permerror)"
            )
            self.add(Severity.ERROR, f"{domain} publishes {len(records)} SPF records: permerror")
            node.record = records[0]
            return node
        node.record = records[0]
        await self.fill(node, records[0], depth)
        return node

    async def fill(self, node: PolicyNode, text: str, depth: int) -> None:
        where = node.domain or "the record"
        try:
            record = parse_record(text)
        except SPFSyntaxError as exc:
            node.fail(NodeError.SYNTAX_ERROR, f"syntax error: {exc}")
            self.add(Severity.ERROR, f"{where}: syntax error, every check gives permerror: {exc}")
            return
        node.terms = explain_record(record, node.domain)
        node.own_lookups = sum(t.dns_lookups for t in node.terms)
        self.check_terms(record, where, is_root=not node.via)
        if node.domain:
            self.seen.add(node.domain)
        for mechanism in record.mechanisms:
            await self.follow_mechanism(node, mechanism, depth)
        if record.redirect is not None and not record.has_all:
            await self.follow(node, record.redirect.text, f"redirect={record.redirect.text}", depth)

    def check_terms(self, record: Record, where: str, *, is_root: bool) -> None:
        for mechanism in record.mechanisms:
            if mechanism.kind is MechanismKind.PTR:
                self.add(
                    Severity.WARNING,
                    f"{where}: '{mechanism.text}' uses ptr, which RFC 7208 §5.5 says not to use",
                )
            if mechanism.kind is MechanismKind.ALL and mechanism.qualifier is Qualifier.PASS:
                self.add(
                    Severity.ERROR,
                    f"{where}: '{mechanism.text}' lets every host on the Internet pass",
                )
            network = mechanism.network
            too_wide = network is not None and network.prefixlen < (
                16 if network.version == 4 else 32
            )
            if network is not None and too_wide and mechanism.qualifier is Qualifier.PASS:
                self.add(
                    Severity.WARNING,
                    f"{where}: '{mechanism.text}' authorizes {_count(network.num_addresses)}",
                )
        if is_root:
            last_all = next((m for m in record.mechanisms if m.kind is MechanismKind.ALL), None)
            if last_all is None and record.redirect is None:
                self.add(
                    Severity.WARNING,
                    f"{where}: no 'all' mechanism or redirect: unmatched senders get neutral",
                )
            elif last_all is not None and last_all.qualifier is Qualifier.NEUTRAL:
                self.add(
                    Severity.WARNING,
                    f"{where}: '?all' gives unmatched senders neutral, no protection",
                )
            if record.redirect is not None and record.has_all:
                self.add(
                    Severity.INFO, f"{where}: redirect= is ignored because the record has 'all'"
                )

    async def follow_mechanism(self, node: PolicyNode, mechanism: Mechanism, depth: int) -> None:
        if mechanism.kind is MechanismKind.INCLUDE and mechanism.domain is not None:
            await self.follow(node, mechanism.domain.text, mechanism.text, depth)
            return
        if self.resolver is None or mechanism.kind not in (
            MechanismKind.A,
            MechanismKind.MX,
            MechanismKind.EXISTS,
        ):
            return
        target = mechanism.domain.text if mechanism.domain is not None else node.domain
        if not target or (mechanism.domain is not None and not mechanism.domain.is_literal):
            return  # depends on the sender (macros): nothing to resolve ahead of time
        rdtype = RdType.MX if mechanism.kind is MechanismKind.MX else RdType.A
        try:
            answer = await self.resolver.resolve(target, rdtype)
        except (NXDomain, NoData):
            if mechanism.kind is MechanismKind.A:
                try:  # an IPv6-only host is not void for IPv6 clients
                    await self.resolver.resolve(target, RdType.AAAA)
                    return
                except DNSError:
                    pass
            node.void_lookups += 1
            self.add(
                Severity.WARNING,
                f"'{mechanism.text}' in {node.domain or 'the record'}: "
                f"{target} has no {rdtype} records (a void lookup)",
            )
            return
        except TemporaryFailure as exc:
            self.add(
                Severity.WARNING,
                f"'{mechanism.text}': DNS lookup of {target} failed ({exc.detail or exc.kind})",
            )
            return
        if rdtype is RdType.MX and len(answer.mx()) > self.limits.mx_names:
            self.add(
                Severity.ERROR,
                f"'{mechanism.text}': {target} has {len(answer.mx())} MX records, "
                f"more than {self.limits.mx_names}: permerror",
            )

    async def follow(self, node: PolicyNode, target: str, via: str, depth: int) -> None:
        if "%" in target:
            node.children.append(
                PolicyNode(
                    domain=target,
                    via=via,
                    error="depends on the sender (macros)",
                    error_code=NodeError.MACROS,
                )
            )
            return
        target = target.rstrip(".").lower()
        if target in self.seen or depth >= 12:
            node.children.append(
                PolicyNode(
                    domain=target,
                    via=via,
                    error="loop: already included above",
                    error_code=NodeError.LOOP,
                )
            )
            self.add(Severity.ERROR, f"{via}: include loop through {target}")
            return
        child = await self.node_for_domain(target, via, depth + 1)
        node.children.append(child)


async def explain_policy(
    resolver: Resolver | None,
    *,
    domain: str = "",
    record: str | None = None,
    limits: SPFLimits | None = None,
) -> Explanation:
    """Explain `record` (given as text) or the policy published at `domain`.

    With a resolver, includes and redirects are fetched to build the tree and count lookups.
    """
    limits = limits or SPFLimits()
    explainer = _Explainer(resolver, limits)
    if record is not None:
        root = PolicyNode(domain=domain, via="", record=record)
        await explainer.fill(root, record, 0)
    else:
        root = await explainer.node_for_domain(domain, "", 0)
        if root.error and root.record is None:
            explainer.add(Severity.ERROR, f"{domain}: {root.error}")
    total = root.total_lookups
    if total > limits.dns_mechanisms:
        explainer.add(
            Severity.ERROR,
            f"{total} DNS-querying terms in all: more than {limits.dns_mechanisms}, "
            "so evaluation stops with permerror (RFC 7208 §4.6.4)",
        )
    if root.total_void_lookups > limits.void_lookups:
        explainer.add(
            Severity.ERROR,
            f"{root.total_void_lookups} void lookups: over {limits.void_lookups} is a permerror",
        )
    return Explanation(root, explainer.findings)
