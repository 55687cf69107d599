"""mailwarden.socketmap: lookup services for Postfix (socketmap and tcp_table), and the SRS
maps `mailwarden srs --listen` serves with them, as postsrsd does."""

from .netstring import NetstringError, encode, parse, read_netstring
from .server import Answer, Lookup, SocketmapServer, Status, TCPTableServer, parse_listen
from .srs import srs_maps

__all__ = [
    "Answer",
    "Lookup",
    "NetstringError",
    "SocketmapServer",
    "Status",
    "TCPTableServer",
    "encode",
    "parse",
    "parse_listen",
    "read_netstring",
    "srs_maps",
]
