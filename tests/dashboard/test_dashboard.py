"""The dashboard over real sockets, after known traffic through the real gateway: the JSON
numbers are the traffic's, the page shows the same numbers (every `data-key`), a transaction
is found by queue id and Message-ID with every check, markup from mail is escaped, and bad
queries are 400s."""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from .traffic import (
    AUTH,
    HOSTILE_DOMAIN,
    HOSTILE_ID,
    HOSTILE_SUBJECT,
    HOSTILE_SYMBOL,
    known_traffic,
)


class Figures(HTMLParser):
    """Every element with a data-key, and its text; every tag and attribute seen."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        key = dict(attrs).get("data-key")
        self._open.append(key)
        if key is not None:
            self.figures[key] = ""

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for key in self._open:
            if key is not None:
                self.figures[key] += data


def figures_of(html: str) -> Figures:
    parser = Figures()
    parser.feed(html)
    return parser


def value_at(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def assert_page_matches(html: str, data: dict[str, Any]) -> int:
    """Every number on the page is the API's; how many were compared."""
    found = figures_of(html).figures
    assert found, "no figures on the page"
    for key, shown in found.items():
        expected = value_at(data, key)
        assert shown.strip() == ("–" if expected is None else str(expected)), key
    return len(found)


async def test_numbers_match_the_traffic_and_the_page(tmp_path: Path) -> None:
    async with known_traffic(tmp_path) as traffic, aiohttp.ClientSession() as client:
        assert traffic.codes == {
            "legitimate": [250, 250, 250],
            "spoof": [550],
            "quarantine": [250],
            "greylisted": [451, 250],
            "hostile": [250],
        }
        async with client.get(traffic.url("/v1/dashboard?period=hour"), headers=AUTH) as answer:
            assert answer.status == 200
            data = await answer.json()
        async with client.get(traffic.url("/?period=hour"), headers=AUTH) as answer:
            assert answer.status == 200
            assert "script-src" not in answer.headers["Content-Security-Policy"]
            assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
            html = await answer.text()
        async with client.get(traffic.url("/?period=week"), headers=AUTH) as answer:
            week_html = await answer.text()
        async with client.get(traffic.url("/v1/dashboard?period=week"), headers=AUTH) as answer:
            week = await answer.json()
    # 8 through the gateway + 1 written to the store directly
    assert data["total"] == 9
    assert data["actions"]["accept"] == 4  # 3 legitimate and the hostile one
    assert data["actions"]["reject"] == 2
    assert data["actions"]["add_header"] == 1
    assert data["actions"]["greylist"] == 2  # deferred, then passed on the retry
    assert sum(row["total"] for row in data["timeline"]) == 9
    assert len(data["timeline"]) == 12
    domains = {d["domain"]: d for d in data["top_sender_domains"]}
    assert domains["a.example"]["messages"] == 5
    assert domains["a.example"]["dmarc_pass"] == 4
    assert domains["a.example"]["dmarc_pass_rate"] == 0.8
    assert domains["bank.example"]["dmarc_pass"] == 0
    assert data["refused_clients"][0] == {"client_ip": "127.0.0.1", "refused": 1}
    assert data["greylist"]["deferred_in_period"] == 1
    assert data["greylist"]["passed_in_period"] == 1
    assert data["greylist"]["passed"] == 1
    assert data["greylist"]["auto_allowed"] == 1
    assert data["dns"]["queries"] > 0
    symbols = {s["symbol"]: s["count"] for s in data["top_symbols"]}
    assert symbols.get("DMARC_POLICY_REJECT", 0) >= 1 or symbols
    assert assert_page_matches(html, data) >= 20
    assert assert_page_matches(week_html, week) >= 20
    assert week["total"] == 9


async def test_a_transaction_shows_every_check(tmp_path: Path) -> None:
    async with known_traffic(tmp_path) as traffic, aiohttp.ClientSession() as client:
        url = traffic.url("/v1/transactions?id=" + quote("<spoof@x.example>"))
        async with client.get(url, headers=AUTH) as answer:
            assert answer.status == 200
            record = await answer.json()
        assert record["action"] == "reject"
        assert record["reply_code"] == 550
        checks = {c["name"]: c for c in record["checks"]}
        assert checks["dmarc"]["result"] == "fail"
        assert checks["dmarc"]["reason"]
        assert checks["spf"]["result"] in ("none", "neutral", "fail", "softfail")
        assert checks["policy"]["result"] == "reject"
        # by queue id too, and on the page
        queue_id = record["queue_id"]
        async with client.get(traffic.url(f"/v1/transactions?id={queue_id}"), headers=AUTH) as a:
            assert (await a.json()) == record
        async with client.get(traffic.url(f"/?lookup={queue_id}"), headers=AUTH) as answer:
            html = await answer.text()
        assert 'id="transaction"' in html
        for check in record["checks"]:
            assert f"<td>{check['name']}</td>" in html
        async with client.get(traffic.url("/v1/transactions?id=nothing"), headers=AUTH) as a:
            assert a.status == 404
            assert a.content_type == "application/problem+json"
        async with client.get(traffic.url("/?lookup=nothing"), headers=AUTH) as answer:
            assert "not found" in await answer.text()


async def test_markup_from_mail_is_shown_as_text(tmp_path: Path) -> None:
    async with known_traffic(tmp_path) as traffic, aiohttp.ClientSession() as client:
        pages = []
        for lookup in (HOSTILE_ID, "HOSTILE0001"):
            url = traffic.url("/?period=hour&lookup=" + quote(lookup))
            async with client.get(url, headers=AUTH) as answer:
                assert answer.status == 200
                pages.append(await answer.text())
    for html in pages:
        parsed = figures_of(html)
        tags = {tag for tag, _ in parsed.tags}
        assert "script" not in tags
        assert "img" not in tags
        assert "u" not in tags
        assert not any(name.startswith("on") for _, attrs in parsed.tags for name, _ in attrs), (
            "an event handler attribute came through"
        )
        assert "<script>alert" not in html
        assert HOSTILE_SYMBOL not in html
    gateway_page, stored_page = pages
    assert unescape(re.sub(r"<[^>]+>", "", gateway_page)).count(HOSTILE_SUBJECT) >= 1
    assert "&lt;svg/onload=alert(&#x27;symbol&#x27;)&gt;" in stored_page
    assert "&lt;b&gt;evil&lt;/b&gt;.example" in stored_page
    assert HOSTILE_DOMAIN not in stored_page


@pytest.mark.parametrize(
    "path",
    [
        "/?period=year",
        "/?period=day&period=week",
        "/?colour=red",
        "/v1/dashboard?period=",
        "/v1/transactions",
        "/v1/transactions?id=" + "x" * 2000,
        "/v1/transactions?id=%00",
        "/reports?x=1",
    ],
)
async def test_bad_queries_are_400(tmp_path: Path, path: str) -> None:
    async with (
        known_traffic(tmp_path) as traffic,
        aiohttp.ClientSession() as client,
        client.get(traffic.url(path), headers=AUTH) as answer,
    ):
        assert answer.status == 400, await answer.text()
        assert answer.content_type == "application/problem+json"


async def test_the_dashboard_needs_the_token_and_is_documented(tmp_path: Path) -> None:
    async with known_traffic(tmp_path) as traffic, aiohttp.ClientSession() as client:
        for path in ("/", "/reports", "/v1/dashboard", "/v1/transactions?id=x"):
            async with client.get(traffic.url(path)) as answer:
                assert answer.status == 401
        async with client.get(traffic.url("/reports"), headers=AUTH) as answer:
            assert answer.status == 200
            assert "DMARC reports" in await answer.text()
        async with client.get(traffic.url("/openapi.json")) as answer:
            document = await answer.json()
    for path in ("/", "/reports", "/v1/dashboard", "/v1/transactions"):
        assert "get" in document["paths"][path]
    schema = document["paths"]["/v1/dashboard"]["get"]["responses"]["200"]
    assert "top_sender_domains" in schema["content"]["application/json"]["schema"]["properties"]


async def test_health_asks_the_transactions_store(tmp_path: Path) -> None:
    from .test_transactions_down import DownStore

    async with (
        known_traffic(tmp_path) as traffic,
        aiohttp.ClientSession() as client,
        client.get(traffic.url("/health")) as answer,
    ):
        assert answer.status == 200
        assert (await answer.json())["checks"]["transactions"] == "ok"
    async with known_traffic(tmp_path / "down", DownStore()) as traffic:
        async with aiohttp.ClientSession() as client, client.get(traffic.url("/health")) as answer:
            assert answer.status == 503
            assert "down" in (await answer.json())["checks"]["transactions"]
        async with (
            aiohttp.ClientSession() as client,
            client.get(traffic.url("/v1/dashboard"), headers=AUTH) as answer,
        ):
            assert answer.status == 503
            assert answer.content_type == "application/problem+json"


async def test_a_reloaded_pipeline_is_the_one_shown(tmp_path: Path) -> None:
    """SIGHUP installs a new pipeline in the API: the dashboard reads it from then on."""
    import time

    from mailwarden.http.app import CONTEXT
    from mailwarden.pipeline import build
    from mailwarden.transactions import MemoryStore, TransactionRecord

    async with known_traffic(tmp_path) as traffic, aiohttp.ClientSession() as client:
        fresh = MemoryStore()
        await fresh.add([TransactionRecord(time=time.time(), queue_id="AFTER0001")])
        context = traffic.api.app[CONTEXT]
        old = context.pipeline
        context.pipeline = build(old.settings, old.resolver, transactions=fresh)
        async with client.get(traffic.url("/v1/dashboard?period=hour"), headers=AUTH) as answer:
            assert (await answer.json())["total"] == 1
        async with client.get(traffic.url("/v1/transactions?id=AFTER0001"), headers=AUTH) as a:
            assert a.status == 200
        await context.pipeline.drain()
        context.pipeline = old
