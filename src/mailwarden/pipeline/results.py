"""What the pipeline hands to front ends: facts by stage, the verdict, and the decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailwarden.arc import ARCResult
from mailwarden.authres import AuthenticationResults
from mailwarden.dkim import DKIMResult
from mailwarden.dmarc import DMARCResult
from mailwarden.dnsbl import DNSListReport
from mailwarden.frozen import quick_init
from mailwarden.helo import HeloResult
from mailwarden.iprev import IprevResult
from mailwarden.message import fold_field
from mailwarden.policy import Verdict
from mailwarden.reply import SMTPReply
from mailwarden.spf import SPFResult
from mailwarden.symbols import Symbol

from .parsed import ParsedMessage
from .views import helo_dict, iprev_dict

__all__ = ["ConnectionFacts", "HeloFacts", "MessageDecision", "MessageVerdict"]


@quick_init
@dataclass(frozen=True, slots=True)
class ConnectionFacts:
    """What is known at connect: iprev and the address DNS lists."""

    iprev: IprevResult | None
    dnsbl: DNSListReport | None
    timed_out: bool = False  # the stage ran out of time: neither check counts


@quick_init
@dataclass(frozen=True, slots=True)
class HeloFacts:
    """What is known at HELO: SPF for the HELO identity and the HELO checks."""

    spf: SPFResult
    helo: HeloResult | None
    timed_out: bool = False  # the stage ran out of time: SPF for HELO is temperror


@quick_init
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

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this verdict (`mailwarden check --json`; the keys are a
        contract: add, never rename). The Authentication-Results field is given folded, as
        the gateway writes it; symbols carry the scores the policy counted."""
        receiver = self.authentication_results.authserv_id
        spf = self.spf.to_dict(receiver)
        helo_spf = self.spf_helo.to_dict(receiver)
        del helo_spf["identity"]
        spf["helo"] = helo_spf
        counted = {s.name: s.score for s in self.policy.symbols}

        def score(symbol: Symbol) -> float:
            return counted.get(symbol.name, symbol.score)

        return {
            "spf": spf,
            "dkim": [r.to_dict() for r in self.dkim],
            "dmarc": self.dmarc.to_dict(),
            "arc": dict(_NO_ARC) if self.arc is None else self.arc.to_dict(),
            "authentication_results": fold_field(
                "Authentication-Results", self.authentication_results.format_value()
            ),
            "iprev": None if self.iprev is None else iprev_dict(self.iprev, score),
            "helo": None
            if self.helo is None
            else helo_dict(self.helo, score, self.policy.hard_rejects),
            "dnsbl": {
                "ip": [] if self.dnsbl is None else [r.to_dict() for r in self.dnsbl.results],
                "domains": {
                    key: [r.to_dict() for r in report.results] for key, report in self.rhsbl.items()
                },
            },
            "policy": self.policy.to_dict(),
        }


# ARC is not checked when the header section cannot be read at all.
_NO_ARC = {"result": "none", "oldest_pass": None, "reason": "ARC not checked", "sets": 0}


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
