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
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar, cast

import redis
from redis.crc import key_slot
from redis.exceptions import NoScriptError, ResponseError

from ..._exceptions import StoreError
from .._base import T
from .._state import AccountState, UserState, encode

_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    import hiredis
except ImportError:  # pragma: no cover - the redis extra brings hiredis; redis-py packs then
    _pack = None
else:
    _pack = hiredis.pack_command

BIAS: Final = 2**63  # signed µs timestamps as unsigned big-endian: byte order is time order
HEADER: Final = struct.Struct(">QQ")  # (biased timestamp, arrival stamp) before each log body
SEQ_WIDTH: Final = 16  # hex digits of the pending number in front of each pending entry

S = TypeVar("S", bound=UserState | AccountState)
X = TypeVar("X")


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


# Lua's unpack() takes a few thousand values at most: a variadic command gets
# ARGV[first..last] in slices (of an even length, so pairs stay whole). Returns
# the replies of the slices, joined (HMGET's values, in order).
_SLICED: Final = """
local function sliced(command, key, first, last)
  local out = {}
  for i = first, last, 1000 do
    local got = redis.call(command, key, unpack(ARGV, i, math.min(i + 999, last)))
    if type(got) == 'table' then
      for _, value in ipairs(got) do out[#out + 1] = value end
    end
  end
  return out
end
"""

# A read of hashes in one slot group (step 1's of its users, say): fields ARGV of
# each hash KEYS[i]. Replies {{values of KEYS[1]}, ...}.
_READ: Final = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HMGET', key, unpack(ARGV)) end
return out
"""

# Drop pending entries from the head of each list KEYS[i] while their number is at
# most ARGV[i] (fixed-width hex, so string order is number order). Only the head
# goes: entries appended meanwhile, or left to another writer, stay.
_TRIM: Final = """
for i, key in ipairs(KEYS) do
  while true do
    local head = redis.call('LINDEX', key, 0)
    if not head or string.sub(head, 1, 16) > ARGV[i] then break end
    redis.call('LPOP', key)
  end
end
return 0
"""


# Step 1's write, for users of one slot group: KEYS are each user's hash, messageId
# set and pending list; ARGV[1] the prune cutoff and ARGV[2] the µs the log keeps a
# message (as of the last prune; '' for none), then per user: the version read, the
# new state, the pending number, the count of new messages, their (time, id) pairs
# and their pending entries. Each user on its own, as if alone: if the user's version
# (field v) is still the one read, store the state (s) and pending number (n), bump
# v, forget messageIds older than the cutoff, add the new ones, and append the
# entries after them. With a keep, the messageId set expires when its newest id
# would be pruned: when the user stops writing, the set goes at the moment
# retention would have emptied it.
# Replies per user {1, older pending entries...}: the list before the entries just
# appended (work a writer left, usually none; the caller has its own at hand), {0}
# when another writer came first, or {2} when one of the ids is known after all (the
# writer folded without reading the ids: it reads them and folds again).
_FOLD_USERS: Final = (
    _SLICED
    + """
local cutoff, keep = ARGV[1], ARGV[2]
local function fold(user, ids, pending, at)
  if (redis.call('HGET', user, 'v') or '0') ~= ARGV[at] then return {0} end
  if cutoff ~= '' then redis.call('ZREMRANGEBYSCORE', ids, '-inf', '(' .. cutoff) end
  local count = tonumber(ARGV[at + 3])
  local first = at + 4
  for i = first + 1, first + 2 * count - 1, 2 do
    if redis.call('ZSCORE', ids, ARGV[i]) then return {2} end
  end
  if count > 0 then
    redis.call('HSET', user, 's', ARGV[at + 1], 'n', ARGV[at + 2])
    redis.call('HINCRBY', user, 'v', 1)
    sliced('ZADD', ids, first, first + 2 * count - 1)
    sliced('RPUSH', pending, first + 2 * count, first + 3 * count - 1)
    if keep ~= '' then
      local newest = redis.call('ZRANGE', ids, -1, -1, 'WITHSCORES')[2]
      redis.call('PEXPIREAT', ids, math.floor((tonumber(newest) + tonumber(keep)) / 1000))
    end
  end
  local out = redis.call('LRANGE', pending, 0, -(count + 1))
  table.insert(out, 1, 1)
  return out
end
local out = {}
local at = 3
for u = 1, #KEYS, 3 do
  out[#out + 1] = fold(KEYS[u], KEYS[u + 1], KEYS[u + 2], at)
  at = at + 4 + 3 * tonumber(ARGV[at + 3])
end
return out
"""
)

# Step 2's read, for accounts of one slot group: per account (KEYS[i] its hash,
# KEYS[i + 1] its per-member hash) ARGV holds a count and that many members.
# Replies, per account, {s, v} then the last pending number applied of each member.
_READ_ACCOUNTS: Final = (
    _SLICED
    + """
local out = {}
local at = 1
for i = 1, #KEYS, 2 do
  local count = tonumber(ARGV[at])
  out[#out + 1] = redis.call('HMGET', KEYS[i], 's', 'v')
  out[#out + 1] = sliced('HMGET', KEYS[i + 1], at + 1, at + count)
  at = at + 1 + count
end
return out
"""
)

# Compare-and-set of a state: if its version (field v) is still ARGV[1], store
# ARGV[2] and bump v. Replies 1, or 0 when another came first.
_SWAP: Final = """
if (redis.call('HGET', KEYS[1], 'v') or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'v', 1)
return 1
"""

# Step 2's write, for accounts of one slot group: per account (KEYS[i] its hash,
# KEYS[i + 1] its per-member hash) ARGV holds the version read, the new state and a
# count of (member, last pending number applied) pairs, then the pairs. Each
# account on its own, as ``swap`` with those numbers recorded. Replies per account
# 1, or 0 when another came first.
_SWAP_ACCOUNTS: Final = (
    _SLICED
    + """
local out = {}
local at = 1
for i = 1, #KEYS, 2 do
  local count = tonumber(ARGV[at + 2])
  if (redis.call('HGET', KEYS[i], 'v') or '0') == ARGV[at] then
    redis.call('HSET', KEYS[i], 's', ARGV[at + 1])
    redis.call('HINCRBY', KEYS[i], 'v', 1)
    sliced('HSET', KEYS[i + 1], at + 3, at + 2 + 2 * count)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
  at = at + 3 + 2 * count
end
return out
"""
)

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
    "read": _READ,
    "fold_users": _FOLD_USERS,
    "read_accounts": _READ_ACCOUNTS,
    "swap_accounts": _SWAP_ACCOUNTS,
    "trim": _TRIM,
    "swap": _SWAP,
    "log": _LOG,
    "lease": _LEASE,
    "release": _RELEASE,
}


class Batch:
    """Commands to send in one round trip on the writer's connection (``Server.batch``).

    The two commands a chunk's round trips use, as redis-py's pipeline takes them.
    """

    __slots__ = ("_commands", "_send")

    def __init__(self, send: Callable[[list[tuple[Any, ...]]], list[Any]]) -> None:
        self._commands: list[tuple[Any, ...]] = []
        self._send = send

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> None:
        self._commands.append((b"EVALSHA", sha, numkeys, *keys_and_args))

    def hlen(self, key: str) -> None:
        self._commands.append((b"HLEN", key))

    def execute(self) -> list[Any]:
        """Send the commands; return their replies (none sent: no round trip)."""
        return self._send(self._commands) if self._commands else []


class Server:
    """One Redis server as the store's parts use it: scripts by hash, writes that retry."""

    def __init__(self, client: redis.Redis, *, url: str, contention_timeout: float) -> None:
        self.client = client
        self._url = url
        self._contention_timeout = contention_timeout
        self._scripts = {name: client.register_script(text) for name, text in _SCRIPTS.items()}
        self._cluster: bool | None = None  # asked at the first write
        self._writer: Any = None  # the connection of ``batch``, opened at the first
        self._writer_lock = threading.Lock()

    def batch(self) -> Batch:
        """Return a batch of commands for one round trip: the chunk's pipelines.

        Why not redis-py's pipeline: per round trip it takes a connection from
        the pool and gives it back (each asking the OS for the process id),
        wraps and annotates every command and packs every argument in Python,
        most of a chunk's client CPU under the GIL. A batch is packed by hiredis
        in one call and sent on a connection of its own (held while one thread
        sends, opened with the client's options, retried as redis-py retries),
        and every reply is read before the first error is raised, so the
        connection stays in step.
        """
        return Batch(self._send)

    def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        with self._writer_lock:
            connection = self._writer
            if connection is None:
                pool = self.client.connection_pool
                connection = self._writer = pool.connection_class(**pool.connection_kwargs)
            if _pack is None:
                packed = connection.pack_commands(commands)
            else:
                packed = [b"".join(map(_pack, commands))]
            return cast(
                list[Any],
                connection.retry.call_with_retry(
                    lambda: _exchange(connection, packed, len(commands)),
                    lambda _: connection.disconnect(),
                ),
            )

    def close(self) -> None:
        """Close the writer's connection (the client's pool closes the others)."""
        with self._writer_lock:
            if self._writer is not None:
                self._writer.disconnect()
                self._writer = None

    def after_fork(self) -> None:
        """In a forked child: a connection of its own (the parent's socket stays the parent's)."""
        self._writer = None
        self._writer_lock = threading.Lock()

    @property
    def cluster(self) -> bool:
        """Whether the server runs Redis Cluster, where no script may span two hash slots.

        Asked once (``INFO cluster``); a server that will not say is taken for
        one, which costs speed (a script per slot), never correctness.
        """
        if self._cluster is None:
            try:
                info = self.client.info("cluster")
            except ResponseError:
                info = {}
            self._cluster = bool(info.get("cluster_enabled", 1))
        return self._cluster

    def by_slot(self, items: Iterable[X], key: Callable[[X], str]) -> list[list[X]]:
        """Split ``items`` into the groups one script may take: those whose ``key`` shares a slot.

        One group on a server without Redis Cluster (a script there may touch
        any key): a chunk's users, or its accounts, then cost one script call,
        not one each. Items keep their order within a group.
        """
        if not self.cluster:
            return [list(items)]
        groups: dict[int, list[X]] = {}
        for item in items:
            groups.setdefault(key_slot(key(item).encode()), []).append(item)
        return list(groups.values())

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

    def load_many(self, keys: list[str], decode: Callable[[bytes], S]) -> list[S | None]:
        """Return the states at ``keys`` (None where there is none): one round trip for all."""

        def attempt() -> tuple[bool, list[S | None]]:
            pipe: Any = self.client.pipeline(transaction=False)
            groups = self.by_slot(keys, str)
            for group in groups:
                self.eval(pipe, "read", group, ["s"])
            found = [raw for reply in pipe.execute() for (raw,) in reply]
            return True, [None if raw is None else decode(raw) for raw in found]

        return self.optimistic("read", attempt)  # only NOSCRIPT retries: no version to check

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


def _exchange(connection: Any, packed: list[bytes], count: int) -> list[Any]:
    """Send ``packed`` and read its ``count`` replies; raise the first error reply, after all."""
    connection.send_packed_command(packed)
    replies: list[Any] = []
    error: ResponseError | None = None
    for _ in range(count):
        try:
            replies.append(connection.read_response())
        except ResponseError as exc:
            replies.append(exc)
            error = error or exc
    if error is not None:
        raise error
    return replies
