"""The ``Client``: the one object a host app holds.

It turns calls (``identify``, ``group``, ``track``) into checked Segment
messages, stamps them with the client's clock, and records them in the store.
On the host's request path it never raises for run-time faults (a bad event, a
failing store): it logs, counts and returns. Setup mistakes raise at once, and a
``strict=True`` client (for tests) raises everything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NoReturn, Self

import msgspec

from ._clock import Clock, micros
from ._delivery._batcher import Delivery, FlushResult
from ._exceptions import (
    ClosedError,
    ConfigError,
    DeliveryError,
    InvalidIdError,
    InvalidMessageError,
    PQLError,
    StoreError,
)
from ._faults import Faults
from ._flushing import aflush, close, flush, seconds, to_thread
from ._gating import PREMIUM_ATTEMPT_EVENT, Gate, answer, fallback
from ._ids import check_id
from ._memo import Memo
from ._models import Models, empty_score, known
from ._moments import OUTCOMES, Chooser, Moment, mark, outcome_message
from ._options import DEFAULT_STORE, Options
from ._recording import Recorder
from ._scoring import AccountScore, Score, score_account, score_subject
from ._stats import Counters, Stats, logger
from ._tiers import TierChange
from .messages import Group, Identify, Message, Track, check, convert, mapping, new_message_id
from .rules import Rules, load
from .stores import AccountState, Store, UserState
from .stores._base import with_faults
from .transports import AsyncTransport, Transport

__all__ = ["DEFAULT_STORE", "Client", "ClosedError"]


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
        options = Options.read(
            store=store,
            clock=clock,
            strict=strict,
            retention=retention,
            rules=rules,
            on_tier_change=on_tier_change,
            endpoint=endpoint,
            write_key=write_key,
            transport=transport,
            delivery=delivery,
            on_error=on_error,
            gate_fallback=gate_fallback,
        )
        self._counters = Counters()
        self._strict = strict
        self._faults = Faults(self._counters, strict=strict)
        self._recorder = Recorder(options, self._faults)
        self._store = self._recorder.store
        self._clock: Clock = options.clock
        self._gate_fallback = gate_fallback == "allow"
        self._models = Models(strict=strict)
        self._chooser = Chooser(self._store, self._recorder.emit)
        if rules is not None:
            self.load_rules(rules)

    @property
    def rules(self) -> Rules | None:
        """The rules in force (None until some are loaded).

        Added in version 0.1.0.
        """
        return self._recorder.rules

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
        self._recorder.memo = Memo()  # answers under the old rules are void
        self._recorder.rules = loaded
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
            at = self._clock.now()
            return empty_score(
                known(rules, model), exc, name=model, subject="user", subject_id="", at=at
            )
        chosen = self._models.find(rules, model)
        if isinstance(chosen, ConfigError):
            at = self._clock.now()
            return empty_score(None, chosen, name=model, subject="user", subject_id=user_id, at=at)
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
            empty = empty_score(None, exc, name=model, subject="account", subject_id="", at=at)
            return AccountScore(id="", pqa=False, pql_users=0, members={}, score=empty)
        chosen = None if model is None else self._models.find(rules, model)
        account = self.account(account_id)  # applies pending messages first
        members = {} if account is None else {m: self.user(m) for m in account.members}
        now = micros(self._clock.now())
        if not isinstance(chosen, ConfigError):
            return score_account(rules, account, account_id, members, now, model=model)
        rolled = score_account(rules, account, account_id, members, now, model=None)
        at = self._clock.now()
        empty = empty_score(
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
        rules = self._recorder.rules
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
            return self._recorder.memo.get(
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
        self._recorder.memo.forget((user_id,))  # an outcome may start a cooldown
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
        self._recorder.emit(outcome_message(user_id, found, outcome))
        return True

    def _missing_moments(self) -> NoReturn:
        """Raise decide()'s setup error: no rules, or rules without moments."""
        rules = self._require_rules()
        raise ConfigError(f"no [moment.*] tables in {rules.origin}: decide() needs them")

    def _require_rules(self) -> Rules:
        if self._recorder.rules is None:
            raise ConfigError("no rules loaded: pass Client(rules=...) or call load_rules()")
        return self._recorder.rules

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
        self._recorder.accept(
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
        """Record that ``user_id`` belongs to account ``group_id`` with ``traits``.

        Added in version 0.1.0.
        """
        self._recorder.accept(
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
        """Record that ``user_id`` did ``event``; this is what rules count.

        Costs a few microseconds: the event is checked and encoded here (a bad
        one is dropped and counted at once), and applied to state off the
        request path; this client's reads see it.

        Added in version 0.1.0.
        """
        self._recorder.accept(
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
        return self._recorder.write(checked)

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
        return flush(self._recorder, timeout)

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
        return close(self._recorder, timeout)

    async def aflush(self, timeout: float | None = 10.0) -> FlushResult:
        """``flush()`` for asyncio code: never blocks the event loop.

        With an asyncio transport the batches are sent from the loop; otherwise
        the blocking flush runs in a worker thread.

        ``timeout`` and faults are taken as ``flush()`` takes them.

        Added in version 0.1.0.
        """
        return await aflush(self._recorder, timeout)

    async def aclose(self, timeout: float | None = 10.0) -> FlushResult:
        """``close()`` for asyncio code: deliver within ``timeout``, then release everything.

        Everything is released even when the delivery fails (a strict client's
        store fault is raised after that).

        Added in version 0.1.0.
        """
        timeout = seconds(timeout, self._faults)  # a strict client's bad timeout leaves it open
        try:
            return await self.aflush(timeout)
        finally:
            await to_thread(self.close, 0.0)

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

    def _settle(self) -> None:
        self._recorder.settle()

    def _drop(self, reason: str, exc: PQLError, *, count: int = 1) -> None:
        self._faults.drop(reason, exc, count=count)

    def _error(self, exc: StoreError) -> None:
        self._faults.error(exc)


def _nothing(moment: Moment | None) -> bool:
    return moment is None
