"""The HTTP API's listener: `serving(settings, pipeline, listen)`, an async context manager
any long-running command can hold (`mailwarden http`, `serve --http`, `milter --http`).

It binds to loopback unless configured otherwise, and refuses a listener on any other address
without a token. A client that does not finish a request's line and headers within [http]
header_timeout (slowloris), or stays idle that long between requests, is disconnected; a body
has [http] body_timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from http import HTTPStatus
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from mailwarden import metrics
from mailwarden.greylist import GreylistStore
from mailwarden.pipeline import Pipeline
from mailwarden.runtime import close_listener
from mailwarden.settings import ConfigError, Settings, is_loopback, read_token

from .app import CONTEXT, Extension, make_app
from .problem import Problem

__all__ = ["HTTPServer", "serving"]

log = logging.getLogger("mailwarden.http")
MAX_LINE = 8190  # bytes of the request line and of one header field: 400 beyond


BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
)
BUSY_BODY = (
    b'{"type": "https://mailwarden.invalid/problems/busy", "title": "Too many connections",'
    b' "status": 503, "detail": "[http] max_connections are open: try again"}'
)


class _Handler(RequestHandler):
    """aiohttp's connection handler, answering what it refuses before any route is found (a
    malformed request line or header, a field too long, Content-Length with chunked) as
    problem JSON too, and logging it as one line rather than a traceback per bad client.
    Beyond [http] max_connections a new connection gets 503 and is closed; open connections
    are counted for the metrics."""

    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._manager
        limit = getattr(server, "max_connections", None)
        if (
            isinstance(server, web.Server)
            and limit is not None
            and len(server.connections) >= limit
        ):
            assert isinstance(transport, asyncio.Transport)
            transport.write(BUSY % (len(BUSY_BODY), BUSY_BODY))
            transport.close()
            return
        metrics.connection_opened("http")
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._manager is not None and self in self._manager.connections:
            metrics.connection_closed("http")
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        text = str(getattr(exc, "message", None) or message or exc or "")
        first = text.strip().splitlines()[0][:200] if text.strip() else ""
        if status >= 500:
            log.error("error answering %s: %s", request.remote, first or status)
        else:
            log.info("bad request from %s: %s", request.remote, first or status)
        if request.writer.output_size > 0:  # an answer was begun: only closing is left
            raise ConnectionError("response already begun")
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
        detail = first if status < 500 else "a bug: the log has the details"
        return Problem(status, title, detail, kind="bad-request", close=True).response()


class _Server(web.Server):
    """Makes `_Handler`s for its connections."""

    max_connections: int | None = None

    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    def __init__(self, app: web.Application, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.max_connections = max_connections

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # the same object, answering protocol errors our way
        assert isinstance(server, _Server)
        server.max_connections = self.max_connections
        return server


class HTTPServer:
    """The API on a socket: `async with server:` listens, `address` is where."""

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        listen: tuple[str, int] | None = None,
        *,
        greylist_store: GreylistStore | None = None,
        extensions: Iterable[Extension] = (),
    ) -> None:
        """ConfigError when the token cannot be read, or when `listen` (default: [http]
        listen) is not loopback and no token is configured."""
        self.listen = listen or settings.http.listen
        token = self._token(settings)
        self._fixed_store = greylist_store
        self.app = make_app(
            settings, pipeline, greylist_store=greylist_store, extensions=extensions, token=token
        )
        self.settings = settings
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.address: tuple[str, int] = self.listen

    def _token(self, settings: Settings) -> str:
        token = read_token(settings.http, settings.source)
        host = self.listen[0]
        if not token and not is_loopback(host):
            raise ConfigError(
                settings.source,
                "http.listen",
                f"{host} is not a loopback address: set [http] token or token_file first",
            )
        return token

    def install(self, settings: Settings, pipeline: Pipeline) -> None:
        """SIGHUP: requests from now on use `pipeline` and the token, `open_check` and
        `health_name` of `settings` (the listener and its limits need a restart). ConfigError,
        with nothing changed, when the new token cannot be used."""
        token = self._token(settings)
        context = self.app[CONTEXT]
        store = self._fixed_store
        if store is None and pipeline.greylister is not None:
            store = pipeline.greylister.store
        context.settings, context.pipeline, context.greylist = settings, pipeline, store
        context.token = token
        self.settings = settings

    async def stop_accepting(self) -> None:
        """An orderly stop: the listener closes; requests in flight go on."""
        if self._site is not None:
            server = self._site._server
            if server is not None:
                await close_listener(server)

    async def wait_idle(self, seconds: float) -> bool:
        """Wait up to `seconds` for the requests in flight to be answered; True when none is
        left."""
        context = self.app[CONTEXT]
        if not context.inflight:
            return True
        context.idle = asyncio.Event()  # set by the last answer
        try:
            async with asyncio.timeout(seconds):
                await context.idle.wait()
        except TimeoutError:
            return False
        return True

    async def __aenter__(self) -> HTTPServer:
        http = self.settings.http
        runner = _Runner(
            self.app,
            max_connections=http.max_connections,
            access_log=None,
            handle_signals=False,
            # the idle timer also runs while a request line and headers arrive: a client
            # sending them slowly is closed after header_timeout (aiohttp's keep-alive)
            keepalive_timeout=http.header_timeout,
            lingering_time=2.0,  # after an early answer (408, 413), the unread rest of a body
            max_line_size=MAX_LINE,
            max_field_size=MAX_LINE,
        )
        await runner.setup()
        host, port = self.listen
        site = web.TCPSite(runner, host.strip("[]"), port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._site = site
        server = site._server  # the bound socket: port 0 becomes the real port
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            bound = sockets[0].getsockname()
            self.address = (str(bound[0]), int(bound[1]))
        return self

    @property
    def address_text(self) -> str:
        """`address` as HOST:PORT, an IPv6 host in brackets (how it is announced)."""
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()  # answers in flight finish (shutdown_timeout)
            self._runner = None
            self._site = None


def serving(
    settings: Settings, pipeline: Pipeline, listen: tuple[str, int] | None = None, **options: Any
) -> HTTPServer:
    """The API of `settings` over `pipeline`, listening on `listen` (default [http] listen)
    while held: `async with serving(settings, pipeline) as server: ... server.address`."""
    return HTTPServer(settings, pipeline, listen, **options)
