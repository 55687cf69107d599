"""mailwarden.dnsbl: DNS block and allow lists (RFC 5782), by address and by domain.

`DNSListChecker(resolver, lists, clock).check_ip(ip)`, `.check_domain(name)` and
`.check_domains({...})` return a `DNSListReport` whose results carry `Symbol`s named and
weighed as the lists' definitions say (RBL_ZEN_SBL, DNSWL_HI, RHSBL_DBL_SPAM, ...); the policy
scores them, the definition's score being its default. `.health_check()` runs the RFC 5782
§5 tests. `DEFAULT_LISTS` documents the public lists and what each needs (`needs_key`);
`parse_list` reads a list from configuration.
"""

from .check import (
    DNSListChecker,
    DNSListReport,
    ListHealth,
    ListReason,
    ListResult,
    ListStatus,
    query_name,
)
from .lists import (
    DEFAULT_LISTS,
    LIST_ERROR_CODES,
    BitCode,
    CodePattern,
    DNSList,
    ListConfigError,
    ListKind,
    ListType,
    ReturnCode,
    format_return_codes,
    parse_code_pattern,
    parse_list,
    parse_return_codes,
)

__all__ = [
    "DEFAULT_LISTS",
    "LIST_ERROR_CODES",
    "BitCode",
    "CodePattern",
    "DNSList",
    "DNSListChecker",
    "DNSListReport",
    "ListConfigError",
    "ListHealth",
    "ListKind",
    "ListReason",
    "ListResult",
    "ListStatus",
    "ListType",
    "ReturnCode",
    "format_return_codes",
    "parse_code_pattern",
    "parse_list",
    "parse_return_codes",
    "query_name",
]
