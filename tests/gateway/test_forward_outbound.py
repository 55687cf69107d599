"""The forwarding downstream without sockets: which next hop gets which recipient with which
sender, refusals and failures of a next hop, and connections that are never left open."""

from __future__ import annotations

import pytest

from mailwarden.gateway import Forwarding, Reply, Session, Unavailable
from mailwarden.srs import SRS, Aliases, Forwarder

SRS_B = SRS("srs.b.example", (b"secret",))
ALIASES = Aliases.parse(
    "fwd@b.example: carol@c.example, dave@d.example\nkeep@b.example: keep@b.example, e@e.example\n"
)


class FakeOutbound:
    def __init__(self, hop: FakeDownstream) -> None:
        self.hop = hop
        self.closed = False

    async def mail(self, sender: str, params: dict[str, str | None]) -> Reply:
        if self.hop.mail_fails:
            raise Unavailable(Reply(451, "4.4.1", "down"))
        self.hop.log.append(f"MAIL {sender}")
        return Reply(250, "2.1.0", "Ok")

    async def rcpt(self, rcpt: str) -> Reply:
        self.hop.log.append(f"RCPT {rcpt}")
        if rcpt in self.hop.refuse:
            return Reply(550, "5.1.1", "unknown")
        return Reply(250, "2.1.5", "Ok")

    async def data(self, head: bytes, body: bytes = b"") -> list[Reply]:
        self.hop.log.append(f"DATA {len(head) + len(body)}")
        return [Reply(250, "2.0.0", "Ok")]

    async def reset(self) -> Reply:
        return Reply(250, "2.0.0", "Ok")

    async def close(self) -> None:
        self.closed = True
        self.hop.closed += 1


class FakeDownstream:
    def __init__(self, *, refuse: tuple[str, ...] = (), mail_fails: bool = False) -> None:
        self.refuse = refuse
        self.mail_fails = mail_fails
        self.log: list[str] = []
        self.opened = 0
        self.closed = 0

    async def open(self, session: Session) -> FakeOutbound:
        self.opened += 1
        return FakeOutbound(self)

    async def close(self) -> None:
        return None


SESSION = Session("S1", "192.0.2.1", 25, 0.0)


def make(local: FakeDownstream, remote: FakeDownstream) -> Forwarding:
    return Forwarding(Forwarder(SRS_B, ALIASES, ["b.example"]), remote=remote)


async def test_recipients_go_to_their_hop_with_their_sender() -> None:
    local, remote = FakeDownstream(), FakeDownstream()
    outbound = await make(local, remote).downstream(local).open(SESSION)
    assert (await outbound.mail("zoe@a.example", {})).code == 250
    assert local.opened == remote.opened == 0  # nothing until a recipient
    assert (await outbound.rcpt("bob@b.example")).code == 250
    assert (await outbound.rcpt("fwd@b.example")).code == 250
    assert (await outbound.rcpt("keep@b.example")).code == 250
    assert (await outbound.data(b"Subject: x\r\n\r\nx\r\n"))[0].code == 250
    assert local.log == [
        "MAIL zoe@a.example",
        "RCPT bob@b.example",
        "RCPT keep@b.example",
        "DATA 17",
    ]
    srs_sender = SRS_B.forward("zoe@a.example")
    assert remote.log == [
        f"MAIL {srs_sender}",
        "RCPT carol@c.example",
        "RCPT dave@d.example",
        "RCPT e@e.example",
        "DATA 17",
    ]
    await outbound.close()
    assert local.closed == remote.closed == 1


async def test_a_forward_is_refused_only_when_every_target_is() -> None:
    local = FakeDownstream()
    some = FakeDownstream(refuse=("carol@c.example",))
    outbound = await make(local, some).downstream(local).open(SESSION)
    await outbound.mail("zoe@a.example", {})
    assert (await outbound.rcpt("fwd@b.example")).code == 250
    every = FakeDownstream(refuse=("carol@c.example", "dave@d.example"))
    outbound = await make(local, every).downstream(local).open(SESSION)
    await outbound.mail("zoe@a.example", {})
    assert (await outbound.rcpt("fwd@b.example")).code == 550
    assert await outbound.data(b"x\r\n") == []  # nobody accepted: nothing sent


async def test_a_forged_bounce_address_is_refused_and_a_real_one_reversed() -> None:
    local, remote = FakeDownstream(), FakeDownstream()
    outbound = await make(local, remote).downstream(local).open(SESSION)
    await outbound.mail("", {})
    reply = await outbound.rcpt("SRS0=AAAA=AA=a.example=zoe@srs.b.example")
    assert (reply.code, reply.status) == (550, "5.1.1")
    assert (await outbound.rcpt(SRS_B.forward("zoe@a.example"))).code == 250
    assert remote.log == ["MAIL ", "RCPT zoe@a.example"]  # the null sender stays null


async def test_a_hop_that_fails_at_mail_is_closed_and_the_failure_passed_on() -> None:
    local, remote = FakeDownstream(), FakeDownstream(mail_fails=True)
    outbound = await make(local, remote).downstream(local).open(SESSION)
    await outbound.mail("zoe@a.example", {})
    with pytest.raises(Unavailable):
        await outbound.rcpt("fwd@b.example")
    assert remote.opened == remote.closed == 1
    await outbound.close()
    assert remote.closed == 1


async def test_reset_closes_every_hop() -> None:
    local, remote = FakeDownstream(), FakeDownstream()
    outbound = await make(local, remote).downstream(local).open(SESSION)
    await outbound.mail("zoe@a.example", {})
    await outbound.rcpt("keep@b.example")
    assert (await outbound.reset()).code == 250
    assert local.closed == remote.closed == 1
    await outbound.mail("zoe@a.example", {})
    await outbound.rcpt("bob@b.example")
    assert local.opened == 2
