"""The ``Client``: the one object a host app holds.

It turns calls (``identify``, ``group``, ``track``) into checked Segment
messages, stamps them with the client's clock, and records them in the store.
On the host's request path it never raises for run-time faults (a bad event, a
failing store): it logs, counts and returns. Setup mistakes raise at once, and a
``strict=True`` client (for tests) raises everything.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, NoReturn, ParamSpec, Self, TypeVar

import msgspec

from ._clock import Clock, SystemClock, micros
from ._delivery import Pipeline, make_transport, prepare_store
from ._delivery._batcher import Delivery, FlushResult
from ._exceptions import (
    ConfigError,
    DeliveryError,
    InvalidIdError,
    InvalidMessageError,
    NotJSONError,
    PQLError,
    StoreError,
)
from ._gating import PREMIUM_ATTEMPT_EVENT, Gate, answer, fallback
from ._ids import check_id, check_optional_id
from ._intake import Intake
from ._journal import Journal
from ._memo import Memo
from ._moments import (
    OUTCOMES,
    Chooser,
    Moment,
    mark,
    outcome_message,
)
from ._scoring import (
    AccountScore,
    Reason,
    Score,
    score_account,
    score_subject,
)
from ._stats import Counters, Stats, logger
from ._tiers import TierChange, detect_crossings
from .messages import (
    Group,
    Identify,
    Message,
    Track,
    check,
    convert,
    decode_checked,
    new_message_id,
)
from .rules import Model, Rules, load
from .stores import AccountState, Store, UserState, Written, open_store
from .stores._base import StoreUnavailableError, with_faults
from .stores.buffered import BufferedStore
from .transports import AsyncTransport, Transport

__all__ = ["DEFAULT_STORE", "Client", "ClosedError"]

DEFAULT_STORE: Final = "sqlite:///pqlsdk.db"
"""The store a client opens when given none: a SQLite file in the working directory.

Added in version 0.1.0.
"""

_P = ParamSpec("_P")
_R = TypeVar("_R")

_PRUNE_EVERY: Final = 3_600_000_000  # µs: retention is enforced at most hourly
_UNKNOWN_MODELS_LOGGED: Final = 100  # distinct unknown model names logged, then no more
_DEFAULT_TIMEOUT: Final = 10.0  # seconds: what flush() and close() wait unless told otherwise


class ClosedError(PQLError, RuntimeError):
    """A call on a client after ``close()``.

    Added in version 0.1.0.
    """

    reason = "closed"


class Client:
    """Records product events and keeps per-user and per-account state.

    Usage:

    ```python
    with pqlsdk.Client(store="sqlite:///pqlsdk.db") as client:
        client.identify("u1", {"plan": "trial"})
        client.group("u1", "acme", {"employees": 120})
        client.track("u1", "limit_hit", {"limit": "seats"})
    ```

    Options are keyword-only:

    - ``store``: a URL (``memory://``, ``sqlite:///path.db``) or a ``Store``.
    - ``clock``: where every "now" comes from; ``SystemClock()`` by default.
    - ``strict``: raise run-time faults instead of logging and counting them.
    - ``retention``: how long the raw message log keeps messages (state derived
      from them is kept regardless); None keeps them forever.
    - ``rules``: a rules file path or loaded ``Rules``; needed by ``score()``.
    - ``on_tier_change``: called with a ``TierChange`` when a message moves a
      user or account to another tier: in pqlsdk's intake thread, or in the
      thread whose read (``score()``, ``decide()``...) applied the message first;
      a ``strict`` client calls it in the thread that recorded the message.
    - ``endpoint`` and ``write_key``: the collector (Segment's batch API); or
      ``transport``: any ``pqlsdk.transports.Transport``. Without either, nothing
      leaves the process. With an ``AsyncTransport`` (``AsyncHTTPTransport``
      over ``httpx.AsyncClient``) there is no sender thread: messages leave
      when an ASGI app awaits ``aflush()`` or ``aclose()``.
    - ``delivery``: a ``Delivery`` with batching, retry and durability settings.
    - ``on_error``: called with a ``DeliveryError`` when the collector refuses a
      batch or a batch is held back after its retries.
    - ``gate_fallback``: what ``gate()`` answers when the store cannot be read
      (``"allow"``, the default: a store fault must not lock paying customers
      out; or ``"deny"``).

    Added in version 0.1.0.
    """

    def __init__(
        self,
        *,
        store: str | Store = DEFAULT_STORE,
        clock: Clock | None = None,
        strict: bool = False,
        retention: timedelta | None = timedelta(days=400),
        rules: str | Path | Rules | None = None,
        on_tier_change: Callable[[TierChange], None] | None = None,
        endpoint: str | None = None,
        write_key: str | None = None,
        transport: Transport | AsyncTransport | None = None,
        delivery: Delivery | None = None,
        on_error: Callable[[DeliveryError], None] | None = None,
        gate_fallback: Literal["allow", "deny"] = "allow",
    ) -> None:
        if gate_fallback not in ("allow", "deny"):
            raise ConfigError(f'gate_fallback must be "allow" or "deny", got {gate_fallback!r}')
        if retention is not None and retention <= timedelta(0):
            raise ConfigError(f"retention must be positive or None, got {retention!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigError(f"clock must have a now() method, got {type(clock).__name__}")
        if delivery is not None and not isinstance(delivery, Delivery):
            raise ConfigError(f"delivery must be a Delivery, got {type(delivery).__name__}")
        sender, owns_sender = make_transport(endpoint, write_key, transport)
        if isinstance(store, str):
            opened = open_store(store)
        elif isinstance(store, Store):
            opened = store
        else:
            raise ConfigError(f"store must be a URL or a Store, got {type(store).__name__}")
        options = delivery or Delivery()
        self._counters = Counters()
        self._strict = strict
        self._pipeline: Pipeline | None = None
        self._store = prepare_store(
            opened,
            options,
            delivering=sender is not None,
            on_commit=self._committed,
            on_error=lambda exc: self._counters.error("store_error", str(exc)),
        )
        if sender is not None:
            self._pipeline = Pipeline(
                self._store,
                sender,
                options,
                self._counters,
                owns_transport=owns_sender,
                on_error=on_error,
                on_store_error=self._error,
            )
        self._clock: Clock = clock or SystemClock()
        self._gate_fallback = gate_fallback == "allow"
        self._retention = retention
        self._closed = False
        self._prune_lock = threading.Lock()
        self._next_prune = 0
        self._on_tier_change = on_tier_change
        self._rules: Rules | None = None
        self._unknown_models: set[str] = set()  # names logged once each
        self._memo = Memo()
        self._chooser = Chooser(self._store, self._emit)
        # Calls accept messages and return; the intake applies them off the request
        # path. Strict clients (tests), caller-mode delivery (no threads) and sync
        # durability (committed before the call returns) apply inline.
        self._intake: Intake | None = None
        self._journal: Journal | None = None
        if not strict and options.mode == "background" and options.durability == "buffered":
            buffered = self._store if isinstance(self._store, BufferedStore) else None
            if buffered is not None:
                self._journal = Journal(buffered.inner.path)
            self._intake = Intake(
                self._apply_pending,
                journal=self._journal,
                max_bytes=options.backlog_bytes,
                on_full=options.on_full,
                block_timeout=options.block_timeout,
                # Not a method: the intake thread must not keep the client alive.
                on_fault=functools.partial(_journal_fault, self._counters),
                on_drop=self._counters.dropped,
            )
            if buffered is not None and self._journal is not None:
                self._replay(buffered, self._journal, self._intake)
        self._prune(micros(self._clock.now()))
        if rules is not None:
            self.load_rules(rules)

    @property
    def rules(self) -> Rules | None:
        """The rules in force (None until some are loaded).

        Added in version 0.1.0.
        """
        return self._rules

    def load_rules(self, rules: str | Path | Rules) -> Rules:
        """Compile and switch to new rules; on error the old rules stay in force.

        A path is loaded and compiled first (raising ``RulesError`` with file, line
        and column if it is broken); aggregates the new rules need and the store
        has not kept are then rebuilt from the message log; finally the rules are
        swapped in one reference assignment, so request threads never wait and
        never see half of a version. ``Rules.warnings`` are logged to the
        ``pqlsdk`` logger; a strict client raises the first as a ``RulesError``.

        Anything but a path or ``Rules`` is a ``ConfigError`` too, like every
        other setup mistake.

        Added in version 0.1.0.
        """
        if not isinstance(rules, str | Path | Rules):
            raise ConfigError(f"rules must be a path or Rules, got {type(rules).__name__}")
        loaded = rules if isinstance(rules, Rules) else load(rules)
        for warning in loaded.warnings:  # a strict client refuses what looks like a mistake
            if self._strict:
                raise warning.as_error()
            logger.warning("%s", warning)
        self._settle()
        self._store.maintain(loaded.aggregates)
        self._memo = Memo()  # answers under the old rules are void
        self._rules = loaded
        return loaded

    def score(self, user_id: str | int, *, model: str | None = None) -> Score:
        """Score ``user_id`` now under ``model`` (the primary model by default).

        The result carries the tier, the route, whether the gate passed, the
        multiplier and every signal's reason. A user pqlsdk has never seen scores
        as an empty history would. An invalid id (counted as an ``invalid_id``
        drop) or an unknown model (logged once per name) gets an empty score:
        0 points, gate not passed, and one reason saying why; a strict client
        raises ``InvalidIdError`` or ``ConfigError`` instead.

        Added in version 0.1.0.
        """
        rules = self._require_rules()
        try:
            user_id = check_id(user_id, "user_id")
        except InvalidIdError as exc:
            self._drop(exc.reason, exc)
            known = (
                rules.model()
                if model is None
                else rules.models.get(model)
                if isinstance(model, str)
                else None
            )
            at = self._clock.now()
            return _empty_score(known, exc, name=model, subject="user", subject_id="", at=at)
        chosen = self._model(rules, model)
        if isinstance(chosen, ConfigError):
            at = self._clock.now()
            return _empty_score(None, chosen, name=model, subject="user", subject_id=user_id, at=at)
        user = self.user(user_id)  # applies pending messages first
        account = None if user is None or user.account_id is None else self.account(user.account_id)
        return score_subject(chosen, user_id, user, account, micros(self._clock.now()))

    def score_account(self, account_id: str | int, *, model: str | None = None) -> AccountScore:
        """Roll ``account_id`` up: PQA status from its members, and its own model's score.

        An invalid id gets an empty roll-up whose ``score`` says why; an unknown
        ``model`` leaves the PQA status as it is and puts an empty score, saying
        why, in place of the model's (``score()`` explains both).

        Added in version 0.1.0.
        """
        rules = self._require_rules()
        try:
            account_id = check_id(account_id, "account_id")
        except InvalidIdError as exc:
            self._drop(exc.reason, exc)
            at = self._clock.now()
            empty = _empty_score(None, exc, name=model, subject="account", subject_id="", at=at)
            return AccountScore(id="", pqa=False, pql_users=0, members={}, score=empty)
        chosen = None if model is None else self._model(rules, model)
        account = self.account(account_id)  # applies pending messages first
        members = {} if account is None else {m: self.user(m) for m in account.members}
        now = micros(self._clock.now())
        if not isinstance(chosen, ConfigError):
            return score_account(rules, account, account_id, members, now, model=model)
        rolled = score_account(rules, account, account_id, members, now, model=None)
        at = self._clock.now()
        empty = _empty_score(
            None, chosen, name=model, subject="account", subject_id=account_id, at=at
        )
        return msgspec.structs.replace(rolled, score=empty)

    def decide(self, user_id: str | int) -> Moment | None:
        """Return the moment to show ``user_id`` now, or None; returning it counts as shown.

        The highest-priority kind whose ``when`` holds and that no cap, cooldown
        or holdout stops wins. Costs no write when nothing is due. An invalid id
        gets None (counted as an ``invalid_id`` drop).

        Added in version 0.1.0.
        """
        # The hot path makes no call before the memo: decide() answers in about a microsecond.
        rules = self._rules
        moments = None if rules is None else rules.moments
        if rules is None or moments is None:
            self._missing_moments()
        if not (type(user_id) is str and user_id and user_id.isascii()):  # an id already
            try:
                user_id = check_id(user_id, "user_id")
            except InvalidIdError as exc:
                self._drop(exc.reason, exc)
                return None
        self._settle()
        now = micros(self._clock.now())
        try:
            return self._memo.get(
                "decide",
                user_id,
                now,
                self._chooser.choose,
                rules,
                moments,
                user_id,
                None,
                now,
                keep=_nothing,  # "nothing due" holds for a moment; a showing is never replayed
            )
        except StoreError as exc:
            self._error(exc)
            return None

    def gate(self, user_id: str | int, feature: str) -> Gate:
        """Answer "may ``user_id`` use ``feature``?" from the plan entitlements.

        A denial is tracked as ``premium_feature_attempted`` (a buying signal the
        score sees) and may carry a ``gate`` moment to show instead. If the store
        fails, the gate answers from what it could read, and a user it cannot
        read at all is answered by ``gate_fallback`` (allowed by default: a
        store fault must not lock customers out). So is an invalid id or a
        feature name that is not a str (counted as a drop, nothing tracked).

        Added in version 0.1.0.
        """
        rules = self._require_rules()
        if rules.entitlements is None:
            raise ConfigError(f"no [entitlements] in {rules.origin}: gate() needs them")
        try:
            user_id = check_id(user_id, "user_id")
            if not isinstance(feature, str):
                raise InvalidMessageError(f"feature must be a str, not {type(feature).__name__}")
        except InvalidMessageError as exc:
            self._drop(exc.reason, exc)
            return self._fallback(feature if isinstance(feature, str) else "", str(exc))
        now = micros(self._clock.now())
        self._settle()
        try:
            gate = answer(
                rules,
                user_id,
                feature,
                entitlements=rules.entitlements,
                store=self._store,
                chooser=self._chooser,
                now=now,
                on_error=self._error,
            )
        except StoreError as exc:
            self._error(exc)
            return self._fallback(feature, "store unavailable")
        if not gate.allowed:
            # Tracked after the prompt is shown, in every delivery mode: when this attempt
            # makes the user cross into a tier, the crossing lists the prompt among the
            # moments seen (the intake thread would otherwise race the showing).
            self.track(user_id, PREMIUM_ATTEMPT_EVENT, {"feature": feature})
        return gate

    def _fallback(self, feature: str, why: str) -> Gate:
        """Answer by ``gate_fallback`` (the user cannot be read), saying why."""
        return fallback(feature, why, allow=self._gate_fallback)

    def record(self, user_id: str | int, moment: str, outcome: str) -> bool:
        """Record the user's ``outcome`` (shown, clicked, dismissed, converted) on a moment.

        ``moment`` is a ``Moment.id`` or a kind (its latest showing). Outcomes feed
        cooldowns. Returns False (and counts a drop) for an unknown moment, an
        unknown outcome or an invalid id.

        Added in version 0.1.0.
        """
        try:
            if not (isinstance(outcome, str) and outcome in OUTCOMES):
                got = repr(outcome) if isinstance(outcome, str) else type(outcome).__name__
                raise InvalidMessageError(f"outcome must be one of {sorted(OUTCOMES)}, got {got}")
            if not isinstance(moment, str):
                raise InvalidMessageError(f"moment must be a str, not {type(moment).__name__}")
            user_id = check_id(user_id, "user_id")
        except InvalidMessageError as exc:
            self._drop(exc.reason, exc)
            return False
        now = micros(self._clock.now())
        self._settle()
        self._memo.forget((user_id,))  # an outcome may start a cooldown
        try:
            found = self._store.update_user(
                user_id, lambda state: mark(state, moment, outcome, now)
            )
        except StoreError as exc:
            self._drop("store_error", exc)
            return False
        if found is None:
            self._drop("unknown_moment", InvalidMessageError(f"no moment {moment!r} to record"))
            return False
        self._emit(outcome_message(user_id, found, outcome))
        return True

    def _model(self, rules: Rules, name: object) -> Model | ConfigError:
        """Model ``name`` (None: the primary), or why there is none: logged once per name.

        A strict client raises the ``ConfigError`` instead of returning it.
        """
        try:
            if name is None or isinstance(name, str):
                return rules.model(name)
            raise ConfigError(f"a model name must be a str, not {type(name).__name__}")
        except ConfigError as exc:
            if self._strict:
                raise
            key = name if isinstance(name, str) else type(name).__name__
            if key not in self._unknown_models and (
                len(self._unknown_models) < _UNKNOWN_MODELS_LOGGED
            ):
                self._unknown_models.add(key)
                logger.warning("%s: answering an empty score", exc)
            return exc

    def _missing_moments(self) -> NoReturn:
        """Raise decide()'s setup error: no rules, or rules without moments."""
        rules = self._require_rules()
        raise ConfigError(f"no [moment.*] tables in {rules.origin}: decide() needs them")

    def _require_rules(self) -> Rules:
        if self._rules is None:
            raise ConfigError("no rules loaded: pass Client(rules=...) or call load_rules()")
        return self._rules

    @property
    def store(self) -> Store:
        """The store this client records into (with every accepted message applied).

        Added in version 0.1.0.
        """
        self._settle()
        return self._store

    @property
    def clock(self) -> Clock:
        """The clock every "now" of this client comes from.

        Added in version 0.1.0.
        """
        return self._clock

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
        """Record who ``user_id`` is: ``traits`` merge into the user's state.

        Added in version 0.1.0.
        """
        self._accept(
            user_id,
            anonymous_id,
            lambda user_id, anonymous_id: Identify(
                user_id=user_id,
                anonymous_id=anonymous_id,
                traits=_dict("traits", traits),
                context=_dict("context", context),
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
        """Record that ``user_id`` belongs to account ``group_id`` with ``traits``.

        Added in version 0.1.0.
        """
        self._accept(
            user_id,
            anonymous_id,
            lambda user_id, anonymous_id: Group(
                user_id=user_id,
                anonymous_id=anonymous_id,
                group_id=check_id(group_id, "group_id"),
                traits=_dict("traits", traits),
                context=_dict("context", context),
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
        """Record that ``user_id`` did ``event``; this is what rules count.

        Costs a few microseconds: the event is checked and encoded here (a bad
        one is dropped and counted at once), and applied to state off the
        request path; this client's reads see it.

        Added in version 0.1.0.
        """
        self._accept(
            user_id,
            anonymous_id,
            lambda user_id, anonymous_id: Track(
                user_id=user_id,
                anonymous_id=anonymous_id,
                event=event,
                properties=_dict("properties", properties),
                context=_dict("context", context),
                timestamp=self._clock.now() if timestamp is None else timestamp,
                message_id=message_id or new_message_id(),
            ),
        )

    def ingest(self, messages: Iterable[Message | Mapping[str, Any]]) -> int:
        """Record already-formed Segment messages (structs or decoded JSON dicts).

        For imports, replays and tests: the messages are checked like any call and
        written in one store transaction. Returns how many were recorded.

        Added in version 0.1.0.
        """
        try:
            items = iter(messages)
        except TypeError:
            kind = type(messages).__name__
            self._drop("invalid", InvalidMessageError(f"ingest() takes messages, not a {kind}"))
            return 0
        self._settle()  # keep arrival order with calls accepted earlier
        checked = []
        for item in items:
            try:
                message = item if isinstance(item, Message) else convert(item)
                checked.append(check(message))
            except InvalidMessageError as exc:
                self._drop(exc.reason, exc)
        return self._write(checked)

    def user(self, user_id: str | int) -> UserState | None:
        """Return what the store holds for ``user_id`` (None if nothing, or on a fault).

        Added in version 0.1.0.
        """
        try:
            user_id = check_id(user_id, "user_id")
        except InvalidIdError as exc:
            self._drop(exc.reason, exc)
            return None
        self._settle()
        try:
            return self._store.user(user_id)
        except StoreError as exc:
            self._error(exc)
            return None

    def account(self, account_id: str | int) -> AccountState | None:
        """Return what the store holds for ``account_id`` (None if nothing, or on a fault).

        Added in version 0.1.0.
        """
        try:
            account_id = check_id(account_id, "account_id")
        except InvalidIdError as exc:
            self._drop(exc.reason, exc)
            return None
        self._settle()
        try:
            return self._store.account(account_id)
        except StoreError as exc:
            self._error(exc)
            return None

    def stats(self) -> Stats:
        """Return how many messages were recorded and dropped, by reason.

        With a store that counts its own faults (Redis: outages, calls answered
        without it, messages buffered and replayed) its counts are included.

        Added in version 0.1.0.
        """
        self._settle()
        return with_faults(self._counters.snapshot(), self._store)

    def flush(self, timeout: float | None = 10.0) -> FlushResult:
        """Commit buffered writes and deliver what waits, within ``timeout`` seconds.

        Returns how many messages were delivered during the call and how many
        still wait. Always returns within ``timeout``, even when the collector or
        DNS hangs; safe to call from a callback or a signal handler.

        ``None`` waits without limit, and so does an infinite timeout or one
        past what a thread can wait (``threading.TIMEOUT_MAX``, some 292
        years); a negative one does not wait. Any other value (a str, a bool,
        NaN) is counted as ``errors["invalid_timeout"]`` and logged, and the
        default 10 s applies. A store fault (an outbox that cannot be read or
        counted) is counted as ``errors["store_error"]`` and logged; the result
        then says what was delivered and the last known count still waiting.
        A strict client raises ``InvalidMessageError`` or ``StoreError``.

        Added in version 0.1.0.
        """
        timeout = self._timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._intake is not None:
            self._intake.settle(deadline)
        if isinstance(self._store, BufferedStore):
            self._store.commit()
        if self._pipeline is None:
            return FlushResult(0, 0)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._pipeline.flush(left)

    def close(self, timeout: float | None = 10.0) -> FlushResult:
        """Flush within ``timeout``, stop the sender and release the store.

        Later calls are dropped (counted as ``closed``). What could not be
        delivered stays in a durable outbox for the next run (logged as such);
        a memory queue's are lost, logged and counted as
        ``dropped["undelivered_at_close"]``. ``timeout`` and faults are taken as
        ``flush()`` takes them; the sender, the store and the transport are
        released even when a step fails (a strict client raises after that).

        Added in version 0.1.0.
        """
        if self._closed:
            return FlushResult(0, 0)
        timeout = self._timeout(timeout)  # a strict client's bad timeout leaves it open
        if self._intake is not None:
            self._intake.close()  # applies what it holds
        self._closed = True
        if self._intake is not None:
            self._intake.drain()  # a call racing with close(): counted as dropped, not kept
        try:
            if isinstance(self._store, BufferedStore):
                self._store.commit()
            return FlushResult(0, 0) if self._pipeline is None else self._pipeline.close(timeout)
        finally:
            self._store.close()
            if self._journal is not None:
                self._journal.close()
            self._counters.log_rest()  # drops and errors whose log line was still held back

    async def aflush(self, timeout: float | None = 10.0) -> FlushResult:
        """``flush()`` for asyncio code: never blocks the event loop.

        With an asyncio transport the batches are sent from the loop; otherwise
        the blocking flush runs in a worker thread.

        ``timeout`` and faults are taken as ``flush()`` takes them.

        Added in version 0.1.0.
        """
        timeout = self._timeout(timeout)
        pipeline = self._pipeline
        if pipeline is None or pipeline.async_transport is None:
            return await _to_thread(self.flush, timeout)
        if self._intake is not None and self._intake.pending():
            await _to_thread(self._settle)
        if isinstance(self._store, BufferedStore):
            await _to_thread(self._store.commit)
        deadline = None if timeout is None else time.monotonic() + timeout
        return await pipeline.aflush(deadline)

    async def aclose(self, timeout: float | None = 10.0) -> FlushResult:
        """``close()`` for asyncio code: deliver within ``timeout``, then release everything.

        Everything is released even when the delivery fails (a strict client's
        store fault is raised after that).

        Added in version 0.1.0.
        """
        timeout = self._timeout(timeout)  # a strict client's bad timeout leaves it open
        try:
            return await self.aflush(timeout)
        finally:
            await _to_thread(self.close, 0.0)

    def _timeout(self, timeout: object) -> float | None:
        """Return the seconds a flush or close may wait, from what the host passed (None: no limit).

        Negative means not at all, and infinite, or past what a thread can wait,
        no limit. Anything else (NaN too) is the host's bug: a strict client
        raises; by default it is counted and the default applies, so the call
        still ends.
        """
        if timeout is None:
            return None
        if isinstance(timeout, int | float) and not isinstance(timeout, bool):
            if timeout >= threading.TIMEOUT_MAX:
                return None
            if timeout > 0:
                return float(timeout)
            if timeout <= 0:
                return 0.0
            # NaN is neither: it falls through
        got = "NaN" if isinstance(timeout, float) else f"a {type(timeout).__name__}"
        error = InvalidMessageError(f"timeout must be a number of seconds or None, got {got}")
        if self._strict:
            raise error
        self._counters.error("invalid_timeout", f"{error}: waiting {_DEFAULT_TIMEOUT} s")
        return _DEFAULT_TIMEOUT

    def _committed(self, count: int) -> None:
        """Wake the sender: the buffered store committed ``count`` outbox rows."""
        if self._pipeline is not None:
            self._pipeline.committed(count)

    def _emit(self, message: Track) -> None:
        """Queue one of pqlsdk's own records for the collector."""
        if self._pipeline is None:
            return
        try:
            checked, data = check(message)
            self._pipeline.emit(checked.message_id, data)
        except (InvalidMessageError, StoreError) as exc:
            self._counters.error("emit_failed", str(exc))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(store={self._store.url!r}, strict={self._strict})"

    # -- internals ------------------------------------------------------------

    def _accept(
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
            self._drop(exc.reason, exc)
            return
        if self._intake is None:
            self._write([record])
        elif self._closed:
            self._drop("closed", ClosedError("the client is closed"))
        else:
            self._intake.put(record[1])

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
            self._write(records)
        store.commit()

    def _settle(self) -> None:
        """Apply every message this client accepted and has not yet recorded."""
        if self._intake is not None:
            self._intake.drain()

    def _apply_pending(self, chunk: list[bytes]) -> None:
        """Record messages the intake accepted (they were checked when accepted).

        In runs where no user appears twice, each run one ``record()`` (on Redis
        a bounded number of round trips for the run): a user's state is scored
        after each of their messages as ``track()`` would have, so each tier
        crossing is its own (a burst from cold to burning reports warm, hot and
        burning), in message order.
        """
        records = [(decode_checked(data), data) for data in chunk]
        if isinstance(self._store, BufferedStore):
            # On a fault each record asks for itself, and counts its own fault.
            with contextlib.suppress(StoreError):
                self._store.look_up([message.message_id for message, _ in records])
        run: list[tuple[Message, bytes]] = []
        subjects: set[str] = set()
        for record in records:
            if record[0].subject in subjects:
                self._write(run)
                run, subjects = [], set()
            run.append(record)
            subjects.add(record[0].subject)
        self._write(run)

    def _write(self, records: list[tuple[Message, bytes]]) -> int:
        if not records:
            return 0
        if self._closed:
            self._drop("closed", ClosedError("the client is closed"), count=len(records))
            return 0
        try:
            durable = self._pipeline is not None and self._pipeline.durable
            written = Written()  # the states scored below, without reading them back
            added = self._store.record(records, outbox=durable, written=written)
            if self._pipeline is not None:
                self._pipeline.recorded(records, added)
        except StoreError as exc:
            self._drop("store_error", exc, count=len(records))
            return 0
        self._counters.recorded(added)
        now = micros(self._clock.now())
        if self._rules is not None and added:
            subjects = dict.fromkeys(message.subject for message, _ in records)  # in order
            self._forget_memo(records, set(subjects), written)
            joined = {message.subject for message, _ in records if isinstance(message, Group)}
            try:
                detect_crossings(
                    self._store,
                    self._rules,
                    subjects,
                    now,
                    joined=joined,
                    report=self._report,
                    written=written,
                )
            except StoreError as exc:
                self._error(exc)
        if now >= self._next_prune:
            self._prune(now)
        return added

    def _forget_memo(
        self, records: list[tuple[Message, bytes]], subjects: set[str], written: Written
    ) -> None:
        """Drop the memoised answers (standings, "nothing due") these messages change.

        Those of their users, and for group messages (account traits) every member's.
        """
        touched = set(subjects)
        try:
            for message, _ in records:
                if isinstance(message, Group):
                    account = written.accounts.get(message.group_id) or self._store.account(
                        message.group_id
                    )
                    touched.update(() if account is None else account.members)
        except StoreError as exc:
            self._error(exc)
        self._memo.forget(touched)

    def _report(self, change: TierChange) -> None:
        self._emit(change.to_message())
        if self._on_tier_change is None:
            return
        try:
            self._on_tier_change(change)
        except Exception as exc:
            if self._strict:
                raise
            self._counters.error("callback_error", f"on_tier_change raised {type(exc).__name__}")

    def _prune(self, now: int) -> None:
        """Drop log entries past retention; at most hourly, one thread at a time."""
        if self._retention is None or not self._prune_lock.acquire(blocking=False):
            return
        try:
            self._next_prune = now + _PRUNE_EVERY
            self._store.prune(self._clock.now() - self._retention)
        except StoreError as exc:
            self._error(exc)
        finally:
            self._prune_lock.release()

    def _drop(self, reason: str, exc: PQLError, *, count: int = 1) -> None:
        """Raise in strict mode; otherwise count ``count`` dropped messages and log."""
        if self._strict:
            raise exc
        self._counters.dropped(reason, str(exc), count)

    def _error(self, exc: StoreError) -> None:
        """Raise in strict mode; otherwise count a store fault that lost no message.

        An unavailable store counted the fault itself and logs once per outage.
        """
        if self._strict:
            raise exc
        if not isinstance(exc, StoreUnavailableError):
            self._counters.error("store_error", str(exc))


def _journal_fault(counters: Counters, reason: str, detail: str) -> None:
    """Count a journal write error (the message was kept, without its crash safety)."""
    counters.error(reason, detail)


def _dict(name: str, value: Mapping[str, Any] | None) -> dict[str, Any]:
    """Accept any mapping for traits, properties and context; refuse anything else."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    raise NotJSONError(f"{name} must be a mapping, not {type(value).__name__}")


def _empty_score(
    model: Model | None, why: PQLError, *, name: object, subject: str, subject_id: str, at: datetime
) -> Score:
    """Answer a call pqlsdk cannot score: nothing earned, and one reason saying why.

    With the model at hand (only the id was invalid) the tier and route are those
    of a score of 0 (its lowest tier, its default route); without one they are "".
    """
    reason = Reason(
        signal=why.reason if isinstance(why, InvalidMessageError) else "unknown_model",
        label=str(why),
        points=0.0,
        earned=0.0,
        fired=False,
        observed=None,
        needs=None,
    )
    return Score(
        subject=subject if model is None else model.subject,
        id=subject_id,
        model=model.name if model is not None else name if isinstance(name, str) else "",
        score=0.0,
        tier="" if model is None else model.tier_for(0.0),
        route="" if model is None else model.default_route,
        gate_passed=False,
        multiplier=1.0,
        raw=0.0,
        reasons=(reason,),
        at=at,
    )


async def _to_thread(call: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """Await ``asyncio.to_thread``, imported on first use (see ``_delivery._batcher._sleep``)."""
    import asyncio  # noqa: PLC0415 - asyncio costs tens of milliseconds at import

    return await asyncio.to_thread(call, *args, **kwargs)


def _nothing(moment: Moment | None) -> bool:
    return moment is None
