"""The same settings give the same verdict through every front end.

One message, one zone, one configuration file: checked by the pipeline directly, by
`mailwarden check --json` (in-process, the zone as a master file), by the HTTP API's
`POST /v1/check` and by the gateway over real sockets (the gateway's verdict read from its
transaction log and the delivered message). The action, the score, the symbols and our
Authentication-Results must be the same everywhere, for a legitimate message and for a spoof.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from tests.gateway.helpers import Client, make_config, messages, running
from tests.milter.helpers import commands
from tests.milter.test_server import play

from mailwarden.cli import run
from mailwarden.dkim import sign
from mailwarden.dkim.keygen import key_record
from mailwarden.dns import StaticResolver
from mailwarden.gateway import PipelineChecks
from mailwarden.http import HTTPServer
from mailwarden.message import fold_field
from mailwarden.milter import MilterClient, MilterServer
from mailwarden.milter import protocol as milter
from mailwarden.pipeline import build, build_resolver
from mailwarden.settings import load_settings

KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(7, 39)))
HOST = "mx.b.example"
CLIENT = "127.0.0.1"  # the gateway sees the test's client here
HELO = "mail.a.example"

CONFIG = f"""
[gateway]
hostname = "{HOST}"
[dnsbl]
use = []
[policy.scores]
SPF_NEUTRAL = 2.5
"""


def zone_text() -> str:
    record = key_record(KEY)
    return f"""
a.example. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
mail.a.example. 300 IN A 127.0.0.1
1.0.0.127.in-addr.arpa. 300 IN PTR mail.a.example.
sel._domainkey.a.example. 300 IN TXT "{record}"
_dmarc.a.example. 300 IN TXT "v=DMARC1; p=reject"
bank.example. 300 IN TXT "v=spf1 ip4:198.51.100.0/24 -all"
_dmarc.bank.example. 300 IN TXT "v=DMARC1; p=quarantine"
"""


def legitimate() -> bytes:
    """Signed now: call once per test (the signature's t= changes every second)."""
    body = (
        b"From: Alice <alice@a.example>\r\nTo: bob@example.net\r\nSubject: lunch\r\n"
        b"Message-ID: <1@a.example>\r\n\r\nSee you at noon.\r\n"
    )
    return sign(body, "a.example", "sel", KEY) + body


def spoof() -> bytes:
    return (
        b"From: CEO <ceo@bank.example>\r\nTo: bob@example.net\r\nSubject: wire\r\n"
        b"Message-ID: <2@a.example>\r\n\r\nPay now.\r\n"
    )


@pytest.fixture
def setup(tmp_path: Path) -> Path:
    (tmp_path / "mailwarden.toml").write_text(CONFIG)
    (tmp_path / "zone").write_text(zone_text())
    return tmp_path


def _summary(action: str, score: float, symbols: list[str], auth_results: str) -> dict[str, object]:
    return {
        "action": action,
        "score": round(score, 3),
        "symbols": sorted(symbols),
        "authentication_results": " ".join(auth_results.split()),
    }


async def _direct(setup: Path, message: bytes, helo: str = HELO) -> dict[str, object]:
    settings = load_settings(setup / "mailwarden.toml")
    resolver = StaticResolver()
    resolver.load_master_text((setup / "zone").read_text())
    verdict = await build(settings, resolver).check(
        message, ip=CLIENT, helo=helo, mail_from="alice@a.example"
    )
    field = fold_field("Authentication-Results", verdict.authentication_results.format_value())
    return _summary(
        verdict.policy.action.value,
        verdict.policy.score,
        [f"{s.name}({s.score:g})" for s in verdict.policy.symbols],
        field,
    )


async def _cli(
    setup: Path, message: bytes, capsys: pytest.CaptureFixture[str], helo: str = HELO
) -> dict[str, object]:
    path = setup / "message.eml"
    path.write_bytes(message)
    code = await asyncio.to_thread(  # the command runs its own event loop
        run,
        [
            "check",
            str(path),
            "--config",
            str(setup / "mailwarden.toml"),
            "--dns-zone",
            str(setup / "zone"),
            "--ip",
            CLIENT,
            "--helo",
            helo,
            "--mail-from",
            "alice@a.example",
            "--json",
        ],
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    verdict = json.loads(captured.out)
    policy = verdict["policy"]
    return _summary(
        policy["action"],
        policy["score"],
        [f"{s['name']}({s['score']:g})" for s in policy["symbols"]],
        verdict["authentication_results"],
    )


async def _http(setup: Path, message: bytes, helo: str = HELO) -> dict[str, object]:
    """POST /v1/check over a real socket, the API built from the same file and zone."""
    settings = load_settings(
        setup / "mailwarden.toml", overrides={"dns.zones": ([str(setup / "zone")], "--dns-zone")}
    )
    pipeline = build(settings, build_resolver(settings.dns, settings.source))
    async with (
        HTTPServer(settings, pipeline, ("127.0.0.1", 0)) as server,
        aiohttp.ClientSession() as session,
    ):
        host, port = server.address
        async with session.post(
            f"http://{host}:{port}/v1/check",
            params={"ip": CLIENT, "helo": helo, "mail_from": "alice@a.example"},
            data=message,
            headers={"Content-Type": "message/rfc822"},
        ) as response:
            assert response.status == 200, await response.text()
            verdict = await response.json()
    policy = verdict["policy"]
    return _summary(
        policy["action"],
        policy["score"],
        [f"{s['name']}({s['score']:g})" for s in policy["symbols"]],
        verdict["authentication_results"],
    )


async def _gateway(setup: Path, message: bytes, helo: str = HELO) -> tuple[dict[str, object], int]:
    settings = load_settings(setup / "mailwarden.toml")
    resolver = StaticResolver()
    resolver.load_master_text((setup / "zone").read_text())
    checks = PipelineChecks(build(settings, resolver))
    maildir = setup / "Maildir"
    config = make_config(setup, hostname=HOST)
    async with running(config, checks, maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        assert (await client.cmd(f"EHLO {helo}"))[0] == 250
        assert (await client.cmd("MAIL FROM:<alice@a.example>"))[0] == 250
        assert (await client.cmd("RCPT TO:<bob@example.net>"))[0] == 250
        assert (await client.cmd("DATA"))[0] == 354
        await client.send(message + b".\r\n")
        code, _ = await client.reply()
        await client.cmd("QUIT")
    [record] = [r for r in gateway.log.records if r.get("type") == "transaction"]
    delivered = messages(maildir)
    auth_results = ""
    if delivered:
        head = delivered[0].split(b"\r\n\r\n")[0].decode().replace("\r\n ", " ")
        auth_results = next(
            line for line in head.split("\r\n") if line.startswith("Authentication-Results:")
        )
    return (
        _summary(
            str(record["action"]), float(record["score"]), list(record["symbols"]), auth_results
        ),
        code,
    )


async def _milter(setup: Path, message: bytes, helo: str = HELO) -> tuple[dict[str, object], str]:
    """Through the milter over a real socket, played by the MTA's side of the protocol: the
    verdict from its log line, our Authentication-Results from its header insertion; and
    the final answer (continue, or the reply code's text)."""
    settings = load_settings(
        setup / "mailwarden.toml", overrides={"milter.listen": ("127.0.0.1:0", "-")}
    )
    resolver = StaticResolver()
    resolver.load_master_text((setup / "zone").read_text())
    records: list[dict[str, object]] = []
    server = MilterServer(
        settings, build(settings, resolver), spool_dir=setup / "spool", log_record=records.append
    )
    async with server:
        host, _, port = server.address.rpartition(":")
        client = await MilterClient.connect(host, int(port))
        async with client:
            negotiated = await client.negotiate()
            answers = await play(
                client,
                negotiated.protocol,
                commands(message, ip=CLIENT, helo=helo, rcpts=("bob@example.net",)),
            )
    responses = [r for _, rs in answers for r in rs]
    [record] = records
    inserted = {r.name: r.value for r in responses if isinstance(r, milter.InsertHeader)}
    auth_results = ""
    if "Authentication-Results" in inserted:
        auth_results = "Authentication-Results:" + inserted["Authentication-Results"]
    final = responses[-1]
    answer = final.text if isinstance(final, milter.ReplyCode) else type(final).__name__
    return (
        _summary(
            str(record["action"]),
            float(record["score"]),  # type: ignore[arg-type]
            list(record["symbols"]),  # type: ignore[call-overload]
            auth_results,
        ),
        answer,
    )


async def test_a_legitimate_message_gets_one_verdict_everywhere(
    setup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = legitimate()
    direct = await _direct(setup, message)
    assert direct["action"] == "accept"
    assert "dmarc=pass" in str(direct["authentication_results"])
    assert await _cli(setup, message, capsys) == direct
    assert await _http(setup, message) == direct
    through_gateway, code = await _gateway(setup, message)
    assert code == 250
    assert through_gateway == direct
    assert await _milter(setup, message) == (direct, "Continue")


async def test_a_spoof_gets_one_verdict_everywhere(
    setup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    direct = await _direct(setup, spoof())
    assert direct["action"] == "add_header"  # p=quarantine: marked as spam
    assert await _cli(setup, spoof(), capsys) == direct
    assert await _http(setup, spoof()) == direct
    through_gateway, code = await _gateway(setup, spoof())
    assert code == 250
    assert through_gateway == direct
    assert await _milter(setup, spoof()) == (direct, "Continue")


async def test_a_client_claiming_our_name_is_seen_so_everywhere(
    setup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Our own names come from the one settings object for every front end (the CLI once
    knew none of them and the gateway did)."""
    message = legitimate()
    direct = await _direct(setup, message, helo=HOST)
    assert any(str(s).startswith("HELO_") for s in direct["symbols"])  # type: ignore[attr-defined]
    assert await _cli(setup, message, capsys, helo=HOST) == direct
    assert await _http(setup, message, helo=HOST) == direct
    through_gateway, _ = await _gateway(setup, message, helo=HOST)
    assert through_gateway == direct
