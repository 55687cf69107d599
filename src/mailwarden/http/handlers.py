"""The HTTP API's own routes: verdicts, greylist administration, settings, health, metrics
and the OpenAPI document. Each handler only translates HTTP into calls on the pipeline or a
store and back; the checks, the greylist serializers and the settings view are shared with
the command line."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiohttp import web
from multidict import MultiMapping

from mailwarden import metrics
from mailwarden.dns import DNSError, NoData, NXDomain, RdType
from mailwarden.dns.cache import CachingResolver
from mailwarden.greylist import AllowEntry, GreylistStore, parse_allow_target
from mailwarden.greylist import admin as greylist_admin
from mailwarden.ipinput import parse_ip_input
from mailwarden.jsontext import dumps
from mailwarden.message import MessageError, read_message
from mailwarden.pipeline.inputs import parse_helo, parse_mail_from
from mailwarden.settings.view import redacted

from .app import CONTEXT, Access, Context, Routes
from .openapi import json_answer, problem_answers, query
from .problem import Problem

__all__ = ["core_routes"]

T = TypeVar("T")

MAX_LIMIT = 10_000_000  # as `greylist list --limit`
MAX_DAYS = 36_525  # as `greylist allow --days`
STORE_TIMEOUT = 10.0  # seconds a greylist store may take to answer one request
MESSAGE_TYPE = "message/rfc822"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=dumps(data).encode("utf-8"), content_type="application/json"
    )


def _context(request: web.Request) -> Context:
    return request.app[CONTEXT]


def _single(params: MultiMapping[str], allowed: set[str], repeatable: set[str]) -> None:
    """Unknown parameters and repeated single ones are mistakes: 400 naming them."""
    for name in set(params):
        if name not in allowed:
            raise Problem(
                400, "Unknown parameter", f"unknown query parameter {name!r}", kind="bad-query"
            )
        if name not in repeatable and len(params.getall(name)) > 1:
            raise Problem(
                400, "Repeated parameter", f"{name!r} given more than once", kind="bad-query"
            )


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The whole body within [http] body_timeout and max_body: 408 and 413 otherwise."""
    settings = _context(request).settings.http
    if request.content_length is not None and request.content_length > limit:
        raise Problem(
            413,
            "Body too large",
            f"at most {limit} bytes ([http] max_body)",
            kind="too-large",
            close=True,
        )
    try:
        async with asyncio.timeout(settings.body_timeout):
            return await request.read()
    except TimeoutError:
        raise Problem(
            408,
            "Body too slow",
            f"the body did not arrive within {settings.body_timeout:g} s ([http] body_timeout)",
            kind="too-slow",
            close=True,
        ) from None


# -- POST /v1/check ------------------------------------------------------------------------

_CHECK_PARAMS = {"ip", "helo", "mail_from", "rcpt"}


async def check(request: web.Request) -> web.Response:
    """The verdict on a message: the JSON of `mailwarden check --json`."""
    context = _context(request)
    params = request.query
    _single(params, _CHECK_PARAMS, {"rcpt"})
    if request.content_type != MESSAGE_TYPE:
        raise Problem(
            415,
            "Unsupported media type",
            f"send the raw message as {MESSAGE_TYPE}, not {request.content_type}",
            kind="media-type",
        )
    for name in ("ip", "helo"):
        if name not in params:
            raise Problem(400, "Missing parameter", f"{name!r} is required", kind="bad-query")
    rcpt = params.getall("rcpt", [])
    most = context.settings.gateway.limits.max_recipients
    if len(rcpt) > most:
        raise Problem(400, "Too many recipients", f"at most {most} rcpt", kind="bad-query")
    try:
        ip = parse_ip_input(params["ip"], "ip")
        helo = parse_helo(params["helo"])
        mail_from = parse_mail_from(params.get("mail_from", ""))
        for address in rcpt:
            if not address.strip() or not address.isprintable():
                raise ValueError(f"invalid rcpt {address!r}")
    except ValueError as exc:
        raise Problem(400, "Bad parameter", str(exc), kind="bad-query") from None
    body = await _read_body(request, context.settings.http.max_body)
    try:
        message = read_message(body)
    except MessageError as exc:
        raise Problem(400, "Unreadable message", str(exc), kind="bad-message") from None
    verdict = await context.pipeline.check(
        message, ip=ip, helo=helo, mail_from=mail_from, rcpt=tuple(rcpt)
    )
    return _json(verdict.to_dict())


# -- greylist administration ---------------------------------------------------------------


def _store(context: Context) -> GreylistStore:
    if context.greylist is None:
        raise Problem(503, "Greylisting is off", "[greylist] enabled = false", kind="greylist-off")
    return context.greylist


async def _on_store(work: Awaitable[T]) -> T:
    """A store call within STORE_TIMEOUT; a store that fails or hangs is a 503."""
    try:
        async with asyncio.timeout(STORE_TIMEOUT):
            return await work
    except TimeoutError:
        raise Problem(
            503, "Greylist store unavailable", "no answer in time", kind="store"
        ) from None
    except (OSError, ConnectionError) as exc:
        raise Problem(503, "Greylist store unavailable", str(exc), kind="store") from None
    except Exception as exc:
        if type(exc).__module__.startswith(("redis", "sqlite3")):
            detail = f"{type(exc).__name__}: {exc}"
            raise Problem(503, "Greylist store unavailable", detail, kind="store") from None
        raise


async def greylist_list(request: web.Request) -> web.Response:
    """`greylist list`: triplets, allow entries and network counters."""
    context = _context(request)
    params = request.query
    _single(params, {"state", "limit"}, set())
    state = params.get("state", "all")
    if state not in ("all", "pending", "passed"):
        raise Problem(400, "Bad parameter", "state is all, pending or passed", kind="bad-query")
    text = params.get("limit", "1000")
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise Problem(
            400, "Bad parameter", f"limit is a whole number 1..{MAX_LIMIT}", kind="bad-query"
        )
    store = _store(context)
    return _json(await _on_store(greylist_admin.listing(store, time.time(), state, int(text))))


async def _json_body(request: web.Request, allowed: dict[str, tuple[type, ...]]) -> dict[str, Any]:
    """A JSON object body with only `allowed` keys of the given types: 400/415 otherwise."""
    if request.content_type != "application/json":
        raise Problem(415, "Unsupported media type", "send application/json", kind="media-type")
    raw = await _read_body(request, _context(request).settings.http.max_body)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Problem(400, "Bad JSON", f"not a JSON document: {exc}", kind="bad-body") from None
    if not isinstance(data, dict):
        raise Problem(400, "Bad JSON", "expected a JSON object", kind="bad-body")
    for key, value in data.items():
        if key not in allowed:
            raise Problem(400, "Bad JSON", f"unknown key {key!r}", kind="bad-body")
        types = allowed[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise Problem(400, "Bad JSON", f"{key!r} has the wrong type", kind="bad-body")
    return data


def _target(data: dict[str, Any]) -> str:
    target = data.get("target")
    if not isinstance(target, str):
        raise Problem(400, "Bad JSON", '"target" is required', kind="bad-body")
    return target


async def greylist_allow(request: web.Request) -> web.Response:
    """`greylist allow`: never greylist an address, network, domain or sender."""
    context = _context(request)
    _single(request.query, set(), set())
    data = await _json_body(request, {"target": (str,), "days": (int, float), "note": (str,)})
    days = data.get("days")
    if days is not None:
        try:
            days = float(days)  # a JSON integer may have 400 digits: too large for a float
        except OverflowError:
            days = math.inf
        if not math.isfinite(days) or not 0 < days <= MAX_DAYS:
            detail = f'"days" is a number in (0, {MAX_DAYS}]'
            raise Problem(400, "Bad JSON", detail, kind="bad-body")
    note = data.get("note", "")
    if not note.isprintable() or len(note) > 1000:
        raise Problem(
            400, "Bad JSON", '"note" is one printable line (at most 1000)', kind="bad-body"
        )
    try:
        target = parse_allow_target(_target(data))
    except ValueError as exc:
        raise Problem(400, "Bad target", str(exc), kind="bad-target") from None
    store = _store(context)
    now = time.time()
    entry = AllowEntry(target, now, now + days * 86_400 if days else None, note)
    await _on_store(store.allow(entry))
    return _json(greylist_admin.allow_dict(entry))


async def greylist_forget(request: web.Request) -> web.Response:
    """`greylist forget`: remove what is known about a target."""
    context = _context(request)
    _single(request.query, set(), set())
    data = await _json_body(request, {"target": (str,)})
    target = _target(data)
    try:
        plan = greylist_admin.forget_plan(target)
    except ValueError as exc:
        raise Problem(400, "Bad target", str(exc), kind="bad-target") from None
    store = _store(context)
    counts = await _on_store(greylist_admin.forget(store, plan))
    return _json({"target": target, **counts})


# -- settings, health, metrics, document ---------------------------------------------------


async def settings_view(request: web.Request) -> web.Response:
    """The settings in force, with passwords, tokens and keys hidden."""
    _single(request.query, set(), set())
    context = _context(request)
    return _json({"source": context.settings.source, **redacted(context.settings)})


async def _probe(what: Awaitable[Any], seconds: float) -> str:
    try:
        async with asyncio.timeout(seconds):
            await what
    except (NXDomain, NoData):
        return "ok"  # an answer, even a negative one, is a DNS that works
    except TimeoutError:
        return f"no answer within {seconds:g} s"
    except DNSError as exc:
        return f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


async def health(request: web.Request) -> web.Response:
    """Ready (200) only when DNS and the stores answer; 503 with the reasons otherwise."""
    context = _context(request)
    dns = context.settings.dns
    resolver = context.pipeline.resolver
    inner = (
        resolver.inner if isinstance(resolver, CachingResolver) else resolver
    )  # not a cached answer
    probes: dict[str, Awaitable[Any]] = {
        "dns": inner.resolve(context.settings.http.health_name, RdType.SOA)
    }
    probes.update((name, probe()) for name, probe in context.health_probes().items())
    dns_seconds = dns.timeout * (dns.retries + 1) + 1
    names = list(probes)
    outcomes = await asyncio.gather(
        *(_probe(probes[n], dns_seconds if n == "dns" else STORE_TIMEOUT) for n in names)
    )
    checks = dict(zip(names, outcomes, strict=True))
    failing = {name: outcome for name, outcome in checks.items() if outcome != "ok"}
    if failing:
        detail = "; ".join(f"{name}: {why}" for name, why in failing.items())
        raise Problem(503, "Not ready", detail, kind="not-ready", checks=checks)
    return _json({"status": "ok", "checks": checks})


async def metrics_text(request: web.Request) -> web.Response:
    """Every metric, in the Prometheus text format."""
    body, content_type = metrics.exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


async def openapi(request: web.Request) -> web.Response:
    return _json(_context(request).document)


# -- the routes and their documentation ----------------------------------------------------

_STRING = {"type": "string"}
_TIME = {"type": ["string", "null"], "description": "ISO 8601, UTC"}
_ROW_PROBLEM = {"type": "string", "description": "what is wrong with a stored row"}

ENTRY_SCHEMA = {
    "type": "object",
    "required": ["origin", "sender", "recipient", "state", "attempts"],
    "properties": {
        "origin": _STRING,
        "sender": _STRING,
        "recipient": _STRING,
        "state": {"enum": ["pending", "passed"]},
        "first_seen": _TIME,
        "last_seen": _TIME,
        "attempts": {"type": "integer"},
        "passed_at": _TIME,
        "expires_at": _TIME,
        "problem": _ROW_PROBLEM,
    },
}
ALLOW_SCHEMA = {
    "type": "object",
    "required": ["target", "added_at", "expires_at", "note"],
    "properties": {
        "target": _STRING,
        "added_at": _TIME,
        "expires_at": _TIME,
        "note": _STRING,
        "problem": _ROW_PROBLEM,
    },
}
NETWORK_SCHEMA = {
    "type": "object",
    "required": ["network", "passes", "expires_at"],
    "properties": {
        "network": _STRING,
        "passes": {"type": "integer"},
        "expires_at": _TIME,
        "problem": _ROW_PROBLEM,
    },
}
VERDICT_SCHEMA = {
    "type": "object",
    "description": "The JSON of `mailwarden check --json` (keys are added, never renamed)",
    "required": [
        "spf",
        "dkim",
        "dmarc",
        "arc",
        "authentication_results",
        "iprev",
        "helo",
        "dnsbl",
        "policy",
    ],
    "properties": {
        "spf": {"type": "object"},
        "dkim": {"type": "array", "items": {"type": "object"}},
        "dmarc": {"type": "object"},
        "arc": {"type": "object"},
        "authentication_results": _STRING,
        "iprev": {"type": ["object", "null"]},
        "helo": {"type": ["object", "null"]},
        "dnsbl": {"type": "object", "required": ["ip", "domains"]},
        "policy": {"type": "object", "required": ["action"]},
    },
}
# The document promises a little less than the handlers take (printable ASCII where they take
# any printable text), so that everything it allows is accepted.
_IP = {"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]}
_DOMAIN = r"([a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\.){1,4}[a-z]{2,20}"
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_WORD = {"type": "string", "pattern": "^[!-~]{1,200}$"}  # printable ASCII, no space
TARGET = {
    "description": "an IP address, a network (CIDR), a sender domain or a sender address",
    "anyOf": [
        *_IP["anyOf"],
        {"type": "string", "pattern": rf"^({_OCTET}\.){{3}}{_OCTET}/(3[0-2]|[12]?[0-9])$"},
        {"type": "string", "pattern": f"^{_DOMAIN}$"},
        {"type": "string", "pattern": f"^[a-z0-9._+-]{{1,30}}@{_DOMAIN}$"},
    ],
}


def _json_body_spec(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def core_routes(routes: Routes) -> None:
    """The API's own routes, with their OpenAPI operations."""
    most_rcpt = routes.settings.gateway.limits.max_recipients
    routes.add(
        "POST",
        "/v1/check",
        check,
        access=Access.CHECK,
        operation={
            "operationId": "check",
            "summary": "The verdict on a message (as `mailwarden check --json`)",
            "parameters": [
                query("ip", _IP, "Client IP address", required=True),
                query("helo", _WORD, "HELO/EHLO name", required=True),
                query(
                    "mail_from",
                    {"type": "string", "pattern": "^[ -~]{0,300}$"},
                    "Envelope sender; empty for <>",
                ),
                query(
                    "rcpt",
                    {"type": "array", "items": _WORD, "maxItems": most_rcpt},
                    "Recipients (at most [gateway.limits] max_recipients)",
                ),
            ],
            "requestBody": {
                "required": True,
                "content": {MESSAGE_TYPE: {"schema": {"type": "string", "format": "binary"}}},
            },
            "responses": {
                "200": json_answer("The verdict", VERDICT_SCHEMA),
                **problem_answers("BadRequest", "TooSlow", "TooLarge", "Unsupported"),
            },
        },
    )
    routes.add(
        "GET",
        "/v1/greylist",
        greylist_list,
        access=Access.ADMIN,
        operation={
            "operationId": "greylistList",
            "summary": "Greylist triplets, allow entries and auto-allow counters",
            "parameters": [
                query(
                    "state",
                    {"type": "string", "enum": ["all", "pending", "passed"]},
                    "Which triplets",
                ),
                query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "At most"),
            ],
            "responses": {
                "200": json_answer(
                    "The listing",
                    {
                        "type": "object",
                        "required": ["entries", "total", "allowed", "networks"],
                        "properties": {
                            "entries": {"type": "array", "items": ENTRY_SCHEMA},
                            "total": {"type": "integer", "minimum": 0},
                            "allowed": {"type": "array", "items": ALLOW_SCHEMA},
                            "networks": {"type": "array", "items": NETWORK_SCHEMA},
                        },
                    },
                ),
                **problem_answers("BadRequest", "Unavailable"),
            },
        },
    )
    routes.add(
        "POST",
        "/v1/greylist/allow",
        greylist_allow,
        access=Access.ADMIN,
        operation={
            "operationId": "greylistAllow",
            "summary": "Never greylist a target",
            "requestBody": _json_body_spec(
                {
                    "type": "object",
                    "required": ["target"],
                    "additionalProperties": False,
                    "properties": {
                        "target": TARGET,
                        "days": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DAYS},
                        "note": {"type": "string", "pattern": "^[ -~]{0,1000}$"},
                    },
                }
            ),
            "responses": {
                "200": json_answer("The allow entry", ALLOW_SCHEMA),
                **problem_answers(
                    "BadRequest", "TooSlow", "TooLarge", "Unsupported", "Unavailable"
                ),
            },
        },
    )
    routes.add(
        "POST",
        "/v1/greylist/forget",
        greylist_forget,
        access=Access.ADMIN,
        operation={
            "operationId": "greylistForget",
            "summary": "Remove what is known about a target",
            "requestBody": _json_body_spec(
                {
                    "type": "object",
                    "required": ["target"],
                    "additionalProperties": False,
                    "properties": {"target": TARGET},
                }
            ),
            "responses": {
                "200": json_answer(
                    "What was removed",
                    {
                        "type": "object",
                        "required": ["target", "triplets", "allow_entries", "network_counters"],
                        "properties": {
                            "target": _STRING,
                            "triplets": {"type": "integer", "minimum": 0},
                            "allow_entries": {"type": "integer", "minimum": 0},
                            "network_counters": {"type": "integer", "minimum": 0},
                        },
                    },
                ),
                **problem_answers(
                    "BadRequest", "TooSlow", "TooLarge", "Unsupported", "Unavailable"
                ),
            },
        },
    )
    routes.add(
        "GET",
        "/v1/settings",
        settings_view,
        access=Access.ADMIN,
        operation={
            "operationId": "settings",
            "summary": "The settings in force, secrets hidden",
            "responses": {
                "200": json_answer("The settings", {"type": "object", "required": ["source"]}),
                **problem_answers("BadRequest"),
            },
        },
    )
    routes.add(
        "GET",
        "/health",
        health,
        access=Access.PUBLIC,
        operation={
            "operationId": "health",
            "summary": "Ready only when DNS and the stores answer",
            "responses": {
                "200": json_answer(
                    "Ready",
                    {
                        "type": "object",
                        "required": ["status", "checks"],
                        "properties": {
                            "status": {"const": "ok"},
                            "checks": {"type": "object", "additionalProperties": {"const": "ok"}},
                        },
                    },
                ),
                **problem_answers("Unavailable"),
            },
        },
    )
    routes.add(
        "GET",
        "/metrics",
        metrics_text,
        access=Access.ADMIN,
        operation={
            "operationId": "metrics",
            "summary": "Prometheus metrics (text format)",
            "responses": {
                "200": {
                    "description": "The metrics",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        },
    )
    routes.add(
        "GET",
        "/openapi.json",
        openapi,
        access=Access.PUBLIC,
        operation={
            "operationId": "openapi",
            "summary": "This document",
            "responses": {"200": json_answer("OpenAPI 3.1", {"type": "object"})},
        },
    )
