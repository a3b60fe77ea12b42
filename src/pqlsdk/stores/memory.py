"""The memory store: state in this process only, for tests and short scripts.

Nothing survives the process, and other processes cannot see it.

It holds bytes rather than objects wherever it can, for two reasons: a decoded
state costs about four times its msgpack encoding in memory, and bytes are not
tracked by the garbage collector, so a large store adds no work to its passes.

- States: the ``_HOT`` most recently written users (and accounts) stay decoded,
  so the request path reads them for free; the rest are msgpack blobs, decoded
  on read (about a microsecond). A blob is the array of the state's fields, not
  the map the other stores write: nothing outside this process reads it, and
  the field names were a quarter of it (410 bytes a user in the bench case
  become 304, for about 0.1 µs more a cold read).
- The log: sealed blocks of ``_BLOCK`` entries, each one zlib-compressed msgpack
  list (Segment JSON of one app repeats itself: a block shrinks about tenfold),
  and an open tail of plain entries. A late message (older than the tail: a
  backfill, a replayed history) joins its block's short uncompressed list of
  late entries; the block is sealed again only when that list is full, so a
  backfill costs microseconds a message, not a compression each.
- The ``messageId`` dedupe: 64-bit hashes (``pqlsdk._digests``, 8 bytes an id).
  A hash seen before is checked against the log itself, so a clash of hashes
  never drops a message.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, Final, Generic, TypeVar

import msgspec

from .._aggregates import Aggregate
from .._clock import micros
from .._digests import Digests, digest
from .._exceptions import ConfigError
from ..messages import Message, decode
from ._base import Record, T, Written
from ._state import AccountState, UserState, apply, encode, rebuild

__all__ = ["MemoryStore"]

_BLOCK: Final = 512
"""Log entries per compressed block: large enough to compress well, small enough
that sealing a block again with its late messages costs a millisecond."""
_LATE: Final = 64
"""Late entries a block holds uncompressed before it is sealed again with them."""
_HOT: Final = 1_024
"""Decoded states kept per kind, the most recently written."""

_Entry = tuple[int, int, str, str, bytes]
"""(timestamp µs, arrival, subject, messageId, JSON): in time order, arrival
order breaking ties."""
_entries_decoder: Final = msgspec.msgpack.Decoder(list[_Entry])
_S = TypeVar("_S", UserState, AccountState)
_digest: Callable[[str], int] = digest
"""An id's 64-bit hash (a name of its own so that a test can make ids clash)."""


def _row_decoder(kind: type[msgspec.Struct]) -> msgspec.msgpack.Decoder[Any]:
    """Return a decoder of ``kind``'s fields as a msgpack array, each checked as its type."""
    fields: Any = tuple(field.type for field in msgspec.structs.fields(kind))
    return msgspec.msgpack.Decoder(tuple[fields])


_user_row: Final = _row_decoder(UserState)
_account_row: Final = _row_decoder(AccountState)


def _pack(state: UserState | AccountState) -> bytes:
    """Encode a cold state as its fields in declaration order, without their names."""
    return encode(msgspec.structs.astuple(state))


def _unpack_user(blob: bytes) -> UserState:
    # Field by field in UserState's declaration order (a test fails if the two drift),
    # not UserState(**dict(zip(...))): that costs a microsecond more a read.
    (
        user_id,
        traits,
        trait_times,
        account_id,
        account_time,
        first_seen,
        last_active,
        tracks,
        aggregates,
        tiers,
        moments,
    ) = _user_row.decode(blob)
    return UserState(
        user_id=user_id,
        traits=traits,
        trait_times=trait_times,
        account_id=account_id,
        account_time=account_time,
        first_seen=first_seen,
        last_active=last_active,
        tracks=tracks,
        aggregates=aggregates,
        tiers=tiers,
        moments=moments,
    )


def _unpack_account(blob: bytes) -> AccountState:
    (account_id, traits, trait_times, active_members, members, aggregates, tiers) = (
        _account_row.decode(blob)
    )
    return AccountState(
        account_id=account_id,
        traits=traits,
        trait_times=trait_times,
        active_members=active_members,
        members=members,
        aggregates=aggregates,
        tiers=tiers,
    )


class _States(Generic[_S]):
    """States by id: recently written ones as objects, the others as msgpack (``_pack``).

    Reads take no lock and never miss a state: a state joins ``hot`` before it
    could leave ``cold`` (its blob stays there, stale, while it is hot) and its
    new blob is in ``cold`` before it leaves ``hot``. Writers hold the store's lock.
    """

    def __init__(self, decode_state: Callable[[bytes], _S]) -> None:
        self.hot: dict[str, _S] = {}
        self.cold: dict[str, bytes] = {}
        self._decode: Callable[[bytes], _S] = decode_state

    def get(self, key: str) -> _S | None:
        """Return the state (a decoded copy when cold), or None."""
        found = self.hot.get(key)
        if found is not None:
            return found
        blob = self.cold.get(key)
        return None if blob is None else self._decode(blob)

    def put(self, key: str, state: _S) -> None:
        """Hold ``state`` as the live one for ``key``, encoding the oldest hot one out."""
        self.hot[key] = state  # kept in first-written order: see the class docstring
        while len(self.hot) > _HOT:
            oldest = next(iter(self.hot))
            self.cold[oldest] = _pack(self.hot[oldest])
            del self.hot[oldest]

    def __len__(self) -> int:
        return len(self.cold) + sum(1 for key in self.hot if key not in self.cold)


class _Block(msgspec.Struct, frozen=True, gc=False):
    """A sealed run of log entries in time order, compressed, and its late entries.

    Immutable: a late entry makes a new block sharing ``data``, so a reader
    holding the old one (reads take no lock) sees a consistent run.
    """

    first: tuple[int, int]
    last: tuple[int, int]
    data: bytes
    late: tuple[_Entry, ...] = ()
    """Entries inserted after sealing, in order; at most ``_LATE``."""

    @classmethod
    def seal(cls, entries: list[_Entry]) -> _Block:
        return cls(entries[0][:2], entries[-1][:2], zlib.compress(encode(entries)))

    def entries(self) -> list[_Entry]:
        sealed = _entries_decoder.decode(zlib.decompress(self.data))
        return list(heapq.merge(sealed, self.late)) if self.late else sealed

    def with_late(self, entry: _Entry) -> _Block:
        """Return a copy of this block with ``entry`` among its late entries."""
        late = list(self.late)
        bisect.insort(late, entry)
        return _Block(min(self.first, entry[:2]), max(self.last, entry[:2]), self.data, tuple(late))


class _Ids:
    """Which ``messageId``s the log holds, as 64-bit hashes (exact: see ``add``)."""

    def __init__(self) -> None:
        self._digests = Digests()
        self._clashes: set[str] = set()
        """Ids logged whose hash another logged id has: checked by value."""

    def add(self, message_id: str, at: int, logged: Callable[[str, int], bool]) -> bool:
        """Add ``message_id`` (of a message at ``at``); False when the log already holds it.

        ``logged(message_id, at)`` searches the log, called only when the hash is known.
        """
        if message_id in self._clashes:
            return False
        hashed = _digest(message_id)
        if hashed in self._digests:
            if logged(message_id, at):
                return False
            self._clashes.add(message_id)  # a clash of hashes: another id
            return True
        self._digests.add(hashed)
        return True

    def discard(self, message_ids: Iterable[str]) -> None:
        """Forget ids pruned from the log."""
        self._clashes.difference_update(message_ids)
        self._digests.discard(_digest(message_id) for message_id in message_ids)


class MemoryStore:
    """A ``Store`` held in this process behind one lock.

    Added in version 0.1.0.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: _States[UserState] = _States(_unpack_user)
        self._accounts: _States[AccountState] = _States(_unpack_account)
        self._blocks: list[_Block] = []
        self._firsts: list[tuple[int, int]] = []  # each block's first key, for bisect
        self._tail: list[_Entry] = []  # after every block, not yet sealed
        self._count = 0
        self._ids = _Ids()
        self._arrivals = 0
        self._aggregates: frozenset[Aggregate] = frozenset()

    @property
    def url(self) -> str:
        """Always ``memory://``.

        Added in version 0.1.0.
        """
        return "memory://"

    def record(
        self, records: Iterable[Record], *, outbox: bool = False, written: Written | None = None
    ) -> int:
        """Append to the log and fold into state, under the store's lock.

        Added in version 0.1.0.
        """
        if outbox:
            raise ConfigError("the memory store has no durable outbox")
        added = 0
        with self._lock:
            for message, data in records:
                at = micros(message.timestamp)
                message_id = message.message_id
                if not self._ids.add(message_id, at, self._logged):
                    continue
                self._arrivals += 1
                self._append((at, self._arrivals, message.subject, message_id, data))
                changes = apply(message, self._users.get, self._accounts.get, self._aggregates)
                for user in changes.users:
                    self._users.put(user.user_id, user)
                for account in changes.accounts:
                    self._accounts.put(account.account_id, account)
                if written is not None:
                    written.users.update((user.user_id, user) for user in changes.users)
                    written.accounts.update((a.account_id, a) for a in changes.accounts)
                added += 1
        return added

    def _append(self, entry: _Entry) -> None:
        self._count += 1
        tail = self._tail
        if self._blocks and entry[:2] < self._blocks[-1].last:
            self._insert_late(entry)
        elif not tail or tail[-1] < entry:
            tail.append(entry)
        else:
            bisect.insort(tail, entry)
        if len(tail) >= _BLOCK:
            self._blocks.append(_Block.seal(tail))
            self._firsts.append(tail[0][:2])
            self._tail = []

    def _insert_late(self, entry: _Entry) -> None:
        """Insert an entry older than the tail into its block (split when it doubles)."""
        index = max(bisect.bisect_right(self._firsts, entry[:2]) - 1, 0)
        block = self._blocks[index]
        if len(block.late) < _LATE:
            self._blocks[index] = block = block.with_late(entry)
            self._firsts[index] = block.first
            return
        entries = block.entries()
        bisect.insort(entries, entry)
        parts = [entries[:_BLOCK], entries[_BLOCK:]] if len(entries) >= 2 * _BLOCK else [entries]
        blocks = [_Block.seal(part) for part in parts]
        self._blocks[index : index + 1] = blocks
        self._firsts[index : index + 1] = [block.first for block in blocks]

    def _logged(self, message_id: str, at: int) -> bool:
        """Say whether the log holds ``message_id``: near ``at`` first, then anywhere.

        A resent message keeps its timestamp, so the first look nearly always answers.
        """
        start = max(bisect.bisect_right(self._firsts, (at, -1)) - 1, 0)
        stop = bisect.bisect_right(self._firsts, (at + 1, -1))
        near = itertools.chain.from_iterable(b.entries() for b in self._blocks[start:stop])
        if any(entry[3] == message_id for entry in itertools.chain(near, self._tail)):
            return True
        return any(entry[3] == message_id for entry in self._entries())

    def _entries(self) -> Iterator[_Entry]:
        """Every log entry in order (a snapshot of the block list and tail, taken now)."""
        blocks, tail = list(self._blocks), list(self._tail)
        for block in blocks:
            yield from block.entries()
        yield from tail

    @property
    def aggregates(self) -> frozenset[Aggregate]:
        """The aggregates kept up to date.

        Added in version 0.1.0.
        """
        return self._aggregates

    def maintain(self, aggregates: Iterable[Aggregate]) -> int:
        """Keep ``aggregates``; compute new ones from the log under the lock.

        Added in version 0.1.0.
        """
        with self._lock:
            new = frozenset(aggregates) - self._aggregates
            if new:
                users, accounts = rebuild(
                    (decode(entry[4]) for entry in self._entries()),
                    new,
                    self._users.get,
                    self._accounts.get,
                )
                # Cold states were changed as decoded copies: write every one back.
                for user in filter(None, users.values()):
                    self._users.put(user.user_id, user)
                for account in filter(None, accounts.values()):
                    self._accounts.put(account.account_id, account)
                self._aggregates |= new
        return len(new)

    def update_user(self, user_id: str, change: Callable[[UserState], T]) -> T:
        """Run ``change`` on the user's state under the lock.

        Added in version 0.1.0.
        """
        with self._lock:
            state = self._users.get(user_id) or UserState(user_id=user_id)
            self._users.put(user_id, state)
            return change(state)

    def update_account(self, account_id: str, change: Callable[[AccountState], T]) -> T:
        """Run ``change`` on the account's state under the lock.

        Added in version 0.1.0.
        """
        with self._lock:
            state = self._accounts.get(account_id) or AccountState(account_id=account_id)
            self._accounts.put(account_id, state)
            return change(state)

    def user(self, user_id: str) -> UserState | None:
        """Return the state of ``user_id`` (do not mutate it).

        Added in version 0.1.0.
        """
        return self._users.get(user_id)

    def account(self, account_id: str) -> AccountState | None:
        """Return the state of ``account_id`` (do not mutate it).

        Added in version 0.1.0.
        """
        return self._accounts.get(account_id)

    def messages(self, subject: str | None = None) -> Iterator[Message]:
        """Yield logged messages in time order (a snapshot taken at the call).

        Added in version 0.1.0.
        """
        with self._lock:
            blocks, tail = list(self._blocks), list(self._tail)
        for entries in itertools.chain((block.entries() for block in blocks), (tail,)):
            for _, _, owner, _, data in entries:
                if subject is None or owner == subject:
                    yield decode(data)

    def count(self) -> int:
        """Return how many messages the log holds.

        Added in version 0.1.0.
        """
        return self._count

    def prune(self, before: datetime) -> int:
        """Drop messages older than ``before`` from the log.

        Added in version 0.1.0.
        """
        cutoff = (micros(before),)
        with self._lock:
            whole = bisect.bisect_left([block.last for block in self._blocks], cutoff)
            dropped = [entry for block in self._blocks[:whole] for entry in block.entries()]
            del self._blocks[:whole], self._firsts[:whole]
            if self._blocks:
                entries = self._blocks[0].entries()
                cut = bisect.bisect_left(entries, cutoff)
                if cut:
                    dropped += entries[:cut]
                    self._blocks[0] = _Block.seal(entries[cut:])
                    self._firsts[0] = self._blocks[0].first
            else:
                cut = bisect.bisect_left(self._tail, cutoff)
                dropped += self._tail[:cut]
                del self._tail[:cut]
            self._ids.discard([entry[3] for entry in dropped])
            self._count -= len(dropped)
        return len(dropped)

    def outbox(self, *, lease: float) -> None:
        """None: this store keeps no outbox; the client queues messages in memory.

        Added in version 0.1.0.
        """
        return None

    def close(self) -> None:
        """Nothing to release.

        Added in version 0.1.0.
        """

    def __repr__(self) -> str:
        return f"MemoryStore(users={len(self._users)}, messages={self._count})"
