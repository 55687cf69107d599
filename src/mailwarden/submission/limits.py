"""Rate limits of the submission server: per user, per client address, per sender domain.

Each accepted message is charged once, at the end of DATA, against every window at once
(messages a minute, an hour, a day; recipients a day; first-time recipients a day): all the
charges go in atomically or none does (`CounterStore.charge`), so concurrent sessions never
pass a limit together. The charge is a reservation: when the smarthost then refuses the
message it is refunded, so only accepted messages count, never attempts. A refusal is
451 4.7.1 naming the limit reached. The recipients-per-message limit is answered at RCPT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mailwarden.ratelimit import DAY, HOUR, MINUTE, Charge, CounterStore, Window
from mailwarden.reply import SMTPReply
from mailwarden.settings import RateLimits, RateSettings

__all__ = ["FIRST_TIME_MEMORY", "RateLimiter", "Reservation"]

FIRST_TIME_MEMORY = 400 * 86_400.0  # a recipient unwritten to for longer is first-time again
_WINDOW_WORDS = {MINUTE.name: "a minute", HOUR.name: "an hour", DAY.name: "a day"}


@dataclass(slots=True)
class Reservation:
    """What one message was charged, to be confirmed or refunded."""

    user: str
    charges: list[Charge]
    first_time: list[str]  # recipients the user never wrote to before
    now: float
    describe: dict[Charge, str] = field(default_factory=dict)


class RateLimiter:
    """The limits of `[submission.rate]` on a CounterStore."""

    def __init__(self, store: CounterStore, config: RateSettings) -> None:
        self.store = store
        self.config = config

    def recipients_per_message(self, user: str, domain: str) -> int:
        """The per-message recipient limit of `user` (0: none)."""
        return self.config.for_user(user, domain).recipients_per_message

    def _subjects(self, user: str, domain: str, client: str) -> list[tuple[str, str, RateLimits]]:
        config = self.config
        return [
            (f"user:{user}", f"user {user}", config.for_user(user, domain)),
            (f"client:{client}", f"client {client}", config.client),
            (f"domain:{domain}", f"domain {domain}", config.domain),
        ]

    async def reserve(
        self, user: str, domain: str, client: str, rcpts: Sequence[str], now: float
    ) -> tuple[Reservation, SMTPReply | None]:
        """Charge one message; the reservation and, past a limit, the refusal (nothing is
        charged then)."""
        first_time = await self.store.mark(
            f"sent:{user}", [r.lower() for r in rcpts], now, FIRST_TIME_MEMORY, record=False
        )
        reservation = Reservation(user, [], first_time, now)
        for key, who, limits in self._subjects(user, domain, client):
            messages: list[tuple[Window, int]] = [
                (MINUTE, limits.messages_per_minute),
                (HOUR, limits.messages_per_hour),
                (DAY, limits.messages_per_day),
            ]
            for window, limit in messages:
                self._add(
                    reservation,
                    Charge(f"msgs:{key}", window, 1, limit or None),
                    f"{who} may send {limit} messages {_WINDOW_WORDS[window.name]}",
                )
            self._add(
                reservation,
                Charge(f"rcpts:{key}", DAY, len(rcpts), limits.recipients_per_day or None),
                f"{who} may send to {limits.recipients_per_day} recipients a day",
            )
            self._add(
                reservation,
                Charge(
                    f"new:{key}", DAY, len(first_time), limits.first_time_recipients_per_day or None
                ),
                f"{who} may write to {limits.first_time_recipients_per_day} new recipients a day",
            )
        refused = await self.store.charge(reservation.charges, now)
        if refused is None:
            return reservation, None
        reservation.charges = []
        why = reservation.describe[refused]
        return reservation, SMTPReply(451, "4.7.1", f"Rate limit reached ({why}); try again later")

    @staticmethod
    def _add(reservation: Reservation, charge: Charge, text: str) -> None:
        reservation.charges.append(charge)
        reservation.describe[charge] = text

    async def confirm(self, reservation: Reservation, delivered_to: Sequence[str]) -> None:
        """The smarthost accepted the message: its recipients are known from now on."""
        if delivered_to:
            await self.store.mark(
                f"sent:{reservation.user}",
                [r.lower() for r in delivered_to],
                reservation.now,
                FIRST_TIME_MEMORY,
            )

    async def refund(self, reservation: Reservation) -> None:
        """The smarthost refused the message: take its charges back."""
        if reservation.charges:
            back = [Charge(c.key, c.window, -c.amount) for c in reservation.charges if c.amount]
            reservation.charges = []
            await self.store.charge(back, reservation.now)
