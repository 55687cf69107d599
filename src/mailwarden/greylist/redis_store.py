"""The shared greylist store: Redis, so several gateways see one view.

Each delivery attempt is one Lua script run (one round trip), atomic on the server: the
allow-entry check, the auto-allow counter, the triplet transition and the counter update
happen together, so concurrent gateways never lose an update. Every key carries a TTL, so
Redis forgets expired data by itself; expiry is also checked against the stored
`expires_at`, which comes from the injected clock.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

from .core import (
    AllowEntry,
    Entry,
    GreylistConfig,
    NetworkEntry,
    TripletKey,
    check_allow_entry,
    stored_count,
    stored_time,
)
from .store import Attempt, AttemptResult, TripletField, triplet_matches

if TYPE_CHECKING:  # imported when a Redis store is made: start-up time
    import redis.asyncio as aioredis

__all__ = ["RedisStore"]

DEFAULT_PREFIX = "mailwarden:greylist:"

# One delivery attempt, atomically (see GreylistStore.attempt; the triplet transition is
# core.advance, the same rules the other stores run in Python; the shared suite and the
# benchmark's agreement check hold them equal). Values travel as the strings Python wrote.
# KEYS: triplet, network counter, allow entries...
# ARGV: now, min_delay, auto_allow_after, expiry if new, expiry if passed, ttl if new,
#       ttl if passed, origin, sender, recipient
_ATTEMPT = """
local now = tonumber(ARGV[1])
for i = 3, #KEYS do
  local raw = redis.call('GET', KEYS[i])
  if raw then
    local allowed = cjson.decode(raw)
    if allowed.expires_at == cjson.null or allowed.expires_at > now then
      return {'allow', raw}
    end
  end
end
local counter = redis.call('HMGET', KEYS[2], 'passes', 'expires')
local passes = 0
if counter[1] and counter[2] and tonumber(counter[2]) > now then
  passes = tonumber(counter[1])
end
local auto = tonumber(ARGV[3])
if auto > 0 and passes >= auto then
  return {'auto', tostring(passes)}
end
local old = redis.call('HMGET', KEYS[1], 'first', 'last', 'attempts', 'passed', 'expires')
if not old[1] or not old[5] or tonumber(old[5]) <= now then
  old = nil
end
local first, attempts, passed, expires, ttl
if old == nil then
  first, attempts, passed, expires, ttl = ARGV[1], 1, '', ARGV[4], ARGV[6]
elseif old[4] ~= '' then
  first, attempts, passed, expires, ttl = old[1], tonumber(old[3]) + 1, old[4], ARGV[5], ARGV[7]
elseif now - tonumber(old[1]) < tonumber(ARGV[2]) then
  first, attempts, passed, expires = old[1], tonumber(old[3]) + 1, '', old[5]
  ttl = math.max(1, math.ceil(tonumber(old[5]) - now))
else
  first, attempts, passed, expires, ttl = old[1], tonumber(old[3]) + 1, ARGV[1], ARGV[5], ARGV[7]
end
redis.call('HSET', KEYS[1], 'origin', ARGV[8], 'sender', ARGV[9], 'recipient', ARGV[10],
  'first', first, 'last', ARGV[1], 'attempts', attempts, 'passed', passed, 'expires', expires)
redis.call('EXPIRE', KEYS[1], ttl)
if passed ~= '' then
  passes = passes + 1
  redis.call('HSET', KEYS[2], 'passes', passes, 'expires', ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[7])
end
local reply = {'triplet', tostring(passes)}
if old == nil then
  for i = 1, 5 do reply[#reply + 1] = '' end
else
  for i = 1, 5 do reply[#reply + 1] = old[i] end
end
for _, v in ipairs({first, ARGV[1], tostring(attempts), passed, expires}) do
  reply[#reply + 1] = v
end
return reply
"""


def _fields_entry(key: TripletKey, fields: list[str]) -> Entry:
    first, last, attempts, passed, expires = fields
    return Entry(
        key, float(first), float(last), int(attempts), float(passed) if passed else None,
        float(expires),
    )  # fmt: skip


def _ttl(expires_at: float, now: float) -> int:
    return max(1, math.ceil(expires_at - now))


def _text(raw: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(raw).items()}


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class RedisStore:
    """Greylist state in Redis under `prefix` (several gateways may share it)."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = client
        self.prefix = prefix
        self._attempt = client.register_script(_ATTEMPT)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX) -> RedisStore:
        """A store on the server at `url` (redis://host:port/db); ValueError if malformed."""
        import redis.asyncio as aioredis

        return cls(aioredis.Redis.from_url(url, decode_responses=True), prefix=prefix)

    # -- keys ------------------------------------------------------------------------------
    def _triplet_key(self, key: TripletKey) -> str:
        return f"{self.prefix}t:{key.origin}|{key.sender}|{key.recipient}"

    def _allow_key(self, target: str) -> str:
        return f"{self.prefix}a:{target}"

    def _network_key(self, network: str) -> str:
        return f"{self.prefix}n:{network}"

    @staticmethod
    def _entry(data: dict[str, str]) -> Entry:
        """A triplet hash; missing or unreadable values (written by hand or by an older
        version) become "", NaN or -1, so the entry is listed flagged instead of failing."""
        return Entry(
            TripletKey(data.get("origin", ""), data.get("sender", ""), data.get("recipient", "")),
            stored_time(data.get("first")),
            stored_time(data.get("last")),
            stored_count(data.get("attempts")),
            stored_time(data["passed"]) if data.get("passed") else None,
            stored_time(data.get("expires")),
        )

    def _allow_entry(self, name: str, raw: str) -> AllowEntry:
        """An allow entry's JSON; one that cannot be read is listed under its key's target,
        with NaN times (flagged), never fatal."""
        target = name[len(self.prefix) + 2 :]
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return AllowEntry(target, math.nan, math.nan, "")
        expires = data.get("expires_at")
        return AllowEntry(
            str(data.get("target", target)),
            stored_time(data.get("added_at")),
            None if expires is None else stored_time(expires),
            str(data.get("note", "")),
        )

    # -- decisions -------------------------------------------------------------------------
    async def attempt(self, attempt: Attempt, now: float, config: GreylistConfig) -> AttemptResult:
        key = attempt.key
        keys = [
            self._triplet_key(key),
            self._network_key(attempt.network),
            *(self._allow_key(t) for t in attempt.allow_targets),
        ]
        args: list[str | int] = [
            repr(now),
            repr(config.min_delay),
            str(config.auto_allow_after),
            repr(now + config.retry_window),
            repr(now + config.pass_ttl),
            _ttl(now + config.retry_window, now),
            _ttl(now + config.pass_ttl, now),
            key.origin,
            key.sender,
            key.recipient,
        ]
        reply = [str(x) for x in await self._attempt(keys=keys, args=args)]
        if reply[0] == "allow":
            return AttemptResult(allowed=AllowEntry(**json.loads(reply[1])))
        passes = int(reply[1])
        if reply[0] == "auto":
            return AttemptResult(passes=passes)
        old = None if reply[2] == "" else _fields_entry(key, reply[2:7])
        return AttemptResult(None, passes, old, _fields_entry(key, reply[7:12]))

    # -- administration --------------------------------------------------------------------
    async def allow(self, entry: AllowEntry) -> None:
        check_allow_entry(entry)
        value = json.dumps(
            {
                "target": entry.target,
                "added_at": entry.added_at,
                "expires_at": entry.expires_at,
                "note": entry.note,
            }
        )
        if entry.expires_at is None:
            await self.redis.set(self._allow_key(entry.target), value)
        else:
            ttl = _ttl(entry.expires_at, entry.added_at)
            await self.redis.set(self._allow_key(entry.target), value, ex=ttl)

    async def forget_allow(self, target: str) -> bool:
        return bool(await self.redis.delete(self._allow_key(target)))

    async def forget_network(self, network: str) -> bool:
        return bool(await self.redis.delete(self._network_key(network)))

    async def forget_triplets(self, field: TripletField, value: str) -> int:
        if field is TripletField.ORIGIN:
            pattern = f"{_glob_escape(self.prefix)}t:{_glob_escape(value)}|*"
        else:
            pattern = f"{_glob_escape(self.prefix)}t:*"
        doomed = []
        async for name in self.redis.scan_iter(match=pattern, count=1000):
            data = _text(await self.redis.hgetall(name))
            if data and triplet_matches(self._entry(data).key, field, value):
                doomed.append(name)
        return int(await self.redis.delete(*doomed)) if doomed else 0

    async def entries(self, now: float, *, limit: int | None = None) -> list[Entry]:
        found: list[Entry] = []
        pattern = f"{_glob_escape(self.prefix)}t:*"
        names = [n async for n in self.redis.scan_iter(match=pattern, count=1000)]
        for start in range(0, len(names), 500):
            async with self.redis.pipeline(transaction=False) as pipe:
                for name in names[start : start + 500]:
                    pipe.hgetall(name)
                rows: list[dict[str, str]] = await pipe.execute()
            found.extend(self._entry(row) for row in rows if row)
        # `not <=`: an entry whose expiry cannot be read (NaN) is listed, to be seen and fixed
        live = sorted(
            (e for e in found if not e.expires_at <= now),
            key=lambda e: -e.last_seen if e.last_seen == e.last_seen else math.inf,
        )
        return live[:limit] if limit is not None else live

    async def allowed(self, now: float) -> list[AllowEntry]:
        names = [n async for n in self.redis.scan_iter(match=f"{_glob_escape(self.prefix)}a:*")]
        values = await self.redis.mget(names) if names else []
        entries = [self._allow_entry(n, str(v)) for n, v in zip(names, values, strict=True) if v]
        return sorted(
            (e for e in entries if e.expires_at is None or not e.expires_at <= now),
            key=lambda e: e.target,
        )

    async def networks(self, now: float) -> list[NetworkEntry]:
        out = []
        start = len(self.prefix) + 2
        async for name in self.redis.scan_iter(match=f"{_glob_escape(self.prefix)}n:*"):
            passes, expires = await self.redis.hmget(name, ["passes", "expires"])
            if passes is not None and expires is not None and not stored_time(expires) <= now:
                out.append(NetworkEntry(name[start:], stored_count(passes), stored_time(expires)))
        return sorted(out, key=lambda n: n.network)

    async def purge(self, now: float) -> int:
        """Nothing to do: Redis drops keys by their TTL."""
        return 0

    async def close(self) -> None:
        await self.redis.aclose()
