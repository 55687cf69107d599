"""Alerts about accounts: a log line, a metric hook, and an optional webhook POST.

An alert says which account, which sign, the numbers behind it and what was done (the hold).
The webhook gets the same JSON object; a webhook that fails is logged, never retried in a loop,
and never delays the SMTP answer by more than its timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Alert", "Alerts"]

log = logging.getLogger("mailwarden.submission")
WEBHOOK_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Alert:
    user: str
    sign: str  # the CompromiseSign value
    reason: str
    numbers: dict[str, float] = field(default_factory=dict)
    action: str = "held"

    def to_dict(self) -> dict[str, object]:
        return {
            "type": "alert",
            "user": self.user,
            "sign": self.sign,
            "reason": self.reason,
            "numbers": dict(self.numbers),
            "action": self.action,
        }


class Alerts:
    """Where alerts go. `metric(name, labels)` is called once per alert (a counter)."""

    def __init__(
        self,
        webhook: str = "",
        *,
        metric: Callable[[str, dict[str, str]], None] | None = None,
        post: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.webhook = webhook
        self.metric = metric
        self._post = post or _post
        self.sent: list[Alert] = []

    async def raise_alert(self, alert: Alert) -> None:
        self.sent.append(alert)
        del self.sent[:-100]
        payload = alert.to_dict()
        log.warning("account alert: %s", json.dumps(payload, sort_keys=True))
        if self.metric is not None:
            try:
                self.metric("mailwarden_submission_alerts_total", {"sign": alert.sign})
            except Exception:
                log.exception("the alert metric hook failed")
        if self.webhook:
            body = json.dumps(payload).encode("utf-8")
            try:
                async with asyncio.timeout(WEBHOOK_TIMEOUT + 1):
                    await asyncio.to_thread(self._post, self.webhook, body)
            except Exception as exc:
                log.warning("alert webhook %s failed: %s", self.webhook, exc)


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:
        response.read(1024)
