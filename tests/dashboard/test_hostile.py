"""Hostile requests to the dashboard's routes (any query, any body, any cookie, with and
without the token) never give a 500 or a traceback; errors are problem JSON, pages HTML."""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .traffic import AUTH, known_traffic

PROBLEM = "application/problem+json"
_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
_KEYS = st.sampled_from(["period", "lookup", "id", "x", "", "period ", "token"])


@pytest.fixture(scope="module")
def dashboard_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """One gateway and API after the known traffic, in a thread of its own (hypothesis calls
    are synchronous)."""
    root: Path = tmp_path_factory.mktemp("hostile-dashboard")
    ready: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        async with known_traffic(root) as traffic:
            ready["address"] = traffic.api.address
            ready["stop"] = stop
            ready["loop"] = asyncio.get_running_loop()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    for _ in range(400):
        if "address" in ready:
            break
        thread.join(0.05)
    yield ready["address"]
    ready["loop"].call_soon_threadsafe(ready["stop"].set)
    thread.join(20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.sampled_from(["/", "/reports", "/login", "/v1/dashboard", "/v1/transactions"]),
    query=st.lists(st.tuples(_KEYS, _TEXT), max_size=5),
    body=st.one_of(st.binary(max_size=300), _TEXT.map(lambda t: ("token=" + t).encode())),
    content_type=st.sampled_from(
        ["application/x-www-form-urlencoded", "application/json", "text/plain", "", "a/b"]
    ),
    token=st.booleans(),
    cookie=st.sampled_from(["", "mailwarden_dashboard=x", "mailwarden_dashboard=" + "a" * 5000]),
)
def test_hostile_requests_never_give_a_500(
    dashboard_api: tuple[str, int],
    method: str,
    path: str,
    query: list[tuple[str, str]],
    body: bytes,
    content_type: str,
    token: bool,
    cookie: str,
) -> None:
    host, port = dashboard_api
    connection = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Content-Type": content_type, **(AUTH if token else {})}
    if cookie:
        headers["Cookie"] = cookie
    target = path + ("?" + urlencode(query) if query else "")
    try:
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    assert response.status < 500, (response.status, data[:300])
    kind = response.getheader("Content-Type", "")
    if response.status >= 400 and response.status != 401:
        assert kind == PROBLEM, (response.status, data[:300])
    assert b"Traceback" not in data
    assert b"<script" not in data
