"""Counters in Redis, so several servers share one view of every limit.

A counter is a hash per (key, window) whose fields are slot numbers; a set is a sorted set
scored by the time each member was last seen. Charging is one Lua script run (one round trip,
atomic on the server): every limit is checked first, then every amount added, so concurrent
servers never both take the last unit. Every Redis key carries a TTL, so Redis forgets
counters by itself; the slots counted come from the caller's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .window import Charge, Window

if TYPE_CHECKING:  # imported when a Redis store is made: start-up time
    import redis.asyncio as aioredis

__all__ = ["RedisCounterStore"]

DEFAULT_PREFIX = "mailwarden:rate:"

# KEYS: one hash per charge, then one index set per charge (the counters of its key, for
# `forget`). ARGV per charge (5 each): slot, first live slot, amount, limit (-1: none), ttl.
# Returns 0 when charged, else the 1-based index of the refusal.
_CHARGE = """
local function total(key, first, last)
  local sum = 0
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    local slot = tonumber(fields[i])
    if slot >= first and slot <= last then sum = sum + tonumber(fields[i + 1]) end
  end
  return sum
end
local n = #KEYS / 2
for i = 1, n do
  local base = (i - 1) * 5
  local limit = tonumber(ARGV[base + 4])
  if limit >= 0 then
    local slot, first = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
    if total(KEYS[i], first, slot) + tonumber(ARGV[base + 3]) > limit then return i end
  end
end
for i = 1, n do
  local base = (i - 1) * 5
  local first = tonumber(ARGV[base + 2])
  redis.call('HINCRBY', KEYS[i], ARGV[base + 1], ARGV[base + 3])
  local fields = redis.call('HKEYS', KEYS[i])
  for _, field in ipairs(fields) do
    if tonumber(field) < first then redis.call('HDEL', KEYS[i], field) end
  end
  redis.call('EXPIRE', KEYS[i], ARGV[base + 5])
  redis.call('SADD', KEYS[n + i], KEYS[i])
  if redis.call('TTL', KEYS[n + i]) < tonumber(ARGV[base + 5]) then
    redis.call('EXPIRE', KEYS[n + i], ARGV[base + 5])
  end
end
return 0
"""

# KEYS[1]: the sorted set. ARGV: now, ttl, record (1/0), members... Returns the new ones.
_MARK = """
local now, ttl, record = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
local new = {}
for i = 4, #ARGV do
  local seen = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if not seen or tonumber(seen) <= now - ttl then new[#new + 1] = ARGV[i] end
  if record then redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i]) end
end
if record then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
  redis.call('EXPIRE', KEYS[1], math.max(1, math.ceil(ttl)))
end
return new
"""


class RedisCounterStore:
    """Counters and sets in Redis under `prefix`."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = client
        self.prefix = prefix
        self._charge = client.register_script(_CHARGE)
        self._mark = client.register_script(_MARK)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX) -> RedisCounterStore:
        """A store on the server of a redis://, rediss:// or unix:// URL."""
        import redis.asyncio as aioredis

        return cls(aioredis.Redis.from_url(url, decode_responses=True), prefix=prefix)

    def _counter(self, key: str, window: Window) -> str:
        return f"{self.prefix}c:{window.id}:{key}"

    def _index(self, key: str) -> str:
        return f"{self.prefix}i:{key}"

    def _set(self, key: str) -> str:
        return f"{self.prefix}m:{key}"

    async def charge(self, charges: Sequence[Charge], now: float) -> Charge | None:
        if not charges:
            return None
        keys = [self._counter(c.key, c.window) for c in charges]
        keys += [self._index(c.key) for c in charges]
        args: list[int] = []
        for item in charges:
            window = item.window
            limit = -1 if item.limit is None else item.limit
            args += [window.slot(now), window.first_live(now), item.amount, limit, window.ttl()]
        refused = int(await self._charge(keys=keys, args=args))
        return charges[refused - 1] if refused else None

    async def _slots(self, key: str, window: Window) -> dict[int, int]:
        fields = await self.redis.hgetall(self._counter(key, window))
        return {int(slot): int(count) for slot, count in fields.items()}

    async def count(self, key: str, window: Window, now: float) -> int:
        first, last = window.first_live(now), window.slot(now)
        return sum(n for s, n in (await self._slots(key, window)).items() if first <= s <= last)

    async def history(self, key: str, window: Window, now: float) -> list[int]:
        found = await self._slots(key, window)
        first = window.first_listed(now)
        return [found.get(first + i, 0) for i in range(window.slots)]

    async def mark(
        self, key: str, members: Sequence[str], now: float, ttl: float, *, record: bool = True
    ) -> list[str]:
        unique = list(dict.fromkeys(members))
        if not unique:
            return []
        args = [repr(now), repr(ttl), "1" if record else "0", *unique]
        new = await self._mark(keys=[self._set(key)], args=args)
        return [str(m) for m in new]

    async def forget(self, keys: Sequence[str]) -> None:
        for key in keys:
            counters = await self.redis.smembers(self._index(key))
            await self.redis.delete(self._set(key), self._index(key), *counters)

    async def close(self) -> None:
        await self.redis.aclose()
