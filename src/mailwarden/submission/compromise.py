"""Signs that an account was stolen, each against a threshold learnt from its own history.

A stolen password shows in what the account sends (Exim's well-known recipe freezes a user
after 100 nonexistent recipients in an hour): a day's volume far above the user's busiest day
of the last `history_days`, many first-time recipients measured the same way, many recipients
the smarthost refused as nonexistent (5.1.x) or for any reason, outbound mail our own policy
scores as spam, logins from many addresses. Volume-like signs compare today with
`factor x` the busiest day of the user's history (and a floor), so a month-end burst of a
known sender, present in that history, raises nothing, while a quiet account that suddenly
sends hundreds does. A sign holds the account (its mail is refused with a clear message),
raises an alert, and waits for `mailwarden user release`; for a day after a release the
learnt thresholds stay quiet (the administrator vouched for today's volume).
"""

from __future__ import annotations

import asyncio
from enum import StrEnum

from mailwarden.ratelimit import DAY, HOUR, Charge, CounterStore, Window
from mailwarden.settings import CompromiseSettings

from .alerts import Alert, Alerts
from .bruteforce import client_network
from .users import UserStore

__all__ = ["CompromiseDetector", "CompromiseSign"]

SECONDS_A_DAY = 86_400


class CompromiseSign(StrEnum):
    VOLUME = "volume"
    FIRST_TIME = "first_time_recipients"
    NONEXISTENT = "nonexistent_recipients"
    REFUSED = "refused_recipients"
    SPAM = "outbound_spam"
    LOGINS = "login_addresses"


class CompromiseDetector:
    """Watches each account; holds it in the user store and alerts on a sign."""

    def __init__(
        self, store: CounterStore, config: CompromiseSettings, users: UserStore, alerts: Alerts
    ) -> None:
        self.store = store
        self.config = config
        self.users = users
        self.alerts = alerts
        days = config.history_days
        self.history = Window("history", days * SECONDS_A_DAY, days)

    @staticmethod
    def release_keys(user: str) -> list[str]:
        """The counters a release starts again (the learnt history is kept)."""
        return [f"cx:nx:{user}", f"cx:refused:{user}", f"cx:spam:{user}"]

    async def _learnt(
        self, sign: CompromiseSign, user: str, key: str, now: float, factor: float, floor: int
    ) -> None:
        """Hold when today's count passes max(floor, factor x the busiest earlier day)."""
        days = await self.store.history(key, self.history, now)
        today, peak = days[-1], max(days[:-1], default=0)
        threshold = max(float(floor), factor * peak)
        if today > threshold and not await self._grace(user, now):
            reason = (
                f"{sign.value.replace('_', ' ')}: {today} today, above {threshold:g} "
                f"(busiest of the last {len(days) - 1} days: {peak})"
            )
            numbers = {"today": float(today), "threshold": threshold, "peak": float(peak)}
            await self.hold(user, sign, reason, numbers)

    async def _grace(self, user: str, now: float) -> bool:
        record = await asyncio.to_thread(self.users.get, user)
        released = record.released_at if record is not None else None
        return released is not None and now - released < SECONDS_A_DAY

    async def _counted(
        self,
        sign: CompromiseSign,
        user: str,
        key: str,
        window: Window,
        amount: int,
        limit: int,
        now: float,
        words: str,
    ) -> None:
        if amount <= 0:
            return
        await self.store.charge([Charge(key, window, amount)], now)
        count = await self.store.count(key, window, now)
        if count >= limit:
            reason = f"{sign.value.replace('_', ' ')}: {count} {words} (limit {limit})"
            await self.hold(user, sign, reason, {"count": float(count), "limit": float(limit)})

    async def accepted(self, user: str, first_time: int, now: float) -> None:
        """The smarthost accepted a message of `user` with `first_time` new recipients."""
        if not self.config.enabled:
            return
        config = self.config
        charges = [Charge(f"cx:msgs:{user}", self.history, 1)]
        if first_time:
            charges.append(Charge(f"cx:new:{user}", self.history, first_time))
        await self.store.charge(charges, now)
        await self._learnt(
            CompromiseSign.VOLUME,
            user,
            f"cx:msgs:{user}",
            now,
            config.volume_factor,
            config.volume_floor,
        )
        if first_time:
            await self._learnt(
                CompromiseSign.FIRST_TIME,
                user,
                f"cx:new:{user}",
                now,
                config.first_time_factor,
                config.first_time_floor,
            )

    async def refused(self, user: str, nonexistent: int, refused: int, now: float) -> None:
        """The smarthost refused recipients of `user` (`nonexistent` of them with 5.1.x)."""
        if not self.config.enabled:
            return
        await self._counted(
            CompromiseSign.NONEXISTENT,
            user,
            f"cx:nx:{user}",
            HOUR,
            nonexistent,
            self.config.nonexistent_per_hour,
            now,
            "nonexistent recipients in an hour",
        )
        await self._counted(
            CompromiseSign.REFUSED,
            user,
            f"cx:refused:{user}",
            HOUR,
            refused,
            self.config.refused_per_hour,
            now,
            "recipients refused downstream in an hour",
        )

    async def spam(self, user: str, now: float) -> None:
        """Our own policy scored an outbound message of `user` as spam."""
        if self.config.enabled:
            await self._counted(
                CompromiseSign.SPAM,
                user,
                f"cx:spam:{user}",
                DAY,
                1,
                self.config.spam_per_day,
                now,
                "outbound messages scored as spam in a day",
            )

    async def login(self, user: str, ip: str, now: float) -> None:
        """`user` logged in from `ip`: count distinct addresses a day."""
        if not self.config.enabled:
            return
        day = int(now // SECONDS_A_DAY)
        new = await self.store.mark(
            f"cx:addr:{user}:{day}", [client_network(ip)], now, 2 * SECONDS_A_DAY
        )
        if not new:
            return
        await self.store.charge([Charge(f"cx:logins:{user}", self.history, 1)], now)
        config = self.config
        await self._learnt(
            CompromiseSign.LOGINS,
            user,
            f"cx:logins:{user}",
            now,
            config.login_addresses_factor,
            config.login_addresses_floor,
        )

    async def hold(
        self, user: str, sign: CompromiseSign, reason: str, numbers: dict[str, float]
    ) -> None:
        """Hold the account (once) and raise the alert."""
        if await asyncio.to_thread(self.users.hold, user, reason):
            await self.alerts.raise_alert(Alert(user, sign.value, reason, numbers))
