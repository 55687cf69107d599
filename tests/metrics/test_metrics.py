"""The metrics every front end gets from the pipeline and the DNS cache, read back from the
Prometheus exposition: a verdict counts its symbols and results and times its checks; a DNS
timeout, a cache hit and a query are counted; the gateway counts its connections, replies and
transactions over a real socket."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

from prometheus_client import REGISTRY
from tests.gateway.helpers import Client, make_config, running
from tests.pipeline.test_recording import SPOOF, legitimate, zone

from mailwarden import metrics
from mailwarden.dns import RdType, StaticResolver, TemporaryFailure
from mailwarden.dns.cache import CachingResolver
from mailwarden.gateway import PipelineChecks
from mailwarden.pipeline import build
from mailwarden.settings import DNSListSettings, GatewaySettings, Settings


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def settings(tmp_path: Path) -> Settings:
    return Settings(gateway=GatewaySettings(data_dir=str(tmp_path)), dnsbl=DNSListSettings(use=()))


async def test_a_verdict_counts_symbols_results_and_times_each_check(tmp_path: Path) -> None:
    pipeline = build(settings(tmp_path), zone(), network_checks=False)
    dkim_pass = value("mailwarden_auth_results_total", method="dkim", result="pass")
    dmarc_fail = value("mailwarden_auth_results_total", method="dmarc", result="fail")
    spf_count = value("mailwarden_check_seconds_count", check="spf")
    dmarc_count = value("mailwarden_check_seconds_count", check="dmarc")
    data_count = value("mailwarden_stage_seconds_count", stage="data")
    good = await pipeline.check(
        legitimate(), ip="127.0.0.1", helo="a.example", mail_from="a@a.example"
    )
    spoof = await pipeline.check(SPOOF, ip="127.0.0.1", helo="x.example", mail_from="x@a.example")
    await pipeline.drain()
    assert value("mailwarden_auth_results_total", method="dkim", result="pass") == dkim_pass + 1
    assert value("mailwarden_auth_results_total", method="dmarc", result="fail") == dmarc_fail + 1
    assert value("mailwarden_check_seconds_count", check="spf") == spf_count + 2
    assert value("mailwarden_check_seconds_count", check="dmarc") == dmarc_count + 2
    assert value("mailwarden_stage_seconds_count", stage="data") == data_count + 2
    for symbol in {s.name for s in (*good.symbols, *spoof.symbols)}:
        assert value("mailwarden_symbols_total", symbol=symbol) >= 1
    assert good.symbols
    assert spoof.symbols


async def test_nothing_is_counted_within_counting_nothing(tmp_path: Path) -> None:
    """`check` runs its verdicts within it: the same verdicts, no figure moved; counting
    resumes after it, an error inside included; every recording function is swapped."""
    pipeline = build(settings(tmp_path), zone(), network_checks=False)
    watched = (
        ("mailwarden_auth_results_total", {"method": "dkim", "result": "pass"}),
        ("mailwarden_check_seconds_count", {"check": "spf"}),
        ("mailwarden_stage_seconds_count", {"stage": "data"}),
        ("mailwarden_dns_cache_total", {"result": "miss"}),
    )
    before = [value(name, **labels) for name, labels in watched]
    with metrics.counting_nothing():
        quiet = await pipeline.check(
            legitimate(), ip="127.0.0.1", helo="a.example", mail_from="a@a.example"
        )
        for name in metrics._RECORDERS:
            assert getattr(metrics, name) is metrics._nothing
    assert [value(name, **labels) for name, labels in watched] == before
    assert quiet.dmarc.result.value == "pass"
    with contextlib.suppress(RuntimeError), metrics.counting_nothing():
        raise RuntimeError
    counted = await pipeline.check(
        legitimate(), ip="127.0.0.1", helo="a.example", mail_from="a@a.example"
    )
    await pipeline.drain()
    assert counted.dmarc == quiet.dmarc
    after = [value(name, **labels) for name, labels in watched]
    assert after[:3] == [b + 1 for b in before[:3]]
    # every public function that records is among those swapped
    recorders = {
        name
        for name in metrics.__all__
        if name not in ("counting_nothing", "exposition", "total", "worker_exited")
        and not name.startswith("use_")
    }
    assert recorders == set(metrics._RECORDERS)


async def test_dns_queries_timeouts_and_cache_hits_are_counted() -> None:
    static = StaticResolver({"a.example": {"TXT": "v=spf1 -all"}})
    static.fail("slow.example", "TXT")
    cache = CachingResolver(static)
    hits = value("mailwarden_dns_cache_total", result="hit")
    misses = value("mailwarden_dns_cache_total", result="miss")
    answers = value("mailwarden_dns_queries_total", rdtype="TXT", outcome="answer")
    timeouts = value("mailwarden_dns_queries_total", rdtype="TXT", outcome="timeout")
    nxdomain = value("mailwarden_dns_queries_total", rdtype="TXT", outcome="nxdomain")
    timed = value("mailwarden_dns_query_seconds_count", rdtype="TXT")
    await cache.resolve("a.example", RdType.TXT)
    await cache.resolve("A.example", RdType.TXT)  # the same name: from the cache
    for _ in range(2):  # a temporary failure is never cached: asked twice
        try:
            await cache.resolve("slow.example", RdType.TXT)
        except TemporaryFailure:
            pass
        else:
            raise AssertionError("the scripted timeout did not happen")
    with contextlib.suppress(Exception):
        await cache.resolve("none.example", RdType.TXT)
    assert value("mailwarden_dns_cache_total", result="hit") == hits + 1
    assert value("mailwarden_dns_cache_total", result="miss") == misses + 4
    assert value("mailwarden_dns_queries_total", rdtype="TXT", outcome="answer") == answers + 1
    assert value("mailwarden_dns_queries_total", rdtype="TXT", outcome="timeout") == timeouts + 2
    assert value("mailwarden_dns_queries_total", rdtype="TXT", outcome="nxdomain") == nxdomain + 1
    assert value("mailwarden_dns_query_seconds_count", rdtype="TXT") == timed + 4


async def _transaction(address: tuple[str, int], message: bytes) -> int:
    client = await Client.connect(address)
    assert (await client.cmd("EHLO mail.a.example"))[0] == 250
    assert (await client.cmd("MAIL FROM:<x@a.example>"))[0] == 250
    assert (await client.cmd("RCPT TO:<bob@example.net>"))[0] == 250
    assert (await client.cmd("DATA"))[0] == 354
    await client.send(message + b".\r\n")
    code, _ = await client.reply()
    await client.cmd("QUIT")
    return code


async def test_the_gateway_counts_connections_replies_and_transactions(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    base = Settings(gateway=replace(config), dnsbl=DNSListSettings(use=()))
    pipeline = build(base, zone())
    accepted = value(
        "mailwarden_transactions_total", action="accept", stage="data", code="", enhanced=""
    )
    ok = value("mailwarden_replies_total", frontend="gateway", code="250")
    answered = value("mailwarden_answer_seconds_count", frontend="gateway", stage="ehlo")
    async with running(config, PipelineChecks(pipeline)) as gateway:
        client = await Client.connect(gateway.address)
        assert value("mailwarden_open_connections", frontend="gateway") >= 1
        await client.cmd("QUIT")
        assert await _transaction(gateway.address, legitimate()) == 250
    await pipeline.drain()
    assert value("mailwarden_open_connections", frontend="gateway") == 0
    assert (
        value("mailwarden_transactions_total", action="accept", stage="data", code="", enhanced="")
        == accepted + 1
    )
    assert value("mailwarden_replies_total", frontend="gateway", code="250") >= ok + 4
    assert (
        value("mailwarden_answer_seconds_count", frontend="gateway", stage="ehlo") == answered + 1
    )


def test_exposition_is_the_prometheus_text_format() -> None:
    metrics.transaction("reject", "rcpt", 550, "5.7.1")
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert (
        'mailwarden_transactions_total{action="reject",code="550",enhanced="5.7.1",stage="rcpt"}'
        in text
    )


def test_the_fast_path_counts_as_the_public_calls() -> None:
    """The hot path skips prometheus-client's per-call checks: its figures must be exactly
    those of `observe` and `inc` (an upgrade changing the internals fails here)."""
    from prometheus_client import CollectorRegistry, Histogram

    amounts = [0.0, 0.0005, 0.00051, 0.001, 0.3, 10.0, 20.0, 20.5, 1e9, 0.025, 0.0249999]
    reference = Histogram(
        "probe_seconds",
        "reference",
        buckets=metrics._CHECK_BUCKETS,
        registry=CollectorRegistry(),
    )
    for amount in amounts:
        metrics.check_seconds("probe", amount)
        reference.observe(amount)
    want = {
        s.labels["le"]: s.value
        for s in reference.collect()[0].samples
        if s.name.endswith("_bucket")
    }
    for le, count in want.items():
        assert value("mailwarden_check_seconds_bucket", check="probe", le=le) == count, le
    assert value("mailwarden_check_seconds_count", check="probe") == len(amounts)
    assert value("mailwarden_check_seconds_sum", check="probe") == sum(amounts)
    answers = Histogram(
        "probe_answer_seconds", "reference", buckets=metrics._ANSWER_BUCKETS,
        registry=CollectorRegistry(),
    )  # fmt: skip
    for amount in amounts:
        metrics.observe_answer("probe", "data", amount)
        answers.observe(amount)
    for sample in answers.collect()[0].samples:
        if sample.name.endswith("_bucket"):
            le = sample.labels["le"]
            got = value("mailwarden_answer_seconds_bucket", frontend="probe", stage="data", le=le)
            assert got == sample.value, le
    before = value("mailwarden_replies_total", frontend="probe", code="250")
    metrics.reply_sent("probe", 250)
    metrics.reply_sent("probe", 250)
    assert value("mailwarden_replies_total", frontend="probe", code="250") == before + 2
    before = value("mailwarden_symbols_total", symbol="PROBE")
    metrics.verdict_seen(["PROBE", "PROBE"], [])
    assert value("mailwarden_symbols_total", symbol="PROBE") == before + 2


async def test_the_gauges_read_the_greylist_and_the_dns_lists(tmp_path: Path) -> None:
    import asyncio

    from mailwarden.greylist import MemoryStore

    greylist = MemoryStore()
    base = Settings(
        gateway=GatewaySettings(data_dir=str(tmp_path)),
        dnsbl=DNSListSettings(use=("psbl",)),
    )
    pipeline = build(base, zone(), greylist=greylist)
    assert pipeline.greylister is not None
    for n in range(3):
        await pipeline.greylister.check("192.0.2.1", f"s@d{n}.example", "r@b.example")
    stop = asyncio.Event()
    loop = asyncio.ensure_future(pipeline.health_loop(stop, gauge_interval=0.01))
    for _ in range(100):
        if value("mailwarden_greylist_entries", state="pending") == 3:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(loop, 10)
    assert value("mailwarden_greylist_entries", state="pending") == 3
    assert value("mailwarden_greylist_entries", state="passed") == 0
    # psbl's RFC 5782 test entries are not in the zone: the health check marked it unhealthy
    await pipeline.update_gauges()
    assert REGISTRY.get_sample_value("mailwarden_dns_list_healthy", {"list": "psbl"}) == 0.0
    await pipeline.drain()
