"""The Redis store: one ``Store`` over the server's parts, with the outage rules around them.

Why this module holds little of its own: each concern of the store is a part
(the write, the log and registry, the server outbox, the read cache, the
scripts they run), and what is left here is what every call shares. A public
call is refused at once during an outage and begins one when Redis cannot be
reached (``_outage.Outage``); recorded messages wait in a local buffer then and
are replayed when Redis returns, so the ``Store`` protocol and the client stay
as they are. ``docs/redis.md`` describes the whole store.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Final

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..._aggregates import Aggregate
from ..._exceptions import ConfigError, StoreError
from ..._lifecycle import COMMIT, unwatch, watch
from ..._stats import logger
from ...messages import Message
from .._base import FaultCounts, Record, StoreUnavailableError, T, Written
from .._outage import Outage
from .._outbox import Lease
from .._state import AccountState, UserState, decode_account, decode_user
from ._cache import ReadCache
from ._log import Log
from ._options import (
    DEFAULT_BUFFER,
    DEFAULT_CACHE_TTL,
    DEFAULT_PREFIX,
    DEFAULT_PROBE_INTERVAL,
    read_url,
)
from ._outbox import RedisOutbox, ServerOutbox
from ._scripts import Keys, Server
from ._write import Write

_UNREACHABLE: Final = (RedisConnectionError, RedisTimeoutError)
_INTAKE_WINDOW: Final = 0.002
"""The intake's window while the host calls, s: 20 messages of a host calling 10,000
times a second share a chunk's round trips, and a read waits for none of it (it
applies what is pending itself)."""


class RedisStore:
    """A ``Store`` on a Redis server, shared by every process of every host.

    One store for every host of an app, so caps, scores and tier crossings
    agree across them; the documentation's Redis store page (``docs/redis.md``)
    describes its keys, steps and faults.

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
        ``cache_ttl`` seconds. ``client``'s socket timeouts decide when Redis
        counts as away: ``from_url`` sets them.
        """
        if not prefix or "{" in prefix or "}" in prefix:
            raise ConfigError(
                f"redis store prefix {prefix!r}: give a non-empty prefix without braces "
                "(braces would change the hash tags that keep a user's keys in one slot)"
            )
        self._redis = client
        self._prefix = prefix
        self._url = url
        keys = Keys(prefix)
        self._user_key = keys.user
        self._account_key = keys.account
        self._log = keys.log
        self._registry = keys.registry
        self._server = Server(client, url=url, contention_timeout=contention_timeout)
        self._cache = ReadCache(cache_ttl)
        self._history = Log(self._server, keys, self._cache)
        self._writer = Write(self._server, keys, self._history, self._cache)
        self._outbox = ServerOutbox(self._server, keys)
        self._queue_replays = False  # whether replayed messages join the outbox
        self._closed = False
        self._outbox_lock = threading.Lock()  # close() waits for the sender's call in flight
        self._on_queued: Callable[[int], None] | None = None
        self._deferred: frozenset[Aggregate] = frozenset()  # to register when Redis returns
        self._outage = Outage(
            f"redis store {url}",
            capacity=buffer,
            probe_interval=probe_interval,
            probe=self._probe,
            write=self._replay,
        )
        watch(self, exit_phase=COMMIT)

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """Open ``redis://[user:password@]host:port/db?prefix=name`` (or ``rediss://``).

        pqlsdk's own query parameters: ``prefix``, ``timeout`` and
        ``connect_timeout`` (seconds; both ``DEFAULT_TIMEOUT`` unless given),
        ``buffer``, ``probe_interval`` and ``cache_ttl``. Others go to redis-py
        (``socket_timeout=2`` overrides ``timeout`` and the like).

        Added in version 0.1.0.
        """
        opened = read_url(url)
        return cls(
            opened.client,
            prefix=opened.prefix,
            url=opened.url,
            buffer=opened.buffer,
            probe_interval=opened.probe_interval,
            cache_ttl=opened.cache_ttl,
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
    def intake_window(self) -> float:
        """Seconds over which the client's intake gathers a chunk while the host calls.

        A chunk costs three round trips however many messages it holds, so the
        intake is fed chunks of what gathered, not slices of a few messages
        (``PaysPerRoundTrip``).

        Added in version 0.1.0.
        """
        return _INTAKE_WINDOW

    @property
    def client(self) -> redis.Redis:
        """The redis-py client (for tests and operations tooling).

        Added in version 0.1.0.
        """
        return self._redis

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
                self._history.register(self._deferred)
                self._deferred = frozenset()

    def _replay(self, records: list[Record]) -> int:
        """Write messages that waited for Redis (from ``Outage``).

        They join the outbox as they would have when recorded, if this store's
        client delivers; its sender is woken, since no call of its own did so.
        """
        with self._errors("replay"):
            added = self._writer.write(records, [], queue=self._queue_replays)
        if added and self._queue_replays and self._on_queued is not None:
            self._on_queued(added)
        return added

    # -- writing ---------------------------------------------------------------

    def record(
        self, records: Iterable[Record], *, outbox: bool = False, written: Written | None = None
    ) -> int:
        """Fold ``records`` into their users, then their accounts and the log.

        Each user's messages are one write; account state and the log follow
        in steps of their own (see the Redis store page of the docs).
        With ``outbox``, new messages also join the outbox, in the same atomic
        step that adds them to the log. ``written`` gets the users' and
        accounts' states the write computed (none if it did not complete).

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
            return self._writer.write(batch, done, queue=outbox, written=written)
        except _UNREACHABLE as exc:
            self._outage.began(exc, "write")
            saved = {user_id for user_id, _ in done}
            self._outage.keep([record for record in batch if record[0].subject not in saved])
            return sum(new for _, new in done)
        except RedisError as exc:
            raise StoreError(f"redis store {self._url}: write failed: {exc}") from exc

    @property
    def aggregates(self) -> frozenset[Aggregate]:
        """The aggregates kept up to date (as of this process's last write).

        Added in version 0.1.0.
        """
        return self._history.aggregates

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
                return self._history.register(wanted)
        except StoreUnavailableError:
            self._deferred |= wanted
            logger.info(
                "redis store %s unreachable: the rules' aggregates will be registered "
                "when it returns",
                self._url,
            )
            return 0

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
                return self._server.update(self._user_key(user_id), load, change)
        finally:
            self._cache.forget(("u", user_id))

    def update_account(self, account_id: str, change: Callable[[AccountState], T]) -> T:
        """Run ``change`` on the account's state in one version-checked write.

        Added in version 0.1.0.
        """

        def load(raw: bytes | None) -> AccountState:
            return AccountState(account_id=account_id) if raw is None else decode_account(raw)

        try:
            with self._faults("write"):
                return self._server.update(self._account_key(account_id), load, change)
        finally:
            self._cache.forget(("a", account_id))

    # -- reading -----------------------------------------------------------------

    def user(self, user_id: str) -> UserState | None:
        """Return the state of ``user_id`` (read within the cache's TTL; do not mutate it).

        Added in version 0.1.0.
        """
        with self._faults("read"):
            return self._cached(
                ("u", user_id), lambda: self._server.load(self._user_key(user_id), decode_user)
            )

    def read_users(self, user_ids: list[str]) -> dict[str, UserState | None]:
        """Return the states of ``user_ids``, read in one round trip (not from the read cache).

        For checks that score many users at once (an account's PQA standing
        scores every member), where a read each would cost a round trip each.

        Added in version 0.1.0.
        """
        with self._faults("read"):
            keys = [self._user_key(user_id) for user_id in user_ids]
            return dict(zip(user_ids, self._server.load_many(keys, decode_user), strict=True))

    def account(self, account_id: str) -> AccountState | None:
        """Return the state of ``account_id`` (read within the cache's TTL; do not mutate it).

        Added in version 0.1.0.
        """
        with self._faults("read"):
            return self._cached(
                ("a", account_id),
                lambda: self._server.load(self._account_key(account_id), decode_account),
            )

    def _cached(self, key: tuple[str, str], read: Callable[[], T]) -> T:
        """Return ``read()``, reusing what it returned within the cache's TTL."""
        return self._cache.get(key, read)

    def messages(self, subject: str | None = None) -> Iterator[Message]:
        """Yield logged messages in time order, a page at a time.

        The log is one sorted set for all subjects, so ``subject`` filters it
        here: reading one user's history reads everyone's.

        Added in version 0.1.0.
        """
        with self._faults("read"):
            for message in self._history.messages():
                if subject is None or message.subject == subject:
                    yield message

    def count(self) -> int:
        """Return how many messages the log holds.

        Added in version 0.1.0.
        """
        with self._faults("read"):
            return self._history.count()

    def prune(self, before: datetime) -> int:
        """Drop logged messages older than ``before``; forget their messageIds as users write.

        From then on a user's messageId set expires when its newest id would be
        pruned (``before`` is read against the clock now, so a client clock
        set apart from real time shifts the expiry with it).

        Added in version 0.1.0.
        """
        with self._faults("prune"):
            return self._history.prune(before)

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
            self._outbox.enqueue(bodies)

    def lease(self, max_count: int, max_bytes: int, seconds: float) -> Lease:
        """Lease the oldest outbox entries no sender holds, for ``seconds`` by Redis's clock.

        Up to ``max_count`` entries and ``max_bytes`` together (the first is
        always taken). Entries whose lease ended (their sender died or hung)
        are taken again, oldest first.

        Added in version 0.1.0.
        """
        with self._sending("lease"):
            return self._outbox.lease(max_count, max_bytes, seconds)

    def ack(self, keys: Iterable[int]) -> None:
        """Delete outbox entries: the collector accepted them (or rejected them for good).

        Added in version 0.1.0.
        """
        numbers = list(keys)
        with self._sending("ack"):
            self._outbox.ack(numbers)

    def release(self, until: int, keys: Iterable[int]) -> None:
        """Make leased entries ready again, if they are still under the lease ending at ``until``.

        Added in version 0.1.0.
        """
        with self._sending("release"):
            self._outbox.release(until, keys)

    def outbox_size(self) -> int:
        """Entries waiting in the outbox, leased or not, from every host.

        Added in version 0.1.0.
        """
        with self._sending("read"):
            return self._outbox.size()

    def outbox(self, *, lease: float) -> RedisOutbox:
        """Return the outbox on the server, shared by every process of every host.

        Added in version 0.1.0.
        """
        return RedisOutbox(self, lease=lease)

    def when_queued(self, callback: Callable[[int], None] | None) -> None:
        """Call ``callback(count)`` when a replay after an outage queues messages.

        The client's sender waits for word of new messages; no call of the
        host announces those, so the store does.

        Added in version 0.1.0.
        """
        self._on_queued = callback

    # -- faults and lifecycle ------------------------------------------------------

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
        """Replay what waits if Redis answers, trim what the last write applied, then close.

        Then this process's connections are closed. A trim that fails costs
        only work (see ``Write.trim``): closing never raises for it.

        Added in version 0.1.0.
        """
        self._outage.finish()
        unwatch(self)
        with self._outbox_lock:
            self._closed = True
        if not self._outage.down:
            with contextlib.suppress(RedisError):
                self._writer.trim()
        self._server.close()
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
        self._cache.after_fork()
        self._server.after_fork()
        self._writer.after_fork()

    def __repr__(self) -> str:
        return f"RedisStore({self._url!r})"
