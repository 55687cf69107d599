"""DNS list definitions: zones, return-code maps, bitmasks, and the documented defaults.

A list answers an A query under its zone with one or more 127.0.0.0/8 addresses (RFC 5782 §2.3);
each list gives them its own meaning. `ReturnCode` maps an address pattern (``127.0.0.2``,
``127.0.*.3``, ``127.0.0.4-7``) to a symbol and a score; `BitCode` does the same for lists that
set bits in the last octet. A definition's score is what the policy gives the symbol of such
an answer unless [policy.scores] says otherwise. Configuration text and mappings are parsed
here, with a clear `ListConfigError` for anything malformed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from mailwarden.dns import is_domain_name, normalize

__all__ = [
    "DEFAULT_LISTS",
    "LIST_ERROR_CODES",
    "BitCode",
    "CodePattern",
    "DNSList",
    "ListConfigError",
    "ListKind",
    "ListType",
    "ReturnCode",
    "format_return_codes",
    "parse_code_pattern",
    "parse_list",
    "parse_return_codes",
]


class ListConfigError(ValueError):
    """A list definition that cannot be used; the message says what and where."""


class ListKind(StrEnum):
    """What a list is queried with: an address (DNSBL/DNSWL) or a domain (RHSBL)."""

    IP = "ip"
    DOMAIN = "domain"


class ListType(StrEnum):
    """Block lists add to the score; allow lists (DNSWL) take from it."""

    BLOCK = "block"
    ALLOW = "allow"


# Answers in 127.255.255.0/24 are errors of the list, never listings (Spamhaus and others):
LIST_ERROR_CODES: Mapping[str, str] = {
    "127.255.255.252": "typing error in the list's zone name",
    "127.255.255.254": "query through a public or unattributable resolver refused",
    "127.255.255.255": "rate limited: too many queries",
}

_FIELD = re.compile(r"^(?:\*|(\d{1,3})(?:-(\d{1,3}))?)$")


@dataclass(frozen=True, slots=True)
class CodePattern:
    """An IPv4 pattern: per octet, an inclusive range (``*`` is 0-255)."""

    octets: tuple[tuple[int, int], ...]

    def matches(self, address: ipaddress.IPv4Address) -> bool:
        return all(lo <= b <= hi for (lo, hi), b in zip(self.octets, address.packed, strict=True))

    def __str__(self) -> str:
        parts = []
        for lo, hi in self.octets:
            parts.append("*" if (lo, hi) == (0, 255) else str(lo) if lo == hi else f"{lo}-{hi}")
        return ".".join(parts)


def parse_code_pattern(text: str) -> CodePattern:
    """``127.0.0.2``, ``127.0.*.3`` or ``127.0.0.4-7``; ListConfigError when malformed."""
    fields = text.strip().split(".")
    if len(fields) != 4:
        raise ListConfigError(f"return code {text!r}: expected four dot-separated octets")
    octets = []
    for part in fields:
        match = _FIELD.match(part)
        if not match:
            raise ListConfigError(f"return code {text!r}: bad octet {part!r}")
        if part == "*":
            octets.append((0, 255))
            continue
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if not 0 <= lo <= hi <= 255:
            raise ListConfigError(f"return code {text!r}: octet {part!r} out of range")
        octets.append((lo, hi))
    return CodePattern(tuple(octets))


@dataclass(frozen=True, slots=True)
class ReturnCode:
    """Answers matching `pattern` mean `symbol`, scored `score`."""

    pattern: CodePattern
    symbol: str
    score: float
    description: str = ""


@dataclass(frozen=True, slots=True)
class BitCode:
    """For bitmask lists: bit value `bit` set in the answer's last octet means `symbol`."""

    bit: int
    symbol: str
    score: float
    description: str = ""


_SYMBOL = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True, slots=True)
class DNSList:
    """One DNS list. `zone` is the query suffix (with a key where the list needs one, e.g.
    ``KEY.zen.dq.spamhaus.net``); `needs_key` documents what using it takes."""

    name: str
    zone: str
    kind: ListKind = ListKind.IP
    type: ListType = ListType.BLOCK
    codes: tuple[ReturnCode, ...] = ()
    bitmask: tuple[BitCode, ...] = ()
    default_score: float = 1.0  # a listing matching no code still counts (RFC 5782 §2.3)
    error_codes: Mapping[str, str] = field(default_factory=dict)  # list-specific errors
    ipv6: bool = True  # the list answers for IPv6 addresses (RFC 5782 §2.4)
    fetch_txt: bool = True
    needs_key: str = ""  # empty: free for normal use through one's own resolver
    test_listed: str | None = None  # overrides of the RFC 5782 §5 test entries
    test_unlisted: str | None = None

    @property
    def default_symbol(self) -> str:
        """The symbol of a listing no code describes: RBL_/RHSBL_/DNSWL_ + the name."""
        if self.type is ListType.ALLOW:
            prefix = "DNSWL" if self.kind is ListKind.IP else "RHSWL"
        else:
            prefix = "RBL" if self.kind is ListKind.IP else "RHSBL"
        return f"{prefix}_{self.name.upper().replace('-', '_').replace('.', '_')}"


def parse_return_codes(text: str) -> tuple[ReturnCode, ...]:
    """``PATTERN=SYMBOL[:SCORE]`` entries separated by commas or new lines."""
    codes = []
    for entry in re.split(r"[,\n]", text):
        entry = entry.strip()
        if not entry:
            continue
        pattern_text, eq, rest = entry.partition("=")
        if not eq:
            raise ListConfigError(f"return code entry {entry!r}: expected PATTERN=SYMBOL[:SCORE]")
        symbol, colon, score_text = rest.strip().partition(":")
        codes.append(
            ReturnCode(
                parse_code_pattern(pattern_text),
                _symbol_name(symbol.strip(), entry),
                _score(score_text, entry) if colon else 1.0,
            )
        )
    return tuple(codes)


def format_return_codes(codes: Iterable[ReturnCode]) -> str:
    """The text form `parse_return_codes` reads."""
    return ", ".join(f"{c.pattern}={c.symbol}:{c.score!r}" for c in codes)


def _symbol_name(text: str, where: str) -> str:
    if not _SYMBOL.match(text):
        raise ListConfigError(f"{where!r}: symbol must be upper-case letters, digits, '_'")
    return text


def _score(value: object, where: str) -> float:
    if isinstance(value, bool):
        raise ListConfigError(f"{where!r}: score must be a number")
    try:
        score = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ListConfigError(f"{where!r}: score {value!r} is not a number") from None
    if score != score or score in (float("inf"), float("-inf")):
        raise ListConfigError(f"{where!r}: score must be finite")
    return score


def parse_list(data: Mapping[str, object]) -> DNSList:
    """A list from configuration (e.g. a TOML or JSON table).

    Keys: name, zone, kind (ip|domain), type (block|allow), codes ({pattern: symbol or
    {symbol, score, description}} or the text form), bitmask ({bit: same}), default_score,
    error_codes ({pattern: description}), ipv6, fetch_txt, needs_key, test_listed,
    test_unlisted.
    """
    known = {
        "name",
        "zone",
        "kind",
        "type",
        "codes",
        "bitmask",
        "default_score",
        "error_codes",
        "ipv6",
        "fetch_txt",
        "needs_key",
        "test_listed",
        "test_unlisted",
    }
    unknown = set(data) - known
    if unknown:
        raise ListConfigError(f"unknown list settings: {', '.join(sorted(map(str, unknown)))}")
    name = data.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ListConfigError(f"list name {name!r}: letters, digits, '.', '_' or '-'")
    zone = data.get("zone")
    if not isinstance(zone, str) or not is_domain_name(zone):
        raise ListConfigError(f"list {name}: zone {zone!r} is not a domain name")
    try:
        kind = ListKind(str(data.get("kind", "ip")))
        list_type = ListType(str(data.get("type", "block")))
    except ValueError as exc:
        raise ListConfigError(f"list {name}: {exc}") from None
    codes_value = data.get("codes", ())
    if isinstance(codes_value, str):
        codes = parse_return_codes(codes_value)
    elif isinstance(codes_value, Mapping):
        codes = tuple(
            ReturnCode(parse_code_pattern(str(p)), *_code_entry(v, f"{name} {p}"))
            for p, v in codes_value.items()
        )
    elif codes_value in ((), None):
        codes = ()
    else:
        raise ListConfigError(f"list {name}: codes must be a table or text")
    bits_value = data.get("bitmask", {})
    if not isinstance(bits_value, Mapping):
        raise ListConfigError(f"list {name}: bitmask must be a table {{bit: symbol}}")
    bitmask = []
    for bit_text, value in bits_value.items():
        try:
            bit = int(str(bit_text))
        except ValueError:
            raise ListConfigError(f"list {name}: bit {bit_text!r} is not a number") from None
        if bit <= 0 or bit > 255 or bit & (bit - 1):
            raise ListConfigError(f"list {name}: bit {bit} is not a power of two up to 128")
        bitmask.append(BitCode(bit, *_code_entry(value, f"{name} bit {bit}")))
    errors_value = data.get("error_codes", {})
    if not isinstance(errors_value, Mapping):
        raise ListConfigError(f"list {name}: error_codes must be a table {{address: text}}")
    error_codes = {}
    for address, text in errors_value.items():
        try:
            ipaddress.IPv4Address(str(address))
        except ValueError:
            raise ListConfigError(f"list {name}: error code {address!r} is no address") from None
        error_codes[str(address)] = str(text)
    flags = {}
    for key in ("ipv6", "fetch_txt"):
        value = data.get(key, True)
        if not isinstance(value, bool):
            raise ListConfigError(f"list {name}: {key} must be true or false")
        flags[key] = value
    texts: dict[str, str | None] = {}
    for key in ("needs_key", "test_listed", "test_unlisted"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise ListConfigError(f"list {name}: {key} must be text")
        texts[key] = value
    return DNSList(
        name=name,
        zone=normalize(zone),
        kind=kind,
        type=list_type,
        codes=codes,
        bitmask=tuple(bitmask),
        default_score=_score(data.get("default_score", 1.0), f"{name} default_score"),
        error_codes=error_codes,
        ipv6=flags["ipv6"],
        fetch_txt=flags["fetch_txt"],
        needs_key=texts["needs_key"] or "",
        test_listed=texts["test_listed"],
        test_unlisted=texts["test_unlisted"],
    )


def _code_entry(value: object, where: str) -> tuple[str, float, str]:
    if isinstance(value, str):
        symbol, colon, score_text = value.partition(":")
        return _symbol_name(symbol.strip(), where), _score(score_text, where) if colon else 1.0, ""
    if isinstance(value, Mapping):
        description = value.get("description", "")
        return (
            _symbol_name(str(value.get("symbol", "")), where),
            _score(value.get("score", 1.0), where),
            str(description),
        )
    raise ListConfigError(f"{where}: expected SYMBOL[:SCORE] or {{symbol, score}}")


def _codes(*entries: tuple[str, str, float, str]) -> tuple[ReturnCode, ...]:
    return tuple(ReturnCode(parse_code_pattern(p), s, score, d) for p, s, score, d in entries)


_SPAMHAUS_KEY = (
    "Spamhaus refuses queries through public resolvers (they answer 127.255.255.254) and "
    "above its free-use limits: query through your own recursive resolver within the free-use "
    "terms, or register for a free DQS key and use the zone KEY.zen.dq.spamhaus.net "
    "(KEY.dbl.dq.spamhaus.net for the DBL)"
)

# The documented defaults. Each says in `needs_key` what using it takes.
DEFAULT_LISTS: tuple[DNSList, ...] = (
    DNSList(
        name="zen",
        zone="zen.spamhaus.org",
        codes=_codes(
            ("127.0.0.2", "RBL_ZEN_SBL", 4.0, "Spamhaus SBL: direct spam source"),
            ("127.0.0.3", "RBL_ZEN_CSS", 3.0, "Spamhaus CSS: snowshoe spam"),
            ("127.0.0.4-7", "RBL_ZEN_XBL", 5.0, "Spamhaus XBL: exploited or infected host"),
            ("127.0.0.9", "RBL_ZEN_DROP", 6.0, "Spamhaus DROP: hijacked network"),
            ("127.0.0.10-11", "RBL_ZEN_PBL", 2.0, "Spamhaus PBL: not meant to send mail directly"),
            ("127.0.0.30", "RBL_ZEN_BCL", 5.0, "Spamhaus BCL: botnet controller"),
        ),
        default_score=3.0,
        needs_key=_SPAMHAUS_KEY,
    ),
    DNSList(
        name="spamcop",
        zone="bl.spamcop.net",
        codes=_codes(("127.0.0.2", "RBL_SPAMCOP", 3.0, "SpamCop: reported spam source")),
        ipv6=False,
    ),
    DNSList(
        name="barracuda",
        zone="b.barracudacentral.org",
        codes=_codes(("127.0.0.2", "RBL_BARRACUDA", 3.0, "Barracuda reputation: poor")),
        ipv6=False,
        needs_key=(
            "free registration of the querying resolver's addresses at barracudacentral.org; "
            "queries from unregistered resolvers are refused"
        ),
    ),
    DNSList(
        name="psbl",
        zone="psbl.surriel.com",
        codes=_codes(("127.0.0.2", "RBL_PSBL", 2.0, "PSBL: seen sending to spam traps")),
        ipv6=False,
    ),
    DNSList(
        name="dnswl",
        zone="list.dnswl.org",
        type=ListType.ALLOW,
        codes=_codes(
            ("127.0.*.0", "DNSWL_NONE", 0.0, "dnswl.org: listed, trust none"),
            ("127.0.*.1", "DNSWL_LOW", -1.0, "dnswl.org: trust low"),
            ("127.0.*.2", "DNSWL_MED", -2.5, "dnswl.org: trust medium"),
            ("127.0.*.3", "DNSWL_HI", -5.0, "dnswl.org: trust high"),
        ),
        default_score=0.0,
        error_codes={"127.0.0.255": "dnswl.org refused the query: volume above the free limit"},
        needs_key=(
            "free for low volumes through your own resolver; high-volume users need a "
            "subscription (refused queries answer 127.0.0.255)"
        ),
    ),
    DNSList(
        name="dbl",
        zone="dbl.spamhaus.org",
        kind=ListKind.DOMAIN,
        codes=_codes(
            ("127.0.1.2", "RHSBL_DBL_SPAM", 4.0, "Spamhaus DBL: low-reputation domain"),
            ("127.0.1.4", "RHSBL_DBL_PHISH", 6.0, "Spamhaus DBL: phishing domain"),
            ("127.0.1.5", "RHSBL_DBL_MALWARE", 6.0, "Spamhaus DBL: malware domain"),
            ("127.0.1.6", "RHSBL_DBL_BOTNET", 6.0, "Spamhaus DBL: botnet C&C domain"),
            ("127.0.1.102-106", "RHSBL_DBL_ABUSED", 2.0, "Spamhaus DBL: abused legit domain"),
        ),
        default_score=3.0,
        error_codes={"127.0.1.255": "IP query against a domain list"},
        needs_key=_SPAMHAUS_KEY,
        test_listed="dbltest.com",
    ),
    DNSList(
        name="surbl",
        zone="multi.surbl.org",
        kind=ListKind.DOMAIN,
        bitmask=(
            BitCode(8, "RHSBL_SURBL_PH", 5.0, "SURBL: phishing"),
            BitCode(16, "RHSBL_SURBL_MW", 5.0, "SURBL: malware"),
            BitCode(64, "RHSBL_SURBL_ABUSE", 4.0, "SURBL: spam and abuse"),
            BitCode(128, "RHSBL_SURBL_CR", 3.0, "SURBL: cracked site"),
        ),
        needs_key="free for low volumes; a data feed subscription above them",
        test_listed="test.surbl.org",
    ),
)
