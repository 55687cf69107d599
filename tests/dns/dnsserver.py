"""A small authoritative DNS server on 127.0.0.1 (UDP and TCP on one port) for resolver tests.

It answers from a dict of records and can misbehave on purpose: SERVFAIL, silence, dropping the
first UDP queries for a name, truncating UDP answers larger than the client's EDNS payload, and
answering UDP queries only after `delay` seconds (it then counts how many wait at once).
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

SOA = "ns.test. hostmaster.test. 1 3600 600 86400 60"  # minimum 60


@dataclass
class Query:
    name: str
    rdtype: str
    tcp: bool
    edns: int
    payload: int
    id: int = 0
    source_port: int = 0


@dataclass
class DNSTestServer:
    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    ttl: int = 300
    servfail: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    drop_udp: dict[str, int] = field(default_factory=dict)
    queries: list[Query] = field(default_factory=list)
    port: int = 0
    delay: float = 0.0
    waiting: int = 0
    most_waiting: int = 0

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.records.setdefault((name.lower().rstrip(".") + ".", rdtype), []).extend(values)

    def respond(self, wire: bytes, tcp: bool, source_port: int = 0) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append(
            Query(name, rdtype, tcp, query.edns, query.payload, query.id, source_port)
        )
        if name in self.silent:
            return None
        if not tcp and self.drop_udp.get(name, 0) > 0:
            self.drop_udp[name] -= 1
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        owner = name
        for _ in range(8):  # answer CNAMEs with their chain, as a recursive server does
            alias = self.records.get((owner, "CNAME"))
            if rdtype == "CNAME" or not alias or (owner, rdtype) in self.records:
                break
            response.answer.append(
                dns.rrset.from_text_list(owner, self.ttl, dns.rdataclass.IN, "CNAME", alias)
            )
            owner = alias[0].lower()
        values = self.records.get((owner, rdtype))
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif values:
            response.answer.append(
                dns.rrset.from_text_list(owner, self.ttl, dns.rdataclass.IN, rdtype, values)
            )
        else:
            exists = any(owner == name or owner.endswith("." + name) for owner, _ in self.records)
            if not exists:
                response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(
                dns.rrset.from_text("test.", 300, dns.rdataclass.IN, "SOA", SOA)
            )
        out = response.to_wire(max_size=65535)  # truncation is done below, as a server does
        limit = query.payload if query.edns >= 0 else 512
        if not tcp and len(out) > limit:  # RFC 1035 §4.2.1 / RFC 6891 §7: truncate over UDP
            response.answer.clear()
            response.authority.clear()
            response.flags |= dns.flags.TC
            out = response.to_wire()
        return out

    def count(self, name: str, *, tcp: bool) -> int:
        return sum(1 for q in self.queries if q.name == name and q.tcp is tcp)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        server = self

        class UDP(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                answer = server.respond(data, tcp=False, source_port=addr[1])
                if answer is None:
                    return
                if not server.delay:
                    self.transport.sendto(answer, addr)  # type: ignore[attr-defined]
                    return
                server.waiting += 1
                server.most_waiting = max(server.most_waiting, server.waiting)
                loop.call_later(server.delay, self.send_later, answer, addr)

            def send_later(self, answer: bytes, addr: tuple[str, int]) -> None:
                server.waiting -= 1
                self.transport.sendto(answer, addr)  # type: ignore[attr-defined]

        for attempt in range(20):  # the TCP port of the same number may be taken: try another
            self._udp, _ = await loop.create_datagram_endpoint(UDP, local_addr=("127.0.0.1", 0))
            self.port = self._udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, "127.0.0.1", self.port)
            except OSError:
                self._udp.close()
                if attempt == 19:
                    raise
                continue
            return

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                answer = self.respond(await reader.readexactly(length), tcp=True)
                if answer is None:
                    continue
                writer.write(struct.pack("!H", len(answer)) + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        self._udp.close()
        self._tcp.close()
        await self._tcp.wait_closed()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"
