"""The HTTP API over real sockets: verdicts equal to `mailwarden check --json`, the bearer
token, secrets hidden, health, limits (413, slow clients), problem JSON for every error, and
hostile query strings and bodies never giving a 500."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwarden.cli import run
from mailwarden.greylist import MemoryStore
from mailwarden.http import Access, HTTPServer, Routes
from mailwarden.pipeline import build
from mailwarden.settings import ConfigError, load_settings

from .helpers import AUTH, MESSAGES, TOKEN, in_thread, running, settings_of, url, write_setup

PROBLEM = "application/problem+json"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_setup(tmp_path)
    return tmp_path


@pytest.fixture
async def api(root: Path) -> AsyncIterator[HTTPServer]:
    async with running(settings_of(root)) as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _problem(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body = await response.json(content_type=PROBLEM)
    assert body["status"] == status
    assert body["title"]
    assert "Traceback" not in json.dumps(body)
    return dict(body)


# -- the same verdict as `mailwarden check --json` -----------------------------------------


@contextlib.contextmanager
def http_process(config: Path, zone: Path, data: Path) -> Iterator[str]:
    """`mailwarden http` as a program: its base URL while it runs; SIGTERM ends it (exit 0)."""
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "mailwarden", "http", "--listen", "127.0.0.1:0",
            "--config", str(config), "--dns-zone", str(zone), "--data-dir", str(data), "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"did not start: {proc.stderr.read()}")
        yield "http://" + json.loads(line)["listen"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def cli_verdict(
    root: Path, message: bytes, capsys: pytest.CaptureFixture[str], rcpt: list[str]
) -> dict[str, Any]:
    path = root / "message.eml"
    path.write_bytes(message)
    argv = ["check", str(path), "--config", str(root / "mailwarden.toml")]
    argv += ["--dns-zone", str(root / "zone"), "--ip", "192.0.2.1", "--helo", "mail.a.example"]
    argv += ["--mail-from", "alice@a.example", "--json"]
    for address in rcpt:
        argv += ["--rcpt", address]
    code = run(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return dict(json.loads(captured.out))


async def test_check_gives_the_verdict_of_the_command_line(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mailwarden http` and `mailwarden check --json`, same settings and --dns-zone: the
    same JSON, key for key, for several messages (signed, spoofed, broken, not UTF-8...)."""
    seen_actions = set()
    with http_process(root / "mailwarden.toml", root / "zone", root / "data") as base:
        async with aiohttp.ClientSession() as session:
            for name, make in MESSAGES.items():
                message = make()
                rcpt = ["bob@example.net", "carol@example.net"]
                query = "ip=192.0.2.1&helo=mail.a.example&mail_from=alice%40a.example"
                query += "".join(f"&rcpt={r}" for r in rcpt)
                async with session.post(
                    f"{base}/v1/check?{query}",
                    data=message,
                    headers={**AUTH, "Content-Type": "message/rfc822"},
                ) as response:
                    assert response.status == 200, await response.text()
                    over_http = await response.json()
                expected = await asyncio.to_thread(cli_verdict, root, message, capsys, rcpt)
                assert over_http == expected, name
                seen_actions.add(over_http["policy"]["action"])
    assert {"accept", "add_header"} <= seen_actions  # the cases differ: not one answer for all


# -- the bearer token ----------------------------------------------------------------------


async def test_administrative_endpoints_need_the_token(
    api: HTTPServer, client: aiohttp.ClientSession
) -> None:
    for path in ("/v1/settings", "/v1/greylist", "/metrics"):
        async with client.get(url(api, path)) as response:
            await _problem(response, 401)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        for wrong in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN, ""):
            async with client.get(url(api, path), headers={"Authorization": wrong}) as response:
                await _problem(response, 401)
        async with client.get(url(api, path), headers=AUTH) as response:
            assert response.status == 200
        lower = {"Authorization": f"bearer {TOKEN}"}  # RFC 9110 §11.1: the scheme is caseless
        async with client.get(url(api, path), headers=lower) as response:
            assert response.status == 200
    async with client.post(
        url(api, "/v1/check?ip=192.0.2.1&helo=x.example"),
        data=b"From: a@a.example\r\n\r\nx\r\n",
        headers={"Content-Type": "message/rfc822"},
    ) as response:
        await _problem(response, 401)
    for junk in (b"Bearer \xff\xfe", b"Bearer " + TOKEN.encode() + b"\xc3", b"\xed\xa0\x80"):
        raw = b"GET /v1/settings HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: "
        answer = await _raw(api, raw + junk + b"\r\n\r\n", 10)
        assert answer.startswith(b"HTTP/1.1 401 "), answer
    for path in ("/health", "/openapi.json"):  # public
        async with client.get(url(api, path)) as response:
            assert response.status == 200


async def test_without_a_token_admin_is_closed_and_check_open(
    root: Path, client: aiohttp.ClientSession
) -> None:
    write_setup(root, "[dnsbl]\nuse = []\n")
    async with running(settings_of(root)) as server:
        async with client.get(url(server, "/v1/settings"), headers=AUTH) as response:
            body = await _problem(response, 403)
            assert "token" in body["detail"]
        async with client.post(
            url(server, "/v1/check?ip=192.0.2.1&helo=x.example"),
            data=b"From: a@a.example\r\n\r\nx\r\n",
            headers={"Content-Type": "message/rfc822"},
        ) as response:
            assert response.status == 200


async def test_open_check_lets_check_through_but_not_admin(
    root: Path, client: aiohttp.ClientSession
) -> None:
    async with running(settings_of(root, http__open_check=True)) as server:
        async with client.post(
            url(server, "/v1/check?ip=192.0.2.1&helo=x.example"),
            data=b"From: a@a.example\r\n\r\nx\r\n",
            headers={"Content-Type": "message/rfc822"},
        ) as response:
            assert response.status == 200
        async with client.get(url(server, "/v1/greylist")) as response:
            await _problem(response, 401)


def test_a_listener_beyond_loopback_needs_a_token(root: Path) -> None:
    write_setup(root, "[dnsbl]\nuse = []\n")
    settings = settings_of(root)
    pipeline = build(settings, greylist=MemoryStore())
    for host in ("0.0.0.0", "::", "192.0.2.7", "mx.example.net"):
        with pytest.raises(ConfigError, match="not a loopback address"):
            HTTPServer(settings, pipeline, (host, 8025))
    for host in ("127.0.0.1", "::1", "localhost", "127.1.2.3"):
        HTTPServer(settings, pipeline, (host, 8025))  # made, not started
    with_token = settings_of(root, http__token=TOKEN)
    HTTPServer(with_token, pipeline, ("0.0.0.0", 8025))


def test_the_token_file(root: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    settings = settings_of(root, http__token="", http__token_file=str(token_file))
    server = HTTPServer(settings, build(settings, greylist=MemoryStore()), ("0.0.0.0", 1))
    assert server.app is not None
    token_file.write_text("short\n")
    with pytest.raises(ConfigError, match=r"http\.token_file"):
        HTTPServer(settings, build(settings, greylist=MemoryStore()))
    with pytest.raises(ConfigError, match="not both"):
        settings_of(root, http__token_file=str(token_file))


# -- secrets -------------------------------------------------------------------------------

SECRETS = ["redis-pass-1f3a9", "pg-pass-77c2e", "limit-pass-b81d", "dqskey0123456789abcdef"]


async def test_the_settings_hide_every_secret(root: Path, client: aiohttp.ClientSession) -> None:
    (root / "mailwarden.toml").write_text(
        f"""
[gateway]
hostname = "mx.b.example"
[http]
token = "{TOKEN}"
[greylist]
redis = "redis://:{SECRETS[0]}@127.0.0.1:1/0"
[reports]
postgres = "postgresql://mw:{SECRETS[1]}@127.0.0.1:1/mw?sslmode=disable&password={SECRETS[1]}"
[submission]
redis = "redis://user:{SECRETS[2]}@127.0.0.1:1/2"
[dnsbl]
use = []
[[dnsbl.lists]]
name = "dq"
zone = "{SECRETS[3]}.zen.dq.example"
needs_key = "a key from the list's operator"
"""
    )
    settings = settings_of(root)
    async with (
        running(settings) as server,
        client.get(url(server, "/v1/settings"), headers=AUTH) as response,
    ):
        assert response.status == 200
        text = await response.text()
    body = json.loads(text)
    for secret in [TOKEN, *SECRETS]:
        assert secret not in text
    assert body["http"]["token"] == "(hidden)"
    assert body["greylist"]["redis"] == "redis://:(hidden)@127.0.0.1:1/0"
    assert body["dnsbl"]["lists"][0]["zone"] == "(hidden).zen.dq.example"
    assert body["gateway"]["hostname"] == "mx.b.example"  # the rest is shown


# -- health --------------------------------------------------------------------------------


async def test_health_is_ready_when_dns_and_the_store_answer(
    api: HTTPServer, client: aiohttp.ClientSession
) -> None:
    async with client.get(url(api, "/health")) as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok", "checks": {"dns": "ok", "greylist": "ok"}}


async def test_health_is_503_when_dns_is_silent(root: Path, client: aiohttp.ClientSession) -> None:
    import socket

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    try:
        settings = load_settings(
            root / "mailwarden.toml",
            overrides={
                "dns.servers": ([f"127.0.0.1:{port}"], "--dns-server"),
                "dns.timeout": (0.2, "--dns-timeout"),
                "dns.retries": (0, "--dns-retries"),
            },
        )
        async with (
            running(settings) as server,
            client.get(url(server, "/health")) as response,
        ):
            body = await _problem(response, 503)
    finally:
        silent.close()
    assert body["checks"]["greylist"] == "ok"
    assert body["checks"]["dns"] != "ok"
    assert "dns:" in body["detail"]


class BrokenStore(MemoryStore):
    async def entries(self, now: float, *, limit: int | None = None) -> list[Any]:
        raise OSError("disk on fire")


async def test_health_is_503_when_the_store_fails(
    root: Path, client: aiohttp.ClientSession
) -> None:
    async with running(settings_of(root), store=BrokenStore()) as server:
        async with client.get(url(server, "/health")) as response:
            body = await _problem(response, 503)
        assert body["checks"] == {"dns": "ok", "greylist": "OSError: disk on fire"}
        async with client.get(url(server, "/v1/greylist"), headers=AUTH) as response:
            await _problem(response, 503)


# -- greylist administration ---------------------------------------------------------------


async def test_greylist_allow_list_forget(api: HTTPServer, client: aiohttp.ClientSession) -> None:
    async def post(path: str, body: Any) -> aiohttp.ClientResponse:
        return await client.post(url(api, path), json=body, headers=AUTH)

    response = await post("/v1/greylist/allow", {"target": "192.0.2.0/24", "days": 1, "note": "x"})
    allowed = await response.json()
    assert response.status == 200
    assert allowed["target"] == "net:192.0.2.0/24"
    async with client.get(url(api, "/v1/greylist"), headers=AUTH) as listing:
        data = await listing.json()
    assert [a["target"] for a in data["allowed"]] == ["net:192.0.2.0/24"]
    assert data["entries"] == []
    assert data["total"] == 0
    response = await post("/v1/greylist/forget", {"target": "192.0.2.0/24"})
    assert await response.json() == {
        "target": "192.0.2.0/24",
        "triplets": 0,
        "allow_entries": 1,
        "network_counters": 0,
    }
    for body in ({"target": "not a target!"}, {"target": 5}, {}, [], {"target": "a", "x": 1}):
        await _problem(await post("/v1/greylist/forget", body), 400)
    for days in (0, -1, 1e309, 40_000, True, "1", 10**400):
        body = {"target": "192.0.2.1", "days": days}
        await _problem(await post("/v1/greylist/allow", body), 400)
    raw = await client.post(
        url(api, "/v1/greylist/allow"),
        data=b"{",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    await _problem(raw, 400)
    async with client.get(url(api, "/v1/greylist?limit=0"), headers=AUTH) as response:
        await _problem(response, 400)
    async with client.get(url(api, "/v1/greylist?state=nope"), headers=AUTH) as response:
        await _problem(response, 400)


# -- limits and errors ---------------------------------------------------------------------


async def test_bad_check_requests_are_problems(
    api: HTTPServer, client: aiohttp.ClientSession
) -> None:
    message = b"From: a@a.example\r\n\r\nx\r\n"
    rfc822 = {**AUTH, "Content-Type": "message/rfc822"}
    cases = [
        ("/v1/check?helo=x.example", rfc822, 400),  # no ip
        ("/v1/check?ip=192.0.2.1", rfc822, 400),  # no helo
        ("/v1/check?ip=192.0.2.1&ip=192.0.2.2&helo=x", rfc822, 400),  # twice
        ("/v1/check?ip=192.0.2.1&helo=x&bogus=1", rfc822, 400),
        ("/v1/check?ip=300.1.1.1&helo=x", rfc822, 400),
        ("/v1/check?ip=192.0.2.1&helo=%00", rfc822, 400),
        ("/v1/check?ip=192.0.2.1&helo=x&rcpt=", rfc822, 400),
        ("/v1/check?ip=192.0.2.1&helo=x", {**AUTH, "Content-Type": "text/plain"}, 415),
        ("/v1/check?ip=192.0.2.1&helo=x", AUTH, 415),
    ]
    for path, headers, status in cases:
        async with client.post(url(api, path), data=message, headers=headers) as response:
            await _problem(response, status)
    async with client.post(
        url(api, "/v1/check?ip=192.0.2.1&helo=x"), data=b"", headers=rfc822
    ) as r:  # as `check` on an empty file: a verdict (no author: refused), not an error
        assert r.status == 200
        assert (await r.json())["policy"]["action"] == "reject"
    async with client.get(url(api, "/v1/check"), headers=AUTH) as response:
        await _problem(response, 405)
        assert "POST" in response.headers["Allow"]
    async with client.get(url(api, "/nowhere")) as response:
        await _problem(response, 404)


async def test_a_body_beyond_max_body_is_413(root: Path, client: aiohttp.ClientSession) -> None:
    async with running(settings_of(root, http__max_body=4096)) as server:
        target = url(server, "/v1/check?ip=192.0.2.1&helo=x")
        headers = {**AUTH, "Content-Type": "message/rfc822"}
        big = b"From: a@a.example\r\n\r\n" + b"x" * 5000
        async with client.post(target, data=big, headers=headers) as response:
            await _problem(response, 413)

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: caught while read
            for _ in range(10):
                yield b"x" * 1000

        async with client.post(target, data=chunks(), headers=headers) as response:
            await _problem(response, 413)
        async with client.post(target, data=big[:4000], headers=headers) as response:
            assert response.status == 200


async def _raw(server: HTTPServer, data: bytes, pause: float) -> bytes:
    reader, writer = await asyncio.open_connection(*server.address)
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(pause):
            return await reader.read()  # until the server closes
    finally:
        writer.close()


async def test_slow_clients_are_timed_out(root: Path) -> None:
    settings = settings_of(root, http__header_timeout=0.5, http__body_timeout=0.5)
    async with running(settings) as server:
        started = asyncio.get_running_loop().time()
        answer = await _raw(server, b"GET /health HTTP/1.1\r\nHost: x\r\n", 5)  # no end
        assert answer == b""  # closed: headers that never end
        assert asyncio.get_running_loop().time() - started < 3
        head = (
            b"POST /v1/check?ip=192.0.2.1&helo=x HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: message/rfc822\r\nContent-Length: 100\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\nFrom: a@a.example\r\n"
        )
        answer = await _raw(server, head, 5)  # 80 bytes never come
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"application/problem+json" in answer


async def test_extensions_add_routes_with_access_and_documentation(
    root: Path, client: aiohttp.ClientSession
) -> None:
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    def extension(routes: Routes) -> None:
        assert routes.settings.gateway.hostname == "mx.b.example"
        routes.add(
            "GET",
            "/v1/hello",
            hello,
            access=Access.ADMIN,
            operation={"responses": {"200": {"description": "hi"}}},
        )

    async with running(settings_of(root), extensions=[extension]) as server:
        async with client.get(url(server, "/v1/hello")) as response:
            await _problem(response, 401)
        async with client.get(url(server, "/v1/hello"), headers=AUTH) as response:
            assert await response.json() == {"hello": "world"}
        async with client.get(url(server, "/openapi.json")) as response:
            document = await response.json()
    hello_doc = document["paths"]["/v1/hello"]["get"]
    assert hello_doc["security"] == [{"bearer": []}]
    assert "401" in hello_doc["responses"]


async def test_metrics_are_prometheus_text(api: HTTPServer, client: aiohttp.ClientSession) -> None:
    async with client.get(url(api, "/health")) as response:
        assert response.status == 200
    async with client.get(url(api, "/metrics"), headers=AUTH) as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    assert 'mailwarden_answer_seconds_count{frontend="http",stage="/health"}' in text
    assert 'mailwarden_open_connections{frontend="http"}' in text


# -- hostile input -------------------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
_HUGE = st.integers(min_value=-(10**400), max_value=10**400)  # beyond any float
_JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | _HUGE | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_TARGETS = st.sampled_from(["192.0.2.1", "192.0.2.0/24", "a.example", "x@a.example", "", "spf:"])
_JSON_BODIES = st.one_of(
    _JSON.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"target": st.one_of(_TARGETS, _JSON)},
        optional={"days": _JSON | st.floats(), "note": _JSON, "other": _JSON},
    ).map(lambda v: json.dumps(v).encode()),
    st.just(b"[" * 60_000),  # nested beyond the parser's recursion, within max_body
)
_KEYS = st.sampled_from(["ip", "helo", "mail_from", "rcpt", "state", "limit", "x", "", "ip "])


@pytest.fixture(scope="module")
def hostile_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """One API for every example, in a thread of its own (hypothesis calls are synchronous)."""
    root = tmp_path_factory.mktemp("hostile")
    write_setup(root)
    with in_thread(settings_of(root, http__max_body=65536)) as address:
        yield address


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.sampled_from(
        ["/v1/check", "/v1/greylist", "/v1/greylist/allow", "/v1/greylist/forget", "/v1/settings",
         "/health", "/metrics", "/openapi.json", "/v1/check/", "/%ff", "/v1/../health"]
    ),
    query=st.lists(st.tuples(_KEYS, _TEXT), max_size=6),
    body=st.one_of(st.binary(max_size=300), _TEXT.map(str.encode), _JSON_BODIES),
    content_type=st.sampled_from(
        ["message/rfc822", "application/json", "text/plain", "", "message/rfc822; x=\"", "a/b"]
    ),
    token=st.booleans(),
)  # fmt: skip
def test_hostile_requests_never_give_a_500(
    hostile_api: tuple[str, int],
    method: str,
    path: str,
    query: list[tuple[str, str]],
    body: bytes,
    content_type: str,
    token: bool,
) -> None:
    import http.client
    from urllib.parse import urlencode

    host, port = hostile_api
    connection = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Content-Type": content_type, **(AUTH if token else {})}
    target = path + ("?" + urlencode(query) if query else "")
    try:
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    assert response.status < 500 or (response.status == 503 and path == "/health"), data
    kind = response.getheader("Content-Type", "")
    if response.status >= 400:
        assert kind == PROBLEM, (response.status, data)
        problem = json.loads(data)
        assert problem["status"] == response.status
    assert b"Traceback" not in data


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32) + b"\r\n\r\n",  # TLS hello
        b"GET /health HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 5\r\n\r\n",  # request smuggling's favourite
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /health HTTP/9.9\r\n\r\n",
        b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n",
    ],
)
async def test_malformed_http_is_a_problem_and_one_log_line(
    api: HTTPServer, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """What aiohttp refuses before routing is problem JSON as well, and logged as one line:
    a client sending junk cannot fill the log with tracebacks."""
    caplog.set_level(logging.DEBUG)
    answer = await _raw(api, raw, 10)
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    assert 400 <= status < 500, answer
    assert b"Content-Type: application/problem+json" in head
    assert json.loads(body)["status"] == status
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_extensions_add_health_checks(root: Path, client: aiohttp.ClientSession) -> None:
    async def down() -> None:
        raise ConnectionRefusedError("transactions store down")

    def extension(routes: Routes) -> None:
        routes.add_health("transactions", down)

    async with (
        running(settings_of(root), extensions=[extension]) as server,
        client.get(url(server, "/health")) as response,
    ):
        body = await _problem(response, 503)
    assert body["checks"]["dns"] == "ok"
    assert body["checks"]["transactions"] == "ConnectionRefusedError: transactions store down"


async def test_beyond_max_connections_a_new_one_gets_503(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(settings_of(root, http__max_connections=2)) as server:
        held = [await asyncio.open_connection(*server.address) for _ in range(2)]
        await asyncio.sleep(0.1)
        answer = await _raw(server, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 5)
        assert answer.startswith(b"HTTP/1.1 503 ")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"application/problem+json" in head
        assert json.loads(body)["status"] == 503
        for _, writer in held:
            writer.close()
        await asyncio.sleep(0.1)
        again = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        answer = await _raw(server, again, 5)
        assert answer.startswith(b"HTTP/1.1 200 ")
    assert not [r for r in caplog.records if r.exc_info]


def _send(
    address: tuple[str, int], method: str, target: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str, bytes]:
    import http.client

    connection = http.client.HTTPConnection(*address, timeout=30)
    try:
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(["/v1/greylist/allow", "/v1/greylist/forget"]), body=_JSON_BODIES)
def test_hostile_json_bodies_are_200_or_400(
    hostile_api: tuple[str, int], path: str, body: bytes
) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    status, kind, data = _send(hostile_api, "POST", path, body, headers)
    assert status in (200, 400), data
    if status == 400:
        assert kind == PROBLEM
        assert json.loads(data)["status"] == 400


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=st.lists(st.tuples(_KEYS, _TEXT), max_size=6), body=st.binary(max_size=300))
def test_hostile_checks_are_200_or_400(
    hostile_api: tuple[str, int], query: list[tuple[str, str]], body: bytes
) -> None:
    from urllib.parse import urlencode

    headers = {**AUTH, "Content-Type": "message/rfc822"}
    target = "/v1/check?" + urlencode([("ip", "192.0.2.1"), ("helo", "h.example"), *query])
    status, kind, data = _send(hostile_api, "POST", target, body, headers)
    assert status in (200, 400), data
    if status == 400:
        assert kind == PROBLEM
