"""The milter front end: Postfix (or Sendmail) asks, the one pipeline decides.

Per MTA connection (one SMTP session) a `SessionChecks`, per message a `TransactionChecks`,
as the gateway does (gateway/checks.py): connect starts iprev and the DNS lists, HELO its
checks, MAIL SPF; RCPT refuses hard DNS-list hits (and greylists at RCPT time when so
configured); the end of the message gives the verdict. This module only translates:

* the verdict's reply becomes SMFIR_REPLYCODE (a 2xx reply is a discard);
* our fields (Authentication-Results first, Received-SPF, the verdict) are inserted at the top
  (SMFIR_INSHEADER at index 0), forged ones removed (SMFIR_CHGHEADER with an empty value, the
  index counted per field name as Postfix's cleanup does);
* a message the policy sends to quarantine (`[gateway] quarantine_address` set) is put on
  hold with SMFIR_QUARANTINE;
* a submission by an authenticated client (`{auth_authen}` set) is accepted at MAIL without
  any inbound filtering (SMFIR_ACCEPT ends the milter's part in that message).

Postfix's budgets (`[milter] command_timeout`, `content_timeout`) bound every answer: RCPT
answers "continue" when its checks run out of time (the end of the message decides), and a
verdict that cannot be had in time is a tempfail, never a DMARC policy applied on a guess.
Checks that ran out of time without deciding are named in X-Mailwarden-Incomplete.

Worker processes (`milter --workers N`, cli/milter.py): each runs a `MilterServer` of its own,
on the same TCP port (`reuse_port`: SO_REUSEPORT, the kernel spreads the connections) or on
one Unix socket bound once by the supervisor (`unix_listener`) and inherited (`sock`), with
`[milter] max_connections` held across them (`admission`) and a spool of its own.

Bounded memory per connection: packets are capped (`protocol.MAX_PACKET`), the header section
by `[gateway] limits.max_header_size`, and a body beyond `limits.spool_threshold` goes to a
spool file in the data directory (mailwarden.body). A malformed packet closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal, Protocol

from mailwarden import metrics
from mailwarden.body import SpooledBody, SpooledMessage
from mailwarden.message import fold_field
from mailwarden.pipeline import MessageDecision, Pipeline, SessionChecks, TransactionChecks
from mailwarden.reply import SMTPReply
from mailwarden.runtime import close_listener
from mailwarden.settings import Settings

from . import protocol as p

__all__ = ["ACTIONS", "MACROS", "PROTOCOL", "Admission", "MilterServer", "unix_listener"]

log = logging.getLogger("mailwarden.milter")

# What we ask of the MTA (each kept only when the MTA offers it).
ACTIONS = p.Action.ADDHDRS | p.Action.CHGHDRS | p.Action.QUARANTINE | p.Action.SETSYMLIST
PROTOCOL = (
    p.Protocol.NOUNKNOWN  # unknown SMTP commands: not ours to judge
    | p.Protocol.NODATA  # nothing happens at DATA itself
    | p.Protocol.NR_CONN  # no answer to connect, HELO, headers, end of headers
    | p.Protocol.NR_HELO
    | p.Protocol.NR_HDR
    | p.Protocol.NR_EOH
    | p.Protocol.NR_DATA
    | p.Protocol.NR_UNKN
    | p.Protocol.SKIP  # no more body chunks once we have all we may use
    | p.Protocol.HDR_LEADSPC  # the header values exactly as sent (DKIM "simple" needs them)
)
# The macros we read, per stage (SMFIR_SETSYMLIST; Postfix sends its configured
# milter_*_macros otherwise, which hold these by default but for {client_addr}).
MACROS = {
    p.Stage.CONNECT: "j {client_addr} {client_name} {daemon_name}",
    p.Stage.HELO: "{tls_version} {cipher}",
    p.Stage.ENVFROM: "i {auth_authen} {auth_type} {mail_addr}",
    p.Stage.ENVRCPT: "{rcpt_addr}",
    p.Stage.EOM: "i",
}
MAX_RECIPIENTS = 10_000  # Postfix's smtpd_recipient_limit is 1000
IDLE_TIMEOUT = 3600.0  # an MTA connection silent this long is gone
MARGIN = 2.0  # seconds kept between our answer and the MTA's timeout
INCOMPLETE = "X-Mailwarden-Incomplete"
QUICKACK: int = getattr(socket, "TCP_QUICKACK", 0)  # Linux only

ADMITTED = "mta"  # the key connections are counted under in a shared `Admission`
UNIX_MODE = 0o666  # Postfix connects as its own user: the socket's directory keeps others out
BACKLOG = 1024

Logger = Callable[[dict[str, object]], None]


class Admission(Protocol):
    """Connection counts shared by worker processes (gateway.admission.SharedAdmission):
    `admit` says which limit refuses a connection (None: counted in), `release` counts it
    out."""

    def admit(self, ip: str) -> Literal["total", "client"] | None: ...

    def release(self, ip: str) -> None: ...


def unix_listener(path: str) -> socket.socket:
    """A listening Unix socket at `path` (a socket left by an earlier run replaced), mode
    0666: Postfix connects as its own user, so the directory holding the socket is what keeps
    others out (see the README). `milter --workers N` binds it once and the workers inherit
    it (SO_REUSEPORT does not spread Unix sockets). OSError when it cannot be bound."""
    if Path(path).is_socket():
        Path(path).unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, UNIX_MODE)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class Closing(Exception):
    """The connection ends (QUIT, or a command out of place)."""


class BodySpool:
    """The body of one message: in memory up to `threshold` octets, then in a file under
    `directory` (removed by `discard`). Past `limit` octets it keeps nothing more."""

    def __init__(self, directory: Path, threshold: int, limit: int) -> None:
        self.directory = directory
        self.threshold = threshold
        self.limit = limit
        self.memory = bytearray()
        self.file: BinaryIO | None = None
        self.path: Path | None = None
        self.size = 0
        self.too_big = False

    async def write(self, chunk: bytes) -> None:
        if self.too_big or not chunk:
            return
        if self.size + len(chunk) > self.limit:
            self.too_big = True
            await self.discard()
            return
        self.size += len(chunk)
        if self.file is None and len(self.memory) + len(chunk) <= self.threshold:
            self.memory += chunk
            return
        file = self.file
        if file is None:
            path, opened = await asyncio.to_thread(self._open)
            self.path, self.file, file = path, opened, opened
            pending, self.memory = bytes(self.memory), bytearray()
            chunk = pending + chunk
        await asyncio.to_thread(file.write, chunk)

    def _open(self) -> tuple[Path, BinaryIO]:
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix="msg-", dir=self.directory)
        return Path(name), os.fdopen(handle, "wb", buffering=1 << 16)

    async def finish(self, head: bytes) -> bytes | SpooledMessage:
        """The whole message: bytes, or the head with the spooled body (close it after)."""
        if self.file is None or self.path is None:
            return head + bytes(self.memory)
        await asyncio.to_thread(self.file.close)
        self.file = None
        return SpooledMessage(head, SpooledBody(self.path, self.size))

    async def discard(self) -> None:
        self.memory = bytearray()
        file, path = self.file, self.path
        self.file, self.path = None, None
        if file is not None:
            await asyncio.to_thread(file.close)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(os.unlink, path)


class Message:
    """What one transaction gathered: recipients, the header section, the body."""

    def __init__(self, checks: TransactionChecks, spool: BodySpool, max_header: int) -> None:
        self.checks = checks
        self.spool = spool
        self.max_header = max_header
        self.rcpts: list[str] = []
        self.head = bytearray()
        self.head_too_big = False
        self.ended_headers = False

    def header(self, name: str, value: str, leading_space: bool) -> None:
        if self.head_too_big:
            return
        if not leading_space and value[:1] not in (" ", "\t"):
            value = " " + value
        text = f"{name}:{value}".replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
        raw = text.encode("utf-8", "surrogateescape") + b"\r\n"
        if len(self.head) + len(raw) > self.max_header:
            self.head_too_big = True
            self.head = bytearray()
            return
        self.head += raw

    async def close(self) -> None:
        self.checks.cancel()
        await self.spool.discard()


class MilterServer:
    """Listens at `[milter] listen` (or `listen`); `async with` runs it."""

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        *,
        listen: str | None = None,
        spool_dir: Path | None = None,
        log_record: Logger | None = None,
        sock: socket.socket | None = None,
        reuse_port: bool = False,
        admission: Admission | None = None,
    ) -> None:
        """`sock`: a listening Unix socket to serve on (inherited: its path is its binder's
        to remove); `reuse_port`: SO_REUSEPORT on the TCP port (worker processes);
        `admission`: `[milter] max_connections` counted with the other workers."""
        self.settings = settings
        self.config = settings.milter
        self.pipeline = pipeline
        self.listen = listen or self.config.listen
        self.spool_dir = spool_dir or Path(settings.gateway.data_dir) / "milter-spool"
        self.log_record = log_record
        self.sock = sock
        self.reuse_port = reuse_port
        self.admission = admission
        self._owns_path = False  # the Unix socket's path is ours to remove
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], Connection] = {}
        self._stopping = False

    @property
    def address(self) -> str:
        """Where we listen: `host:port` (the port bound) or `unix:/path`."""
        if self.listen.startswith("unix:") or self._server is None:
            return self.listen
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def __aenter__(self) -> MilterServer:
        await asyncio.to_thread(self._prepare_spool)
        if self.listen.startswith("unix:"):
            sock = self.sock
            if sock is None:
                sock = await asyncio.to_thread(unix_listener, self.listen.removeprefix("unix:"))
                self._owns_path = True
            self._server = await asyncio.start_unix_server(self._accept, sock=sock, limit=1 << 16)
        else:
            host, _, port = self.listen.rpartition(":")
            self._server = await asyncio.start_server(
                self._accept,
                host.strip("[]"),
                int(port),
                limit=1 << 16,
                reuse_port=self.reuse_port or None,
                backlog=BACKLOG,
            )
        return self

    def _prepare_spool(self) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.spool_dir.glob("msg-*"):  # files of a crash are not mail
            stale.unlink(missing_ok=True)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if not self._stopping:
            await self.stop_accepting()
            await self.wait_idle(self.grace)
        for task in list(self._connections):  # what is left is cut
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            if self._owns_path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.listen.removeprefix("unix:"))

    def replace(self, settings: Settings, pipeline: Pipeline) -> None:
        """A reload (SIGHUP): new MTA connections (new SMTP sessions) use these settings and
        this pipeline; those open finish on theirs. The listener and `[milter]` stay."""
        self.settings, self.pipeline = settings, pipeline

    async def close_listener(self) -> None:
        """No new connections; those open go on (`stop_accepting` ends them). Worker
        processes each close theirs, then all end their idle connections (cli/workers.py)."""
        if self._server is not None:
            await close_listener(self._server)

    async def stop_accepting(self) -> None:
        """No new connections; connections between messages are closed now, the others
        once their message is answered (lifecycle's `Draining`)."""
        self._stopping = True
        await self.close_listener()
        for task, connection in list(self._connections.items()):
            if not connection.busy:
                task.cancel()

    async def wait_idle(self, seconds: float) -> bool:
        """Wait up to `seconds` for the messages in flight; True when none is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while any(c.busy for c in self._connections.values()):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    @property
    def grace(self) -> float:
        return min(self.config.command_timeout, 30.0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping or len(self._connections) >= self.config.max_connections:
            writer.close()  # the MTA applies milter_default_action
            return
        # the MTA is the only client: the total is the limit (`ADMITTED` is its one key)
        if self.admission is not None and self.admission.admit(ADMITTED) is not None:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        connection = Connection(self, reader, writer)
        self._connections[task] = connection
        metrics.connection_opened("milter")
        try:
            await connection.run()
        except asyncio.CancelledError:
            # cut by a stop: ended here, as asyncio's streams (Python 3.11) log the
            # CancelledError of a connection task with a traceback ("Exception in callback")
            pass
        finally:
            metrics.connection_closed("milter")
            self._connections.pop(task, None)
            if self.admission is not None:
                self.admission.release(ADMITTED)
            await connection.close()


class Connection:
    """One MTA connection: the protocol state machine (libmilter engine.c's, leniently)."""

    def __init__(
        self, server: MilterServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.settings = server.settings
        self.pipeline = server.pipeline
        self.reader = reader
        self.writer = writer
        self.packets = p.PacketReader()
        self.actions = p.Action(0)
        self.protocol = p.Protocol(0)
        self.negotiated = False
        self.macros: dict[str, dict[str, str]] = {}
        self.session: SessionChecks | None = None
        self.client_ip = ""
        self.helo_name = ""
        self.message: Message | None = None
        self.skipping = False  # SMFIR_ACCEPT given for this message: ignore the rest of it
        self.handling = False  # a command is being answered
        sock = writer.get_extra_info("socket")
        tcp = sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6)
        self._socket = sock if tcp and QUICKACK else None

    @property
    def busy(self) -> bool:
        """Inside a message, or answering: a stop waits for it (within the grace time)."""
        return self.handling or self.message is not None

    # -- plumbing ------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                async with asyncio.timeout(IDLE_TIMEOUT):
                    data = await self.reader.read(1 << 16)
                if not data:
                    return
                self._quickack()
                for code, body in self.packets.feed(data):
                    self.handling = True
                    await self.handle(p.decode_command(code, body))
                    self.handling = False
                if self.server._stopping and not self.busy:
                    return  # stopping: the message in flight was answered
        except p.ProtocolError as exc:
            log.warning("milter: closing the connection: %s", exc)
        except (Closing, TimeoutError, ConnectionError):
            pass
        except Exception:  # a bug: this connection ends (the MTA applies its default action)
            log.exception("milter: internal error, closing the connection")

    def _quickack(self) -> None:
        """Acknowledge what the MTA sent at once. Postfix writes some commands in two
        segments (macros, then the command) without TCP_NODELAY: with Nagle's algorithm on
        its side and delayed ACKs on ours, the second waited 40 ms for our ACK, every
        message (benchmarks/milter_bench.py: 50 ms added per message, 5 ms with this).
        Linux leaves quick-ACK mode by itself, so it is asked again after every read."""
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)

    async def close(self) -> None:
        """End the connection; the socket is closed even when a stop cancels this."""
        try:
            await self._end_session()
        finally:
            self.writer.close()
        with contextlib.suppress(OSError, RuntimeError):
            await self.writer.wait_closed()

    async def send(self, *responses: p.Response) -> None:
        self.writer.write(b"".join(p.encode_response(r) for r in responses))
        await self.writer.drain()

    async def answer(
        self, stage: str, started: float, response: p.Response, *, quiet: p.Protocol
    ) -> None:
        """Send `response` unless we negotiated not to answer this stage (`quiet`)."""
        if not quiet or quiet not in self.protocol:
            await self.send(response)
            metrics.observe_answer("milter", stage, time.perf_counter() - started)

    def macro(self, name: str) -> str:
        """The latest value of macro `name` (with or without braces) from any stage."""
        for values in reversed(self.macros.values()):
            for key in (name, f"{{{name}}}", name.strip("{}")):
                if key in values:
                    return values[key]
        return ""

    async def _end_message(self, *, forget_macros: bool = True) -> None:
        """The transaction ended (end of message, ABORT, a new MAIL): its checks stop, its
        spool file goes, and so do its macros (MAIL's come before the MAIL command)."""
        self.skipping = False
        if forget_macros:
            self.macros = {k: v for k, v in self.macros.items() if k in ("C", "H")}
        if self.message is not None:
            message, self.message = self.message, None
            await message.close()

    async def _end_session(self) -> None:
        await self._end_message()
        self.macros = {k: v for k, v in self.macros.items() if k == "C"}
        if self.session is not None:
            session, self.session = self.session, None
            await session.close()

    def _need_message(self) -> Message:
        if self.message is None:
            raise p.ProtocolError("message command outside a transaction")
        return self.message

    # -- the commands --------------------------------------------------------------------

    async def handle(self, command: p.Command) -> None:
        started = time.perf_counter()
        if not self.negotiated and not isinstance(command, p.OptionNegotiation):
            raise p.ProtocolError("a command before option negotiation")
        match command:
            case p.OptionNegotiation():
                await self.negotiate(command)
            case p.Macro(target, values):
                if len(self.macros) > 16 and target not in self.macros:
                    raise p.ProtocolError("too many macro stages")
                self.macros.pop(target, None)
                self.macros[target] = dict(values)
            case p.Connect():
                await self.connect(command)
                await self.answer("connect", started, p.Continue(), quiet=p.Protocol.NR_CONN)
            case p.Helo(name):
                self._need_session().helo(name)
                self.helo_name = name
                await self.answer("helo", started, p.Continue(), quiet=p.Protocol.NR_HELO)
            case p.Mail(sender):
                await self.answer("mail", started, await self.mail(sender), quiet=p.Protocol(0))
            case p.Rcpt(recipient):
                reply = await self.rcpt(recipient)
                await self.answer("rcpt", started, reply, quiet=p.Protocol(0))
            case p.Header(name, value):
                if not self.skipping:
                    leading = p.Protocol.HDR_LEADSPC in self.protocol
                    self._need_message().header(name, value, leading)
                await self.answer("header", started, p.Continue(), quiet=p.Protocol.NR_HDR)
            case p.EndOfHeaders():
                if not self.skipping:
                    message = self._need_message()
                    message.ended_headers = True
                await self.answer("eoh", started, p.Continue(), quiet=p.Protocol.NR_EOH)
            case p.Body(chunk):
                await self.answer("body", started, await self.body(chunk), quiet=p.Protocol(0))
            case p.BodyEnd(chunk):
                await self.end_of_message(chunk, started)
            case p.Abort():
                await self._end_message()
            case p.Data():
                await self.answer("data", started, p.Continue(), quiet=p.Protocol.NR_DATA)
            case p.Unknown():
                await self.answer("unknown", started, p.Continue(), quiet=p.Protocol.NR_UNKN)
            case p.QuitNewConnection():
                await self._end_session()  # the next SMTP session follows on this socket
            case p.Quit():
                raise Closing

    def _need_session(self) -> SessionChecks:
        if self.session is None:
            raise p.ProtocolError("a command before connect")
        return self.session

    async def negotiate(self, offer: p.OptionNegotiation) -> None:
        if self.negotiated:
            raise p.ProtocolError("option negotiation twice")
        if offer.version < 2:
            raise p.ProtocolError(f"milter protocol version {offer.version} unsupported")
        version = min(offer.version, p.VERSION)
        self.actions = ACTIONS & offer.actions
        # NR_* and SKIP exist from version 6 on; an MTA offering them speaks it
        self.protocol = PROTOCOL & offer.protocol
        macros = MACROS if p.Action.SETSYMLIST in self.actions else {}
        self.negotiated = True
        await self.send(p.OptionNegotiation(version, self.actions, self.protocol, macros))

    async def connect(self, command: p.Connect) -> None:
        await self._end_session()
        address = command.address.removeprefix("IPv6:")
        local = command.family in (p.Family.UNIX, p.Family.UNKNOWN)
        if local:  # a local submission (non_smtpd_milters, a unix socket): not inbound mail
            address = self.macro("client_addr").removeprefix("IPv6:")
        try:
            ip = str(ipaddress.ip_address(address))
        except ValueError:
            if not local:
                raise p.ProtocolError(f"not an IP address: {address!r}") from None
            ip = "127.0.0.1"
        self.client_ip = ip
        self.helo_name = ""
        trusted = local or self.settings.gateway.is_trusted(ip)
        self.session = SessionChecks(self.pipeline, ip, trusted=trusted)

    async def mail(self, sender: str) -> p.Response:
        session = self._need_session()
        await self._end_message(forget_macros=False)
        if self.macro("auth_authen"):  # RFC 4954 §6: an authenticated submission
            self.skipping = True
            return p.Accept()
        # Postfix's queue id names the transaction in the store of recent transactions
        checks = session.mail(_path(sender), self.helo_name, queue_id=self.macro("i"))
        limits = self.settings.gateway.limits
        spool = BodySpool(self.server.spool_dir, limits.spool_threshold, limits.max_message_size)
        self.message = Message(checks, spool, limits.max_header_size)
        return p.Continue()

    async def rcpt(self, recipient: str) -> p.Response:
        if self.skipping:
            return p.Continue()
        message = self._need_message()
        if len(message.rcpts) >= MAX_RECIPIENTS:
            return _reply(SMTPReply(452, "4.5.3", "Too many recipients"))
        rcpt = _path(recipient)
        budget = self.server.config.command_timeout - MARGIN
        try:
            async with asyncio.timeout(budget):
                reply = await message.checks.rcpt(rcpt)
        except TimeoutError:  # nothing decided here: the end of the message decides
            reply = None
        if reply is not None:
            return _reply(reply)
        message.rcpts.append(rcpt)
        return p.Continue()

    async def body(self, chunk: bytes) -> p.Response:
        if self.skipping:
            return p.Continue()
        message = self._need_message()
        await message.spool.write(chunk)
        if message.spool.too_big and p.Protocol.SKIP in self.protocol:
            return p.Skip()  # the answer is a refusal: the rest is of no use
        return p.Continue()

    async def end_of_message(self, chunk: bytes, started: float) -> None:
        if self.skipping:
            await self._end_message()
            await self.answer("eom", started, p.Continue(), quiet=p.Protocol(0))
            return
        message = self._need_message()
        await message.spool.write(chunk)
        try:
            responses = await self._verdict(message)
        finally:
            await self._end_message()
        await self.send(*responses)
        metrics.observe_answer("milter", "eom", time.perf_counter() - started)

    async def _verdict(self, message: Message) -> list[p.Response]:
        limits = self.settings.gateway.limits
        if message.head_too_big:
            text = f"Error: header larger than {limits.max_header_size}"
            return [_reply(SMTPReply(552, "5.3.4", text))]
        if message.spool.too_big:
            text = "Error: message size exceeds fixed maximum size"
            return [_reply(SMTPReply(552, "5.3.4", text))]
        head = bytes(message.head) + b"\r\n"  # the empty line (EOH) ends the header section
        whole = await message.spool.finish(head)
        budget = self.server.config.content_timeout - MARGIN
        try:
            async with asyncio.timeout(budget):
                decision = await message.checks.data(whole, message.rcpts)
        except TimeoutError:
            # no verdict in time: the message's authentication is unknown, so it is not
            # applied (no DMARC policy on a guess) and the sender retries later
            self._log({"action": "tempfail", "reason": "checks out of time"})
            return [_reply(SMTPReply(451, "4.4.3", "Checks did not finish in time, try later"))]
        finally:
            if isinstance(whole, SpooledMessage):
                await asyncio.to_thread(whole.close)
        self._log(decision.log)
        return self.responses(decision)

    def responses(self, decision: MessageDecision) -> list[p.Response]:
        """The decision in milter terms: changes first, the final answer last."""
        reply = decision.reply
        if reply is not None:
            if 200 <= reply.code < 300:  # the pipeline's "accept and drop"
                return [p.Discard()]
            return [_reply(reply)]
        out: list[p.Response] = []
        if p.Action.CHGHDRS in self.actions and decision.message is not None:
            out += _removals(decision)
        if p.Action.ADDHDRS in self.actions:
            fields = list(decision.add_headers)
            verdict = decision.verdict
            if verdict is not None and verdict.timed_out:
                fields.append((INCOMPLETE, "out of time: " + ", ".join(verdict.timed_out)))
            lead = " " if p.Protocol.HDR_LEADSPC in self.protocol else ""
            for name, value in reversed(fields):  # each at the top: the first ends up first
                folded = fold_field(name, value, linesep="\n")[len(name) + 1 :]
                out.append(p.InsertHeader(0, name, lead + folded.lstrip(" ")))
        if decision.redirect_to is not None and p.Action.QUARANTINE in self.actions:
            verdict = decision.verdict
            reason = "; ".join(verdict.policy.reasons) if verdict is not None else ""
            out.append(p.Quarantine(_one_line(reason or "mailwarden: quarantined")))
        out.append(p.Continue())
        return out

    def _log(self, record: dict[str, object]) -> None:
        if self.server.log_record is not None:
            self.server.log_record(
                {
                    "frontend": "milter",
                    "client": self.client_ip,
                    "queue_id": self.macro("i"),
                    **record,
                }
            )


def _path(text: str) -> str:
    """The address in a MAIL or RCPT argument: angle brackets and a source route removed."""
    text = text.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if text.startswith("@") and ":" in text:  # RFC 5321 §4.1.2 source route: ignored
        text = text.partition(":")[2]
    return text


def _one_line(text: str) -> str:
    return " ".join(text.replace("\x00", " ").split())[:900]


def _reply(reply: SMTPReply) -> p.Response:
    code = reply.code if 400 <= reply.code <= 599 else 451
    status = reply.status if reply.status[:1] == str(code)[0] else ""
    return p.ReplyCode(p.reply_text(code, status, reply.text.splitlines() or [""]))


def _removals(decision: MessageDecision) -> list[p.Response]:
    """SMFIR_CHGHEADER with an empty value for each forged field: the index is the field's
    occurrence among fields of its name (from 1, names compared without case, as Postfix's
    cleanup_milter.c counts), highest first so no removal moves another."""
    parsed = decision.message
    if parsed is None or parsed.message is None:
        return []
    fields = parsed.message.fields
    drop = set(decision.remove_fields)
    seen: dict[str, int] = {}
    out: list[tuple[int, str]] = []
    for index, field in enumerate(fields):
        name = field.name.decode("utf-8", "surrogateescape")
        key = name.lower()
        seen[key] = seen.get(key, 0) + 1
        if index in drop:
            out.append((seen[key], name))
    return [p.ChangeHeader(n, name, "") for n, name in sorted(out, key=lambda x: -x[0])]
