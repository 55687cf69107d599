"""mailwarden.dmarc: DMARC evaluation, RFC 9989 (DNS Tree Walk, psd, np, t) with RFC 7489
compatibility (Public Suffix List discovery, pct).

`DMARCEvaluator(resolver).evaluate(from_values, spf, dkim)` returns a `DMARCResult`;
`parse_record` exposes the record grammar; `Lookup`, `discover_policy` and
`organizational_domain` the discovery steps (for tools such as `mailwarden dmarc record`).
"""

from .discovery import (
    MAX_TREE_WALK_QUERIES,
    Discovery,
    DiscoveryTempError,
    Found,
    Lookup,
    PolicyDiscovery,
    PublicSuffixes,
    RecordSource,
    discover_policy,
    domain_exists,
    organizational_domain,
    tree_walk_names,
)
from .evaluate import (
    DKIMLike,
    DMARCEvaluator,
    DMARCReason,
    DMARCResult,
    DMARCStatus,
    LocalPolicy,
    MultipleAuthors,
    Override,
    OverrideReason,
    PolicyTag,
)
from .record import (
    PSD,
    Alignment,
    DMARCPolicy,
    DMARCRecord,
    RecordError,
    ReportURI,
    is_dmarc_record,
    parse_record,
)

__all__ = [
    "MAX_TREE_WALK_QUERIES",
    "PSD",
    "Alignment",
    "DKIMLike",
    "DMARCEvaluator",
    "DMARCPolicy",
    "DMARCReason",
    "DMARCRecord",
    "DMARCResult",
    "DMARCStatus",
    "Discovery",
    "DiscoveryTempError",
    "Found",
    "LocalPolicy",
    "Lookup",
    "MultipleAuthors",
    "Override",
    "OverrideReason",
    "PolicyDiscovery",
    "PolicyTag",
    "PublicSuffixes",
    "RecordError",
    "RecordSource",
    "ReportURI",
    "discover_policy",
    "domain_exists",
    "is_dmarc_record",
    "organizational_domain",
    "parse_record",
    "tree_walk_names",
]
