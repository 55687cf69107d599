"""mailwarden.http: the HTTP API (aiohttp): verdicts on messages, greylist administration, the
settings with secrets hidden, health, Prometheus metrics and its OpenAPI document.

    app = make_app(settings, pipeline, extensions=[dashboard])   # an aiohttp Application
    async with serving(settings, pipeline, ("127.0.0.1", 8025)) as server: ...

A front end like the others: it translates HTTP into calls on the one pipeline. Extensions
(callables taking `Routes`) add routes with their access and OpenAPI operation.
"""

from .app import CONTEXT, Access, Context, Extension, Routes, make_app
from .problem import PROBLEM_TYPE, Problem
from .server import HTTPServer, serving

__all__ = [
    "CONTEXT",
    "PROBLEM_TYPE",
    "Access",
    "Context",
    "Extension",
    "HTTPServer",
    "Problem",
    "Routes",
    "make_app",
    "serving",
]
