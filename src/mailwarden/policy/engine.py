"""The decision: symbols and facts in, an action that explains itself out. No I/O.

Order of the rules (first that applies wins, then the score may only make things stricter):
1. authenticated clients and trusted networks are accepted (their mail is ours to send);
2. hard rules: a header section parsers would read differently, a message without exactly
   one author domain, configured DNS-list hits;
3. a deciding check in temperror while DMARC did not pass answers 4xx
   (`on_temperror = "tempfail"`, the default): the fail might be the DNS failure's doing;
4. a DMARC fail whose disposition is reject is refused;
5. the total score against the thresholds (the strictest threshold reached wins);
6. a DMARC quarantine disposition marks the message as spam (at least add_header);
7. greylisting is never chosen for DNSWL-listed clients.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailwarden.author import AuthorProblem
from mailwarden.frozen import quick_init
from mailwarden.reply import SMTPReply
from mailwarden.symbols import Symbol

from .config import ESCALATION, SEVERITY, Action, AuthorHandling, PolicyConfig, TemperrorHandling
from .network_symbols import ListedSymbol

__all__ = ["Facts", "ScoredSymbol", "Verdict", "decide"]


@quick_init
@dataclass(frozen=True, slots=True)
class ScoredSymbol:
    """A symbol with the score the policy gave it."""

    name: str
    score: float
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "score": self.score, "detail": self.detail}


@quick_init
@dataclass(frozen=True, slots=True)
class Facts:
    """What the checks found about one message (or one recipient, at RCPT time)."""

    symbols: Sequence[Symbol] = ()
    authenticated: bool = False  # SMTP AUTH succeeded
    trusted_network: bool = False  # the client is in a configured trusted network
    dmarc_disposition: str | None = None  # "none", "quarantine" or "reject" after overrides
    dmarc_domain: str = ""
    dmarc_passed: bool = False  # an aligned SPF or DKIM pass authenticated the author domain
    header_problem: str | None = None  # why the header section is refused (strict reading)
    header_status: str = "5.6.0"  # its enhanced status code (5.6.7: 8-bit From, no SMTPUTF8)
    author_problem: AuthorProblem | None = None  # why there is no single author domain
    author_reason: str = ""


@quick_init
@dataclass(frozen=True, slots=True)
class Verdict:
    """The action, the score, every symbol with its score, and why."""

    action: Action
    score: float
    symbols: tuple[ScoredSymbol, ...]
    reasons: tuple[str, ...]
    reply: SMTPReply | None = None  # the SMTP answer for greylist/soft_reject/reject
    spam: bool = False  # add the spam flag headers (add_header, DMARC quarantine)
    required: float | None = None  # the add_header threshold, for X-Spam-Status
    headers_prefix: str = "X-Spam"
    # the symbols present that the configuration refuses on alone (`hard_reject`), in its
    # order: they refused, unless a rule before them applied (authenticated, trusted network)
    hard_rejects: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "action": self.action.value,
            "score": round(self.score, 3),
            "spam": self.spam,
            "symbols": [s.to_dict() for s in self.symbols],
            "reasons": list(self.reasons),
            "reply": str(self.reply) if self.reply is not None else None,
        }

    def header_value(self) -> str:
        """The X-Mailwarden-Verdict value: action, score, then the symbols that weighed."""
        listed = ", ".join(f"{s.name}({s.score:g})" for s in self.symbols if s.score)
        value = f"action={self.action.value}; score={self.score:.2f}"
        return value + (f"; symbols={listed}" if listed else "")

    def headers(self) -> list[tuple[str, str]]:
        """The header fields to add above the message (name, value)."""
        prefix = self.headers_prefix
        tests = ",".join(s.name for s in self.symbols)
        required = f" required={self.required:.1f}" if self.required is not None else ""
        status = f"{'Yes' if self.spam else 'No'}, score={self.score:.1f}{required} tests={tests}"
        out = [
            ("X-Mailwarden-Verdict", self.header_value()),
            (f"{prefix}-Score", f"{self.score:.2f}"),
            (f"{prefix}-Status", status),
        ]
        if self.spam:
            out.append((f"{prefix}-Flag", "YES"))
        return out


def score_symbols(symbols: Iterable[Symbol], config: PolicyConfig) -> tuple[ScoredSymbol, ...]:
    """Each symbol once (the first occurrence), with its configured score."""
    seen: set[str] = set()
    out: list[ScoredSymbol] = []
    for symbol in symbols:
        if symbol.name in seen:
            continue
        seen.add(symbol.name)
        score = config.score_of(symbol.name, symbol.score, listed=isinstance(symbol, ListedSymbol))
        out.append(ScoredSymbol(symbol.name, score, symbol.detail))
    return tuple(out)


def decide(facts: Facts, config: PolicyConfig | None = None) -> Verdict:
    """The verdict on one message: pure, deterministic, explained."""
    config = config or PolicyConfig()
    scored = score_symbols(facts.symbols, config)
    total = round(sum(s.score for s in scored), 6)
    names = {s.name: s for s in scored}
    hard = tuple(name for name in config.hard_reject if name in names)

    def verdict(
        action: Action, reasons: Sequence[str], reply: SMTPReply | None = None, spam: bool = False
    ) -> Verdict:
        return Verdict(
            action,
            total,
            scored,
            tuple(reasons),
            reply,
            spam,
            config.thresholds.add_header,
            config.spam_header_prefix,
            hard,
        )

    if facts.authenticated or facts.trusted_network:
        why = "authenticated client" if facts.authenticated else "trusted network"
        return verdict(Action.ACCEPT, [f"{why}: not filtered"])

    if facts.header_problem is not None:
        return verdict(
            Action.REJECT,
            [f"malformed header section: {facts.header_problem}"],
            SMTPReply(550, facts.header_status, f"Message refused: {facts.header_problem}"),
        )
    refusal = _author_refusal(facts, config)
    if refusal is not None:
        return verdict(Action.REJECT, [f"no single author: {facts.author_reason}"], refusal)
    if hard:
        name = hard[0]
        return verdict(
            Action.REJECT,
            [f"{name} is a hard reject: {names[name].detail}".rstrip(": ")],
            SMTPReply(554, "5.7.1", f"Service unavailable; client blocked ({name})"),
        )
    temperrors = [name for name in config.temperror_symbols if name in names]
    if temperrors and not facts.dmarc_passed and config.on_temperror is TemperrorHandling.TEMPFAIL:
        # A check that could not finish is never a pass: unless DMARC passed anyway, the
        # client retries. RFC 7372 §3: X.7.24 names an SPF validation error.
        status = "4.7.24" if temperrors == ["SPF_TEMPERROR"] else "4.7.0"
        return verdict(
            Action.SOFT_REJECT,
            [f"{', '.join(temperrors)}: a deciding check could not finish; try later"],
            SMTPReply(
                451, status, "Temporary DNS failure while authenticating the sender; try later"
            ),
        )

    if facts.dmarc_disposition == "reject" and config.dmarc_reject:
        domain = facts.dmarc_domain or "the author domain"
        return verdict(
            Action.REJECT,
            [f"DMARC policy of {domain} is reject and the message failed DMARC"],
            SMTPReply(550, "5.7.1", f"Rejected by the DMARC policy of {domain}"),
        )

    action = Action.ACCEPT
    reasons: list[str] = []
    for candidate in ESCALATION:  # mildest first: the last threshold reached wins
        threshold = config.threshold_of(candidate)
        if threshold is not None and total >= threshold:
            action = candidate
            reasons = [f"score {total:g} reached the {candidate.value} threshold {threshold:g}"]
    if not reasons:
        reasons.append(f"score {total:g} is below every threshold")
    spam = action is Action.ADD_HEADER
    if facts.dmarc_disposition == "quarantine" and config.dmarc_quarantine:
        spam = True
        reasons.append(f"DMARC policy of {facts.dmarc_domain or 'the author domain'} is quarantine")
        if SEVERITY[action] < SEVERITY[Action.ADD_HEADER]:
            action = Action.ADD_HEADER
    if action is Action.GREYLIST and any(n.startswith("DNSWL_") for n in names):
        action = Action.ACCEPT
        reasons.append("listed on a DNS allow list: never greylisted")
    if temperrors:
        how = "DMARC passed" if facts.dmarc_passed else "on_temperror=accept"
        reasons.append(f"{', '.join(temperrors)}: judged on what is known ({how})")
    reply: SMTPReply | None = None  # only the reply the action gives is made
    if action is Action.GREYLIST:
        reply = SMTPReply(451, "4.7.1", "Greylisted, please try again later")
    elif action is Action.SOFT_REJECT:
        detail, why = _authentication_code(names)
        reply = SMTPReply(
            451, f"4.{detail}", f"Message deferred, score {total:.1f}{why}; try again later"
        )
    elif action is Action.REJECT:
        detail, why = _authentication_code(names)
        reply = SMTPReply(550, f"5.{detail}", f"Message refused as spam (score {total:.1f}{why})")
    return verdict(action, reasons, reply, spam)


# RFC 7372 §3: enhanced status codes that name the authentication check that failed.
_AUTH_CODES = (
    ("SPF_FAIL", "7.23", "SPF validation failed"),
    ("DKIM_INVALID", "7.20", "no passing DKIM signature found"),
    ("IPREV_FAIL", "7.25", "reverse DNS validation failed"),
)


def _authentication_code(names: Iterable[str]) -> tuple[str, str]:
    """The subject.detail of a refusal by score, and words for the reply text: the failed
    authentication check when there is one (X.7.26 when several failed), else X.7.1."""
    present = set(names)
    failed = [(code, text) for name, code, text in _AUTH_CODES if name in present]
    if len(failed) > 1:
        return "7.26", "; multiple authentication checks failed"
    if failed:
        return failed[0][0], f"; {failed[0][1]}"
    return "7.1", ""


# RFC 5322 §3.6: exactly one From field naming the author(s); what is not even well-formed
# is a content error (X.6.0), the rest a security refusal (X.7.1).
_AUTHOR_SYNTAX = {AuthorProblem.SYNTAX, AuthorProblem.EMPTY, AuthorProblem.INVALID_DOMAIN}
_SEVERAL = {AuthorProblem.SEVERAL_FROM, AuthorProblem.SEVERAL_DOMAINS}


def _author_refusal(facts: Facts, config: PolicyConfig) -> SMTPReply | None:
    """The refusal of a message without exactly one author domain (None: it has one, or the
    configuration evaluates every author domain and DMARC applies the strictest)."""
    problem = facts.author_problem
    if problem is None:
        return None
    if problem in _SEVERAL and config.several_authors is AuthorHandling.STRICTEST:
        return None
    status = "5.6.0" if problem in _AUTHOR_SYNTAX else "5.7.1"
    why = facts.author_reason or "no single author"
    return SMTPReply(550, status, f"Message refused: {why}; exactly one author is required")
