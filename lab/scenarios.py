"""The journeys the lab sends, what each should end in, and how an ending is recognised.

Each `Scenario` is one swaks command run on a lab host (Alice's laptop submitting to her MSA,
or the zombie talking straight to Bob's MX). What happened is read back from the hosts
(`Observation`); `outcome_of` turns it into an `Outcome` (delivered to Bob, refused with a
reply, bounced back to Alice, or nothing within the time allowed), and `Scenario.expect` says
which outcome is right, with the results Bob's gateway must have found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from mailwarden.authres import ParseError, parse_authentication_results
from mailwarden.message import Message

from .dnstap import Exchange
from .topology import ADDRESSES, B_MX, LISTED

__all__ = [
    "PASSWORD",
    "SCENARIOS",
    "Expectation",
    "LogRecord",
    "Observation",
    "Outcome",
    "Result",
    "Scenario",
    "auth_results",
    "judge",
    "outcome_of",
    "swaks_lines",
]

PASSWORD = "correct horse battery staple"  # Alice's, in the lab's MSA only
MSA = f"{ADDRESSES['a'][0]}:587"
ALICE = "alice@a.example"


class Result(StrEnum):
    DELIVERED = "delivered"  # in Bob's mailbox
    REFUSED = "refused"  # the sender got a 4xx/5xx reply
    BOUNCED = "bounced"  # a delivery status notification reached Alice
    LOST = "lost"  # nothing of the above within the time allowed


@dataclass(frozen=True, slots=True)
class Expectation:
    result: Result
    reply: str = ""  # the refusal starts with this ("550 5.7.1", ...)
    auth: dict[str, str] = field(default_factory=dict)  # method -> result at Bob's MX
    mentions: tuple[str, ...] = ()  # text the delivered message (or the bounce) contains


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    story: str  # one paragraph for people learning
    client: str  # the lab host that runs swaks
    swaks: tuple[str, ...]
    expect: Expectation
    via: str = ""  # the intermediate host, if any: "list" or "fwd"


def _submission(to: str, subject: str, body: str) -> tuple[str, ...]:
    return (
        "--server", MSA, "--tls", "--auth", "PLAIN",
        "--auth-user", ALICE, "--auth-password", PASSWORD,
        "--helo", "laptop", "--from", ALICE, "--to", to,
        "--header", "From: Alice <alice@a.example>",
        "--header", f"Subject: {subject}",
        "--body", body,
    )  # fmt: skip


def _zombie(address: str) -> tuple[str, ...]:
    return (
        "--server", f"{ADDRESSES['b'][0]}:25", "--local-interface", address,
        "--helo", "mail.a.example", "--from", ALICE, "--to", "bob@b.example",
        "--header", "From: Alice <alice@a.example>",
        "--header", "Subject: Invoice overdue: pay today",
        "--body", "Dear Bob,\nplease pay the attached invoice to our new bank account today.\n",
    )  # fmt: skip


SCENARIOS = (
    Scenario(
        "legit",
        "Alice writes to Bob",
        "Alice submits through her provider's MSA, which signs the message for a.example; "
        "a.example's MTA delivers it to b.example's MX, which checks everything and accepts.",
        "alice",
        _submission("bob@b.example", "Lunch on Friday?", "Hi Bob,\nlunch on Friday?\nAlice\n"),
        Expectation(
            Result.DELIVERED,
            auth={"iprev": "pass", "spf": "pass", "dkim": "pass", "dmarc": "pass"},
        ),
    ),
    Scenario(
        "spoof",
        "A zombie pretends to be Alice",
        "An infected machine with no right to send for a.example connects to Bob's MX itself "
        "and claims to be mail.a.example and Alice. SPF fails, there is no DKIM signature, and "
        "a.example's DMARC policy says reject.",
        "zombie",
        _zombie(ADDRESSES["zombie"][0]),
        Expectation(
            Result.REFUSED,
            reply="550 5.7.1",
            auth={"spf": "fail", "dkim": "none", "dmarc": "fail"},
        ),
    ),
    Scenario(
        "listed",
        "The zombie, from an address on a block list",
        "The same forgery from the zombie's other address, which the block list bl.example "
        "names: Bob's MX refuses every recipient without reading the message.",
        "zombie",
        _zombie(LISTED),
        Expectation(Result.REFUSED, reply="554 5.7.1", auth={"dnsbl": "listed"}),
    ),
    Scenario(
        "list",
        "Through a mailing list",
        "Alice writes to lab@lists.c.example. The list tags the subject and adds a footer, "
        "which breaks Alice's DKIM signature, and sends it on from its own address, so DMARC "
        "fails for a.example. The list ARC-sealed what it had verified, and Bob's MX trusts "
        "its seals: the message is accepted.",
        "alice",
        _submission(
            "lab@lists.c.example", "Meeting notes", "Hello list,\nthe notes are below.\nAlice\n"
        ),
        Expectation(
            Result.DELIVERED,
            auth={"spf": "pass", "dkim": "fail", "dmarc": "fail", "arc": "pass"},
            mentions=("[lab] Meeting notes", "lab mailing list"),
        ),
        via="list",
    ),
    Scenario(
        "forward",
        "Through a forwarder",
        "Alice writes to Bob's old address bob@fwd.d.example, which forwards to bob@b.example. "
        "The forwarder rewrites the envelope sender with SRS (into srs.fwd.d.example, whose "
        "SPF names the forwarder), so SPF passes, and leaves the message alone, so Alice's DKIM "
        "signatures still verify and DMARC passes. It also ARC-seals what it verified.",
        "alice",
        _submission("bob@fwd.d.example", "Forwarded?", "Hi Bob,\ndoes your old address work?\n"),
        Expectation(
            Result.DELIVERED,
            auth={"spf": "pass", "dkim": "pass", "dmarc": "pass", "arc": "pass"},
            mentions=("SRS0=", "@srs.fwd.d.example"),
        ),
        via="fwd",
    ),
    Scenario(
        "bounce",
        "A forward that bounces back",
        "Alice writes to robert@fwd.d.example, forwarded to robert@b.example, who has left. "
        "Bob's MX refuses the recipient; the forwarder's MTA sends the bounce to the envelope "
        "sender, the SRS address; it reaches the forwarder's MX, which checks the hash and the "
        "timestamp in it and turns it back into alice@a.example.",
        "alice",
        _submission("robert@fwd.d.example", "Are you there?", "Hi Robert,\nstill around?\n"),
        Expectation(
            Result.BOUNCED,
            mentions=("Final-Recipient: rfc822; robert@b.example", "Status: 5.1.1"),
        ),
        via="fwd",
    ),
)


@dataclass
class Observation:
    """What the hosts recorded while one scenario ran."""

    scenario: Scenario
    started: float
    ended: float
    transcript: str  # the swaks session
    status: int  # swaks's exit status
    dns: list[Exchange]
    logs: dict[str, list[LogRecord]]  # host/service -> its log lines of the scenario
    postfix: dict[str, str]  # host -> new Postfix log text
    bob: list[bytes]  # new messages in Bob's Maildir
    alice: list[bytes]  # new messages in Alice's Maildir

    def text(self) -> str:
        """The messages that arrived, as text (what an expectation's `mentions` look in)."""
        return "\n".join(m.decode("utf-8", "replace") for m in self.bob + self.alice)


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Result
    detail: str  # the reply, or where the message landed
    auth: dict[str, str]  # method -> result at Bob's MX (what was found)

    def matches(self, expect: Expectation, text: str) -> list[str]:
        """What differs from the expectation (empty: as expected)."""
        problems = []
        if self.result is not expect.result:
            problems.append(f"{self.result} ({self.detail}), expected {expect.result}")
        if expect.reply and not self.detail.startswith(expect.reply):
            problems.append(f"reply {self.detail!r}, expected {expect.reply} ...")
        for method, result in expect.auth.items():
            if self.auth.get(method) != result:
                problems.append(f"{method}={self.auth.get(method)}, expected {result}")
        problems += [f"{word!r} not found" for word in expect.mentions if word not in text]
        return problems


_SWAKS = re.compile(r"^(<~\*|<\*\*|<-|<~| ->| ~>|\*\*\*|===)\s*(.*)$")


def swaks_lines(transcript: str) -> list[tuple[str, str]]:
    """swaks's transcript as (marker, text): "<-"/"<~" replies (TLS), "<**"/"<~*" error
    replies, " ->"/" ~>" what it sent, "***" its errors, "===" its notes."""
    out = []
    for line in transcript.splitlines():
        match = _SWAKS.match(line)
        if match:
            out.append((match[1].strip(), match[2]))
    return out


def refusal(transcript: str) -> str:
    """The first error reply swaks got ("" if none), or its own error."""
    for marker, text in swaks_lines(transcript):
        if marker in ("<**", "<~*", "***"):
            return text
    return ""


def auth_results(message: bytes, authserv_id: str = B_MX) -> dict[str, str]:
    """method -> result of the Authentication-Results that `authserv_id` added (first of
    each method; DKIM "pass" if any signature passed, as DMARC reads it)."""
    found: dict[str, str] = {}
    try:
        parsed = Message.from_bytes(message, strict=False)
    except ValueError:
        return found
    for field_ in parsed.get_all("authentication-results"):
        try:
            results = parse_authentication_results(field_.text())
        except ParseError:
            continue
        if results.authserv_id.lower() != authserv_id:
            continue
        for info in results.results:
            method = info.method.lower()
            if method == "dkim" and found.get("dkim") == "pass":
                continue
            if method == "spf" and info.get("smtp", "helo") is not None:
                continue  # the HELO identity; DMARC reads MAIL FROM's
            found[method] = info.result.lower()
    return found


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One line of a mailwarden transaction log (gateway or submission), typed, the keys it
    may lack empty. A hostile or unexpected line gives empty fields, never an error."""

    kind: str  # "transaction", "distribution", ...
    client: str
    helo: str
    mail_from: str
    rcpts: tuple[str, ...]
    refused_rcpts: tuple[str, ...]  # the reply each refused recipient got
    reply: str
    spf: str
    dkim: tuple[str, ...]  # "pass:a.example", ...
    dmarc: str
    symbols: tuple[str, ...]
    reasons: tuple[str, ...]
    score: str
    auth: str
    tls: str  # the TLS version, "" without TLS
    authors: tuple[str, ...]  # the submission's From addresses
    signed: str  # the submission's DKIM outcome
    downstream: tuple[str, ...]
    raw: dict[str, object]

    @classmethod
    def parse(cls, record: dict[str, object]) -> LogRecord:
        client = record.get("client")
        tls = record.get("tls")
        refused = record.get("rejected_rcpts")
        score = record.get("score")
        return cls(
            kind=_text(record.get("type")),
            client=_text(client.get("ip")) if isinstance(client, dict) else "",
            helo=_text(record.get("helo")),
            mail_from=_text(record.get("mail_from")),
            rcpts=_strings(record.get("rcpts")),
            refused_rcpts=tuple(_text(r.get("reply")) for r in refused if isinstance(r, dict))
            if isinstance(refused, list)
            else (),
            reply=_text(record.get("reply")),
            spf=_text(record.get("spf")),
            dkim=_strings(record.get("dkim")),
            dmarc=_text(record.get("dmarc")),
            symbols=_strings(record.get("symbols")),
            reasons=_strings(record.get("reasons")),
            score="" if score is None else str(score),
            auth=_text(record.get("auth")),
            tls=_text(tls.get("version")) if isinstance(tls, dict) else "",
            authors=_strings(record.get("from")),
            signed=_text(record.get("dkim")),
            downstream=_strings(record.get("downstream")),
            raw=record,
        )

    def results(self) -> dict[str, str]:
        """method -> result as far as the log says (for a message refused, which has no
        Authentication-Results to read)."""
        found: dict[str, str] = {}
        if self.spf:
            found["spf"] = self.spf
        if self.dmarc:
            found["dmarc"] = self.dmarc
        if self.spf or self.dmarc:
            outcomes = [item.partition(":")[0] for item in self.dkim]
            found["dkim"] = "pass" if "pass" in outcomes else (outcomes[0] if outcomes else "none")
        if any("RBL_" in text for text in (*self.symbols, *self.refused_rcpts)):
            found["dnsbl"] = "listed"
        for symbol in self.symbols:
            if symbol.startswith("IPREV_"):
                found["iprev"] = symbol.split("(")[0].removeprefix("IPREV_").lower()
        return found


def outcome_of(observation: Observation) -> Outcome:
    """What became of the message, from what the hosts recorded."""
    gateway = [r for r in observation.logs.get("b", []) if r.kind == "transaction"]
    if observation.bob:
        message = observation.bob[-1]
        return Outcome(Result.DELIVERED, "in Bob's mailbox", auth_results(message))
    auth = gateway[-1].results() if gateway else {}
    if observation.alice:
        return Outcome(Result.BOUNCED, "a bounce in Alice's mailbox", auth)
    reply = refusal(observation.transcript)
    if reply:
        return Outcome(Result.REFUSED, reply, auth)
    return Outcome(Result.LOST, "neither delivered, refused nor bounced in time", auth)


def judge(observation: Observation) -> tuple[Outcome, list[str]]:
    """The outcome, and how it differs from the scenario's expectation (empty: as expected)."""
    outcome = outcome_of(observation)
    return outcome, outcome.matches(observation.scenario.expect, observation.text())
