"""Forwarding in the gateway: mail to a forwarding address goes on to its external targets
with an SRS envelope sender and an ARC seal of what we verified; a bounce to one of our SRS
addresses goes back to the sender it stands for; a forged or expired one is refused.

Two decorators around what the gateway already has, so the SMTP server itself is unchanged:

    forwarding = Forwarding(forwarder, remote=relay_for_forwarded_mail, sealer=sealer)
    gateway = Gateway(config, forwarding.checks(PipelineChecks(pipeline)),
                      relay=forwarding.downstream(default_relay(config)))

`checks()` refuses forged SRS addresses at RCPT, and at the end of DATA keeps the verdict
(for the seal) and logs when forwarding will fail DMARC anyway (an SPF-only p=reject sender).
`downstream()` opens, for each client transaction, the usual downstream for recipients
delivered here (sender unchanged) and the relay for forwarded ones (sender SRS-rewritten, the
message ARC-sealed above our Authentication-Results, its DKIM signatures untouched). Nothing
that is not forwarded is ever rewritten. Each RCPT is answered by the next hop before the
client hears it, and the message is acknowledged only when every next hop accepted it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mailwarden.arc import ARCStatus, SealingError, header_block, seal
from mailwarden.body import Body, SpooledMessage
from mailwarden.message import Message, MessageError
from mailwarden.pipeline import MessageDecision, MessageVerdict
from mailwarden.signing import Signer, StoreError
from mailwarden.srs import Forwarder, RouteKind, SRSError, dmarc_risk

from .downstream import Downstream, Outbound
from .hooks import Checks, Reply, Session, Transaction

__all__ = ["ARCSealer", "Forwarding"]

log = logging.getLogger("mailwarden.gateway.forward")
_VERDICT = "mailwarden.forwarding.verdict"


@dataclass(frozen=True, slots=True)
class ARCSealer:
    """Seals forwarded mail as `domain` with its active RSA key in the signing store
    (RFC 8617 §5.1), copying the pipeline's Authentication-Results into the AAR."""

    signer: Signer
    domain: str
    authserv_id: str

    def seal(self, head: bytes, body: Body, verdict: MessageVerdict) -> bytes:
        """The head of the message (`head` + `body`, as the gateway relays it) with an ARC set
        above it, or unchanged (and logged) when it cannot be sealed: no key, a chain we did
        not validate, a header section that does not parse. A spooled body is streamed."""
        message = head
        try:
            found = self.signer.arc_key(self.domain)
        except StoreError as exc:
            log.error("ARC seal: the key store is unreadable: %s", exc)
            return message
        if found is None:
            log.warning("ARC seal: no active RSA key for %s in the signing store", self.domain)
            return message
        domain, key = found
        try:
            parsed = Message.from_bytes(head, strict=False)
        except MessageError as exc:
            log.warning("ARC seal: %s", exc)
            return message
        if len(body):  # the body apart (in memory or spooled): the head ends with its separator
            parsed = Message(parsed.fields, parsed.separator, body)
        if verdict.arc is None:
            if parsed.count("arc-seal") or parsed.count("arc-message-signature"):
                return message  # a chain nobody validated: a seal would vouch for it
            chain = ARCStatus.NONE
        else:
            chain = verdict.arc.result
        try:
            fields = seal(
                parsed,
                domain=domain,
                selector=key.selector,
                private_key=key.private_key,
                authserv_id=self.authserv_id,
                auth_results=verdict.authentication_results.format_value(),
                chain_validation=chain,
            )
        except SealingError as exc:
            log.warning("ARC seal: %s", exc)
            return message
        return header_block(fields) + message


class Forwarding:
    """The forwarding of one gateway: its rules, the relay for what leaves, the sealer."""

    def __init__(
        self,
        forwarder: Forwarder,
        *,
        remote: Downstream | None = None,
        sealer: ARCSealer | None = None,
    ) -> None:
        self.forwarder = forwarder
        self.remote = remote
        self.sealer = sealer

    def checks(self, inner: Checks) -> Checks:
        return _ForwardingChecks(inner, self.forwarder)

    def downstream(self, local: Downstream) -> Downstream:
        return _ForwardingDownstream(local, self.remote or local, self)


class _ForwardingChecks:
    """The gateway's checks, plus what forwarding needs from them."""

    def __init__(self, inner: Checks, forwarder: Forwarder) -> None:
        self.inner = inner
        self.forwarder = forwarder

    async def on_connect(self, session: Session) -> Reply | None:
        return await self.inner.on_connect(session)

    async def on_helo(self, session: Session) -> Reply | None:
        return await self.inner.on_helo(session)

    async def on_mail(self, session: Session, tx: Transaction) -> Reply | None:
        return await self.inner.on_mail(session, tx)

    async def on_rcpt(self, session: Session, tx: Transaction, rcpt: str) -> Reply | None:
        route = self.forwarder.route(rcpt)
        if route.kind is RouteKind.REFUSE:
            # a bounce to an address we never wrote (or wrote too long ago): backscatter
            return Reply(550, "5.1.1", f"<{rcpt}>: Recipient address rejected: {route.reason}")
        return await self.inner.on_rcpt(session, tx, rcpt)

    async def on_data(
        self, session: Session, tx: Transaction, message: bytes | SpooledMessage
    ) -> MessageDecision:
        decision = await self.inner.on_data(session, tx, message)
        session.data[_VERDICT] = (tx.id, decision.verdict)
        forwarded = {
            rcpt: list(route.remote)
            for rcpt in tx.rcpts
            if (route := self.forwarder.route(rcpt)).remote
        }
        if forwarded:
            decision.log["forwarded"] = forwarded
            verdict = decision.verdict
            warning = dmarc_risk(verdict.dmarc) if verdict is not None else None
            if warning is not None and decision.reply is None:
                decision.log["forwarding_warning"] = warning
                log.warning("forwarding %s: %s", tx.id, warning)
        return decision

    async def on_disconnect(self, session: Session) -> None:
        session.data.pop(_VERDICT, None)
        await self.inner.on_disconnect(session)


class _ForwardingDownstream:
    def __init__(self, local: Downstream, remote: Downstream, forwarding: Forwarding) -> None:
        self.local = local
        self.remote = remote
        self.forwarding = forwarding

    async def open(self, session: Session) -> Outbound:
        return _ForwardingOutbound(session, self)

    async def close(self) -> None:
        await self.local.close()
        if self.remote is not self.local:
            await self.remote.close()


class _Leg:
    """One next hop of a transaction: opened at its first recipient."""

    def __init__(self, downstream: Downstream) -> None:
        self.downstream = downstream
        self.outbound: Outbound | None = None
        self.accepted = 0

    async def rcpt(
        self, session: Session, sender: str, params: dict[str, str | None], rcpt: str
    ) -> Reply:
        if self.outbound is None:
            self.outbound = await self.downstream.open(session)
            try:
                reply = await self.outbound.mail(sender, params)
            except BaseException:  # Unavailable, cancelled: never leave the connection open
                await self.close()
                raise
            if reply.code >= 300:
                await self.close()
                return reply
        reply = await self.outbound.rcpt(rcpt)
        if reply.code < 300:
            self.accepted += 1
        return reply

    async def close(self) -> None:
        outbound, self.outbound, self.accepted = self.outbound, None, 0
        if outbound is not None:
            await outbound.close()


class _ForwardingOutbound:
    """One client transaction, split between the local downstream and the forward relay."""

    def __init__(self, session: Session, owner: _ForwardingDownstream) -> None:
        self.session = session
        self.forwarding = owner.forwarding
        self.local = _Leg(owner.local)
        self.remote = _Leg(owner.remote)
        self.sender = ""
        self.params: dict[str, str | None] = {}

    async def mail(self, sender: str, params: dict[str, str | None]) -> Reply:
        """Remembered: each next hop gets its MAIL at its first recipient."""
        self.sender, self.params = sender, dict(params)
        return Reply(250, "2.1.0", "Ok")

    async def rcpt(self, rcpt: str) -> Reply:
        route = self.forwarding.forwarder.route(rcpt)
        if route.kind is RouteKind.REFUSE:
            return Reply(550, "5.1.1", f"<{rcpt}>: Recipient address rejected: {route.reason}")
        replies: list[Reply] = []
        for target in route.local:
            replies.append(await self.local.rcpt(self.session, self.sender, self.params, target))
        if route.remote:
            try:
                sender = self.forwarding.forwarder.sender(self.sender)
            except SRSError as exc:
                return Reply(550, "5.1.7", f"Sender address cannot be forwarded: {exc}")
            for target in route.remote:
                replies.append(await self.remote.rcpt(self.session, sender, self.params, target))
        accepted = [r for r in replies if r.code < 300]
        if accepted:  # a target refused among others accepted is in the downstream's hands
            return Reply(250, "2.1.5", "Ok") if route.kind is not RouteKind.LOCAL else accepted[0]
        return replies[0] if replies else Reply(550, "5.1.1", f"<{rcpt}>: no target")

    async def data(self, head: bytes, body: Body = b"") -> list[Reply]:
        replies: list[Reply] = []
        if self.local.outbound is not None and self.local.accepted:
            replies += await self.local.outbound.data(head, body)
        if self.remote.outbound is not None and self.remote.accepted:
            replies += await self.remote.outbound.data(self._sealed(head, body), body)
        return replies

    def _sealed(self, head: bytes, body: Body) -> bytes:
        sealer = self.forwarding.sealer
        kept = self.session.data.get(_VERDICT)
        if sealer is None or not isinstance(kept, tuple):
            return head
        verdict = kept[1]
        if not isinstance(verdict, MessageVerdict):
            return head
        return sealer.seal(head, body, verdict)

    async def reset(self) -> Reply:
        await self.local.close()
        await self.remote.close()
        return Reply(250, "2.0.0", "Ok")

    async def close(self) -> None:
        await self.local.close()
        await self.remote.close()
