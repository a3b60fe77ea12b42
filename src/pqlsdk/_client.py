"""The ``Client``: the one object a host app holds, and a facade over the parts that do the work.

It turns calls (``identify``, ``group``, ``track``) into checked Segment
messages, stamps them with the client's clock, and records them in the store.
On the host's request path it never raises for run-time faults (a bad event, a
failing store): it logs, counts and returns. Setup mistakes raise at once, and a
``strict=True`` client (for tests) raises everything. Each method hands its call
on: to ``_options`` (checks), ``_recording`` (writes, through the intake and
journal), ``_answers`` (reads), ``_faults`` and ``_flushing`` (flush and close).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from ._answers import Answers
from ._clock import Clock
from ._delivery._batcher import Delivery, FlushResult
from ._exceptions import ClosedError, DeliveryError
from ._faults import Faults
from ._flushing import aflush, close, flush, seconds, to_thread
from ._gating import Gate
from ._moments import Moment
from ._options import DEFAULT_STORE, Options
from ._recording import Recorder
from ._scoring import AccountScore, Score
from ._stats import Counters, Stats
from ._tiers import TierChange
from .messages import Message
from .rules import Rules
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

    Options are keyword-only (the configuration reference has each in full):

    - ``store``: a URL (``memory://``, ``sqlite:///path.db``) or a ``Store``.
    - ``clock``: where every "now" comes from; ``SystemClock()`` by default.
    - ``strict``: raise run-time faults instead of logging and counting them.
    - ``retention``: how long the raw message log keeps messages (state derived
      from them is kept regardless); None keeps them forever.
    - ``rules``: a rules file path or loaded ``Rules``; needed by ``score()``.
    - ``on_tier_change``: called with a ``TierChange`` when a message moves a
      user or account to another tier, in the thread that applied the message.
    - ``endpoint`` and ``write_key``: the collector (Segment's batch API); or
      ``transport``: any ``pqlsdk.transports.Transport`` or ``AsyncTransport``.
      Without either, nothing leaves the process.
    - ``delivery``: a ``Delivery`` with batching, retry and durability settings.
    - ``on_error``: called with a ``DeliveryError`` when the collector refuses a
      batch or a batch is held back after its retries.
    - ``gate_fallback``: what ``gate()`` answers when the store cannot be read
      (``"allow"``, the default, or ``"deny"``).

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
        self._faults = Faults(self._counters, strict=strict)
        self._recorder = Recorder(options, self._faults)
        self._clock = options.clock
        self._answers = Answers(
            self._recorder, self._faults, self._clock, gate_fallback=gate_fallback == "allow"
        )
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
        return self._recorder.load_rules(rules)

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
        return self._answers.score(user_id, model=model)

    def score_account(self, account_id: str | int, *, model: str | None = None) -> AccountScore:
        """Roll ``account_id`` up: PQA status from its members, and its own model's score.

        An invalid id gets an empty roll-up whose ``score`` says why; an unknown
        ``model`` leaves the PQA status as it is and puts an empty score, saying
        why, in place of the model's (``score()`` explains both).

        Added in version 0.1.0.
        """
        return self._answers.score_account(account_id, model=model)

    def decide(self, user_id: str | int) -> Moment | None:
        """Return the moment to show ``user_id`` now, or None; returning it counts as shown.

        The highest-priority kind whose ``when`` holds and that no cap, cooldown
        or holdout stops wins. Costs no write when nothing is due. An invalid id
        gets None (counted as an ``invalid_id`` drop).

        Added in version 0.1.0.
        """
        return self._answers.decide(user_id)

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
        return self._answers.gate(user_id, feature)

    def record(self, user_id: str | int, moment: str, outcome: str) -> bool:
        """Record the user's ``outcome`` (shown, clicked, dismissed, converted) on a moment.

        ``moment`` is a ``Moment.id`` or a kind (its latest showing). Outcomes feed
        cooldowns. Returns False (and counts a drop) for an unknown moment, an
        unknown outcome or an invalid id.

        Added in version 0.1.0.
        """
        return self._answers.record(user_id, moment, outcome)

    @property
    def store(self) -> Store:
        """The store this client records into (with every accepted message applied).

        Added in version 0.1.0.
        """
        self._recorder.settle()
        return self._recorder.store

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
        self._recorder.identify(
            user_id,
            traits,
            anonymous_id=anonymous_id,
            timestamp=timestamp,
            context=context,
            message_id=message_id,
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
        self._recorder.group(
            user_id,
            group_id,
            traits,
            anonymous_id=anonymous_id,
            timestamp=timestamp,
            context=context,
            message_id=message_id,
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
        self._recorder.track(
            user_id,
            event,
            properties,
            anonymous_id=anonymous_id,
            timestamp=timestamp,
            context=context,
            message_id=message_id,
        )

    def ingest(self, messages: Iterable[Message | Mapping[str, Any]]) -> int:
        """Record already-formed Segment messages (structs or decoded JSON dicts).

        For imports, replays and tests: the messages are checked like any call and
        written in one store transaction. Returns how many were recorded.

        Added in version 0.1.0.
        """
        return self._recorder.ingest(messages)

    def user(self, user_id: str | int) -> UserState | None:
        """Return what the store holds for ``user_id`` (None if nothing, or on a fault).

        Added in version 0.1.0.
        """
        return self._answers.user(user_id)

    def account(self, account_id: str | int) -> AccountState | None:
        """Return what the store holds for ``account_id`` (None if nothing, or on a fault).

        Added in version 0.1.0.
        """
        return self._answers.account(account_id)

    def stats(self) -> Stats:
        """Return how many messages were recorded and dropped, by reason.

        With a store that counts its own faults (Redis: outages, calls answered
        without it, messages buffered and replayed) its counts are included.

        Added in version 0.1.0.
        """
        self._recorder.settle()
        return with_faults(self._counters.snapshot(), self._recorder.store)

    def flush(self, timeout: float | None = 10.0) -> FlushResult:
        """Commit buffered writes and deliver what waits, within ``timeout`` seconds.

        Returns how many messages were delivered during the call and how many
        still wait. Always returns within ``timeout``, even when the collector or
        DNS hangs; safe to call from a callback or a signal handler.

        ``None``, an infinite timeout or one past ``threading.TIMEOUT_MAX`` waits
        without limit; a negative one does not wait; any other value (a str, a
        bool, NaN) is counted as ``errors["invalid_timeout"]`` and 10 s apply. A
        store fault is counted as ``errors["store_error"]`` (the result then says
        the last known count still waiting). A strict client raises both.

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
        return f"Client(store={self._recorder.store.url!r}, strict={self._faults.strict})"
