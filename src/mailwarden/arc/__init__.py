"""mailwarden.arc: Authenticated Received Chain (RFC 8617).

RFC 8617 is being moved to Historic: this package is complete but optional, and nothing in
mailwarden depends on it except the verdict pipeline, which may call it.

`ARCVerifier(resolver).verify(message)` validates the chain (RFC 8617 §5.2) and returns an
`ARCResult` (none/pass/fail, reason, oldest-pass, per-set details); `seal(...)` makes the next
ARC set (§5.1); `trusted_sealer_dmarc_pass` / `trusted_forwarder_override` decide whether a
trusted sealer's DMARC pass overrides a local DMARC fail (reason trusted_forwarder). The
header parsers raise only `ARCError`.
"""

from .model import (
    MAX_INSTANCE,
    ARCAuthenticationResults,
    ARCError,
    ARCMessageSignature,
    ARCSeal,
    ARCSetFields,
    ARCStatus,
    collect_sets,
    parse_aar,
    parse_message_signature,
    parse_seal,
)
from .seal import (
    DEFAULT_AMS_HEADERS,
    SealingError,
    header_block,
    merge_authentication_results,
    seal,
)
from .trusted import (
    TrustedSealerCheck,
    trusted_forwarder_override,
    trusted_sealer_dmarc_pass,
)
from .verify import ARCReason, ARCResult, ARCSetResult, ARCVerifier, KeySource

__all__ = [
    "DEFAULT_AMS_HEADERS",
    "MAX_INSTANCE",
    "ARCAuthenticationResults",
    "ARCError",
    "ARCMessageSignature",
    "ARCReason",
    "ARCResult",
    "ARCSeal",
    "ARCSetFields",
    "ARCSetResult",
    "ARCStatus",
    "ARCVerifier",
    "KeySource",
    "SealingError",
    "TrustedSealerCheck",
    "collect_sets",
    "header_block",
    "merge_authentication_results",
    "parse_aar",
    "parse_message_signature",
    "parse_seal",
    "seal",
    "trusted_forwarder_override",
    "trusted_sealer_dmarc_pass",
]
