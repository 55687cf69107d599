"""Headers that others trust cannot be forged: what a sender writes in our name is removed.

The mailbox server and users' filters trust our Authentication-Results, our verdict and spam
fields and our Received-SPF. Attacker's variants, each sent through the gateway over a real
socket: X-Mailwarden-Verdict and other X-Mailwarden-* fields, X-Spam-Flag/-Score/-Status
(the configured prefix), Received-SPF naming our host (receiver=, the comment, any case, a
trailing dot), Authentication-Results and ARC-Authentication-Results claiming our authserv-id
in any spelling (case, trailing dot, comments, quoting, malformed), and fields named in
`remove_headers`. What other hosts wrote is kept, and our Received field names the client by
the reverse name iprev verified.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from tests.gateway.attack import named, send, settings, signed
from tests.gateway.helpers import HOSTNAME

from mailwarden.settings import GatewaySettings

OURS = HOSTNAME  # mx.test.example

FORGED = [
    b"X-Mailwarden-Verdict: action=accept; score=-10.00",
    b"X-Mailwarden-Whatever: trusted",
    b"x-mailwarden-verdict: action=accept",
    b"X-Spam-Flag: NO",
    b"X-Spam-Score: -100",
    b"X-Spam-Status: No, score=-100.0",
    b"X-Spam-Level: ",
    b"Received-SPF: pass (mx.test.example: domain of a@bank.example designates it) "
    b"receiver=mx.test.example; client-ip=198.51.100.1;",
    b"Received-SPF: pass receiver=MX.TEST.EXAMPLE.; client-ip=198.51.100.1",
    b'Received-SPF: pass receiver="mx.test.example"; client-ip=198.51.100.1',
    b"Received-SPF: pass (MX.Test.Example.: looks fine)",
    b"Authentication-Results: mx.test.example; dmarc=pass header.from=bank.example",
    b"Authentication-Results: MX.TEST.EXAMPLE; dkim=pass header.d=bank.example",
    b"Authentication-Results: mx.test.example.; spf=pass smtp.mailfrom=bank.example",
    b"Authentication-Results: (trusted) mx.test.example; dmarc=pass",
    b'Authentication-Results: "mx.test.example"; dmarc=pass',
    b"Authentication-Results: mx.test.example 1; dmarc=pass",
    b"Authentication-Results: mx.test.example(; dmarc=pass",
    b"Authentication-Results:\r\n mx.test.example;\r\n dmarc=pass",
    b"ARC-Authentication-Results: i=1; mx.test.example; dmarc=pass",
    b"ARC-Authentication-Results: i=1; MX.test.example.; dmarc=pass",
]

KEPT = [
    b"Authentication-Results: mx.other.example; dmarc=fail header.from=bank.example",
    b"Authentication-Results: mx.test.example.evil.example; dmarc=pass",
    b"Received-SPF: fail (mx.other.example: not permitted) receiver=mx.other.example;",
    b"X-Spammy: kept (not our prefix)",
]


@pytest.mark.parametrize(
    "forged", FORGED, ids=[f.split(b":")[0].decode() + str(i) for i, f in enumerate(FORGED)]
)
async def test_a_forged_field_never_reaches_the_mailbox(tmp_path: Path, forged: bytes) -> None:
    header = b"From: Alice <alice@a.example>\r\n" + forged + b"\r\n"
    outcome = await send(tmp_path, signed(header), mail_from="alice@a.example")
    assert outcome.code == 250, outcome.text
    [delivered] = outcome.delivered
    assert forged.replace(b"\r\n", b"") not in delivered.replace(b"\r\n", b"")
    name = forged.split(b":")[0].decode()
    ours = [line for line in named(delivered, name)]
    if name.lower() == "authentication-results":
        assert len(ours) == 1  # ours, freshly written
        assert ours[0].startswith(f"Authentication-Results: {OURS};")
    elif name.lower() in ("received-spf", "x-mailwarden-verdict", "x-spam-score", "x-spam-status"):
        assert len(ours) == 1  # ours
    else:
        assert ours == []
    [record] = outcome.log
    assert record["removed_headers"] == [name]


async def test_what_others_wrote_is_kept(tmp_path: Path) -> None:
    header = b"From: Alice <alice@a.example>\r\n" + b"\r\n".join(KEPT) + b"\r\n"
    outcome = await send(tmp_path, signed(header), mail_from="alice@a.example")
    assert outcome.code == 250
    [delivered] = outcome.delivered
    flat = delivered.replace(b"\r\n", b"")
    for field in KEPT:
        assert field in flat
    assert "removed_headers" not in outcome.log[0]


async def test_configured_fields_are_removed(tmp_path: Path) -> None:
    header = (
        b"From: Alice <alice@a.example>\r\nX-Virus-Status: Clean\r\nX-Filter-A: 1\r\n"
        b"X-Filter-B: 2\r\nX-Keep: yes\r\n"
    )
    outcome = await send(
        tmp_path,
        signed(header),
        mail_from="alice@a.example",
        config=replace(
            settings(),
            gateway=GatewaySettings(hostname=OURS, remove_headers=("X-Virus-Status", "X-Filter-*")),
        ),
    )
    assert outcome.code == 250
    [delivered] = outcome.delivered
    assert named(delivered, "X-Virus-Status") == []
    assert named(delivered, "X-Filter-A") == named(delivered, "X-Filter-B") == []
    assert named(delivered, "X-Keep") == ["X-Keep: yes"]


async def test_our_received_field_names_the_verified_reverse_name(tmp_path: Path) -> None:
    outcome = await send(
        tmp_path, signed(b"From: alice@a.example\r\n"), mail_from="alice@a.example"
    )
    [delivered] = outcome.delivered
    received = named(delivered, "Received")[0]
    assert "from mail.a.example (mail.a.example [127.0.0.1])" in received
