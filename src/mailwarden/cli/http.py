"""`mailwarden http`: the HTTP API on its own (verdicts, greylist administration, settings,
health, metrics); `serve --http` runs the same API beside the gateway."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

import click

from mailwarden import runtime
from mailwarden.dashboard import dashboard
from mailwarden.http import Extension, HTTPServer
from mailwarden.pipeline import Pipeline, build
from mailwarden.settings import ConfigError, Override, Settings, parse_hostport

from . import lifecycle
from .common import DNSOptions, dns_options, fail, json_option, print_json
from .paths import writable_dir_problem

__all__ = ["Together", "extensions", "http", "http_server"]


def extensions(settings: Settings, pipeline: Pipeline) -> list[Extension]:
    """What every command's HTTP API mounts besides its own routes (`mailwarden http`,
    `serve --http`, and any later `--http`): the dashboard (GET /, /reports, /v1/dashboard,
    /v1/transactions), reading the store of recent transactions the settings name."""
    return [dashboard()]


def http_server(settings: Settings, pipeline: Pipeline, listen: str | None) -> HTTPServer:
    """The API's server for `settings` (listen: the option's text, else [http] listen), with
    `extensions(settings, pipeline)` mounted; bad input exits 2 saying what is wrong."""
    address = None
    if listen is not None:
        try:
            address = parse_hostport(listen, 8025)
        except ValueError as exc:
            fail(f"bad HTTP listen address {listen!r}: {exc}")
    try:
        return HTTPServer(settings, pipeline, address, extensions=extensions(settings, pipeline))
    except ConfigError as exc:
        fail(str(exc))


class Together:
    """Several servers held as one (the gateway and its HTTP API): entered in order, left in
    reverse order, and those already entered are left when a later one cannot start."""

    def __init__(self, *servers: Any) -> None:
        self.servers = servers
        self._entered: list[Any] = []

    async def __aenter__(self) -> Together:
        try:
            for server in self.servers:
                await server.__aenter__()
                self._entered.append(server)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        while self._entered:
            await self._entered.pop().__aexit__(exc_type, exc, tb)

    async def stop_accepting(self) -> None:
        """An orderly stop of each server that has one (lifecycle.Draining)."""
        for server in self.servers:
            if isinstance(server, lifecycle.Draining):
                await server.stop_accepting()

    async def wait_idle(self, seconds: float) -> bool:
        """Each server's transactions in flight finish, together within `seconds`."""
        waits = [s.wait_idle(seconds) for s in self.servers if isinstance(s, lifecycle.Draining)]
        return all(await asyncio.gather(*waits))


@click.command("http")
@click.option("--listen", metavar="HOST:PORT", help="Listen here. [default: [http] listen]")
@click.option("--data-dir", metavar="DIR", help="The greylist store's directory.")
@dns_options
@json_option
def http(listen: str | None, data_dir: str | None, dns: DNSOptions, as_json: bool) -> None:
    """Run the HTTP API: POST /v1/check, greylist administration, settings, health, metrics."""
    given: dict[str, Override] = {}
    if listen is not None:
        given["http.listen"] = (listen, "--listen")
    if data_dir is not None:
        given["gateway.data_dir"] = (data_dir, "--data-dir")
    settings = dns.settings(given)
    if settings.greylist.enabled and not settings.greylist.redis:
        where = Path(settings.gateway.data_dir)
        if (problem := writable_dir_problem(where)) is not None:
            fail(f"cannot use the data directory {where}: {problem}")
    try:
        pipeline = build(settings, dns.build(settings, status=False), greylist=True)
    except ConfigError as exc:
        fail(str(exc))
    except (OSError, ValueError) as exc:
        fail(f"cannot open the greylist store: {exc}")
    server = http_server(settings, pipeline, None)

    async def reload() -> Pipeline:
        """SIGHUP: the settings again; new requests get the new pipeline and token."""
        fresh = dns.settings(given)
        new = build(fresh, dns.build(fresh, status=False), greylist=True)
        try:
            server.install(fresh, new)
        except ConfigError as exc:
            await new.drain()
            fail(str(exc))
        return new

    def announce() -> None:
        host, port = server.address
        shown = f"[{host}]" if ":" in host else host
        info = {"listen": f"{shown}:{port}", "try": f"curl http://{shown}:{port}/health"}
        if as_json:
            print_json(info)
        else:
            click.echo(f"mailwarden http: listening on {shown}:{port}", err=True)
        sys.stdout.flush()

    try:
        runtime.run(lifecycle.run_until_signalled(server, announce, pipeline, reload=reload))
    except OSError as exc:
        host, port = server.listen
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
