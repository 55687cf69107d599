"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol with aiohttp's
WebSocket client: no Selenium, no Playwright.

    async with Browser.start(tmp_path) as browser:
        await browser.headers({"Authorization": "Bearer ..."})
        await browser.open("http://127.0.0.1:8025/")
        texts = await browser.evaluate("...")
        await browser.screenshot(tmp_path / "page.png")
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from tests.testdata import unavailable

STARTUP = 30.0
COMMAND_TIMEOUT = 30.0


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    unavailable("headless Chromium is not installed (Debian: apt-get install chromium)")


class Browser:
    """One page of a headless Chromium, spoken to through the DevTools protocol."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls, profile: Path, *, width: int = 1280, height: int = 1600
    ) -> AsyncIterator[Browser]:
        program = chromium()
        process = await asyncio.create_subprocess_exec(
            program,
            "--headless=new",
            "--no-sandbox",  # tests run as root in a container
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--metrics-recording-only",
            f"--window-size={width},{height}",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            endpoint = await asyncio.wait_for(_devtools_endpoint(process), STARTUP)
            port = re.search(r":(\d+)/", endpoint)
            assert port is not None, endpoint
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port.group(1)}/json/list") as answer:
                    targets = await answer.json(content_type=None)
                page = next(t for t in targets if t.get("type") == "page")
                async with session.ws_connect(
                    page["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024
                ) as ws:
                    browser = cls(ws)
                    await browser.call("Page.enable")
                    await browser.call("Network.enable")
                    yield browser
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer (events that arrive meanwhile are kept)."""
        ident = next(self._ids)
        await self.ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        async with asyncio.timeout(COMMAND_TIMEOUT):
            while True:
                message = await self.ws.receive()
                if message.type is not aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"DevTools connection ended: {message.type}")
                data = json.loads(message.data)
                if data.get("id") == ident:
                    if "error" in data:
                        raise RuntimeError(f"{method}: {data['error']}")
                    result: dict[str, Any] = data.get("result", {})
                    return result
                self.events.append(data)

    async def headers(self, headers: dict[str, str]) -> None:
        await self.call("Network.setExtraHTTPHeaders", headers=headers)

    async def open(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self.events.clear()
        await self.call("Page.navigate", url=url)
        await self._loaded()

    async def _loaded(self) -> None:
        async with asyncio.timeout(COMMAND_TIMEOUT):
            while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
                message = await self.ws.receive()
                if message.type is not aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"DevTools connection ended: {message.type}")
                self.events.append(json.loads(message.data))

    async def submit(self, expression: str) -> None:
        """Run `expression` (which submits a form) and wait for the next page's load."""
        self.events.clear()
        await self.call("Runtime.evaluate", expression=expression)
        await self._loaded()

    def requested(self) -> list[str]:
        """The URLs the page asked for since it was opened."""
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> Path:
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
        return path


async def _devtools_endpoint(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    while True:
        line = await process.stderr.readline()
        if not line:
            raise RuntimeError("chromium ended before opening its DevTools endpoint")
        text = line.decode("utf-8", "replace")
        if "DevTools listening on" in text:
            return text.split("DevTools listening on", 1)[1].strip()
