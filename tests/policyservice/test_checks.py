"""The policy service's answers, request by request, on a pipeline over a static zone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.policyservice.helpers import BAD_IP, LISTED_IP, request, resolver, settings

from mailwarden.greylist import MemoryStore
from mailwarden.pipeline import build
from mailwarden.policyservice import MALFORMED, PolicyChecks, parse_block
from mailwarden.ratelimit import MemoryCounterStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def checks(tmp_path: Path, service: str = "", extra: str = "", **kw: object) -> PolicyChecks:
    config = settings(tmp_path, service, extra)
    clock = kw.get("clock", Clock())
    assert callable(clock)
    pipeline = build(config, resolver(), greylist=MemoryStore(), clock=clock)
    counters = MemoryCounterStore() if config.policy_service.rate_limits else None
    return PolicyChecks(pipeline, config.policy_service, counters)


async def answer(service: PolicyChecks, **attributes: str) -> str:
    block = parse_block(request(**attributes).split(b"\n")[:-2])
    return (await service.answer(block)).action


async def test_spf_pass_prepends_received_spf_once_per_message(tmp_path: Path) -> None:
    service = checks(tmp_path, 'greylist = "off"')
    first = await answer(service, recipient="bob@b.example")
    assert first.startswith("PREPEND Received-SPF: pass (mx.b.example: ")
    assert "client-ip=192.0.2.10" in first
    assert "envelope-from=" in first
    assert "identity=mailfrom" in first
    # the second recipient of the same message: no second field
    assert await answer(service, recipient="carol@b.example") == "DUNNO"
    # the next message (another instance) gets its own
    again = await answer(service, instance="1a2b.5f3e1c2d.2")
    assert again.startswith("PREPEND Received-SPF: pass")


async def test_spf_fail_refused_in_reject_mode(tmp_path: Path) -> None:
    service = checks(tmp_path, 'greylist = "off"\nspf = "reject"')
    action = await answer(service, client_address=BAD_IP)
    assert action.startswith("550 5.7.23 SPF fail: ")
    assert "a.example" in action


async def test_spf_fail_only_noted_in_prepend_mode(tmp_path: Path) -> None:
    service = checks(tmp_path, 'greylist = "off"\nspf = "prepend"')
    action = await answer(service, client_address=BAD_IP)
    assert action.startswith("PREPEND Received-SPF: fail ")


async def test_spf_temperror_deferred_in_reject_mode(tmp_path: Path) -> None:
    config = settings(tmp_path, 'greylist = "off"\nspf = "reject"')
    static = resolver()
    static.fail("flaky.example", "TXT")
    pipeline = build(config, static, greylist=MemoryStore())
    service = PolicyChecks(pipeline, config.policy_service)
    block = parse_block(request(sender="x@flaky.example").split(b"\n")[:-2])
    action = (await service.answer(block)).action
    assert action.startswith("DEFER_IF_PERMIT 4.7.24 ")


async def test_null_sender_checks_the_helo_identity(tmp_path: Path) -> None:
    service = checks(tmp_path, 'greylist = "off"\nspf = "reject"')
    # RFC 7208 §2.4: with MAIL FROM:<>, postmaster@HELO is checked; mail.a.example has no SPF
    action = await answer(service, sender="", client_address=BAD_IP)
    assert action.startswith("PREPEND Received-SPF: none ")
    assert "postmaster@mail.a.example" in action


async def test_spf_off_says_nothing(tmp_path: Path) -> None:
    service = checks(tmp_path, 'greylist = "off"\nspf = "off"')
    assert await answer(service) == "DUNNO"


async def test_dns_list_hit_refused(tmp_path: Path) -> None:
    service = checks(tmp_path, 'greylist = "off"')
    action = await answer(service, client_address=LISTED_IP)
    assert action == "554 5.7.1 Service unavailable; client blocked (TESTBL_LISTED)"


async def test_dns_lists_can_be_turned_off(tmp_path: Path) -> None:
    service = checks(tmp_path, 'greylist = "off"\ndnsbl = false\nspf = "off"')
    assert await answer(service, client_address=LISTED_IP) == "DUNNO"


async def test_greylisting_always_defers_then_passes_on_retry(tmp_path: Path) -> None:
    clock = Clock()
    service = checks(tmp_path, 'greylist = "always"', clock=clock)
    first = await answer(service, client_address=BAD_IP, sender="x@soft.example")
    assert first.startswith("DEFER_IF_PERMIT 4.7.1 Greylisted"), first
    clock.now += 30  # too early: min_delay is 60 s
    early = await answer(service, client_address=BAD_IP, sender="x@soft.example")
    assert early.startswith("DEFER_IF_PERMIT 4.7.1 "), early
    clock.now += 60
    retry = await answer(service, client_address=BAD_IP, sender="x@soft.example")
    assert retry.startswith("PREPEND Received-SPF: softfail"), retry


async def test_greylisting_by_score_leaves_clean_mail_alone(tmp_path: Path) -> None:
    service = checks(tmp_path, 'greylist = "score"')
    clean = await answer(service)
    assert clean.startswith("PREPEND Received-SPF: pass")
    # SPF fail, no reverse name: the RCPT-time score reaches the greylist threshold
    suspicious = await answer(service, client_address=BAD_IP, instance="other")
    assert suspicious.startswith("DEFER_IF_PERMIT 4.7.1 "), suspicious


async def test_authenticated_senders_are_not_inbound_mail(tmp_path: Path) -> None:
    service = checks(tmp_path, 'greylist = "always"\nspf = "reject"')
    assert await answer(service, client_address=BAD_IP, sasl_username="alice") == "DUNNO"


async def test_other_states_get_dunno(tmp_path: Path) -> None:
    service = checks(tmp_path, 'greylist = "always"\nspf = "reject"')
    for state in ("CONNECT", "EHLO", "MAIL", "DATA", "VRFY", "ETRN", ""):
        assert await answer(service, protocol_state=state, client_address=BAD_IP) == "DUNNO"


async def test_rate_limits_at_end_of_message(tmp_path: Path) -> None:
    extra = "[submission.rate.user]\nmessages_per_minute = 2\nrecipients_per_day = 5\n"
    service = checks(tmp_path, "rate_limits = true", extra)
    eom = {"protocol_state": "END-OF-MESSAGE", "sasl_username": "alice", "recipient_count": "2"}
    assert await answer(service, **eom) == "DUNNO"
    assert await answer(service, **eom) == "DUNNO"
    third = await answer(service, **eom)
    assert third.startswith("451 4.7.1 Rate limit reached (alice may send 2 messages a minute")
    other = await answer(service, **{**eom, "sasl_username": "bob", "recipient_count": "6"})
    assert other.startswith("451 4.7.1 Rate limit reached (bob may send to 5 recipients a day")
    # unauthenticated mail is not charged
    assert await answer(service, **{**eom, "sasl_username": ""}) == "DUNNO"


async def test_rate_limits_off_by_default(tmp_path: Path) -> None:
    service = checks(tmp_path)
    eom = {"protocol_state": "END-OF-MESSAGE", "sasl_username": "alice", "recipient_count": "9"}
    for _ in range(50):
        assert await answer(service, **eom) == "DUNNO"


@pytest.mark.parametrize(
    "attributes",
    [
        {"client_address": "not-an-ip"},
        {"client_address": "999.1.1.1"},
        {"client_address": ""},
        {"request": "something_else"},
    ],
)
async def test_unusable_requests_are_deferred(tmp_path: Path, attributes: dict[str, str]) -> None:
    service = checks(tmp_path)
    assert await answer(service, **attributes) == MALFORMED


async def test_recipient_count_not_a_number(tmp_path: Path) -> None:
    service = checks(tmp_path, "rate_limits = true")
    eom = {"protocol_state": "END-OF-MESSAGE", "sasl_username": "a", "recipient_count": "x"}
    assert await answer(service, **eom) == MALFORMED


async def test_silent_dns_gives_dunno_within_the_deadline(tmp_path: Path) -> None:
    extra = "[deadlines]\nrcpt = 0.5\nmail = 5\nconnect = 5\nhelo = 5\n"
    config = settings(tmp_path, 'greylist = "always"\nspf = "reject"', extra)
    static = resolver()
    static.fail("slow.example", None, delay=3.0)
    pipeline = build(config, static, greylist=MemoryStore())
    service = PolicyChecks(pipeline, config.policy_service)
    block = parse_block(request(sender="x@slow.example").split(b"\n")[:-2])
    result = await service.answer(block)
    assert result.action == "DUNNO"
    assert "did not finish" in result.reason


class BrokenStore(MemoryStore):
    async def attempt(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        raise ConnectionError("the store is down")


async def test_a_failing_store_defers(tmp_path: Path) -> None:
    config = settings(tmp_path, 'greylist = "always"')
    pipeline = build(config, resolver(), greylist=BrokenStore())
    service = PolicyChecks(pipeline, config.policy_service)
    block = parse_block(request().split(b"\n")[:-2])
    result = await service.answer(block)
    assert result.action == "DEFER_IF_PERMIT 4.3.0 Temporary failure, please try again later"
    assert "the store is down" in result.reason


async def test_the_gateways_greylist_store(tmp_path: Path) -> None:
    """build(greylist=True): the SQLite store of the data directory, the one the gateway and
    `mailwarden greylist` use, with the same keys."""
    import contextlib
    import io
    import json

    from mailwarden.cli import run

    config = settings(tmp_path, 'greylist = "always"')
    pipeline = build(config, resolver(), greylist=True)
    service = PolicyChecks(pipeline, config.policy_service)
    block = parse_block(request(client_address=BAD_IP, sender="x@soft.example").split(b"\n")[:-2])
    assert (await service.answer(block)).action.startswith("DEFER_IF_PERMIT 4.7.1 ")
    assert pipeline.greylister is not None
    await pipeline.greylister.store.close()
    out = io.StringIO()
    argv = ["greylist", "list", "--config", str(tmp_path / "mailwarden.toml"), "--json"]
    with contextlib.redirect_stdout(out):
        code = await asyncio.to_thread(run, argv)  # the command runs its own event loop
    assert code == 0
    entries = json.loads(out.getvalue())["entries"]
    assert len(entries) == 1
    assert entries[0]["origin"] == "net:198.51.100.0/24"  # the gateway's key: the /24
    assert entries[0]["sender"] == "x@soft.example"
    assert entries[0]["recipient"] == "bob@b.example"
    assert entries[0]["state"] == "pending"
