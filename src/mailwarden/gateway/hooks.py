"""The seam between the SMTP gateway and the checks: plain state in, an SMTP answer out.

The gateway calls a `Checks` implementation at each SMTP stage:

    on_connect  once per connection, concurrently with the greet pause
    on_helo     when the client names itself with a new HELO/EHLO name (not again for the
                same name after STARTTLS)
    on_mail     once per transaction, after MAIL FROM was parsed and accepted by the gateway
    on_rcpt     once per recipient, after the gateway's own relay control accepted it
    on_data     once per transaction, with the whole message (after DATA or BDAT LAST),
                before anything is relayed
    on_disconnect  once per connection, whatever ended it

A front end that authenticates clients (the submission server, RFC 4954) also passes an
`Authenticator`: the gateway then offers AUTH inside TLS only, runs the SASL exchange, asks the
authenticator, and requires authentication before MAIL.

A hook answers `None` to go on, or a `Reply` to refuse (4xx temporary, 5xx permanent). A check
that learns something early (a DNS-list hit at connect) may instead set
`session.deferred_reply`: the gateway then refuses every RCPT and DATA with it, as postscreen
does, so the log still shows who the client wanted to reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from mailwarden.body import SpooledMessage
from mailwarden.pipeline import MessageDecision
from mailwarden.reply import SMTPReply

if TYPE_CHECKING:
    from .sasl import Credentials

__all__ = [
    "AcceptAll",
    "Authenticator",
    "Checks",
    "Event",
    "MessageDecision",
    "Reply",
    "Session",
    "TLSInfo",
    "Transaction",
]

Reply = SMTPReply
"""An SMTP reply: `code`, enhanced `status` (RFC 3463) and `text`."""


class Event(StrEnum):
    """Strict-SMTP findings about a client (postscreen's tests), for the policy to score."""

    PREGREET = "PREGREET"  # sent before the 220 greeting
    PIPELINING_ABUSE = "PIPELINING_ABUSE"  # sent ahead of a reply without PIPELINING
    BARE_LF = "BARE_LF"  # LF without CR (a command or the message)
    BARE_CR = "BARE_CR"  # CR without LF inside a line
    SMUGGLING = "SMUGGLING"  # a false end-of-data sequence (LF.LF, CR.CR, LF.CRLF, CRLF.LF)
    NON_SMTP_COMMAND = "NON_SMTP_COMMAND"  # an HTTP request line or similar
    UNKNOWN_COMMAND = "UNKNOWN_COMMAND"
    NO_HELO = "NO_HELO"  # MAIL before HELO/EHLO
    TOO_MANY_ERRORS = "TOO_MANY_ERRORS"
    LINE_TOO_LONG = "LINE_TOO_LONG"
    TIMEOUT = "TIMEOUT"
    STARTTLS_INJECTION = "STARTTLS_INJECTION"  # commands pipelined behind STARTTLS
    TOO_MANY_JUNK_COMMANDS = "TOO_MANY_JUNK_COMMANDS"  # NOOP, RSET, VRFY... beyond the limit
    SLOW_DATA = "SLOW_DATA"  # message data below the minimum rate (slowloris)
    BAD_BDAT = "BAD_BDAT"  # a BDAT whose chunk size cannot be read


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """The TLS session after STARTTLS."""

    version: str  # "TLSv1.3"
    cipher: str  # "TLS_AES_256_GCM_SHA384"
    bits: int | None = None


@dataclass(slots=True)
class Session:
    """One client connection. `data` is the checks' own state; the gateway never reads it."""

    id: str
    client_ip: str
    client_port: int
    started: float  # wall-clock time (seconds since the epoch) of the connection
    local_ip: str = ""
    local_port: int = 0
    helo: str | None = None  # the last HELO/EHLO name (reset by STARTTLS, RFC 3207 §4.2)
    esmtp: bool = False  # EHLO (not HELO) was used
    tls: TLSInfo | None = None
    reverse_name: str | None = None  # the client's verified host name, if a check found one
    trusted: bool = False  # the client is in a configured trusted network
    events: list[Event] = field(default_factory=list)
    deferred_reply: Reply | None = None  # refuse every RCPT and DATA with this (postscreen)
    transactions: int = 0  # transactions started so far (MAIL commands accepted)
    auth: str | None = None  # the identity the client authenticated as (SMTP AUTH)
    data: dict[str, object] = field(default_factory=dict)

    def add_event(self, event: Event) -> None:
        """Record a strict-SMTP finding once."""
        if event not in self.events:
            self.events.append(event)


@dataclass(slots=True)
class Transaction:
    """One mail transaction: from MAIL FROM to the end of DATA (or RSET)."""

    id: str  # the queue id: session id and transaction number
    mail_from: str  # the reverse-path without angle brackets ("" is the null sender)
    mail_options: dict[str, str | None] = field(default_factory=dict)  # ESMTP parameters
    rcpts: list[str] = field(default_factory=list)  # recipients accepted so far
    rejected_rcpts: list[tuple[str, str]] = field(default_factory=list)  # (rcpt, reply)
    smtputf8: bool = False
    data: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class Checks(Protocol):
    """The checks the gateway runs at each SMTP stage (see the module docstring)."""

    async def on_connect(self, session: Session) -> Reply | None:
        """Start the connection checks (DNS lists, iprev); a Reply refuses the connection."""
        ...

    async def on_helo(self, session: Session) -> Reply | None:
        """HELO checks and SPF for the HELO identity (`session.helo`)."""
        ...

    async def on_mail(self, session: Session, tx: Transaction) -> Reply | None:
        """SPF for MAIL FROM: start it here, it may run on while RCPTs arrive."""
        ...

    async def on_rcpt(self, session: Session, tx: Transaction, rcpt: str) -> Reply | None:
        """After the gateway's relay control accepted `rcpt` (greylisting at RCPT time)."""
        ...

    async def on_data(
        self, session: Session, tx: Transaction, message: bytes | SpooledMessage
    ) -> MessageDecision:
        """`message` has CRLF line ends, is dot-unstuffed, without the gateway's headers; a
        large one comes spooled (its body in a file the gateway removes afterwards).
        `reply` None relays it, written from the decision's `message` (the checks' parse) with
        `add_headers` added and `remove_fields` dropped; a Reply refuses it."""
        ...

    async def on_disconnect(self, session: Session) -> None:
        """The connection is gone: release what on_connect started."""
        ...


@runtime_checkable
class Authenticator(Protocol):
    """Checks the credentials of SMTP AUTH (RFC 4954), run only inside TLS."""

    async def authenticate(self, session: Session, credentials: Credentials) -> str | Reply:
        """The identity the client is now authenticated as, or the refusal: 535 5.7.8 for
        bad credentials, 454 4.7.0 for a temporary failure or a blocked client."""
        ...


class AcceptAll:
    """No checks: every stage goes on and every message is relayed unchanged."""

    async def on_connect(self, session: Session) -> Reply | None:
        return None

    async def on_helo(self, session: Session) -> Reply | None:
        return None

    async def on_mail(self, session: Session, tx: Transaction) -> Reply | None:
        return None

    async def on_rcpt(self, session: Session, tx: Transaction, rcpt: str) -> Reply | None:
        return None

    async def on_data(
        self, session: Session, tx: Transaction, message: bytes | SpooledMessage
    ) -> MessageDecision:
        return MessageDecision(log={"action": "accept"})

    async def on_disconnect(self, session: Session) -> None:
        return None
