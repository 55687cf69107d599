"""The lab's mailing list manager (what Mailman does, reduced to what matters here).

It runs behind the list host's MX (`mailwarden serve` for lists.c.example, which checks each
message and adds its Authentication-Results) and, for each message to the list:

1. tags the subject (`[lab] ...`) and adds a footer to the body, which breaks the author's
   DKIM signature (RFC 6376 §3.5: the body hash and the signed Subject no longer match);
2. adds List-Id (RFC 2919) and List-Post / List-Unsubscribe (RFC 2369);
3. ARC-seals it (RFC 8617 §5.1) with mailwarden.arc.seal: the ARC-Authentication-Results copy
   what its MX's Authentication-Results said (`authserv_id`), cv= the arc= result there;
4. sends it to each member from the list's own bounce address, so SPF is checked against the
   list host, through the member's mail exchanger found in DNS. The SMTP dialogue is logged.

Before-queue like the gateway: the list answers its MX only after every member's server
answered, with the worst reply. Run: `python -m lab.listhost CONFIG.json` (the lab writes the
configuration; see `ListConfig`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import smtplib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailwarden import runtime
from mailwarden.arc import ARCStatus, header_block, merge_authentication_results, seal
from mailwarden.authres import authserv_id_of
from mailwarden.body import Body, chunks
from mailwarden.dkim import load_private_key
from mailwarden.dns import MX, RdType, Resolver
from mailwarden.gateway import Gateway, Reply, Session, TransactionLog, sink_config
from mailwarden.message import HeaderField, Message, fold_field
from mailwarden.pipeline import build_resolver
from mailwarden.settings import DNSSettings

__all__ = ["ListConfig", "rewrite", "seal_message"]


@dataclass(frozen=True, slots=True)
class ListConfig:
    listen: tuple[str, int]
    address: str  # lab@lists.c.example
    members: tuple[str, ...]
    tag: str  # "[lab]"
    footer: str
    bounces: str  # the envelope sender of what the list sends
    hostname: str  # HELO name
    authserv_id: str  # whose Authentication-Results the seal copies (the list's MX)
    arc_domain: str
    arc_selector: str
    arc_key_file: str
    dns_server: str
    log_file: str

    @classmethod
    def load(cls, path: Path) -> ListConfig:
        data: dict[str, Any] = json.loads(path.read_text())
        host, _, port = data.pop("listen").rpartition(":")
        return cls(listen=(host, int(port)), members=tuple(data.pop("members")), **data)


def _fold(name: str, value: str) -> bytes:
    return (fold_field(name, value) + "\r\n").encode("utf-8")


def rewrite(message: bytes, config: ListConfig) -> bytes:
    """The message as the list distributes it: subject tagged, list fields added, footer
    appended to a plain-text body (another body is left alone, as Mailman's "footer" skips
    what it cannot decorate safely)."""
    parsed = Message.from_bytes(message)
    list_id = config.address.replace("@", ".")
    fields: list[bytes] = [
        _fold("List-Id", f"Lab discussion <{list_id}>"),
        _fold("List-Post", f"<mailto:{config.address}>"),
        _fold("List-Unsubscribe", f"<mailto:{config.address.replace('@', '-leave@')}>"),
    ]
    plain = True
    for field in parsed.fields:
        if field.lname in ("list-id", "list-post", "list-unsubscribe"):
            continue
        if field.lname == "subject":
            subject = field.text()
            if not subject.startswith(config.tag):
                subject = f"{config.tag} {subject}"
            fields.append(_fold("Subject", subject))
            continue
        if field.lname == "content-type":
            plain = field.text().lower().startswith("text/plain")
        if field.lname == "content-transfer-encoding":
            plain = plain and field.text().lower() in ("7bit", "8bit")
        fields.append(field.raw)
    body = parsed.body if isinstance(parsed.body, bytes) else b"".join(chunks(parsed.body))
    if plain:
        if body and not body.endswith(b"\r\n"):
            body += b"\r\n"
        body += b"-- \r\n" + config.footer.encode("utf-8").replace(b"\n", b"\r\n") + b"\r\n"
    return b"".join(fields) + (parsed.separator or b"\r\n") + body


_ARC_RESULT = re.compile(r"(?:^|;)\s*arc\s*=\s*(pass|fail|none)\b", re.IGNORECASE)


def chain_validation(message: Message, authserv_id: str) -> ARCStatus:
    """What our MX said of the ARC chain as received (arc= of its Authentication-Results;
    RFC 8617 §5.2 step 1). No verdict there: the chain is judged failed if there is one."""
    for field in message.get_all("authentication-results"):
        value = field.text()
        claimed = authserv_id_of(value)
        if claimed is None or claimed.lower() != authserv_id.lower():
            continue
        match = _ARC_RESULT.search(value)
        if match:
            return ARCStatus(match[1].lower())
    has_chain = message.get("arc-seal") is not None
    return ARCStatus.FAIL if has_chain else ARCStatus.NONE


def seal_message(message: bytes, config: ListConfig, key_pem: bytes) -> bytes:
    """The next ARC set prepended to `message` (the results of our MX copied into it)."""
    parsed = Message.from_bytes(message)
    results = merge_authentication_results(parsed, config.authserv_id)
    fields = seal(
        parsed,
        domain=config.arc_domain,
        selector=config.arc_selector,
        private_key=load_private_key(key_pem),
        authserv_id=config.authserv_id,
        auth_results=results or "",
        chain_validation=chain_validation(parsed, config.authserv_id),
    )
    return header_block(fields) + message


async def mail_exchanger(resolver: Resolver, domain: str) -> str:
    """The address of the preferred mail exchanger of `domain` (RFC 5321 §5.1)."""
    answer = await resolver.resolve(domain, RdType.MX)
    exchanges = sorted(
        (record for record in answer.records if isinstance(record, MX)),
        key=lambda mx: mx.preference,
    )
    if not exchanges:
        raise LookupError(f"{domain} has no MX")
    address = await resolver.resolve(exchanges[0].exchange, RdType.A)
    return str(address.records[0])


def _send(address: str, config: ListConfig, rcpt: str, message: bytes) -> tuple[Reply, list[str]]:
    """One SMTP delivery; the reply to the end of data (or to what failed) and the dialogue."""
    dialogue: list[str] = []

    def said(command: str, reply: tuple[int, bytes]) -> Reply:
        text = reply[1].decode("utf-8", "replace").splitlines()
        dialogue.append(f"> {command}")
        dialogue.append(f"< {reply[0]} {text[0] if text else ''}")
        status, _, rest = (text[0] if text else "").partition(" ")
        if re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", status):
            return Reply(reply[0], status, rest)
        return Reply(reply[0], "", text[0] if text else "")

    try:
        with smtplib.SMTP(address, 25, local_hostname=config.hostname, timeout=60) as smtp:
            said("EHLO " + config.hostname, smtp.ehlo())
            if smtp.has_extn("starttls"):
                said("STARTTLS", smtp.starttls())
                said("EHLO " + config.hostname, smtp.ehlo())
            reply = said(f"MAIL FROM:<{config.bounces}>", smtp.mail(config.bounces))
            if reply.code >= 300:
                return reply, dialogue
            reply = said(f"RCPT TO:<{rcpt}>", smtp.rcpt(rcpt))
            if reply.code >= 300:
                return reply, dialogue
            reply = said("DATA", smtp.data(message))
            return reply, dialogue
    except (OSError, smtplib.SMTPException) as exc:
        dialogue.append(f"! {exc}")
        return Reply(451, "4.4.1", "the member's server cannot be reached"), dialogue


class _ListOutbound:
    def __init__(self, relay: ListRelay) -> None:
        self.relay = relay
        self.sender = ""
        self.rcpts: list[str] = []

    async def mail(self, sender: str, params: dict[str, str | None]) -> Reply:
        self.sender, self.rcpts = sender, []
        return Reply(250, "2.1.0", "Ok")

    async def rcpt(self, rcpt: str) -> Reply:
        if rcpt.lower() != self.relay.config.address.lower():
            return Reply(550, "5.1.1", "No such list here")
        self.rcpts.append(rcpt)
        return Reply(250, "2.1.5", "Ok")

    async def data(self, head: bytes, body: Body = b"") -> list[Reply]:
        message = head + b"".join(chunks(body))
        reply = await self.relay.distribute(self.sender, message)
        return [reply]

    async def reset(self) -> Reply:
        self.sender, self.rcpts = "", []
        return Reply(250, "2.0.0", "Ok")

    async def close(self) -> None:
        return None


class ListRelay:
    """The gateway's downstream: each message is rewritten, sealed and sent to the members."""

    def __init__(self, config: ListConfig, resolver: Resolver, log: TransactionLog) -> None:
        self.config = config
        self.resolver = resolver
        self.log = log
        self.key = Path(config.arc_key_file).read_bytes()

    async def open(self, session: Session) -> _ListOutbound:
        return _ListOutbound(self)

    async def close(self) -> None:
        return None

    async def distribute(self, sender: str, message: bytes) -> Reply:
        config = self.config
        rewritten = rewrite(message, config)
        sealed = seal_message(rewritten, config, self.key)
        worst = Reply(250, "2.0.0", "Ok: distributed")
        for member in config.members:
            record: dict[str, Any] = {
                "type": "distribution",
                "from": sender,
                "member": member,
                "envelope_from": config.bounces,
                "subject": _subject(sealed),
                "sealed": [f.text() for f in Message.from_bytes(sealed).get_all("arc-seal")[:1]],
            }
            try:
                address = await mail_exchanger(self.resolver, member.rpartition("@")[2])
            except Exception as exc:  # a lookup that fails is this member's temporary failure
                record["error"] = f"no mail exchanger: {exc}"
                self.log.write(record)
                worst = Reply(451, "4.4.3", "a member's mail exchanger cannot be found")
                continue
            reply, dialogue = await asyncio.to_thread(_send, address, config, member, sealed)
            record.update(server=address, dialogue=dialogue, reply=str(reply))
            self.log.write(record)
            if reply.code > worst.code:
                worst = reply
        return worst


def _subject(message: bytes) -> str:
    field: HeaderField | None = Message.from_bytes(message).get("subject")
    return field.text() if field is not None else ""


async def _serve(config: ListConfig) -> None:
    resolver = build_resolver(DNSSettings(servers=(config.dns_server,), timeout=2.0, retries=1))
    log = TransactionLog(config.log_file)
    gateway = Gateway(
        sink_config(config.listen, config.hostname),
        relay=ListRelay(config, resolver, log),
        log=log,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with gateway:
        host, port = gateway.address
        print(json.dumps({"listen": f"{host}:{port}", "list": config.address}), flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.listhost", description=__doc__)
    parser.add_argument("config", type=Path)
    args = parser.parse_args(argv)
    config = ListConfig.load(args.config)
    try:
        runtime.run(_serve(config))
    except OSError as exc:
        print(f"listhost: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
