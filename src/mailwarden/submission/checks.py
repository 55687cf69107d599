"""The submission server's `Checks`: who may send what, how much, and signing.

At MAIL: the account must not be held, and the envelope sender must be an address the user
may use (550 5.7.1 naming it). At RCPT: the per-message recipient limit (452 4.5.3, RFC 5321
§4.5.3.1.10: send the rest in another message). At the end of DATA, on the one parse of the
message: a header section parsers would read differently is refused, the From field must name
exactly one author and every mailbox in it must be the user's (Sender and Reply-To are free);
Date and Message-ID are added when missing (RFC 6409 §8.2, §8.3); the rate limits are charged
(451 4.7.1 past one); the message is signed for its From domain; and, when `outbound_ip` is
set, our own policy scores it as a receiver would. What the smarthost answers is accounted
afterwards (`SmarthostEvents`): reservations confirmed or refunded, refused recipients counted
towards the compromise signs.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from mailwarden.body import SpooledMessage
from mailwarden.gateway import Reply, Session, Transaction
from mailwarden.pipeline import MessageDecision, ParsedMessage, Pipeline
from mailwarden.policy import Action
from mailwarden.settings import SubmissionSettings
from mailwarden.signing import Signer

from .bruteforce import client_network
from .compromise import CompromiseDetector
from .limits import RateLimiter, Reservation
from .senders import may_send_as
from .users import User, UserStore

__all__ = ["SubmissionChecks"]

log = logging.getLogger("mailwarden.submission")
_USER = "submission.user"
_PENDING = "submission.pending"
_REFUSED = "submission.refused"


@dataclass(slots=True)
class _Pending:
    """One message handed to the smarthost, waiting for its answer."""

    reservation: Reservation
    rcpts: list[str]
    answered: bool = False


@dataclass(slots=True)
class _Refusals:
    nonexistent: int = 0
    refused: int = 0
    rcpts: list[str] = field(default_factory=list)


class SubmissionChecks:
    """Implements the gateway's `Checks` (and the smarthost's events) for submission."""

    def __init__(
        self,
        config: SubmissionSettings,
        pipeline: Pipeline,
        users: UserStore,
        limiter: RateLimiter,
        signer: Signer,
        detector: CompromiseDetector | None = None,
        *,
        hostname: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.users = users
        self.limiter = limiter
        self.signer = signer
        self.detector = detector
        self.hostname = hostname
        self.clock = clock

    # -- the gateway's hooks ------------------------------------------------------------
    async def on_connect(self, session: Session) -> Reply | None:
        return None

    async def on_helo(self, session: Session) -> Reply | None:
        return None

    async def _user(self, session: Session) -> User | None:
        if session.auth is None:
            return None
        user = await asyncio.to_thread(self.users.get, session.auth)
        session.data[_USER] = user
        return user

    async def on_mail(self, session: Session, tx: Transaction) -> Reply | None:
        user = await self._user(session)  # read again: a hold or a change applies at once
        if user is None or user.disabled:
            return Reply(535, "5.7.8", "Authentication credentials no longer valid")
        if user.held:
            return Reply(
                550,
                "5.7.1",
                f"Account {user.name} is on hold ({user.held_reason}); "
                "contact your administrator to release it",
            )
        if tx.mail_from and not may_send_as(
            user.senders, tx.mail_from, self.config.recipient_delimiter
        ):
            # RFC 6409 §4.1: the MSA may refuse a sender the user is not entitled to
            return Reply(
                550,
                "5.7.1",
                f"Sender address <{tx.mail_from}> is not yours (authenticated as {user.name})",
            )
        return None

    async def on_rcpt(self, session: Session, tx: Transaction, rcpt: str) -> Reply | None:
        user = session.data.get(_USER)
        if not isinstance(user, User):
            return Reply(451, "4.3.0", "Error: no authenticated user")
        domain = tx.mail_from.rpartition("@")[2] or user.name.rpartition("@")[2]
        limit = self.limiter.recipients_per_message(user.name, domain)
        if limit and len(tx.rcpts) >= limit:
            return Reply(452, "4.5.3", f"Too many recipients for one message (at most {limit})")
        return None

    async def on_data(
        self, session: Session, tx: Transaction, message: bytes | SpooledMessage
    ) -> MessageDecision:
        if isinstance(message, SpooledMessage):
            # Signing reads the whole message for now: an authenticated user's mail, within
            # the size limit. (The receiving side streams spooled bodies.)
            message = message.head + message.body.read()
        user = session.data.get(_USER)
        if not isinstance(user, User):
            return MessageDecision(reply=Reply(451, "4.3.0", "Error: no authenticated user"))
        parsed = self.pipeline.parse(message, smtputf8=tx.smtputf8)
        logged: dict[str, object] = {"user": user.name}
        refusal = self._author_refusal(user, parsed)
        if refusal is not None:
            logged["refused"] = refusal.text
            return MessageDecision(reply=refusal, log=logged)
        assert parsed.message is not None
        domain = parsed.authors.domain
        logged["from"] = [m.address for m in parsed.authors.mailboxes]
        now = self.clock()
        client = client_network(session.client_ip)
        reservation, limited = await self.limiter.reserve(user.name, domain, client, tx.rcpts, now)
        if limited is not None:
            log.warning("session %s: %s: %s", session.id, user.name, limited.text)
            logged["rate_limited"] = limited.text
            return MessageDecision(reply=limited, log=logged)
        logged["first_time_recipients"] = len(reservation.first_time)
        session.data[_PENDING] = _Pending(reservation, list(tx.rcpts))
        data = self._completed(parsed, message, now)
        signature = await self.signer.sign(data, domain)
        if not signature:
            log.warning("session %s: no DKIM key for %s: relayed unsigned", session.id, domain)
        logged["dkim"] = "signed" if signature else "no key"
        signed = self.pipeline.parse(signature + data, smtputf8=tx.smtputf8)
        if self.config.outbound_ip:
            await self._score(user, tx, signed, logged)
        return MessageDecision(message=signed, log=logged)

    async def on_disconnect(self, session: Session) -> None:
        return None

    # -- the parts ---------------------------------------------------------------------
    def _author_refusal(self, user: User, parsed: ParsedMessage) -> Reply | None:
        """The one parse's From: exactly one author, and every mailbox the user's."""
        if parsed.message is None or parsed.header_problem is not None:
            why = parsed.header_problem or parsed.problem or "unreadable header section"
            return Reply(550, parsed.header_status, f"Message refused: {why}")
        authors = parsed.authors
        if authors.problem is not None or not authors.mailboxes:
            # RFC 5322 §3.6: one From field; a From we cannot read or that names several
            # domains cannot be checked, so it is not sent
            why = authors.reason or "no From address"
            return Reply(550, "5.7.1", f"Message refused: {why}; exactly one From is needed")
        for mailbox in authors.mailboxes:
            if not may_send_as(user.senders, mailbox.address, self.config.recipient_delimiter):
                return Reply(
                    550,
                    "5.7.1",
                    f"From address <{mailbox.address}> is not yours (authenticated as {user.name})",
                )
        return None

    def _completed(self, parsed: ParsedMessage, message: bytes, now: float) -> bytes:
        """The message with Date and Message-ID added when missing (RFC 6409 §8.2, §8.3)."""
        if not self.config.add_missing_fields or parsed.message is None:
            return message
        added = b""
        if parsed.message.get("date") is None:
            date = format_datetime(datetime.fromtimestamp(now, UTC))
            added += f"Date: {date}\r\n".encode()
        if parsed.message.get("message-id") is None:
            added += f"Message-ID: <{secrets.token_hex(12)}@{self.hostname}>\r\n".encode()
        return added + message

    async def _score(
        self, user: User, tx: Transaction, signed: ParsedMessage, logged: dict[str, object]
    ) -> None:
        """Our own policy on the message as a receiver will see it (from outbound_ip)."""
        verdict = await self.pipeline.check(
            signed,
            ip=self.config.outbound_ip,
            helo=self.hostname,
            mail_from=tx.mail_from,
            rcpt=tx.rcpts,
            smtputf8=tx.smtputf8,
        )
        policy = verdict.policy
        spam = policy.spam or policy.action in (Action.SOFT_REJECT, Action.REJECT)
        logged["outbound_score"] = round(policy.score, 3)
        logged["outbound_spam"] = spam
        if spam and self.detector is not None:
            await self.detector.spam(user.name, self.clock())

    # -- what the smarthost said (relay.SmarthostEvents) -----------------------------------
    async def rcpt_refused(self, session: Session, rcpt: str, reply: Reply) -> None:
        refusals = session.data.setdefault(_REFUSED, _Refusals())
        assert isinstance(refusals, _Refusals)
        refusals.refused += 1
        refusals.rcpts.append(rcpt)
        if reply.status.startswith("5.1."):  # RFC 3463: a bad destination mailbox
            refusals.nonexistent += 1

    async def data_answered(self, session: Session, replies: list[Reply]) -> None:
        pending = session.data.get(_PENDING)
        if not isinstance(pending, _Pending) or pending.answered:
            return
        pending.answered = True
        delivered = bool(replies) and all(r.code < 300 for r in replies)
        reservation = pending.reservation
        if delivered:
            await self.limiter.confirm(reservation, pending.rcpts)
            if self.detector is not None:
                await self.detector.accepted(
                    reservation.user, len(reservation.first_time), reservation.now
                )
            return
        await self.limiter.refund(reservation)
        if any(r.code >= 500 for r in replies):
            refusals = session.data.setdefault(_REFUSED, _Refusals())
            assert isinstance(refusals, _Refusals)
            refusals.refused += len(pending.rcpts)

    async def transaction_closed(self, session: Session) -> None:
        pending = session.data.pop(_PENDING, None)
        if isinstance(pending, _Pending) and not pending.answered:
            await self.limiter.refund(pending.reservation)  # never delivered
        refusals = session.data.pop(_REFUSED, None)
        if isinstance(refusals, _Refusals) and self.detector is not None and session.auth:
            await self.detector.refused(
                session.auth, refusals.nonexistent, refusals.refused, self.clock()
            )
