"""Signing a browser in: the form takes the token once and sets a cookie that holds a key
derived from it (never the token); a wrong token, a forged cookie, a hostile form and a
server without a token are refused."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwarden.dashboard.routes import COOKIE, session_key

from .traffic import AUTH, TOKEN, known_traffic

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_the_form_signs_in_with_a_derived_cookie(tmp_path: Path) -> None:
    async with known_traffic(tmp_path) as traffic:
        # a jar that keeps cookies of an IP address (aiohttp's default refuses them)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
            async with client.get(traffic.url("/")) as answer:
                assert answer.status == 401
                assert 'action="/login"' in await answer.text()
            async with client.post(
                traffic.url("/login"), data={"token": "wrong-token-wrong-token"}
            ) as answer:
                assert answer.status == 401
                assert "not the token" in await answer.text()
            async with client.post(
                traffic.url("/login"), data={"token": TOKEN}, allow_redirects=False
            ) as answer:
                assert answer.status == 303
                assert answer.headers["Location"] == "/"
                cookie = answer.cookies[COOKIE]
                assert cookie.value == session_key(TOKEN)
                assert TOKEN not in answer.headers["Set-Cookie"]
                assert cookie["httponly"]
                assert cookie["samesite"] == "Strict"
            async with client.get(traffic.url("/?period=week")) as answer:
                assert answer.status == 200
                assert "Verdicts over time" in await answer.text()
            async with client.get(traffic.url("/reports")) as answer:
                assert answer.status == 200
            # the cookie opens the pages only: the API still wants the bearer token
            async with client.get(traffic.url("/v1/dashboard")) as answer:
                assert answer.status == 401
            async with client.get(traffic.url("/v1/settings")) as answer:
                assert answer.status == 401
        for cookie in ("0" * 64, TOKEN):  # forged; the token itself is not the cookie
            async with (
                aiohttp.ClientSession(
                    cookies={COOKIE: cookie}, cookie_jar=aiohttp.CookieJar(unsafe=True)
                ) as other,
                other.get(traffic.url("/")) as answer,
            ):
                assert answer.status == 401


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"token=" + b"x" * 5000, FORM, 413),
        (b'{"token": "x"}', {"Content-Type": "application/json"}, 415),
        (b"", FORM, 401),
        (b"token=%ff%fe", FORM, 401),
        (b"token=a&token=b&x=1&y=2&z=3&w=4", FORM, 400),
        (b"token=a&token=b", FORM, 400),
        (b"x=1", FORM, 400),
        (b"token=" + TOKEN.encode() + b"&x=1", FORM, 400),
    ],
)
async def test_hostile_forms_are_refused(
    tmp_path: Path, body: bytes, headers: dict[str, str], status: int
) -> None:
    async with (
        known_traffic(tmp_path) as traffic,
        aiohttp.ClientSession() as client,
        client.post(traffic.url("/login"), data=body, headers=headers) as answer,
    ):
        assert answer.status == status
        assert COOKIE not in answer.cookies


async def test_without_a_token_the_dashboard_is_closed(tmp_path: Path) -> None:
    async with known_traffic(tmp_path, token="") as traffic, aiohttp.ClientSession() as client:
        for path in ("/", "/reports"):
            async with client.get(traffic.url(path)) as answer:
                assert answer.status == 403
                assert answer.content_type == "application/problem+json"
        async with client.post(traffic.url("/login"), data={"token": ""}) as answer:
            assert answer.status == 403


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(token=st.text(max_size=80), cookie=st.text(max_size=80))
async def test_no_guess_signs_in(tmp_path: Path, token: str, cookie: str) -> None:
    from aiohttp.test_utils import make_mocked_request

    from mailwarden.dashboard.routes import _signed_in

    headers = {"Authorization": f"Bearer {token}"}
    safe = cookie.encode("ascii", "ignore").decode().replace(";", "").replace("\\r", "")
    safe = "".join(c for c in safe if c.isprintable())
    if safe:
        headers["Cookie"] = f"{COOKIE}={safe}"
    request = make_mocked_request("GET", "/", headers=headers)
    assert _signed_in(request, TOKEN) is (token.strip() == TOKEN or safe == session_key(TOKEN))
    assert AUTH
