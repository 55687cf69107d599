"""mailwarden.gateway: the receiving SMTP gateway (`mailwarden serve`).

`Gateway(config, checks)` listens, runs the strict-SMTP tests, refuses relaying and relays
accepted mail to the downstream mailbox server before answering the client. The checks plug in
through the `Checks` protocol of `hooks`; `AcceptAll` runs none.
"""

from .config import (
    BareLineEnding,
    ConfigError,
    DownstreamProtocol,
    GatewayConfig,
    SMTPLimits,
    StrictAction,
    Timeouts,
    TLSConfig,
    config_from_mapping,
    load_config,
    parse_hostport,
)
from .downstream import Downstream, DownstreamRelay, Outbound, Unavailable
from .hooks import (
    AcceptAll,
    Checks,
    DataDecision,
    Event,
    HeaderFilter,
    Reply,
    Session,
    TLSInfo,
    Transaction,
)
from .log import TransactionLog
from .relay import Address, PathError, RelayControl, Trick, parse_path
from .server import Gateway
from .sink import MaildirRelay, sink_config

__all__ = [
    "AcceptAll",
    "Address",
    "BareLineEnding",
    "Checks",
    "ConfigError",
    "DataDecision",
    "Downstream",
    "DownstreamProtocol",
    "DownstreamRelay",
    "Event",
    "Gateway",
    "GatewayConfig",
    "HeaderFilter",
    "MaildirRelay",
    "Outbound",
    "PathError",
    "RelayControl",
    "Reply",
    "SMTPLimits",
    "Session",
    "StrictAction",
    "TLSConfig",
    "TLSInfo",
    "Timeouts",
    "Transaction",
    "TransactionLog",
    "Trick",
    "Unavailable",
    "config_from_mapping",
    "load_config",
    "parse_hostport",
    "parse_path",
    "sink_config",
]
