"""`Greylister`: one greylisting decision per (client, sender, recipient), over a store."""

from __future__ import annotations

import time
from collections.abc import Callable

from mailwarden.dns import IPAddress, normalize, parse_ip

from .core import (
    GreylistAction,
    GreylistConfig,
    GreylistDecision,
    TripletKey,
    allow_targets,
    client_network,
    decide,
    exemption,
    normalize_recipient,
    normalize_sender,
)
from .store import Attempt, GreylistStore

__all__ = ["Greylister"]


class Greylister:
    """Decides pass or defer (451 4.7.1) for a delivery attempt; state lives in `store`.

    The decision logic is pure (core.py); this class only gathers the facts from the store and
    records the outcome. The policy calls `check` at the stage its configuration names, for
    mail whose score reaches the greylist threshold.
    """

    def __init__(
        self,
        store: GreylistStore,
        clock: Callable[[], float] = time.time,
        config: GreylistConfig | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config or GreylistConfig()
        self._last_purge: float | None = None

    def key_for(
        self,
        client_ip: IPAddress | str,
        sender: str,
        recipient: str,
        spf_pass_domain: str | None,
        network: str | None = None,
    ) -> TripletKey:
        """The triplet a delivery attempt is keyed by (see `check`)."""
        if spf_pass_domain and self.config.spf_pool:
            origin = f"spf:{normalize(spf_pass_domain)}"
        elif network is not None:
            origin = network
        else:
            ip = parse_ip(client_ip) if isinstance(client_ip, str) else client_ip
            origin = client_network(ip, self.config)
        return TripletKey(origin, normalize_sender(sender), normalize_recipient(recipient))

    async def check(
        self,
        client_ip: IPAddress | str,
        sender: str,
        recipient: str,
        *,
        spf_pass_domain: str | None = None,
        authenticated: bool = False,
        dnswl_hit: bool = False,
    ) -> GreylistDecision:
        """Pass, or defer with the retry delay.

        `spf_pass_domain`: the MAIL FROM domain when SPF passed for this client. Such mail is
        keyed by "spf:<domain>" (the domain's SPF-authorised pool) instead of the client
        network, so a provider retrying from any of its authorised addresses, IPv4 or IPv6,
        matches its first attempt. Authenticated clients, DNSWL hits and configured
        networks, domains and recipients are never greylisted.
        """
        now = self.clock()
        config = self.config
        ip = parse_ip(client_ip) if isinstance(client_ip, str) else client_ip
        network = client_network(ip, config)
        key = self.key_for(ip, sender, recipient, spf_pass_domain, network)
        why = exemption(
            ip,
            key.sender,
            key.recipient,
            config,
            authenticated=authenticated,
            dnswl_hit=dnswl_hit,
        )
        if why is not None:
            return GreylistDecision(GreylistAction.PASS, why, key, exempt=True)
        await self._maybe_purge(now)
        targets = tuple(allow_targets(ip, key.sender))
        result = await self.store.attempt(Attempt(key, network, targets), now, config)
        if result.allowed is not None:
            note = f" ({result.allowed.note})" if result.allowed.note else ""
            reason = f"allowed by {result.allowed.target}{note}"
            return GreylistDecision(GreylistAction.PASS, reason, key, exempt=True)
        if result.new is None:
            reason = f"client network {network[4:]} passed {result.passes} times: auto-allowed"
            return GreylistDecision(GreylistAction.PASS, reason, key, exempt=True)
        return decide(result.old, result.new, now, config)

    async def _maybe_purge(self, now: float) -> None:
        if self._last_purge is None:
            self._last_purge = now
        elif now - self._last_purge >= self.config.purge_interval:
            self._last_purge = now
            await self.store.purge(now)
