"""Moments: which in-app moment to show a user now, if any.

A decision has two halves. Eligibility (each kind's ``when``, the score and
tier, ``days_left``) is evaluated from a snapshot of state, without locks. Caps,
cooldowns and holdouts are then checked and the showing recorded inside one
atomic store update (``claim``), so threads and processes deciding for the same
user at the same instant can never show more than a cap allows.

Holdouts are drawn by hashing the user id with the kind: the same user is held
out of the same kind in every process and after every restart. A held-out
decision is recorded (and counts towards that kind's own cap, so it recurs at
the cadence a real showing would) but never shown, and sent to the collector as
a ``pqlsdk_moment_held_out`` message, so both arms can be counted and lift measured
(``pqlsdk.lift``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import msgspec

from ._clock import from_micros
from ._due import Decision, days_left, decision_function
from ._scoring import facts_from
from .messages import Track
from .rules._model import MomentKind, Moments, Rules
from .stores import AccountState, MomentRecord, Store, UserState

__all__ = [
    "MOMENT_HELD_OUT_EVENT",
    "MOMENT_OUTCOME_EVENT",
    "MOMENT_SHOWN_EVENT",
    "OUTCOMES",
    "Chooser",
    "Moment",
    "claim",
    "days_left",
    "held_out",
    "mark",
    "read_state",
    "render",
]

OUTCOMES: Final = frozenset({"shown", "clicked", "dismissed", "converted"})
MOMENT_SHOWN_EVENT: Final = "pqlsdk_moment_shown"
MOMENT_OUTCOME_EVENT: Final = "pqlsdk_moment_outcome"
MOMENT_HELD_OUT_EVENT: Final = "pqlsdk_moment_held_out"
_MAX_RECORDS: Final = 500  # per user: a hard bound on history, whatever the windows
_DAY: Final = 86_400_000_000
_PLACEHOLDER: Final = re.compile(r"\{([^{}]*)\}")
_MAX_TITLE: Final = 200
"""Characters of a shown title a record keeps: a trait in a title must not bloat the state."""


class Moment(msgspec.Struct, frozen=True, gc=False):
    """A moment to show now: its kind, its filled-in content and a stable id.

    Pass ``id`` (or the kind) back to ``Client.record()`` with the user's outcome.

    Added in version 0.1.0.
    """

    id: str
    kind: str
    title: str
    body: str
    cta: str
    feature: str | None
    """The denied feature, for a moment shown at a gate."""
    days_left: int | None
    """Whole days until the trial ends, rounded up, when the user has a trial end."""
    at: datetime

    def to_message(self, user_id: str) -> Track:
        """Return the record of this showing that the collector receives.

        Added in version 0.1.0.
        """
        return Track(
            user_id=user_id,
            event=MOMENT_SHOWN_EVENT,
            properties={"moment_id": self.id, "kind": self.kind, "feature": self.feature},
            timestamp=self.at,
        )


def held_out(user_id: str, kind: MomentKind) -> bool:
    """Whether ``user_id`` is in ``kind``'s holdout: stable across processes and restarts."""
    if kind.holdout <= 0:
        return False
    from hashlib import sha256  # noqa: PLC0415 - hashlib costs 3 ms at import; few users need it

    digest = sha256(f"{kind.name}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < kind.holdout * 100


def blocked(kind: MomentKind, history: Sequence[MomentRecord], moments: Moments, now: int) -> bool:
    """Whether a cap or a cooldown keeps ``kind`` from being shown at ``now`` (µs)."""
    if not history:
        return False  # nothing shown yet: every cap allows at least one, no cooldown runs
    name = kind.name
    if kind.cap is not None:
        limit, per = kind.cap
        if _shown(history, (name,), per, now, with_held_out=True) >= limit:
            return True
    for outcome, span in kind.cooldowns:
        for record in history:
            when = record.outcomes.get(outcome)
            if record.kind == name and when is not None and now - when < span:
                return True
    for group in moments.caps:
        if name in group.kinds and _shown(history, group.kinds, group.per, now) >= group.max:
            return True
    return False


def _shown(
    history: Sequence[MomentRecord],
    kinds: Container[str],
    per: int,
    now: int,
    *,
    with_held_out: bool = False,
) -> int:
    """Count showings of ``kinds`` in the ``per`` µs before ``now`` (held-out ones if asked).

    A plain loop, not sum() over a generator: this runs on every decision of a
    user who has seen a moment, and a generator costs a resumption per record.
    """
    shown = 0
    for record in history:
        if (
            record.kind in kinds
            and now - record.at < per
            and (with_held_out or not record.held_out)
        ):
            shown += 1
    return shown


def claim(
    state: UserState,
    candidates: Sequence[MomentKind],
    moments: Moments,
    now: int,
    show: Callable[[MomentKind, MomentRecord], Moment],
) -> tuple[Moment | None, tuple[MomentRecord, ...]]:
    """Pick the first candidate no cap, cooldown or holdout stops, record it, and show it.

    Runs inside the store's atomic update. Candidates come highest priority first.
    Held-out kinds are recorded as held out and passed over; their records come
    back beside the moment shown (if any), for the caller to send once the update
    has landed. ``show`` renders the winner (``render``); its record keeps the
    title, so a tier crossing later names the moment as the user read it, at no
    second rendering and no second write.
    """
    _forget(state, now - max(moments.horizon, _DAY))
    held: list[MomentRecord] = []
    for kind in candidates:
        if blocked(kind, state.moments, moments, now):
            continue
        record = MomentRecord(
            id=_moment_id(state.user_id, kind.name, now),
            kind=kind.name,
            at=now,
            held_out=held_out(state.user_id, kind),
        )
        state.moments.append(record)
        if record.held_out:
            held.append(record)
            continue
        shown = show(kind, record)
        # A feature name may hold lone surrogates, which no store can encode.
        record.title = shown.title[:_MAX_TITLE].encode(errors="replace").decode()
        return shown, tuple(held)
    return None, tuple(held)


def mark(state: UserState, moment: str, outcome: str, now: int) -> MomentRecord | None:
    """Record ``outcome`` on the moment with id (or latest of kind) ``moment``."""
    for record in reversed(state.moments):
        if moment in (record.id, record.kind) and not record.held_out:
            record.outcomes[outcome] = now
            return record
    return None


def render(
    kind: MomentKind,
    record: MomentRecord,
    values: Mapping[str, Any],
    traits: tuple[Mapping[str, Any], Mapping[str, Any]],
    names: Mapping[str, str],
) -> Moment:
    """Fill ``kind``'s content from ``values`` and the user's and account's traits.

    ``{feature}`` is the feature's human name from ``names`` (the entitlements'
    ``names`` table) when it has one: people read "Single sign-on", not "sso".
    ``Moment.feature`` keeps the id, which the host and the collector match on.
    """

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        scope, _, trait = name.partition(".")
        if trait:
            value = (traits[0] if scope == "user" else traits[1]).get(trait)
        else:
            value = values.get(name)
            if name == "feature" and isinstance(value, str):
                value = names.get(value, value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return "" if value is None else str(value)

    content = {field: _PLACEHOLDER.sub(fill, text) for field, text in kind.content.items()}
    return Moment(
        id=record.id,
        kind=kind.name,
        title=content["title"],
        body=content["body"],
        cta=content["cta"],
        feature=values.get("feature"),
        days_left=values.get("days_left"),
        at=from_micros(record.at),
    )


def outcome_message(user_id: str, record: MomentRecord, outcome: str) -> Track:
    """Return the record of an outcome that the collector receives."""
    return Track(
        user_id=user_id,
        event=MOMENT_OUTCOME_EVENT,
        properties={"moment_id": record.id, "kind": record.kind, "outcome": outcome},
        timestamp=from_micros(record.outcomes[outcome]),
    )


def held_out_message(user_id: str, record: MomentRecord, feature: str | None) -> Track:
    """Return the record of a held-out decision: where a showing would have been.

    Its own event name, so that nothing counting ``pqlsdk_moment_shown`` counts
    it, and ``held_out`` in its properties, so that a reader of one event knows.
    """
    return Track(
        user_id=user_id,
        event=MOMENT_HELD_OUT_EVENT,
        properties={
            "moment_id": record.id,
            "kind": record.kind,
            "feature": feature,
            "held_out": True,
        },
        timestamp=from_micros(record.at),
    )


def _forget(state: UserState, before: int) -> None:
    """Drop decisions no cap or cooldown can still see; keep at most ``_MAX_RECORDS``."""
    kept = [
        r for r in state.moments if r.at >= before or any(t >= before for t in r.outcomes.values())
    ]
    state.moments[:] = kept[-_MAX_RECORDS:]


def _moment_id(user_id: str, kind: str, at: int) -> str:
    """Return a stable id: the same user, kind and instant always give the same id."""
    from hashlib import sha256  # noqa: PLC0415 - see held_out()

    digest = sha256(f"{user_id}\x00{kind}\x00{at}".encode()).hexdigest()
    return f"{kind}-{digest[:16]}"


def read_state(store: Store, user_id: str) -> tuple[UserState | None, AccountState | None]:
    """Read a user and the account they belong to (None for what the store has not seen)."""
    user = store.user(user_id)
    account = None if user is None or user.account_id is None else store.account(user.account_id)
    return user, account


class Chooser:
    """Chooses the moment to show a user now, and claims its showing in the store.

    ``emit`` queues the records of what was shown, and held out, for the collector.
    """

    __slots__ = ("_decisions", "_emit", "_store")

    def __init__(self, store: Store, emit: Callable[[Track], None]) -> None:
        self._store = store
        self._emit = emit
        # Place -> (rules, moments, its decision function): made on first use per version.
        self._decisions: dict[str, tuple[Rules, Moments, Decision]] = {}

    def choose(
        self, rules: Rules, moments: Moments, user_id: str, feature: str | None, now: int
    ) -> Moment | None:
        """Find a due moment from a snapshot, then claim a showing atomically.

        The first half is one generated function per place (``decision_function``):
        caps and cooldowns first, then each open kind's ``when``, with the score
        computed only if a ``when`` reads it. Most calls end there (capped, or
        nothing due) in a few microseconds. ``rules`` are those the caller read
        ``moments`` from: one version throughout. A ``feature`` is the one a gate
        denied (kinds ``at = "gate"``); None is decide().
        """
        place = "decide" if feature is None else "gate"
        made = self._decisions.get(place)
        if made is None or made[0] is not rules or made[1] is not moments:
            decide = decision_function(moments, rules.model(moments.model), place)
            made = self._decisions[place] = (rules, moments, decide)
        due = made[2](self._store, user_id, feature, now)
        if due is None:
            return None  # the common path: capped, cooling down or not due; no write
        return self._claim(rules, moments, now, user_id=user_id, feature=feature, due=due)

    def _claim(
        self,
        rules: Rules,
        moments: Moments,
        now: int,
        *,
        user_id: str,
        feature: str | None,
        due: tuple[list[MomentKind], UserState | None, AccountState | None],
    ) -> Moment | None:
        """Claim the first due kind a cap allows; render it from the snapshot it was due on."""
        candidates, user, account = due
        model = rules.model(moments.model)
        traits = ({} if user is None else user.traits, {} if account is None else account.traits)
        trial_end = traits[0].get(moments.trial_end)
        values: dict[str, Any] = {
            "days_left": None if trial_end is None else days_left(trial_end, now),
            "feature": feature,
            "plan": traits[0].get("plan"),
            "user_id": user_id,
        }
        facts = facts_from(user, account, now, values, model._standing_variables)
        names = {} if rules.entitlements is None else rules.entitlements.names
        variables = facts.variables()  # the score, if content needs it: outside the store's lock
        shown, held = self._store.update_user(
            user_id,
            lambda state: claim(
                state, candidates, moments, now, lambda k, r: render(k, r, variables, traits, names)
            ),
        )
        for record in held:  # both arms reach the collector: lift needs the held-out one
            self._emit(held_out_message(user_id, record, feature))
        if shown is None:
            return None
        self._emit(shown.to_message(user_id))
        return shown
