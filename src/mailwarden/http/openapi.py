"""The OpenAPI 3.1 document of the HTTP API: the parts every operation shares (schemas,
answers, the bearer scheme). Operations are added with their routes (`Routes.add`), so the
document and the handlers cannot drift apart; a property-based test drives every documented
operation and checks each answer against it."""

from __future__ import annotations

import copy
from typing import Any

from mailwarden import __version__

__all__ = ["base_document", "json_answer", "problem_answers", "query"]

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}

_BASE: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "mailwarden HTTP API",
        "version": __version__,
        "description": "Verdicts on messages, greylist administration, settings, health and "
        "metrics of a mailwarden gateway. Errors are RFC 9457 problem details.",
        "license": {"name": "see the LICENSE file", "identifier": "MIT"},
    },
    "paths": {},
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "[http] token or token_file of the settings (RFC 6750)",
            }
        },
        "schemas": {"Problem": _PROBLEM_SCHEMA},
        "responses": {
            name: {
                "description": text,
                "content": {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                },
            }
            for name, text in (
                ("BadRequest", "The query or the body cannot be used (the detail says why)"),
                ("Unauthorized", "No or a wrong bearer token"),
                ("Forbidden", "No token is configured: administrative endpoints are closed"),
                ("TooLarge", "The body is larger than [http] max_body"),
                ("TooSlow", "The body did not arrive within [http] body_timeout"),
                ("Unsupported", "The body is not of the media type the operation takes"),
                ("Unavailable", "A store or DNS does not answer, or the feature is off"),
            )
        },
    },
}


def base_document() -> dict[str, Any]:
    """A fresh copy of the shared parts, with no paths yet."""
    return copy.deepcopy(_BASE)


def query(
    name: str, schema: dict[str, Any], description: str, *, required: bool = False
) -> dict[str, Any]:
    """One query parameter (form style: a repeated parameter is an array)."""
    parameter = {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }
    if schema.get("type") == "array":
        parameter.update(style="form", explode=True)
    return parameter


def json_answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def problem_answers(*names: str) -> dict[str, Any]:
    """Answers by status from the shared ones: "400" -> BadRequest, ..."""
    codes = {
        "BadRequest": "400",
        "Unauthorized": "401",
        "Forbidden": "403",
        "TooSlow": "408",
        "TooLarge": "413",
        "Unsupported": "415",
        "Unavailable": "503",
    }
    return {codes[n]: {"$ref": f"#/components/responses/{n}"} for n in names}
