"""Policy configuration: symbol scores, thresholds and hard rules.

`PolicyConfig` is the `[policy]` section of the settings (read by `mailwarden.settings`, the
one reader, which reports mistakes with file, key and reason at start-up).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from mailwarden.schema import InvalidSetting, setting

__all__ = [
    "DEFAULT_SCORES",
    "Action",
    "AuthorHandling",
    "HeaderSyntax",
    "PolicyConfig",
    "TemperrorHandling",
    "Thresholds",
]


class Action(StrEnum):
    """What happens to a message, mildest first (the order of `SEVERITY`)."""

    ACCEPT = "accept"
    GREYLIST = "greylist"
    ADD_HEADER = "add_header"
    SOFT_REJECT = "soft_reject"
    REJECT = "reject"


SEVERITY = {action: rank for rank, action in enumerate(Action)}
# The actions a score escalates to, mildest first, and the field of Thresholds that starts each.
ESCALATION = (Action.GREYLIST, Action.ADD_HEADER, Action.SOFT_REJECT, Action.REJECT)
_THRESHOLD_FIELDS = {action: action.value for action in ESCALATION}


class TemperrorHandling(StrEnum):
    """What to do when a check that would decide could not finish (DNS failure)."""

    # answer 451 when a deciding check is in temperror and DMARC did not pass (nothing
    # authenticated the author domain): the client retries, a spoof never slips through
    TEMPFAIL = "tempfail"
    # judge on what is known (a temperror never counts as a pass). RISK: a spoof of a
    # p=reject domain whose DMARC record cannot be fetched is then judged by score alone
    ACCEPT = "accept"


class HeaderSyntax(StrEnum):
    """How to read a header section that parsers would read differently (a line that is not
    a field, a NUL character): attackers use exactly that disagreement."""

    STRICT = "strict"  # refuse the message (550 5.6.0)
    LENIENT = "lenient"  # keep such lines (relayed as they came) but never read them


class AuthorHandling(StrEnum):
    """A From field naming authors in several domains, or several From fields."""

    REFUSE = "refuse"  # 550 5.7.1: exactly one author domain is required (as Gmail does)
    STRICTEST = "strictest"  # RFC 9989 §5.3.1 MAY: evaluate each, apply the strictest


# Default scores of the symbols every check can produce (positive is suspicious). The policy is
# the one place that scores; the order (PolicyConfig.score_of) is: [policy.scores] in the
# configuration file, then the score a DNS list's definition gives the answer (built-in lists
# or [[dnsbl.lists]]), then this table, then what a symbol itself suggests (0 for the checks').
DEFAULT_SCORES: dict[str, float] = {
    # SPF (RFC 7208 §8)
    "SPF_PASS": -0.5,
    "SPF_FAIL": 3.0,
    "SPF_SOFTFAIL": 1.0,
    "SPF_NEUTRAL": 0.2,
    "SPF_NONE": 0.5,
    "SPF_PERMERROR": 1.0,
    "SPF_TEMPERROR": 0.0,
    "SPF_HELO_FAIL": 1.0,
    "SPF_HELO_PASS": 0.0,
    # DKIM (RFC 6376, RFC 8601 §2.7.1)
    "DKIM_VALID": -0.5,
    "DKIM_INVALID": 1.0,
    "DKIM_PERMERROR": 0.5,
    "DKIM_TEMPERROR": 0.0,
    "DKIM_POLICY": 0.5,
    "DKIM_NONE": 0.0,
    # DMARC (RFC 9989): p=none never changes handling (§5.4), so its symbol weighs nothing
    "DMARC_PASS": -1.0,
    "DMARC_POLICY_REJECT": 8.0,
    "DMARC_POLICY_QUARANTINE": 4.0,
    "DMARC_POLICY_NONE": 0.0,
    "DMARC_NONE": 0.0,
    "DMARC_PERMERROR": 0.0,
    "DMARC_TEMPERROR": 0.0,
    "DMARC_NOT_EVALUATED": 1.0,
    # ARC (RFC 8617)
    "ARC_PASS": 0.0,
    "ARC_FAIL": 0.5,
    "ARC_TRUSTED_PASS": -1.0,
    # iprev (RFC 8601 §3): a missing PTR is common for small senders
    "IPREV_PASS": 0.0,
    "IPREV_FAIL": 1.5,
    "IPREV_TEMPERROR": 0.0,
    "IPREV_PERMERROR": 1.0,
    # HELO (RFC 5321 §4.1.4 forbids refusing on these alone: they only weigh)
    "HELO_BAD_SYNTAX": 2.0,  # neither a domain name nor an address literal
    "HELO_BARE_IP": 2.0,  # an address without the brackets of a literal
    "HELO_NOT_FQDN": 1.5,  # a single label ("localhost", "PC-1234")
    "HELO_IP_LITERAL": 0.0,  # an address literal naming the client (legal)
    "HELO_IP_LITERAL_MISMATCH": 2.5,  # an address literal naming another host
    "HELO_FORGED": 5.0,  # one of our own names or addresses
    "HELO_NORESOLVE": 1.0,  # the name has no A or AAAA record
    "HELO_TEMPERROR": 0.0,  # the name could not be resolved now
    "HELO_MISMATCH_PTR": 0.5,  # resolves, but neither to the client nor a PTR name
    "HELO_MATCHES_CLIENT": 0.0,  # the name resolves to the client address
    "HELO_MATCHES_PTR": 0.0,  # the name is one of the client's PTR names
    # strict SMTP (the gateway)
    "PREGREET": 6.0,
    "PIPELINING_ABUSE": 3.0,
    "BARE_LF": 2.0,
}

# Symbols whose weight is fixed by a standard and cannot be configured.
FIXED_SCORES = {"DMARC_POLICY_NONE": 0.0}

# Symbols that mean a deciding check could not finish.
DEFAULT_TEMPERROR_SYMBOLS = ("DMARC_TEMPERROR", "SPF_TEMPERROR", "DKIM_TEMPERROR")

# Listings trusted enough to refuse on alone (Spamhaus: spam sources, hijacked networks,
# exploited hosts, and the CSS list of low-reputation senders).
DEFAULT_HARD_REJECT = ("RBL_ZEN_SBL", "RBL_ZEN_CSS", "RBL_ZEN_XBL", "RBL_ZEN_DROP")


def _symbol_names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, str) and _is_symbol_name(v) for v in value
    ):
        raise ValueError("expected an array of symbol names (upper-case letters, digits and _)")
    return tuple(value)


def _header_prefix(value: object) -> str:
    if not isinstance(value, str) or not value or not _is_field_name(value):
        raise ValueError(f"expected a header field name, got {value!r}")
    return value


def _is_symbol_name(name: str) -> bool:
    return (
        bool(name) and name.isascii() and name.replace("_", "").isalnum() and name == name.upper()
    )


def _is_field_name(name: str) -> bool:
    """RFC 5322 §3.6.8: printable US-ASCII except colon."""
    return all(33 <= ord(c) <= 126 and c != ":" for c in name)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The total score at which each action starts (None: the action is off)."""

    greylist: float | None = setting(4.0, false_is_none=True)
    add_header: float | None = setting(6.0, false_is_none=True)
    soft_reject: float | None = setting(None, false_is_none=True)
    reject: float | None = setting(15.0, false_is_none=True)

    def validate(self) -> None:
        """Milder actions need lower thresholds, or a score would skip past them."""
        previous: tuple[str, float] | None = None
        for name in ("greylist", "add_header", "soft_reject", "reject"):
            value = getattr(self, name)
            if value is None:
                continue
            if previous is not None and value < previous[1]:
                raise InvalidSetting(
                    name, f"{value:g} is below the {previous[0]} threshold {previous[1]:g}"
                )
            previous = (name, value)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The `[policy]` section: scores, thresholds and rules."""

    scores: Mapping[str, float] = setting(default_factory=dict)  # [policy.scores] as written
    thresholds: Thresholds = setting(default_factory=Thresholds)
    dmarc_reject: bool = True  # honour p=reject by refusing (RFC 9989 §5.7 leaves it to us)
    dmarc_quarantine: bool = True  # p=quarantine: mark as spam (at least add_header)
    hard_reject: tuple[str, ...] = setting(DEFAULT_HARD_REJECT, convert=_symbol_names)
    on_temperror: TemperrorHandling = TemperrorHandling.TEMPFAIL
    header_syntax: HeaderSyntax = HeaderSyntax.STRICT
    several_authors: AuthorHandling = AuthorHandling.REFUSE
    temperror_symbols: tuple[str, ...] = setting(DEFAULT_TEMPERROR_SYMBOLS, convert=_symbol_names)
    spam_header_prefix: str = setting("X-Spam", convert=_header_prefix)

    def validate(self) -> None:
        for name, score in self.scores.items():
            if not _is_symbol_name(name):
                raise InvalidSetting(
                    f"scores.{name}", "symbol names are upper-case letters, digits and _"
                )
            if name in FIXED_SCORES and score != FIXED_SCORES[name]:
                raise InvalidSetting(
                    f"scores.{name}", "p=none must never change handling (RFC 9989 §5.4): keep 0"
                )

    def score_of(self, name: str, suggested: float = 0.0, *, listed: bool = False) -> float:
        """The score of a symbol: fixed by a standard, else [policy.scores], else (`listed`:
        a DNS list's symbol) the score its list's definition gives (`suggested`), else
        DEFAULT_SCORES, else what the symbol suggests."""
        if name in FIXED_SCORES:
            return FIXED_SCORES[name]
        if name in self.scores:
            return self.scores[name]
        if listed:
            return suggested
        return DEFAULT_SCORES.get(name, suggested)

    def threshold_of(self, action: Action) -> float | None:
        field = _THRESHOLD_FIELDS.get(action)
        threshold: float | None = None if field is None else getattr(self.thresholds, field)
        return threshold
