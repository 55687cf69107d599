"""mailwarden.spf: Sender Policy Framework, all of RFC 7208.

`SPFChecker(resolver).check_mailfrom(ip, mail_from, helo)` and `.check_helo(ip, helo)` return an
`SPFResult`; `received_spf` formats it as a header (its Authentication-Results clause comes
from `mailwarden.authres`); `parse_record` exposes the record grammar (raising
`SPFSyntaxError`).
"""

from .check import SPFChecker, split_sender
from .header import describe, received_spf
from .interpreter import SPFLimits, valid_domain
from .record import (
    Macro,
    MacroString,
    Mechanism,
    MechanismKind,
    Modifier,
    Qualifier,
    Record,
    SPFSyntaxError,
    parse_explanation,
    parse_record,
)
from .result import Identity, SPFReason, SPFResult, SPFStatus

__all__ = [
    "Identity",
    "Macro",
    "MacroString",
    "Mechanism",
    "MechanismKind",
    "Modifier",
    "Qualifier",
    "Record",
    "SPFChecker",
    "SPFLimits",
    "SPFReason",
    "SPFResult",
    "SPFStatus",
    "SPFSyntaxError",
    "describe",
    "parse_explanation",
    "parse_record",
    "received_spf",
    "split_sender",
    "valid_domain",
]
