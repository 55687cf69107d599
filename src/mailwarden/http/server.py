"""The HTTP API's listener: `serving(settings, pipeline, listen)`, an async context manager
any long-running command can hold (`mailwarden http`, `serve --http`, `milter --http`).

It binds to loopback unless configured otherwise, and refuses a listener on any other address
without a token. A client that does not finish a request's line and headers within [http]
header_timeout (slowloris), or stays idle that long between requests, is disconnected; a body
has [http] body_timeout.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any

from aiohttp import web

from mailwarden.greylist import GreylistStore
from mailwarden.pipeline import Pipeline
from mailwarden.settings import ConfigError, Settings, is_loopback, read_token

from .app import Extension, make_app

__all__ = ["HTTPServer", "serving"]


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
        token = read_token(settings.http, settings.source)
        host = self.listen[0]
        if not token and not is_loopback(host):
            raise ConfigError(
                settings.source,
                "http.listen",
                f"{host} is not a loopback address: set [http] token or token_file first",
            )
        self.app = make_app(
            settings, pipeline, greylist_store=greylist_store, extensions=extensions, token=token
        )
        self.settings = settings
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] = self.listen

    async def __aenter__(self) -> HTTPServer:
        http = self.settings.http
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            # the idle timer also runs while a request line and headers arrive: a client
            # sending them slowly is closed after header_timeout (aiohttp's keep-alive)
            keepalive_timeout=http.header_timeout,
            lingering_time=2.0,  # after an early answer (408, 413), the unread rest of a body
            max_line_size=8190,
            max_field_size=8190,
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
        server = site._server  # the bound socket: port 0 becomes the real port
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            bound = sockets[0].getsockname()
            self.address = (str(bound[0]), int(bound[1]))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()  # answers in flight finish (shutdown_timeout)
            self._runner = None


def serving(
    settings: Settings, pipeline: Pipeline, listen: tuple[str, int] | None = None, **options: Any
) -> HTTPServer:
    """The API of `settings` over `pipeline`, listening on `listen` (default [http] listen)
    while held: `async with serving(settings, pipeline) as server: ... server.address`."""
    return HTTPServer(settings, pipeline, listen, **options)
