"""The dashboard in a real browser: headless Chromium loads the page from the HTTP API of a
gateway that handled known traffic; every number the browser shows is the API's, the page
asks for nothing but itself (no CDN, no script), markup from mail stays text in the DOM, and a
screenshot is saved under the test's temporary directory. The browser signs in through the
form, as an administrator does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from .browser import Browser, chromium
from .test_dashboard import value_at
from .traffic import AUTH, HOSTILE_SUBJECT, TOKEN, known_traffic

FIGURES = """Array.from(document.querySelectorAll('[data-key]'))
  .map(e => [e.getAttribute('data-key'), e.textContent.trim()])"""


async def test_the_page_in_chromium_shows_the_apis_numbers(tmp_path: Path) -> None:
    chromium()  # skips (or fails under CI) naming the package when missing
    async with known_traffic(tmp_path) as traffic:
        async with aiohttp.ClientSession() as client:
            url = traffic.url("/v1/dashboard?period=hour")
            async with client.get(url, headers=AUTH) as answer:
                data: dict[str, Any] = await answer.json()
            url = traffic.url("/v1/transactions?id=spoof@x.example")
            async with client.get(url, headers=AUTH) as answer:
                record = await answer.json()
        async with Browser.start(tmp_path / "profile") as browser:
            # signing in as an administrator does: the form, then the page with its cookie
            await browser.open(traffic.url("/"))
            assert await browser.evaluate("document.forms[0].action") == traffic.url("/login")
            await browser.submit(
                "document.querySelector('input[name=token]').value = "
                f"{json.dumps(TOKEN)}; document.forms[0].submit()"
            )
            assert await browser.evaluate("location.pathname") == "/"
            assert await browser.evaluate("document.querySelectorAll('[data-key]').length") > 0
            page = traffic.url("/?period=hour&lookup=" + record["queue_id"])
            await browser.open(page)
            shown = dict(await browser.evaluate(FIGURES))
            assert len(shown) >= 20
            for key, text in shown.items():
                expected = value_at(data, key)
                assert text == ("–" if expected is None else str(expected)), key
            assert shown["total"] == "9"
            assert shown["actions.reject"] == "2"
            # the looked-up transaction, every check with its reason
            checks = await browser.evaluate(
                "Array.from(document.querySelectorAll('table.checks tr')).slice(1)"
                ".map(r => Array.from(r.cells).map(c => c.textContent))"
            )
            assert checks == [[c["name"], c["result"], c["reason"]] for c in record["checks"]]
            # the charts are drawn: one bar per action and bucket with transactions
            bars = await browser.evaluate("document.querySelectorAll('svg.timeline rect').length")
            cells = sum(len(row["counts"]) for row in data["timeline"])
            assert bars == cells
            assert bars > 0
            # nothing but the page itself was requested: no CDN, no script, no image
            assert browser.requested() == [page]
            assert await browser.evaluate("document.scripts.length") == 0
            shot = await browser.screenshot(tmp_path / "dashboard.png")
            assert shot.stat().st_size > 10_000
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            # a hostile Subject is text in the DOM, not markup
            await browser.open(traffic.url("/?lookup=" + "HOSTILE0001"))
            subject = await browser.evaluate(
                "document.querySelector('[data-field=\"Subject\"]').textContent"
            )
            assert subject == HOSTILE_SUBJECT
            assert await browser.evaluate("document.querySelectorAll('script, img').length") == 0
            await browser.screenshot(tmp_path / "hostile.png")
