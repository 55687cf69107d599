"""mailwarden.srs: the Sender Rewriting Scheme for forwarded mail, compatible with libsrs2
and postsrsd, and the forwarding rules that decide what is forwarded.

`SRS(domain, secrets)` rewrites senders (`forward`) and reads bounce addresses back
(`reverse`); `Aliases` is the alias file; `Forwarder` routes each recipient (here, forwarded,
a bounce to reverse, or a forged SRS address to refuse) and gives the rewritten sender;
`dmarc_risk` says when forwarding will fail DMARC anyway. Secrets live in a postsrsd-style
file (`read_secrets`, `ensure_secret_file`).
"""

from .aliases import MAX_TARGETS, AliasError, Aliases, normalize_address
from .core import (
    MAX_ADDRESS,
    SEPARATORS,
    SRS,
    SRSError,
    SRSReason,
    is_srs_address,
    srs_hash,
    timestamp,
)
from .forwarding import Forwarder, Route, RouteKind, dmarc_risk
from .secrets import SecretFileError, ensure_secret_file, read_secrets

__all__ = [
    "MAX_ADDRESS",
    "MAX_TARGETS",
    "SEPARATORS",
    "SRS",
    "AliasError",
    "Aliases",
    "Forwarder",
    "Route",
    "RouteKind",
    "SRSError",
    "SRSReason",
    "SecretFileError",
    "dmarc_risk",
    "ensure_secret_file",
    "is_srs_address",
    "normalize_address",
    "read_secrets",
    "srs_hash",
    "timestamp",
]
