"""The MTA's side of the milter protocol: enough of it for `mailwarden postfix check` (a live
option negotiation with a running milter) and for tests that play Postfix.

`negotiate(host, port, timeout)` connects, offers what Postfix 3.x offers (version 6, every
action, every protocol step it knows: Postfix src/milter/milter8.c), reads the filter's answer
and says goodbye. `MilterClient` sends any command and reads the responses.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from types import TracebackType

from .protocol import (
    VERSION,
    Accept,
    Action,
    Command,
    Continue,
    Discard,
    OptionNegotiation,
    PacketReader,
    Protocol,
    ProtocolError,
    Quit,
    Reject,
    ReplyCode,
    Response,
    Skip,
    Stage,
    Tempfail,
    decode_response,
    encode_command,
)

__all__ = [
    "MTA_ACTIONS",
    "MTA_PROTOCOL",
    "MilterClient",
    "Negotiated",
    "NegotiationError",
    "negotiate",
]

MTA_ACTIONS = Action(0x1FF)  # every SMFIF_* up to SETSYMLIST
MTA_PROTOCOL = Protocol(0x1FFFFF)  # every SMFIP_* up to HDR_LEADSPC (Postfix's mask)
# The answers that end a command (anything else, such as a header change, is a step on the way).
_FINAL = (Continue, Accept, Reject, Tempfail, Discard, ReplyCode, Skip)


class NegotiationError(Exception):
    """The milter could not be reached, or did not negotiate (the message says why)."""


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The filter's answer to our option negotiation."""

    version: int
    actions: Action
    protocol: Protocol
    macros: dict[Stage, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "actions": sorted(flag.name or "" for flag in Action if flag in self.actions),
            "protocol": sorted(flag.name or "" for flag in Protocol if flag in self.protocol),
            "macros": {stage.name.lower(): names for stage, names in self.macros.items()},
        }


async def _open(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if host.startswith("unix:"):
        return await asyncio.open_unix_connection(host.removeprefix("unix:"))
    return await asyncio.open_connection(host, port)


class MilterClient:
    """One connection to a milter, seen from the MTA: `send` commands, `read` responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._packets = PacketReader()
        self._ready: list[tuple[bytes, bytes]] = []

    @classmethod
    async def connect(cls, host: str, port: int = 0) -> MilterClient:
        """Connect to `host`:`port`, or to the socket `unix:/path` given as `host`."""
        reader, writer = await _open(host, port)
        return cls(reader, writer)

    async def send(self, *commands: Command) -> None:
        for command in commands:
            self.writer.write(encode_command(command))
        await self.writer.drain()

    async def read(self) -> Response:
        """The next response; ProtocolError when the filter closed the connection."""
        while not self._ready:
            data = await self.reader.read(1 << 16)
            if not data:
                raise ProtocolError("the milter closed the connection")
            self._ready.extend(self._packets.feed(data))
        return decode_response(*self._ready.pop(0))

    async def until_final(self) -> list[Response]:
        """Responses up to and including the one that ends the command."""
        responses = [await self.read()]
        while not isinstance(responses[-1], _FINAL):
            responses.append(await self.read())
        return responses

    async def negotiate(
        self,
        actions: Action = MTA_ACTIONS,
        protocol: Protocol = MTA_PROTOCOL,
        version: int = VERSION,
    ) -> Negotiated:
        await self.send(OptionNegotiation(version, actions, protocol))
        answer = await self.read()
        if not isinstance(answer, OptionNegotiation):
            raise ProtocolError(f"expected an option negotiation, got {answer!r}")
        return Negotiated(answer.version, answer.actions, answer.protocol, dict(answer.macros))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    async def __aenter__(self) -> MilterClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()


async def negotiate(host: str, port: int, timeout: float = 10.0) -> Negotiated:  # noqa: ASYNC109
    """Negotiate options with the milter at `host`:`port` (or `unix:/path` as `host`, port
    ignored) as Postfix would, then quit. Raises NegotiationError saying what went wrong."""
    where = host if host.startswith("unix:") else f"{host}:{port}"
    try:
        async with asyncio.timeout(timeout):
            client = await MilterClient.connect(host, port)
            async with client:
                answer = await client.negotiate()
                await client.send(Quit())
    except TimeoutError:
        raise NegotiationError(f"{where}: no answer within {timeout:g} s") from None
    except OSError as exc:
        raise NegotiationError(f"{where}: cannot connect: {exc.strerror or exc}") from None
    except ProtocolError as exc:
        raise NegotiationError(f"{where}: not a milter answer: {exc}") from None
    if answer.version < 2 or answer.version > VERSION:
        raise NegotiationError(f"{where}: milter protocol version {answer.version} unsupported")
    if answer.actions & ~MTA_ACTIONS or answer.protocol & ~MTA_PROTOCOL:
        raise NegotiationError(f"{where}: the milter asked for options the MTA did not offer")
    return answer
