"""mailwarden.gateway: the receiving SMTP gateway (`mailwarden serve`).

`Gateway(config, checks)` listens, runs the strict-SMTP tests, refuses relaying and relays
accepted mail to the downstream mailbox server before answering the client. The checks plug in
through the `Checks` protocol of `hooks`; `AcceptAll` runs none.
"""

from .config import (
    BareLineEnding,
    ConfigError,
    GatewayConfig,
    Limits,
    Protocol,
    StrictAction,
    Timeouts,
    TLSConfig,
    config_from_mapping,
    load_config,
    parse_hostport,
)
from .downstream import DownstreamRelay, Outbound, Relay, Unavailable
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
    "DownstreamRelay",
    "Event",
    "Gateway",
    "GatewayConfig",
    "HeaderFilter",
    "Limits",
    "MaildirRelay",
    "Outbound",
    "PathError",
    "Protocol",
    "Relay",
    "RelayControl",
    "Reply",
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
