"""The Redis store: state shared by every host of an app, on one Redis server.

Why Redis: when a host app runs on many machines, one host's SQLite file is no
longer the whole picture of a user; caps, scores and tier crossings must agree
across hosts. Redis is widely deployed, and its optimistic transactions give
the same exactness the SQLite store gets from ``BEGIN IMMEDIATE``.

**Keys.** Everything lives under a prefix (``?prefix=`` in the URL, ``pqlsdk``
by default), so several apps can share one server. A user's keys share the hash
tag ``{u:<user id>}`` and an account's the tag ``{a:<account id>}``, so on Redis
Cluster each subject's keys sit in one slot; the message log and the aggregate
registry share the tag ``{log}``::

    <prefix>:{u:<id>}          user state (msgpack ``UserState``)
    <prefix>:{u:<id>}:ids      messageIds recorded for the user (sorted set by time)
    <prefix>:{u:<id>}:pending  account and log work still to do, oldest first (list)
    <prefix>:{u:<id>}:pseq     the user's last pending sequence number
    <prefix>:{a:<id>}          account state (msgpack ``AccountState``)
    <prefix>:{a:<id>}:seen     per member: the last pending number applied here
    <prefix>:{log}             the message log (sorted set ordered by member bytes)
    <prefix>:{log}:aggregates  the aggregates every process keeps (hash)

**Transactions: WATCH/MULTI, not Lua.** Folding a message into state is
``_state.apply``, Python shared by every store; a Lua script would have to
re-implement it (and every aggregate fold) and keep it in step forever.
Optimistic transactions run that same Python: WATCH the subject's keys, read,
apply, write in MULTI/EXEC, and start again if another host changed a watched
key meanwhile. Two hosts updating one user therefore serialise, and nothing is
lost or applied twice. The one Lua script trims the pending list (below).

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
3. the message joins the log (its member bytes are fixed in step 1, so adding
   it twice is harmless), and the applied entries leave the pending list.

Every writer drains the whole pending list of the users it writes, oldest
first, so a process that dies between steps leaves its account work to the
user's next write. Until then (and while a write is under way) the account may
lag behind the user by that user's pending messages; users and caps are exact
at all times.

**Retention.** The log is trimmed by ``prune(before)`` (the client's
``retention``), which also bounds the per-user messageId sets. Key expiry does
not fit this state: retention is by event time, not by when a key was last
written, and user and account state is kept forever, as SQLite keeps it.

A client opens no connection until its first command; redis-py's pool opens
new connections in a forked child.
"""

from __future__ import annotations

import random
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

try:
    import redis
    from redis.exceptions import RedisError, WatchError
except ImportError as exc:  # pragma: no cover - the test set-up installs every extra
    raise ImportError(
        "the Redis store (redis:// URLs) needs redis-py: pip install 'pqlsdk[redis]'"
    ) from exc

from .._aggregates import Aggregate
from .._clock import micros
from .._exceptions import ConfigError, StoreError
from ..messages import Group, Message, Track, decode, decode_checked
from ._base import Record, T
from ._state import AccountState, UserState, apply, decode_account, decode_user, rebuild

__all__ = ["DEFAULT_PREFIX", "RedisStore"]

DEFAULT_PREFIX: Final = "pqlsdk"
"""The key prefix when the URL names none."""

_PAGE: Final = 1000
_BIAS: Final = 2**63  # signed µs timestamps as unsigned big-endian: byte order is time order
_HEADER: Final = struct.Struct(">QQ")  # (biased timestamp, arrival stamp) before each log body
_SEQ_WIDTH: Final = 16  # hex digits of the pending number in front of each pending entry

_encode = msgspec.msgpack.Encoder().encode
_decode_aggregate = msgspec.msgpack.Decoder(Aggregate).decode


class _Pending(msgspec.Struct, array_like=True, gc=False):
    """Work left after a message was folded into its user: the log, and its accounts."""

    member: bytes
    """The message's log member: header, then its JSON."""
    before: bytes | None
    """The user's state just before the message (None: the user was new)."""
    accounts: list[str]


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


class RedisStore:
    """A ``Store`` on a Redis server, shared by every process of every host."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        url: str = "redis://",
        timeout: float = 30.0,
    ) -> None:
        """Keep state through ``client`` under ``prefix``.

        ``url`` is what ``url`` reports (give it without credentials); ``timeout``
        is how long a write keeps retrying against other hosts' concurrent writes
        before failing with ``StoreError``.
        """
        if not prefix or "{" in prefix or "}" in prefix:
            raise ConfigError(
                f"redis store prefix {prefix!r}: give a non-empty prefix without braces "
                "(braces would change the hash tags that keep a user's keys in one slot)"
            )
        self._redis = client
        self._prefix = prefix
        self._url = url
        self._timeout = timeout
        self._log = f"{prefix}:{{log}}"
        self._registry = f"{prefix}:{{log}}:aggregates"
        self._aggregates: frozenset[Aggregate] = frozenset()
        self._cutoff: int | None = None  # µs: messageIds older than this are forgotten
        self._stamp_lock = threading.Lock()
        self._last_stamp = 0
        self._trim = client.register_script(_TRIM)

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """Open ``redis://[user:password@]host:port/db?prefix=name`` (or ``rediss://``).

        Other query parameters go to redis-py (``socket_timeout=2`` and the like).
        """
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefixes = [value for key, value in query if key == "prefix"]
        if len(prefixes) > 1:
            raise ConfigError(f"store URL {url!r}: give prefix= once")
        options = [(key, value) for key, value in query if key != "prefix"]
        connect = urlunsplit(parts._replace(query=urlencode(options)))
        try:
            client = redis.Redis.from_url(connect)
        except ValueError as exc:
            raise ConfigError(f"store URL {url!r}: {exc}") from exc
        host = parts.hostname or "localhost"
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        shown = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        return cls(client, prefix=prefixes[0] if prefixes else DEFAULT_PREFIX, url=shown)

    @property
    def url(self) -> str:
        """The URL this store was opened from, without user name or password."""
        return self._url

    @property
    def prefix(self) -> str:
        """The prefix of every key this store writes."""
        return self._prefix

    @property
    def client(self) -> redis.Redis:
        """The redis-py client (for tests and operations tooling)."""
        return self._redis

    def _user_key(self, user_id: str, part: str = "") -> str:
        return f"{self._prefix}:{{u:{user_id}}}{part}"

    def _account_key(self, account_id: str, part: str = "") -> str:
        return f"{self._prefix}:{{a:{account_id}}}{part}"

    @contextmanager
    def _faults(self, action: str) -> Iterator[None]:
        """Turn redis-py's errors into ``StoreError`` naming the action."""
        try:
            yield
        except RedisError as exc:
            raise StoreError(f"redis store {self._url}: {action} failed: {exc}") from exc

    def _optimistic(self, keys: list[str], body: Callable[[Any], T]) -> T:
        """Run ``body(pipeline)`` under WATCH on ``keys`` until no other writer interferes.

        ``body`` reads through the pipeline (immediate mode), then calls
        ``pipeline.multi()`` and queues its writes; this executes them. After a
        few collisions each retry waits a random sub-millisecond moment, so
        hosts hammering one user do not retry in lockstep.
        """
        deadline = time.monotonic() + self._timeout
        attempt = 0
        while True:
            pipe: Any = self._redis.pipeline()
            with pipe:
                try:
                    pipe.watch(*keys)
                    result = body(pipe)
                    pipe.execute()
                    return result
                except WatchError:
                    attempt += 1
            if time.monotonic() > deadline:
                raise StoreError(
                    f"redis store {self._url}: {keys[0]!r} kept changing under "
                    f"{attempt} attempts in {self._timeout} s"
                )
            if attempt > 3:
                time.sleep(random.random() / 1000)  # noqa: S311 - jitter, not secrecy

    def _stamp(self) -> int:
        """Return an arrival stamp: nanoseconds, strictly increasing within this process."""
        with self._stamp_lock:
            self._last_stamp = max(time.time_ns(), self._last_stamp + 1)
            return self._last_stamp

    # -- writing ---------------------------------------------------------------

    def record(self, records: Iterable[Record], *, outbox: bool = False) -> int:
        """Fold ``records`` into their users, then their accounts and the log.

        Each user's messages are one transaction; see the module docstring for
        how account state and the log follow.
        """
        if outbox:
            raise ConfigError("the redis store has no durable outbox")
        by_user: dict[str, list[Record]] = {}
        for record in records:
            by_user.setdefault(record[0].subject, []).append(record)
        added = 0
        with self._faults("write"):
            aggregates = self._refresh_aggregates()
            for user_id, items in by_user.items():
                added += self._record_user(user_id, items, aggregates)
                self._drain(user_id, aggregates)
        return added

    def _record_user(
        self, user_id: str, items: list[Record], aggregates: frozenset[Aggregate]
    ) -> int:
        """Step 1: fold the new messages into the user and queue what follows."""
        state_key, ids_key = self._user_key(user_id), self._user_key(user_id, ":ids")
        seq_key, pending_key = self._user_key(user_id, ":pseq"), self._user_key(user_id, ":pending")
        ids = [message.message_id for message, _ in items]

        def fold(pipe: Any) -> int:
            raw, seq, known = pipe.get(state_key), pipe.get(seq_key), pipe.zmscore(ids_key, ids)
            user = None if raw is None else decode_user(raw)
            number = int(seq or 0)
            entries: list[bytes] = []
            times: dict[str, int] = {}

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
                before = None if user is None or not touches else _encode(user)
                changes = apply(message, load_user, load_account, aggregates)
                user = changes.users[0]
                number += 1
                member = _HEADER.pack(at + _BIAS, self._stamp()) + data
                pending = _Pending(member, before, [a.account_id for a in changes.accounts])
                entries.append(f"{number:0{_SEQ_WIDTH}x}".encode() + _encode(pending))
                times[message.message_id] = at
            pipe.multi()
            if cutoff is not None:
                pipe.zremrangebyscore(ids_key, "-inf", f"({cutoff}")
            if entries:
                pipe.set(state_key, _encode(user))
                pipe.set(seq_key, number)
                pipe.zadd(ids_key, times)
                pipe.rpush(pending_key, *entries)
            return len(entries)

        return self._optimistic([state_key, seq_key, ids_key], fold)

    def _drain(self, user_id: str, aggregates: frozenset[Aggregate]) -> None:
        """Apply the user's pending entries to their accounts and the log (steps 2 and 3)."""
        pending_key = self._user_key(user_id, ":pending")
        raw = cast(list[bytes], self._redis.lrange(pending_key, 0, -1))
        if not raw:
            return
        entries = [(int(item[:_SEQ_WIDTH], 16), _decode_pending(item[_SEQ_WIDTH:])) for item in raw]
        by_account: dict[str, list[tuple[int, _Pending]]] = {}
        for number, pending in entries:
            for account_id in dict.fromkeys(pending.accounts):
                by_account.setdefault(account_id, []).append((number, pending))
        for account_id, work in by_account.items():
            self._apply_account(account_id, user_id, work, aggregates)
        self._redis.zadd(self._log, dict.fromkeys((p.member for _, p in entries), 0))
        self._trim(keys=[pending_key], args=[raw[-1][:_SEQ_WIDTH]])

    def _apply_account(
        self,
        account_id: str,
        user_id: str,
        work: list[tuple[int, _Pending]],
        aggregates: frozenset[Aggregate],
    ) -> None:
        """Step 2 for one account: apply the entries it has not applied yet, in order."""
        state_key, seen_key = self._account_key(account_id), self._account_key(account_id, ":seen")

        def fold(pipe: Any) -> None:
            raw, applied = pipe.get(state_key), int(pipe.hget(seen_key, user_id) or 0)
            todo = [(number, pending) for number, pending in work if number > applied]
            pipe.multi()
            if not todo:
                return
            account = AccountState(account_id=account_id) if raw is None else decode_account(raw)
            before: UserState | None = None

            def load_user(_: str) -> UserState | None:
                return before

            def load_account(key: str) -> AccountState:
                return account if key == account_id else _stand_in(key, user_id)

            for _, pending in todo:
                before = None if pending.before is None else decode_user(pending.before)
                apply(
                    decode_checked(pending.member[_HEADER.size :]),
                    load_user,
                    load_account,
                    aggregates,
                )
            pipe.set(state_key, _encode(account))
            pipe.hset(seen_key, user_id, todo[-1][0])

        self._optimistic([state_key, seen_key], fold)

    def _refresh_aggregates(self) -> frozenset[Aggregate]:
        """Re-read the registry when another process added to it (it only grows)."""
        if self._redis.hlen(self._registry) != len(self._aggregates):
            specs = cast(list[bytes], self._redis.hvals(self._registry))
            self._aggregates = frozenset(_decode_aggregate(spec) for spec in specs)
        return self._aggregates

    @property
    def aggregates(self) -> frozenset[Aggregate]:
        """The aggregates kept up to date (as of this process's last write)."""
        return self._aggregates

    def maintain(self, aggregates: Iterable[Aggregate]) -> int:
        """Register ``aggregates``; compute the new ones from the log.

        The new aggregates are registered first, so every process folds them
        from its next write on; then the log is replayed for them and each
        state touched gets their values in its own transaction, other fields
        untouched. Messages other processes record during the replay may be
        missed by the new aggregates (SQLite closes that window with one
        transaction over the whole file; Redis has none).
        """
        with self._faults("rebuild"):
            new = frozenset(aggregates) - self._refresh_aggregates()
            if not new:
                return 0
            self._redis.hset(
                self._registry, mapping={aggregate.key: _encode(aggregate) for aggregate in new}
            )
            self._aggregates |= new
            users, accounts = rebuild(self._all_messages(), new, self.user, self.account)
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

    def _merge(
        self,
        key: str,
        load: Callable[[bytes], UserState | AccountState],
        values: dict[str, Any],
        names: list[str],
    ) -> None:
        """Set the rebuilt aggregates ``names`` in the state at ``key``, atomically."""

        def fold(pipe: Any) -> None:
            state = load(pipe.get(key))
            for name in names:
                if name in values:
                    state.aggregates[name] = values[name]
                else:
                    state.aggregates.pop(name, None)
            pipe.multi()
            pipe.set(key, _encode(state))

        self._optimistic([key], fold)

    def update_user(self, user_id: str, change: Callable[[UserState], T]) -> T:
        """Run ``change`` on the user's state in one optimistic transaction.

        ``change`` may run more than once (a retry after another host's write);
        only the run whose write succeeds counts, and its result is returned.
        """
        key = self._user_key(user_id)

        def fold(pipe: Any) -> T:
            raw = pipe.get(key)
            state = UserState(user_id=user_id) if raw is None else decode_user(raw)
            result = change(state)
            pipe.multi()
            pipe.set(key, _encode(state))
            return result

        with self._faults("write"):
            return self._optimistic([key], fold)

    def update_account(self, account_id: str, change: Callable[[AccountState], T]) -> T:
        """Run ``change`` on the account's state in one optimistic transaction."""
        key = self._account_key(account_id)

        def fold(pipe: Any) -> T:
            raw = pipe.get(key)
            state = AccountState(account_id=account_id) if raw is None else decode_account(raw)
            result = change(state)
            pipe.multi()
            pipe.set(key, _encode(state))
            return result

        with self._faults("write"):
            return self._optimistic([key], fold)

    # -- reading -----------------------------------------------------------------

    def user(self, user_id: str) -> UserState | None:
        """Return the stored state of ``user_id``."""
        with self._faults("read"):
            raw = cast(bytes | None, self._redis.get(self._user_key(user_id)))
        return None if raw is None else decode_user(raw)

    def account(self, account_id: str) -> AccountState | None:
        """Return the stored state of ``account_id``."""
        with self._faults("read"):
            raw = cast(bytes | None, self._redis.get(self._account_key(account_id)))
        return None if raw is None else decode_account(raw)

    def messages(self, subject: str | None = None) -> Iterator[Message]:
        """Yield logged messages in time order, a page at a time.

        The log is one sorted set for all subjects, so ``subject`` filters it
        here: reading one user's history reads everyone's.
        """
        for message in self._all_messages():
            if subject is None or message.subject == subject:
                yield message

    def _all_messages(self) -> Iterator[Message]:
        start: bytes = b"-"
        while True:
            with self._faults("read"):
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
        """Return how many messages the log holds."""
        with self._faults("read"):
            return int(self._redis.zcard(self._log))

    def prune(self, before: datetime) -> int:
        """Drop logged messages older than ``before``; forget their messageIds as users write."""
        cutoff = micros(before)
        with self._faults("prune"):
            dropped = self._redis.zremrangebylex(
                self._log, "-", b"(" + struct.pack(">Q", cutoff + _BIAS)
            )
        self._cutoff = cutoff
        return int(dropped)

    def close(self) -> None:
        """Close this process's connections to the server."""
        self._redis.close()

    def __repr__(self) -> str:
        return f"RedisStore({self._url!r})"


def _stand_in(account_id: str, user_id: str) -> AccountState:
    """Return an account whose changes are thrown away: the user's step needs its shape only.

    It lists the user as a member, so a user leaving it can be removed.
    """
    return AccountState(account_id=account_id, members=[user_id])
