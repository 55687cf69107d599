"""Evaluations to record, built the way the pipeline builds them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mailwarden.reports import Disposition, DKIMAuth, Evaluation, MessageKind

DAY = 86400
T0 = 1_700_006_400  # a UTC midnight (2023-11-15)
RECORD = "v=DMARC1; p=reject; rua=mailto:dmarc@a.example; adkim=r; fo=1"


def evaluation(**changes: Any) -> Evaluation:
    """A DMARC-passing message from a.example, signed and SPF-aligned."""
    base = Evaluation(
        time=T0 + 3600,
        source_ip="192.0.2.10",
        header_from="a.example",
        envelope_from="a.example",
        envelope_to="example.net",
        policy_domain="a.example",
        record=RECORD,
        discovery="treewalk",
        result="pass",
        dkim_aligned=True,
        spf_aligned=True,
        policy="reject",
        disposition=Disposition.PASS,
        spf_domain="a.example",
        spf_result="pass",
        dkim=(DKIMAuth("a.example", "sel", "pass"),),
        kind=MessageKind.MESSAGE,
        action="accept",
        org_domain="a.example",
    )
    return replace(base, **changes)


def spoof(**changes: Any) -> Evaluation:
    """A message claiming a.example from elsewhere: nothing passes, rejected."""
    fields: dict[str, Any] = {
        "source_ip": "203.0.113.66",
        "envelope_from": "spam.example",
        "result": "fail",
        "dkim_aligned": False,
        "spf_aligned": False,
        "disposition": Disposition.REJECT,
        "spf_domain": "spam.example",
        "spf_result": "softfail",
        "dkim": (),
        "action": "reject",
    }
    fields.update(changes)
    return evaluation(**fields)
