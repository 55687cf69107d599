"""`mailwarden http` on its own shows what the gateway wrote: the gateway records into the
SQLite store of the data directory, and a separate API (its pipeline keeps no transactions)
reads the same file through the settings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import aiohttp

from mailwarden.dashboard import dashboard
from mailwarden.http import HTTPServer
from mailwarden.pipeline import build
from mailwarden.settings import HTTPSettings

from .traffic import AUTH, TOKEN, known_traffic, zone


async def test_a_separate_api_reads_the_gateways_sqlite_store(tmp_path: Path) -> None:
    async with known_traffic(tmp_path, transactions=True) as traffic:
        settings = traffic.pipeline.settings
        assert traffic.pipeline.transactions is not None
        await traffic.pipeline.transactions.flush()
        written = tmp_path / "data" / "transactions.sqlite3"
        assert written.exists()
    alone = build(replace(settings, http=replace(HTTPSettings(), token=TOKEN)), zone())
    assert alone.transactions is None
    async with (
        HTTPServer(alone.settings, alone, ("127.0.0.1", 0), extensions=[dashboard()]) as api,
        aiohttp.ClientSession() as client,
    ):
        host, port = api.address
        url = f"http://{host}:{port}/v1/dashboard?period=hour"
        async with client.get(url, headers=AUTH) as answer:
            assert answer.status == 200
            data = await answer.json()
    await alone.drain()
    assert data["total"] == 8  # what went through the gateway
    assert data["actions"]["reject"] == 1
