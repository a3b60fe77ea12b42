"""Tier crossings: a subject moving up or down a model's tiers, reported once.

Crossings are detected when messages arrive: after a write, the client asks
``detect_crossings`` to score the subjects it touched and compare each tier with
the one the store remembers. It scores the states the write handed back
(``Written``) rather than reading each user and account again: on Redis that
read was a round trip per user and per account, most of a chunk's cost. Most
subjects cross nothing, so one compiled check per rules (``_unmoved``: every
model's standing joined into one function of the states) tells those apart
first; only the others are scored model by model.
``swap_tier`` is a compare-and-set on the store's atomic update, so exactly one
process reports a crossing that several processes see at once.

An account becoming a product-qualified account (the rules' ``[pqa]``: at least
``min_users`` members at ``tier`` or above), moving between tiers as one, or
ceasing to be one, is a crossing too (``pqa_crossing``). It is checked only
when something that can change it happens (a member's tier moved, or a member
joined), and remembered under ``PQA_KEY`` in the account's tiers, so it is
reported once, like a user's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal

import msgspec

from ._clock import from_micros
from ._due import fact_reads, reads_facts_object, state_names
from ._scoring import Reason, Score, facts_from, plain, score_subject, standing
from .messages import Track
from .rules._inline import function, indented, standing_lines
from .rules._model import PQA, Model, Moments, Rules
from .stores import AccountState, MomentRecord, Store, Subject, UserState, Written
from .stores._base import ReadsUsers

__all__ = [
    "PQA_KEY",
    "TIER_CHANGED_EVENT",
    "TierChange",
    "detect_crossings",
    "pqa_crossing",
    "swap_tier",
]

TIER_CHANGED_EVENT = "pqlsdk_tier_changed"
"""The event name of the record a crossing sends to the collector."""
PQA_KEY: Final = "[pqa]"
"""Where an account's tiers remember its PQA standing (no model can be named so)."""
_MOMENTS_WINDOW = 30 * 86_400_000_000  # µs: the moments a crossing record lists
_MAX_MEMBERS: Final = 20
"""Members a PQA crossing lists (best first): a crossing record must stay small."""
_PLACEHOLDER: Final = re.compile(r"\{([^{}]*)\}")


class TierChange(msgspec.Struct, frozen=True, gc=False):
    """A user or account that moved to another tier of a model.

    Added in version 0.1.0.
    """

    subject: str
    """``"user"`` or ``"account"``."""
    id: str
    model: str
    previous: str | None
    """The tier before, or None the first time the subject was placed."""
    tier: str
    direction: Literal["up", "down"]
    score: Score
    """The score that placed the subject, with its reasons."""
    user_id: str
    """The user whose message caused the crossing (the subject itself for users)."""
    top_features: tuple[str, ...] = ()
    """Up to five features the user used (values of the model's ``distinct`` aggregates)."""
    team_size: int = 1
    """Active members of the account (1 without an account)."""
    moments_seen: tuple[str, ...] = ()
    """Moment kinds the user was shown in the last 30 days."""
    moment_titles: tuple[str, ...] = ()
    """The titles of ``moments_seen`` as the user last saw them, in the same order.

    Added in version 0.1.0.
    """
    members: tuple[Score, ...] = ()
    """For an account's PQA crossing: its members' scores, qualifying ones first, best
    first (at most 20); ``score`` is then the qualifying members' scores added up.

    Added in version 0.1.0.
    """
    qualifying: int = 0
    """For an account's PQA crossing: how many members are at the PQA tier or above.

    Added in version 0.1.0.
    """

    @property
    def at(self) -> datetime:
        """When the crossing was detected (the score's instant).

        Added in version 0.1.0.
        """
        return self.score.at

    def to_message(self) -> Track:
        """Return the record the collector receives: a track with the context sales needs.

        Added in version 0.1.0.
        """
        properties: dict[str, Any] = {
            "subject": self.subject,
            "subject_id": self.id,
            "model": self.model,
            "previous_tier": self.previous,
            "tier": self.tier,
            "direction": self.direction,
            "score": self.score.score,
            "route": self.score.route,
            "signals": [
                {"signal": r.signal, "points": r.earned} for r in self.score.reasons if r.fired
            ],
            "reasons": [_reason(r) for r in self.score.reasons],
            "top_features": list(self.top_features),
            "team_size": self.team_size,
            "moments_seen": list(self.moments_seen),
            "moment_titles": list(self.moment_titles),
            "multiplier": self.score.multiplier,
        }
        if self.members:
            properties["members"] = [
                {
                    "user_id": member.id,
                    "tier": member.tier,
                    "score": member.score,
                    "route": member.route,
                    "qualifies": rank < self.qualifying,
                    "reasons": [_reason(r) for r in member.reasons if r.fired],
                }
                for rank, member in enumerate(self.members)
            ]
        return Track(
            user_id=self.user_id,
            event=TIER_CHANGED_EVENT,
            properties=properties,
            timestamp=self.at,
        )


def _reason(reason: Reason) -> dict[str, Any]:
    """Return a reason as the crossing record carries it."""
    return {
        "signal": reason.signal,
        "label": reason.label,
        "points": reason.points,
        "earned": reason.earned,
        "fired": reason.fired,
        "observed": plain(reason.observed),
        "needs": reason.needs,
    }


def moment_titles(
    moments: Moments | None, kinds: tuple[str, ...], records: Sequence[MomentRecord] = ()
) -> tuple[str, ...]:
    """Return each moment kind's title as the user last saw it ("Your trial ends in 2 days").

    ``records`` are the user's moment records, oldest first: the latest with a title
    names its kind. A kind with no such record (shown before titles were kept) reads
    as its template when that has no placeholder, and otherwise, like a kind the rules
    no longer define, as its id in words: "Trial ending", never "[days left]", which a
    reader takes for a template bug.
    """
    shown = {record.kind: record.title for record in records if record.title is not None}
    templates = {} if moments is None else {k.name: k.content["title"] for k in moments.kinds}
    titles = []
    for kind in kinds:
        title = shown.get(kind) or templates.get(kind)
        if not title or _PLACEHOLDER.search(title):
            title = kind.replace("_", " ").capitalize()
        titles.append(title)
    return tuple(titles)


def crossing_context(
    model: Model, user: UserState, account: AccountState | None, now: int
) -> tuple[tuple[str, ...], int, tuple[str, ...]]:
    """Return what sales needs beside the score: top features, team size, moments seen."""
    features: list[str] = []
    for aggregate in sorted(model.aggregates, key=lambda a: a.key):
        if aggregate.kind == "distinct" and aggregate.scope == "user" and aggregate.window is None:
            for value in user.aggregates.get(aggregate.key) or ():
                decoded = msgspec.json.decode(value)
                if isinstance(decoded, str) and decoded not in features:
                    features.append(decoded)
    team = 1 if account is None else max(account.active_members, 1)
    since = now - _MOMENTS_WINDOW
    seen = tuple(dict.fromkeys(r.kind for r in user.moments if r.at >= since and not r.held_out))
    return tuple(features[:5]), team, seen


def swap_tier(
    store: Store, subject: Subject, subject_id: str, model: str, *, expected: str | None, tier: str
) -> bool:
    """Set the tier a subject is remembered at for ``model``, if it is still ``expected``."""

    def change(state: UserState | AccountState) -> bool:
        if state.tiers.get(model) != expected:
            return False
        state.tiers[model] = tier
        return True

    if subject == "user":
        return store.update_user(subject_id, change)
    return store.update_account(subject_id, change)


def pqa_crossing(
    pqa: PQA,
    model: Model,
    account: AccountState,
    members: Mapping[str, UserState | None],
    *,
    user: UserState,
    now: int,
) -> TierChange | None:
    """Return the account's PQA crossing, if ``members`` moved it.

    The PQA's tier is the tier ``pqa.min_users`` members reach, so it is
    ``pqa.tier`` or above exactly when the account is a PQA. Becoming a PQA,
    ceasing to be one, and a PQA moving to another tier (hot to burning) are
    crossings; tiers below the bar are not. Its score is the sum of its
    qualifying members' scores, its route that of its best qualifying member
    that may be contacted. ``user`` is the member whose message caused it.
    Return None when nothing crossed.
    """
    tiers = [name for _, name in model.tiers]
    bar = tiers.index(pqa.tier)
    standings = {
        member_id: standing(model, member_id, state, account, now)
        for member_id, state in members.items()
    }
    ranked = sorted(standings, key=lambda m: (-tiers.index(standings[m][1]), -standings[m][0], m))
    qualifying = [m for m in ranked if tiers.index(standings[m][1]) >= bar]
    kth = ranked[pqa.min_users - 1] if len(ranked) >= pqa.min_users else None
    tier = tiers[0] if kth is None else standings[kth][1]
    before = account.tiers.get(PQA_KEY)
    was = before in tiers and tiers.index(before) >= bar
    now_pqa = len(qualifying) >= pqa.min_users
    if not (was or now_pqa) or (was and now_pqa and tier == before):
        return None  # not a PQA, before or now; or one still, in the same tier
    up = not was or (now_pqa and tiers.index(tier) > tiers.index(str(before)))
    listed = tuple(score_subject(model, m, members[m], account, now) for m in ranked[:_MAX_MEMBERS])
    total = round(sum(standings[m][0] for m in qualifying), 9)
    contactable = [s.route for s in listed[: len(qualifying)] if s.route != "do_not_contact"]
    route = (
        contactable[0] if contactable else ("do_not_contact" if qualifying else model.default_route)
    )
    reason = Reason(
        signal="pqa",
        label=f"members at {pqa.tier} or above",
        points=total,
        earned=total,
        fired=True,
        observed=len(qualifying),
        needs=f">= {pqa.min_users}",
    )
    features, team, _ = crossing_context(model, user, account, now)
    return TierChange(
        subject="account",
        id=account.account_id,
        model=model.name,
        previous=before,
        tier=tier,
        direction="up" if up else "down",
        score=Score(
            subject="account",
            id=account.account_id,
            model=model.name,
            score=total,
            tier=tier,
            route=route,
            gate_passed=True,
            multiplier=1.0,
            raw=total,
            reasons=(reason,),
            at=from_micros(now),
        ),
        user_id=user.user_id,
        top_features=features,
        team_size=team,
        members=listed,
        qualifying=len(qualifying),
    )


class _States:
    """The states detection scores: those the write handed back, the rest read from the store."""

    __slots__ = ("_accounts", "_users", "store")

    def __init__(self, store: Store, written: Written) -> None:
        self.store = store
        self._users = written.users
        self._accounts = dict(written.accounts)  # not the caller's: moved() drops from it

    def users(self, user_ids: list[str]) -> dict[str, UserState | None]:
        """Return the users' states: those written, the rest read (at once, where the store can)."""
        found: dict[str, UserState | None] = {u: self._users.get(u) for u in user_ids}
        missing = [user_id for user_id, state in found.items() if state is None]
        if missing and isinstance(self.store, ReadsUsers):
            found.update(self.store.read_users(missing))
        else:
            found.update((user_id, self.store.user(user_id)) for user_id in missing)
        return found

    def moved(self, account_id: str) -> None:
        """Read the account from the store from now on: its remembered tiers just changed."""
        self._accounts.pop(account_id, None)


_Unmoved = Callable[[UserState, AccountState | None, int, Mapping[str, str]], bool]
_CHECKS: dict[int, tuple[Rules, _Unmoved]] = {}
"""Each rules' ``_unmoved`` function by their id, with the rules (which keeps the id theirs)."""
_MAX_CHECKS: Final = 16


def _unmoved(rules: Rules) -> _Unmoved:
    """Return the function that tells a user is left where every model remembers them.

    ``unmoved(user, account, now, user.tiers)`` computes each model's tier as
    its standing does, from the states themselves (no facts object), and is
    true when each equals the tier the user is remembered at: then no model
    moved, and the crossing loop would find nothing to do. It is false when one
    moved, or when a standing raised (the loop then raises it where it would).
    Only rules whose models all score users, and whose text reads no facts
    object (a closure without a template), have one: for others it is always
    false, and every subject takes the loop.
    """
    found = _CHECKS.get(id(rules))
    if found is not None and found[0] is rules:
        return found[1]
    if len(_CHECKS) >= _MAX_CHECKS:  # rules loaded again and again: start over
        _CHECKS.clear()
    check = _CHECKS[id(rules)] = (rules, _unmoved_function(rules) or _moved)
    return check[1]


def _moved(
    user: UserState, account: AccountState | None, now: int, tiers: Mapping[str, str]
) -> bool:
    """``_unmoved`` for rules that have none: each subject takes the crossing loop."""
    return False


def _unmoved_function(rules: Rules) -> _Unmoved | None:
    """Compile the models' standing lines, one after another, into ``_unmoved``'s function."""
    names = state_names()
    body: list[str] = []
    for index, model in enumerate(rules.models.values()):
        if model.subject != "user":
            return None
        body += standing_lines(model, names, f"_m{index}")
        names[f"_name{index}"] = model.name
        body.append(f"if _tier != remembered.get(_name{index}): return False")
    text = "\n".join(body)
    if reads_facts_object(text):
        return None
    lines = [
        "try:",
        *indented([*fact_reads(text), *body, "return True"]),
        "except Exception:",
        "    return False",
    ]
    return function(
        "<tiers unmoved>", lines, names, parameters="user, account, now, remembered", prologue=False
    )


def detect_crossings(
    store: Store,
    rules: Rules,
    user_ids: Iterable[str],
    now: int,
    *,
    joined: set[str],
    report: Callable[[TierChange], None],
    written: Written,
) -> None:
    """Score the touched users (and their accounts) and ``report`` tier changes.

    ``written`` holds the states the write left them in (what it lacks is read
    from the store). An account's PQA standing is checked when one of its
    members moved in the PQA model's tiers or joined it (``joined``): nothing
    else can change it. A store fault is raised (after what was reported):
    the caller counts it.
    """
    states = _States(store, written)
    # Each model's name, whether it scores users, and its standing, read once per write:
    # most subjects cross nothing, so the loop below mostly scores and compares.
    models = [
        (model, model.name, model.subject == "user", model._standing)
        for model in rules.models.values()
    ]
    by_account = not all(mine for _, _, mine, _ in models)
    unmoved = _unmoved(rules)
    moments = rules.moments
    pqa = rules.pqa
    # The states written (most are), else read from the store: a state is never false.
    written_user, written_account, store_user = states._users.get, states._accounts.get, store.user
    for user_id in user_ids:
        user = written_user(user_id) or store_user(user_id)
        if user is None:  # pragma: no cover - a user just recorded has state
            continue
        account_id = user.account_id
        account = (
            None if account_id is None else written_account(account_id) or store.account(account_id)
        )
        if (account is None or user_id not in joined) and unmoved(user, account, now, user.tiers):
            continue  # most subjects: no model moved, nobody joined (see below)
        # One set of facts per subject kind, shared by its models: a standing
        # reads no variables (``Model._standing``), only the states and ``now``.
        mine = facts_from(user, account, now, {"user_id": user_id})
        theirs = None
        if account is not None and by_account:
            theirs = facts_from(None, account, now, {"user_id": None})
        moved: list[str] = []
        for model, name, of_user, place in models:
            if of_user:
                facts, remembered = mine, user.tiers
            elif theirs is None or account is None:
                continue
            else:
                facts, remembered = theirs, account.tiers
            tier = place(facts)[1]
            before = remembered.get(name)
            if tier != before and _cross(
                store,
                moments,
                model,
                user,
                account,
                tier=tier,
                before=before,
                now=now,
                report=report,
            ):
                moved.append(name)
        if account is None or not (moved or user_id in joined):
            continue  # most subjects: nothing moved, nobody joined, so no account work
        swapped = any(rules.model(name).subject == "account" for name in moved)
        if pqa is not None and (pqa.model in moved or user_id in joined):
            swapped |= _cross_pqa(
                states, pqa, rules.model(pqa.model), account, user, now=now, report=report
            )
        if swapped:  # the account's next member (same write) must see the tier it is at now
            states.moved(account.account_id)


def _cross_pqa(
    states: _States,
    pqa: PQA,
    model: Model,
    account: AccountState,
    user: UserState,
    *,
    now: int,
    report: Callable[[TierChange], None],
) -> bool:
    """Report the account becoming (or ceasing to be) a PQA, once across processes.

    Return whether the account's remembered PQA tier changed.
    """
    others = states.users([member for member in account.members if member != user.user_id])
    members = {
        member: user if member == user.user_id else others[member] for member in account.members
    }
    change = pqa_crossing(pqa, model, account, members, user=user, now=now)
    if change is None or not swap_tier(
        states.store,
        "account",
        account.account_id,
        PQA_KEY,
        expected=change.previous,
        tier=change.tier,
    ):
        return False
    report(change)
    return True


def _cross(
    store: Store,
    moments: Moments | None,
    model: Model,
    user: UserState,
    account: AccountState | None,
    *,
    tier: str,
    before: str | None,
    now: int,
    report: Callable[[TierChange], None],
) -> bool:
    """Report a crossing of ``model``'s tiers by the user (or their account), now at ``tier``.

    Return whether the remembered tier changed (a first placement included).
    ``moments`` (those of the same rules as ``model``) title the moments seen;
    ``tier`` is where the subject's standing at ``now`` places it, ``before``
    the tier the caller found remembered (and compared with ``tier``).
    """
    subject: Literal["user", "account"] = "user"
    scored: UserState | None = user
    subject_id = user.user_id
    if model.subject == "account" and account is not None:
        subject, subject_id, scored = "account", account.account_id, None
    if not swap_tier(store, subject, subject_id, model.name, expected=before, tier=tier):
        return False
    if before is None and model.rank(tier) == 0:
        return True  # a first placement in the lowest tier is not a crossing
    up = before is None or model.rank(tier) > model.rank(before)
    features, team, seen = crossing_context(model, user, account, now)
    report(
        TierChange(
            subject=subject,
            id=subject_id,
            model=model.name,
            previous=before,
            tier=tier,
            direction="up" if up else "down",
            score=score_subject(model, subject_id, scored, account, now),
            user_id=user.user_id,
            top_features=features,
            team_size=team,
            moments_seen=seen,
            moment_titles=moment_titles(moments, seen, user.moments),
        )
    )
    return True
