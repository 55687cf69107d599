"""Analyze a received message for a person: its path, where it entered the organisation, what
its authentication headers say, and what the checks say now.

The pure parts work on a parsed `Message`: `read_hops` (`hops`: the Received chain in travel
order, with delays, clock skew and out-of-order times), `find_boundary` (`boundary`: the first
hop that entered the receiving organisation), `explain_headers` (`explain`:
Authentication-Results, Received-SPF, DKIM-Signature and ARC sets in plain words) and `compare`
(`changes`: what changed since the message was received). `reverify` (`reverification`) does the DNS
work: DKIM, ARC, SPF and DMARC for the boundary address, iprev and DNS lists for every relaying
address, concurrently. `analyze_message` (`report`) runs the lot and returns an `Analysis` whose
`to_dict()` is the JSON of `mailwarden analyze`. The checks run again are those of the one
pipeline (`mailwarden.pipeline.build`), built from the settings the caller gives.
"""

from __future__ import annotations

from .boundary import (
    BoundaryMethod,
    TrustBoundary,
    find_boundary,
    received_field_positions,
    topmost_authserv_id,
    trusted_host,
)
from .changes import Change, compare, recorded_results
from .explain import HeaderExplanation, describe_resinfo, explain_headers, parse_received_spf
from .hops import MAX_CLOCK_SKEW, Hop, read_hops
from .report import Analysis, analyze_message
from .reverification import MAX_RELAYS, RelayHop, Reverification, envelope_sender, reverify

__all__ = [
    "MAX_CLOCK_SKEW",
    "MAX_RELAYS",
    "Analysis",
    "BoundaryMethod",
    "Change",
    "HeaderExplanation",
    "Hop",
    "RelayHop",
    "Reverification",
    "TrustBoundary",
    "analyze_message",
    "compare",
    "describe_resinfo",
    "envelope_sender",
    "explain_headers",
    "find_boundary",
    "parse_received_spf",
    "read_hops",
    "received_field_positions",
    "recorded_results",
    "reverify",
    "topmost_authserv_id",
    "trusted_host",
]
