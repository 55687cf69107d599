"""Failure reports (RFC 9991, the ARF format of RFC 5965 with RFC 6591's auth-failure
fields): when one is due, what it keeps of the message, and the report itself.

Privacy first: off unless `[reports.failure] enabled`; never for a Public Suffix Domain's
record (psd=y); local parts redacted as RFC 6590 describes (hashed with a key of ours, or
removed) and the body left out, except for the domains allowlisted for full reports. Repeats
of a failure are counted as one incident and reported with `Incidents`.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import re
from dataclasses import asdict

from mailwarden import __version__
from mailwarden.dmarc import PSD
from mailwarden.message import Message, MessageError, fold_field

from .config import FailureSettings, Redaction
from .evaluation import Evaluation, MessageKind
from .store import Incident

__all__ = [
    "failure_options",
    "failure_wanted",
    "identity_alignment",
    "make_incident",
    "redact_headers",
    "report_message",
]

# Fields whose addresses are kept: identifiers the Domain Owner needs to find the message,
# and signatures (changing them would only confuse).
_KEEP = {"message-id", "references", "in-reply-to", "dkim-signature", "content-id"}
_KEEP_PREFIXES = ("arc-", "content-")
_ADDRESS = re.compile(rb"""([A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-\x80-\xff]+)@([A-Za-z0-9.\-]+)""")
MAX_HEADERS = 64 * 1024  # bytes of the header section kept for a report
MAX_BODY = 256 * 1024  # bytes of the body kept for an allowlisted domain


def failure_options(evaluation: Evaluation) -> list[str]:
    """The fo= conditions this evaluation meets (RFC 9991 §3.2 / RFC 9989 fo tag)."""
    record = evaluation.parsed_record
    if record is None:
        return []
    met: list[str] = []
    for option in record.fo:
        if option == "0" and evaluation.result == "fail":  # nothing aligned passed
            met.append("0")
        elif option == "1" and not (evaluation.dkim_aligned and evaluation.spf_aligned):
            met.append("1")  # some mechanism did not give an aligned pass
        elif option == "d" and any(d.result in ("fail", "permerror") for d in evaluation.dkim):
            met.append("d")  # a signature failed, aligned or not
        elif option == "s" and evaluation.spf_result == "fail":
            met.append("s")  # SPF failed, aligned or not
    return met


def failure_wanted(evaluation: Evaluation, settings: FailureSettings) -> bool:
    """Whether this evaluation calls for a failure report: reports on, a message (never a
    report or a bounce), a record asking for them (ruf), not a PSD's record, fo met."""
    if not settings.enabled or evaluation.kind is not MessageKind.MESSAGE:
        return False
    if evaluation.result not in ("pass", "fail"):
        return False
    record = evaluation.parsed_record
    if record is None or not any(uri.scheme == "mailto" for uri in record.ruf):
        return False
    if record.psd is PSD.YES:  # RFC 9991 §4: never for a Public Suffix Domain
        return False
    return bool(failure_options(evaluation))


def identity_alignment(evaluation: Evaluation) -> str:
    """RFC 9991 §3.1 Identity-Alignment: the mechanisms that gave an aligned pass."""
    methods = [
        name
        for name, ok in (("dkim", evaluation.dkim_aligned), ("spf", evaluation.spf_aligned))
        if ok
    ]
    return ", ".join(methods) or "none"


def _hidden(local: bytes, redaction: Redaction, secret: bytes) -> bytes:
    if redaction is Redaction.REMOVE:
        return b"redacted"
    digest = hmac.new(secret or b"mailwarden", local.lower(), hashlib.sha256).hexdigest()
    return b"redacted-" + digest[:16].encode()


def redact_headers(headers: bytes, redaction: Redaction, secret: bytes) -> bytes:
    """The header section with every local part replaced (RFC 6590 §3), except in the
    fields that identify the message."""
    try:
        message = Message.from_bytes(headers + b"\r\n", strict=False)
    except MessageError:
        return b""
    out: list[bytes] = []
    for field in message.fields:
        name = field.lname
        if name in _KEEP or name.startswith(_KEEP_PREFIXES):
            out.append(field.raw)
            continue
        out.append(
            _ADDRESS.sub(
                lambda m: _hidden(m.group(1), redaction, secret) + b"@" + m.group(2), field.raw
            )
        )
    return b"".join(out)


def make_incident(
    evaluation: Evaluation,
    headers: bytes,
    body: bytes,
    settings: FailureSettings,
    *,
    secret: bytes,
    mail_from: str = "",
) -> Incident | None:
    """The incident this failure is, redacted now (nothing personal is kept beyond what the
    report will carry). Alike failures share a key: policy domain, source, author domain
    and the conditions met."""
    if not failure_wanted(evaluation, settings):
        return None
    options = failure_options(evaluation)
    key_text = "|".join(
        [evaluation.policy_domain, evaluation.source_ip, evaluation.header_from, *options]
    )
    key = hashlib.sha256(key_text.encode()).hexdigest()[:32]
    full = _allowlisted(evaluation, settings)
    kept = headers[:MAX_HEADERS]
    if not full:
        kept = redact_headers(kept, settings.redaction, secret)
        if mail_from:
            local, at, domain = mail_from.rpartition("@")
            mail_from = (
                _hidden(local.encode(), settings.redaction, secret).decode() + "@" + domain
                if at
                else mail_from
            )
    facts = asdict(evaluation)
    facts["dkim"] = [list(asdict(d).values()) for d in evaluation.dkim]
    facts["options"] = options
    facts["mail_from"] = mail_from
    return Incident(
        key=key,
        domain=evaluation.policy_domain,
        record=evaluation.record,
        count=1,
        reported=0,
        first=evaluation.time,
        last=evaluation.time,
        evaluation=json.dumps(facts, default=str),
        headers=kept,
        body=body[:MAX_BODY] if full and settings.include_body else b"",
    )


def _allowlisted(evaluation: Evaluation, settings: FailureSettings) -> bool:
    domain = evaluation.policy_domain
    return any(domain == d or domain.endswith("." + d) for d in settings.full_report_domains)


_AUTH_FAILURE = {"0": "dmarc", "1": "dmarc", "d": "signature", "s": "spf"}
_DELIVERY = {"reject": "reject", "quarantine": "spam", "none": "delivered", "pass": "delivered"}


def report_message(
    incident: Incident,
    *,
    sender: str,
    destination: str,
    reporter: str,
    authserv_id: str,
    message_id: str,
    now: float,
) -> bytes:
    """The RFC 9991 failure report for `incident` (the failures not reported yet), as a
    message from `sender` to `destination`, without its DKIM signature."""
    facts = json.loads(incident.evaluation)
    options = facts.get("options") or ["0"]
    count = incident.count - incident.reported
    ip = str(facts.get("source_ip", ""))
    author = str(facts.get("header_from", ""))
    aligned = (("dkim", facts.get("dkim_aligned")), ("spf", facts.get("spf_aligned")))
    ev_alignment = ", ".join(name for name, ok in aligned if ok) or "none"
    boundary = (
        "=_mailwarden_" + hashlib.sha256((incident.key + message_id).encode()).hexdigest()[:24]
    )
    date = email.utils.formatdate(now, usegmt=True)
    arrival = email.utils.formatdate(float(facts.get("time", incident.first)), usegmt=True)
    dmarc = f"dmarc={facts.get('result', 'fail')} header.from={author}"
    fields = [
        ("Feedback-Type", "auth-failure"),
        ("User-Agent", f"mailwarden/{__version__}"),
        ("Version", "1"),
    ]
    if facts.get("mail_from"):
        fields.append(("Original-Mail-From", f"<{facts['mail_from']}>"))
    fields += [
        ("Arrival-Date", arrival),
        ("Source-IP", ip),
        ("Reported-Domain", author),
        ("Authentication-Results", f"{authserv_id}; {dmarc}"),
        ("Auth-Failure", _AUTH_FAILURE.get(options[0], "dmarc")),  # RFC 6591 §3.1
        ("Identity-Alignment", ev_alignment),  # RFC 9991 §3.1
        ("Delivery-Result", _DELIVERY.get(str(facts.get("disposition", "none")), "other")),
        ("Incidents", str(max(1, count))),  # RFC 5965 §3.2: alike failures, one report
    ]
    if options[0] == "d":
        failed = [d for d in facts.get("dkim", []) if d[2] in ("fail", "permerror")]
        if failed:
            fields += [("DKIM-Domain", failed[0][0]), ("DKIM-Selector", failed[0][1])]
    feedback = "".join(fold_field(name, value) + "\r\n" for name, value in fields)
    human = (
        f"A message claiming to be from {author} failed DMARC at {reporter}.\r\n"
        f"Source: {ip}; failures like it since the last report: {max(1, count)}.\r\n"
        "This is an RFC 9991 failure report; local parts are redacted (RFC 6590).\r\n"
    )
    if incident.body:
        original = (
            b"Content-Type: message/rfc822\r\n\r\n" + incident.headers + b"\r\n" + incident.body
        )
    else:
        original = b"Content-Type: text/rfc822-headers\r\n\r\n" + incident.headers
    header = "".join(
        fold_field(name, value) + "\r\n"
        for name, value in (
            ("From", sender),
            ("To", destination),
            ("Date", date),
            ("Subject", f"DMARC failure report for {author} from {ip}"),
            ("Message-ID", f"<{message_id}>"),
            ("MIME-Version", "1.0"),
            ("Auto-Submitted", "auto-generated"),  # RFC 3834: no replies, no vacation notes
            (
                "Content-Type",
                f'multipart/report; report-type=feedback-report; boundary="{boundary}"',
            ),
        )
    )
    parts = [
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + human.encode(),
        b"Content-Type: message/feedback-report\r\n\r\n" + feedback.encode(),
        original,
    ]
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return header.encode() + b"\r\n" + body + b"--" + boundary.encode() + b"--\r\n"
