"""The checks by stage, for front ends that see a message in stages (gateway, milter).

connect: iprev and the address DNS lists start in the background. HELO: the HELO checks and
SPF for the HELO identity. MAIL: SPF for MAIL FROM, running while RCPTs arrive. RCPT: hard
DNS-list hits refuse here (after the client named its recipients, as postscreen does), and
greylisting when configured for RCPT time. End of data: DKIM, ARC, DMARC and the policy, with
the greylisting decision by default. Each check runs once per transaction (per connection for
the connection checks, per HELO name for the HELO checks), however many EHLO, STARTTLS and
MAIL commands there are.

`SessionChecks` and `TransactionChecks` hold that state in plain objects; a front end keeps one
per connection and one per transaction, and translates their answers into its protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import TypeVar

from mailwarden import metrics
from mailwarden.body import SpooledMessage
from mailwarden.greylist import GreylistAction, GreylistStage
from mailwarden.message import Message
from mailwarden.policy import (
    Action,
    Facts,
    decide,
    dnsbl_symbols,
    helo_symbols,
    iprev_symbols,
    spf_symbols,
)
from mailwarden.reply import SMTPReply
from mailwarden.spf import SPFResult, SPFStatus, received_spf
from mailwarden.symbols import Symbol

from .checks import Pipeline
from .forged import forged_fields
from .parsed import ParsedMessage
from .recording import record
from .results import ConnectionFacts, HeloFacts, MessageDecision, MessageVerdict
from .transactions import new_queue_id, refused_at_rcpt, transaction_of

__all__ = ["SessionChecks", "TransactionChecks"]

T = TypeVar("T")


class SessionChecks:
    """The checks of one client connection. `trusted` clients (a configured trusted network)
    get no connection checks and are never refused by the policy."""

    def __init__(self, pipeline: Pipeline, client_ip: str, *, trusted: bool = False) -> None:
        self.pipeline = pipeline
        self.client_ip = client_ip
        self.trusted = trusted
        self._connection: asyncio.Future[ConnectionFacts] | None = None
        self._helo: tuple[str, asyncio.Future[HeloFacts]] | None = None
        if not trusted:
            self._connection = asyncio.ensure_future(pipeline.connection_checks(client_ip))

    def helo(self, name: str) -> None:
        """The client named itself: start its checks (not again for the same name)."""
        if self._helo is not None:
            if self._helo[0] == name:
                return
            self._helo[1].cancel()
        task = asyncio.ensure_future(self.pipeline.helo_checks(self.client_ip, name))
        self._helo = (name, task)

    async def connection(self) -> ConnectionFacts:
        if self._connection is None:
            if self.trusted:
                return ConnectionFacts(None, None)
            self._connection = asyncio.ensure_future(
                self.pipeline.connection_checks(self.client_ip)
            )
        return await asyncio.shield(self._connection)

    async def helo_facts(self, name: str) -> HeloFacts:
        self.helo(name)
        assert self._helo is not None
        return await asyncio.shield(self._helo[1])

    def mail(self, mail_from: str, helo: str, *, queue_id: str = "") -> TransactionChecks:
        """A transaction began: SPF for MAIL FROM starts now. `queue_id` names it in the
        store of recent transactions (the gateway's transaction id, Postfix's queue id)."""
        return TransactionChecks(self, mail_from, helo, queue_id=queue_id)

    async def close(self) -> None:
        """The connection is gone: stop what is still running."""
        tasks = [self._connection, self._helo[1] if self._helo else None]
        self._connection, self._helo = None, None
        for task in tasks:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


class TransactionChecks:
    """The checks of one mail transaction, from MAIL FROM to the end of the data."""

    def __init__(
        self, session: SessionChecks, mail_from: str, helo: str, *, queue_id: str = ""
    ) -> None:
        self.session = session
        self.pipeline = session.pipeline
        self.mail_from = mail_from
        self.helo = helo
        self.queue_id = queue_id or new_queue_id()
        self._refused_symbols: tuple[str, ...] = ()
        self._recorded_rcpt = False
        self._spf = asyncio.ensure_future(
            self.pipeline.mail_checks(session.client_ip, helo, mail_from)
        )

    async def spf(self) -> SPFResult:
        return await asyncio.shield(self._spf)

    def cancel(self) -> None:
        self._spf.cancel()

    async def rcpt(self, rcpt: str, events: Sequence[Symbol] = ()) -> SMTPReply | None:
        """After the front end's relay control accepted `rcpt`: a hard DNS-list hit refuses
        here, and greylisting when it is configured for RCPT time. Out of time
        (`deadlines.rcpt`), nothing is decided here: the end of the data decides."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.pipeline.settings.deadlines.rcpt):
                reply = await self._rcpt(rcpt, events)
        except TimeoutError:
            return None
        finally:
            metrics.stage_seconds("rcpt", time.perf_counter() - started)
        if reply is not None and not self._recorded_rcpt:  # once per transaction
            self._recorded_rcpt = True
            action = Action.GREYLIST if reply.code < 500 else Action.REJECT
            metrics.transaction(action.value, "rcpt", reply.code, reply.status)
            self._record_rcpt(rcpt, reply)
        return reply

    def _record_rcpt(self, rcpt: str, reply: SMTPReply) -> None:
        """Keep the first refusal at RCPT in the store of recent transactions."""
        recorder = self.pipeline.transactions
        if recorder is None or self.session.trusted:
            return
        recorder.record(
            refused_at_rcpt(
                reply,
                queue_id=self.queue_id,
                ip=self.session.client_ip,
                helo=self.helo,
                mail_from=self.mail_from,
                rcpts=[rcpt],
                symbols=self._refused_symbols,
                now=self.pipeline.clock(),
            )
        )

    async def _rcpt(self, rcpt: str, events: Sequence[Symbol]) -> SMTPReply | None:
        session, pipeline = self.session, self.pipeline
        if session.trusted:
            return None
        connection = await session.connection()
        symbols = dnsbl_symbols([connection.dnsbl])
        policy = pipeline.policy
        listed = decide(Facts(tuple(symbols)), policy)
        if listed.hard_rejects:  # a hard listing refuses before the body
            self._refused_symbols = tuple(s.name for s in symbols)
            return listed.reply
        greylist = pipeline.settings.greylist.config
        if pipeline.greylister is None or greylist.stage is not GreylistStage.RCPT:
            return None
        # The classic triplet check, on the facts known at RCPT time.
        spf = await self.spf()
        helo = await session.helo_facts(self.helo)
        symbols += spf_symbols(spf, helo.spf)
        symbols += iprev_symbols(connection.iprev)
        symbols += helo_symbols(helo.helo)
        symbols += events
        if decide(Facts(tuple(symbols)), policy).action is not Action.GREYLIST:
            return None
        self._refused_symbols = tuple(s.name for s in symbols)
        return await self._greylist([rcpt], spf, connection)

    async def data(
        self,
        message: ParsedMessage | Message | SpooledMessage | bytes,
        rcpts: Sequence[str],
        events: Sequence[Symbol] = (),
        *,
        smtputf8: bool = False,
    ) -> MessageDecision:
        """At the end of the data: the verdict, and what the front end must do with it."""
        session, pipeline = self.session, self.pipeline
        parsed = pipeline.parse(message, smtputf8=smtputf8)
        connection = asyncio.ensure_future(session.connection())
        try:
            verdict = await pipeline.message_checks(
                parsed,
                ip=session.client_ip,
                helo=self.helo,
                mail_from=self.mail_from,
                connection=connection,
                helo_facts=session.helo_facts(self.helo),
                spf=self.spf(),
                trusted_network=session.trusted,
                extra_symbols=events,
            )
        finally:
            connection.cancel()
        decision = MessageDecision(
            verdict=verdict,
            message=parsed,
            add_headers=self._headers(verdict),
            remove_fields=forged_fields(
                parsed,
                pipeline.our_names,
                spam_prefix=pipeline.policy.spam_header_prefix,
                remove=pipeline.settings.gateway.remove_headers,
            ),
            log=_log(verdict),
        )
        action = verdict.policy.action
        stage = pipeline.settings.greylist.config.stage
        quarantine = pipeline.settings.gateway.quarantine_address
        if action is Action.GREYLIST and stage is GreylistStage.DATA:
            reply = None
            if pipeline.greylister is not None:
                facts = await session.connection()
                reply = await self._greylist(rcpts, verdict.spf, facts)
            decision.log["greylist"] = "deferred" if reply is not None else "passed"
            decision.reply = reply
        elif action in (Action.SOFT_REJECT, Action.REJECT):
            decision.reply = verdict.policy.reply
        elif action is Action.ADD_HEADER and quarantine:
            decision.redirect_to = [quarantine]
        reply = decision.reply
        if reply is None:
            metrics.transaction(action.value, "data")
        else:
            metrics.transaction(action.value, "data", reply.code, reply.status)
        if pipeline.transactions is not None:
            kept = transaction_of(
                decision,
                queue_id=self.queue_id,
                ip=session.client_ip,
                helo=self.helo,
                mail_from=self.mail_from,
                now=pipeline.clock(),
            )
            if kept is not None:
                pipeline.transactions.record(kept)
        if pipeline.recorder is not None and not session.trusted:  # mail received, not ours
            record(
                pipeline.recorder,
                decision,
                ip=session.client_ip,
                mail_from=self.mail_from,
                rcpts=rcpts,
                now=pipeline.clock(),
            )
        return decision

    async def _greylist(
        self, rcpts: Sequence[str], spf: SPFResult, connection: ConnectionFacts
    ) -> SMTPReply | None:
        greylister = self.pipeline.greylister
        assert greylister is not None
        spf_domain = spf.domain if spf.result is SPFStatus.PASS else None
        dnswl = connection.dnsbl is not None and bool(connection.dnsbl.allowed)
        # Every recipient's triplet is recorded, so one retry passes them all together.
        decisions = [
            await greylister.check(
                self.session.client_ip,
                self.mail_from,
                rcpt,
                spf_pass_domain=spf_domain,
                dnswl_hit=dnswl,
            )
            for rcpt in rcpts or [""]
        ]
        deferred = [d for d in decisions if d.action is GreylistAction.DEFER]
        metrics.greylist_decision("deferred" if deferred else "passed")
        if not deferred:
            return None
        longest = max(deferred, key=lambda d: d.retry_after)
        return SMTPReply(
            longest.smtp_code or 451,
            longest.enhanced_code or "4.7.1",
            longest.text or "Greylisted, please try again later",
        )

    def _headers(self, verdict: MessageVerdict) -> list[tuple[str, str]]:
        """Our fields, unfolded: Authentication-Results, Received-SPF, the verdict."""
        pipeline = self.pipeline
        headers = [("Authentication-Results", verdict.authentication_results.format_value())]
        name, _, value = received_spf(verdict.spf, pipeline.authserv_id).partition(":")
        headers.append((name, value.strip()))
        headers.extend(verdict.policy.headers())
        return headers


def _log(verdict: MessageVerdict) -> dict[str, object]:
    policy = verdict.policy
    return {
        "action": policy.action.value,
        "score": round(policy.score, 3),
        "symbols": [f"{s.name}({s.score:g})" for s in policy.symbols],
        "reasons": list(policy.reasons),
        "spf": verdict.spf.result.value,
        "dkim": [f"{d.result.value}:{d.domain}" for d in verdict.dkim],
        "dmarc": verdict.dmarc.result.value,
        "checks_ms": round(verdict.elapsed * 1000, 1),
        **({"timed_out": list(verdict.timed_out)} if verdict.timed_out else {}),
    }
