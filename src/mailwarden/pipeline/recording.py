"""The verdict of one received message as an `Evaluation` for the report store.

The stage objects call `record()` at the end of the data, once the decision is final, so every
front end built on them (the gateway, the milter) records without code of its own. A deferred
message (4xx) is not recorded: it will come again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from mailwarden.dmarc import DMARCPolicy, DMARCStatus
from mailwarden.policy import Action
from mailwarden.reports import (
    MAX_DKIM_RESULTS,
    Disposition,
    DKIMAuth,
    Evaluation,
    Recorder,
    message_kind,
)
from mailwarden.reports.failure import MAX_BODY
from mailwarden.reports.kind import head
from mailwarden.spf import split_sender

from .results import MessageDecision, MessageVerdict

__all__ = ["evaluation_of", "record"]

_ENFORCING = (DMARCPolicy.QUARANTINE, DMARCPolicy.REJECT)
_REFUSING = (Action.REJECT, Action.SOFT_REJECT)


def _disposition(verdict: MessageVerdict) -> tuple[Disposition, str]:
    """RFC 9990 ActionDispositionType and the override reason, from what we did."""
    dmarc, action = verdict.dmarc, verdict.policy.action
    if dmarc.result is DMARCStatus.PASS:
        enforcing = dmarc.requested_policy in _ENFORCING
        return (Disposition.PASS if enforcing else Disposition.NONE), ""
    if dmarc.result is not DMARCStatus.FAIL:
        return Disposition.NONE, ""
    if action in _REFUSING:
        done = Disposition.REJECT
    elif action is Action.ADD_HEADER:
        done = Disposition.QUARANTINE
    else:
        done = Disposition.NONE
    override = dmarc.override_reason.value if dmarc.override_reason else ""
    if not override and dmarc.policy is not None and done.value != dmarc.policy.value:
        override = "local_policy"  # RFC 9990 §2.1: a disposition other than the policy
    return done, override


def evaluation_of(
    decision: MessageDecision,
    *,
    ip: str,
    mail_from: str,
    rcpts: Sequence[str],
    now: float,
) -> Evaluation | None:
    """The evaluation to record, or None when there is nothing DMARC-related to keep: no
    author domain, or no DMARC record found for it (RFC 9990 §2: a report goes to the domain
    whose record asked for it; nothing reads a row without one, so it is not written)."""
    verdict, parsed = decision.verdict, decision.message
    if verdict is None or parsed is None or not verdict.dmarc.domain:
        return None
    if not verdict.dmarc.policy_domain:
        return None
    dmarc = verdict.dmarc
    disposition, override = _disposition(verdict)
    envelope_from = split_sender(mail_from, "")[1] if mail_from.strip("<> ") else ""
    spf = verdict.spf if envelope_from else verdict.spf_helo
    dkim = tuple(
        DKIMAuth(
            d.domain,
            d.selector,
            d.result.value,
            "" if d.result.value == "pass" else d.reason_code.value,
        )
        for d in verdict.dkim
        if d.domain
    )[:MAX_DKIM_RESULTS]
    action = verdict.policy.action
    refused = action in (*_REFUSING, Action.ADD_HEADER)
    return Evaluation(
        time=now,
        source_ip=ip,
        header_from=dmarc.domain,
        envelope_from=envelope_from.lower(),
        envelope_to=rcpts[0].rpartition("@")[2].strip("<> ").lower() if rcpts else "",
        policy_domain=dmarc.policy_domain or "",
        record=dmarc.record.raw if dmarc.record is not None else "",
        discovery=dmarc.discovery_method.value,
        result=dmarc.result.value,
        dkim_aligned=bool(dmarc.dkim_aligned),
        spf_aligned=bool(dmarc.spf_aligned),
        policy=dmarc.policy.value if dmarc.policy is not None else "",
        disposition=disposition,
        override=override,
        override_comment=dmarc.override_comment[:200],
        spf_domain=spf.domain,
        spf_result=spf.result.value,
        spf_scope="mfrom" if envelope_from else "helo",
        dkim=dkim,
        kind=message_kind(mail_from, parsed.message),
        action=action.value,
        spam=refused and dmarc.result is not DMARCStatus.FAIL,
        org_domain=dmarc.organizational_domain or "",
    )


def record(
    recorder: Recorder,
    decision: MessageDecision,
    *,
    ip: str,
    mail_from: str,
    rcpts: Sequence[str],
    now: float | None = None,
) -> None:
    """Hand the final decision to the recorder (a 4xx reply is not final)."""
    if decision.reply is not None and 400 <= decision.reply.code < 500:
        return
    evaluation = evaluation_of(
        decision, ip=ip, mail_from=mail_from, rcpts=rcpts, now=time.time() if now is None else now
    )
    if evaluation is None:
        return
    message = decision.message.message if decision.message is not None else None
    if message is not None and recorder.wants_headers(evaluation):
        headers = b"".join(field.raw for field in message.fields)
        body = head(message.body, MAX_BODY)
        recorder.record(evaluation, headers, body, mail_from=mail_from.strip("<>"))
    else:
        recorder.record(evaluation)
