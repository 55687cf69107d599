"""The README's screenshot: the dashboard's last day after the known traffic and a day of
made-up transactions (seeded), taken by headless Chromium.

    PYTHONPATH=src python -m tests.dashboard.screenshot docs/dashboard.png
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

from mailwarden.transactions import Check, MemoryStore, TransactionRecord

from .browser import Browser
from .traffic import AUTH, known_traffic

DOMAINS = [
    ("example.com", 0.97),
    ("news.example.org", 0.9),
    ("bank.example", 0.99),
    ("shop.example.net", 0.75),
    ("lists.example.edu", 0.6),
    ("spammy.example", 0.05),
]
SYMBOLS = ["DKIM_VALID", "DMARC_PASS", "SPF_PASS", "IPREV_PASS", "SPF_SOFTFAIL", "DKIM_NONE"]


def made_up_day(now: float, count: int = 1500) -> list[TransactionRecord]:
    rng = random.Random(15)
    records = []
    for n in range(count):
        at = now - rng.random() ** 0.8 * 86400
        domain, rate = rng.choice(DOMAINS)
        passed = rng.random() < rate
        roll = rng.random()
        action, code = (
            ("accept", 0)
            if passed or roll < 0.5
            else ("greylist", 451)
            if roll < 0.7
            else ("add_header", 0)
            if roll < 0.85
            else ("reject", 550)
        )
        client = f"198.51.100.{rng.randrange(1, 40)}" if code == 550 else "192.0.2.1"
        symbols = tuple(rng.sample(SYMBOLS, 3)) + (() if passed else ("DMARC_POLICY_REJECT",))
        records.append(
            TransactionRecord(
                time=at,
                queue_id=f"DEMO{n:06d}",
                client_ip=client,
                sender_domain=domain,
                action=action,
                reply_code=code,
                dmarc="pass" if passed else "fail",
                greylist="deferred" if action == "greylist" else "",
                symbols=symbols,
                checks=(Check("dmarc", "pass" if passed else "fail", ""),),
            )
        )
    return records


async def main(target: Path) -> None:
    store = MemoryStore()
    await store.add(made_up_day(time.time()))
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        async with (
            known_traffic(root, store) as traffic,
            Browser.start(root / "profile", width=1280, height=1300) as browser,
        ):
            await browser.headers(AUTH)
            await browser.open(traffic.url("/?period=day"))
            await browser.screenshot(target)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
