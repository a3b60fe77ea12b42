"""The Redis store's write: a message folded into its user, then its accounts, then the log.

Why three steps: a message touching a user and their account spans two slots,
and no Redis Cluster transaction spans two slots. So each step is atomic in
one slot and idempotent, and what is left after step 1 waits in the user's
*pending* list, which every writer of that user drains oldest first:

1. ``fold_user``, in the user's slot: the messageId is checked and recorded,
   the user's state changes, and a pending entry is appended holding the
   message, the user's state just before it and the accounts it touches;
2. ``apply_account``, in each such account's slot: the entries not applied
   there yet are applied in order, from the saved user state, and the account
   remembers per member the last pending number it applied;
3. the ``log`` script, in the ``{log}`` slot: the messages join the log (and,
   when their client delivers, the outbox: once, since a member already
   logged queues nothing); then the applied entries leave the pending list,
   with this process's next write (``trim``).

A process that dies between steps leaves its work to the user's next write.
``docs/redis.md`` tells the whole story; ``Write.after`` is the seam the crash
tests use to play such a death.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any, Final, NamedTuple, cast

import msgspec
from redis.exceptions import NoScriptError

from ..._clock import micros
from ...messages import Group, Track, decode_checked
from .._base import Record, Written
from .._state import (
    AccountState,
    UserState,
    apply,
    decode_account,
    decode_user,
    encode,
    fold_track,
)
from ._cache import ReadCache
from ._log import Log
from ._scripts import BIAS, HEADER, SEQ_WIDTH, Keys, Server

STEPS: Final = ("user", "accounts")
"""The steps after which ``Write.after`` is called (the log's step ends the write)."""

_Read = tuple[bytes | None, bytes | None, bytes | None]
"""An account's state, version and the last pending number of the writing user applied."""

_UserRead = tuple[list[Any], list[Any] | None]
"""A user's state, version and pending number as read, and the scores of the messageIds
being written (None when not read: the write's script checks them)."""


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
_SEQ: Final = b"%0" + str(SEQ_WIDTH).encode() + b"x"  # the format of ``_seq``

_Hint = tuple[Track, int, bool]
"""A track this process folded into its user, at hand for the account's step: the
message, its time in µs, and whether it is the user's first activity."""

_Work = list[tuple[int, _Pending, _Hint | None]]
"""Pending entries by pending number, oldest first (one member's, for an account), each
with its hint (None for an entry another writer left, read back from Redis)."""


class _Fold(NamedTuple):
    """One user's step 1, computed and queued: what its reply is read against."""

    new: int
    """How many of the user's messages were new."""
    accounts: list[str]
    """The accounts they touch."""
    user: UserState | None
    """The user's state after them."""
    entries: _Work
    """The pending entries the write appends (at hand: the reply need not carry them)."""


class _Folded(NamedTuple):
    """One user's step 1, done: what steps 2 and 3 need, and the state it wrote."""

    new: int
    """How many of the user's messages were new."""
    pending: _Work
    """The user's pending list after the write: work left before it, then its own."""
    reads: dict[str, _Read]
    """The accounts the new messages touch, as read right after the write."""
    user: UserState | None
    """The state written (None when nothing was new: the state was left as it was)."""


_NOT_WRITTEN: Final = _Folded(0, [], {}, None)


class Write:
    """The store's writes of recorded messages, one user at a time."""

    def __init__(self, server: Server, keys: Keys, log: Log, cache: ReadCache) -> None:
        self._server = server
        self._redis = server.client
        self._keys = keys
        self._log = log
        self._cache = cache
        self._stamp_lock = threading.Lock()
        self._last_stamp = 0
        self._trims: list[tuple[str, bytes]] = []  # (pending list, last number) done with
        self._trims_lock = threading.Lock()

    def after_fork(self) -> None:
        """In a forked child: fresh locks (the parent's may be held); the parent trims its own."""
        self._stamp_lock = threading.Lock()
        self._trims_lock = threading.Lock()
        self._trims = []

    def trim(self) -> None:
        """Drop the entries this process's writes applied from their pending lists: one round trip.

        A write leaves its trims to the next write's read (a round trip fewer
        each); ``close()`` calls this for the last write's. A trim that never
        runs (the process died, or Redis was away) costs only work: the user's
        next write finds the entries applied (each account remembers the last
        one it applied, the log holds their members) and trims them.
        """
        pipe: Any = self._server.batch()
        self._queue_trims(pipe)
        pipe.execute()

    def _queue_trims(self, pipe: Any) -> int:
        """Queue the trims left by earlier writes on ``pipe``; return how many calls were queued."""
        with self._trims_lock:
            trims, self._trims = self._trims, []
        if not trims:
            return 0
        groups = self._server.by_slot(trims, lambda trim: trim[0])
        for group in groups:
            keys, lasts = zip(*group, strict=True)
            self._server.eval(pipe, "trim", list(keys), list(lasts))
        return len(groups)

    def after(self, step: str) -> None:
        """Mark that one user's write has done ``step`` (one of ``STEPS``): do nothing.

        The seam for crash tests: they patch it to raise, playing a process
        that dies there, or to run another writer in between.
        """

    def _stamp(self) -> int:
        """Return an arrival stamp: nanoseconds, strictly increasing within this process."""
        with self._stamp_lock:
            self._last_stamp = max(time.time_ns(), self._last_stamp + 1)
            return self._last_stamp

    def write(
        self,
        batch: list[Record],
        done: list[tuple[str, int]],
        *,
        queue: bool,
        written: Written | None = None,
    ) -> int:
        """Write ``batch``, appending (user, new messages) to ``done`` per user written.

        Every user's step 1 rides in one round trip (after one read for all of
        them, which also trims what the last write applied); a user another
        writer changed meanwhile retries alone. Step 2 of every account and the
        log of step 3 share one more, so a chunk costs three round trips however
        many users and accounts it touches. With ``queue``, the new messages
        join the outbox in step 3. The states steps 1 and 2 wrote go into
        ``written`` once all three steps are done.
        """
        by_user: dict[str, list[Record]] = {}
        for record in batch:
            by_user.setdefault(record[0].subject, []).append(record)
        try:
            folded = self.fold_users(by_user, queue=queue)
            self.after("user")
            accounts = self.drain(folded)
        finally:
            self._cache.forget(*(("u", user_id) for user_id in by_user))
        done.extend((user_id, one.new) for user_id, one in folded.items())
        if written is not None:
            written.users.update((u, one.user) for u, one in folded.items() if one.user is not None)
            written.accounts.update(accounts)
        return sum(new for _, new in done)

    def fold_users(self, by_user: dict[str, list[Record]], *, queue: bool) -> dict[str, _Folded]:
        """Step 1 for every user of a chunk: one read and one write round trip for all.

        One script call folds every user of a slot group (on a server without
        Redis Cluster, the whole chunk), each user on its own terms: a user
        whose version changed between the two (another writer) is folded
        again on its own, until its write lands.
        """
        # A server that lost its scripts refused them all: read and fold again, reloading.
        answers = self._server.optimistic(
            self._keys.registry, lambda: (True, self._fold_all(by_user, queue=queue))
        )
        folded: dict[str, _Folded] = {}
        for user_id, items in by_user.items():
            answer = answers[user_id]
            folded[user_id] = (
                answer if answer is not None else self.fold_user(user_id, items, queue=queue)
            )
        return folded

    def _fold_all(
        self, by_user: dict[str, list[Record]], *, queue: bool
    ) -> dict[str, _Folded | None]:
        """Read every user, then fold each in and read the accounts they touch.

        Returns each user's step 1 (None where its write did not land).
        """
        reads = self._read_users(by_user)
        pipe = self._server.batch()
        groups = self._server.by_slot(by_user, self._keys.user)
        touched: dict[str, _Fold] = {}
        for group in groups:
            keys: list[str] = []
            args = self._fold_args()
            for user_id in group:
                touched[user_id] = self._fold(
                    keys, args, user_id, by_user[user_id], reads[user_id], queue=queue
                )
            self._server.eval(pipe, "fold_users", keys, args)
        touching = self._read_accounts(pipe, touched.items())
        replies = pipe.execute()
        accounts = _account_reads(_joined(replies[len(groups) :]), touching)
        written = zip(touched.items(), _joined(replies[: len(groups)]), strict=True)
        return {
            user_id: _answer(reply, fold, accounts, user_id) for (user_id, fold), reply in written
        }

    def _read_accounts(self, pipe: Any, folds: Iterable[tuple[str, _Fold]]) -> dict[str, list[str]]:
        """Queue a read of each account the users' new messages touch, after their writes.

        Each account is read once for the whole chunk (its state and version,
        and what it applied of each member writing), by one script call per
        slot group: step 2 then needs no read of its own. Returns the users
        writing to each account, in reply order.
        """
        touching: dict[str, list[str]] = {}
        for user_id, fold in folds:
            for account_id in fold.accounts:
                touching.setdefault(account_id, []).append(user_id)
        ordered: dict[str, list[str]] = {}
        for group in self._server.by_slot(touching, self._keys.account):
            keys: list[str] = []
            args: list[Any] = []
            for account_id in group:
                users = ordered[account_id] = touching[account_id]
                keys.extend(self._account_keys(account_id))
                args.extend((len(users), *users))
            self._server.eval(pipe, "read_accounts", keys, args)
        return ordered

    def _read_users(self, by_user: dict[str, list[Record]]) -> dict[str, _UserRead]:
        """Read every user's state, version and pending number: one round trip.

        One script call per slot group; not which messageIds the users already
        have (the write's script checks them and refuses a fold that took a
        known message for new: ``fold_user`` then reads them). The last write's
        trims go first, in the same round trip.
        """
        pipe: Any = self._server.batch()
        trims = self._queue_trims(pipe)
        groups = self._server.by_slot(by_user, self._keys.user)
        for group in groups:
            self._server.eval(pipe, "read", [self._keys.user(u) for u in group], ["s", "v", "n"])
        pipe.hlen(self._keys.registry)
        *replies, registered = pipe.execute()[trims:]
        self._registered(registered)
        users = (user_id for group in groups for user_id in group)
        return {
            user_id: (read, None) for user_id, read in zip(users, _joined(replies), strict=True)
        }

    def _read_user(self, user_id: str, items: list[Record]) -> _UserRead:
        """Read one user's state, version and pending number, and which of ``items`` it has."""
        pipe: Any = self._redis.pipeline(transaction=False)
        pipe.hmget(self._keys.user(user_id), "s", "v", "n")
        pipe.zmscore(self._keys.user(user_id, ":ids"), [message.message_id for message, _ in items])
        pipe.hlen(self._keys.registry)
        read, known, registered = pipe.execute()
        self._registered(registered)
        return read, known

    def _registered(self, count: int) -> None:
        """Read the registry again when another process registered more aggregates.

        Its size rides along with every read of users, so they are read before folding.
        """
        if count != len(self._log.aggregates):
            self._log.refresh()  # another process registered more

    def fold_user(self, user_id: str, items: list[Record], *, queue: bool = False) -> _Folded:
        """Step 1 for one user, retried until its write lands.

        Returns how many messages were new, the user's pending list after, the
        accounts the new messages touch as read right after the write (the
        same round trip: step 2 usually needs no read of its own), and the
        state written.
        """

        def attempt() -> tuple[bool, _Folded]:
            read = self._read_user(user_id, items)
            pipe = self._redis.pipeline(transaction=False)
            keys: list[str] = []
            args = self._fold_args()
            fold = self._fold(keys, args, user_id, items, read, queue=queue)
            self._server.eval(pipe, "fold_users", keys, args)
            touching = self._read_accounts(pipe, [(user_id, fold)])
            replies = pipe.execute()
            accounts = _account_reads(_joined(replies[1:]), touching)
            answer = _answer(replies[0][0], fold, accounts, user_id)
            return (False, _NOT_WRITTEN) if answer is None else (True, answer)

        return self._server.optimistic(self._keys.user(user_id), attempt)

    def _fold_args(self) -> list[Any]:
        """Return the first arguments of ``fold_users``: the prune cutoff and the log's keep."""
        cutoff, keep = self._log.cutoff, self._log.keep
        return ["" if cutoff is None else cutoff, "" if keep is None else keep]

    def _fold(
        self,
        keys: list[str],
        args: list[Any],
        user_id: str,
        items: list[Record],
        read: _UserRead,
        *,
        queue: bool,
    ) -> _Fold:
        """Fold the new messages into the user as ``read``; add its part of a ``fold_users`` call.

        Its keys join ``keys`` and its version-checked write joins ``args``.
        """
        (raw, version, seq), known = read
        keys.extend(
            (
                self._keys.user(user_id),
                self._keys.user(user_id, ":ids"),
                self._keys.user(user_id, ":pending"),
            )
        )
        aggregates = self._log.aggregates
        user = None if raw is None else decode_user(raw)
        unchanged = True  # the user is still as read: its state before a message is ``raw``
        number = int(seq or 0)
        entries: _Work = []
        times: dict[str, int] = {}
        touched: dict[str, None] = {}

        def load_user(_: str) -> UserState | None:
            return user

        def load_account(key: str) -> AccountState:
            return _stand_in(key, user_id)

        cutoff = self._log.cutoff
        for (message, data), score in zip(items, known or [None] * len(items), strict=True):
            if message.message_id in times or (
                score is not None and (cutoff is None or score >= cutoff)
            ):
                continue  # recorded before, and not pruned since
            at = micros(message.timestamp)
            hint: _Hint | None = None
            if type(message) is Track and user is not None and user.account_id is not None:
                hint = (message, at, user.last_active is None)
            touches = hint is not None or type(message) is Group
            before = None if user is None or not touches else raw if unchanged else encode(user)
            changes = apply(message, load_user, load_account, aggregates, at)
            user = changes.users[0]
            unchanged = False
            number += 1
            member = HEADER.pack(at + BIAS, self._stamp()) + data
            accounts = [account.account_id for account in changes.accounts]
            touched.update(dict.fromkeys(accounts))
            entries.append((number, _Pending(member, before, accounts, queue), hint))
            times[message.message_id] = at
        args.extend((version or 0, b"" if user is None else encode(user), number, len(entries)))
        args.extend(part for message_id, at in times.items() for part in (at, message_id))
        args.extend(_seq(n) + encode(entry) for n, entry, _ in entries)
        return _Fold(len(entries), list(touched), user, entries)

    def drain(self, folded: dict[str, _Folded]) -> dict[str, AccountState]:
        """Apply the users' pending entries to their accounts (step 2), then the log (step 3).

        Step 2 of every account and one ``log`` script over all the users'
        members share one round trip (the log after the accounts); the trims of
        their pending lists wait for the next write's read (``trim``).
        Returns the accounts' states as step 2 left them.
        """
        log_args: list[bytes] = []
        trims: list[tuple[str, bytes]] = []
        accounts: dict[str, dict[str, tuple[_Work, _Read | None]]] = {}
        for user_id, (_, entries, reads, _) in folded.items():
            if not entries:
                continue
            for item in entries:
                for account_id in dict.fromkeys(item[1].accounts):
                    members = accounts.setdefault(account_id, {})
                    members.setdefault(user_id, ([], reads.get(account_id)))[0].append(item)
            logged = dict.fromkeys(
                (entry.member, b"1" if entry.queue else b"0") for _, entry, _ in entries
            )
            log_args.extend(part for pair in logged for part in pair)
            trims.append((self._keys.user(user_id, ":pending"), _seq(entries[-1][0])))
        states = self.apply_accounts(accounts, log_args)
        self.after("accounts")
        with self._trims_lock:
            self._trims.extend(trims)
        return states

    def _queue_log(self, pipe: Any, log_args: list[bytes]) -> None:
        """Queue step 3's ``log`` script over ``log_args`` (member, queue flag) on ``pipe``."""
        keys = [self._keys.log, self._keys.outbox, self._keys.ready, self._keys.outbox_seq]
        self._server.eval(pipe, "log", keys, log_args)

    def apply_accounts(
        self, accounts: dict[str, dict[str, tuple[_Work, _Read | None]]], log_args: list[bytes]
    ) -> dict[str, AccountState]:
        """Step 2 for every account, then step 3's log: one round trip for all.

        Each account as step 1 read it, when it did for every member writing;
        an account it did not read, or another writer changed meanwhile, is
        applied again on its own, reading it first. One ``swap_accounts`` call
        per slot group; the ``log`` follows them in the same round trip (its
        entries stay pending until every account has applied them, so a
        writer dying in between leaves the rest to the next). Returns the states
        written (or, for an account another writer brought up to date, as read).
        """
        pipe: Any = self._server.batch()
        swaps: dict[str, list[Any]] = {}
        again: list[str] = []
        states: dict[str, AccountState] = {}
        try:
            for account_id, members in accounts.items():
                reads = [read for _, read in members.values()]
                if any(read is None for read in reads):
                    again.append(account_id)
                    continue
                raw, version, _ = cast(_Read, reads[0])
                applied = {user_id: cast(_Read, read)[2] for user_id, (_, read) in members.items()}
                # Nothing new only if another writer applied it in between:
                # the write then stores the state as read, harmlessly.
                _, states[account_id], swaps[account_id] = self._fold_account(
                    account_id, members, raw, version, applied
                )
            groups = self._server.by_slot(swaps, self._keys.account) if swaps else []
            for group in groups:
                keys: list[str] = []
                args: list[Any] = []
                for account_id in group:
                    keys.extend(self._account_keys(account_id))
                    args.extend(swaps[account_id])
                self._server.eval(pipe, "swap_accounts", keys, args)
            if log_args:
                self._queue_log(pipe, log_args)
            lost = False
            try:
                written = _joined(pipe.execute()[: len(groups)])
            except NoScriptError:  # the server lost its scripts: each on its own, reloading
                written = [0] * len(swaps)
                lost = True
            queued = (account_id for group in groups for account_id in group)
            again.extend(a for a, landed in zip(queued, written, strict=True) if landed != 1)
            for account_id in again:
                states[account_id] = self.apply_account(account_id, accounts[account_id])
            if lost:  # the log too (a member it already holds is logged and queued once)
                self._server.optimistic(self._keys.log, lambda: self._log_alone(log_args))
        finally:
            self._cache.forget(*(("a", account_id) for account_id in accounts))
        return states

    def _log_alone(self, log_args: list[bytes]) -> tuple[bool, None]:
        """Run step 3's log in a round trip of its own (its first try met lost scripts)."""
        pipe: Any = self._redis.pipeline(transaction=False)
        self._queue_log(pipe, log_args)
        pipe.execute()
        return True, None

    def _account_keys(self, account_id: str) -> list[str]:
        return [self._keys.account(account_id), self._keys.account(account_id, ":seen")]

    def apply_account(
        self, account_id: str, members: dict[str, tuple[_Work, _Read | None]]
    ) -> AccountState:
        """Step 2 for one account, read afresh and retried until its write lands.

        Returns the state written (or read, when another writer had applied it all).
        """
        account_key, seen_key = self._account_keys(account_id)
        users = list(members)

        def attempt() -> tuple[bool, AccountState]:
            pipe: Any = self._redis.pipeline(transaction=False)
            pipe.hmget(account_key, "s", "v")
            pipe.hmget(seen_key, users)
            (raw, version), seen = pipe.execute()
            fresh, account, args = self._fold_account(
                account_id, members, raw, version, dict(zip(users, seen, strict=True))
            )
            if not fresh:
                return True, account
            written = self._server.eval(self._redis, "swap_accounts", [account_key, seen_key], args)
            return written == [1], account

        return self._server.optimistic(account_key, attempt)

    def _fold_account(
        self,
        account_id: str,
        members: dict[str, tuple[_Work, _Read | None]],
        raw: bytes | None,
        version: bytes | None,
        applied: dict[str, bytes | None],
    ) -> tuple[bool, AccountState, list[Any]]:
        """Apply each member's entries the account has not applied yet, in order.

        Returns whether there were any, the account after them, and its part of
        a ``swap_accounts`` call (the version read, the new state, and per
        member the last pending number applied). A track this process folded
        into its user (most entries) is applied from its hint, as ``apply``
        applies a track to its account: the saved user state and the message
        need not be decoded again, nor the user's side folded into a copy.
        """
        account = AccountState(account_id=account_id) if raw is None else decode_account(raw)
        before: UserState | None = None
        user_id = ""

        def load_user(_: str) -> UserState | None:
            return before

        def load_account(key: str) -> AccountState:
            return account if key == account_id else _stand_in(key, user_id)

        aggregates = self._log.aggregates
        seen: list[Any] = []
        for user_id, (work, _) in members.items():
            last = int(applied[user_id] or 0)
            todo = [item for item in work if item[0] > last]
            for _, entry, hint in todo:
                if hint is not None:
                    track, at, first = hint
                    account.active_members += first
                    fold_track(track, at, None, account, aggregates)
                    continue
                before = None if entry.before is None else decode_user(entry.before)
                message = decode_checked(entry.member[HEADER.size :])
                apply(message, load_user, load_account, aggregates)
            if todo:
                seen.extend((user_id, todo[-1][0]))
        return bool(seen), account, [version or 0, encode(account), len(seen) // 2, *seen]


def _account_reads(
    replies: list[Any], touching: dict[str, list[str]]
) -> dict[str, dict[str, _Read]]:
    """Return what ``Write._read_accounts`` read, per member writing, by account."""
    reads: dict[str, dict[str, _Read]] = {}
    for i, (account_id, users) in enumerate(touching.items()):
        (raw, version), seen = replies[2 * i], replies[2 * i + 1]
        for user_id, last in zip(users, seen, strict=True):
            reads.setdefault(user_id, {})[account_id] = (raw, version, last)
    return reads


def _answer(
    written: list[Any], fold: _Fold, accounts: dict[str, dict[str, _Read]], user_id: str
) -> _Folded | None:
    """Read one user's step-1 write and the accounts read after it.

    None when the write did not land: another writer came first, or a
    message folded as new was known (``fold_user`` then reads the ids).
    """
    if written[0] != 1:
        return None
    left: _Work = [
        (int(item[:SEQ_WIDTH], 16), _decode_pending(item[SEQ_WIDTH:]), None) for item in written[1:]
    ]
    return _Folded(
        fold.new, left + fold.entries, accounts.get(user_id, {}), fold.user if fold.new else None
    )


def _joined(replies: list[list[Any]]) -> list[Any]:
    """Return the replies of a pipeline's script calls, one per item, in order."""
    return [item for reply in replies for item in reply]


def _seq(number: int) -> bytes:
    """Return a pending number as it heads its entry: fixed-width hex, byte order number order."""
    return _SEQ % number


def _stand_in(account_id: str, user_id: str) -> AccountState:
    """Return an account whose changes are thrown away: the user's step needs its shape only.

    It lists the user as a member, so a user leaving it can be removed.
    """
    return AccountState(account_id=account_id, members=[user_id])
