"""mailwarden.milter: the Sendmail/Postfix milter protocol (version 6) and its front end.

`protocol` is the codec (packets, commands, responses); `client` the MTA's side
(`negotiate(host, port, timeout)` for `mailwarden postfix check`, and tests).
"""

from . import protocol
from .client import MilterClient, Negotiated, NegotiationError, negotiate

__all__ = ["MilterClient", "Negotiated", "NegotiationError", "negotiate", "protocol"]
