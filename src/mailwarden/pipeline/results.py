"""What the pipeline hands to front ends: facts by stage, the verdict, and the decision."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailwarden.arc import ARCResult
from mailwarden.authres import AuthenticationResults
from mailwarden.dkim import DKIMResult
from mailwarden.dmarc import DMARCResult
from mailwarden.dnsbl import DNSListReport
from mailwarden.helo import HeloResult
from mailwarden.iprev import IprevResult
from mailwarden.policy import Verdict
from mailwarden.reply import SMTPReply
from mailwarden.spf import SPFResult
from mailwarden.symbols import Symbol

from .parsed import ParsedMessage

__all__ = ["ConnectionFacts", "HeloFacts", "MessageDecision", "MessageVerdict"]


@dataclass(frozen=True, slots=True)
class ConnectionFacts:
    """What is known at connect: iprev and the address DNS lists."""

    iprev: IprevResult | None
    dnsbl: DNSListReport | None
    timed_out: bool = False  # the stage ran out of time: neither check counts


@dataclass(frozen=True, slots=True)
class HeloFacts:
    """What is known at HELO: SPF for the HELO identity and the HELO checks."""

    spf: SPFResult
    helo: HeloResult | None
    timed_out: bool = False  # the stage ran out of time: SPF for HELO is temperror


@dataclass(frozen=True, slots=True)
class MessageVerdict:
    """Everything found about one message, and what the policy decided."""

    spf: SPFResult
    spf_helo: SPFResult
    dkim: tuple[DKIMResult, ...]
    dmarc: DMARCResult
    arc: ARCResult | None
    iprev: IprevResult | None
    helo: HeloResult | None
    dnsbl: DNSListReport | None
    rhsbl: dict[str, DNSListReport]
    policy: Verdict
    authentication_results: AuthenticationResults  # our field, unfolded by nature
    symbols: tuple[Symbol, ...]
    elapsed: float  # seconds from the start of the checks to the verdict
    timed_out: tuple[str, ...] = ()  # the stages or checks that ran out of time


@dataclass(slots=True)
class MessageDecision:
    """What a front end does with a message at the end of its data.

    `reply` None delivers it (the downstream's answer is the client's; a 2xx reply from the
    pipeline is a discard). `message` is the one parse the checks read, from which the front
    end writes what it relays. `add_headers` are (name, unfolded value) pairs to add above the
    message, in order; the front end folds them. `remove_fields` are the indices, in
    `message`'s fields, of forged fields to drop (their names go to `log`). `redirect_to`
    replaces the recipients (quarantine). `log` goes into the transaction's log line.
    """

    verdict: MessageVerdict | None = None
    message: ParsedMessage | None = None
    reply: SMTPReply | None = None
    add_headers: list[tuple[str, str]] = field(default_factory=list)
    remove_fields: tuple[int, ...] = ()
    redirect_to: list[str] | None = None
    log: dict[str, object] = field(default_factory=dict)
