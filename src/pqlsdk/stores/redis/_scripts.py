"""The Redis store's server side: its keys, its log members, its Lua scripts and their retry.

Why Lua: a script runs atomically in one slot, so a version check and the write
it guards cannot be split by another host's write; the fold itself stays in
Python (``_state.apply``, shared by every store). Each write is therefore
optimistic: read, compute, and let a script store the result only if the
version is still the one read; ``Server.optimistic`` retries until one lands.
The key layout and the scripts live together because each script is written
against it (``docs/redis.md`` has the table).
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

import redis
from redis.exceptions import NoScriptError

from ..._exceptions import StoreError
from .._base import T
from .._state import AccountState, UserState, encode

BIAS: Final = 2**63  # signed µs timestamps as unsigned big-endian: byte order is time order
HEADER: Final = struct.Struct(">QQ")  # (biased timestamp, arrival stamp) before each log body
SEQ_WIDTH: Final = 16  # hex digits of the pending number in front of each pending entry

S = TypeVar("S", bound=UserState | AccountState)


class Keys:
    """Every key under one prefix.

    A subject's keys share its hash tag, so on Redis Cluster they sit in one
    slot; the log, the registry and the outbox share ``{log}``.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.log = f"{prefix}:{{log}}"
        self.registry = f"{prefix}:{{log}}:aggregates"
        self.outbox = f"{prefix}:{{log}}:outbox"  # number -> message JSON (hash)
        self.ready = f"{prefix}:{{log}}:outbox:ready"  # numbers no sender holds (sorted set)
        self.leased = f"{prefix}:{{log}}:outbox:leased"  # number -> lease end, ms (sorted set)
        self.outbox_seq = f"{prefix}:{{log}}:outbox:seq"  # the last outbox number

    def user(self, user_id: str, part: str = "") -> str:
        return f"{self.prefix}:{{u:{user_id}}}{part}"

    def account(self, account_id: str, part: str = "") -> str:
        return f"{self.prefix}:{{a:{account_id}}}{part}"


# Drop pending entries from the head of the list while their number is at most
# ARGV[1] (fixed-width hex, so string order is number order). Only the head goes:
# entries appended meanwhile, or left to another writer, stay.
_TRIM: Final = """
local n = 0
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head or string.sub(head, 1, 16) > ARGV[1] then return n end
  redis.call('LPOP', KEYS[1])
  n = n + 1
end
"""


# Step 1's write: if the user's version (field v) is still ARGV[1], store the state
# (s) and pending number (n), bump v, forget messageIds older than the prune cutoff
# (ARGV[4]), add the ARGV[6] new (id, time) pairs, and append the pending entries
# after them. With ARGV[5] (µs the log keeps a message, as of the last prune), the
# messageId set expires when its newest id would be pruned: when the user stops
# writing, the set goes at the moment retention would have emptied it.
# Replies {1, older pending entries...}: the list before the entries just appended
# (work a writer left, usually none; the caller has its own at hand), {0} when
# another writer came first, or {2} when one of the ids is known after all (the
# writer folded without reading the ids: it reads them and folds again).
_FOLD_USER: Final = """
if (redis.call('HGET', KEYS[1], 'v') or '0') ~= ARGV[1] then return {0} end
if ARGV[4] ~= '' then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4]) end
local count = tonumber(ARGV[6])
for i = 0, count - 1 do
  if redis.call('ZSCORE', KEYS[2], ARGV[7 + 2 * i]) then return {2} end
end
if count > 0 then
  redis.call('HSET', KEYS[1], 's', ARGV[2], 'n', ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'v', 1)
  for i = 0, count - 1 do
    redis.call('ZADD', KEYS[2], ARGV[8 + 2 * i], ARGV[7 + 2 * i])
  end
  for i = 7 + 2 * count, #ARGV do
    redis.call('RPUSH', KEYS[3], ARGV[i])
  end
  if ARGV[5] ~= '' then
    local newest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')[2]
    local ends = math.floor((tonumber(newest) + tonumber(ARGV[5])) / 1000)
    redis.call('PEXPIREAT', KEYS[2], ends)
  end
end
local out = redis.call('LRANGE', KEYS[3], 0, -(count + 1))
table.insert(out, 1, 1)
return out
"""

# Compare-and-set of a state: if its version (field v) is still ARGV[1], store
# ARGV[2] and bump v; with a second key, also record per member ARGV[i] (i = 3,
# 5, ...) ARGV[i + 1] as the last pending number of theirs applied here.
# Replies 1, or 0 when another came first.
_SWAP: Final = """
if (redis.call('HGET', KEYS[1], 'v') or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'v', 1)
if KEYS[2] then
  for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
end
return 1
"""

# Step 3: add each log member ARGV[i] (ZADD NX); one that is new, and whose flag
# ARGV[i + 1] is '1', joins the outbox too: its JSON (the member after the header)
# under the next outbox number, ready to be leased. A member already logged (step 3
# run again after a writer died) is queued nothing. Replies how many were queued.
_LOG: Final = f"""
local queued = 0
for i = 1, #ARGV, 2 do
  if redis.call('ZADD', KEYS[1], 'NX', 0, ARGV[i]) == 1 and ARGV[i + 1] == '1' then
    local id = redis.call('INCR', KEYS[4])
    redis.call('HSET', KEYS[2], id, string.sub(ARGV[i], {HEADER.size + 1}))
    redis.call('ZADD', KEYS[3], id, id)
    queued = queued + 1
  end
end
return queued
"""

# Lease: leases that ended by the server's clock go back to the ready set; then
# the oldest ready entries, up to ARGV[1] of them and ARGV[2] bytes (the first
# always), move to the leased set until now + ARGV[3] ms. Replies {until, id,
# body, id, body...}. The server's clock, so hosts' clocks need not agree.
_LEASE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZADD', KEYS[2], id, id)
end
local ends = now + tonumber(ARGV[3])
local out = {ends}
local size = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1)) do
  local body = redis.call('HGET', KEYS[1], id)
  if #out > 1 and size + #body > tonumber(ARGV[2]) then break end
  size = size + #body
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[3], ends, id)
  table.insert(out, id)
  table.insert(out, body)
end
return out
"""

# Release: entries ARGV[2...] still leased until ARGV[1] (by this lease, not a
# later one another sender took after it ended) become ready again.
_RELEASE: Final = """
for i = 2, #ARGV do
  if tonumber(redis.call('ZSCORE', KEYS[2], ARGV[i])) == tonumber(ARGV[1]) then
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i])
  end
end
return 0
"""

_SCRIPTS: Final = {
    "trim": _TRIM,
    "fold_user": _FOLD_USER,
    "swap": _SWAP,
    "log": _LOG,
    "lease": _LEASE,
    "release": _RELEASE,
}


class Server:
    """One Redis server as the store's parts use it: scripts by hash, writes that retry."""

    def __init__(self, client: redis.Redis, *, url: str, contention_timeout: float) -> None:
        self.client = client
        self._url = url
        self._contention_timeout = contention_timeout
        self._scripts = {name: client.register_script(text) for name, text in _SCRIPTS.items()}

    def eval(self, target: Any, name: str, keys: list[str], args: list[Any]) -> Any:
        """Queue (on a pipeline) or run (on the client) script ``name`` by its hash.

        Not through redis-py's ``Script`` in pipelines: that asks the server
        whether the script exists before every pipeline, a round trip per call.
        A server that lost its scripts answers NOSCRIPT; ``optimistic`` loads them again.
        """
        return target.evalsha(self._scripts[name].sha, len(keys), *keys, *args)

    def _load_scripts(self) -> None:
        for script in self._scripts.values():
            self.client.script_load(script.script)

    def optimistic(self, key: str, attempt: Callable[[], tuple[bool, T]]) -> T:
        """Run ``attempt`` until its version-checked write lands; return its result.

        ``attempt`` reads, computes, and writes only if the subject's version is
        still the one it read (``(False, _)`` when another writer got there
        first). After a few collisions each retry waits a random sub-millisecond
        moment, so hosts hammering one user do not retry in lockstep.
        """
        deadline = time.monotonic() + self._contention_timeout
        attempts = 0
        while True:
            try:
                done, result = attempt()
            except NoScriptError:  # the server restarted or flushed its scripts
                self._load_scripts()
                continue
            if done:
                return result
            attempts += 1
            if time.monotonic() > deadline:
                raise StoreError(
                    f"redis store {self._url}: {key!r} kept changing under "
                    f"{attempts} attempts in {self._contention_timeout} s"
                )
            if attempts > 3:
                time.sleep(random.random() / 1000)  # noqa: S311 - jitter, not secrecy

    def update(self, key: str, load: Callable[[bytes | None], S], change: Callable[[S], T]) -> T:
        """Run ``change`` on the state at ``key`` and write it if no one wrote meanwhile."""

        def attempt() -> tuple[bool, T]:
            raw, version = cast(list[Any], self.client.hmget(key, "s", "v"))
            state = load(raw)
            result = change(state)
            written = self.eval(self.client, "swap", [key], [version or 0, encode(state)])
            return written == 1, result

        return self.optimistic(key, attempt)

    def load(self, key: str, decode: Callable[[bytes], S]) -> S | None:
        """Return the state at ``key``, or None."""
        raw = cast(bytes | None, self.client.hget(key, "s"))
        return None if raw is None else decode(raw)
