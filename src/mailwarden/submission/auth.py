"""SMTP AUTH for the submission server: the user store, argon2id, brute-force protection.

Order of a login: a blocked client or account is refused (454 4.7.0) before the password is
read; then the password is verified against the stored argon2id hash in a worker thread
(an unknown user costs the same time: a dummy hash is verified); a disabled user fails like
a wrong password (535 5.7.8, nothing tells them apart); failures are counted and slow the
answer down; a success is remembered for `auth_cache` seconds (keyed by an HMAC of the
password with a per-process secret, and only while the stored hash is unchanged) so a client
sending many messages does not pay for argon2 each time, as Dovecot's auth cache does.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from mailwarden.gateway import Credentials, Reply, Session

from .bruteforce import BruteForceGuard
from .compromise import CompromiseDetector
from .users import Passwords, User, UserError, UserStore, canonical_name

__all__ = ["SubmissionAuth"]

log = logging.getLogger("mailwarden.submission")
_INVALID = Reply(535, "5.7.8", "Authentication credentials invalid")


class SubmissionAuth:
    """Implements the gateway's `Authenticator` for the submission server."""

    def __init__(
        self,
        users: UserStore,
        passwords: Passwords,
        guard: BruteForceGuard,
        detector: CompromiseDetector | None = None,
        *,
        cache_ttl: float = 300.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.users = users
        self.passwords = passwords
        self.guard = guard
        self.detector = detector
        self.cache_ttl = cache_ttl
        self.clock = clock
        self.sleep = sleep
        self._secret = secrets.token_bytes(32)
        self._cache: dict[tuple[str, bytes], tuple[str, float]] = {}

    def _cache_key(self, name: str, password: str) -> tuple[str, bytes]:
        digest = hmac.new(self._secret, password.encode("utf-8"), hashlib.sha256).digest()
        return name, digest

    async def authenticate(self, session: Session, credentials: Credentials) -> str | Reply:
        now = self.clock()
        ip = session.client_ip
        try:
            name = canonical_name(credentials.username)
        except UserError:
            name = ""
        block = await self.guard.blocked(ip, name, now)
        if block is not None:
            log.warning(
                "session %s: login as %r from %s refused: %s blocked (%d failures)",
                session.id,
                name,
                ip,
                block.scope,
                block.failures,
            )
            return Reply(454, "4.7.0", block.text)
        user = await asyncio.to_thread(self.users.get, name) if name else None
        if await self._verify(user, name, credentials.password, now):
            assert user is not None
            await self.guard.succeeded(ip, user.name, now)
            if self.detector is not None:
                await self.detector.login(user.name, ip, now)
            return user.name
        delay = await self.guard.failed(ip, name, now)
        log.info("session %s: failed login as %r from %s", session.id, name, ip)
        if delay > 0:
            await self.sleep(delay)
        return _INVALID

    async def _verify(self, user: User | None, name: str, password: str, now: float) -> bool:
        key = self._cache_key(name, password)
        if user is not None and not user.disabled:
            cached = self._cache.get(key)
            if cached is not None and cached[0] == user.password_hash and cached[1] > now:
                return True
        stored = user.password_hash if user is not None else None
        good = await asyncio.to_thread(self.passwords.verify, stored, password)
        if not good or user is None or user.disabled:
            self._cache.pop(key, None)
            return False
        if self.passwords.needs_rehash(user.password_hash):
            fresh = await asyncio.to_thread(self.passwords.hash, password)
            await asyncio.to_thread(self.users.set_password, user.name, fresh)
            user_hash = fresh
        else:
            user_hash = user.password_hash
        if self.cache_ttl > 0:
            if len(self._cache) > 10_000:
                self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
            self._cache[key] = (user_hash, now + self.cache_ttl)
        return True
