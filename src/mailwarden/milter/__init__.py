"""mailwarden.milter: the Sendmail/Postfix milter protocol (version 6) and its front end.

`protocol` is the codec (packets, commands, responses); `client` the MTA's side
(`negotiate(host, port, timeout)` for `mailwarden postfix check`, and tests); `server` the
front end (`MilterServer`, run by `mailwarden milter`) on the one pipeline.
"""

from . import protocol
from .client import MilterClient, Negotiated, NegotiationError, negotiate
from .server import MilterServer

__all__ = [
    "MilterClient",
    "MilterServer",
    "Negotiated",
    "NegotiationError",
    "negotiate",
    "protocol",
]
