"""mailwarden.dashboard: what a mail administrator wants to see at a glance, at `GET /`.

Verdicts over time by action, the top symbols, the top sender domains with their DMARC pass
rate, the clients refused most, greylisting, DNS health, and one transaction looked up by
queue id or Message-ID with every check and its reason; drawn on the server as SVG, no
script and no network access. The same numbers as JSON under /v1/. Plugged into the HTTP API
through its extension point: `make_app(settings, pipeline, extensions=[dashboard()])`.
"""

from __future__ import annotations

from .data import PERIODS, overview
from .page import page, reports_page
from .routes import dashboard

__all__ = ["PERIODS", "dashboard", "overview", "page", "reports_page"]
