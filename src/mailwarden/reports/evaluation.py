"""One recorded DMARC evaluation: what an aggregate report row is made of (RFC 9990 §2.1).

Front ends never build these: the pipeline turns its verdict into an `Evaluation` at the end
of the data and hands it to the `Recorder`. Everything is plain text and numbers, so every
store keeps it the same way and a report built from it needs nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from mailwarden.dmarc import DMARCRecord, RecordError, parse_record

__all__ = ["MAX_DKIM_RESULTS", "DKIMAuth", "Disposition", "Evaluation", "MessageKind"]

MAX_DKIM_RESULTS = 100  # RFC 9990 §2.1: at most 100 DKIM results in one row


class MessageKind(StrEnum):
    """What the message was, for the reports we must not build from it (loops)."""

    MESSAGE = "message"
    BOUNCE = "bounce"  # a null reverse path or a delivery status notification
    REPORT = "report"  # a DMARC aggregate or failure report, or another feedback report


class Disposition(StrEnum):
    """RFC 9990 ActionDispositionType: what was done with the message."""

    NONE = "none"
    PASS = "pass"  # passed DMARC under an enforcing policy
    QUARANTINE = "quarantine"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class DKIMAuth:
    """One DKIM signature's result as a report shows it (RFC 9990 DKIMAuthResultType)."""

    domain: str
    selector: str
    result: str
    human_result: str = ""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One message's DMARC evaluation, as the gateway decided it."""

    time: float
    source_ip: str
    header_from: str  # the Author Domain
    envelope_from: str  # the MAIL FROM domain ("" for a null reverse path)
    envelope_to: str  # the first recipient's domain
    policy_domain: str  # where the DMARC record was found ("" when none)
    record: str  # that record's text
    discovery: str  # "treewalk" or "psl"
    result: str  # pass, fail, none, temperror, permerror
    dkim_aligned: bool
    spf_aligned: bool
    policy: str  # the policy applied (p, sp or np after t=y/pct): none/quarantine/reject/""
    disposition: Disposition
    override: str = ""  # RFC 9990 PolicyOverrideType, when the disposition is not the policy
    override_comment: str = ""
    spf_domain: str = ""
    spf_result: str = "none"
    spf_scope: str = "mfrom"  # "helo" when the MAIL FROM was null and HELO was checked
    dkim: tuple[DKIMAuth, ...] = ()
    kind: MessageKind = MessageKind.MESSAGE
    action: str = "accept"  # our policy's action
    spam: bool = False  # our policy refused or quarantined it for what it is, not for DMARC
    org_domain: str = ""  # the Author Domain's Organizational Domain

    @property
    def parsed_record(self) -> DMARCRecord | None:
        if not self.record:
            return None
        try:
            return parse_record(self.record)
        except RecordError:
            return None

    @property
    def passed(self) -> bool:
        return self.result == "pass"

    def dkim_json(self) -> str:
        return json.dumps([[d.domain, d.selector, d.result, d.human_result] for d in self.dkim])

    @staticmethod
    def dkim_from_json(text: str) -> tuple[DKIMAuth, ...]:
        try:
            items = json.loads(text or "[]")
        except ValueError:
            return ()
        return tuple(DKIMAuth(*map(str, item[:4])) for item in items if isinstance(item, list))
