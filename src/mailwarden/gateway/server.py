"""The receiving gateway: an ESMTP server (RFC 5321) and before-queue proxy.

One task per connection runs `_Connection.run`, a state machine over `Stream`: greet pause,
greeting, then one command at a time. Strict-SMTP findings (pregreet, pipelining abuse, bare
line ends, smuggling, non-SMTP commands) are recorded in `session.events` for the checks and,
as configured, answered at once. Mail is relayed while the client waits: the client's 250 for
the end of data is the downstream's 250; nothing else is ever acknowledged.

Extensions offered: PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8
(RFC 6531), ENHANCEDSTATUSCODES (RFC 2034), CHUNKING (RFC 3030, without BINARYMIME) and
STARTTLS (RFC 3207); with an `Authenticator` (the submission server), AUTH PLAIN and LOGIN
inside TLS only (RFC 4954), required before MAIL, and with `implicit_tls` the whole connection
in TLS from the first octet (RFC 8314 §3.3).

What one client can hold is bounded: connections (counted once admitted, so a burst beyond
the limit is refused only its excess), the session's total time, the rate of message data,
junk commands (NOOP, RSET, VRFY, EXPN, HELP, repeated HELO/EHLO, empty BDAT chunks), errors
and unknown commands; each ends the session with 421. Replies never carry what the client
should not see (a downstream's address, an exception); that goes to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from mailwarden import metrics
from mailwarden.body import SpooledMessage
from mailwarden.pipeline import MessageDecision
from mailwarden.runtime import close_listener
from mailwarden.settings import BareLineEnding, GatewaySettings, StrictAction

from .admission import SharedAdmission
from .commands import (
    Command,
    CommandError,
    is_non_smtp,
    parse_bdat,
    parse_command,
    parse_path_and_params,
)
from .data import ChunkedMessage, DataResult, MemoryBudget, Spool, read_data
from .downstream import (
    Downstream,
    DownstreamConnection,
    DownstreamRelay,
    Outbound,
    Unavailable,
    public_reply,
)
from .headers import received_field, relayed_message
from .hooks import (
    AcceptAll,
    Authenticator,
    Checks,
    Event,
    Reply,
    Session,
    TLSInfo,
    Transaction,
)
from .log import TransactionLog
from .relay import PathError, RelayControl, load_recipient_map, parse_path, postmaster_address
from .sasl import (
    LOGIN_PASSWORD,
    LOGIN_USERNAME,
    Credentials,
    Mechanism,
    SASLError,
    decode_response,
    parse_auth_command,
    parse_login_field,
    parse_plain,
)
from .sink import MaildirRelay
from .stream import (
    ConnectionClosed,
    DataRate,
    DataTooSlow,
    LineTooLong,
    SessionTimeExceeded,
    Stream,
)
from .tls import ensure_self_signed, server_context

__all__ = ["Gateway"]

log = logging.getLogger("mailwarden.gateway")
T = TypeVar("T")

# RFC 2920 §3.1: these end a group of pipelined commands; data after them is abuse.
_LAST_IN_GROUP = frozenset({"EHLO", "HELO", "DATA", "VRFY", "EXPN", "TURN", "STARTTLS"})
_INTERNAL = Reply(451, "4.3.0", "Error: internal error, try again later")
_FAILED: Reply | None = _INTERNAL  # what a check that raised answers
CHUNK_READ = 65536  # octets of a BDAT chunk read at a time


class _Close(Exception):
    """End the connection (the reply, if any, was sent)."""


class Gateway:
    """The SMTP gateway. `async with Gateway(config) as gw:` listens until the block ends.

    `checks` defaults to `AcceptAll()`; `relay` to the downstream of `config.relay_to` or,
    without one, the built-in Maildir sink under the data directory; `log` to the configured
    log file. `clock` gives wall-clock seconds (Received dates, session start).

    `auth` makes it a message submission agent (RFC 6409): AUTH is offered inside TLS, and MAIL
    needs an authenticated client, whose recipients may be anywhere. `implicit_tls` speaks TLS
    from the first octet (port 465, RFC 8314 §3.3) and needs a TLS context.

    Worker processes (`serve --workers N`): `admission` counts connections against the limits
    in memory all workers share, `reuse_port` lets each worker listen on the same port
    (SO_REUSEPORT: the kernel spreads new connections over them), and `spool_dir` gives each
    its own spool (a worker starting up clears only its own left-overs).
    """

    def __init__(
        self,
        config: GatewaySettings,
        checks: Checks | None = None,
        *,
        relay: Downstream | None = None,
        log: TransactionLog | None = None,
        tls_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
        auth: Authenticator | None = None,
        implicit_tls: bool = False,
        admission: SharedAdmission | None = None,
        reuse_port: bool = False,
        spool_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.admission = admission
        self.reuse_port = reuse_port
        self.auth = auth
        self.implicit_tls = implicit_tls
        self.checks: Checks = checks if checks is not None else AcceptAll()
        self.relay: Downstream = relay if relay is not None else default_relay(config)
        self.log = log if log is not None else TransactionLog(config.log_file)
        self.clock = clock
        recipients = load_recipient_map(config.recipient_map) if config.recipient_map else None
        self.relay_control = RelayControl.build(config.local_domains, recipients)
        budget = MemoryBudget(config.limits.memory_budget)
        spool = spool_dir if spool_dir is not None else Path(config.data_dir) / "spool"
        self.spool = Spool(spool, config.limits.spool_threshold, budget)
        self.tls_context = tls_context if tls_context is not None else self._tls_context()
        if implicit_tls and self.tls_context is None:
            raise ValueError("implicit TLS needs a certificate (or a self-signed pair)")
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: dict[asyncio.Task[None], _Connection] = {}  # between transactions
        self._stopping = False
        self._sessions = 0  # admitted connections (refused ones are never counted)
        self._per_client: Counter[str] = Counter()  # admitted connections per client address
        self._ehlo_lines = self._ehlo_keywords()
        self._hidden = (config.relay_to[0],) if config.relay_to else ()

    def _tls_context(self) -> ssl.SSLContext | None:
        tls = self.config.tls
        if not tls.enabled:
            return None
        if tls.cert_file:
            return server_context(tls.cert_file, tls.key_file)
        if tls.self_signed:
            cert, key = ensure_self_signed(Path(self.config.data_dir) / "tls", self.config.hostname)
            return server_context(cert, key)
        return None

    def _ehlo_keywords(self) -> list[str]:
        return [
            "PIPELINING",
            f"SIZE {self.config.limits.max_message_size}",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "CHUNKING",
        ]

    # lifecycle

    async def start(self) -> None:
        host, port = self.config.listen
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.spool.prepare)  # files left by a crash are not mail
        tls: dict[str, Any] = {}
        if self.implicit_tls:
            handshake = self.config.timeouts.tls_handshake
            tls = {"ssl": self.tls_context, "ssl_handshake_timeout": handshake}
        self._server = await loop.create_server(
            lambda: Stream(self._open, tls=self.implicit_tls),
            host,
            port,
            reuse_address=True,
            reuse_port=self.reuse_port or None,
            backlog=1024,
            **tls,
        )

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually bound (port 0 in the configuration picks a free one)."""
        assert self._server is not None
        assert self._server.sockets
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def close_listener(self) -> None:
        """No new connections; the sessions open go on as they were (`stop_accepting` tells
        them). Worker processes each close theirs, then all tell (cli/workers.py)."""
        if self._server is not None:
            await close_listener(self._server)  # runtime's: no accepted connection leaked

    async def stop_accepting(self) -> None:
        """An orderly stop: no new connections; a session waiting between transactions is
        closed now with 421 4.3.2 (RFC 5321 §3.8), one in a transaction when it ends."""
        self._stopping = True
        await self.close_listener()
        for task, connection in list(self._waiting.items()):
            connection.shutting_down()
            task.cancel()

    async def wait_idle(self, seconds: float) -> bool:
        """Wait up to `seconds` for the open connections to end; True when none is left."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=seconds)
        return not pending

    async def close(self) -> None:
        if self._server is not None:
            await close_listener(self._server)
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.relay.close()
        self.log.close()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connections(self) -> int:
        """Connections open, admitted or being refused."""
        return len(self._tasks)

    @property
    def sessions(self) -> int:
        """Connections admitted (what the connection limits count)."""
        return self._sessions

    def _admit(self, ip: str) -> Reply | None:
        """Count a new connection in, or say why not. Synchronous: in a burst, every
        connection sees the count of those admitted before it, never of those refused."""
        limits = self.config.limits
        if self.admission is not None:  # the limits hold across the worker processes
            refused = self.admission.admit(ip)
        elif self._sessions >= limits.max_connections:
            refused = "total"
        elif self._per_client[ip] >= limits.max_connections_per_client:
            refused = "client"
        else:
            refused = None
        if refused == "total":
            return Reply(421, "4.7.0", f"{self.config.hostname} Error: too many connections")
        if refused == "client":
            return Reply(421, "4.7.0", f"Error: too many connections from {ip}")
        self._sessions += 1
        self._per_client[ip] += 1
        return None

    def _release(self, ip: str) -> None:
        if self.admission is not None:
            self.admission.release(ip)
        self._sessions -= 1
        self._per_client[ip] -= 1
        if self._per_client[ip] <= 0:
            del self._per_client[ip]

    def _open(self, stream: Stream) -> None:
        task = asyncio.get_running_loop().create_task(_Connection(self, stream).run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # A task cancelled before its first step never reaches its `finally`: close here too.
        task.add_done_callback(lambda _: stream.close())


def default_relay(config: GatewaySettings) -> Downstream:
    if config.relay_to is None:
        return MaildirRelay(config.sink_maildir())
    host, port = config.relay_to
    return DownstreamRelay(
        host, port, dialect=config.protocol, helo_name=config.hostname, timeouts=config.timeouts
    )


class _Connection:
    """One client connection: the SMTP state machine."""

    def __init__(self, gateway: Gateway, stream: Stream) -> None:
        self.gw = gateway
        self.config = gateway.config
        self.checks = gateway.checks
        self.stream = stream
        peer = stream.extra("peername")
        local = stream.extra("sockname")
        ip, port = _host_port(peer)
        local_ip, local_port = _host_port(local)
        self.session = Session(
            id=f"{random.getrandbits(48):012X}",  # unique, not secret: no system call
            client_ip=ip,
            client_port=port,
            started=gateway.clock(),
            local_ip=local_ip,
            local_port=local_port,
            trusted=self.config.is_trusted(ip),
            tls=_tls_info(stream) if gateway.implicit_tls else None,
        )
        self.tx: Transaction | None = None
        self.tx_started = 0.0
        self.outbound: Outbound | None = None
        self.errors = 0
        self.unknown = 0
        self.junk = 0  # junk commands since the start or the last delivered message
        self.helo_checked: str | None = None
        self.logged_tx = False
        self.hooked = False
        self.close_reason = ""
        self.chunked: ChunkedMessage | None = None  # the transaction's BDAT chunks so far
        self.chunks_started = 0.0
        self.bdat_failed: Reply | None = None  # a failed BDAT transaction: discard its chunks
        self.tx_extra: dict[str, Any] = {}  # for the transaction's log line

    # plumbing

    async def reply(self, reply: Reply, *, count_error: bool = True) -> None:
        metrics.reply_sent("gateway", reply.code)
        await self.stream.write(_wire(reply), self.config.timeouts.command)
        if reply.code >= 400 and count_error:
            self.errors += 1
            if self.errors >= self.config.limits.max_errors:
                self.session.add_event(Event.TOO_MANY_ERRORS)
                await self.hang_up(
                    Reply(421, "4.7.0", f"{self.config.hostname} Error: too many errors")
                )

    async def hang_up(self, reply: Reply) -> None:
        """Say `reply` (without waiting for the client to read it) and end the connection."""
        metrics.reply_sent("gateway", reply.code)
        self.stream.write_last(_wire(reply))
        self.close_reason = self.close_reason or reply.text
        raise _Close

    async def junk_command(self) -> None:
        """Count a command that moves no mail (Postfix's smtpd_junk_command_limit)."""
        self.junk += 1
        if self.junk > self.config.limits.max_junk_commands:
            self.session.add_event(Event.TOO_MANY_JUNK_COMMANDS)
            await self.hang_up(
                Reply(421, "4.7.0", f"{self.config.hostname} Error: too many junk commands")
            )

    async def hook(self, call: Callable[[], Awaitable[T]], default: T) -> T:
        """Call a check; a check that breaks answers 451 (and is logged), never a traceback."""
        try:
            return await call()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("check failed in session %s", self.session.id)
            return default

    # the connection

    async def run(self) -> None:
        gw, session, hostname = self.gw, self.session, self.config.hostname
        refusal = gw._admit(session.client_ip)
        metrics.connection_opened("gateway")
        try:
            if refusal is not None:
                await self.hang_up(refusal)
            loop = asyncio.get_running_loop()
            self.stream.session_deadline = loop.time() + self.config.timeouts.session
            await self.greet()
            while True:
                await self.command()
        except _Close:
            pass
        except ConnectionClosed:
            self.close_reason = self.close_reason or "client disconnected"
        except TimeoutError as exc:
            session.add_event(Event.TIMEOUT)
            if isinstance(exc, SessionTimeExceeded):
                self.close_reason, text = "session time limit", "session time limit exceeded"
            elif isinstance(exc, DataTooSlow):
                session.add_event(Event.SLOW_DATA)
                self.close_reason, text = "data rate too low", "data rate too low"
            else:
                self.close_reason, text = "timeout", "timeout exceeded"
            self.stream.write_last(_wire(Reply(421, "4.4.2", f"{hostname} Error: {text}")))
        except asyncio.CancelledError:
            self.close_reason = "gateway shut down"
            raise
        except Exception:
            log.exception("session %s failed", session.id)
            self.close_reason = "internal error"
            self.stream.write_last(_wire(_INTERNAL))
        finally:
            if refusal is None:
                gw._release(session.client_ip)
            try:
                await self.end_transaction("aborted: " + (self.close_reason or "connection closed"))
                if not self.logged_tx:
                    self.log_connection()
                if self.hooked:  # on_disconnect pairs with an on_connect
                    await self.hook(lambda: self.checks.on_disconnect(session), None)
            finally:
                self.stream.close()
                metrics.connection_closed("gateway")

    async def greet(self) -> None:
        session, config = self.session, self.config
        self.hooked = True
        connect = self.hook(lambda: self.checks.on_connect(session), _FAILED)
        if config.greet_pause <= 0:  # nothing to do meanwhile: no task of its own
            async with asyncio.timeout(config.timeouts.command):
                refusal = await connect
        else:
            refusal = await self.greet_pause(asyncio.ensure_future(connect))
        if refusal is not None:
            # RFC 5321 §3.1 and §4.2.3: a server refusing service says so in its greeting,
            # with 554 (or another 5yz), or 421 when it is temporary.
            if refusal.code < 500:
                refusal = Reply(421, refusal.status, f"{config.hostname} {refusal.text}")
            await self.hang_up(refusal)
        greeting = f"220 {config.hostname} ESMTP mailwarden\r\n".encode()
        metrics.reply_sent("gateway", 220)
        await self.stream.write(greeting, config.timeouts.command)

    async def greet_pause(self, connect: asyncio.Future[Reply | None]) -> Reply | None:
        """The greet pause, while the connection checks run: the client must not talk."""
        session, config = self.session, self.config
        try:
            if await self.stream.wait_for_data(config.greet_pause):
                if self.stream.at_eof:
                    raise ConnectionClosed
                # Postscreen's pregreet test: a real client waits for the 220.
                session.add_event(Event.PREGREET)
                if config.pregreet_action is StrictAction.DROP:
                    await self.hang_up(
                        Reply(554, "5.5.1", f"{config.hostname} Error: you talk too soon")
                    )
                if config.pregreet_action is StrictAction.ENFORCE:
                    session.deferred_reply = Reply(550, "5.5.1", "Error: protocol error (pregreet)")
            async with asyncio.timeout(config.timeouts.command):
                return await connect
        finally:
            if not connect.done():
                connect.cancel()

    def shutting_down(self) -> None:
        """The gateway stops: say so before the connection is cut (RFC 5321 §3.8)."""
        reply = Reply(421, "4.3.2", f"{self.config.hostname} Service shutting down")
        self.stream.write_last(_wire(reply))
        self.close_reason = self.close_reason or "gateway shut down"

    async def command(self) -> None:
        limits = self.config.limits
        task = asyncio.current_task()
        between = self.tx is None and task is not None
        if between and self.gw._stopping:
            self.shutting_down()
            raise _Close
        if between:
            self.gw._waiting[task] = self  # type: ignore[index]
        try:
            line = await self.stream.readline(
                limits.max_command_length, self.config.timeouts.command
            )
        except LineTooLong:
            self.session.add_event(Event.LINE_TOO_LONG)
            await self.reply(Reply(500, "5.5.2", "Error: line too long"))
            return
        finally:
            if between:
                self.gw._waiting.pop(task, None)  # type: ignore[arg-type]
        bare_lf = not line.endswith(b"\r\n")
        raw = line[:-1] if bare_lf else line[:-2]
        try:
            command = parse_command(raw)
        except CommandError as exc:
            await self.reply(exc.reply)
            return
        if bare_lf:
            self.session.add_event(Event.BARE_LF)
            if self.config.command_bare_lf is BareLineEnding.REJECT:
                if command.verb == "BDAT":
                    await self.bad_bdat()  # its chunk must not be read as commands
                # RFC 5321 §2.3.8: only CRLF ends a line; the command is not run.
                await self.reply(
                    Reply(500, "5.5.2", "Error: bare LF in command line (only CRLF ends a line)")
                )
                return
        ahead = not self.session.esmtp or command.verb in _LAST_IN_GROUP
        # STARTTLS discards what follows it; BDAT is followed by its chunk, never a command.
        if self.stream.buffered and ahead and command.verb not in ("STARTTLS", "BDAT"):
            await self.pipelining_abuse()
        if not command.known:
            await self.unknown_command(raw)
            return
        verb = command.verb.lower()
        handler = getattr(self, "do_" + verb)
        started = time.perf_counter()
        await handler(command)
        metrics.observe_answer("gateway", verb, time.perf_counter() - started)

    async def pipelining_abuse(self) -> None:
        """Commands sent ahead of our reply when that is not allowed (RFC 2920 §3.1)."""
        self.session.add_event(Event.PIPELINING_ABUSE)
        action = self.config.pipelining_action
        if action is StrictAction.DROP:
            await self.hang_up(
                Reply(554, "5.5.1", "Error: improper use of SMTP command pipelining")
            )
        if action is StrictAction.ENFORCE:
            self.session.deferred_reply = Reply(550, "5.5.1", "Error: improper command pipelining")

    async def unknown_command(self, raw: bytes) -> None:
        if is_non_smtp(raw):
            self.session.add_event(Event.NON_SMTP_COMMAND)
            if self.config.non_smtp_action is StrictAction.DROP:
                await self.hang_up(Reply(554, "5.5.1", "Error: non-SMTP command"))
            if self.config.non_smtp_action is StrictAction.ENFORCE:
                self.session.deferred_reply = Reply(550, "5.5.1", "Error: non-SMTP command")
        self.session.add_event(Event.UNKNOWN_COMMAND)
        self.unknown += 1
        if self.unknown >= self.config.limits.max_unknown_commands:
            await self.hang_up(
                Reply(421, "4.7.0", f"{self.config.hostname} Error: too many unknown commands")
            )
        await self.reply(Reply(500, "5.5.2", "Error: command not recognized"))

    # commands

    async def do_helo(self, command: Command) -> None:
        await self.hello(command, esmtp=False)

    async def do_ehlo(self, command: Command) -> None:
        await self.hello(command, esmtp=True)

    async def hello(self, command: Command, *, esmtp: bool) -> None:
        name = command.arg
        if not name or " " in name or not name.isprintable():
            await self.reply(Reply(501, "5.5.4", f"Syntax: {command.verb} hostname"))
            return
        session = self.session
        if session.helo is not None:
            await self.junk_command()  # a repeated HELO/EHLO (not the one STARTTLS asks for)
        await self.end_transaction("aborted: new HELO/EHLO")  # RFC 5321 §4.1.4
        session.helo, session.esmtp = name, esmtp
        if name != self.helo_checked:
            self.helo_checked = name
            refusal = await self.hook(lambda: self.checks.on_helo(session), _FAILED)
            if refusal is not None:
                session.helo, self.helo_checked = None, None
                await self.reply(refusal)
                return
        hostname = self.config.hostname
        if not esmtp:
            metrics.reply_sent("gateway", 250)
            await self.stream.write(f"250 {hostname}\r\n".encode(), self.config.timeouts.command)
            return
        keywords = list(self.gw._ehlo_lines)
        if self.gw.tls_context is not None and session.tls is None:
            keywords.append("STARTTLS")
        if self.gw.auth is not None and session.tls is not None and session.auth is None:
            # RFC 4954 §4 and §14: mechanisms that send the password only inside TLS
            keywords.append("AUTH " + " ".join(Mechanism))
        lines = [hostname, *keywords]
        text = "".join(f"250-{item}\r\n" for item in lines[:-1]) + f"250 {lines[-1]}\r\n"
        metrics.reply_sent("gateway", 250)
        await self.stream.write(text.encode(), self.config.timeouts.command)

    async def do_mail(self, command: Command) -> None:
        session = self.session
        if session.helo is None:
            session.add_event(Event.NO_HELO)
            await self.reply(Reply(503, "5.5.1", "Error: send HELO/EHLO first"))
            return
        if self.tx is not None:
            await self.reply(Reply(503, "5.5.1", "Error: nested MAIL command"))
            return
        if self.gw.auth is not None and session.auth is None:
            # RFC 6409 §4.3 and RFC 4954 §6: a submission server relays for its users only
            if session.tls is None:
                await self.reply(Reply(530, "5.7.0", "Must issue a STARTTLS command first"))
            else:
                await self.reply(Reply(530, "5.7.0", "Authentication required"))
            return
        try:
            path, params = parse_path_and_params(command.arg, "FROM")
        except CommandError as exc:
            await self.reply(exc.reply)
            return
        refusal = self.mail_params(params)
        smtputf8 = "SMTPUTF8" in params
        if refusal is None and not smtputf8 and not path.isascii():
            refusal = Reply(553, "5.6.7", "Error: non-ASCII address requires SMTPUTF8")
        if refusal is None:
            try:
                address = parse_path(path, smtputf8=smtputf8, null_ok=True)
            except PathError as exc:
                refusal = Reply(501, "5.1.7", f"Bad sender address syntax: {exc.reason}")
        if refusal is not None:
            await self.reply(refusal)
            return
        session.transactions += 1
        self.bdat_failed = None
        self.tx_extra = {}
        self.tx = Transaction(
            id=f"{session.id}{session.transactions:02X}",
            mail_from=str(address) if address is not None else "",
            mail_options=params,
            smtputf8=smtputf8,
        )
        self.tx_started = time.monotonic()
        if session.deferred_reply is None:
            tx = self.tx
            refusal = await self.hook(lambda: self.checks.on_mail(session, tx), _FAILED)
            if refusal is not None:
                await self.end_transaction(str(refusal))
                await self.reply(refusal)
                return
        await self.reply(Reply(250, "2.1.0", "Ok"))

    def mail_params(self, params: dict[str, str | None]) -> Reply | None:
        if params and not self.session.esmtp:
            return Reply(555, "5.5.4", "Error: parameters need EHLO")
        for key, value in params.items():
            if key == "SIZE":
                if value is None or not (value.isascii() and value.isdigit()) or len(value) > 20:
                    return Reply(501, "5.5.4", "Bad SIZE parameter")
                if int(value) > self.config.limits.max_message_size:
                    return Reply(552, "5.3.4", "Message size exceeds fixed limit")
            elif key == "BODY":
                if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                    return Reply(501, "5.5.4", "Bad BODY parameter")
                params[key] = value.upper()
            elif key == "SMTPUTF8":
                if value is not None:
                    return Reply(501, "5.5.4", "SMTPUTF8 takes no value")
            else:
                return Reply(555, "5.5.4", f"Unsupported parameter {key}")
        return None

    async def do_rcpt(self, command: Command) -> None:
        session, tx = self.session, self.tx
        if tx is None:
            await self.reply(Reply(503, "5.5.1", "Error: need MAIL command"))
            return
        refusal, rcpt = self.parse_rcpt(command.arg, tx)
        if session.deferred_reply is not None:
            tx.rejected_rcpts.append((rcpt or command.arg, str(session.deferred_reply)))
            await self.reply(session.deferred_reply)
            return
        if len(tx.rcpts) >= self.config.limits.max_recipients:
            # RFC 5321 §4.5.3.1.10: too many recipients is a temporary failure.
            await self.reply(Reply(452, "4.5.3", "Error: too many recipients"), count_error=False)
            return
        if refusal is None and rcpt is not None:
            refusal = await self.hook(lambda: self.checks.on_rcpt(session, tx, rcpt), _FAILED)
            if refusal is None:
                refusal = await self.relay_rcpt(tx, rcpt)
        if refusal is not None:
            tx.rejected_rcpts.append((rcpt or command.arg, str(refusal)))
            await self.reply(refusal)
            return
        assert rcpt is not None
        tx.rcpts.append(rcpt)
        await self.reply(Reply(250, "2.1.5", "Ok"))

    def parse_rcpt(self, arg: str, tx: Transaction) -> tuple[Reply | None, str | None]:
        try:
            path, params = parse_path_and_params(arg, "TO")
        except CommandError as exc:
            return exc.reply, None
        if params:
            return Reply(555, "5.5.4", f"Unsupported parameter {next(iter(params))}"), None
        if path[1:-1].lower() == "postmaster":
            address = postmaster_address(self.config.local_domains)
            if address is not None:
                return None, str(address)
        if not tx.smtputf8 and not path.isascii():
            return Reply(553, "5.6.7", "Error: non-ASCII address requires SMTPUTF8"), None
        try:
            parsed = parse_path(path, smtputf8=tx.smtputf8)
        except PathError as exc:
            if exc.trick is not None:
                return Reply(550, "5.7.1", f"{path}: Relay access denied ({exc.trick})"), None
            return Reply(501, "5.1.3", f"Bad recipient address syntax: {exc.reason}"), None
        assert parsed is not None
        session = self.session
        relay_ok = session.trusted or session.auth is not None  # RFC 6409 §4.3
        refusal = self.gw.relay_control.check(parsed, trusted=relay_ok)
        return refusal, str(parsed)

    async def relay_rcpt(self, tx: Transaction, rcpt: str) -> Reply | None:
        """Pass the recipient on to the downstream now: its refusal is this RCPT's reply."""
        try:
            if self.outbound is None:
                outbound = await self.gw.relay.open(self.session)
                self.outbound = outbound
                first: Reply | None = None
                if isinstance(outbound, DownstreamConnection):  # MAIL and RCPT pipelined
                    reply, first = await outbound.mail_and_rcpt(tx.mail_from, tx.mail_options, rcpt)
                else:
                    reply = await outbound.mail(tx.mail_from, tx.mail_options)
                if reply.code >= 300:
                    await self.close_outbound()
                    return self.downstream_refused(reply)
                if first is not None:
                    return self.downstream_refused(first) if first.code >= 300 else None
            reply = await self.outbound.rcpt(rcpt)
        except Unavailable as exc:
            await self.close_outbound()
            return self.unavailable(exc)
        return self.downstream_refused(reply) if reply.code >= 300 else None

    def downstream_refused(self, reply: Reply) -> Reply:
        """A downstream refusal as the client sees it; the log keeps the original."""
        public = public_reply(reply, self.gw._hidden)
        if public != reply:
            self.tx_extra.setdefault("downstream_withheld", []).append(str(reply))
        return public

    def unavailable(self, exc: Unavailable) -> Reply:
        """The downstream failed: the client gets a generic 451, the log what happened."""
        log.warning("session %s: downstream unavailable: %s", self.session.id, exc.detail)
        self.tx_extra.setdefault("downstream_errors", []).append(exc.detail)
        return exc.reply

    async def do_data(self, command: Command) -> None:
        session, tx = self.session, self.tx
        if command.arg:
            await self.reply(Reply(501, "5.5.4", "Syntax: DATA"))
            return
        if tx is None:
            await self.reply(Reply(503, "5.5.1", "Error: need MAIL command"))
            return
        if self.chunked is not None:
            # RFC 3030 §2: DATA after BDAT in one transaction is a 503; the transaction is
            # over (the client must start again).
            refusal = Reply(503, "5.5.1", "Error: DATA after BDAT, transaction aborted")
            await self.end_transaction(str(refusal))
            await self.reply(refusal)
            return
        if session.deferred_reply is not None:
            await self.reply(session.deferred_reply)
            return
        if not tx.rcpts or self.outbound is None:
            await self.reply(Reply(554, "5.5.1", "Error: no valid recipients"))
            return
        metrics.reply_sent("gateway", 354)
        await self.stream.write(
            b"354 End data with <CR><LF>.<CR><LF>\r\n", self.config.timeouts.command
        )
        received_at = time.monotonic()
        limits, timeouts = self.config.limits, self.config.timeouts
        self.stream.meter = self.data_rate()
        try:
            result = await read_data(
                self.stream, limits, timeouts.data_block, self.config.bare_lf, self.gw.spool
            )
        finally:
            self.stream.meter = None
        await self.finish_message(tx, result, received_at)

    def data_rate(self) -> DataRate:
        return DataRate(
            self.config.timeouts.data_block,
            self.config.limits.min_data_rate,
            asyncio.get_running_loop().time(),
        )

    async def do_bdat(self, command: Command) -> None:
        """RFC 3030: BDAT size [LAST], then exactly `size` octets of message, never commands.

        The chunk is read before anything is answered, refused or not (RFC 3030 §2: a server
        refusing a chunk still reads it). After a refused chunk the transaction is over and
        chunks already pipelined behind it are read and refused alike.
        """
        try:
            size, last = parse_bdat(command.arg)
        except CommandError:
            await self.bad_bdat()
            return
        session, tx, limits = self.session, self.tx, self.config.limits
        if size == 0 and not last:
            await self.junk_command()  # an empty chunk moves nothing, whatever the state
        refusal: Reply | None = None
        if not session.esmtp:
            refusal = Reply(503, "5.5.1", "Error: BDAT needs EHLO")  # CHUNKING is ESMTP
        elif tx is None:
            refusal = self.bdat_failed or Reply(503, "5.5.1", "Error: need MAIL command")
        elif session.deferred_reply is not None:
            refusal = session.deferred_reply
        elif not tx.rcpts or self.outbound is None:
            refusal = Reply(554, "5.5.1", "Error: no valid recipients")
        if refusal is not None:
            await self.read_chunk(size, None)
            await self.fail_bdat(refusal, count_error=refusal is not self.bdat_failed)
            return
        assert tx is not None
        if self.chunked is None:
            self.chunked = ChunkedMessage(limits, self.config.bare_lf, self.gw.spool)
            self.chunks_started = time.monotonic()
        chunked = self.chunked
        chunked.chunks += 1
        if chunked.received + size > limits.max_message_size:
            await self.read_chunk(size, None)
            chunked.skip(size, Reply(552, "5.3.4", "Error: message size exceeds fixed limit"))
        else:
            await self.read_chunk(size, chunked.feed)
        if not last:
            if chunked.reply is not None:
                await self.fail_bdat(chunked.reply)
                return
            await self.reply(Reply(250, "2.0.0", f"Ok: {size} octets"))
            return
        result = chunked.finish()
        self.tx_extra["chunks"] = chunked.chunks
        await self.finish_message(tx, result, self.chunks_started)

    async def bad_bdat(self) -> None:
        """A BDAT whose size cannot be read: where its chunk ends is unknown, and its octets
        must not be taken for commands, so the session ends (RFC 3030 §2)."""
        self.session.add_event(Event.BAD_BDAT)
        await self.hang_up(
            Reply(
                421,
                "4.5.4",
                f"{self.config.hostname} Error: malformed BDAT command (Syntax: BDAT size "
                "[LAST]), closing connection",
            )
        )

    async def read_chunk(self, size: int, sink: Callable[[bytes], None] | None) -> None:
        """Read `size` octets of chunk, passing them to `sink` (or dropping them), at the
        minimum data rate."""
        stream = self.stream
        stream.meter = self.data_rate()
        try:
            remaining = size
            while remaining:
                piece = await stream.read_some(
                    min(remaining, CHUNK_READ), self.config.timeouts.data_block
                )
                remaining -= len(piece)
                if sink is not None:
                    sink(piece)
        finally:
            stream.meter = None

    async def fail_bdat(self, refusal: Reply, *, count_error: bool = True) -> None:
        """Refuse a chunk: the transaction, if any, fails; later chunks get the same reply."""
        if self.tx is not None:
            chunked = self.chunked
            extra: dict[str, Any] = {}
            if chunked is not None:
                extra = {"size": chunked.builder.size, "chunks": chunked.chunks}
                for event in chunked.builder.events:
                    self.session.add_event(event)
            await self.end_transaction(str(refusal), extra=extra)
            self.bdat_failed = refusal
        await self.reply(refusal, count_error=count_error)

    async def finish_message(self, tx: Transaction, result: DataResult, started: float) -> None:
        """The end of DATA or BDAT LAST: checks, relay, and the one final reply (a spooled
        message's file is removed whatever happens)."""
        try:
            await self._finish_message(tx, result, started)
        finally:
            if isinstance(result.message, SpooledMessage):
                result.message.close()

    async def _finish_message(self, tx: Transaction, result: DataResult, started: float) -> None:
        session = self.session
        for event in result.events:
            session.add_event(event)
        timing: dict[str, float] = {"data_ms": _ms(started)}
        extra: dict[str, Any] = {"size": result.size, "timing": timing}
        if result.reply is not None:
            await self.end_transaction(str(result.reply), extra=extra)
            await self.reply(result.reply)
            return
        checks_at = time.monotonic()
        message = result.message
        try:
            async with asyncio.timeout(self.config.timeouts.checks):
                decision = await self.hook(
                    lambda: self.checks.on_data(session, tx, message),
                    MessageDecision(reply=_INTERNAL, log={"error": "check failed"}),
                )
        except TimeoutError:
            decision = MessageDecision(
                reply=Reply(451, "4.3.0", "Error: checks timed out, try again later"),
                log={"error": "checks timed out"},
            )
        timing["checks_ms"] = _ms(checks_at)
        extra.update(decision.log)
        extra["size"], extra["timing"] = result.size, timing
        if decision.reply is not None:
            # A 2xx reply from the checks is a discard: accepted and not relayed.
            await self.end_transaction(str(decision.reply), extra=extra)
            await self.reply(decision.reply)
            return
        relay_at = time.monotonic()
        final = await self.deliver(tx, message, decision, extra)
        timing["downstream_ms"] = _ms(relay_at)
        await self.end_transaction(str(final), delivered=final.code < 300, extra=extra)
        if final.code < 300:
            self.junk = 0  # as Postfix: the junk command count starts again after a delivery
        await self.reply(final)

    async def deliver(
        self,
        tx: Transaction,
        message: bytes | SpooledMessage,
        decision: MessageDecision,
        extra: dict[str, Any],
    ) -> Reply:
        """Relay downstream; the client's answer is the worst downstream outcome."""
        assert self.outbound is not None
        received = received_field(self.session, tx, self.config.hostname, self.gw.clock())
        head, body, removed = relayed_message(
            decision.message or message, received, decision.add_headers, decision.remove_fields
        )
        if removed:
            extra["removed_headers"] = removed
        try:
            if decision.redirect_to is not None:
                extra["redirected_to"] = list(decision.redirect_to)
                await self.outbound.reset()
                reply = await self.outbound.mail(tx.mail_from, tx.mail_options)
                if reply.code >= 300:
                    return self.downstream_refused(reply)
                for target in decision.redirect_to:
                    reply = await self.outbound.rcpt(target)
                    if reply.code >= 300:
                        return self.downstream_refused(reply)
            replies = await self.outbound.data(head, body)
        except Unavailable as exc:
            await self.close_outbound()
            return self.unavailable(exc)
        extra["downstream"] = [str(r) for r in replies]
        # LMTP: a temporary failure of one recipient makes the client retry (duplicates are
        # better than loss); otherwise a permanent failure is reported; else success.
        temporary = [r for r in replies if 400 <= r.code < 500]
        permanent = [r for r in replies if r.code >= 500]
        if temporary or permanent:
            return self.downstream_refused((temporary or permanent)[0])
        if not replies:
            return Reply(451, "4.4.2", "Error: temporary failure, try again later")
        return Reply(250, "2.0.0", f"Ok: queued as {tx.id}")

    async def do_rset(self, command: Command) -> None:
        await self.junk_command()
        await self.end_transaction("aborted: RSET")
        await self.reply(Reply(250, "2.0.0", "Ok"))

    async def do_noop(self, command: Command) -> None:
        await self.junk_command()
        await self.reply(Reply(250, "2.0.0", "Ok"))

    async def do_quit(self, command: Command) -> None:
        self.close_reason = "QUIT"
        await self.end_transaction("aborted: QUIT")
        with contextlib.suppress(ConnectionClosed):
            await self.reply(Reply(221, "2.0.0", "Bye"))
        raise _Close

    async def do_vrfy(self, command: Command) -> None:
        await self.junk_command()
        await self.reply(Reply(502, "5.5.1", "VRFY command is disabled"))

    async def do_expn(self, command: Command) -> None:
        await self.junk_command()
        await self.reply(Reply(502, "5.5.1", "EXPN command is disabled"))

    async def do_help(self, command: Command) -> None:
        await self.junk_command()
        await self.reply(Reply(214, "2.0.0", "See RFC 5321"))

    async def _not_implemented(self, command: Command) -> None:
        await self.reply(Reply(502, "5.5.1", f"Error: {command.verb} not implemented"))

    do_etrn = do_turn = _not_implemented

    async def do_auth(self, command: Command) -> None:
        """RFC 4954: AUTH inside TLS, once per session, outside a transaction."""
        session, auth = self.session, self.gw.auth
        if auth is None:
            await self._not_implemented(command)
            return
        if session.tls is None:
            # RFC 4954 §4: PLAIN and LOGIN would send the password in clear
            await self.reply(
                Reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
            )
            return
        if session.helo is None or not session.esmtp:
            await self.reply(Reply(503, "5.5.1", "Error: send EHLO first"))
            return
        if session.auth is not None:
            await self.reply(Reply(503, "5.5.1", "Error: already authenticated"))
            return
        if self.tx is not None:
            await self.reply(Reply(503, "5.5.1", "Error: AUTH not permitted during a transaction"))
            return
        try:
            credentials = await self.sasl_exchange(command.arg)
        except SASLError as exc:
            await self.reply(exc.reply)
            return
        failed: str | Reply = Reply(454, "4.7.0", "Temporary authentication failure")
        outcome = await self.hook(lambda: auth.authenticate(session, credentials), failed)
        if isinstance(outcome, Reply):
            await self.reply(outcome)
            return
        session.auth = outcome
        await self.reply(Reply(235, "2.7.0", "Authentication successful"))

    async def sasl_exchange(self, arg: str) -> Credentials:
        """The client's credentials, read through as many 334 challenges as the mechanism
        needs (RFC 4954 §4); raises SASLError with the reply to send."""
        mechanism, initial = parse_auth_command(arg)
        if mechanism is Mechanism.PLAIN:
            data = decode_response(initial) if initial is not None else await self.challenge("")
            return parse_plain(data)
        if initial is not None:
            username = decode_response(initial)
        else:
            username = await self.challenge(LOGIN_USERNAME)
        name = parse_login_field(username, identity=True)
        password = parse_login_field(await self.challenge(LOGIN_PASSWORD), identity=False)
        return Credentials(Mechanism.LOGIN, name, password)

    async def challenge(self, text: str) -> bytes:
        """Send `334 text` and read the client's response line, decoded."""
        metrics.reply_sent("gateway", 334)
        await self.stream.write(f"334 {text}\r\n".encode("ascii"), self.config.timeouts.command)
        limit = self.config.limits.max_command_length
        try:
            line = await self.stream.readline(limit, self.config.timeouts.command)
        except LineTooLong:
            raise SASLError(
                Reply(500, "5.5.6", "Authentication exchange line is too long")
            ) from None
        text_line = line.rstrip(b"\r\n").decode("ascii", "replace")
        return decode_response(text_line)

    async def do_starttls(self, command: Command) -> None:
        session = self.session
        if self.gw.tls_context is None or session.tls is not None:
            await self.reply(Reply(502, "5.5.1", "Error: STARTTLS not available"))
            return
        if command.arg:
            await self.reply(Reply(501, "5.5.4", "Syntax: STARTTLS"))
            return
        if session.helo is None or not session.esmtp:
            await self.reply(Reply(503, "5.5.1", "Error: send EHLO first"))
            return
        if self.stream.discard_buffer():
            # CVE-2011-0411: commands injected in plain text must not run after the handshake.
            session.add_event(Event.STARTTLS_INJECTION)
        await self.reply(Reply(220, "2.0.0", "Ready to start TLS"))
        try:
            await self.stream.start_tls(self.gw.tls_context, self.config.timeouts.tls_handshake)
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError) as exc:
            self.close_reason = f"TLS handshake failed: {exc}"
            raise _Close from None
        session.tls = _tls_info(self.stream)
        # RFC 3207 §4.2: forget what the client said before; it must EHLO again.
        await self.end_transaction("aborted: STARTTLS")
        session.helo, session.esmtp = None, False

    # transactions and the log

    async def close_outbound(self) -> None:
        if self.outbound is not None:
            outbound, self.outbound = self.outbound, None
            await outbound.close()

    async def end_transaction(
        self, reply: str, *, delivered: bool = False, extra: dict[str, Any] | None = None
    ) -> None:
        await self.close_outbound()
        tx, self.tx = self.tx, None
        if self.chunked is not None:
            self.chunked.builder.discard()  # chunks of an unfinished message: their spool file
        self.chunked, self.bdat_failed = None, None
        if tx is None:
            return
        self.logged_tx = True
        if not self.gw.log.enabled:
            return
        session = self.session
        record: dict[str, Any] = {
            "type": "transaction",
            "id": tx.id,
            "session": session.id,
            "client": {"ip": session.client_ip, "port": session.client_port},
            "helo": session.helo,
            "tls": _tls_dict(session.tls),
            "auth": session.auth,
            "mail_from": tx.mail_from,
            "rcpts": list(tx.rcpts),
            "rejected_rcpts": [{"rcpt": r, "reply": text} for r, text in tx.rejected_rcpts],
            "events": [str(e) for e in session.events],
            "reply": reply,
            "delivered": delivered,
        }
        timing = {"total_ms": _ms(self.tx_started)}
        for key, value in {**self.tx_extra, **(extra or {})}.items():
            if key == "timing" and isinstance(value, dict):
                timing.update(value)
            elif key not in record:
                record[key] = value
        record["timing"] = timing
        self.gw.log.write(record)

    def log_connection(self) -> None:
        if not self.gw.log.enabled:
            return
        session = self.session
        self.gw.log.write(
            {
                "type": "connection",
                "session": session.id,
                "client": {"ip": session.client_ip, "port": session.client_port},
                "helo": session.helo,
                "tls": _tls_dict(session.tls),
                "events": [str(e) for e in session.events],
                "reason": self.close_reason or "closed",
                "timing": {"total_ms": round((self.gw.clock() - session.started) * 1000, 1)},
            }
        )


def _wire(reply: Reply) -> bytes:
    status = f" {reply.status}" if reply.status else ""
    text = f"{reply.code}{status} {reply.text}"
    return text.encode("utf-8", "replace") + b"\r\n"


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 1)


def _tls_info(stream: Stream) -> TLSInfo:
    """What was negotiated on a connection in TLS."""
    ssl_object = stream.extra("ssl_object")
    if isinstance(ssl_object, ssl.SSLObject):
        cipher = ssl_object.cipher()
        return TLSInfo(
            version=ssl_object.version() or "TLS",
            cipher=cipher[0] if cipher else "unknown",
            bits=cipher[2] if cipher else None,
        )
    return TLSInfo("TLS", "unknown")


def _tls_dict(tls: TLSInfo | None) -> dict[str, object] | None:
    return None if tls is None else {"version": tls.version, "cipher": tls.cipher}


def _host_port(address: object) -> tuple[str, int]:
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), int(address[1])
    return "", 0
