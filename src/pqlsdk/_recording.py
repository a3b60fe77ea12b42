"""Recording: a client's checked messages into its store, and what follows from each write.

The ``Client`` builds and checks a message on the caller's thread and hands it
here. ``accept()`` (``track()`` itself for the usual call) records it at once
(strict clients, caller-mode delivery, sync durability) or appends its bytes to
the intake (``_intake``), which calls ``apply_pending()`` off the request path.
Either way ``write()`` is the one place a message reaches the store; after it
come the consequences: the memo forgets the users it changed, tier crossings
are detected and reported (to the collector and ``on_tier_change``), records
are queued for delivery, and the log is pruned past retention.

The recorder also wires what recording needs: the store (buffered for write-behind),
the delivery pipeline, the intake and its journal, and the replay of the journals
that processes which died left.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from ._clock import micros
from ._delivery import Pipeline, prepare_store
from ._exceptions import ClosedError, ConfigError, InvalidMessageError, StoreError
from ._faults import Faults
from ._ids import check_id, check_optional_id
from ._intake import Intake
from ._journal import Journal
from ._memo import Memo
from ._options import Options
from ._stats import Counters, logger
from ._tiers import TierChange, detect_crossings
from .messages import (
    Group,
    Identify,
    Message,
    Track,
    check,
    checked_track,
    convert,
    decode_all,
    decode_checked,
    generated_here,
    mapping,
    new_message_id,
    owner_prefix,
)
from .rules import Rules, load
from .stores import Store, Written
from .stores._base import PaysPerRoundTrip
from .stores.buffered import BufferedStore

__all__ = ["Recorder"]

_PRUNE_EVERY: Final = 3_600_000_000  # µs: retention is enforced at most hourly


class Recorder:
    """One client's write path: its store, delivery pipeline, intake and journal."""

    rules: Rules | None
    """The rules in force: crossings are detected under them (None: not at all)."""
    memo: Memo
    """Answers ``decide()`` keeps; each write forgets those of the users it changed."""
    closed: bool
    """Set by ``close()``: later messages are dropped (counted as ``closed``)."""

    def __init__(self, options: Options, faults: Faults) -> None:
        self.faults = faults
        self._counters: Counters = faults.counters
        self.pipeline: Pipeline | None = None
        self.store: Store = prepare_store(
            options.store,
            options.delivery,
            delivering=options.transport is not None,
            on_commit=self._committed,
            on_error=lambda exc: self._counters.error("store_error", str(exc)),
        )
        if options.transport is not None:
            self.pipeline = Pipeline(
                self.store,
                options.transport,
                options.delivery,
                self._counters,
                owns_transport=options.owns_transport,
                on_error=options.on_error,
                on_store_error=faults.error,
            )
        self._clock = options.clock
        self._retention = options.retention
        self.closed = False
        self._prune_lock = threading.Lock()
        self._next_prune = 0
        self._on_tier_change = options.on_tier_change
        self.rules = None
        self.memo = Memo()
        self._echoed = False  # a caller passed an id this process made (see ``_echo``)
        # Calls accept messages and return; the intake applies them off the request
        # path. Strict clients (tests), caller-mode delivery (no threads) and sync
        # durability (committed before the call returns) apply inline.
        self.intake: Intake | None = None
        self.journal: Journal | None = None
        delivery = options.delivery
        inline = faults.strict or delivery.mode != "background"
        if not inline and delivery.durability == "buffered":
            buffered = self.store if isinstance(self.store, BufferedStore) else None
            if buffered is not None:
                self.journal = Journal(buffered.inner.path)
            store = self.store
            window = store.intake_window if isinstance(store, PaysPerRoundTrip) else None
            self.intake = Intake(
                self.apply_pending,
                journal=self.journal,
                max_bytes=delivery.backlog_bytes,
                on_full=delivery.on_full,
                block_timeout=delivery.block_timeout,
                # Not a method: the intake thread must not keep the client alive.
                on_fault=functools.partial(_journal_fault, self._counters),
                on_drop=self._counters.dropped,
                window=window,
            )
            if buffered is not None and self.journal is not None:
                self._replay(buffered, self.journal, self.intake)
        self._prune(micros(self._clock.now()))

    def load_rules(self, rules: str | Path | Rules) -> Rules:
        """Compile ``rules`` (a path) if need be, then switch to them (``Client.load_rules()``)."""
        if not isinstance(rules, str | Path | Rules):
            raise ConfigError(f"rules must be a path or Rules, got {type(rules).__name__}")
        loaded = rules if isinstance(rules, Rules) else load(rules)
        for warning in loaded.warnings:  # a strict client refuses what looks like a mistake
            if self.faults.strict:
                raise warning.as_error()
            logger.warning("%s", warning)
        self.settle()
        self.store.maintain(loaded.aggregates)
        self.memo = Memo()  # answers under the old rules are void
        self.rules = loaded
        return loaded

    def identify(
        self,
        user_id: str | int | None,
        traits: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | int | None = None,
        timestamp: datetime | None = None,
        context: Mapping[str, Any] | None = None,
        message_id: str | None = None,
    ) -> None:
        """Accept an ``identify`` message (``Client.identify()``)."""
        if message_id is not None:  # a call fewer for the usual call, without one
            self._echo(message_id)
        self.accept(
            user_id,
            anonymous_id,
            lambda user_id, anonymous_id: Identify(
                user_id=user_id,
                anonymous_id=anonymous_id,
                traits=mapping("traits", traits),
                context=mapping("context", context),
                timestamp=self._clock.now() if timestamp is None else timestamp,
                message_id=message_id or new_message_id(),
            ),
        )

    def group(
        self,
        user_id: str | int | None,
        group_id: str | int,
        traits: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | int | None = None,
        timestamp: datetime | None = None,
        context: Mapping[str, Any] | None = None,
        message_id: str | None = None,
    ) -> None:
        """Accept a ``group`` message (``Client.group()``)."""
        if message_id is not None:  # a call fewer for the usual call, without one
            self._echo(message_id)
        self.accept(
            user_id,
            anonymous_id,
            lambda user_id, anonymous_id: Group(
                user_id=user_id,
                anonymous_id=anonymous_id,
                group_id=check_id(group_id, "group_id"),
                traits=mapping("traits", traits),
                context=mapping("context", context),
                timestamp=self._clock.now() if timestamp is None else timestamp,
                message_id=message_id or new_message_id(),
            ),
        )

    def track(
        self,
        user_id: str | int | None,
        event: str,
        properties: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | int | None = None,
        timestamp: datetime | None = None,
        context: Mapping[str, Any] | None = None,
        message_id: str | None = None,
    ) -> None:
        """Accept a ``track`` message (``Client.track()``).

        The usual call's message is built, checked and encoded in one call
        (``checked_track``) and handed to the intake from here: each Python
        call on this path is a tenth of a microsecond of the caller's.
        """
        if message_id is not None:  # a call fewer for the usual call, without one
            self._echo(message_id)
        if anonymous_id is None and context is None:
            try:
                # The clock's ``now`` looked up at each call, as identify() does: one set
                # on the clock once the client exists (a host's test) stamps tracks too.
                record = checked_track(
                    user_id, event, properties, timestamp, message_id, now=self._clock.now
                )
            except InvalidMessageError as exc:
                self.faults.drop(exc.reason, exc)
                return
            if record is not None:
                self._hand(record)
                return
        self.accept(
            user_id,
            anonymous_id,
            lambda user_id, anonymous_id: Track(
                user_id=user_id,
                anonymous_id=anonymous_id,
                event=event,
                properties=mapping("properties", properties),
                context=mapping("context", context),
                timestamp=self._clock.now() if timestamp is None else timestamp,
                message_id=message_id or new_message_id(),
            ),
        )

    def _echo(self, message_id: object) -> None:
        """Note a caller's ``message_id`` that this process made: ids are then all looked up.

        An id passed back (read from the log, say) may be logged already: the
        intake asks the file about every id from then on, as it did before it
        trusted its own ids to be new.
        """
        if type(message_id) is str and generated_here(message_id):
            self._echoed = True

    def ingest(self, messages: Iterable[Message | Mapping[str, Any]]) -> int:
        """Check and record already-formed messages in one write (``Client.ingest()``)."""
        try:
            items = iter(messages)
        except TypeError:
            kind = type(messages).__name__
            self.faults.drop(
                "invalid", InvalidMessageError(f"ingest() takes messages, not a {kind}")
            )
            return 0
        self.settle()  # keep arrival order with calls accepted earlier
        checked = []
        for item in items:
            try:
                message = item if isinstance(item, Message) else convert(item)
                checked.append(check(message))
            except InvalidMessageError as exc:
                self.faults.drop(exc.reason, exc)
        return self.write(checked)

    def accept(
        self, user_id: object, anonymous_id: object, build: Callable[[Any, Any], Message]
    ) -> None:
        """Check the ids, build and check a message; record it now, or hand its bytes to the intake.

        Ids as they usually come (a plain ASCII str, no anonymous id) cost no call.
        """
        try:
            if not (type(user_id) is str and user_id.isascii() and anonymous_id is None):
                user_id = check_optional_id(user_id, "user_id")
                anonymous_id = check_optional_id(anonymous_id, "anonymous_id")
            record = check(build(user_id, anonymous_id))
        except InvalidMessageError as exc:
            self.faults.drop(exc.reason, exc)
            return
        self._hand(record)

    def _hand(self, record: tuple[Message, bytes]) -> None:
        """Hand a checked message's bytes to the intake; without one, record it now.

        The intake takes every message until the client is closed: then it is
        counted as ``closed``.
        """
        intake = self.intake
        if intake is None:
            self.write([record])
        elif self.closed:
            self.faults.drop("closed", ClosedError("the client is closed"))
        else:
            intake.put(record[1])

    def _replay(self, store: BufferedStore, journal: Journal, intake: Intake) -> None:
        """Record what processes that died left in their journals, and commit it.

        Each commit then releases what it made durable; the claimed journals go
        with the first commit (recording is idempotent: what they had committed
        before dying is skipped, and queued for the collector only once).
        """
        store.follow(lambda: intake.applied, journal.release)
        records = []
        for data in journal.claim_orphans():
            try:
                records.append((decode_checked(data), data))
            except msgspec.DecodeError:
                self._counters.dropped("journal_corrupt", "a journal record cannot be read")
        if records:
            logger.info("recording %d message(s) that a process which died left", len(records))
            self.write(records)
        store.commit()

    def settle(self) -> None:
        """Apply every message this client accepted and has not yet recorded."""
        if self.intake is not None:
            self.intake.drain()

    def apply_pending(self, chunk: list[bytes]) -> None:
        """Record messages the intake accepted (they were checked when accepted).

        In runs where no user appears twice, each run one ``record()`` (on Redis
        a bounded number of round trips for the run): a user's state is scored
        after each of their messages as ``track()`` would have, so each tier
        crossing is its own (a burst from cold to burning reports warm, hot and
        burning), in message order.
        """
        records = decode_all(chunk)
        held: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if isinstance(self.store, BufferedStore):
            # On a fault each record asks for itself, and counts its own fault.
            # Ids this process made are in no log yet (the intake applies each message
            # once), unless a caller passed one back as its own (``_echoed``).
            ids = [message.message_id for message, _ in records]
            prefix = None if self._echoed else owner_prefix()  # ``generated_here``, inline
            if prefix is None:
                new, asked = [], ids
            else:
                new = [i for i in ids if i.startswith(prefix)]
                asked = [] if len(new) == len(ids) else [i for i in ids if not i.startswith(prefix)]
            with contextlib.suppress(StoreError):
                self.store.look_up(asked, new=new)
            held = self.store.hold()  # each state decoded once a burst, encoded once a commit
        with held:
            run: list[tuple[Message, bytes]] = []
            subjects: set[str] = set()
            for record in records:
                message = record[0]
                subject = message.user_id or message.anonymous_id or ""  # .subject, inline
                if subject in subjects:
                    self.write(run)
                    run, subjects = [], set()
                run.append(record)
                subjects.add(subject)
            self.write(run)

    def write(self, records: list[tuple[Message, bytes]]) -> int:
        """Record checked messages in one store call, and what follows; return how many were new."""
        if not records:
            return 0
        if self.closed:
            self.faults.drop("closed", ClosedError("the client is closed"), count=len(records))
            return 0
        try:
            durable = self.pipeline is not None and self.pipeline.durable
            written = Written()  # the states scored below, without reading them back
            added = self.store.record(records, outbox=durable, written=written)
            if self.pipeline is not None:
                self.pipeline.recorded(records, added)
        except StoreError as exc:
            self.faults.drop("store_error", exc, count=len(records))
            return 0
        self._counters.recorded(added)
        now = micros(self._clock.now())
        if self.rules is not None and added:
            subjects: dict[str, None] = {}  # in order
            groups: list[Group] = []
            for message, _ in records:
                subjects[message.user_id or message.anonymous_id or ""] = None  # .subject
                if isinstance(message, Group):
                    groups.append(message)
            self._forget_memo(groups, set(subjects), written)
            joined = {message.subject for message in groups}
            try:
                detect_crossings(
                    self.store,
                    self.rules,
                    subjects,
                    now,
                    joined=joined,
                    report=self._report,
                    written=written,
                )
            except StoreError as exc:
                self.faults.error(exc)
        if now >= self._next_prune:
            self._prune(now)
        return added

    def _forget_memo(self, groups: list[Group], subjects: set[str], written: Written) -> None:
        """Drop the memoised answers (standings, "nothing due") a write's messages change.

        Those of their users (``subjects``), and for its group messages (account
        traits) every member's (the account as the write left it, read only if it
        handed none back).
        """
        touched = subjects
        try:
            for message in groups:
                found = written.accounts.get(message.group_id)
                account = self.store.account(message.group_id) if found is None else found
                touched.update(() if account is None else account.members)
        except StoreError as exc:
            self.faults.error(exc)
        self.memo.forget(touched)

    def _report(self, change: TierChange) -> None:
        self.emit(change.to_message())
        if self._on_tier_change is None:
            return
        try:
            self._on_tier_change(change)
        except Exception as exc:
            if self.faults.strict:
                raise
            self._counters.error("callback_error", f"on_tier_change raised {type(exc).__name__}")

    def _prune(self, now: int) -> None:
        """Drop log entries past retention; at most hourly, one thread at a time."""
        if self._retention is None or not self._prune_lock.acquire(blocking=False):
            return
        try:
            self._next_prune = now + _PRUNE_EVERY
            self.store.prune(self._clock.now() - self._retention)
        except StoreError as exc:
            self.faults.error(exc)
        finally:
            self._prune_lock.release()

    def _committed(self, count: int) -> None:
        """Wake the sender: the buffered store committed ``count`` outbox rows."""
        if self.pipeline is not None:
            self.pipeline.committed(count)

    def emit(self, message: Track) -> None:
        """Queue one of pqlsdk's own records for the collector."""
        if self.pipeline is None:
            return
        try:
            checked, data = check(message)
            self.pipeline.emit(checked.message_id, data)
        except (InvalidMessageError, StoreError) as exc:
            self._counters.error("emit_failed", str(exc))


def _journal_fault(counters: Counters, reason: str, detail: str) -> None:
    """Count a journal write error (the message was kept, without its crash safety)."""
    counters.error(reason, detail)
