"""Sending reports responsibly: build once, check, budget, spread, send, back off.

`ReportSender.build_due(now)` builds the aggregate reports of every finished day (UTC) once,
whichever gateway sharing the store gets there first, and keeps them byte for byte.
`send_due(now)` sends what is due, each delivery checked in turn:

    the destination is suppressed or dropped (it bounced or refused)  -> suppressed
    an external destination did not authorize us (RFC 9990 §3)      -> unauthorized, logged
    the destination's or the global budget is spent                   -> waits, or given up
    otherwise sent through the relay (or written, in a dry run):
        taken -> sent; 4xx -> retried with backoff; 5xx -> failed and the destination
        suppressed; relay unreachable -> retried later, and nothing else is tried now

No report is built from reports or bounces (loops), for domains whose authenticated mail we
mostly refused as spam, nor from DMARC-failing mail of domains we never had a good exchange
with. Reports go out from a dedicated address whose domain must publish no `rua` of its own,
with a return path naming the destination so that bounces suppress the right one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import hashlib
import logging
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from mailwarden.dkim import load_private_key, sign
from mailwarden.dmarc import (
    PSD,
    Discovery,
    DiscoveryTempError,
    DMARCRecord,
    Lookup,
    ReportURI,
    organizational_domain,
    parse_record,
)
from mailwarden.dns import DNSError, RdType, Resolver, TemporaryFailure, is_domain_name, normalize
from mailwarden.message import fold_field
from mailwarden.signing import Signer

from .aggregate import (
    GENERATOR,
    file_name,
    gzipped,
    policy_published,
    report_id,
    rows_of,
    split_report,
    to_xml,
)
from .config import ReportSettings
from .evaluation import Evaluation, MessageKind
from .failure import report_message
from .model import AggregateReport
from .store import Delivery, DeliveryStatus, DestinationState, OutgoingReport, ReportStore
from .transport import DirectoryTransport, SendError, SMTPTransport, Transport

__all__ = ["Built", "Outcome", "ReportSender", "destination_address", "report_email"]

log = logging.getLogger("mailwarden.reports")

DAY = 86400
_TOKEN = re.compile(r"^[0-9a-f]{16}$")


def destination_address(uri: ReportURI) -> str | None:
    """The address of a mailto: report URI (RFC 6068), None for any other or a bad one."""
    if uri.scheme != "mailto":
        return None
    target = urllib.parse.unquote(uri.uri.partition(":")[2].partition("?")[0]).strip()
    local, at, domain = target.rpartition("@")
    if not at or not local or any(c.isspace() or c in '<>,;"\\' or ord(c) < 0x20 for c in local):
        return None
    try:
        domain = normalize(domain)
    except ValueError:
        return None
    return f"{local}@{domain}" if is_domain_name(domain) else None


def _size_limit(uri: ReportURI) -> int | None:
    """RFC 7489 `!size` (k, m, g, t suffixes), in bytes."""
    if not uri.max_size:
        return None
    text = uri.max_size.lower()
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(text[-1:], 1)
    digits = text.rstrip("kmgt")
    return int(digits) * scale if digits.isdigit() else None


@dataclass(frozen=True, slots=True)
class Built:
    """The reports of one domain for one period, or why there are none."""

    domain: str
    begin: int
    reports: tuple[AggregateReport, ...] = ()
    destinations: tuple[str, ...] = ()
    skipped: str = ""  # why no report (reputation gate, no rua, nothing left)
    left_out: int = 0  # evaluations left out by the reputation gate


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one delivery in one run."""

    report_id: str
    destination: str
    status: DeliveryStatus
    detail: str = ""


def report_email(
    report: OutgoingReport,
    *,
    sender: str,
    organization: str,
    destination: str,
    submitter: str,
    message_id: str,
    now: float,
) -> bytes:
    """The aggregate report message (RFC 9990 §2.5.1): a text part and the gzip file as
    application/gzip, named as the file; without its DKIM signature."""
    boundary = "=_mailwarden_" + hashlib.sha256(message_id.encode()).hexdigest()[:24]
    subject = (
        f"Report Domain: {report.domain} Submitter: {submitter} Report-ID: <{report.report_id}>"
    )
    header = "".join(
        fold_field(name, value) + "\r\n"
        for name, value in (
            ("From", f'"{organization}" <{sender}>' if organization else sender),
            ("To", destination),
            ("Date", email.utils.formatdate(now, usegmt=True)),
            ("Subject", subject),
            ("Message-ID", f"<{message_id}>"),
            ("MIME-Version", "1.0"),
            ("Auto-Submitted", "auto-generated"),  # RFC 3834: no replies to this
            ("Content-Type", f'multipart/mixed; boundary="{boundary}"'),
        )
    )
    text = (
        f"This is a DMARC aggregate report (RFC 9990) for {report.domain} from {submitter},\r\n"
        f"covering {report.messages} messages from "
        f"{email.utils.formatdate(report.begin, usegmt=True)} to "
        f"{email.utils.formatdate(report.end, usegmt=True)}.\r\n"
    )
    encoded = base64.b64encode(report.payload).decode("ascii")
    lines = "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    attachment = (
        f'Content-Type: application/gzip; name="{report.filename}"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="{report.filename}"\r\n\r\n{lines}\r\n'
    )
    body = (
        f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}\r\n"
        f"--{boundary}\r\n{attachment}--{boundary}--\r\n"
    )
    return header.encode() + b"\r\n" + body.encode()


@dataclass
class _Run:
    """State of one sending run."""

    relay_down: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    authorized: dict[tuple[str, str], bool | None] = field(default_factory=dict)


class ReportSender:
    """Builds and sends the reports kept in `store`, as `settings` say."""

    def __init__(
        self,
        store: ReportStore,
        settings: ReportSettings,
        resolver: Resolver,
        *,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
        hostname: str = "localhost",
        discovery: Discovery = Discovery.TREE_WALK,
        signer: Signer | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.settings = settings
        self.resolver = resolver
        self.clock = clock
        self.hostname = hostname
        self.discovery = discovery
        if transport is None:
            if settings.dry_run:
                transport = DirectoryTransport(settings.dry_run)
            else:
                host, port = settings.relay
                transport = SMTPTransport(host, port, starttls=settings.starttls, helo=hostname)
        self.transport = transport
        self._key = None
        if settings.dkim_key:
            self._key = load_private_key(Path(settings.dkim_key).read_bytes())

    @property
    def submitter(self) -> str:
        return self.settings.report_domain or self.hostname

    # -- building ----------------------------------------------------------------------
    async def build_due(self, now: float | None = None) -> list[OutgoingReport]:
        """Build the reports of every finished day not built yet (within `keep_days`)."""
        now = self.clock() if now is None else now
        today = int(now) // DAY * DAY
        first = today - self.settings.keep_days * DAY
        built: list[OutgoingReport] = []
        for begin in range(first, today, DAY):
            if not await self.store.claim_period(begin, now):
                continue
            built += await self._build_period(begin, now)
            await self.store.finish_period(begin, now)
        return built

    async def _build_period(self, begin: int, now: float) -> list[OutgoingReport]:
        evaluations = await self.store.evaluations(begin, begin + DAY)
        out: list[OutgoingReport] = []
        for domain, items in sorted(_by_domain(evaluations).items()):
            result = await self.build(domain, items, begin, now)
            if result.skipped:
                log.info("no report for %s (%d): %s", domain, begin, result.skipped)
                continue
            cap_parts = len(result.reports)
            for part, report in enumerate(result.reports, start=1 if cap_parts > 1 else 0):
                payload = gzipped(to_xml(report))
                unique = report.report_id
                outgoing = OutgoingReport(
                    report_id=report.report_id,
                    kind="aggregate",
                    domain=domain,
                    begin=report.begin,
                    end=report.end,
                    part=part,
                    parts=cap_parts,
                    filename=file_name(self.submitter, domain, report.begin, report.end, unique),
                    payload=payload,
                    messages=report.messages,
                    created=now,
                )
                deliveries = [
                    Delivery(
                        report.report_id,
                        destination,
                        DeliveryStatus.PENDING,
                        not_before=self._send_time(domain, destination, begin),
                        updated=now,
                    )
                    for destination in result.destinations
                ]
                if await self.store.add_outgoing(outgoing, deliveries):
                    out.append(outgoing)
        return out

    def _send_time(self, domain: str, destination: str, begin: int) -> float:
        """Each destination at its own fixed moment in the sending window (never all at
        once at midnight): after `send_hour` the next day, spread over `spread_hours`."""
        window = max(1, int(self.settings.spread_hours * 3600))
        digest = hashlib.sha256(f"{domain}|{destination}".encode()).digest()
        offset = int.from_bytes(digest[:4], "big") % window
        return float(begin + DAY + self.settings.send_hour * 3600 + offset)

    async def build(
        self, domain: str, evaluations: Sequence[Evaluation], begin: int, now: float
    ) -> Built:
        """The report(s) of `domain` for the day starting at `begin`, after every gate."""
        items = [e for e in evaluations if e.kind is MessageKind.MESSAGE]  # no loops
        if not items:
            return Built(domain, begin, skipped="only reports and bounces")
        record = items[-1].parsed_record  # the policy as last seen (RFC 9990 §2.1.5)
        if record is None:
            return Built(domain, begin, skipped="no DMARC record")
        destinations, cap = self._destinations(record)
        if not destinations:
            return Built(domain, begin, skipped="no mailto: rua destination")
        reputation = await self.store.reputation(domain, now - self.settings.keep_days * DAY)
        if reputation.spam_share > self.settings.max_spam_share:
            share = f"{reputation.spam_share:.0%}"
            return Built(domain, begin, skipped=f"reputation: {share} of its mail refused as spam")
        left_out = 0
        if self.settings.require_good_exchange and not reputation.good_exchange:
            kept = [e for e in items if e.passed]
            left_out = len(items) - len(kept)
            items = kept
            if not items:
                return Built(
                    domain,
                    begin,
                    skipped="reputation: DMARC-failing mail of a domain never seen passing",
                    left_out=left_out,
                )
        base = AggregateReport(
            org_name=self.settings.organization or self.submitter,
            email=self.settings.from_address or f"postmaster@{self.submitter}",
            report_id=report_id(self.submitter, domain, begin),
            begin=begin,
            end=begin + DAY - 1,
            policy=policy_published(record, domain, items[-1].discovery),
            rows=rows_of(items),
            version="1.0",
            extra_contact_info=self.settings.contact,
            generator=GENERATOR,
        )
        parts = split_report(base, cap)
        if len(parts) > 1:
            parts = [
                replace(part, report_id=report_id(self.submitter, domain, begin, index))
                for index, part in enumerate(parts, start=1)
            ]
        return Built(domain, begin, tuple(parts), tuple(destinations), left_out=left_out)

    def _destinations(self, record: DMARCRecord) -> tuple[list[str], int]:
        addresses: list[str] = []
        cap = self.settings.max_report_size
        for uri in record.rua:
            address = destination_address(uri)
            if address is None or address.lower() in (a.lower() for a in addresses):
                continue
            if len(addresses) >= self.settings.max_destinations:
                break
            addresses.append(address)
            limit = _size_limit(uri)
            if limit is not None:  # base64 makes the attachment a third larger
                cap = min(cap, max(1000, limit * 3 // 4 - 2000))
        return addresses, cap

    async def preview(self, domain: str, now: float | None = None) -> list[Built]:
        """What would be sent for `domain`: the finished days kept, and today so far."""
        now = self.clock() if now is None else now
        today = int(now) // DAY * DAY
        out = []
        domain = normalize(domain)
        for begin in range(today - self.settings.keep_days * DAY, today + DAY, DAY):
            items = await self.store.evaluations(begin, begin + DAY, domain=domain)
            if items:
                out.append(await self.build(domain, items, begin, now))
        return out

    # -- sending -----------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.settings.send or bool(self.settings.dry_run)

    async def check_report_address(self) -> str | None:
        """Why reports cannot go out from the report address now, or None. Its domain must
        publish no rua of its own: receivers would report on our reports to it."""
        domain = self.settings.report_domain
        if not domain:
            return "no report address ([reports] from_address)"
        try:
            found = await Lookup(self.resolver).record(domain)
        except DiscoveryTempError as exc:
            return f"cannot check the report address's domain: {exc}"
        if found.record is not None and found.record.rua:
            return (
                f"the report address's domain {domain} publishes rua=: reports about our "
                "reports would loop; use a subdomain without a rua of its own"
            )
        return None

    async def send_due(
        self, now: float | None = None, *, everything: bool = False
    ) -> list[Outcome]:
        """Send the deliveries whose time has come (`everything`: all pending ones now,
        still within the budgets). Nothing when sending is off."""
        now = self.clock() if now is None else now
        if not self.active:
            return []
        problem = await self.check_report_address()
        if problem is not None:
            log.error("reports not sent: %s", problem)
            raise SendError(problem, relay_down=True)
        run = _Run()
        due = await self.store.due(float("inf") if everything else now, limit=10_000)
        for delivery in due:
            if run.relay_down:
                break
            outcome = await self._deliver(delivery, now, run)
            if outcome is not None:
                run.outcomes.append(outcome)
        return run.outcomes

    async def _deliver(self, delivery: Delivery, now: float, run: _Run) -> Outcome | None:
        report = await self.store.outgoing(delivery.report_id)
        if report is None:
            return await self._finish(delivery, DeliveryStatus.FAILED, now, "report purged")
        destination = delivery.destination
        state = await self._state(destination)
        if state.dropped_until > now:
            detail = f"dropped until {_iso(state.dropped_until)}: {state.last_error}"
            return await self._finish(delivery, DeliveryStatus.SUPPRESSED, now, detail)
        if state.suppressed_until > now:
            detail = f"suppressed until {_iso(state.suppressed_until)}: {state.last_error}"
            return await self._finish(delivery, DeliveryStatus.SUPPRESSED, now, detail)
        allowed = await self._authorized(report.domain, destination, run)
        if allowed is None:
            return await self._retry(delivery, report, now, "cannot check the authorization now")
        if not allowed:
            detail = (
                f"{destination} is external and {report.domain}._report._dmarc."
                f"{destination.rpartition('@')[2]} does not authorize reports to it"
            )
            log.warning("report %s not sent: %s", report.report_id, detail)
            return await self._finish(delivery, DeliveryStatus.UNAUTHORIZED, now, detail)
        over = await self._over_budget(destination, len(report.payload), "aggregate", now)
        if over:
            if now - report.created > self.settings.give_up_days * DAY:
                return await self._finish(delivery, DeliveryStatus.FAILED, now, over)
            log.warning("report %s to %s waits: %s", report.report_id, destination, over)
            await self.store.update_delivery(
                replace(delivery, not_before=now + 3600, last_error=over, updated=now)
            )
            return Outcome(report.report_id, destination, DeliveryStatus.PENDING, over)
        if not await self.store.claim(delivery, now):
            return None  # another sender has it
        message_id = f"{report.report_id}.{state.token}@{self.submitter}"
        message = report_email(
            report,
            sender=self.settings.from_address or f"postmaster@{self.submitter}",
            organization=self.settings.organization,
            destination=destination,
            submitter=self.submitter,
            message_id=message_id,
            now=now,
        )
        try:
            answer = await self.transport.send(
                self.return_path(state),
                destination,
                await self._signed(message),
                name=report.filename,
            )
        except SendError as exc:
            return await self._failed_send(delivery, report, state, exc, now, run)
        await self.store.log_send(now, destination, len(report.payload), "aggregate")
        status = (
            DeliveryStatus.WRITTEN
            if isinstance(self.transport, DirectoryTransport)
            else DeliveryStatus.SENT
        )
        if isinstance(self.transport, DirectoryTransport):  # the report file beside it
            await self.transport.keep(report.filename, report.payload)
        return await self._finish(
            replace(delivery, attempts=delivery.attempts + 1), status, now, answer
        )

    async def _failed_send(
        self,
        delivery: Delivery,
        report: OutgoingReport,
        state: DestinationState,
        error: SendError,
        now: float,
        run: _Run,
    ) -> Outcome:
        if error.relay_down:
            run.relay_down = True
            log.warning("report relay unreachable: %s", error.detail)
        if error.permanent:
            await self.note_failure(delivery.destination, now, f"refused: {error.detail}")
            return await self._finish(
                replace(delivery, attempts=delivery.attempts + 1),
                DeliveryStatus.FAILED,
                now,
                error.detail,
            )
        return await self._retry(delivery, report, now, error.detail)

    async def _retry(
        self, delivery: Delivery, report: OutgoingReport, now: float, detail: str
    ) -> Outcome:
        attempts = delivery.attempts + 1
        if now - report.created > self.settings.give_up_days * DAY:
            return await self._finish(
                replace(delivery, attempts=attempts), DeliveryStatus.FAILED, now, detail
            )
        delay = self.settings.retry_minutes * 60 * 2 ** min(attempts - 1, 16)
        retry = replace(
            delivery,
            status=DeliveryStatus.RETRY,
            attempts=attempts,
            not_before=now + min(delay, self.settings.give_up_days * DAY),
            last_error=detail,
            updated=now,
        )
        await self.store.update_delivery(retry)
        return Outcome(delivery.report_id, delivery.destination, DeliveryStatus.RETRY, detail)

    async def _finish(
        self, delivery: Delivery, status: DeliveryStatus, now: float, detail: str
    ) -> Outcome:
        await self.store.update_delivery(
            replace(delivery, status=status, last_error=detail, updated=now)
        )
        return Outcome(delivery.report_id, delivery.destination, status, detail)

    async def _signed(self, message: bytes) -> bytes:
        """DKIM-signed as the report address's domain, so its own DMARC passes: with the
        `[reports]` key when one is set, else with the `[signing]` keys of that domain."""
        if self._key is not None:
            field = sign(
                message,
                self.settings.report_domain,
                self.settings.dkim_selector,
                self._key,
                clock=self.clock,
            )
            return field + message
        if self.signer is not None:
            return await self.signer.sign(message, self.settings.report_domain) + message
        return message

    def return_path(self, state: DestinationState) -> str:
        """local+token@domain: a bounce names the destination it is about."""
        local, _, domain = (
            self.settings.from_address or f"postmaster@{self.submitter}"
        ).rpartition("@")
        return f"{local}+{state.token}@{domain}"

    async def _over_budget(self, destination: str, size: int, kind: str, now: float) -> str:
        s = self.settings
        count, sent = await self.store.sent_since(now - DAY, destination=destination)
        if count + 1 > s.destination_reports_per_day:
            return f"budget: {count} reports to {destination} in the last day"
        if sent + size > s.destination_bytes_per_day:
            return f"budget: {sent} bytes to {destination} in the last day"
        count, sent = await self.store.sent_since(now - DAY)
        if count + 1 > s.reports_per_day:
            return f"global budget: {count} reports in the last day"
        if sent + size > s.bytes_per_day:
            return f"global budget: {sent} bytes in the last day"
        return ""

    async def _authorized(self, domain: str, destination: str, run: _Run) -> bool | None:
        """RFC 9990 §3 (RFC 7489 §7.1): a destination outside the domain's Organizational
        Domain must publish `<domain>._report._dmarc.<destination domain>` (v=DMARC1).
        None: DNS could not say now."""
        target = destination.rpartition("@")[2]
        key = (domain, target)
        if key not in run.authorized:
            run.authorized[key] = await self._check_authorization(domain, target)
        return run.authorized[key]

    async def _check_authorization(self, domain: str, target: str) -> bool | None:
        if target == domain or target.endswith("." + domain):
            return True
        lookup = Lookup(self.resolver)
        try:
            ours = await organizational_domain(lookup, domain, self.discovery, None)
            theirs = await organizational_domain(lookup, target, self.discovery, None)
        except DiscoveryTempError:
            return None
        if ours == theirs:
            return True
        name = f"{domain}._report._dmarc.{target}"
        try:
            answer = await self.resolver.resolve(name, RdType.TXT)
        except TemporaryFailure:
            return None
        except DNSError:
            return False
        texts = [t.joined.decode("utf-8", "replace").lstrip(" \t") for t in answer.txt()]
        return any(re.match(r"v\s*=\s*DMARC1\s*(;|$)", t) for t in texts)

    # -- destinations --------------------------------------------------------------------
    async def _state(self, address: str) -> DestinationState:
        state = await self.store.destination(address)
        if state is None:
            state = DestinationState(address, secrets.token_hex(8))
            await self.store.save_destination(state)
            state = await self.store.destination(address) or state
        return state

    async def note_failure(self, address: str, now: float, error: str) -> DestinationState:
        """A bounce or a refusal: the destination is left alone for suppress_hours,
        doubling with each failure; undeliverable for drop_after_days, it is dropped."""
        s = self.settings
        state = await self._state(address)
        quiet = (
            state.first_failure is None or state.suppressed_until + s.drop_after_days * DAY < now
        )
        failures = 1 if quiet else state.failures + 1
        first = now if quiet or state.first_failure is None else state.first_failure
        if now - first >= s.drop_after_days * DAY:
            state = replace(
                state,
                failures=0,
                first_failure=None,
                suppressed_until=0.0,
                dropped_until=now + s.dropped_days * DAY,
                last_error=error,
            )
            log.warning("report destination %s dropped: %s", address, error)
        else:
            backoff = min(
                s.suppress_hours * 3600 * 2 ** min(failures - 1, 16), s.drop_after_days * DAY
            )
            state = replace(
                state,
                failures=failures,
                first_failure=first,
                suppressed_until=now + backoff,
                last_error=error,
            )
            log.warning("report destination %s suppressed for %.0f s: %s", address, backoff, error)
        await self.store.save_destination(state)
        return state

    async def handle_bounce(self, message: bytes, now: float | None = None) -> str | None:
        """A bounce to our return path: the destination it names is suppressed when the
        failure is permanent (RFC 3464 Action: failed). The destination, or None."""
        now = self.clock() if now is None else now
        local, _, domain = self.settings.from_address.rpartition("@")
        if not local:
            return None
        pattern = re.compile(
            re.escape(local.encode()) + rb"\+([0-9a-f]{16})@" + re.escape(domain.encode()), re.I
        )
        match = pattern.search(message)
        if match is None:
            return None
        state = await self.store.destination_by_token(match.group(1).decode().lower())
        if state is None:
            return None
        text = message.decode("utf-8", "replace")
        if not re.search(r"^\s*Action:\s*failed", text, re.I | re.M):
            return None  # delayed, relayed, delivered: not a failure
        status = re.search(r"^\s*Status:\s*([245]\.\d{1,3}\.\d{1,3})", text, re.I | re.M)
        detail = f"bounced ({status.group(1)})" if status else "bounced"
        await self.note_failure(state.address, now, detail)
        return state.address

    # -- failure reports -----------------------------------------------------------------
    async def send_failures(
        self, now: float | None = None, *, authserv_id: str = ""
    ) -> list[Outcome]:
        """Failure reports for the incidents waiting, within the per-destination limit."""
        now = self.clock() if now is None else now
        failure = self.settings.failure
        if not failure.enabled or not self.active:
            return []
        if await self.check_report_address() is not None:
            return []
        run = _Run()
        for incident in await self.store.incidents():
            if run.relay_down:
                break
            try:
                record = parse_record(incident.record)
            except ValueError:
                await self.store.mark_reported(incident.key, incident.count)
                continue
            if record.psd is PSD.YES:  # RFC 9991: never for a Public Suffix Domain
                await self.store.mark_reported(incident.key, incident.count)
                continue
            addresses = [a for a in map(destination_address, record.ruf) if a]
            addresses = list(dict.fromkeys(addresses))[: self.settings.max_destinations]
            handled = not addresses
            for destination in addresses:
                state = await self._state(destination)
                if max(state.suppressed_until, state.dropped_until) > now:
                    handled = True
                    continue
                allowed = await self._authorized(incident.domain, destination, run)
                if allowed is None:
                    continue
                if not allowed:
                    log.warning("failure report to %s not sent: not authorized", destination)
                    handled = True
                    continue
                count, _ = await self.store.sent_since(
                    now - DAY, destination=destination, kind="failure"
                )
                if count >= failure.per_destination_per_day:
                    continue  # waits; repeats are counted meanwhile (Incidents)
                message_id = f"{incident.key}.{incident.count}.{state.token}@{self.submitter}"
                message = report_message(
                    incident,
                    sender=self.settings.from_address,
                    destination=destination,
                    reporter=self.settings.organization or self.submitter,
                    authserv_id=authserv_id or self.hostname,
                    message_id=message_id,
                    now=now,
                )
                try:
                    answer = await self.transport.send(
                        self.return_path(state),
                        destination,
                        await self._signed(message),
                        name=f"failure-{incident.key}",
                    )
                except SendError as exc:
                    run.relay_down = exc.relay_down
                    if exc.permanent:
                        await self.note_failure(destination, now, f"refused: {exc.detail}")
                        handled = True
                    run.outcomes.append(
                        Outcome(incident.key, destination, DeliveryStatus.RETRY, exc.detail)
                    )
                    continue
                await self.store.log_send(now, destination, len(message), "failure")
                run.outcomes.append(Outcome(incident.key, destination, DeliveryStatus.SENT, answer))
                handled = True
            if handled:
                await self.store.mark_reported(incident.key, incident.count)
        return run.outcomes

    # -- the schedule ------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, *, tick: float = 300.0, authserv_id: str = "") -> None:
        """The daily schedule inside a long-running command: every `tick` seconds, build
        what a finished day needs and send what is due. Errors are logged, never raised."""
        while not stop.is_set():
            try:
                await self.build_due()
                if self.active:
                    await self.send_due()
                    await self.send_failures(authserv_id=authserv_id)
            except SendError as exc:
                log.warning("reports: %s", exc.detail)
            except Exception:
                log.exception("reports: the scheduled run failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(tick):
                    await stop.wait()


def _by_domain(evaluations: Sequence[Evaluation]) -> dict[str, list[Evaluation]]:
    groups: dict[str, list[Evaluation]] = {}
    for e in evaluations:
        if e.policy_domain and e.record:
            groups.setdefault(e.policy_domain, []).append(e)
    return groups


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
