"""The real resolver: mailwarden's own stub resolver over `transport` and the lean `wire` codec.

Queries go to the servers given (an address or a host name, with an optional port) or to those
of /etc/resolv.conf, with EDNS0, a per-attempt timeout, retries after a timeout, and TCP when a
UDP answer is truncated. Each attempt starts at the next server, so one silent server does not
use up every attempt; within an attempt, a server that answers with an error (SERVFAIL,
REFUSED, a closed port) hands the query to the next one at once.

benchmarks/dns_bench.py chose it: against nsd on loopback, a cold query costs about 50 µs of
CPU with 100 in flight, against about 770 µs for dnspython's resolver, which it replaces
(tests/dns/test_wire.py holds the two parsers to each other), and 120 µs for c-ares through
aiodns (which would also lose the negative TTLs and the TXT string boundaries).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import weakref
from collections.abc import Sequence

from .names import is_domain_name, normalize
from .transport import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_ROTATE_AFTER,
    DEFAULT_SOCKETS,
    ServerTransport,
    TransportError,
)
from .types import Answer, NXDomain, RdType, TemporaryFailure
from .wire import ServerError, interpret, question

DEFAULT_PORT = 53
RESOLV_CONF = "/etc/resolv.conf"
MAX_RESOLV_CONF = 1 << 20  # octets read: a resolv.conf is a few lines


def _split_server(text: str) -> tuple[str, int]:
    """ "host", "host:port", "[v6]:port" or a bare IPv6 address -> (host, port)."""
    value = text.strip()
    host, port_text = value, ""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("expected [IPv6]:PORT")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
        port_text = rest[1:]
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    port = DEFAULT_PORT
    if port_text or value.endswith(":"):
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            raise ValueError(f"{port_text!r} is not a port number")
        port = int(port_text)
    return host, port


def resolve_server(text: str) -> list[tuple[str, int]]:
    """A --dns-server value as (address, port) pairs: an IP address as it is, a host name
    through the system's resolver (getaddrinfo: /etc/hosts, then DNS), once, every address it
    has. ValueError saying why when it is neither or does not resolve."""
    host, port = _split_server(text)
    try:
        return [(str(ipaddress.ip_address(host)), port)]
    except ValueError:
        pass
    if not is_domain_name(host):
        raise ValueError(f"{host!r} is neither an IP address nor a host name")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValueError(f"host name {host!r} does not resolve ({reason})") from None
    addresses: list[tuple[str, int]] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            pair = (str(ipaddress.ip_address(sockaddr[0])), port)
            if pair not in addresses:
                addresses.append(pair)
    if not addresses:
        raise ValueError(f"host name {host!r} has no IP address")
    return addresses


def parse_server(text: str) -> tuple[str, int]:
    """ "192.0.2.1", "192.0.2.1:5353", "2001:db8::1", "[2001:db8::1]:5353", "localhost:5353"
    -> (address, port); a host name gives the first address the system resolver returns."""
    return resolve_server(text)[0]


def system_servers(path: str = RESOLV_CONF) -> list[tuple[str, int]]:
    """The name servers of resolv.conf, in order; 127.0.0.1 when it names none or cannot be
    read (resolv.conf(5)). Only `nameserver` lines matter here: a line whose first word is
    `nameserver` names the address after it (a comment starts with # or ; at the start of a
    line); an entry that is no IP address is passed over, not fatal. Read here rather than
    through dnspython's resolver, whose import (its DNS-over-HTTPS client included) cost a
    `mailwarden check` more than its checks; tests/dns/test_system.py holds the two readers
    to each other."""
    try:
        with open(path, "rb") as file:
            text = file.read(MAX_RESOLV_CONF).decode("utf-8", "replace")
    except OSError:
        return [("127.0.0.1", DEFAULT_PORT)]
    servers: list[tuple[str, int]] = []
    for line in text.splitlines():
        if line[:1] in ("#", ";"):
            continue
        words = line.split()
        if len(words) < 2 or words[0] != "nameserver":
            continue
        try:
            server = (str(ipaddress.ip_address(words[1])), DEFAULT_PORT)
        except ValueError:
            continue
        if server not in servers:
            servers.append(server)
    return servers or [("127.0.0.1", DEFAULT_PORT)]


def _close_all(transports: list[ServerTransport]) -> None:
    for transport in transports:
        transport.close()


class SystemResolver:
    """Resolver over the network (UDP with TCP fallback, EDNS0)."""

    def __init__(
        self,
        servers: Sequence[str | tuple[str, int]] = (),
        *,
        timeout: float = 5.0,
        retries: int = 2,
        edns_payload: int = 1232,
        sockets_per_server: int = DEFAULT_SOCKETS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        rotate_after: int = DEFAULT_ROTATE_AFTER,
    ) -> None:
        self.timeout = timeout
        self.retries = retries
        addresses: list[tuple[str, int]] = []
        for server in servers:
            if isinstance(server, str):
                addresses.extend(a for a in resolve_server(server) if a not in addresses)
            elif server not in addresses:
                addresses.append((str(ipaddress.ip_address(server[0])), server[1]))
        self.servers = [
            ServerTransport(
                address,
                port,
                sockets=sockets_per_server,
                max_in_flight=max_in_flight,
                rotate_after=rotate_after,
                edns_payload=edns_payload,
            )
            for address, port in addresses or system_servers()
        ]
        # Sockets are closed when the resolver goes, even if nobody calls close().
        self._finalizer = weakref.finalize(self, _close_all, list(self.servers))

    def close(self) -> None:
        """Close the sockets (a later query opens new ones)."""
        _close_all(self.servers)

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        """Look up `name`; a name that cannot exist in DNS (bad label) is NXDomain."""
        qname_text = normalize(name)
        try:
            q = question(qname_text, rdtype)
        except ValueError:
            raise NXDomain(qname_text, rdtype, "invalid name") from None
        servers = self.servers
        count = len(servers)
        clock = asyncio.get_running_loop().time
        for attempt in range(self.retries + 1):
            error: str | None = None
            deadline = clock() + self.timeout  # one timeout per attempt, whatever it asks
            for step in range(count):
                server = servers[(attempt + step) % count]
                try:
                    response = await server.query(q, deadline - clock())
                except TimeoutError:
                    error = None  # the attempt is over; the next starts at the next server
                    break
                except TransportError as exc:
                    error = error or exc.detail
                    continue
                try:
                    return interpret(response, q)  # or NXDomain / NoData, with negative TTL
                except ServerError as exc:
                    error = error or exc.detail
            if error is not None:  # every server answered, none usefully: no point retrying
                raise TemporaryFailure(qname_text, rdtype, error)
        raise TemporaryFailure(qname_text, rdtype, "timeout")
