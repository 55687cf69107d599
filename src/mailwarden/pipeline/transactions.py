"""Each transaction the stage objects answered, as a `TransactionRecord` for the dashboard.

`TransactionChecks` calls these at the end of the data (every decision, deferrals included)
and when a recipient is refused at RCPT, so every front end built on the stages (gateway,
milter) records without code of its own. The recorder only queues: the SMTP answer never
waits for the store.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from mailwarden.message import Message
from mailwarden.reply import SMTPReply
from mailwarden.transactions import Check, TransactionRecord

from .results import MessageDecision, MessageVerdict

__all__ = ["checks_of", "new_queue_id", "refused_at_rcpt", "transaction_of"]


def new_queue_id() -> str:
    """An id for a transaction whose front end gave none (12 hex digits, as the gateway's)."""
    return secrets.token_hex(6).upper()


def _field(message: Message | None, name: str) -> str:
    field = message.get(name) if message is not None else None
    if field is None:
        return ""
    return field.unfolded().decode("utf-8", "replace")


def checks_of(verdict: MessageVerdict) -> tuple[Check, ...]:
    """Every check's result and reason, in the order they ran."""
    checks: list[Check] = []
    if verdict.iprev is not None:
        iprev = verdict.iprev
        checks.append(Check("iprev", iprev.result.value, iprev.reason or (iprev.name or "")))
    if verdict.helo is not None:
        findings = "; ".join(f"{f.code.value}: {f.detail}" for f in verdict.helo.findings)
        checks.append(Check("helo", "findings" if findings else "ok", findings))
    spf, helo = verdict.spf, verdict.spf_helo
    checks.append(Check("spf", spf.result.value, spf.reason))
    checks.append(Check("spf_helo", helo.result.value, helo.reason))
    for dkim in verdict.dkim:
        checks.append(Check(f"dkim:{dkim.domain or '-'}", dkim.result.value, dkim.reason))
    if not verdict.dkim:
        checks.append(Check("dkim", "none", "no DKIM-Signature"))
    if verdict.arc is not None:
        checks.append(Check("arc", verdict.arc.result.value, verdict.arc.reason))
    dmarc = verdict.dmarc
    checks.append(Check("dmarc", dmarc.result.value, dmarc.reason))
    reports = [verdict.dnsbl, *verdict.rhsbl.values()]
    for report in reports:
        if report is None:
            continue
        for listed in report.results:
            checks.append(
                Check(
                    f"dnsbl:{listed.list}:{report.subject}",
                    listed.status.value,
                    listed.reason or listed.reason_code.value,
                )
            )
    policy = verdict.policy
    checks.append(Check("policy", policy.action.value, "; ".join(policy.reasons)))
    return tuple(checks)


def transaction_of(
    decision: MessageDecision,
    *,
    queue_id: str,
    ip: str,
    helo: str,
    mail_from: str,
    now: float,
) -> TransactionRecord | None:
    """The record of a transaction answered at the end of its data."""
    verdict, parsed = decision.verdict, decision.message
    if verdict is None:
        return None
    message = parsed.message if parsed is not None else None
    reply = decision.reply
    greylist = decision.log.get("greylist")
    return TransactionRecord(
        time=now,
        queue_id=queue_id or new_queue_id(),
        message_id=_field(message, "message-id"),
        client_ip=ip,
        helo=helo,
        mail_from=mail_from.strip("<>"),
        sender_domain=verdict.dmarc.domain or (parsed.authors.domain if parsed else ""),
        subject=_field(message, "subject"),
        action=verdict.policy.action.value,
        stage="data",
        reply_code=reply.code if reply is not None else 0,
        reply=str(reply) if reply is not None else "",
        dmarc=verdict.dmarc.result.value,
        greylist=greylist if isinstance(greylist, str) else "",
        timed_out=verdict.timed_out,
        symbols=tuple(s.name for s in verdict.symbols),
        checks=checks_of(verdict),
    ).bounded()


def refused_at_rcpt(
    reply: SMTPReply,
    *,
    queue_id: str,
    ip: str,
    helo: str,
    mail_from: str,
    rcpts: Sequence[str],
    symbols: Sequence[str],
    now: float,
) -> TransactionRecord:
    """The record of a transaction refused (or greylisted) at RCPT, before any message."""
    greylisted = reply.code < 500
    return TransactionRecord(
        time=now,
        queue_id=queue_id or new_queue_id(),
        client_ip=ip,
        helo=helo,
        mail_from=mail_from.strip("<>"),
        action="greylist" if greylisted else "reject",
        stage="rcpt",
        reply_code=reply.code,
        reply=str(reply),
        greylist="deferred" if greylisted else "",
        symbols=tuple(symbols),
        checks=(Check("rcpt", "refused", f"{', '.join(rcpts)}: {reply}"),),
    ).bounded()
