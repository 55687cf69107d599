"""The checks by SMTP stage, for the gateway: each starts as soon as its inputs are known.

connect: iprev and the address DNS lists start in the background. HELO: the HELO checks and
SPF for the HELO identity. MAIL: SPF for MAIL FROM, running while RCPTs arrive. RCPT: hard
DNS-list hits refuse here (after the client named its recipients, as postscreen does), and
greylisting when configured for RCPT time. End of DATA: DKIM, ARC, DMARC and the policy, with
the greylisting decision by default. Each check runs once per transaction (per connection for
the connection checks, per HELO name for the HELO checks), however many EHLO, STARTTLS and
MAIL commands there are.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from mailwarden.authres import remove_forged
from mailwarden.gateway.hooks import DataDecision, Event, Reply, Session, Transaction
from mailwarden.greylist import GreylistAction, Greylister, GreylistStage
from mailwarden.policy import Action, Facts, decide, spf_symbols
from mailwarden.spf import SPFResult, SPFStatus, received_spf
from mailwarden.symbols import Symbol
from mailwarden.verdict import Authenticator, ConnectionFacts, HeloFacts, MessageVerdict

__all__ = ["StagedChecks", "StagedOptions"]

T = TypeVar("T")

_CONNECTION = "mailwarden.connection"
_HELO = "mailwarden.helo"
_SPF = "mailwarden.spf"


@dataclass(frozen=True, slots=True)
class StagedOptions:
    """How the gateway applies the verdict."""

    greylist_stage: GreylistStage = GreylistStage.DATA
    quarantine_to: str | None = None  # redirect spam (add_header) here instead of tagging only
    add_received_spf: bool = True


class StagedChecks:
    """Implements the gateway's `Checks` hooks with an `Authenticator` and a `Greylister`."""

    def __init__(
        self,
        authenticator: Authenticator,
        *,
        greylister: Greylister | None = None,
        options: StagedOptions | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.greylister = greylister
        self.options = options or StagedOptions()

    # -- hooks ------------------------------------------------------------------------------
    async def on_connect(self, session: Session) -> Reply | None:
        if not session.trusted:
            _start(session, _CONNECTION, self.authenticator.connection_checks(session.client_ip))
        return None

    async def on_helo(self, session: Session) -> Reply | None:
        helo = session.helo or ""
        facts = session.data.get(_HELO)
        if isinstance(facts, tuple) and facts[0] == helo:
            return None  # the same name again (after STARTTLS): checked already
        old = facts[1] if isinstance(facts, tuple) else None
        if isinstance(old, asyncio.Future):
            old.cancel()
        task = asyncio.ensure_future(self.authenticator.helo_checks(session.client_ip, helo))
        session.data[_HELO] = (helo, task)
        return None

    async def on_mail(self, session: Session, tx: Transaction) -> Reply | None:
        task = self.authenticator.mail_checks(session.client_ip, session.helo or "", tx.mail_from)
        _start(tx, _SPF, task)
        return None

    async def on_rcpt(self, session: Session, tx: Transaction, rcpt: str) -> Reply | None:
        if session.trusted:
            return None
        connection = await self._connection(session)
        symbols = list(connection.dnsbl.symbols) if connection.dnsbl is not None else []
        policy = self.authenticator.policy
        for name in policy.hard_reject_symbols:  # a hard listing refuses before the body
            if any(s.name == name for s in symbols):
                verdict = decide(Facts(tuple(symbols)), policy)
                return verdict.reply
        if self.greylister is None or self.options.greylist_stage is not GreylistStage.RCPT:
            return None
        # The classic triplet check, on the facts known at RCPT time.
        if not isinstance(tx.data.get(_SPF), asyncio.Future):
            await self.on_mail(session, tx)
        spf: SPFResult = await _result(tx.data[_SPF])
        helo = await self._helo(session)
        symbols += spf_symbols(spf, helo.spf)
        if connection.iprev is not None:
            symbols.append(connection.iprev.symbol)
        if helo.helo is not None:
            symbols += helo.helo.symbols
        symbols += _event_symbols(session)
        verdict = decide(Facts(tuple(symbols)), policy)
        if verdict.action is not Action.GREYLIST:
            return None
        return await self._greylist(session, tx, [rcpt], spf, connection)

    async def on_data(self, session: Session, tx: Transaction, message: bytes) -> DataDecision:
        auth = self.authenticator
        connection = asyncio.ensure_future(self._connection(session))
        helo = asyncio.ensure_future(self._helo(session))
        spf_task = tx.data.get(_SPF)
        spf = (
            _result(spf_task)
            if isinstance(spf_task, asyncio.Future)
            else auth.mail_checks(session.client_ip, session.helo or "", tx.mail_from)
        )
        verdict = await auth.message_checks(
            message,
            ip=session.client_ip,
            helo=session.helo or "",
            mail_from=tx.mail_from,
            connection=connection,
            helo_facts=helo,
            spf=spf,
            trusted_network=session.trusted,
            extra_symbols=_event_symbols(session),
        )
        decision = DataDecision(
            prepend_headers=self._headers(verdict),
            remove_headers=lambda name, value: _forged(name, value, auth.authserv_id),
            log=_log(verdict),
        )
        action = verdict.policy.action
        if action is Action.GREYLIST and self.options.greylist_stage is GreylistStage.DATA:
            reply = None
            if self.greylister is not None:
                facts = await connection
                reply = await self._greylist(session, tx, tx.rcpts, verdict.spf, facts)
            decision.log["greylist"] = "deferred" if reply is not None else "passed"
            decision.reply = reply
        elif action in (Action.SOFT_REJECT, Action.REJECT):
            decision.reply = verdict.policy.reply
        elif action is Action.ADD_HEADER and self.options.quarantine_to:
            decision.redirect_to = [self.options.quarantine_to]
        return decision

    async def on_disconnect(self, session: Session) -> None:
        for key in (_CONNECTION, _HELO):
            value = session.data.pop(key, None)
            task = value[1] if isinstance(value, tuple) else value
            if isinstance(task, asyncio.Future):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # -- helpers ----------------------------------------------------------------------------
    async def _connection(self, session: Session) -> ConnectionFacts:
        task = session.data.get(_CONNECTION)
        if not isinstance(task, asyncio.Future):
            if session.trusted:
                return ConnectionFacts(None, None)
            task = _start(
                session, _CONNECTION, self.authenticator.connection_checks(session.client_ip)
            )
        facts: ConnectionFacts = await _result(task)
        return facts

    async def _helo(self, session: Session) -> HeloFacts:
        facts = session.data.get(_HELO)
        if not isinstance(facts, tuple) or facts[0] != (session.helo or ""):
            await self.on_helo(session)
            facts = session.data[_HELO]
        assert isinstance(facts, tuple)
        found: HeloFacts = await _result(facts[1])
        return found

    async def _greylist(
        self,
        session: Session,
        tx: Transaction,
        rcpts: list[str],
        spf: SPFResult,
        connection: ConnectionFacts,
    ) -> Reply | None:
        assert self.greylister is not None
        spf_domain = spf.domain if spf.result is SPFStatus.PASS else None
        dnswl = connection.dnsbl is not None and bool(connection.dnsbl.allowed)
        # Every recipient's triplet is recorded, so one retry passes them all together.
        decisions = [
            await self.greylister.check(
                session.client_ip,
                tx.mail_from,
                rcpt,
                spf_pass_domain=spf_domain,
                dnswl_hit=dnswl,
            )
            for rcpt in rcpts or [""]
        ]
        deferred = [d for d in decisions if d.action is GreylistAction.DEFER]
        if not deferred:
            return None
        longest = max(deferred, key=lambda d: d.retry_after)
        return Reply(
            longest.smtp_code or 451,
            longest.enhanced_code or "4.7.1",
            longest.text or "Greylisted, please try again later",
        )

    def _headers(self, verdict: MessageVerdict) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        name, _, value = verdict.authentication_results.partition(":")
        headers.append((name, _unfold(value)))
        if self.options.add_received_spf:
            spf_name, _, spf_value = received_spf(
                verdict.spf, self.authenticator.authserv_id
            ).partition(":")
            headers.append((spf_name, spf_value.strip()))
        headers.extend(verdict.policy.headers())
        return headers


def _start(holder: Session | Transaction, key: str, work: Awaitable[T]) -> asyncio.Future[T]:
    task = asyncio.ensure_future(work)
    holder.data[key] = task
    return task


async def _result(task: object) -> Any:
    assert isinstance(task, asyncio.Future)
    return await asyncio.shield(task)


def _event_symbols(session: Session) -> list[Symbol]:
    """Strict-SMTP findings as policy symbols (PREGREET, PIPELINING_ABUSE, BARE_LF, ...)."""
    return [Symbol(event.value, 0.0, "seen by the SMTP server") for event in session.events]


def _unfold(value: str) -> str:
    return " ".join(value.replace("\r\n", " ").split())


def _forged(name: str, value: str, authserv_id: str) -> bool:
    """Authentication-Results and ARC-Authentication-Results claiming our authserv-id."""
    kept = remove_forged([(name, value)], authserv_id)
    return not kept


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
    }


# Events the gateway records that the policy scores (see DEFAULT_SCORES).
SCORED_EVENTS = frozenset({Event.PREGREET, Event.PIPELINING_ABUSE, Event.BARE_LF})
