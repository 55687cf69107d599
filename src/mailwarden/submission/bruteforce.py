"""Brute-force protection for SMTP AUTH: failures slow the answers down, then block.

Failed logins are counted per client network (an IPv4 address, an IPv6 /64: an attacker
rotates inside his prefix) and per account over a sliding window. After `slow_after` failures
each failed answer waits longer (doubling up to `max_delay`); past `block_client_after`
(`block_account_after`) every login from that client (for that account) is refused without
looking at the password, so a blocked attacker learns nothing even when he guesses right.
Addresses the owner logged in from recently escape the account block: an attacker elsewhere
cannot lock the owner out.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mailwarden.ratelimit import Charge, CounterStore, Window
from mailwarden.settings import BruteForceSettings

__all__ = ["Block", "BruteForceGuard", "client_network"]

DAY = 86_400.0


def client_network(ip: str) -> str:
    """The unit failures are counted by: the IPv4 address, or the IPv6 /64."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(frozen=True, slots=True)
class Block:
    """Why logins are refused now."""

    scope: str  # "client" or "account"
    failures: int

    @property
    def text(self) -> str:
        if self.scope == "client":
            return "Too many failed logins from your address; try again later"
        return "Too many failed logins for this account; try again later"


class BruteForceGuard:
    """Failed-login accounting on a CounterStore (shared through Redis when configured)."""

    def __init__(self, store: CounterStore, config: BruteForceSettings) -> None:
        self.store = store
        self.config = config
        seconds = int(config.window)
        self.window = Window("authfail", seconds, 60 if seconds % 60 == 0 else 1)

    def _keys(self, ip: str, user: str) -> tuple[str, str]:
        return f"authfail:client:{client_network(ip)}", f"authfail:user:{user}"

    def _known(self, user: str) -> str:
        return f"logins:{user}"

    async def blocked(self, ip: str, user: str, now: float) -> Block | None:
        """Whether a login from `ip` as `user` is refused before its password is read."""
        client_key, user_key = self._keys(ip, user)
        client = await self.store.count(client_key, self.window, now)
        if client >= self.config.block_client_after:
            return Block("client", client)
        account = await self.store.count(user_key, self.window, now)
        if account >= self.config.block_account_after:
            ttl = self.config.known_client_days * DAY
            new = await self.store.mark(
                self._known(user), [client_network(ip)], now, ttl, record=False
            )
            if new or ttl == 0:
                return Block("account", account)
        return None

    async def failed(self, ip: str, user: str, now: float) -> float:
        """Count a failure; the seconds the answer must wait."""
        client_key, user_key = self._keys(ip, user)
        await self.store.charge(
            [Charge(client_key, self.window), Charge(user_key, self.window)], now
        )
        failures = max(
            await self.store.count(client_key, self.window, now),
            await self.store.count(user_key, self.window, now),
        )
        return self.delay(failures)

    def delay(self, failures: int) -> float:
        config = self.config
        if failures < config.slow_after:
            return 0.0
        return float(min(config.max_delay, config.delay * 2 ** (failures - config.slow_after)))

    async def succeeded(self, ip: str, user: str, now: float) -> None:
        """Remember the address the owner logged in from."""
        ttl = self.config.known_client_days * DAY
        if ttl > 0:
            await self.store.mark(self._known(user), [client_network(ip)], now, ttl)
