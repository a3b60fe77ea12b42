"""The Redis store: state shared by every host of an app, on one Redis server.

Why Redis: when a host app runs on many machines, one host's SQLite file is no
longer the whole picture of a user; caps, scores and tier crossings must agree
across hosts. Redis is widely deployed, and its optimistic transactions give
the same exactness the SQLite store gets from ``BEGIN IMMEDIATE``.

**Keys.** Everything lives under a prefix (``?prefix=`` in the URL, ``pqlsdk``
by default), so several apps can share one server. A user's keys share the hash
tag ``{u:<user id>}`` and an account's the tag ``{a:<account id>}``, so on Redis
Cluster each subject's keys sit in one slot; the message log and the aggregate
registry share the tag ``{log}``, and so does the outbox:

```text
<prefix>:{u:<id>}              user hash: s state (msgpack UserState), v version,
                               n last pending number
<prefix>:{u:<id>}:ids          messageIds recorded for the user (sorted set by time)
<prefix>:{u:<id>}:pending      account and log work still to do, oldest first (list)
<prefix>:{a:<id>}              account hash: s state (msgpack AccountState), v version
<prefix>:{a:<id>}:seen         per member: the last pending number applied here
<prefix>:{log}                 the message log (sorted set ordered by member bytes)
<prefix>:{log}:aggregates      the aggregates every process keeps (hash)
<prefix>:{log}:outbox          messages waiting for the collector: number -> JSON (hash)
<prefix>:{log}:outbox:ready    numbers no sender holds (sorted set by number)
<prefix>:{log}:outbox:leased   numbers a sender holds (sorted set by lease end, ms)
<prefix>:{log}:outbox:seq      the last outbox number
```

**Transactions: optimistic, with the fold in Python and the check in Lua.**
Folding a message into state is ``_state.apply``, Python shared by every store;
a Lua script doing the whole update would have to re-implement it (and every
aggregate fold) and keep it in step forever. So a write reads the state and its
version in one round trip, applies the same Python as every store, and sends
the result to a short Lua script that stores it only if the version is still
the one read (and bumps it); otherwise the write starts again. Two hosts
updating one user therefore serialise, and nothing is lost or applied twice.
Why not WATCH/MULTI, which gives the same guarantee: it costs three more round
trips per write (WATCH, MULTI and one per read) and pins a connection for the
whole read-compute-write. Measured with it, a tracked event took about twice
the round trips, and four processes tracking 40,000 events took 59 s instead
of 37 s. Reads that follow a write ride in the same round trip as the write.

**A message touching a user and their account spans two slots**, and no Redis
Cluster transaction can span two slots. So a message is folded in per-subject
steps, each one atomic and idempotent:

1. in the user's slot: the messageId is checked and recorded, the user's state
   changes, and a *pending* entry is appended holding the message, the user's
   state just before it and the accounts it touches;
2. in each such account's slot: the pending entries are applied in order (from
   that saved user state, so the account changes exactly as one transaction
   would have changed it), and the account remembers, per member, the last
   pending number it applied, so an entry is never applied twice;
3. the message joins the log, and, if its client delivers to a collector, the
   outbox, in one script in the ``{log}`` slot: a member the log already holds
   (step 3 run again) is queued nothing, so a message is queued once; then the
   applied entries leave the pending list (a third script drops only entries
   still at its head).

Every writer drains the whole pending list of the users it writes, oldest
first, so a process that dies between steps leaves its account work to the
user's next write. Until then (and while a write is under way) the account may
lag behind the user by that user's pending messages; users and caps are exact
at all times.

**The outbox.** With an endpoint, a client on this store delivers from an
outbox on the server, shared by every process of every host (``RedisOutbox``).
Why queue in step 3, not step 1: every host's sender must find the queue in
one place, one slot, and step 1 runs in the user's slot; step 3 runs in the
``{log}`` slot and decides, atomically, whether the message is new to the log,
which makes queueing exactly-once. The cost: a process dying between steps 1
and 3 leaves the message in the user's pending list, so it reaches the log and
the outbox at that user's next write (from any host), not before. Senders
lease the oldest entries (``lease``) until a time by Redis's clock, so hosts'
clocks need not agree; two senders never hold one entry, an entry whose
sender died is leased again when its lease ends, and a sender deletes what
the collector accepted (``ack``) or gives back what it could not send
(``release``, which frees nothing another sender took meanwhile).

**Retention.** The log is trimmed by ``prune(before)`` (the client's
``retention``), which also bounds the per-user messageId sets. Per-key expiry
does not fit the log (one sorted set for everyone, trimmed by event time, not
by when a key was last written), nor user and account state, which is kept
forever as SQLite keeps it, nor the pending lists (work still to do). It fits
one thing: once a prune has said how long messages are kept, a user's
messageId set expires when its newest id would be pruned, so the sets of
users who stopped writing go by themselves instead of waiting for a write that
never comes. Acknowledged outbox entries need no expiry: ``ack`` deletes them.

**Outages.** Every command has a socket and connect timeout (``?timeout=``,
100 ms): the host's request path must not wait on a slow server. A connection
error or timeout begins an outage (``_outage.Outage``, kept apart because its
rules concern any store on another machine): calls are refused at once with
``StoreUnavailableError``, which the client answers with its gate fallback, no
moment, or a failed read; recorded messages wait in a bounded local buffer and
are replayed in order when a probe (every ``?probe_interval=``) finds Redis
back. The buffer lives here, inside the store, so the ``Store`` protocol and
the client stay as they are: ``record()`` simply returns 0 for messages it
holds. Replay is safe because step 1 skips messageIds already recorded.
Buffered messages go to the collector one way only: they join the outbox when
they are replayed (and the client's sender is woken), as they would have when
recorded; the client keeps no in-memory outbox beside it. A second path (an
in-memory queue sending during the outage) would send each message twice, or
need de-duplication of its own, and would lose what it held at a crash. So
nothing reaches the collector from a host while its Redis is away; the
outbox's ``take`` finds nothing then, and ``flush()`` reports the buffer as
pending.
``maintain()`` during an outage defers the registration to the probe that ends
it, before the replay, so a client with rules can be built while Redis is down.
redis-py retries a broken connection once (a pooled socket from before a
restart) and never retries a timeout, so a slow server costs a call one timeout.

**Read cache.** ``user()`` and ``account()`` keep what they read for
``?cache_ttl=`` seconds (250 ms) in a ``cachetools.TTLCache``: ``gate()`` and
``decide()`` read at request rate, and one round trip costs more than the rest
of the call. This process's writes drop the states they touch (and a read that
raced with one is not kept), so a host sees its own writes at once; other
hosts' writes may be seen up to the TTL late. Caps stay exact: a showing is
claimed through ``update_user``, a version-checked write on the state in Redis,
never on the cached copy. During an outage the cache is not used.

A client opens no connection until its first command; redis-py's pool opens
new connections in a forked child, and a forked child starts with no outage
and an empty buffer (the parent replays its own).
"""

from __future__ import annotations

import math
import random
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs
import msgspec
from cachetools import TTLCache

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoScriptError, RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - the test set-up installs every extra
    raise ImportError(
        "the Redis store (redis:// URLs) needs redis-py: pip install 'pqlsdk[redis]'"
    ) from exc

from .._aggregates import Aggregate
from .._clock import micros
from .._exceptions import ConfigError, StoreError
from .._lifecycle import COMMIT, unwatch, watch
from .._stats import logger
from ..messages import Group, Message, Track, decode, decode_checked
from ._base import FaultCounts, Record, StoreUnavailableError, T
from ._outage import Outage
from ._state import (
    AccountState,
    UserState,
    apply,
    decode_account,
    decode_aggregate,
    decode_user,
    encode,
    rebuild,
)

__all__ = [
    "DEFAULT_BUFFER",
    "DEFAULT_CACHE_TTL",
    "DEFAULT_PREFIX",
    "DEFAULT_PROBE_INTERVAL",
    "DEFAULT_TIMEOUT",
    "Lease",
    "RedisStore",
]

DEFAULT_PREFIX: Final = "pqlsdk"
"""The key prefix when the URL names none.

Added in version 0.1.0.
"""
DEFAULT_TIMEOUT: Final = 0.1
"""Seconds a command (or a connection attempt) may take before Redis counts as away
(``?timeout=``; ``?connect_timeout=`` sets the connection's alone).

Added in version 0.1.0.
"""
DEFAULT_BUFFER: Final = 10_000
"""Messages held in this process while Redis is away (``?buffer=``).

Added in version 0.1.0.
"""
DEFAULT_PROBE_INTERVAL: Final = 1.0
"""Seconds between attempts to reach Redis during an outage (``?probe_interval=``).

Added in version 0.1.0.
"""
DEFAULT_CACHE_TTL: Final = 0.25
"""Seconds a user or account read is reused (``?cache_ttl=``; 0 turns the cache off).

Added in version 0.1.0.
"""

_CACHE_SIZE: Final = 10_000  # user and account states kept by the read cache
_UNREACHABLE: Final = (RedisConnectionError, RedisTimeoutError)
_MISS: Final = object()

_PAGE: Final = 1000
_SECRET: Final = frozenset({"username", "password"})  # query parameters url leaves out
_OPTIONS: Final = frozenset(
    {"prefix", "timeout", "connect_timeout", "buffer", "probe_interval", "cache_ttl"}
)  # query parameters pqlsdk reads (the others go to redis-py)
_BIAS: Final = 2**63  # signed µs timestamps as unsigned big-endian: byte order is time order
_HEADER: Final = struct.Struct(">QQ")  # (biased timestamp, arrival stamp) before each log body
_SEQ_WIDTH: Final = 16  # hex digits of the pending number in front of each pending entry


class _Pending(msgspec.Struct, array_like=True, gc=False):
    """Work left after a message was folded into its user: the log, and its accounts."""

    member: bytes
    """The message's log member: header, then its JSON."""
    before: bytes | None
    """The user's state just before the message (None: the user was new)."""
    accounts: list[str]
    queue: bool = False
    """Whether the message joins the outbox with the log (its client delivers)."""


_decode_pending = msgspec.msgpack.Decoder(_Pending).decode

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
# Replies {1, pending list...}, or {0} when another writer came first.
_FOLD_USER: Final = """
if (redis.call('HGET', KEYS[1], 'v') or '0') ~= ARGV[1] then return {0} end
if ARGV[4] ~= '' then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4]) end
local count = tonumber(ARGV[6])
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
local out = redis.call('LRANGE', KEYS[3], 0, -1)
table.insert(out, 1, 1)
return out
"""

# Compare-and-set of a state: if its version (field v) is still ARGV[1], store
# ARGV[2] and bump v; with a second key, also record ARGV[4] as the last pending
# number of member ARGV[3] applied here. Replies 1, or 0 when another came first.
_SWAP: Final = """
if (redis.call('HGET', KEYS[1], 'v') or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'v', 1)
if KEYS[2] then redis.call('HSET', KEYS[2], ARGV[3], ARGV[4]) end
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
    redis.call('HSET', KEYS[2], id, string.sub(ARGV[i], {_HEADER.size + 1}))
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

_S = TypeVar("_S", bound=UserState | AccountState)
_V = TypeVar("_V")
_Read = tuple[bytes | None, bytes | None, bytes | None]
"""An account's state, version and the last pending number of the writing user applied."""


class RedisStore:
    """A ``Store`` on a Redis server, shared by every process of every host.

    One store for every host of an app, so caps, scores and tier crossings
    agree across them; see the module docstring for keys, steps and faults.

    Added in version 0.1.0.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        url: str = "redis://",
        contention_timeout: float = 30.0,
        buffer: int = DEFAULT_BUFFER,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        cache_ttl: float = DEFAULT_CACHE_TTL,
    ) -> None:
        """Keep state through ``client`` under ``prefix``.

        ``url`` is what ``url`` reports (give it without credentials);
        ``contention_timeout`` is how long a write keeps retrying against other
        hosts' concurrent writes before failing with ``StoreError``. While Redis
        is away, up to ``buffer`` messages wait here and Redis is tried again
        every ``probe_interval`` seconds; user and account reads are reused for
        ``cache_ttl`` seconds (see the module docstring). ``client``'s socket
        timeouts decide when Redis counts as away: ``from_url`` sets them.
        """
        if not prefix or "{" in prefix or "}" in prefix:
            raise ConfigError(
                f"redis store prefix {prefix!r}: give a non-empty prefix without braces "
                "(braces would change the hash tags that keep a user's keys in one slot)"
            )
        self._redis = client
        self._prefix = prefix
        self._url = url
        self._contention_timeout = contention_timeout
        self._log = f"{prefix}:{{log}}"
        self._registry = f"{prefix}:{{log}}:aggregates"
        self._outbox = f"{prefix}:{{log}}:outbox"  # number -> message JSON (hash)
        self._ready = f"{prefix}:{{log}}:outbox:ready"  # numbers no sender holds (sorted set)
        self._leased = f"{prefix}:{{log}}:outbox:leased"  # number -> lease end, ms (sorted set)
        self._outbox_seq = f"{prefix}:{{log}}:outbox:seq"  # the last outbox number
        self._queue_replays = False  # whether replayed messages join the outbox
        self._closed = False
        self._outbox_lock = threading.Lock()  # close() waits for the sender's call in flight
        self._on_queued: Callable[[int], None] | None = None
        self._aggregates: frozenset[Aggregate] = frozenset()
        self._deferred: frozenset[Aggregate] = frozenset()  # to register when Redis returns
        self._cutoff: int | None = None  # µs: messageIds older than this are forgotten
        self._keep: int | None = None  # µs the log keeps a message, by Redis's clock (expiry)
        self._stamp_lock = threading.Lock()
        self._last_stamp = 0
        self._scripts = {name: client.register_script(text) for name, text in _SCRIPTS.items()}
        self._outage = Outage(
            f"redis store {url}",
            capacity=buffer,
            probe_interval=probe_interval,
            probe=self._probe,
            write=self._replay,
        )
        self._cache_ttl = cache_ttl
        self._cache_lock = threading.Lock()
        self._reset_cache()
        watch(self, exit_phase=COMMIT)

    def _reset_cache(self) -> None:
        self._cache: TTLCache[tuple[str, str], Any] | None = (
            TTLCache(maxsize=_CACHE_SIZE, ttl=self._cache_ttl, timer=time.monotonic)
            if self._cache_ttl > 0
            else None
        )
        self._generation = 0  # bumped by every write of this process (see _cached)

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """Open ``redis://[user:password@]host:port/db?prefix=name`` (or ``rediss://``).

        pqlsdk's own query parameters: ``prefix``, ``timeout`` and
        ``connect_timeout`` (seconds; both ``DEFAULT_TIMEOUT`` unless given),
        ``buffer``, ``probe_interval`` and ``cache_ttl``. Others go to redis-py
        (``socket_timeout=2`` overrides ``timeout`` and the like).

        Added in version 0.1.0.
        """
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours: dict[str, str] = {}
        for key, value in query:
            if key in _OPTIONS:
                if key in ours:
                    raise ConfigError(f"store URL {url!r}: give {key}= once")
                ours[key] = value
        timeout = _option(url, ours, "timeout", DEFAULT_TIMEOUT)
        connect_timeout = _option(url, ours, "connect_timeout", timeout)
        buffer = int(_option(url, ours, "buffer", DEFAULT_BUFFER, zero=True, kind=int))
        probe_interval = _option(url, ours, "probe_interval", DEFAULT_PROBE_INTERVAL)
        cache_ttl = _option(url, ours, "cache_ttl", DEFAULT_CACHE_TTL, zero=True)
        options = [(key, value) for key, value in query if key not in _OPTIONS]
        connect = urlunsplit(parts._replace(query=urlencode(options)))
        try:
            client = redis.Redis.from_url(
                connect,
                socket_timeout=timeout,
                socket_connect_timeout=connect_timeout,
                # One immediate retry on a broken connection (a pooled socket the
                # server closed when it restarted); a timeout is never retried, so
                # a slow server costs a call one timeout, not several.
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            )
        except ValueError as exc:
            raise ConfigError(f"store URL {url!r}: {exc}") from exc
        host = parts.hostname or "localhost"
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        public = urlencode([(key, value) for key, value in query if key not in _SECRET])
        shown = urlunsplit((parts.scheme, netloc, parts.path, public, ""))
        return cls(
            client,
            prefix=ours.get("prefix", DEFAULT_PREFIX),
            url=shown,
            buffer=buffer,
            probe_interval=probe_interval,
            cache_ttl=cache_ttl,
        )

    @property
    def url(self) -> str:
        """The URL this store was opened from, without user name or password.

        Added in version 0.1.0.
        """
        return self._url

    @property
    def prefix(self) -> str:
        """The prefix of every key this store writes.

        Added in version 0.1.0.
        """
        return self._prefix

    @property
    def client(self) -> redis.Redis:
        """The redis-py client (for tests and operations tooling).

        Added in version 0.1.0.
        """
        return self._redis

    def _user_key(self, user_id: str, part: str = "") -> str:
        return f"{self._prefix}:{{u:{user_id}}}{part}"

    def _account_key(self, account_id: str, part: str = "") -> str:
        return f"{self._prefix}:{{a:{account_id}}}{part}"

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn redis-py's errors into ``StoreError`` naming the action.

        A connection error or timeout becomes ``StoreUnavailableError``: Redis is away.
        """
        try:
            yield
        except _UNREACHABLE as exc:
            raise StoreUnavailableError(f"redis store {self._url}: {action} failed: {exc}") from exc
        except RedisError as exc:
            raise StoreError(f"redis store {self._url}: {action} failed: {exc}") from exc

    @contextmanager
    def _faults(self, action: str) -> Iterator[None]:
        """Run one public call: refused at once during an outage.

        A failure to reach Redis begins an outage (see ``_outage``).
        """
        self._outage.check(action)
        try:
            yield
        except _UNREACHABLE as exc:
            raise self._outage.began(exc, action) from exc
        except RedisError as exc:
            raise StoreError(f"redis store {self._url}: {action} failed: {exc}") from exc

    def _probe(self) -> None:
        """During an outage: reach Redis, then register what the rules asked for meanwhile."""
        with self._errors("probe"):
            self._redis.ping()
            if self._deferred:
                self._maintain(self._deferred)
                self._deferred = frozenset()

    def _replay(self, records: list[Record]) -> int:
        """Write messages that waited for Redis (from ``Outage``).

        They join the outbox as they would have when recorded, if this store's
        client delivers; its sender is woken, since no call of its own did so.
        """
        with self._errors("replay"):
            added = self._write(records, [], queue=self._queue_replays)
        if added and self._queue_replays and self._on_queued is not None:
            self._on_queued(added)
        return added

    def _cached(self, key: tuple[str, str], read: Callable[[], _V]) -> _V:
        """Return ``read()``, reusing what it returned within the cache's TTL.

        A read started before one of this process's writes (which bump the
        generation) is not kept: it may hold the state before that write.
        """
        cache = self._cache
        if cache is None:
            return read()
        with self._cache_lock:
            found = cache.get(key, _MISS)
            generation = self._generation
        if found is not _MISS:
            return cast(_V, found)
        value = read()
        with self._cache_lock:
            if generation == self._generation:
                cache[key] = value
        return value

    def _forget(self, key: tuple[str, str]) -> None:
        """Drop a cached state this process just wrote (or may have written)."""
        if self._cache is not None:
            with self._cache_lock:
                self._generation += 1
                self._cache.pop(key, None)

    def _optimistic(self, key: str, attempt: Callable[[], tuple[bool, T]]) -> T:
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

    def _eval(self, client: Any, name: str, keys: list[str], args: list[Any]) -> Any:
        """Queue or run script ``name`` by its hash.

        Not through redis-py's ``Script`` in pipelines: that asks the server
        whether the script exists before every pipeline, a round trip per call.
        A server that lost its scripts answers NOSCRIPT; callers load them again.
        """
        return client.evalsha(self._scripts[name].sha, len(keys), *keys, *args)

    def _load_scripts(self) -> None:
        for script in self._scripts.values():
            self._redis.script_load(script.script)

    def _stamp(self) -> int:
        """Return an arrival stamp: nanoseconds, strictly increasing within this process."""
        with self._stamp_lock:
            self._last_stamp = max(time.time_ns(), self._last_stamp + 1)
            return self._last_stamp

    # -- writing ---------------------------------------------------------------

    def record(self, records: Iterable[Record], *, outbox: bool = False) -> int:
        """Fold ``records`` into their users, then their accounts and the log.

        Each user's messages are one write; see the module docstring for how
        account state and the log follow.
        With ``outbox``, new messages also join the outbox, in the same atomic
        step that adds them to the log (step 3).

        While Redis is away the records wait in the local buffer (and 0 is
        returned): they are counted as recorded when they are replayed, and
        join the outbox then.

        Added in version 0.1.0.
        """
        self._queue_replays |= outbox
        batch = list(records)
        if not batch or self._outage.hold(batch):
            return 0
        done: list[tuple[str, int]] = []
        try:
            return self._write(batch, done, queue=outbox)
        except _UNREACHABLE as exc:
            self._outage.began(exc, "write")
            written = {user_id for user_id, _ in done}
            self._outage.keep([record for record in batch if record[0].subject not in written])
            return sum(new for _, new in done)
        except RedisError as exc:
            raise StoreError(f"redis store {self._url}: write failed: {exc}") from exc

    def _write(self, batch: list[Record], done: list[tuple[str, int]], *, queue: bool) -> int:
        """Write ``batch`` one user at a time, appending (user, new messages) to ``done``.

        With ``queue``, the new messages join the outbox in step 3.
        """
        by_user: dict[str, list[Record]] = {}
        for record in batch:
            by_user.setdefault(record[0].subject, []).append(record)
        for user_id, items in by_user.items():
            try:
                new, pending, reads = self._record_user(user_id, items, queue=queue)
                self._drain(user_id, pending, reads)
            finally:
                self._forget(("u", user_id))
            done.append((user_id, new))
        return sum(new for _, new in done)

    def _record_user(
        self, user_id: str, items: list[Record], *, queue: bool = False
    ) -> tuple[int, list[bytes], dict[str, _Read]]:
        """Step 1: fold the new messages into the user and queue what follows.

        Returns how many messages were new, the user's pending list after, and
        the accounts the new messages touch as read right after the write (the
        same round trip: step 2 usually needs no read of its own).
        """
        user_key, ids_key = self._user_key(user_id), self._user_key(user_id, ":ids")
        pending_key = self._user_key(user_id, ":pending")
        ids = [message.message_id for message, _ in items]

        def attempt() -> tuple[bool, tuple[int, list[bytes], dict[str, _Read]]]:
            pipe: Any = self._redis.pipeline(transaction=False)
            pipe.hmget(user_key, "s", "v", "n")
            pipe.zmscore(ids_key, ids)
            pipe.hlen(self._registry)
            (raw, version, seq), known, registered = pipe.execute()
            if registered != len(self._aggregates):
                self._refresh_aggregates()  # another process registered more
            aggregates = self._aggregates
            user = None if raw is None else decode_user(raw)
            number = int(seq or 0)
            entries: list[bytes] = []
            times: dict[str, int] = {}
            touched: dict[str, None] = {}

            def load_user(_: str) -> UserState | None:
                return user

            def load_account(key: str) -> AccountState:
                return _stand_in(key, user_id)

            cutoff = self._cutoff
            for (message, data), score in zip(items, known, strict=True):
                if message.message_id in times or (
                    score is not None and (cutoff is None or score >= cutoff)
                ):
                    continue  # recorded before, and not pruned since
                at = micros(message.timestamp)
                touches = type(message) is Group or (
                    type(message) is Track and user is not None and user.account_id is not None
                )
                before = None if user is None or not touches else encode(user)
                changes = apply(message, load_user, load_account, aggregates)
                user = changes.users[0]
                number += 1
                member = _HEADER.pack(at + _BIAS, self._stamp()) + data
                accounts = [account.account_id for account in changes.accounts]
                touched.update(dict.fromkeys(accounts))
                entries.append(
                    f"{number:0{_SEQ_WIDTH}x}".encode()
                    + encode(_Pending(member, before, accounts, queue))
                )
                times[message.message_id] = at
            pipe = self._redis.pipeline(transaction=False)
            keys = [user_key, ids_key, pending_key]
            args = [
                version or 0,
                b"" if user is None else encode(user),
                number,
                "" if cutoff is None else cutoff,
                "" if self._keep is None else self._keep,
                len(entries),
                *(part for item in times.items() for part in item),
                *entries,
            ]
            self._eval(pipe, "fold_user", keys, args)
            for account_id in touched:
                pipe.hmget(self._account_key(account_id), "s", "v")
                pipe.hget(self._account_key(account_id, ":seen"), user_id)
            written, *rest = pipe.execute()
            if written[0] == 0:
                return False, (0, [], {})
            reads = {
                account_id: (*rest[2 * i], rest[2 * i + 1]) for i, account_id in enumerate(touched)
            }
            return True, (len(entries), written[1:], reads)

        return self._optimistic(user_key, attempt)

    def _drain(self, user_id: str, pending: list[bytes], reads: dict[str, _Read]) -> None:
        """Apply the user's ``pending`` entries to their accounts and the log (steps 2, 3)."""
        if not pending:
            return
        entries = [
            (int(item[:_SEQ_WIDTH], 16), _decode_pending(item[_SEQ_WIDTH:])) for item in pending
        ]
        by_account: dict[str, list[tuple[int, _Pending]]] = {}
        for number, entry in entries:
            for account_id in dict.fromkeys(entry.accounts):
                by_account.setdefault(account_id, []).append((number, entry))
        for account_id, work in by_account.items():
            self._apply_account(account_id, user_id, work, reads.get(account_id))
        keys, args = [self._user_key(user_id, ":pending")], [pending[-1][:_SEQ_WIDTH]]
        members = dict.fromkeys(
            (entry.member, b"1" if entry.queue else b"0") for _, entry in entries
        )
        log_keys = [self._log, self._outbox, self._ready, self._outbox_seq]
        log_args = [part for pair in members for part in pair]

        def attempt() -> tuple[bool, None]:
            pipe: Any = self._redis.pipeline(transaction=False)
            self._eval(pipe, "log", log_keys, log_args)
            self._eval(pipe, "trim", keys, args)
            pipe.execute()
            return True, None

        self._optimistic(keys[0], attempt)

    def _apply_account(
        self, account_id: str, user_id: str, work: list[tuple[int, _Pending]], read: _Read | None
    ) -> None:
        """Step 2 for one account: apply the entries it has not applied yet, in order.

        ``read`` is the account as step 1 read it, if it did; later attempts read again.
        """
        account_key = self._account_key(account_id)
        seen_key = self._account_key(account_id, ":seen")
        first = [read]

        def attempt() -> tuple[bool, None]:
            found = first.pop() if first else None
            if found is None:
                pipe: Any = self._redis.pipeline(transaction=False)
                pipe.hmget(account_key, "s", "v")
                pipe.hget(seen_key, user_id)
                (raw, version), applied = pipe.execute()
            else:
                raw, version, applied = found
            todo = [(number, entry) for number, entry in work if number > int(applied or 0)]
            if not todo:
                return True, None
            account = AccountState(account_id=account_id) if raw is None else decode_account(raw)
            before: UserState | None = None

            def load_user(_: str) -> UserState | None:
                return before

            def load_account(key: str) -> AccountState:
                return account if key == account_id else _stand_in(key, user_id)

            for _, entry in todo:
                before = None if entry.before is None else decode_user(entry.before)
                apply(
                    decode_checked(entry.member[_HEADER.size :]),
                    load_user,
                    load_account,
                    self._aggregates,
                )
            written = self._eval(
                self._redis,
                "swap",
                [account_key, seen_key],
                [version or 0, encode(account), user_id, todo[-1][0]],
            )
            return written == 1, None

        try:
            self._optimistic(account_key, attempt)
        finally:
            self._forget(("a", account_id))

    def _refresh_aggregates(self) -> frozenset[Aggregate]:
        """Re-read the registry when another process added to it (it only grows).

        A registry missing some this process registered belongs to a server
        that lost its data (a restart without persistence, a failover): they
        are registered again, so messages keep being folded into them.
        """
        if self._redis.hlen(self._registry) != len(self._aggregates):
            specs = cast(list[bytes], self._redis.hvals(self._registry))
            found = frozenset(decode_aggregate(spec) for spec in specs)
            lost = self._aggregates - found
            if lost:
                self._redis.hset(self._registry, mapping={spec.key: encode(spec) for spec in lost})
            self._aggregates = found | lost
        return self._aggregates

    @property
    def aggregates(self) -> frozenset[Aggregate]:
        """The aggregates kept up to date (as of this process's last write).

        Added in version 0.1.0.
        """
        return self._aggregates

    def maintain(self, aggregates: Iterable[Aggregate]) -> int:
        """Register ``aggregates``; compute the new ones from the log.

        The new aggregates are registered first, so every process folds them
        from its next write on; then the log is replayed for them and each
        state touched gets their values in its own transaction, other fields
        untouched. Messages other processes record during the replay may be
        missed by the new aggregates (SQLite closes that window with one
        transaction over the whole file; Redis has none).

        While Redis is away this returns 0 and says so in the log: the
        registration waits for Redis to return, before the buffered messages
        are replayed (so they are folded into the new aggregates too). A
        client can therefore be built, rules and all, during an outage.

        Added in version 0.1.0.
        """
        wanted = frozenset(aggregates)
        try:
            with self._faults("rebuild"):
                return self._maintain(wanted)
        except StoreUnavailableError:
            self._deferred |= wanted
            logger.info(
                "redis store %s unreachable: the rules' aggregates will be registered "
                "when it returns",
                self._url,
            )
            return 0

    def _maintain(self, wanted: frozenset[Aggregate]) -> int:
        new = wanted - self._refresh_aggregates()
        if not new:
            return 0
        try:
            self._redis.hset(
                self._registry, mapping={aggregate.key: encode(aggregate) for aggregate in new}
            )
            self._aggregates |= new
            users, accounts = rebuild(
                self._all_messages(),
                new,
                lambda user_id: self._load(self._user_key(user_id), decode_user),
                lambda account_id: self._load(self._account_key(account_id), decode_account),
            )
            keys = [aggregate.key for aggregate in new]
            for user_id, user in users.items():
                if user is not None:
                    self._merge(self._user_key(user_id), decode_user, user.aggregates, keys)
            for account_id, account in accounts.items():
                if account is not None:
                    self._merge(
                        self._account_key(account_id), decode_account, account.aggregates, keys
                    )
            return len(new)
        finally:
            with self._cache_lock:
                self._reset_cache()  # every state may have changed

    def _merge(
        self,
        key: str,
        load: Callable[[bytes], UserState | AccountState],
        values: dict[str, Any],
        names: list[str],
    ) -> None:
        """Set the rebuilt aggregates ``names`` in the state at ``key``, atomically."""

        def change(state: UserState | AccountState) -> None:
            for name in names:
                if name in values:
                    state.aggregates[name] = values[name]
                else:
                    state.aggregates.pop(name, None)

        self._update(key, lambda raw: load(cast(bytes, raw)), change)

    def _update(self, key: str, load: Callable[[bytes | None], _S], change: Callable[[_S], T]) -> T:
        """Run ``change`` on the state at ``key`` and write it if no one wrote meanwhile."""

        def attempt() -> tuple[bool, T]:
            raw, version = cast(list[Any], self._redis.hmget(key, "s", "v"))
            state = load(raw)
            result = change(state)
            written = self._eval(self._redis, "swap", [key], [version or 0, encode(state)])
            return written == 1, result

        return self._optimistic(key, attempt)

    def update_user(self, user_id: str, change: Callable[[UserState], T]) -> T:
        """Run ``change`` on the user's state in one version-checked write.

        ``change`` may run more than once (a retry after another host's write);
        only the run whose write lands counts, and its result is returned.

        Added in version 0.1.0.
        """

        def load(raw: bytes | None) -> UserState:
            return UserState(user_id=user_id) if raw is None else decode_user(raw)

        try:
            with self._faults("write"):
                return self._update(self._user_key(user_id), load, change)
        finally:
            self._forget(("u", user_id))

    def update_account(self, account_id: str, change: Callable[[AccountState], T]) -> T:
        """Run ``change`` on the account's state in one version-checked write.

        Added in version 0.1.0.
        """

        def load(raw: bytes | None) -> AccountState:
            return AccountState(account_id=account_id) if raw is None else decode_account(raw)

        try:
            with self._faults("write"):
                return self._update(self._account_key(account_id), load, change)
        finally:
            self._forget(("a", account_id))

    # -- reading -----------------------------------------------------------------

    def user(self, user_id: str) -> UserState | None:
        """Return the state of ``user_id`` (read within the cache's TTL; do not mutate it).

        Added in version 0.1.0.
        """
        with self._faults("read"):
            return self._cached(
                ("u", user_id), lambda: self._load(self._user_key(user_id), decode_user)
            )

    def account(self, account_id: str) -> AccountState | None:
        """Return the state of ``account_id`` (read within the cache's TTL; do not mutate it).

        Added in version 0.1.0.
        """
        with self._faults("read"):
            return self._cached(
                ("a", account_id),
                lambda: self._load(self._account_key(account_id), decode_account),
            )

    def _load(self, key: str, decode: Callable[[bytes], _S]) -> _S | None:
        raw = cast(bytes | None, self._redis.hget(key, "s"))
        return None if raw is None else decode(raw)

    def messages(self, subject: str | None = None) -> Iterator[Message]:
        """Yield logged messages in time order, a page at a time.

        The log is one sorted set for all subjects, so ``subject`` filters it
        here: reading one user's history reads everyone's.

        Added in version 0.1.0.
        """
        with self._faults("read"):
            for message in self._all_messages():
                if subject is None or message.subject == subject:
                    yield message

    def _all_messages(self) -> Iterator[Message]:
        start: bytes = b"-"
        while True:
            page = cast(
                list[bytes],
                self._redis.zrange(self._log, start, "+", bylex=True, offset=0, num=_PAGE),
            )
            for member in page:
                yield decode(member[_HEADER.size :])
            if len(page) < _PAGE:
                return
            start = b"(" + page[-1]

    def count(self) -> int:
        """Return how many messages the log holds.

        Added in version 0.1.0.
        """
        with self._faults("read"):
            return int(self._redis.zcard(self._log))

    def prune(self, before: datetime) -> int:
        """Drop logged messages older than ``before``; forget their messageIds as users write.

        From then on a user's messageId set expires when its newest id would be
        pruned (``before`` is read against the clock now, so a client clock
        set apart from real time shifts the expiry with it).

        Added in version 0.1.0.
        """
        cutoff = micros(before)
        with self._faults("prune"):
            dropped = self._redis.zremrangebylex(
                self._log, "-", b"(" + struct.pack(">Q", cutoff + _BIAS)
            )
        self._cutoff = cutoff
        self._keep = time.time_ns() // 1000 - cutoff
        return int(dropped)

    # -- the outbox --------------------------------------------------------------

    @contextmanager
    def _sending(self, action: str) -> Iterator[None]:
        """Run an outbox call (from the client's sender), refused once the store is closed.

        The sender may still be taking a batch when the client closes the
        store; closing waits for that call, and later calls get ``StoreError``
        instead of a connection redis-py would open again and never close.
        """
        with self._outbox_lock:
            if self._closed:
                raise StoreError(f"redis store {self._url}: {action} refused: the store is closed")
            with self._faults(action):
                yield

    def enqueue(self, messages: Iterable[bytes]) -> None:
        """Queue encoded messages for the collector (pqlsdk's own records: not logged).

        Added in version 0.1.0.
        """
        bodies = list(messages)
        if not bodies:
            return
        with self._sending("enqueue"):
            last = int(self._redis.incrby(self._outbox_seq, len(bodies)))
            numbers = range(last - len(bodies) + 1, last + 1)
            pipe: Any = self._redis.pipeline(transaction=True)
            pipe.hset(self._outbox, mapping=dict(zip(numbers, bodies, strict=True)))
            pipe.zadd(self._ready, {str(number): number for number in numbers})
            pipe.execute()

    def lease(self, max_count: int, max_bytes: int, seconds: float) -> Lease:
        """Lease the oldest outbox entries no sender holds, for ``seconds`` by Redis's clock.

        Up to ``max_count`` entries and ``max_bytes`` together (the first is
        always taken). Entries whose lease ended (their sender died or hung)
        are taken again, oldest first.

        Added in version 0.1.0.
        """
        with self._sending("lease"):
            reply = self._optimistic(
                self._leased,
                lambda: (
                    True,
                    cast(
                        list[Any],
                        self._eval(
                            self._redis,
                            "lease",
                            [self._outbox, self._ready, self._leased],
                            [max_count, max_bytes, max(1, round(seconds * 1000))],
                        ),
                    ),
                ),
            )
        until, rest = int(reply[0]), reply[1:]
        return Lease(until, [(int(rest[i]), rest[i + 1]) for i in range(0, len(rest), 2)])

    def ack(self, keys: Iterable[int]) -> None:
        """Delete outbox entries: the collector accepted them (or rejected them for good).

        Added in version 0.1.0.
        """
        numbers = [str(key) for key in keys]
        with self._sending("ack"):
            pipe: Any = self._redis.pipeline(transaction=True)
            pipe.hdel(self._outbox, *numbers)
            pipe.zrem(self._ready, *numbers)
            pipe.zrem(self._leased, *numbers)
            pipe.execute()

    def release(self, until: int, keys: Iterable[int]) -> None:
        """Make leased entries ready again, if they are still under the lease ending at ``until``.

        Added in version 0.1.0.
        """
        with self._sending("release"):
            self._optimistic(
                self._leased,
                lambda: (
                    True,
                    self._eval(self._redis, "release", [self._ready, self._leased], [until, *keys]),
                ),
            )

    def outbox_size(self) -> int:
        """Entries waiting in the outbox, leased or not, from every host.

        Added in version 0.1.0.
        """
        with self._sending("read"):
            return int(self._redis.hlen(self._outbox))

    def when_queued(self, callback: Callable[[int], None] | None) -> None:
        """Call ``callback(count)`` when a replay after an outage queues messages.

        The client's sender waits for word of new messages; no call of the
        host announces those, so the store does.

        Added in version 0.1.0.
        """
        self._on_queued = callback

    @property
    def available(self) -> bool:
        """False during an outage (from the call that found Redis away to its return).

        Added in version 0.1.0.
        """
        return not self._outage.down

    @property
    def buffered(self) -> int:
        """How many messages wait in this process for Redis to return.

        Added in version 0.1.0.
        """
        return self._outage.buffered

    def fault_counts(self) -> FaultCounts:
        """Outages, refused calls, buffered and replayed messages (joined to ``stats()``).

        Added in version 0.1.0.
        """
        return self._outage.fault_counts()

    def close(self) -> None:
        """Replay what waits if Redis answers, then close this process's connections.

        Added in version 0.1.0.
        """
        self._outage.finish()
        unwatch(self)
        with self._outbox_lock:
            self._closed = True
        self._redis.close()

    def at_exit(self) -> None:
        """At exit: replay what waits if Redis answers now (else log what is lost).

        Added in version 0.1.0.
        """
        self._outage.finish()

    def after_fork(self) -> None:
        """In a forked child: no outage, nothing buffered (the parent replays its own).

        Added in version 0.1.0.
        """
        self._outage.after_fork()
        self._outbox_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._stamp_lock = threading.Lock()
        self._reset_cache()

    def __repr__(self) -> str:
        return f"RedisStore({self._url!r})"


@attrs.frozen
class Lease:
    """Outbox entries one sender holds: ``(number, message JSON)`` pairs, until ``until``.

    ``until`` is the lease's end in milliseconds by Redis's clock; it also
    names the lease, so releasing it never frees entries another sender took
    after it ended.

    Added in version 0.1.0.
    """

    until: int
    entries: list[tuple[int, bytes]]


def _stand_in(account_id: str, user_id: str) -> AccountState:
    """Return an account whose changes are thrown away: the user's step needs its shape only.

    It lists the user as a member, so a user leaving it can be removed.
    """
    return AccountState(account_id=account_id, members=[user_id])


def _option(
    url: str,
    given: dict[str, str],
    name: str,
    default: float,
    *,
    zero: bool = False,
    kind: type[float] | type[int] = float,
) -> float:
    """Read one of pqlsdk's numeric query parameters: positive, or also 0 where ``zero``."""
    text = given.get(name)
    if text is None:
        return default
    try:
        value: float = kind(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        what = "whole number" if kind is int else "number of seconds"
        raise ConfigError(
            f"store URL {url!r}: {name}={text!r}: give a {'non-negative' if zero else 'positive'} "
            f"{what}"
        )
    return value
