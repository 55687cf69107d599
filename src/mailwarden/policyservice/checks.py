"""What the policy service answers: one Postfix request translated onto the one pipeline.

Postfix asks at the restriction stage where `check_policy_service` is listed and names it in
`protocol_state`. At RCPT (smtpd_recipient_restrictions, after reject_unauth_destination):
the client's hard DNS-list hits are refused, SPF for MAIL FROM (and HELO, which stands for a
null sender, RFC 7208 §2.4) refuses or defers when `spf = "reject"`, greylisting defers new
triplets with the gateway's stores and keys, and a message that passes gets one Received-SPF
field prepended (once per message: Postfix asks once per recipient). At END-OF-MESSAGE
(smtpd_end_of_data_restrictions): an authenticated sender (`sasl_username`) is charged against
the per-user rate limits. Every other state, and authenticated senders at RCPT, get DUNNO
("no opinion": the next restriction decides). The answer always comes within
`deadlines.rcpt`; out of time the service says DUNNO: a check that could not finish never
refuses, and never accepts either (we never answer OK, which would skip the restrictions
after ours).

A request is answered on its own: the connection from Postfix carries requests from many SMTP
clients, one smtpd process after another, so nothing is kept between requests but the set of
messages that already got their Received-SPF.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from mailwarden.dns import parse_ip
from mailwarden.greylist import GreylistAction
from mailwarden.pipeline import ConnectionFacts, Pipeline, SessionChecks
from mailwarden.policy import (
    Action,
    Facts,
    decide,
    dnsbl_symbols,
    helo_symbols,
    iprev_symbols,
    spf_symbols,
)
from mailwarden.ratelimit import DAY, HOUR, MINUTE, Charge, CounterStore
from mailwarden.reply import SMTPReply
from mailwarden.settings import GreylistMode, PolicyServiceSettings, SPFMode
from mailwarden.spf import SPFResult, SPFStatus, received_spf

from .protocol import MALFORMED, PolicyRequest

__all__ = ["DUNNO", "FAILED", "Answer", "PolicyChecks"]

DUNNO = "DUNNO"
# RFC 3463 X.3.0: our own failure (a store that does not answer): the client retries
FAILED = "DEFER_IF_PERMIT 4.3.0 Temporary failure, please try again later"
PREPENDED_MEMORY = 10_000  # messages remembered as having their Received-SPF
_GREYLISTING = (Action.GREYLIST, Action.ADD_HEADER, Action.SOFT_REJECT, Action.REJECT)
_WORDS = {MINUTE.name: "a minute", HOUR.name: "an hour", DAY.name: "a day"}

log = logging.getLogger("mailwarden.policy")


@dataclass(frozen=True, slots=True)
class Answer:
    """The action for Postfix and, for the log, why."""

    action: str
    reason: str = ""


def reply_action(reply: SMTPReply) -> str:
    """An access(5) action giving exactly our reply: `550 5.7.23 text`."""
    return str(reply)


def defer_action(reply: SMTPReply) -> str:
    """DEFER_IF_PERMIT with our enhanced code and text: deferred unless a later restriction
    refuses outright (SMTPD_POLICY_README; Postfix answers with its defer code, 450)."""
    return f"DEFER_IF_PERMIT {reply.status} {reply.text}".replace("  ", " ")


class PolicyChecks:
    """Answers requests with `pipeline` as `config` chooses; `counters` hold the rate
    limits' state (needed when `config.rate_limits` is on)."""

    def __init__(
        self,
        pipeline: Pipeline,
        config: PolicyServiceSettings,
        counters: CounterStore | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.config = config
        self.counters = counters
        self.clock = clock if clock is not None else pipeline.clock
        self._prepended: OrderedDict[str, None] = OrderedDict()

    async def answer(self, request: PolicyRequest) -> Answer:
        """The answer to one request, within `deadlines.rcpt` (then DUNNO)."""
        if request.problem:
            return Answer(MALFORMED, request.problem)
        state = request.protocol_state
        seconds = self.pipeline.settings.deadlines.rcpt
        try:
            async with asyncio.timeout(seconds):
                if state == "RCPT":
                    return await self._rcpt(request)
                if state == "END-OF-MESSAGE":
                    return await self._end_of_message(request)
                return Answer(DUNNO, f"nothing to check at {state or 'no state'}")
        except TimeoutError:
            return Answer(DUNNO, f"checks did not finish within {seconds:g} s")
        except Exception as exc:  # a store that fails (Redis down, disk full): retry later
            log.exception("policy: request failed")
            return Answer(FAILED, f"internal error: {type(exc).__name__}: {exc}")

    # -- RCPT ------------------------------------------------------------------------------
    async def _rcpt(self, request: PolicyRequest) -> Answer:
        if request.sasl_username:  # authenticated submission: not inbound mail
            return Answer(DUNNO, "authenticated sender")
        try:
            ip = parse_ip(request.client_address)
        except ValueError:
            return Answer(MALFORMED, f"client_address {request.client_address[:60]!r}")
        settings = self.pipeline.settings
        if settings.gateway.is_trusted(str(ip)):
            return Answer(DUNNO, "trusted network")
        session = SessionChecks(self.pipeline, str(ip))
        try:
            helo = request.helo_name
            session.helo(helo)
            tx = session.mail(request.sender, helo)
            try:
                return await self._decide(request, session, await tx.spf())
            finally:
                tx.cancel()
        finally:
            await session.close()

    async def _decide(
        self, request: PolicyRequest, session: SessionChecks, spf: SPFResult
    ) -> Answer:
        config, pipeline = self.config, self.pipeline
        connection = await session.connection()
        listed = dnsbl_symbols([connection.dnsbl])
        if config.dnsbl and listed:
            verdict = decide(Facts(tuple(listed)), pipeline.policy)
            if verdict.hard_rejects and verdict.reply is not None:
                return Answer(reply_action(verdict.reply), f"listed: {verdict.hard_rejects}")
        if config.spf is SPFMode.REJECT:
            refused = _spf_refusal(spf)
            if refused is not None:
                text = reply_action(refused) if refused.permanent else defer_action(refused)
                return Answer(text, f"spf={spf.result.value}")
        if config.greylist is not GreylistMode.OFF and pipeline.greylister is not None:
            deferred = await self._greylist(request, session, spf, connection)
            if deferred is not None:
                return deferred
        if config.spf is not SPFMode.OFF and self._first_answer(request):
            field = received_spf(spf, pipeline.authserv_id)
            return Answer(f"PREPEND {field}", f"spf={spf.result.value}")
        return Answer(DUNNO, f"spf={spf.result.value}")

    async def _greylist(
        self,
        request: PolicyRequest,
        session: SessionChecks,
        spf: SPFResult,
        connection: ConnectionFacts,
    ) -> Answer | None:
        """The gateway's greylisting at RCPT: its store, its keys (client network, or the
        SPF-authorised pool), its exemptions; `score` mode only for mail whose score on what
        is known at RCPT reaches the greylist threshold."""
        pipeline = self.pipeline
        greylister = pipeline.greylister
        assert greylister is not None
        if self.config.greylist is GreylistMode.SCORE:
            helo = await session.helo_facts(request.helo_name)
            symbols = spf_symbols(spf, helo.spf)
            symbols += iprev_symbols(connection.iprev)
            symbols += helo_symbols(helo.helo)
            symbols += dnsbl_symbols([connection.dnsbl])
            if decide(Facts(tuple(symbols)), pipeline.policy).action not in _GREYLISTING:
                return None
        decision = await greylister.check(
            session.client_ip,
            request.sender,
            request.recipient,
            spf_pass_domain=spf.domain if spf.result is SPFStatus.PASS else None,
            dnswl_hit=connection.dnsbl is not None and bool(connection.dnsbl.allowed),
        )
        if decision.action is not GreylistAction.DEFER:
            return None
        reply = SMTPReply(
            decision.smtp_code or 451,
            decision.enhanced_code or "4.7.1",
            decision.text or "Greylisted, please try again later",
        )
        return Answer(defer_action(reply), f"greylisted: {decision.reason}")

    def _first_answer(self, request: PolicyRequest) -> bool:
        """Whether this message has not yet had its Received-SPF: Postfix asks once per
        recipient, with the same `instance` for one message (older ones: the queue id)."""
        key = request.instance or request.get("queue_id")
        if not key:
            return True
        key = f"{request.client_address}/{key}"
        if key in self._prepended:
            return False
        self._prepended[key] = None
        while len(self._prepended) > PREPENDED_MEMORY:
            self._prepended.popitem(last=False)
        return True

    # -- END-OF-MESSAGE ----------------------------------------------------------------------
    async def _end_of_message(self, request: PolicyRequest) -> Answer:
        user = request.sasl_username
        if not self.config.rate_limits or not user or self.counters is None:
            return Answer(DUNNO, "no rate limit applies")
        try:
            rcpts = max(1, min(int(request.get("recipient_count") or "1"), 1_000_000))
        except ValueError:
            return Answer(MALFORMED, "recipient_count is not a number")
        domain = request.sender.rpartition("@")[2].lower()
        limits = self.pipeline.settings.submission.rate.for_user(user, domain)
        key = f"user:{user.lower()}"
        charges: dict[Charge, str] = {}
        for window, limit in (
            (MINUTE, limits.messages_per_minute),
            (HOUR, limits.messages_per_hour),
            (DAY, limits.messages_per_day),
        ):
            text = f"{user} may send {limit} messages {_WORDS[window.name]}"
            charges[Charge(f"msgs:{key}", window, 1, limit or None)] = text
        text = f"{user} may send to {limits.recipients_per_day} recipients a day"
        charges[Charge(f"rcpts:{key}", DAY, rcpts, limits.recipients_per_day or None)] = text
        refused = await self.counters.charge(list(charges), self.clock())
        if refused is None:
            return Answer(DUNNO, f"rate: {user} charged {rcpts} recipients")
        reply = SMTPReply(451, "4.7.1", f"Rate limit reached ({charges[refused]}); try later")
        return Answer(reply_action(reply), "rate limit")

    async def close(self) -> None:
        if self.counters is not None:
            with contextlib.suppress(Exception):
                await self.counters.close()


def _spf_refusal(spf: SPFResult) -> SMTPReply | None:
    """RFC 7208 §8.4: fail may be refused (550 5.7.23, RFC 7372), with the domain's
    explanation; §8.6: temperror may be deferred (451 4.7.24)."""
    if spf.result is SPFStatus.FAIL:
        why = spf.explanation or f"{spf.domain} does not allow {spf.ip} to send its mail"
        return SMTPReply(550, "5.7.23", f"SPF fail: {why}")
    if spf.result is SPFStatus.TEMPERROR:
        return SMTPReply(451, "4.7.24", f"SPF temporary error for {spf.domain or spf.helo}")
    return None
