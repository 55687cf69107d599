"""mailwarden.authres: Authentication-Results (RFC 8601): parse, build, and drop forged ones.

`parse_authentication_results(value)` gives an `AuthenticationResults` (ParseError when
malformed); `AuthResultsBuilder(authserv_id).spf(...).dkim(...).dmarc(...)` builds ours, and
`.format_field()` writes it folded; `remove_forged(headers, authserv_id)` removes incoming
fields that claim our authserv-id (RFC 8601 §5).
"""

from .build import AuthResultsBuilder, DKIMReport, dkim_resinfo, spf_resinfo
from .model import AuthenticationResults, Property, ResInfo, format_pvalue, format_value
from .parse import (
    Parsed,
    ParseError,
    authserv_id_of,
    parse_arc_authentication_results,
    parse_authentication_results,
    parse_field,
    parse_with_warnings,
    remove_forged,
)

__all__ = [
    "AuthResultsBuilder",
    "AuthenticationResults",
    "DKIMReport",
    "ParseError",
    "Parsed",
    "Property",
    "ResInfo",
    "authserv_id_of",
    "dkim_resinfo",
    "format_pvalue",
    "format_value",
    "parse_arc_authentication_results",
    "parse_authentication_results",
    "parse_field",
    "parse_with_warnings",
    "remove_forged",
    "spf_resinfo",
]
