"""The submission server: the gateway's SMTP machinery on 587 (STARTTLS) and 465 (TLS).

`Submission.build(settings, pipeline)` makes every part from the one `Settings`: the user
store, the counters (SQLite in the data directory, or Redis), brute-force protection, rate
limits, compromise detection, the signer, and one `Gateway` per listener, both with the
submission checks, the authenticator, and the smarthost behind the accounting relay.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from mailwarden import metrics
from mailwarden.gateway import Downstream, DownstreamRelay, Gateway, TransactionLog
from mailwarden.pipeline import Pipeline
from mailwarden.ratelimit import CounterStore, RedisCounterStore, SQLiteCounterStore
from mailwarden.settings import (
    GatewaySettings,
    Settings,
    StrictAction,
    SubmissionSettings,
)
from mailwarden.signing import Signer

from .alerts import Alerts
from .auth import SubmissionAuth
from .bruteforce import BruteForceGuard
from .checks import SubmissionChecks
from .compromise import CompromiseDetector
from .limits import RateLimiter
from .relay import AccountingRelay
from .users import Passwords, UserStore

__all__ = ["Submission", "counter_store", "listener_settings", "user_store"]


def user_store(settings: Settings, *, clock: Callable[[], float] = time.time) -> UserStore:
    """The user store the settings name (users.sqlite3 in the data directory by default)."""
    path = settings.submission.users_file or str(Path(settings.gateway.data_dir) / "users.sqlite3")
    return UserStore(path, clock=clock)


def counter_store(settings: Settings) -> CounterStore:
    """Rate limits, failed logins and history: Redis when shared, else SQLite."""
    if settings.submission.redis:
        return RedisCounterStore.from_url(settings.submission.redis)
    return SQLiteCounterStore(Path(settings.gateway.data_dir) / "submission.sqlite3")


def listener_settings(settings: Settings, listen: tuple[str, int]) -> GatewaySettings:
    """The gateway settings of one submission listener: no greet pause (clients are mail
    programs, not bots to tire out), no local domains (every recipient is relayed for an
    authenticated user), the smarthost downstream."""
    config = settings.submission
    return GatewaySettings(
        listen=listen,
        hostname=config.hostname or settings.gateway.hostname,
        relay_to=config.smarthost,
        greet_pause=0.0,
        pregreet_action=StrictAction.LOG,
        data_dir=settings.gateway.data_dir,
        log_file=config.log_file,
        limits=config.limits,
        timeouts=config.timeouts,
        tls=config.tls,
    )


@dataclass
class Submission:
    """The running parts; `async with submission:` listens on every configured port."""

    settings: SubmissionSettings
    users: UserStore
    counters: CounterStore
    checks: SubmissionChecks
    auth: SubmissionAuth
    detector: CompromiseDetector
    alerts: Alerts
    gateways: list[Gateway]

    @classmethod
    def build(
        cls,
        settings: Settings,
        pipeline: Pipeline,
        *,
        counters: CounterStore | None = None,
        signer: Signer | None = None,
        relay: Downstream | None = None,
        log: TransactionLog | None = None,
        tls_context: ssl.SSLContext | None = None,
        alerts: Alerts | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> Submission:
        """Raises ValueError (a key file, no TLS) or OSError (a store) for the caller."""
        config = settings.submission
        hostname = config.hostname or settings.gateway.hostname
        users = user_store(settings, clock=clock)
        counters = counters if counters is not None else counter_store(settings)
        alerts = (
            alerts if alerts is not None else Alerts(config.compromise.webhook, metric=_count_alert)
        )
        detector = CompromiseDetector(counters, config.compromise, users, alerts)
        guard = BruteForceGuard(counters, config.bruteforce)
        extra = {"sleep": sleep} if sleep is not None else {}
        auth = SubmissionAuth(
            users,
            Passwords(config.argon2),
            guard,
            detector,
            cache_ttl=config.auth_cache,
            clock=clock,
            **extra,
        )
        checks = SubmissionChecks(
            config,
            pipeline,
            users,
            RateLimiter(counters, config.rate),
            signer if signer is not None else Signer.from_settings(settings),
            detector,
            hostname=hostname,
            clock=clock,
        )
        if relay is None:
            host, port = config.smarthost
            relay = DownstreamRelay(host, port, helo_name=hostname, timeouts=config.timeouts)
        accounting = AccountingRelay(relay, checks)
        log = log if log is not None else TransactionLog(config.log_file)
        gateways = []
        for listen, implicit in ((config.listen, False), (config.listen_tls, True)):
            if listen is None:
                continue
            gateway = Gateway(
                listener_settings(settings, listen),
                checks,
                relay=accounting,
                log=log,
                tls_context=tls_context,
                clock=clock,
                auth=auth,
                implicit_tls=implicit,
            )
            if gateway.tls_context is None:
                raise ValueError("submission needs TLS: set [submission.tls] cert_file")
            tls_context = gateway.tls_context  # one pair for both listeners
            gateways.append(gateway)
        return cls(config, users, counters, checks, auth, detector, alerts, gateways)

    async def start(self) -> None:
        for gateway in self.gateways:
            await gateway.start()

    async def stop_accepting(self) -> None:
        """No new connections on any listener (an orderly stop)."""
        for gateway in self.gateways:
            await gateway.stop_accepting()

    async def wait_idle(self, seconds: float) -> bool:
        """Wait up to `seconds` for every listener's connections to end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        idle = True
        for gateway in self.gateways:
            idle = await gateway.wait_idle(max(0.0, deadline - loop.time())) and idle
        return idle

    def replace_pipeline(self, pipeline: Pipeline) -> None:
        """A reload: the checks from now on use `pipeline`."""
        self.checks.pipeline = pipeline

    async def close(self) -> None:
        for gateway in self.gateways:
            await gateway.close()
        await self.counters.close()
        self.users.close()

    async def __aenter__(self) -> Submission:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) bound by each listener: 587's first, then 465's."""
        return [gateway.address for gateway in self.gateways]


def _count_alert(name: str, labels: dict[str, str]) -> None:
    """The alert counter of /metrics (mailwarden_submission_alerts_total)."""
    metrics.account_alert(labels.get("sign", ""))
