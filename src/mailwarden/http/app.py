"""The HTTP API's application: `make_app(settings, pipeline)` and its extension point.

Every route is added through `Routes.add`, which registers the handler, its access (public,
check, admin) and its OpenAPI operation together, so the document served at /openapi.json
describes exactly the routes there are. Other parts of mailwarden (the dashboard, metrics)
plug in as extensions: callables taking the `Routes`::

    def dashboard(routes: Routes) -> None:
        routes.add("GET", "/", page, access=Access.ADMIN, operation={...})

    app = make_app(settings, pipeline, extensions=[dashboard])

One middleware turns every error (a bad query, a body too large, a missing token, an unknown
path, a bug) into RFC 9457 problem JSON, and times every answer for the metrics.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from mailwarden import metrics
from mailwarden.greylist import GreylistStore
from mailwarden.pipeline import Pipeline
from mailwarden.settings import Settings, read_token

from .openapi import base_document
from .problem import Problem

__all__ = ["CONTEXT", "Access", "Context", "Extension", "Routes", "make_app"]

log = logging.getLogger("mailwarden.http")


class Access(StrEnum):
    """Who may call a route."""

    PUBLIC = "public"  # anyone who reaches the listener (GET /health)
    CHECK = "check"  # the token, unless [http] open_check (POST /v1/check)
    ADMIN = "admin"  # always the token; refused when none is configured


@dataclass
class Context:
    """What handlers share: the settings, the one pipeline, the greylist store (None when
    greylisting is off), the bearer token ("" for none)."""

    settings: Settings
    pipeline: Pipeline
    greylist: GreylistStore | None
    token: str
    access: dict[web.AbstractRoute, Access] = field(default_factory=dict)
    document: dict[str, Any] = field(default_factory=dict)
    # GET /health's checks added by extensions: name -> a call that raises when not ready
    probes: dict[str, Callable[[], Awaitable[Any]]] = field(default_factory=dict)
    inflight: int = 0  # requests being answered (an orderly stop waits for them)
    idle: asyncio.Event | None = None  # set when `inflight` falls to 0 (while one waits)

    def health_probes(self) -> dict[str, Callable[[], Awaitable[Any]]]:
        """What GET /health asks besides DNS: the greylist store, the DMARC report store
        (when the pipeline records), and the extensions' checks."""
        probes: dict[str, Callable[[], Awaitable[Any]]] = {}
        store = self.greylist
        if store is not None:
            probes["greylist"] = lambda: store.entries(time.time(), limit=1)
        recorder = self.pipeline.recorder
        if recorder is not None:  # one read by key
            probes["reports"] = lambda: recorder.store.outgoing("health-probe")
        return {**probes, **self.probes}


CONTEXT = web.AppKey("mailwarden", Context)

HandlerFunc = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Routes:
    """The extension point: add a route with its access and its OpenAPI operation."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.context = app[CONTEXT]

    @property
    def settings(self) -> Settings:
        return self.context.settings

    @property
    def pipeline(self) -> Pipeline:
        return self.context.pipeline

    def add(
        self,
        method: str,
        path: str,
        handler: HandlerFunc,
        *,
        access: Access,
        operation: Mapping[str, Any],
        name: str | None = None,
    ) -> None:
        """Route `method path` to `handler`; `operation` is its OpenAPI Operation Object
        (summary, parameters, requestBody, responses); the security requirement and the
        401/403 answers of a guarded route are added here."""
        route = self.app.router.add_route(method, path, handler, name=name)
        self.context.access[route] = access
        entry = dict(operation)
        if access is not Access.PUBLIC:
            entry["security"] = [{"bearer": []}] if self._needs_token(access) else [{}]
            responses = dict(entry.get("responses", {}))
            responses.setdefault("401", {"$ref": "#/components/responses/Unauthorized"})
            responses.setdefault("403", {"$ref": "#/components/responses/Forbidden"})
            entry["responses"] = responses
        self.context.document["paths"].setdefault(path, {})[method.lower()] = entry

    def _needs_token(self, access: Access) -> bool:
        if access is Access.CHECK:
            return bool(self.context.token) and not self.settings.http.open_check
        return access is Access.ADMIN

    def add_health(self, name: str, probe: Callable[[], Awaitable[Any]]) -> None:
        """GET /health asks `probe()` too (within 10 s): ready only when it returns, and
        the reason (its exception) is shown under `name` when it raises."""
        self.context.probes[name] = probe


Extension = Callable[[Routes], None]


def _authorized(request: web.Request, token: str) -> bool:
    """`Authorization: Bearer <token>` (RFC 6750 §2.1), compared in constant time."""
    given = request.headers.get("Authorization", "")
    scheme, _, credentials = given.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    given_digest = hashlib.sha256(credentials.strip().encode("utf-8", "replace")).digest()
    # equal lengths: not even the token's length shows in the time taken
    return hmac.compare_digest(given_digest, hashlib.sha256(token.encode()).digest())


@web.middleware
async def _problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Access control, problem JSON for every error, and the answer time."""
    context = request.app[CONTEXT]
    started = time.perf_counter()
    route = request.match_info.route
    stage = route.resource.canonical if route.resource is not None else "unmatched"
    context.inflight += 1
    try:
        access = context.access.get(route)
        if access is not None and access is not Access.PUBLIC:
            _check_token(context, access, request)
        return await handler(request)
    except Problem as exc:
        return exc.response(request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow",)}
        title = exc.reason or "Error"
        detail = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else ""
        close = exc.status == 413  # the rest of the body is not read: end the connection
        return Problem(exc.status, title, detail, headers=headers, close=close).response(
            request.path
        )
    except Exception:
        log.exception("internal error answering %s %s", request.method, request.path)
        return Problem(
            500, "Internal error", "a bug: the log has the details", kind="internal"
        ).response(request.path)
    finally:
        context.inflight -= 1
        if not context.inflight and context.idle is not None:
            context.idle.set()
        metrics.observe_answer("http", stage, time.perf_counter() - started)


def _check_token(context: Context, access: Access, request: web.Request) -> None:
    if access is Access.CHECK and (context.settings.http.open_check or not context.token):
        return
    if not context.token:
        raise Problem(
            403,
            "No token configured",
            "administrative endpoints need [http] token or token_file in the settings",
            kind="no-token",
        )
    if not _authorized(request, context.token):
        raise Problem(
            401,
            "Unauthorized",
            "send Authorization: Bearer <token> ([http] token)",
            kind="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="mailwarden"'},
        )


def make_app(
    settings: Settings,
    pipeline: Pipeline,
    *,
    greylist_store: GreylistStore | None = None,
    extensions: Iterable[Extension] = (),
    token: str | None = None,
) -> web.Application:
    """The HTTP API of `settings` over `pipeline`. `greylist_store`: the store the greylist
    endpoints administer (default: the pipeline's own, None when greylisting is off);
    `token`: the bearer token (default: read from the settings, ConfigError when its file
    cannot be read); `extensions` add their routes after ours."""
    from .handlers import core_routes  # the handlers use Routes: imported once it exists

    if greylist_store is None and pipeline.greylister is not None:
        greylist_store = pipeline.greylister.store
    app = web.Application(
        middlewares=[_problems],
        client_max_size=settings.http.max_body,
    )
    app[CONTEXT] = Context(
        settings,
        pipeline,
        greylist_store,
        read_token(settings.http, settings.source) if token is None else token,
        document=base_document(),
    )
    routes = Routes(app)
    core_routes(routes)
    for extension in extensions:
        extension(routes)
    return app
