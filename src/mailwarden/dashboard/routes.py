"""The dashboard plugged into the HTTP API through its extension point.

    make_app(settings, pipeline, extensions=[dashboard()])

`GET /` (the page; `?period=hour|day|week`, `?lookup=<queue id or Message-ID>`),
`GET /reports` (the DMARC reports view), `GET /v1/dashboard?period=` (the page's numbers) and
`GET /v1/transactions?id=` (one transaction with every check and its reason). All need the
administrative token: the page shows client addresses, senders and subjects. Programs send it
as `Authorization: Bearer`; a browser signs in once with a form (`POST /login`), which sets a
cookie holding a key derived from the token (HttpOnly, SameSite=Strict), never the token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from mailwarden.http.app import CONTEXT, Access, Context, Extension, Routes
from mailwarden.http.openapi import json_answer, problem_answers, query
from mailwarden.http.problem import Problem
from mailwarden.jsontext import dumps
from mailwarden.reports import ReportStore
from mailwarden.reports import open_store as open_report_store
from mailwarden.reports.dashboard import reports_view
from mailwarden.transactions import TransactionStore
from mailwarden.transactions import open_store as open_transaction_store

from .data import PERIODS, overview
from .page import CSP, login_page, page, reports_page

__all__ = ["dashboard"]

MAX_KEY = 998  # a Message-ID is one header line at most
STORE_TIMEOUT = 10.0
COOKIE = "mailwarden_dashboard"
MAX_LOGIN_BODY = 4096


def session_key(token: str) -> str:
    """The cookie's value: a key derived from the token (the token itself never leaves the
    form), so a stolen cookie cannot call the administrative API."""
    return hmac.new(token.encode(), b"mailwarden dashboard session", hashlib.sha256).hexdigest()


def _signed_in(request: web.Request, token: str) -> bool:
    """The bearer token (RFC 6750), or the sign-in cookie; compared in constant time."""
    if not token:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "replace"), token.encode()
    ):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return hmac.compare_digest(cookie.encode("utf-8", "replace"), session_key(token).encode())


def _no_token() -> Problem:
    return Problem(
        403,
        "No token configured",
        "the dashboard needs [http] token or token_file in the settings",
        kind="no-token",
    )


_COUNT = {"type": "integer", "minimum": 0}
_NULLABLE_COUNT = {"type": ["integer", "null"], "minimum": 0}
OVERVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "period",
        "since",
        "until",
        "bucket_seconds",
        "total",
        "actions",
        "timeline",
        "top_symbols",
        "top_sender_domains",
        "refused_clients",
        "greylist",
        "dns",
    ],
    "properties": {
        "period": {"enum": list(PERIODS)},
        "since": {"type": "number"},
        "until": {"type": "number"},
        "bucket_seconds": {"type": "integer"},
        "total": _COUNT,
        "actions": {"type": "object", "additionalProperties": _COUNT},
        "timeline": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["start", "counts", "total"],
                "properties": {
                    "start": {"type": "number"},
                    "counts": {"type": "object", "additionalProperties": _COUNT},
                    "total": _COUNT,
                },
            },
        },
        "top_symbols": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["symbol", "count"],
                "properties": {"symbol": {"type": "string"}, "count": _COUNT},
            },
        },
        "top_sender_domains": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["domain", "messages", "dmarc_pass", "dmarc_pass_rate"],
                "properties": {
                    "domain": {"type": "string"},
                    "messages": _COUNT,
                    "dmarc_pass": _COUNT,
                    "dmarc_pass_rate": {"type": "number", "minimum": 0, "maximum": 1},
                },
            },
        },
        "refused_clients": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["client_ip", "refused"],
                "properties": {"client_ip": {"type": "string"}, "refused": _COUNT},
            },
        },
        "greylist": {
            "type": "object",
            "required": [
                "enabled",
                "pending",
                "passed",
                "auto_allowed",
                "deferred_in_period",
                "passed_in_period",
            ],
            "properties": {
                "enabled": {"type": "boolean"},
                "pending": _NULLABLE_COUNT,
                "passed": _NULLABLE_COUNT,
                "auto_allowed": _NULLABLE_COUNT,
                "deferred_in_period": _COUNT,
                "passed_in_period": _COUNT,
            },
        },
        "dns": {
            "type": "object",
            "required": [
                "query_timeouts",
                "queries",
                "transactions_timed_out",
                "lists",
                "unhealthy",
            ],
            "properties": {
                "query_timeouts": _COUNT,
                "queries": _COUNT,
                "transactions_timed_out": _COUNT,
                "unhealthy": _COUNT,
                "lists": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "zone", "healthy", "reason"],
                        "properties": {
                            "name": {"type": "string"},
                            "zone": {"type": "string"},
                            "healthy": {"type": "boolean"},
                            "reason": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
}
_CHECK = {
    "type": "object",
    "required": ["name", "result", "reason"],
    "properties": {
        "name": {"type": "string"},
        "result": {"type": "string"},
        "reason": {"type": "string"},
    },
}
TRANSACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["time", "queue_id", "message_id", "action", "stage", "checks"],
    "properties": {
        "time": {"type": "number"},
        "queue_id": {"type": "string"},
        "message_id": {"type": "string"},
        "client_ip": {"type": "string"},
        "helo": {"type": "string"},
        "mail_from": {"type": "string"},
        "sender_domain": {"type": "string"},
        "subject": {"type": "string"},
        "action": {"type": "string"},
        "stage": {"type": "string"},
        "reply_code": {"type": ["integer", "null"]},
        "reply": {"type": "string"},
        "dmarc": {"type": "string"},
        "greylist": {"type": "string"},
        "timed_out": {"type": "array", "items": {"type": "string"}},
        "symbols": {"type": "array", "items": {"type": "string"}},
        "checks": {"type": "array", "items": _CHECK},
    },
}


def _params(request: web.Request, allowed: set[str]) -> dict[str, str]:
    """Single, known query parameters: 400 naming the mistake otherwise."""
    found: dict[str, str] = {}
    for name in set(request.query):
        if name not in allowed:
            raise Problem(
                400, "Unknown parameter", f"unknown query parameter {name!r}", kind="bad-query"
            )
        values = request.query.getall(name)
        if len(values) > 1:
            raise Problem(
                400, "Repeated parameter", f"{name!r} given more than once", kind="bad-query"
            )
        found[name] = values[0]
    return found


def _period(params: dict[str, str]) -> str:
    name = params.get("period", "day")
    if name not in PERIODS:
        raise Problem(400, "Bad parameter", "period is hour, day or week", kind="bad-query")
    return name


def _key(text: str) -> str:
    if len(text) > MAX_KEY or "\x00" in text:
        raise Problem(
            400, "Bad parameter", f"at most {MAX_KEY} characters, no NUL", kind="bad-query"
        )
    return text.strip()


def _html(text: str) -> web.Response:
    return web.Response(
        text=text,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


def _json(data: Any) -> web.Response:
    return web.Response(
        body=dumps(data).encode("utf-8"),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def dashboard(
    store: TransactionStore | None = None,
    reports: ReportStore | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> Extension:
    """The dashboard's routes. `store`: the transactions to show (default: the pipeline's
    own recorder's store, else the one `[transactions]` names, so `mailwarden http` shows
    what the gateway wrote); `reports`: the DMARC report store (default: `[reports]`'s)."""

    def extension(routes: Routes) -> None:
        # the settings and the pipeline are read per request: SIGHUP may replace them
        kept: dict[tuple[object, ...], Any] = {}

        def current() -> Context:
            return routes.app[CONTEXT]

        def transactions() -> TransactionStore:
            if store is not None:
                return store
            settings, recorder = current().settings, current().pipeline.transactions
            if recorder is not None:
                return recorder.store
            key = ("tx", settings.transactions, settings.gateway.data_dir)
            if key not in kept:
                opened = open_transaction_store(settings.transactions, settings.gateway.data_dir)
                if opened is None:
                    raise Problem(
                        503,
                        "No transactions kept",
                        '[transactions] backend = "none"',
                        kind="unavailable",
                    )
                kept[key] = opened
            tx: TransactionStore = kept[key]
            return tx

        def report_store() -> ReportStore:
            if reports is not None:
                return reports
            settings = current().settings
            key = ("reports", settings.reports, settings.gateway.data_dir)
            if key not in kept:
                kept[key] = open_report_store(settings.reports, settings.gateway.data_dir)
            found: ReportStore = kept[key]
            return found

        async def on_store(work: Any) -> Any:
            recorder = current().pipeline.transactions
            try:
                async with asyncio.timeout(STORE_TIMEOUT):
                    if recorder is not None:
                        await recorder.flush()  # what this process answered is shown
                    return await work()
            except Problem:
                raise
            except Exception as exc:  # a store down or slow: 503, never a 500
                raise Problem(
                    503, "Store unavailable", f"the transactions store: {exc}", kind="unavailable"
                ) from None

        async def numbers(period: str) -> dict[str, Any]:
            context = routes.app[CONTEXT]
            greylist = context.greylist
            store_now = transactions()
            result: dict[str, Any] = await on_store(
                lambda: overview(
                    store_now,
                    PERIODS[period],
                    clock(),
                    greylist=greylist,
                    auto_allow_after=context.settings.greylist.config.auto_allow_after,
                    dnsbl=context.pipeline.dnsbl,
                )
            )
            return result

        async def dashboard_json(request: web.Request) -> web.Response:
            params = _params(request, {"period"})
            return _json(await numbers(_period(params)))

        async def transaction_json(request: web.Request) -> web.Response:
            params = _params(request, {"id"})
            if "id" not in params:
                raise Problem(
                    400, "Missing parameter", "id (a queue id or Message-ID)", kind="bad-query"
                )
            key = _key(params["id"])
            store_now = transactions()
            record = await on_store(lambda: store_now.lookup(key))
            if record is None:
                raise Problem(
                    404,
                    "Not found",
                    "no transaction with that queue id or Message-ID",
                    kind="not-found",
                )
            return _json(record.to_dict())

        def token() -> str:
            return routes.app[CONTEXT].token

        def sign_in(request: web.Request, status: int = 401, note: str = "") -> web.Response:
            if not token():
                raise _no_token()
            answer = _html(login_page(hostname=current().settings.gateway.hostname, note=note))
            answer.set_status(status)
            return answer

        async def login(request: web.Request) -> web.Response:
            """The sign-in form's POST: the token in, a cookie out (303 to the page)."""
            _params(request, set())
            if not token():
                raise _no_token()
            if request.content_type != "application/x-www-form-urlencoded":
                raise Problem(415, "Unsupported media type", "send the form", kind="media-type")
            if (request.content_length or 0) > MAX_LOGIN_BODY:
                raise Problem(
                    413,
                    "Body too large",
                    f"at most {MAX_LOGIN_BODY} bytes",
                    kind="too-large",
                    close=True,
                )
            body = await request.content.read(MAX_LOGIN_BODY + 1)
            if len(body) > MAX_LOGIN_BODY:
                raise Problem(
                    413,
                    "Body too large",
                    f"at most {MAX_LOGIN_BODY} bytes",
                    kind="too-large",
                    close=True,
                )
            try:
                fields = parse_qs(
                    body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=2
                )
            except ValueError:
                fields = {"": []}  # more fields than a sign-in has
            if set(fields) - {"token"} or len(fields.get("token", [""])) > 1:
                raise Problem(400, "Bad form", "one field: token", kind="bad-body")
            given = (fields.get("token") or [""])[0].strip()
            if not hmac.compare_digest(given.encode("utf-8", "replace"), token().encode()):
                return sign_in(request, 401, "That is not the token.")
            answer = web.HTTPSeeOther("/")
            answer.set_cookie(
                COOKIE, session_key(token()), httponly=True, samesite="Strict", path="/"
            )
            raise answer

        async def dashboard_page(request: web.Request) -> web.Response:
            if not _signed_in(request, token()):
                return sign_in(request)
            params = _params(request, {"period", "lookup"})
            period = _period(params)
            lookup = _key(params.get("lookup", ""))
            data = await numbers(period)
            record = None
            if lookup:
                store_now = transactions()
                record = await on_store(lambda: store_now.lookup(lookup))
            return _html(
                page(
                    data, hostname=current().settings.gateway.hostname, lookup=lookup, record=record
                )
            )

        async def reports_html(request: web.Request) -> web.Response:
            if not _signed_in(request, token()):
                return sign_in(request)
            _params(request, set())
            found = report_store()
            try:
                async with asyncio.timeout(STORE_TIMEOUT):
                    fragment = await reports_view(found, clock())
            except Exception as exc:
                raise Problem(
                    503, "Store unavailable", f"the report store: {exc}", kind="unavailable"
                ) from None
            return _html(reports_page(fragment, hostname=current().settings.gateway.hostname))

        async def store_answers() -> None:
            """GET /health: the transactions store answers (a count)."""
            if current().settings.transactions.backend.value != "none" or store is not None:
                await transactions().count()

        routes.add_health("transactions", store_answers)
        html = {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}}
        signed = {
            "description": "Needs the bearer token or the sign-in cookie (POST /login); "
            "without either, 401 with the sign-in form",
            "security": [{"bearer": []}, {"cookie": []}],
        }
        login_form = {"description": "Not signed in: the sign-in form", "content": html["content"]}
        schemes = routes.context.document.setdefault("components", {}).setdefault(
            "securitySchemes", {}
        )
        schemes["cookie"] = {
            "type": "apiKey",
            "in": "cookie",
            "name": COOKIE,
            "description": "Set by POST /login: a key derived from the token (the dashboard only)",
        }
        period_param = query("period", {"enum": list(PERIODS)}, "The window (default: day)")
        routes.add(
            "GET",
            "/",
            dashboard_page,
            access=Access.PUBLIC,  # checked here: a browser signs in with the form
            operation={
                **signed,
                "operationId": "dashboard",
                "summary": "The dashboard page (server-rendered HTML and SVG, no script)",
                "parameters": [
                    period_param,
                    query(
                        "lookup",
                        {"type": "string", "maxLength": MAX_KEY},
                        "A queue id or Message-ID to show",
                    ),
                ],
                "responses": {
                    "200": html,
                    "401": login_form,
                    **problem_answers("BadRequest", "Forbidden", "Unavailable"),
                },
            },
        )
        routes.add(
            "GET",
            "/reports",
            reports_html,
            access=Access.PUBLIC,  # checked here, as /
            operation={
                **signed,
                "operationId": "dashboardReports",
                "summary": "The DMARC reports view: pass rates, failing sources, this week",
                "responses": {
                    "200": html,
                    "401": login_form,
                    **problem_answers("BadRequest", "Forbidden", "Unavailable"),
                },
            },
        )
        routes.add(
            "POST",
            "/login",
            login,
            access=Access.PUBLIC,
            operation={
                "operationId": "dashboardLogin",
                "summary": "Sign the browser in to the dashboard: the token in, a cookie out",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "required": ["token"],
                                "properties": {"token": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {
                    "303": {"description": "Signed in: the cookie is set, on to the page"},
                    "401": login_form,
                    **problem_answers("BadRequest", "Forbidden", "TooLarge", "Unsupported"),
                },
            },
        )
        routes.add(
            "GET",
            "/v1/dashboard",
            dashboard_json,
            access=Access.ADMIN,
            operation={
                "operationId": "dashboardNumbers",
                "summary": "The dashboard's numbers for one window",
                "parameters": [period_param],
                "responses": {
                    "200": json_answer("The numbers the page shows", OVERVIEW_SCHEMA),
                    **problem_answers("BadRequest", "Unavailable"),
                },
            },
        )
        routes.add(
            "GET",
            "/v1/transactions",
            transaction_json,
            access=Access.ADMIN,
            operation={
                "operationId": "transaction",
                "summary": "One recent transaction with every check and its reason",
                "parameters": [
                    query(
                        "id",
                        {"type": "string", "maxLength": MAX_KEY},
                        "Queue id or Message-ID",
                        required=True,
                    )
                ],
                "responses": {
                    "200": json_answer("The transaction", TRANSACTION_SCHEMA),
                    "404": {
                        "description": "No transaction with that queue id or Message-ID",
                        "content": {
                            "application/problem+json": {
                                "schema": {"$ref": "#/components/schemas/Problem"}
                            }
                        },
                    },
                    **problem_answers("BadRequest", "Unavailable"),
                },
            },
        )

    return extension
