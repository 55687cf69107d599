"""The ten steps of each journey, as the hosts recorded them, in plain text.

`render(observation)` reads one scenario's `Observation` (swaks's transcript, Postfix's SMTP
dialogue, nsd's dnstap log, the gateways' transaction logs, the message in Bob's mailbox) and
tells it as the ten steps of issue 18: submission, authentication, the MTA's delivery, then at
the receiving MX the block list, reverse DNS, forward confirmation, SPF, DKIM, DMARC, and the
decision. Intermediate hops (the mailing list, the forwarder) are told between steps 3 and 4;
a bounce after step 10. Every DNS line is a query as the DNS server logged it, with the
address that asked. `summary` is the closing table.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mailwarden.authres import ParseError, ResInfo, parse_authentication_results
from mailwarden.message import Message

from .dnstap import Exchange
from .postfix import ChatLine, chat_lines, deliveries
from .scenarios import (
    LogRecord,
    Observation,
    Outcome,
    Result,
    Scenario,
    outcome_of,
    swaks_lines,
)
from .topology import A_MTA, ADDRESSES, B_MX, BLOCKLIST, FWD_MX, LIST_MX, NAMESERVER

__all__ = ["WIDTH", "classify", "render", "summary"]

WIDTH = 100
INDENT = "      "
NAMES = {
    ADDRESSES["a"][0]: A_MTA,
    ADDRESSES["b"][0]: B_MX,
    ADDRESSES["list"][0]: LIST_MX,
    ADDRESSES["fwd"][0]: FWD_MX,
    ADDRESSES["alice"][0]: "Alice's laptop",
    NAMESERVER: "ns.example",
}
# header fields of the final message worth showing, in the order they appear
SHOWN_FIELDS = {
    "return-path",
    "received",
    "authentication-results",
    "arc-seal",
    "arc-message-signature",
    "arc-authentication-results",
    "dkim-signature",
    "from",
    "to",
    "subject",
    "list-id",
    "x-mailwarden-verdict",
}


def _clip(text: str, width: int = WIDTH - len(INDENT)) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def dns_line(exchange: Exchange, note: str = "") -> str:
    """One query and its answer: who asked, what, and what the server said."""
    answer = exchange.answer_text()
    line = f"DNS  {exchange.client:<11} {exchange.rdtype:<4} {exchange.name}  →  {answer}"
    return _clip(line + (f"   ({note})" if note else ""))


def _condense(replies: list[str]) -> str:
    """A multi-line reply as one line: "250 first-line (KEYWORD, KEYWORD, ...)"."""
    first = replies[0]
    code = first[:3]
    words = [r[4:].split(" ")[0] for r in replies[1:]]
    auth = [r[4:] for r in replies[1:] if r[4:].upper().startswith("AUTH")]
    shown = [w for w in words if not w.upper().startswith("AUTH")] + auth
    return f"{code} {first[4:]}" + (f" ({', '.join(shown)})" if shown else "")


@dataclass
class _Dialogue:
    """Builds "C:"/"S:" lines, joining multi-line replies and hiding message content."""

    lines: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    in_data: bool = False

    def sent(self, text: str) -> None:
        self._flush()
        if self.in_data:
            if text == ".":
                self.in_data = False
                self.lines.append("C: . (end of the message)")
            elif text.lower().startswith(("from:", "to:", "subject:")):
                self.lines.append(f"C:    {text}")  # what the message claims
            return
        if text.upper().startswith("AUTH "):
            mechanism = text.split()[1] if len(text.split()) > 1 else ""
            text = f"AUTH {mechanism} (credentials hidden)"
        if text.upper() in ("QUIT",):
            return
        self.lines.append(f"C: {text}")

    def received(self, text: str) -> None:
        if text.startswith("354"):
            self.in_data = True
        if text.startswith("221"):
            return
        self.pending.append(text)
        if len(text) < 4 or text[3] != "-":
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.lines.append("S: " + _condense(self.pending))
            self.pending = []

    def done(self) -> list[str]:
        self._flush()
        return self.lines


def swaks_dialogue(transcript: str) -> list[str]:
    """The SMTP lines of a swaks session that matter (message content left out)."""
    dialogue = _Dialogue()
    for marker, text in swaks_lines(transcript):
        if marker in ("->", "~>"):
            dialogue.sent(text)
        elif marker in ("<-", "<~", "<**", "<~*"):
            dialogue.received(text)
        elif marker == "***":
            dialogue.lines.append(f"!  {text}")
        elif marker == "===" and text.startswith("TLS started"):
            dialogue.lines.append(f"   ({text})")
    return dialogue.done()


def postfix_dialogue(lines: Iterable[ChatLine]) -> list[str]:
    dialogue = _Dialogue()
    for line in lines:
        if line.sent:
            dialogue.sent(line.text)
        else:
            dialogue.received(line.text)
    return dialogue.done()


def _by_peer(lines: Sequence[ChatLine]) -> list[tuple[str, list[ChatLine]]]:
    """Consecutive dialogue lines grouped by the server they went to."""
    groups: list[tuple[str, list[ChatLine]]] = []
    for line in lines:
        if not groups or groups[-1][0] != line.peer:
            groups.append((line.peer, []))
        groups[-1][1].append(line)
    return groups


# -- DNS queries sorted into the steps ----------------------------------------------------------


def classify(
    queries: Iterable[Exchange], *, helo: str = "", author: str = ""
) -> dict[int, list[tuple[Exchange, str]]]:
    """The queries one receiving host made, by step: 4 block list, 5 reverse DNS, 6 the
    names checked forward (the PTR's name, the HELO name), 7 SPF, 8 DKIM (and ARC keys),
    9 DMARC (and whether the author domain exists); 0 anything else. Each with a note."""
    steps: dict[int, list[tuple[Exchange, str]]] = {}
    items = list(queries)
    pointed = {a.rstrip(".").lower() for e in items if e.rdtype == "PTR" for a in e.answers}
    for exchange in items:
        name, rdtype = exchange.name, exchange.rdtype
        note = ""
        if name.endswith("." + BLOCKLIST):
            step = 4
        elif rdtype == "PTR":
            step = 5
        elif rdtype in ("A", "AAAA") and name in pointed:
            step = 6
            note = "PTR's name" + (" = HELO name" if name == helo else "")
        elif rdtype in ("A", "AAAA") and name == helo:
            step, note = 6, "HELO name"
        elif name.startswith("_dmarc."):
            step = 9
        elif rdtype in ("A", "AAAA", "MX") and name == author:
            step, note = 9, "does the From domain exist?"
        elif "._domainkey." in name:
            step = 8
        elif rdtype == "TXT":
            step = 7
            note = "HELO identity" if name == helo else "MAIL FROM identity"
        elif rdtype in ("A", "AAAA", "MX"):
            step = 7
        else:
            step = 0
        steps.setdefault(step, []).append((exchange, note))
    return steps


# -- results ----------------------------------------------------------------------------------


def _results(message: bytes, authserv_id: str) -> list[ResInfo]:
    try:
        parsed = Message.from_bytes(message, strict=False)
    except ValueError:
        return []
    found: list[ResInfo] = []
    for header in parsed.get_all("authentication-results"):
        try:
            results = parse_authentication_results(header.text())
        except ParseError:
            continue
        if results.authserv_id.lower() == authserv_id:
            found.extend(results.results)
    return found


def _result_lines(infos: Iterable[ResInfo], methods: Sequence[str]) -> list[str]:
    lines = []
    for info in infos:
        if info.method.lower() in methods:
            wrapped = textwrap.wrap(
                info.format(), WIDTH - len(INDENT) - 4, subsequent_indent="    "
            )
            lines += ["⇒ " + wrapped[0], *("  " + w for w in wrapped[1:])]
    return lines


_RECEIVED = re.compile(
    r"from\s+(?P<helo>\S+)\s+\((?P<name>[^\s\[]*)\s*\[(?P<ip>[^\]]+)\]\).*?"
    r"\bby\s+(?P<by>\S+)(?:\s+\((?P<software>[^)]*)\))?.*?\bwith\s+(?P<with>\S+)",
    re.DOTALL,
)


def _received(value: str) -> str:
    match = _RECEIVED.search(value)
    if match is None:
        return _clip(value)
    software = f" ({match['software']})" if match["software"] else ""
    return f"from {match['helo']} [{match['ip']}] by {match['by']}{software} with {match['with']}"


def _tags(value: str, keep: Sequence[str]) -> str:
    """Some tags of a DKIM-style tag list, in its own order (b= and bh= are never shown)."""
    tags = [part.strip() for part in value.split(";")]
    return "; ".join(t for t in tags if t.split("=", 1)[0].strip() in keep)


def _short_results(value: str) -> str:
    """An Authentication-Results body as "authserv-id: method=result ...", no detail."""
    try:
        parsed = parse_authentication_results(value)
    except ParseError:
        return _clip(value)
    return f"{parsed.authserv_id}: " + " ".join(f"{r.method}={r.result}" for r in parsed.results)


def _header_lines(message: bytes, full_results: str = B_MX) -> list[str]:
    """The fields of a delivered message that tell its story, top to bottom: the path
    (Received, compressed), every verdict on the way (the last receiver's in full), the
    seals and signatures (their identities only), and the author's fields."""
    try:
        parsed = Message.from_bytes(message, strict=False)
    except ValueError:
        return ["(the message could not be read)"]
    lines: list[str] = []
    width = WIDTH - len(INDENT)
    for header in parsed.fields:
        if header.lname not in SHOWN_FIELDS:
            continue
        name = header.name.decode("ascii", "replace")
        value = header.text()
        if header.lname == "received":
            lines.append(f"{name}: {_received(value)}")
        elif header.lname == "authentication-results":
            try:
                authserv = parse_authentication_results(value).authserv_id.lower()
            except ParseError:
                authserv = ""
            if authserv == full_results:
                lines.append(f"{name}: {authserv};")
                lines += [f"    {_clip(p.strip(), width - 4)}" for p in value.split(";")[1:]]
            else:
                lines.append(_clip(f"{name}: {_short_results(value)}", width))
        elif header.lname == "arc-authentication-results":
            instance, _, rest = value.partition(";")
            lines.append(_clip(f"{name}: {instance.strip()}; {_short_results(rest)}", width))
        elif header.lname in ("dkim-signature", "arc-message-signature"):
            lines.append(_clip(f"{name}: {_tags(value, ('a', 'd', 's', 'i', 'cv'))}", width))
        elif header.lname == "arc-seal":
            lines.append(_clip(f"{name}: {_tags(value, ('a', 'cv', 'd', 's', 'i'))}", width))
        else:
            lines += textwrap.wrap(f"{name}: {value}", width, subsequent_indent="    ")
    return lines


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, number: str, title: str) -> None:
        self.lines.append(f"{number:>4}. {title}")

    def detail(self, lines: Iterable[str]) -> None:
        self.lines.extend(INDENT + line for line in lines)

    def wrapped(self, text: str) -> None:
        self.detail(textwrap.wrap(text, WIDTH - len(INDENT), subsequent_indent="  "))

    def text(self, text: str) -> None:
        self.lines += textwrap.wrap(text, WIDTH)


def _queries_of(observation: Observation, client: str) -> list[Exchange]:
    return [e for e in observation.dns if e.client == client]


def _split_mta(queries: Sequence[Exchange]) -> tuple[list[Exchange], list[Exchange]]:
    """A host's queries as (its gateway's checks, its MTA's routing): MX queries, and the
    addresses of the exchangers they named, are routing."""
    checks: list[Exchange] = []
    routing: list[Exchange] = []
    exchangers: set[str] = set()
    for exchange in queries:  # in the order they were asked: the MX query comes first
        if exchange.rdtype == "MX":
            exchangers |= {answer.split()[-1].rstrip(".").lower() for answer in exchange.answers}
            routing.append(exchange)
        elif exchange.rdtype == "A" and exchange.name in exchangers:
            routing.append(exchange)
        else:
            checks.append(exchange)
    return checks, routing


def _records(observation: Observation, source: str) -> list[LogRecord]:
    return [r for r in observation.logs.get(source, []) if r.kind == "transaction"]


def _chat(observation: Observation, host: str) -> list[tuple[str, list[ChatLine]]]:
    return _by_peer(chat_lines(observation.postfix.get(host, "")))


def _dialogues(writer: _Writer, groups: Iterable[tuple[str, list[ChatLine]]]) -> None:
    for peer, lines in groups:
        writer.detail([f"— Postfix to {peer}"])
        writer.detail(postfix_dialogue(lines))


def _verdict(writer: _Writer, record: LogRecord, name: str) -> None:
    dkim = ",".join(record.dkim) or "none"
    writer.wrapped(
        f"⇒ {name}: {record.reply} — spf={record.spf} dkim={dkim} dmarc={record.dmarc}; "
        f"{', '.join(record.symbols)}"
    )


def render(observation: Observation, index: int = 1, total: int = 1) -> list[str]:
    """One scenario told step by step (see the module docstring)."""
    scenario = observation.scenario
    outcome = outcome_of(observation)
    writer = _Writer()
    title = f"━━ {index}/{total} {scenario.key}: {scenario.title} "
    writer.lines.append(title + "━" * max(3, WIDTH - len(title)))
    writer.text(scenario.story)
    writer.lines.append("")
    dialogue = swaks_dialogue(observation.transcript)
    if scenario.client == "alice":
        _submission_steps(writer, observation, dialogue)
    else:
        writer.step("1-3", "No MSA, no MTA: the zombie talks to Bob's MX itself, as a.example")
        writer.detail(dialogue)
    client: str | None = None
    if scenario.via == "list":
        client = ADDRESSES["list"][0]
        _list_steps(writer, observation)
    elif scenario.via == "fwd":
        client = ADDRESSES["fwd"][0]
        _forwarder_steps(writer, observation)
    _receiving_steps(writer, observation, outcome, client)
    if scenario.via == "fwd" and observation.alice:
        _bounce_step(writer, observation)
    problems = outcome.matches(scenario.expect, observation.text())
    verdict = "as expected" if not problems else "NOT as expected: " + "; ".join(problems)
    writer.lines.append(f"   ⇒ {outcome.result}: {outcome.detail} ({verdict})")
    writer.lines.append("")
    return writer.lines


def _submission_steps(writer: _Writer, observation: Observation, dialogue: list[str]) -> None:
    writer.step("1", f"Alice submits the message to her MSA ({A_MTA}:587) from her laptop")
    writer.detail(dialogue)
    writer.step("2", "The MSA authenticates her, checks she sends as herself, and signs")
    for record in _records(observation, "a"):
        writer.wrapped(
            f"logged in as {record.auth} (inside {record.tls or 'no TLS'}); MAIL FROM "
            f"<{record.mail_from}> and From <{', '.join(record.authors)}> are hers"
        )
        writer.wrapped(
            f"DKIM: {record.signed or 'not signed'}; relayed to a.example's MTA, which said "
            f"{', '.join(record.downstream) or '(nothing)'}"
        )
    signatures = _signatures(observation)
    if signatures:
        writer.detail(signatures)
    writer.step("3", f"a.example's MTA (Postfix on {A_MTA}) looks up the MX and delivers")
    writer.detail(dns_line(e) for e in _queries_of(observation, ADDRESSES["a"][0]))
    _dialogues(writer, _chat(observation, "a"))


def _signatures(observation: Observation) -> list[str]:
    """The DKIM-Signature fields the MSA added, as the final message carries them."""
    messages = observation.bob or observation.alice
    if not messages:
        return []
    try:
        parsed = Message.from_bytes(messages[-1], strict=False)
    except ValueError:
        return []
    return [
        _clip(f"DKIM-Signature: {_tags(f.text(), ('a', 'd', 's'))}")
        for f in parsed.get_all("dkim-signature")
        if "d=a.example" in f.text().replace(" ", "")
    ]


def _list_steps(writer: _Writer, observation: Observation) -> None:
    address = ADDRESSES["list"][0]
    checks, routing = _split_mta(_queries_of(observation, address))
    writer.step("3a", f"The list's MX ({LIST_MX}) checks the message as any receiver does")
    writer.detail(dns_line(e) for e in checks)
    for record in _records(observation, "list"):
        _verdict(writer, record, LIST_MX)
    writer.step("3b", "The list tags the subject, adds a footer, ARC-seals it and sends it on")
    writer.detail(dns_line(e) for e in routing)
    for record in observation.logs.get("listhost", []):
        if record.kind != "distribution":
            continue
        raw = record.raw
        sealed = _strings(raw.get("sealed"))
        writer.detail(
            [
                _clip(f"Subject: {raw.get('subject')}; MAIL FROM <{raw.get('envelope_from')}>"),
                _clip(f"ARC-Seal: {_tags(sealed[0], ('a', 'cv', 'd', 's', 'i'))}")
                if sealed
                else "(not sealed)",
                f"— the list manager to {B_MX}[{raw.get('server')}]:25",
            ]
        )
        writer.detail(_list_dialogue(raw.get("dialogue")))


def _strings(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _forward_split(
    observation: Observation,
) -> tuple[list[Exchange], list[Exchange], list[Exchange]]:
    """The forwarder's queries: its MX's checks of the message, its MTA's routing to b.example,
    and what came after (the bounce: its MX's checks of it, the routing back)."""
    queries = _queries_of(observation, ADDRESSES["fwd"][0])
    to_b = [e.time for e in queries if e.rdtype == "MX" and e.name == "b.example"]
    start = to_b[0] if to_b else float("inf")
    before = [e for e in queries if e.time < start]
    after = [e for e in queries if e.time >= start]
    checks, _ = _split_mta(before)
    _, routing = _split_mta(after)
    towards_b = [e for e in routing if e.name in ("b.example", B_MX)][:2]
    later = [e for e in after if e not in towards_b]
    return checks, towards_b, later


def _forwarder_steps(writer: _Writer, observation: Observation) -> None:
    address = ADDRESSES["fwd"][0]
    checks, towards_b, _ = _forward_split(observation)
    writer.step("3a", f"The forwarder's MX ({FWD_MX}) checks the message and forwards it")
    writer.detail(dns_line(e) for e in checks)
    for record in _records(observation, "fwd"):
        if record.client != address:
            _verdict(writer, record, FWD_MX)
    writer.step("3b", "The forwarder's MTA sends it on, the envelope sender rewritten with SRS")
    writer.detail(dns_line(e) for e in towards_b)
    _dialogues(writer, [(p, lines) for p, lines in _chat(observation, "fwd") if B_MX in p][:1])


def _bounce_step(writer: _Writer, observation: Observation) -> None:
    address = ADDRESSES["fwd"][0]
    _, _, later = _forward_split(observation)
    writer.step("11", "The forwarder's MTA bounces it to the SRS address; its MX reverses it")
    writer.detail(
        _clip(f"{d.queue_id}: to=<{d.to}> status={d.status} ({d.detail})")
        for d in deliveries(observation.postfix.get("fwd", ""))
    )
    writer.detail(dns_line(e) for e in later)
    for record in _records(observation, "fwd"):
        if record.client == address:
            writer.wrapped(
                f"⇒ {FWD_MX} takes the bounce for {', '.join(record.rcpts)} and sends it on to "
                f"the address it stands for: {record.reply}"
            )
    _dialogues(writer, [(p, lines) for p, lines in _chat(observation, "fwd") if B_MX not in p])
    writer.detail(["In Alice's mailbox:"])
    writer.detail(_header_lines(observation.alice[-1], full_results=""))
    writer.detail(_diagnostic(observation.alice[-1]))


def _list_dialogue(dialogue: object) -> list[str]:
    built = _Dialogue()
    for text in _strings(dialogue):
        if text.startswith("> "):
            built.sent(text[2:])
        elif text.startswith("< "):
            built.received(text[2:])
        else:
            built.lines.append(text)
    return built.done()


_DSN_FIELD = re.compile(
    r"^(?:Final-Recipient|Original-Recipient|Action|Status|Diagnostic-Code):[^\r\n]*"
    r"(?:\r?\n[ \t][^\r\n]*)*",
    re.MULTILINE,
)


def _diagnostic(message: bytes) -> list[str]:
    """The per-recipient fields of a delivery status notification (RFC 3464 §2.3)."""
    text = message.decode("utf-8", "replace")
    return [_clip(match.group(0)) for match in _DSN_FIELD.finditer(text)]


TITLES = {
    4: "{mx} looks the client {client} ({name}) up in the block list {bl}",
    5: "It asks the reverse DNS for the name of {client}",
    6: "It resolves that name (and the HELO name) and checks they lead back to {client}",
    7: "It checks the SPF policy of the MAIL FROM domain (and of the HELO name)",
    8: "It fetches the DKIM keys and verifies the signatures (and the ARC chain)",
    9: "It fetches the From domain's DMARC policy and checks alignment",
}
METHODS = {6: ("iprev",), 7: ("spf",), 8: ("dkim", "arc"), 9: ("dmarc",)}
LOGGED = {7: "spf", 8: "dkim", 9: "dmarc"}


def _receiving_steps(
    writer: _Writer, observation: Observation, outcome: Outcome, client: str | None
) -> None:
    """Steps 4 to 10 at b.example's MX, for the connection from `client` (default: the
    last client it logged)."""
    records = _records(observation, "b")
    if client is not None:
        records = [r for r in records if r.client == client] or records
    record = records[-1] if records else None
    client = client or (record.client if record else "?")
    message = observation.bob[-1] if observation.bob else b""
    author = "a.example"
    if message:
        header = Message.from_bytes(message, strict=False).get("from")
        if header is not None:
            author = header.text().rpartition("@")[2].rstrip(">").strip().lower()
    queries = _queries_of(observation, ADDRESSES["b"][0])
    steps = classify(queries, helo=record.helo if record else "", author=author)
    results = _results(message, B_MX) if message else []
    data_reached = bool(message) or bool(record and record.spf)
    for number in range(4, 10):
        title = TITLES[number].format(
            mx=B_MX, client=client, name=NAMES.get(client, "no name"), bl=BLOCKLIST
        )
        writer.step(str(number), title)
        entries = steps.get(number, [])
        writer.detail(dns_line(e, note) for e, note in entries)
        if number == 4:
            listed = [
                text
                for text in (
                    *(record.symbols if record else ()),
                    *(record.refused_rcpts if record else ()),
                )
                if "RBL_" in text
            ]
            writer.detail([f"⇒ listed: {listed[0]}" if listed else "⇒ not listed"])
        elif results:
            writer.detail(_result_lines(results, METHODS[number]) if number in METHODS else [])
        elif record is not None and number == 6:
            writer.detail([f"⇒ {s}" for s in record.symbols if s.startswith(("IPREV_", "HELO_"))])
        elif record is not None and number in LOGGED and data_reached:
            value = {7: record.spf, 8: ", ".join(record.dkim) or "none", 9: record.dmarc}[number]
            writer.detail([f"⇒ {LOGGED[number]}={value}"])
        elif number in LOGGED and not data_reached:
            writer.detail(["(no verdict: the recipient was refused before the message came)"])
            continue
        if not entries and number == 8:
            writer.detail(["(no query: no signature to verify)"])
        elif not entries and number != 4:
            writer.detail(["(no query)"])
    if outcome.result is Result.DELIVERED and record is not None:
        writer.step("10", f"{B_MX} accepts it: {record.reply} (score {record.score})")
        writer.detail(["In Bob's mailbox:"])
        writer.detail(_header_lines(message))
        return
    writer.step("10", f"{B_MX} refuses it")
    if record is None:
        writer.detail(["(no transaction logged)"])
        return
    writer.detail(f"RCPT: {reply}" for reply in record.refused_rcpts)
    if record.reply and not record.reply.startswith("aborted"):
        writer.detail([f"end of data: {record.reply}"])
    if record.reasons:
        writer.wrapped(f"why: {'; '.join(record.reasons)}")
    if record.symbols:
        writer.wrapped(f"symbols: {', '.join(record.symbols)}")


def summary(rows: Sequence[tuple[Scenario, Outcome, list[str]]]) -> list[str]:
    """The closing table: one line per scenario, what happened and whether it should."""
    header = ("scenario", "outcome", "results at Bob's MX", "as expected")
    table = [header]
    for scenario, outcome, problems in rows:
        detail = outcome.detail if outcome.result is Result.REFUSED else ""
        table.append(
            (
                scenario.key,
                _clip(f"{outcome.result} {detail}".strip(), 34),
                " ".join(f"{k}={v}" for k, v in outcome.auth.items()) or "-",
                "yes" if not problems else "NO",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for number, row in enumerate(table):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if number == 0:
            lines.append("  ".join("─" * w for w in widths))
    return lines
