"""The receiving gateway: an ESMTP server (RFC 5321) and before-queue proxy.

One task per connection runs `_Connection.run`, a state machine over `Stream`: greet pause,
greeting, then one command at a time. Strict-SMTP findings (pregreet, pipelining abuse, bare
line ends, smuggling, non-SMTP commands) are recorded in `session.events` for the checks and,
as configured, answered at once. Mail is relayed while the client waits: the client's 250 for
the end of data is the downstream's 250; nothing else is ever acknowledged.

Extensions offered: PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8
(RFC 6531), ENHANCEDSTATUSCODES (RFC 2034) and STARTTLS (RFC 3207).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from mailwarden.pipeline import MessageDecision
from mailwarden.settings import GatewaySettings, StrictAction

from .commands import Command, CommandError, is_non_smtp, parse_command, parse_path_and_params
from .data import read_data
from .downstream import Downstream, DownstreamRelay, Outbound, Unavailable
from .headers import received_field, relayed_message
from .hooks import AcceptAll, Checks, Event, Reply, Session, TLSInfo, Transaction
from .log import TransactionLog
from .relay import PathError, RelayControl, load_recipient_map, parse_path, postmaster_address
from .sink import MaildirRelay
from .stream import ConnectionClosed, LineTooLong, Stream
from .tls import ensure_self_signed, server_context

__all__ = ["Gateway"]

log = logging.getLogger("mailwarden.gateway")
T = TypeVar("T")

# RFC 2920 §3.1: these end a group of pipelined commands; data after them is abuse.
_LAST_IN_GROUP = frozenset({"EHLO", "HELO", "DATA", "VRFY", "EXPN", "TURN", "STARTTLS"})
_INTERNAL = Reply(451, "4.3.0", "Error: internal error, try again later")
_FAILED: Reply | None = _INTERNAL  # what a check that raised answers


class _Close(Exception):
    """End the connection (the reply, if any, was sent)."""


class Gateway:
    """The SMTP gateway. `async with Gateway(config) as gw:` listens until the block ends.

    `checks` defaults to `AcceptAll()`; `relay` to the downstream of `config.relay_to` or,
    without one, the built-in Maildir sink under the data directory; `log` to the configured
    log file. `clock` gives wall-clock seconds (Received dates, session start).
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
    ) -> None:
        self.config = config
        self.checks: Checks = checks if checks is not None else AcceptAll()
        self.relay: Downstream = relay if relay is not None else default_relay(config)
        self.log = log if log is not None else TransactionLog(config.log_file)
        self.clock = clock
        recipients = load_recipient_map(config.recipient_map) if config.recipient_map else None
        self.relay_control = RelayControl.build(config.local_domains, recipients)
        self.tls_context = tls_context if tls_context is not None else self._tls_context()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._per_client: Counter[str] = Counter()
        self._ehlo_lines = self._ehlo_keywords()

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
        ]

    # lifecycle

    async def start(self) -> None:
        host, port = self.config.listen
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Stream(self._open), host, port, reuse_address=True, backlog=1024
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

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
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
        return len(self._tasks)

    def _open(self, stream: Stream) -> None:
        task = asyncio.get_running_loop().create_task(_Connection(self, stream).run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


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
            id=secrets.token_hex(6).upper(),
            client_ip=ip,
            client_port=port,
            started=gateway.clock(),
            local_ip=local_ip,
            local_port=local_port,
            trusted=self.config.is_trusted(ip),
        )
        self.tx: Transaction | None = None
        self.tx_started = 0.0
        self.outbound: Outbound | None = None
        self.errors = 0
        self.unknown = 0
        self.helo_checked: str | None = None
        self.logged_tx = False
        self.hooked = False
        self.close_reason = ""

    # plumbing

    async def reply(self, reply: Reply, *, count_error: bool = True) -> None:
        text = (
            f"{reply.code} {reply.status} {reply.text}"
            if reply.status
            else (f"{reply.code} {reply.text}")
        )
        await self.stream.write(text.encode("utf-8", "replace") + b"\r\n")
        if reply.code >= 400 and count_error:
            self.errors += 1
            if self.errors >= self.config.limits.max_errors:
                self.session.add_event(Event.TOO_MANY_ERRORS)
                await self.hang_up(
                    Reply(421, "4.7.0", f"{self.config.hostname} Error: too many errors")
                )

    async def hang_up(self, reply: Reply) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.reply(reply, count_error=False)
        self.close_reason = self.close_reason or reply.text
        raise _Close

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
        gw, limits, session = self.gw, self.config.limits, self.session
        gw._per_client[session.client_ip] += 1
        try:
            if gw.connections > limits.max_connections:
                await self.hang_up(
                    Reply(421, "4.7.0", f"{self.config.hostname} Error: too many connections")
                )
            if gw._per_client[session.client_ip] > limits.max_connections_per_client:
                await self.hang_up(
                    Reply(
                        421,
                        "4.7.0",
                        f"Error: too many connections from {session.client_ip}",
                    )
                )
            await self.greet()
            while True:
                await self.command()
        except _Close:
            pass
        except ConnectionClosed:
            self.close_reason = self.close_reason or "client disconnected"
        except TimeoutError:
            session.add_event(Event.TIMEOUT)
            self.close_reason = "timeout"
            with contextlib.suppress(ConnectionClosed):
                await self.reply(
                    Reply(421, "4.4.2", f"{self.config.hostname} Error: timeout exceeded"),
                    count_error=False,
                )
        except asyncio.CancelledError:
            self.close_reason = "gateway shut down"
            raise
        except Exception:
            log.exception("session %s failed", session.id)
            self.close_reason = "internal error"
            with contextlib.suppress(ConnectionClosed):
                await self.reply(_INTERNAL, count_error=False)
        finally:
            gw._per_client[session.client_ip] -= 1
            if gw._per_client[session.client_ip] <= 0:
                del gw._per_client[session.client_ip]
            try:
                await self.end_transaction("aborted: " + (self.close_reason or "connection closed"))
                if not self.logged_tx:
                    self.log_connection()
                if self.hooked:  # on_disconnect pairs with an on_connect
                    await self.hook(lambda: self.checks.on_disconnect(session), None)
            finally:
                self.stream.close()

    async def greet(self) -> None:
        session, config = self.session, self.config
        self.hooked = True
        connect = asyncio.ensure_future(self.hook(lambda: self.checks.on_connect(session), _FAILED))
        try:
            if config.greet_pause > 0 and await self.stream.wait_for_data(config.greet_pause):
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
                refusal = await connect
        finally:
            if not connect.done():
                connect.cancel()
        if refusal is not None:
            # RFC 5321 §3.1 and §4.2.3: a server refusing service says so in its greeting,
            # with 554 (or another 5yz), or 421 when it is temporary.
            if refusal.code < 500:
                refusal = Reply(421, refusal.status, f"{config.hostname} {refusal.text}")
            await self.hang_up(refusal)
        await self.stream.write(f"220 {config.hostname} ESMTP mailwarden\r\n".encode())

    async def command(self) -> None:
        limits = self.config.limits
        try:
            line = await self.stream.readline(
                limits.max_command_length, self.config.timeouts.command
            )
        except LineTooLong:
            self.session.add_event(Event.LINE_TOO_LONG)
            await self.reply(Reply(500, "5.5.2", "Error: line too long"))
            return
        if not line.endswith(b"\r\n"):
            self.session.add_event(Event.BARE_LF)
            raw = line[:-1]
        else:
            raw = line[:-2]
        try:
            command = parse_command(raw)
        except CommandError as exc:
            await self.reply(exc.reply)
            return
        ahead = not self.session.esmtp or command.verb in _LAST_IN_GROUP
        if self.stream.buffered and ahead and command.verb != "STARTTLS":
            await self.pipelining_abuse()
        if not command.known:
            await self.unknown_command(raw)
            return
        handler = getattr(self, "do_" + command.verb.lower())
        await handler(command)

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
        await self.end_transaction("aborted: new HELO/EHLO")  # RFC 5321 §4.1.4
        session = self.session
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
            await self.stream.write(f"250 {hostname}\r\n".encode())
            return
        keywords = list(self.gw._ehlo_lines)
        if self.gw.tls_context is not None and session.tls is None:
            keywords.append("STARTTLS")
        lines = [hostname, *keywords]
        text = "".join(f"250-{item}\r\n" for item in lines[:-1]) + f"250 {lines[-1]}\r\n"
        await self.stream.write(text.encode())

    async def do_mail(self, command: Command) -> None:
        session = self.session
        if session.helo is None:
            session.add_event(Event.NO_HELO)
            await self.reply(Reply(503, "5.5.1", "Error: send HELO/EHLO first"))
            return
        if self.tx is not None:
            await self.reply(Reply(503, "5.5.1", "Error: nested MAIL command"))
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
        refusal = self.gw.relay_control.check(parsed, trusted=self.session.trusted)
        return refusal, str(parsed)

    async def relay_rcpt(self, tx: Transaction, rcpt: str) -> Reply | None:
        """Pass the recipient on to the downstream now: its refusal is this RCPT's reply."""
        try:
            if self.outbound is None:
                outbound = await self.gw.relay.open(self.session)
                self.outbound = outbound
                reply = await outbound.mail(tx.mail_from, tx.mail_options)
                if reply.code >= 300:
                    await self.close_outbound()
                    return reply
            reply = await self.outbound.rcpt(rcpt)
        except Unavailable as exc:
            await self.close_outbound()
            return exc.reply
        return reply if reply.code >= 300 else None

    async def do_data(self, command: Command) -> None:
        session, tx = self.session, self.tx
        if command.arg:
            await self.reply(Reply(501, "5.5.4", "Syntax: DATA"))
            return
        if tx is None:
            await self.reply(Reply(503, "5.5.1", "Error: need MAIL command"))
            return
        if session.deferred_reply is not None:
            await self.reply(session.deferred_reply)
            return
        if not tx.rcpts or self.outbound is None:
            await self.reply(Reply(554, "5.5.1", "Error: no valid recipients"))
            return
        await self.stream.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
        received_at = time.monotonic()
        result = await read_data(
            self.stream, self.config.limits, self.config.timeouts.data_block, self.config.bare_lf
        )
        for event in result.events:
            session.add_event(event)
        timing: dict[str, float] = {"data_ms": _ms(received_at)}
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
        await self.reply(final)

    async def deliver(
        self,
        tx: Transaction,
        message: bytes,
        decision: MessageDecision,
        extra: dict[str, Any],
    ) -> Reply:
        """Relay downstream; the client's answer is the worst downstream outcome."""
        assert self.outbound is not None
        received = received_field(self.session, tx, self.config.hostname, self.gw.clock())
        relayed, removed = relayed_message(
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
                    return reply
                for target in decision.redirect_to:
                    reply = await self.outbound.rcpt(target)
                    if reply.code >= 300:
                        return reply
            replies = await self.outbound.data(relayed)
        except Unavailable as exc:
            await self.close_outbound()
            return exc.reply
        extra["downstream"] = [str(r) for r in replies]
        # LMTP: a temporary failure of one recipient makes the client retry (duplicates are
        # better than loss); otherwise a permanent failure is reported; else success.
        temporary = [r for r in replies if 400 <= r.code < 500]
        permanent = [r for r in replies if r.code >= 500]
        if temporary or permanent:
            return (temporary or permanent)[0]
        if not replies:
            return Reply(451, "4.4.2", "Downstream server gave no answer")
        return Reply(250, "2.0.0", f"Ok: queued as {tx.id}")

    async def do_rset(self, command: Command) -> None:
        await self.end_transaction("aborted: RSET")
        await self.reply(Reply(250, "2.0.0", "Ok"))

    async def do_noop(self, command: Command) -> None:
        await self.reply(Reply(250, "2.0.0", "Ok"))

    async def do_quit(self, command: Command) -> None:
        self.close_reason = "QUIT"
        await self.end_transaction("aborted: QUIT")
        with contextlib.suppress(ConnectionClosed):
            await self.reply(Reply(221, "2.0.0", "Bye"))
        raise _Close

    async def do_vrfy(self, command: Command) -> None:
        await self.reply(Reply(502, "5.5.1", "VRFY command is disabled"))

    async def do_expn(self, command: Command) -> None:
        await self.reply(Reply(502, "5.5.1", "EXPN command is disabled"))

    async def do_help(self, command: Command) -> None:
        await self.reply(Reply(214, "2.0.0", "See RFC 5321"))

    async def _not_implemented(self, command: Command) -> None:
        await self.reply(Reply(502, "5.5.1", f"Error: {command.verb} not implemented"))

    do_bdat = do_auth = do_etrn = do_turn = _not_implemented

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
        ssl_object = self.stream.extra("ssl_object")
        if isinstance(ssl_object, ssl.SSLObject):
            cipher = ssl_object.cipher()
            session.tls = TLSInfo(
                version=ssl_object.version() or "TLS",
                cipher=cipher[0] if cipher else "unknown",
                bits=cipher[2] if cipher else None,
            )
        else:
            session.tls = TLSInfo("TLS", "unknown")
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
        if tx is None:
            return
        self.logged_tx = True
        session = self.session
        record: dict[str, Any] = {
            "type": "transaction",
            "id": tx.id,
            "session": session.id,
            "client": {"ip": session.client_ip, "port": session.client_port},
            "helo": session.helo,
            "tls": _tls_dict(session.tls),
            "mail_from": tx.mail_from,
            "rcpts": list(tx.rcpts),
            "rejected_rcpts": [{"rcpt": r, "reply": text} for r, text in tx.rejected_rcpts],
            "events": [str(e) for e in session.events],
            "reply": reply,
            "delivered": delivered,
        }
        timing = {"total_ms": _ms(self.tx_started)}
        for key, value in (extra or {}).items():
            if key == "timing" and isinstance(value, dict):
                timing.update(value)
            elif key not in record:
                record[key] = value
        record["timing"] = timing
        self.gw.log.write(record)

    def log_connection(self) -> None:
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


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 1)


def _tls_dict(tls: TLSInfo | None) -> dict[str, object] | None:
    return None if tls is None else {"version": tls.version, "cipher": tls.cipher}


def _host_port(address: object) -> tuple[str, int]:
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), int(address[1])
    return "", 0
