"""A transactions store that is down: the dashboard answers 503 (problem JSON), /health says
why, and the mail still flows (the gateway's answers do not depend on the store)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from mailwarden.transactions import MemoryStore, Summary, TransactionRecord

from .traffic import AUTH, known_traffic


class DownStore(MemoryStore):
    """Accepts nothing, answers nothing."""

    async def add(self, records: list[TransactionRecord]) -> None:
        raise OSError("store down")

    async def summary(self, since: float, until: float, bucket: float, *, top: int = 10) -> Summary:
        raise OSError("store down")

    async def lookup(self, key: str) -> TransactionRecord | None:
        raise OSError("store down")

    async def count(self) -> int:
        raise OSError("store down")


async def test_mail_flows_and_the_dashboard_says_the_store_is_down(tmp_path: Path) -> None:
    async with known_traffic(tmp_path, DownStore()) as traffic:
        assert traffic.codes["legitimate"] == [250, 250, 250]
        assert traffic.codes["spoof"] == [550]
        async with aiohttp.ClientSession() as client:
            for path in ("/v1/dashboard", "/v1/transactions?id=x", "/"):
                async with client.get(traffic.url(path), headers=AUTH) as answer:
                    assert answer.status == 503, path
                    assert answer.content_type == "application/problem+json"
