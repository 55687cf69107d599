"""Errors as RFC 9457 problem details (`application/problem+json`): every error the HTTP API
answers, from a bad query to a missing token, is one of these; never a traceback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from mailwarden.jsontext import dumps

__all__ = ["PROBLEM_TYPE", "Problem", "problem_response"]

PROBLEM_TYPE = "application/problem+json"
# RFC 9457 §4.2: "about:blank" means the status code says it all; ours add a `detail`.
_BASE = "https://mailwarden.invalid/problems/"


class Problem(Exception):
    """Raised by a handler: answered as problem JSON with `status`, `title` and `detail`;
    `kind` (a short slug) makes the `type` URI clients can match on (RFC 9457 §3.1.1)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        kind: str = "",
        headers: Mapping[str, str] | None = None,
        close: bool = False,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.headers = dict(headers or {})
        self.close = close  # end the connection after the answer (a body left unread)
        self.extra = extra

    def response(self, instance: str = "") -> web.Response:
        body: dict[str, Any] = {
            "type": _BASE + self.kind if self.kind else "about:blank",
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        response = web.Response(
            status=self.status,
            body=dumps(body).encode("utf-8"),
            content_type=PROBLEM_TYPE,
            headers=self.headers,
        )
        if self.close:
            response.force_close()
        return response


def problem_response(status: int, title: str, detail: str = "", **extra: Any) -> web.Response:
    """A problem answer built in place (see `Problem`)."""
    return Problem(status, title, detail, **extra).response()
