"""The gateway's `Checks`, on the pipeline: SMTP sessions translated to pipeline stages.

Each connection keeps one `SessionChecks` and each transaction one `TransactionChecks`
(mailwarden.pipeline); this adapter only moves the gateway's facts (client address, HELO
name, recipients, strict-SMTP events) into them and their answers back.
"""

from __future__ import annotations

from mailwarden.body import SpooledMessage
from mailwarden.pipeline import MessageDecision, Pipeline, SessionChecks
from mailwarden.pipeline import TransactionChecks as PipelineTransaction
from mailwarden.symbols import Symbol

from .hooks import Reply, Session, Transaction

__all__ = ["PipelineChecks"]

_SESSION = "mailwarden.session"
_TRANSACTION = "mailwarden.transaction"


class PipelineChecks:
    """Implements the gateway's `Checks` hooks with a `Pipeline`."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def _session(self, session: Session) -> SessionChecks:
        checks = session.data.get(_SESSION)
        if not isinstance(checks, SessionChecks):
            checks = SessionChecks(self.pipeline, session.client_ip, trusted=session.trusted)
            session.data[_SESSION] = checks
        return checks

    def _transaction(self, session: Session, tx: Transaction) -> PipelineTransaction:
        checks = tx.data.get(_TRANSACTION)
        if not isinstance(checks, PipelineTransaction):
            checks = self._session(session).mail(tx.mail_from, session.helo or "", queue_id=tx.id)
            tx.data[_TRANSACTION] = checks
        return checks

    async def on_connect(self, session: Session) -> Reply | None:
        self._session(session)
        return None

    async def on_helo(self, session: Session) -> Reply | None:
        self._session(session).helo(session.helo or "")
        return None

    async def on_mail(self, session: Session, tx: Transaction) -> Reply | None:
        self._transaction(session, tx)
        return None

    async def on_rcpt(self, session: Session, tx: Transaction, rcpt: str) -> Reply | None:
        return await self._transaction(session, tx).rcpt(rcpt, _events(session))

    async def on_data(
        self, session: Session, tx: Transaction, message: bytes | SpooledMessage
    ) -> MessageDecision:
        checks = self._transaction(session, tx)
        decision = await checks.data(message, tx.rcpts, _events(session), smtputf8=tx.smtputf8)
        verdict = decision.verdict
        if verdict is not None and verdict.iprev is not None and verdict.iprev.result == "pass":
            session.reverse_name = verdict.iprev.name  # our Received field shows it
        return decision

    async def on_disconnect(self, session: Session) -> None:
        checks = session.data.pop(_SESSION, None)
        if isinstance(checks, SessionChecks):
            await checks.close()


def _events(session: Session) -> list[Symbol]:
    """Strict-SMTP findings as policy symbols (PREGREET, PIPELINING_ABUSE, BARE_LF, ...)."""
    return [Symbol(event.value, 0.0, "seen by the SMTP server") for event in session.events]
