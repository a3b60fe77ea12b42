"""The replay engine: one streaming pass of a history through the client's own fold.

Messages are read by ``pqlsdk._history.read`` and folded by ``pqlsdk._history.fold``
(the ``apply()`` the stores use); scores come from ``pqlsdk._scoring.standing``,
which gives exactly the score ``score_subject`` and ``pqlsdk score`` give. Nothing
here re-implements a rule: the replay only decides *when* to look at the state.

Time order. Messages are folded in timestamp order through a bounded reorder
buffer (``REORDER_WINDOW`` messages), so a file that is roughly in order (batches
delivered late, a small scenario file in any order) is folded in order. A message
older than one already folded is still folded (the final state is the same in any
order) and counted as ``late``.

No look-ahead. A converter's band is taken from the state folded from the
messages *strictly before* its conversion time, scored at that time: the
snapshot is taken just before the first message at or after the conversion time
is folded. A conversion's own events (at or after its time) therefore cannot
lift its subject into a band. Everyone else is placed at the evaluation time
(``--at``, else the file's ``now``, else its latest message); with ``--at``,
messages at or after it are not folded at all. A conversion after the
evaluation time is placed at the evaluation time.

Time to convert. A converter entered its band when its score last rose to the
band's lower edge and stayed at or above it: watched users are re-scored after
each message that can change their score (their own, or their account's), at
that message's time; the lowest band is entered when the user was first seen.
An account enters a band with the first of its members to do so.

Memory grows with users and accounts, never with messages: per user the state
the client keeps, the last tier (with ``--every``), a running count of the
busiest UTC day (for single loggers), and for converters only, since when they
have been at or above each band edge.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TextIO, cast

import attrs

from .._aggregates import Aggregate
from .._clock import FixedClock, micros
from .._exceptions import ConfigError
from .._history import History, fold, read
from .._scoring import standing
from ..messages import Group, Message, Track
from ..rules._model import Model
from ..stores import AccountState, UserState
from ._bands import Bands
from ._ends import Ends, HistoryEnds
from ._outcomes import Conversion

__all__ = [
    "REORDER_WINDOW",
    "Checkpoint",
    "Replay",
    "Standing",
    "end_of",
    "place_converters",
    "replay",
]

REORDER_WINDOW: Final = 10_000
"""Messages held back to fold a nearly-ordered file in time order.

Added in version 0.1.0.
"""
_DAY: Final = 86_400_000_000  # µs
_NEVER: Final = 1 << 62  # µs: later than any instant
_PROGRESS_EVERY = 1 << 14  # messages between looks at the clock
_PROGRESS_SECONDS = 0.2  # between progress lines


@attrs.define(slots=True)
class Standing:
    """Where a user or account stood under each model: at conversion, or at the end.

    Added in version 0.1.0.
    """

    subject: str
    """``"user"`` or ``"account"``."""
    id: str
    scores: list[float]
    """One score per model (the replayed rules first, then ``--compare``'s)."""
    tiers: list[str]
    at: int
    """The instant the scores were taken (µs)."""
    conversion: Conversion | None = None
    entered: list[tuple[int, int]] = attrs.field(factory=list)
    """Per model, when a converter entered its tier and its score band (µs)."""


@attrs.frozen
class Checkpoint:
    """The users' tiers under the first model at one instant of ``--every``.

    Added in version 0.1.0.
    """

    at: int
    tiers: dict[str, int]
    """Users per tier."""
    changed: int
    """Users whose tier differs from the previous checkpoint's (new users excluded)."""


@attrs.define
class Replay:
    """What a replay found; the inputs of every table, chart and suggestion.

    Added in version 0.1.0.
    """

    models: tuple[Model, ...]
    bands: tuple[tuple[Bands, Bands], ...]
    """Per model: its tiers, and the fixed score bands."""
    at: int
    """The evaluation time (µs)."""
    standings: dict[tuple[str, str], Standing]
    events: int
    late: int
    unmatched: int
    """Conversions naming a user or account that never appears in the events."""
    timeline: list[Checkpoint]
    busiest_day: dict[str, tuple[int, int]]
    """Per user: tracks on their busiest UTC day, and tracks in all."""
    ends: Ends
    """Every user's score at the evaluation time, with reasons, on demand."""
    skipped: dict[str, int]
    """Refused messages by reason (``invalid``, ``missing_identity``...)."""
    duplicates: int
    """Messages folded that repeated an earlier ``messageId``."""
    history: History | None = None
    """The folded state (the python engine's; None from the duckdb engine)."""


class _Watch:
    """Since when each watched user has been at or above each band edge, per model.

    Only converters (and the members of converting accounts) are watched: they are
    re-scored after each message that can change their score (their own, or one of
    their account's), at that message's time.
    """

    def __init__(self, models: Sequence[Model], edges: Sequence[Sequence[float]]) -> None:
        self.models = models
        self.edges = edges
        self.since: dict[str, list[dict[float, int | None]]] = {}
        self.account_of: dict[str, str | None] = {}
        self.by_account: dict[str, set[str]] = {}

    def add(self, user_id: str) -> None:
        if user_id not in self.since:
            self.since[user_id] = [dict.fromkeys(e) for e in self.edges]
            self.account_of[user_id] = None

    def update(self, history: History, user_id: str, at: int) -> None:
        user = history.users.get(user_id)
        account_id = None if user is None else user.account_id
        previous = self.account_of[user_id]
        if account_id is not None and account_id != previous:  # joined or moved
            if previous is not None:
                self.by_account[previous].discard(user_id)
            self.by_account.setdefault(account_id, set()).add(user_id)
            self.account_of[user_id] = account_id
        account = None if account_id is None else history.accounts.get(account_id)
        for model, since in zip(self.models, self.since[user_id], strict=True):
            score = standing(model, user_id, user, account, at)[0]
            for edge, start in since.items():
                if score < edge:
                    since[edge] = None
                elif start is None:
                    since[edge] = at


def replay(
    events: Path,
    models: Sequence[Model],
    aggregates: Collection[Aggregate],
    *,
    edges: Sequence[float],
    conversions: dict[tuple[str, str], Conversion] | None = None,
    at: int | None = None,
    every: int | None = None,
    progress: TextIO | None = None,
) -> Replay:
    """Replay ``events`` under ``models`` (see the module's rules on time and look-ahead).

    Added in version 0.1.0.
    """
    run = _Run(models, edges, conversions or {}, at=at, every=every, progress=progress)
    ordered = _time_order(read(events, run.history), run.counts)
    try:
        fold(run.stream(ordered), aggregates, run.history)
    finally:
        ordered.close()
    return run.finish()


def place_converters(
    ordered: Iterable[tuple[int, Message]],
    models: Sequence[Model],
    aggregates: Collection[Aggregate],
    *,
    edges: Sequence[float],
    conversions: dict[tuple[str, str], Conversion],
    end: int,
    last: int | None,
) -> dict[tuple[str, str], Standing]:
    """Place the converters from the part of a history that can move them; ``replay``'s rules.

    ``ordered`` holds, in folding order and without a repeated ``messageId``,
    the messages of the converters and of everyone who ever shared an account
    with one (nobody else's messages change their scores). The whole history
    ran to ``last`` (µs; None if it held no message) and is evaluated at
    ``end``: a conversion by ``last`` is placed at its time, a later one at
    ``min(its time, end)``, as ``replay`` places them. The duckdb engine
    (``pqlsdk.warehouse``) scores everyone else in SQL.
    """
    run = _Run(models, edges, conversions, at=None, every=None, progress=None)
    run.last, run.fixed_end = last, end
    fold(run.stream(ordered), aggregates, run.history)
    return run.standings


class _Run:
    """One replay's moving parts: the history, the conversions due, the checkpoints."""

    def __init__(
        self,
        models: Sequence[Model],
        edges: Sequence[float],
        conversions: dict[tuple[str, str], Conversion],
        *,
        at: int | None,
        every: int | None,
        progress: TextIO | None,
    ) -> None:
        self.history = History()
        self.models = models
        self.bands = tuple((Bands.of_tiers(m), Bands.of_edges(edges)) for m in models)
        self.watch = _Watch(models, [sorted({*t.lows, *b.lows}) for t, b in self.bands])
        self.conversions = conversions
        self.watched_accounts = {c.id for c in conversions.values() if c.subject == "account"}
        for conversion in conversions.values():
            if conversion.subject == "user":
                self.watch.add(conversion.id)
        self.queue = sorted(conversions.values(), key=lambda c: (c.at, c.subject, c.id))
        self.position = 0
        self.at, self.every = at, every
        self.next_check: int | None = None
        self.standings: dict[tuple[str, str], Standing] = {}
        self.busiest: dict[str, list[int]] = {}  # user: [day, its tracks, busiest day's, all]
        self.timeline: list[Checkpoint] = []
        self.last_tiers: dict[str, str] = {}
        self.counts = {"events": 0, "late": 0, "latest": -1}
        self.end = 0
        self.ticker = _Progress(progress, self.history)
        self.last: int | None = None
        self.fixed_end: int | None = None

    def stream(self, ordered: Iterable[tuple[int, Message]]) -> Iterator[Message]:
        """Yield the messages to fold, looking at the state between them.

        The loop runs once per event: the checks for due conversions and
        checkpoints are inlined, and the per-message bookkeeping is one call.
        """
        history, queue, after, ticker = self.history, self.queue, self.after, self.ticker
        stop = self.at if self.at is not None else _NEVER
        due = queue[0].at if queue else _NEVER  # the next conversion's time
        check = _NEVER if self.every is None else None  # the next checkpoint, once known
        applied: tuple[int, Message] | None = None
        duplicates = history.duplicates
        events = 0
        for instant, message in ordered:
            # fold() applied the previous message when it asked for this one
            # (unless it was a repeated messageId).
            if applied is not None and history.duplicates == duplicates:
                after(*applied)
            applied, duplicates = None, history.duplicates
            if due <= instant:
                due = self.convert_before(instant)
            if instant >= stop:
                break
            if check is None or check <= instant:
                check = self.check_before(instant)
            events += 1
            if ticker.out is not None:
                ticker.tick(events)
            applied = (instant, message)
            yield message
        if applied is not None and history.duplicates == duplicates:
            after(*applied)
        self.counts["events"] = events
        if self.last is not None:  # the whole history went on to then: see place_converters
            self.convert_before(self.last)
        self.end = self.at if self.at is not None else end_of(history.now, self.counts["latest"])
        if self.fixed_end is not None:
            self.end = self.fixed_end
        for conversion in queue[self.position :]:
            self.snapshot(conversion, min(conversion.at, self.end))
        if self.every is not None and self.next_check is not None:
            while self.next_check < self.end:
                self.checkpoint(self.next_check)
                self.next_check += self.every
            self.checkpoint(self.end)

    def convert_before(self, instant: int) -> int:
        """Place every conversion due by ``instant``, before a message of that time is folded.

        Returns the time of the next conversion due.
        """
        queue = self.queue
        while self.position < len(queue) and queue[self.position].at <= instant:
            self.snapshot(queue[self.position], queue[self.position].at)
            self.position += 1
        return queue[self.position].at if self.position < len(queue) else _NEVER

    def check_before(self, instant: int) -> int:
        """Take the ``--every`` checkpoints due by ``instant``; return when the next is due."""
        every = cast(int, self.every)
        if self.next_check is None:
            self.next_check = (instant // every + 1) * every
        while self.next_check <= instant:
            self.checkpoint(self.next_check)
            self.next_check += every
        return self.next_check

    def snapshot(self, conversion: Conversion, instant: int) -> None:
        """Record where a converter stood at ``instant``, from the state folded so far."""
        history, models = self.history, self.models
        if conversion.subject == "user":
            found = _user_standing(history, models, conversion.id, instant)
            since = self.watch.since[conversion.id]
            user = history.users.get(conversion.id)
            first = None if user is None else user.first_seen
        else:
            found, since, first = _account_standing(
                history, models, self.watch, conversion.id, instant
            )
        found.conversion = conversion
        found.entered = [
            _entered(b, score, edge_since, first, instant)
            for b, score, edge_since in zip(self.bands, found.scores, since, strict=True)
        ]
        self.standings[conversion.subject, conversion.id] = found

    def checkpoint(self, instant: int) -> None:
        """Count the users per tier of the first model at ``instant``, and the changes."""
        model, history, last = self.models[0], self.history, self.last_tiers
        tiers: dict[str, int] = dict.fromkeys((name for _, name in model.tiers), 0)
        changed = 0
        for user_id, user in history.users.items():
            tier = standing(model, user_id, user, _account(history, user), instant)[1]
            tiers[tier] += 1
            before = last.get(user_id)
            changed += before is not None and before != tier
            last[user_id] = tier
        self.timeline.append(Checkpoint(instant, tiers, changed))

    def after(self, instant: int, message: Message) -> None:
        """Note what a folded message changed: busiest days, watched users' band edges."""
        user_id = message.subject
        if type(message) is Track:
            day = instant // _DAY
            found = self.busiest.get(user_id)
            if found is None:
                self.busiest[user_id] = [day, 1, 1, 1]
            else:
                found[1] = found[1] + 1 if found[0] == day else 1
                found[0] = day
                if found[1] > found[2]:  # noqa: PLR1730 - max() is a call per event
                    found[2] = found[1]
                found[3] += 1
        elif type(message) is Group and message.group_id in self.watched_accounts:
            self.watch.add(user_id)
        watch = self.watch
        if not watch.since:
            return
        if user_id in watch.since:
            watch.update(self.history, user_id, instant)
        user = self.history.users.get(user_id)
        account_id = None if user is None else user.account_id
        for member in tuple(watch.by_account.get(account_id or "", ())):
            if member != user_id:
                watch.update(self.history, member, instant)

    def finish(self) -> Replay:
        """Place everyone not placed at a conversion at the evaluation time."""
        self.ticker.done(self.counts["events"])
        history, models, standings, end = self.history, self.models, self.standings, self.end
        for user_id in history.users:
            if ("user", user_id) not in standings:
                standings["user", user_id] = _user_standing(history, models, user_id, end)
        for account_id in sorted(history.groups | self.watched_accounts):
            if ("account", account_id) not in standings:
                standings["account", account_id] = _account_from_members(
                    history, models, standings, account_id, end
                )
        unmatched = [
            key
            for key in self.conversions
            if (history.users if key[0] == "user" else history.accounts).get(key[1]) is None
        ]
        for key in unmatched:
            del standings[key]
        return Replay(
            models=tuple(models),
            bands=self.bands,
            history=history,
            ends=HistoryEnds(history, end),
            skipped=dict(history.skipped),
            duplicates=history.duplicates,
            at=end,
            standings=standings,
            events=self.counts["events"],
            late=self.counts["late"],
            unmatched=len(unmatched),
            timeline=self.timeline,
            busiest_day={user: (b[2], b[3]) for user, b in self.busiest.items()},
        )


def end_of(now: str | None, latest: int) -> int:
    """Return the evaluation time without ``--at``: the file's ``now``, else its latest message.

    ``pqlsdk score`` falls back to the wall clock; a replay of last year's events
    should not find everyone lapsed, so it ends where the history ends
    (``latest``, µs; -1 for a history without messages: then the wall clock).
    """
    if now is not None:
        try:
            return micros(FixedClock(now).now())
        except ValueError as exc:
            raise ConfigError(f"the events' 'now' {now!r} is not an ISO-8601 instant") from exc
    return latest if latest >= 0 else micros(datetime.now(UTC))


def _account(history: History, user: UserState | None) -> AccountState | None:
    if user is None or user.account_id is None:
        return None
    return history.accounts.get(user.account_id)


def _user_standing(
    history: History, models: Sequence[Model], user_id: str, instant: int
) -> Standing:
    """Place a user at ``instant`` (one not seen yet stands where no state puts them)."""
    user = history.users.get(user_id)
    account = _account(history, user)
    scores, tiers = [], []
    for model in models:
        score, tier, _ = standing(model, user_id, user, account, instant)
        scores.append(score)
        tiers.append(tier)
    return Standing("user", user_id, scores, tiers, instant)


def _account_standing(
    history: History, models: Sequence[Model], watch: _Watch, account_id: str, instant: int
) -> tuple[Standing, list[dict[float, int | None]], int | None]:
    """Place an account at ``instant``: its best member's score, since when, first seen."""
    account = history.accounts.get(account_id)
    members = [] if account is None else [(m, history.users.get(m)) for m in account.members]
    scores, tiers, since = [], [], []
    for index, model in enumerate(models):
        best = max(
            (standing(model, m, user, account, instant)[0] for m, user in members), default=0.0
        )
        scores.append(best)
        tiers.append(model.tier_for(best))
        merged: dict[float, int | None] = {}
        for edge in watch.edges[index]:
            starts = [watch.since[m][index][edge] for m, _ in members if m in watch.since]
            merged[edge] = min((s for s in starts if s is not None), default=None)
        since.append(merged)
    seen = [u.first_seen for _, u in members if u is not None and u.first_seen is not None]
    return Standing("account", account_id, scores, tiers, instant), since, min(seen, default=None)


def _account_from_members(
    history: History,
    models: Sequence[Model],
    standings: dict[tuple[str, str], Standing],
    account_id: str,
    instant: int,
) -> Standing:
    """Place an account at the end: its best member's score (members are scored by then)."""
    account = history.accounts.get(account_id)
    members = [] if account is None else account.members
    scores, tiers = [], []
    for index, model in enumerate(models):
        best = 0.0
        for member in members:
            found = standings.get(("user", member))
            if found is not None and found.conversion is None:
                best = max(best, found.scores[index])
            else:  # a converted member stood elsewhere at its conversion: score it now
                user = history.users.get(member)
                best = max(best, standing(model, member, user, account, instant)[0])
        scores.append(best)
        tiers.append(model.tier_for(best))
    return Standing("account", account_id, scores, tiers, instant)


def _entered(
    bands: tuple[Bands, Bands],
    score: float,
    since: dict[float, int | None],
    first: int | None,
    instant: int,
) -> tuple[int, int]:
    """When a converter entered the tier and the score band it converted from."""
    out = []
    for b in bands:
        index = b.index(score)
        start = first if index == 0 else since.get(b.lows[index])
        out.append(instant if start is None else min(start, instant))
    return out[0], out[1]


def _time_order(
    messages: Iterable[Message], counts: dict[str, int]
) -> Generator[tuple[int, Message]]:
    """Yield (µs, message) in time order through a bounded window; count late ones.

    The window is a deque kept sorted: a message in order (the usual case) is
    appended and the oldest popped, both O(1); only a message older than the
    newest in the window is inserted by bisection.
    """
    window: deque[tuple[int, int, Message]] = deque()
    append, popleft = window.append, window.popleft
    latest = late = -1
    try:
        for sequence, message in enumerate(messages):
            item = (micros(message.timestamp), sequence, message)
            if not window or item[0] >= window[-1][0]:
                append(item)
            else:
                bisect.insort(window, item)
            if len(window) <= REORDER_WINDOW:
                continue
            instant, _, out = popleft()
            if instant < latest:
                late += 1
            else:
                latest = instant
            yield instant, out
        # What is left is in order and no older than anything yielded: the window
        # always gives up the oldest it holds.
        while window:
            instant, _, out = popleft()
            latest = instant
            yield instant, out
    finally:
        counts["latest"], counts["late"] = latest, late + 1


class _Progress:
    """A one-line progress report on stderr, only when it is a terminal."""

    def __init__(self, out: TextIO | None, history: History) -> None:
        self.out = out if out is not None and out.isatty() else None
        self.history = history
        self.shown = time.monotonic()
        self.clock: Callable[[], float] = time.monotonic

    def tick(self, events: int) -> None:
        """Show the counts now and then (the caller checks ``out`` first)."""
        if (
            self.out is None
            or events % _PROGRESS_EVERY
            or (now := self.clock()) - self.shown < _PROGRESS_SECONDS
        ):
            return
        self.shown = now
        self.out.write(
            f"\rreplaying: {events:,} events, {len(self.history.users):,} users, "
            f"{len(self.history.accounts):,} accounts"
        )
        self.out.flush()

    def done(self, events: int) -> None:
        if self.out is not None:
            self.out.write(f"\rreplayed {events:,} events{' ' * 40}\n")
            self.out.flush()
