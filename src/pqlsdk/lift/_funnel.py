"""The moments report: per kind, who was shown or held out, what they did, who converted.

One streaming pass over a history in time order (a file, or the collector's
storage) folds every message into the users' state with the stores' own
``apply()``, and reads pqlsdk's own records on the way:

- ``pqlsdk_moment_shown`` and ``pqlsdk_moment_held_out`` put a user in a kind's
  shown or held-out arm. The first decision of a kind decides the arm and its
  instant is the user's *exposure* to that kind; later ones change nothing.
- ``pqlsdk_moment_outcome`` marks a user of the shown arm as having clicked or
  dismissed the kind (users, not clicks).
- Conversion is the rules file's ``[moments] conversion`` expression, evaluated
  as ``pqlsdk score`` would: right after the exposure, then after each later
  message of the user (or a group message of their account), at that message's
  time. A user converted for a kind when it was false at the exposure and held
  after a message within ``conversion_window`` of it. A user already converted
  when exposed stays in the arm but is not counted as converted: the rule only
  credits conversions that follow a decision, in both arms alike.
- A user shown (or held out of) two kinds counts in both, each from its own
  exposure: the report says what each moment did beside the others, not which
  one deserves the conversion.

Only messages up to ``now`` are read. A user whose window is still open at
``now`` counts with the conversions so far; exposures in both arms are spread
over time alike, so the lift is not biased by it, though rates may still rise.
Memory grows with users and exposures, never with messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Final

import msgspec

from .._aggregates import Aggregate
from .._digests import Digests
from .._exceptions import ConfigError
from .._history import History, fold
from .._moments import MOMENT_HELD_OUT_EVENT, MOMENT_OUTCOME_EVENT, MOMENT_SHOWN_EVENT
from .._scoring import facts_for
from ..messages import Group, Message, Track
from ..rules._compiler import Compiled
from ..rules._model import Rules
from ._interval import newcombe, verdict

__all__ = ["KindReport", "MomentsReport", "Running", "conversion_of", "counted", "measure"]

_DAY: Final = 86_400_000_000
_NEVER: Final = 1 << 62  # µs: later than any instant
_ARMS: Final = {MOMENT_SHOWN_EVENT: False, MOMENT_HELD_OUT_EVENT: True}


class KindReport(msgspec.Struct, frozen=True):
    """One moment kind's funnel, both arms' conversion, and the lift between them.

    Rates and the lift are None while an arm has no users.

    Added in version 0.1.0.
    """

    shown: int
    held_out: int
    clicked: int
    dismissed: int
    converted_shown: int
    converted_held_out: int
    rate_shown: float | None
    rate_held_out: float | None
    lift: float | None
    """The shown arm's rate minus the held-out arm's."""
    lift_low: float | None
    lift_high: float | None
    """The 95 % interval of the lift (Newcombe's, from two Wilson intervals)."""
    verdict: str
    more_per_arm: int
    """About how many more users each arm needs to detect a 5-point lift (an estimate)."""

    @property
    def eligible(self) -> int:
        """Users a decision was made for: shown or held out.

        Added in version 0.1.0.
        """
        return self.shown + self.held_out

    @property
    def relative_lift(self) -> float | None:
        """The lift as a share of the held-out rate (None when that rate is 0 or unknown).

        Added in version 0.1.0.
        """
        if self.lift is None or not self.rate_held_out:
            return None
        return self.lift / self.rate_held_out

    def as_json(self) -> dict[str, object]:
        """Return the fields ``pqlsdk moments --json`` and ``/api/moments`` print for a kind.

        Added in version 0.1.0.
        """
        return {name: getattr(self, name) for name in _JSON_FIELDS}


_JSON_FIELDS: Final = tuple(f for f in KindReport.__struct_fields__ if f != "more_per_arm")


class MomentsReport(msgspec.Struct, frozen=True):
    """Every kind's report, the window it counts conversions in, and the instant it is as of.

    Added in version 0.1.0.
    """

    window_days: float
    at: int
    """The instant (µs) the report is as of: later messages were not read."""
    moments: dict[str, KindReport]

    def as_json(self) -> dict[str, object]:
        """Return ``{"window_days": ..., "moments": {KIND: {...}}}``, the report's JSON shape.

        Added in version 0.1.0.
        """
        days = self.window_days
        return {
            "window_days": int(days) if float(days).is_integer() else days,
            "moments": {kind: report.as_json() for kind, report in self.moments.items()},
        }


def conversion_of(rules: Rules) -> tuple[Compiled, int, list[str]]:
    """Return the conversion, its window (µs) and the kinds of ``rules``, for either engine.

    ``ConfigError`` when the rules have no moments or no conversion: nothing to measure.
    """
    moments = rules.moments
    if moments is None:
        raise ConfigError(f"no [moment.*] tables in {rules.origin}: nothing to measure")
    if moments.conversion is None:
        raise ConfigError(
            f"no [moments] conversion in {rules.origin}: say what counts as converting, "
            "e.g. conversion = 'count(\"subscription_started\") >= 1'"
        )
    return moments.conversion, moments.conversion_window, [kind.name for kind in moments.kinds]


class _Arm:
    """One user's place in one kind: arm, exposure, outcomes, conversion."""

    __slots__ = ("at", "clicked", "converted", "dismissed", "held_out", "open")

    def __init__(self, at: int, *, held_out: bool) -> None:
        self.at = at
        self.held_out = held_out
        self.clicked = self.dismissed = self.converted = False
        self.open = True  # still watching for a conversion


class _Measure:
    """One pass's moving parts: the history folded so far and every user's arms."""

    def __init__(self, rules: Rules, now: int | None, history: History) -> None:
        self.conversion, self.window, self.kinds = conversion_of(rules)
        self.now = _NEVER if now is None else now
        self.latest = -1
        self.history = history
        self.arms: dict[str, dict[str, _Arm]] = {}  # user: kind: arm
        self.watching: dict[str, list[_Arm]] = {}  # user: arms still open

    def stream(self, ordered: Iterable[tuple[int, Message]]) -> Iterator[Message]:
        """Yield the messages to fold, looking at the state after each one is applied."""
        history = self.history
        applied: tuple[int, Message] | None = None
        duplicates = history.duplicates
        for instant, message in ordered:
            # fold() applied the previous message when it asked for this one
            # (unless it repeated a messageId).
            if applied is not None and history.duplicates == duplicates:
                self.after(*applied)
            applied, duplicates = None, history.duplicates
            if instant > self.now:
                break
            self.latest = max(self.latest, instant)
            applied = (instant, message)
            yield message
        if applied is not None and history.duplicates == duplicates:
            self.after(*applied)

    def after(self, instant: int, message: Message) -> None:
        """Place a decision or an outcome; look for conversions the message may have made."""
        user_id = message.subject
        if user_id in self.watching:  # before placing a decision, which looks for itself
            self.check(user_id, instant)
        if type(message) is Track and message.event.startswith("pqlsdk_moment_"):
            self.moment(instant, user_id, message)
        if type(message) is Group:
            account = self.history.accounts.get(message.group_id)
            for member in () if account is None else account.members:
                if member != user_id and member in self.watching:
                    self.check(member, instant)

    def moment(self, instant: int, user_id: str, message: Track) -> None:
        """Read one of pqlsdk's own records: a decision of either arm, or an outcome."""
        kind = message.properties.get("kind")
        if not isinstance(kind, str):
            return
        arms = self.arms.setdefault(user_id, {})
        held = _ARMS.get(message.event)
        if held is not None:
            if kind not in arms:
                arm = arms[kind] = _Arm(instant, held_out=held)
                if self.holds(user_id, instant):
                    arm.open = False  # converted before the decision: not credited
                else:
                    self.watching.setdefault(user_id, []).append(arm)
            return
        found = arms.get(kind)
        if message.event == MOMENT_OUTCOME_EVENT and found is not None and not found.held_out:
            outcome = message.properties.get("outcome")
            found.clicked |= outcome == "clicked"
            found.dismissed |= outcome == "dismissed"

    def check(self, user_id: str, instant: int) -> None:
        """Credit a conversion to the user's open arms whose window holds ``instant``."""
        open_arms = [arm for arm in self.watching[user_id] if instant - arm.at <= self.window]
        if open_arms and self.holds(user_id, instant):
            for arm in open_arms:
                arm.converted = True
            open_arms = []
        if open_arms:
            self.watching[user_id] = open_arms
        else:
            del self.watching[user_id]

    def holds(self, user_id: str, instant: int) -> bool:
        """Whether the conversion expression holds for the user at ``instant``."""
        history = self.history
        user = history.users.get(user_id)
        account_id = None if user is None else user.account_id
        account = None if account_id is None else history.accounts.get(account_id)
        facts = facts_for(user, account, instant, user_id=user_id)
        return self.conversion.evaluate(facts) is True

    def report(self) -> MomentsReport:
        """Count each kind's arms: shown, held out, clicked, dismissed, converted of each arm."""
        counts: dict[str, list[int]] = {}
        for arms in self.arms.values():
            for kind, arm in arms.items():
                row = counts.setdefault(kind, [0] * 6)
                if arm.held_out:
                    row[1] += 1
                    row[5] += arm.converted
                else:
                    row[0] += 1
                    row[2] += arm.clicked
                    row[3] += arm.dismissed
                    row[4] += arm.converted
        at = self.latest if self.now == _NEVER else self.now
        return counted(self.kinds, counts, window=self.window, at=at)


def counted(
    kinds: Sequence[str], counts: Mapping[str, Sequence[int]], *, window: int, at: int
) -> MomentsReport:
    """Build the report from each kind's counts, whichever engine counted them.

    ``counts`` maps a kind to its users shown, held out, clicked, dismissed,
    converted shown and converted held out. The kinds of the rules come first
    (with zeros when nobody was decided for), then any others seen, by name.
    """
    order = [*kinds, *sorted(set(counts) - set(kinds))]
    return MomentsReport(
        window_days=window / _DAY,
        at=at,
        moments={kind: _kind_report(counts.get(kind, (0,) * 6)) for kind in order},
    )


def _kind_report(row: Sequence[int]) -> KindReport:
    """Build a kind's report from its counts: shown, held out, clicked, dismissed, won x2."""
    shown, held, clicked, dismissed, won_shown, won_held = row
    found = newcombe(won_shown, shown, won_held, held)
    said, more = verdict(won_shown, shown, won_held, held)
    return KindReport(
        shown=shown,
        held_out=held,
        clicked=clicked,
        dismissed=dismissed,
        converted_shown=won_shown,
        converted_held_out=won_held,
        rate_shown=won_shown / shown if shown else None,
        rate_held_out=won_held / held if held else None,
        lift=None if found is None else found[0],
        lift_low=None if found is None else found[1],
        lift_high=None if found is None else found[2],
        verdict=said,
        more_per_arm=more,
    )


class Running:
    """A moments report folded in batches: each batch continues the time order of the last.

    ``measure`` is one batch. The collector keeps one of these and feeds it only
    the messages stored since its last report, when they sort after every
    message fed so far (``pqlsdk.collector``).

    Added in version 0.1.0.
    """

    def __init__(
        self, rules: Rules, *, now: int | None = None, history: History | None = None
    ) -> None:
        self._run = _Measure(rules, now, history or History())
        self._aggregates: frozenset[Aggregate] = rules.aggregates
        self._seen = Digests()

    def feed(self, ordered: Iterable[tuple[int, Message]]) -> None:
        """Fold (µs, message) pairs that follow, in time order, those fed before.

        Added in version 0.1.0.
        """
        fold(self._run.stream(ordered), self._aggregates, self._run.history, self._seen)

    def report(self) -> MomentsReport:
        """Return the report on every message fed so far.

        Added in version 0.1.0.
        """
        return self._run.report()


def measure(
    rules: Rules,
    ordered: Iterable[tuple[int, Message]],
    *,
    now: int | None = None,
    history: History | None = None,
) -> MomentsReport:
    """Measure every moment kind of ``rules`` on ``ordered`` (µs, message) pairs, in time order.

    Messages after ``now`` (µs) are not read; without it the report is as of
    the latest message. ``history`` receives the folded state (and can carry
    the counts of refused lines). Raise ``ConfigError`` when the rules have no
    moments or no conversion.

    Added in version 0.1.0.
    """
    running = Running(rules, now=now, history=history)
    running.feed(ordered)
    return running.report()
