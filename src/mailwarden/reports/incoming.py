"""Reports others send us: found in files and messages, refused when hostile.

`read_reports(data, where)` returns one `Found` per report in `data`: an aggregate report
(RFC 9990 or RFC 7489 XML, plain, gzip or zip, bare or attached to a message) or a failure
report (ARF, RFC 5965/6591/9991; also the plain-text kind some MTAs send). Whatever cannot
be read safely is one `Found` with a `reason`; the other reports of the same input are still
read. Limits: the input size, the bytes any decompression may give (gzip and zip bombs), one
level of archive (an archive inside an archive is refused), a count of zip members and of
MIME parts; XML is read without entities (see `xmlread`).
"""

from __future__ import annotations

import base64
import binascii
import email
import email.message
import email.policy
import email.utils
import hashlib
import ipaddress
import quopri
import re
import zipfile
import zlib
from dataclasses import dataclass
from io import BytesIO
from xml.etree.ElementTree import Element

from .model import (
    AggregateReport,
    AuthResult,
    FailureReport,
    PolicyPublished,
    ReportKind,
    ReportRow,
)
from .xmlread import XMLError, parse_xml

__all__ = ["Found", "Limits", "read_reports"]

MAX_ZIP_MEMBERS = 100
MAX_PARTS = 1000
MAX_COUNT = 10**12


@dataclass(frozen=True, slots=True)
class Limits:
    input_size: int = 50_000_000  # one file or message
    expanded_size: int = 200_000_000  # everything decompression may produce from it


@dataclass(frozen=True, slots=True)
class Found:
    """One report found (or refused) in the input. `where` names the part it came from."""

    where: str
    kind: ReportKind
    report: AggregateReport | FailureReport | None = None
    reason: str = ""  # why it was refused
    recovered: bool = False  # the XML was not well-formed; a lenient reading recovered it

    @property
    def refused(self) -> bool:
        return self.report is None


@dataclass(frozen=True, slots=True)
class Bounce:
    """A delivery status notification (RFC 3464) found instead of a report."""

    message: email.message.Message


class Refused(ValueError):
    pass


class _Budget:
    """Bytes that decompression may still produce."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self, size: int, what: str) -> None:
        self.left -= size
        if self.left < 0:
            raise Refused(f"{what}: expands beyond the limit (decompression bomb?)")


def _gunzip(data: bytes, budget: _Budget) -> bytes:
    """Every gzip member, within the budget; a truncated stream is refused."""
    out: list[bytes] = []
    while data:
        stream = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            while data:
                chunk = stream.decompress(data, 1 << 20)
                budget.take(len(chunk), "gzip")
                out.append(chunk)
                data = stream.unconsumed_tail
            if not stream.eof:
                raise Refused("truncated gzip data")
        except zlib.error as exc:
            raise Refused(f"damaged gzip data: {exc}") from None
        data = stream.unused_data.lstrip(b"\x00")
        if data and not data.startswith(b"\x1f\x8b"):
            break  # trailing garbage after the last member: ignored, as gzip(1) does
    return b"".join(out)


def _unzip(data: bytes, budget: _Budget) -> list[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise Refused(f"damaged zip archive: {exc}") from None
    if len(members) > MAX_ZIP_MEMBERS:
        raise Refused(f"zip archive with {len(members)} files (at most {MAX_ZIP_MEMBERS})")
    out = []
    for member in members:
        if member.flag_bits & 0x1:
            raise Refused(f"zip member {member.filename!r} is encrypted")
        if member.file_size > budget.left:
            raise Refused(f"zip member {member.filename!r} expands beyond the limit (zip bomb?)")
        try:
            with archive.open(member) as stream:
                chunks = []
                while chunk := stream.read(1 << 20):
                    budget.take(len(chunk), f"zip member {member.filename!r}")
                    chunks.append(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
            raise Refused(f"damaged zip member {member.filename!r}: {exc}") from None
        out.append((member.filename, b"".join(chunks)))
    return out


def _is_gzip(data: bytes) -> bool:
    return data.startswith(b"\x1f\x8b")


def _is_zip(data: bytes) -> bool:
    return data.startswith((b"PK\x03\x04", b"PK\x05\x06"))


def _looks_like_xml(data: bytes) -> bool:
    return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def read_reports(data: bytes, where: str = "-", limits: Limits | None = None) -> list[Found]:
    """Every report in `data` (a file's or a message's bytes)."""
    limits = limits or Limits()
    if len(data) > limits.input_size:
        return [_refused(where, f"larger than {limits.input_size} bytes")]
    if not data.strip():
        return [_refused(where, "empty input")]
    budget = _Budget(limits.expanded_size)
    if _is_gzip(data) or _is_zip(data) or _looks_like_xml(data):
        return _archive_or_xml(data, where, budget, nested=False)
    return _message(data, where, budget)


def _refused(where: str, reason: str, kind: ReportKind = ReportKind.AGGREGATE) -> Found:
    return Found(where, kind, None, reason)


def _archive_or_xml(data: bytes, where: str, budget: _Budget, *, nested: bool) -> list[Found]:
    before = budget.left
    try:
        if _is_gzip(data):
            if nested:
                return [_refused(where, "an archive inside an archive is refused")]
            inner = _gunzip(data, budget)
            if _is_gzip(inner) or _is_zip(inner):
                return [_refused(where, "an archive inside an archive is refused")]
            return [_aggregate(inner, where)]
        if _is_zip(data):
            if nested:
                return [_refused(where, "an archive inside an archive is refused")]
            found = []
            for name, inner in _unzip(data, budget):
                inner_where = f"{where}:{name}"
                if _is_gzip(inner) or _is_zip(inner):
                    found.append(_refused(inner_where, "an archive inside an archive is refused"))
                else:
                    found.append(_aggregate(inner, inner_where))
            return found or [_refused(where, "empty zip archive")]
    except Refused as exc:
        budget.left = before  # what a refused archive gave is dropped: it costs the rest nothing
        return [_refused(where, str(exc))]
    return [_aggregate(data, where)]


# -- aggregate reports ----------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _child(element: Element | None, name: str) -> Element | None:
    if element is None:
        return None
    return next((c for c in element if _local(c.tag) == name), None)


def _children(element: Element | None, name: str) -> list[Element]:
    return [] if element is None else [c for c in element if _local(c.tag) == name]


def _text(element: Element | None, *path: str, lower: bool = False) -> str:
    for name in path:
        element = _child(element, name)
    if element is None:
        return ""
    text = "".join(element.itertext()).strip()
    return text.lower() if lower else text


def _feedback(root: Element) -> Element | None:
    if _local(root.tag) == "feedback":
        return root
    return next((e for e in root.iter() if _local(e.tag) == "feedback"), None)


def _number(text: str, what: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_COUNT:
        raise Refused(f"{what} is not a whole number: {text[:40]!r}")
    return int(text)


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise Refused(f"source_ip is not an address: {text[:60]!r}") from None


def _row(record: Element) -> ReportRow:
    row = _child(record, "row")
    evaluated = _child(row, "policy_evaluated")
    identifiers = _child(record, "identifiers")
    auth = _child(record, "auth_results")
    reasons = tuple(
        (_text(r, "type", lower=True), _text(r, "comment")) for r in _children(evaluated, "reason")
    )
    dkim = tuple(
        AuthResult(
            _text(d, "domain", lower=True),
            _text(d, "result", lower=True),
            selector=_text(d, "selector"),
            human_result=_text(d, "human_result"),
        )
        for d in _children(auth, "dkim")
    )
    spf = tuple(
        AuthResult(
            _text(s, "domain", lower=True),
            _text(s, "result", lower=True),
            scope=_text(s, "scope", lower=True),
            human_result=_text(s, "human_result"),
        )
        for s in _children(auth, "spf")
    )
    return ReportRow(
        source_ip=_ip(_text(row, "source_ip")),
        count=_number(_text(row, "count"), "count"),
        disposition=_text(evaluated, "disposition", lower=True),
        dkim=_text(evaluated, "dkim", lower=True),
        spf=_text(evaluated, "spf", lower=True),
        header_from=_text(identifiers, "header_from", lower=True),
        envelope_from=_text(identifiers, "envelope_from", lower=True),
        envelope_to=_text(identifiers, "envelope_to", lower=True),
        reasons=reasons,
        dkim_results=dkim,
        spf_results=spf,
    )


_POLICY_FIELDS = ("p", "sp", "np", "adkim", "aspf", "discovery_method", "fo", "testing", "pct")


def parse_aggregate(data: bytes) -> tuple[AggregateReport, bool]:
    """An aggregate report from its XML (RFC 9990 or RFC 7489, with or without namespace);
    Refused with the reason otherwise. The flag says the lenient reader was needed."""
    try:
        root, recovered = parse_xml(data)
    except XMLError as exc:
        raise Refused(str(exc)) from None
    feedback = _feedback(root)
    if feedback is None:
        raise Refused("not a DMARC aggregate report (no <feedback> element)")
    meta = _child(feedback, "report_metadata")
    published = _child(feedback, "policy_published")
    report_id = _text(meta, "report_id")
    domain = _text(published, "domain", lower=True).rstrip(".")
    if not report_id:
        raise Refused("no report_id in report_metadata")
    if not domain:
        raise Refused("no domain in policy_published")
    records = _children(feedback, "record")
    policy = PolicyPublished(
        domain=domain,
        **{name: _text(published, name, lower=True) for name in _POLICY_FIELDS},
    )
    namespace = feedback.tag[1:].partition("}")[0] if feedback.tag.startswith("{") else ""
    report = AggregateReport(
        org_name=_text(meta, "org_name"),
        email=_text(meta, "email"),
        report_id=report_id,
        begin=_number(_text(meta, "date_range", "begin") or "0", "date_range begin"),
        end=_number(_text(meta, "date_range", "end") or "0", "date_range end"),
        policy=policy,
        rows=tuple(_row(record) for record in records),
        version=_text(feedback, "version"),
        extra_contact_info=_text(meta, "extra_contact_info"),
        generator=_text(meta, "generator"),
        errors=tuple(_text(e) for e in _children(meta, "error")),
        namespace=namespace,
    )
    return report, recovered


def _aggregate(data: bytes, where: str) -> Found:
    try:
        report, recovered = parse_aggregate(data)
    except Refused as exc:
        return _refused(where, str(exc))
    return Found(where, ReportKind.AGGREGATE, report, recovered=recovered)


# -- messages ---------------------------------------------------------------------------
_ARCHIVE_TYPES = {
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "application/x-zip",
    "application/x-zip-compressed",
    "application/xml",
    "text/xml",
    "application/octet-stream",
}
_ARCHIVE_NAMES = (".xml", ".gz", ".gzip", ".zip")


def _message(data: bytes, where: str, budget: _Budget) -> list[Found]:
    if data.startswith(b"From ") and b"\n" in data:  # an mbox "From " line
        data = data.split(b"\n", 1)[1]
    try:
        message = email.message_from_bytes(data, policy=email.policy.compat32)
        parts = list(message.walk())
    except (RecursionError, ValueError, TypeError, LookupError) as exc:
        return [_refused(where, f"unreadable message: {type(exc).__name__}")]
    if not message.keys():
        return [_refused(where, "neither a report nor a message")]
    if len(parts) > MAX_PARTS:
        return [_refused(where, f"a message of {len(parts)} MIME parts (at most {MAX_PARTS})")]
    ctype = message.get_content_type()
    report_type = str(message.get_param("report-type", "") or "").lower()
    if ctype == "multipart/report" and report_type == "delivery-status":
        return []  # a bounce: see bounce_of()
    if (ctype == "multipart/report" and report_type == "feedback-report") or any(
        p.get_content_type() == "message/feedback-report" for p in parts
    ):
        return [_failure(message, parts, where)]
    found: list[Found] = []
    for index, part in enumerate(parts):
        if part.is_multipart():
            continue
        name = part.get_filename() or ""
        ptype = part.get_content_type()
        if ptype not in _ARCHIVE_TYPES and not name.lower().endswith(_ARCHIVE_NAMES):
            continue
        try:
            payload = part.get_payload(decode=True)
        except (ValueError, TypeError, LookupError, AssertionError):
            payload = None
        if not isinstance(payload, bytes) or not payload.strip():
            found.append(_refused(f"{where}:{name or index}", "empty attachment"))
            continue
        if not (_is_gzip(payload) or _is_zip(payload) or _looks_like_xml(payload)):
            found.append(
                _refused(f"{where}:{name or index}", f"attachment is not a report ({ptype})")
            )
            continue
        found += _archive_or_xml(payload, f"{where}:{name or index}", budget, nested=False)
    if found:
        return found
    if _plain_failure(message, parts) is not None:
        return [_failure(message, parts, where)]
    return [_refused(where, "no report in this message")]


def is_bounce(data: bytes) -> bool:
    """Whether `data` is a delivery status notification (RFC 3464)."""
    try:
        message = email.message_from_bytes(data[:2_000_000], policy=email.policy.compat32)
    except (RecursionError, ValueError, TypeError, LookupError):
        return False
    return (
        message.get_content_type() == "multipart/report"
        and str(message.get_param("report-type", "") or "").lower() == "delivery-status"
    )


# -- failure reports ---------------------------------------------------------------------
_PLAIN = {
    "reported-domain": re.compile(r"^\s*Sender Domain:\s*(\S+)", re.I | re.M),
    "source-ip": re.compile(r"^\s*Sender IP Address:\s*(\S+)", re.I | re.M),
    "arrival-date": re.compile(r"^\s*Received date:\s*(.+?)\s*$", re.I | re.M),
}


def _embedded(part: email.message.Message) -> email.message.Message | None:
    """The message (or header block) a message/* part holds, decoded when the part was
    sent in base64 or quoted-printable (the parser leaves those undecoded)."""
    payload = part.get_payload()
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    if isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message):
        if encoding not in ("base64", "quoted-printable"):
            return payload[0]
        text = payload[0].as_string()
    elif isinstance(payload, str):
        text = payload
    else:
        return None
    if encoding == "base64":
        raw = base64.b64decode("".join(text.split()) + "==", validate=False)
    elif encoding == "quoted-printable":
        raw = quopri.decodestring(text.encode("ascii", "replace"))
    else:
        raw = text.encode("utf-8", "replace")
    return email.message_from_bytes(raw.lstrip(b"\r\n"), policy=email.policy.compat32)


def _header_block(part: email.message.Message) -> list[tuple[str, str]]:
    inner = _embedded(part)
    return [] if inner is None else [(k, str(v)) for k, v in inner.items()]


def _plain_failure(
    message: email.message.Message, parts: list[email.message.Message]
) -> list[tuple[str, str]] | None:
    """Fields of a failure report written as plain text (no ARF part), if this is one."""
    subject = str(message.get("subject", ""))
    if not re.search(r"dmarc.*(forensic|failure)", subject, re.I):
        return None
    for part in parts:
        if part.get_content_type() != "text/plain":
            continue
        raw = part.get_payload(decode=True)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
        fields = [(k, m.group(1)) for k, rx in _PLAIN.items() if (m := rx.search(text))]
        if any(k == "source-ip" for k, _ in fields):
            return [("feedback-type", "auth-failure"), ("auth-failure", "dmarc"), *fields]
    return None


def _original_headers(parts: list[email.message.Message]) -> email.message.Message | None:
    for part in parts:
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            return _embedded(part)
        if ctype == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
            return email.message_from_string(text.lstrip("\r\n"), policy=email.policy.compat32)
    return None


def _domain_of(address: str) -> str:
    addr = email.utils.parseaddr(address)[1]
    return addr.rpartition("@")[2].strip(" <>.").lower()


def _failure(
    message: email.message.Message, parts: list[email.message.Message], where: str
) -> Found:
    try:
        return Found(where, ReportKind.FAILURE, _parse_failure(message, parts))
    except Refused as exc:
        return _refused(where, str(exc), ReportKind.FAILURE)
    except (ValueError, TypeError, LookupError, IndexError, binascii.Error) as exc:
        return _refused(where, f"unreadable failure report: {exc}", ReportKind.FAILURE)


def _parse_failure(
    message: email.message.Message, parts: list[email.message.Message]
) -> FailureReport:
    fields: list[tuple[str, str]] | None = None
    for part in parts:
        if part.get_content_type() == "message/feedback-report":
            fields = _header_block(part)
            break
    if fields is None:
        fields = _plain_failure(message, parts)
    if not fields:
        raise Refused("no feedback report part (message/feedback-report)")
    values: dict[str, str] = {}
    for name, value in fields:
        values.setdefault(name.strip().lower(), " ".join(value.split()))
    feedback_type = values.get("feedback-type", "").lower()
    if feedback_type and feedback_type != "auth-failure":
        raise Refused(f"a {feedback_type} feedback report, not a DMARC failure report")
    original = _original_headers(parts)
    header_from = _domain_of(str(original.get("from", ""))) if original is not None else ""
    domain = values.get("reported-domain", "").lower().strip(".") or header_from
    if not domain:
        raise Refused("no Reported-Domain and no original From")
    ip_text = values.get("source-ip", "")
    try:
        source_ip = str(ipaddress.ip_address(ip_text)) if ip_text else ""
    except ValueError:
        source_ip = ""
    arrival: float | None = None
    if values.get("arrival-date"):
        try:
            arrival = email.utils.parsedate_to_datetime(values["arrival-date"]).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            arrival = None
    incidents_text = values.get("incidents", "1")
    incidents = int(incidents_text) if incidents_text.isascii() and incidents_text.isdigit() else 1
    message_id = str(message.get("message-id", "")).strip()
    report_id = message_id or hashlib.sha256(message.as_bytes()).hexdigest()[:32]
    reporter = email.utils.parseaddr(str(message.get("from", "")))[1].lower() or "unknown"
    return FailureReport(
        report_id=report_id[:500],
        reporter=reporter,
        domain=domain,
        source_ip=source_ip,
        arrival=arrival,
        feedback_type=feedback_type or "auth-failure",
        auth_failure=values.get("auth-failure", "").lower(),
        delivery_result=values.get("delivery-result", "").lower(),
        identity_alignment=values.get("identity-alignment", "").lower(),
        incidents=min(incidents, MAX_COUNT),
        original_mail_from=values.get("original-mail-from", ""),
        original_rcpt_to=values.get("original-rcpt-to", ""),
        header_from=header_from,
        subject=str(original.get("subject", ""))[:500] if original is not None else "",
        message_id=str(original.get("message-id", ""))[:500] if original is not None else "",
        authentication_results=values.get("authentication-results", "")[:2000],
        user_agent=values.get("user-agent", "")[:200],
        fields=tuple((name, value[:2000]) for name, value in fields[:100]),
    )
