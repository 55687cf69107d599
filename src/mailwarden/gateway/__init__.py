"""mailwarden.gateway: the receiving SMTP gateway (`mailwarden serve`).

`Gateway(settings.gateway, PipelineChecks(pipeline))` listens, runs the strict-SMTP tests,
refuses relaying and relays accepted mail to the downstream mailbox server before answering
the client. The checks plug in through the `Checks` protocol of `hooks`; `PipelineChecks`
translates it to the one pipeline, `AcceptAll` runs none. Its settings are the `[gateway]`
section of `mailwarden.settings`. With an `Authenticator` (and `implicit_tls` for port 465) the
same server is the submission front end's (RFC 6409, RFC 4954, RFC 8314).
"""

from .checks import PipelineChecks
from .downstream import Downstream, DownstreamRelay, Outbound, Unavailable
from .forward import ARCSealer, Forwarding
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
from .relay import Address, PathError, RelayControl, Trick, parse_path
from .sasl import Credentials, Mechanism, SASLError
from .server import Gateway
from .sink import MaildirRelay, sink_config

__all__ = [
    "ARCSealer",
    "AcceptAll",
    "Address",
    "Authenticator",
    "Checks",
    "Credentials",
    "Downstream",
    "DownstreamRelay",
    "Event",
    "Forwarding",
    "Gateway",
    "MaildirRelay",
    "Mechanism",
    "Outbound",
    "PathError",
    "PipelineChecks",
    "RelayControl",
    "Reply",
    "SASLError",
    "Session",
    "TLSInfo",
    "Transaction",
    "TransactionLog",
    "Trick",
    "Unavailable",
    "parse_path",
    "sink_config",
]
