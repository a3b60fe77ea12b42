"""Compiled rules: models whose every expression is a ready closure.

A ``Rules`` object is immutable: loading new rules builds a new one and the
client swaps the reference, so a request thread always sees one whole version.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import msgspec

from .._aggregates import Aggregate
from .._exceptions import ConfigError, RulesError, located

if TYPE_CHECKING:  # the compiler (parser, lexer) loads only when rules are loaded
    from ._compiler import Compiled

__all__ = [
    "PQA",
    "CapGroup",
    "Entitlements",
    "Model",
    "MomentKind",
    "Moments",
    "Route",
    "Rules",
    "RulesWarning",
    "Signal",
]


class Signal(msgspec.Struct, frozen=True):
    """A compiled signal: ``points`` when ``when`` holds, or ``points`` x ``value``.

    ``observe`` is the measured side of a ``when`` that compares something with a
    constant (``count("x") >= 3``), and ``needs`` the rest (``>= 3``): together
    they explain the signal ("x = 2, needs >= 3").

    Added in version 0.1.0.
    """

    name: str
    label: str
    points: float
    when: Compiled | None
    value: Compiled | None
    observe: Compiled | None
    needs: str | None


class Route(msgspec.Struct, frozen=True):
    """A compiled routing rule: the first whose ``when`` holds names ``Score.route``.

    Added in version 0.1.0.
    """

    route: str
    when: Compiled


class Model(msgspec.Struct, frozen=True, dict=True):
    """A compiled scoring model: one ``[model.<name>]`` table of a rules file.

    Gate, multiplier, signals, tiers and routes turn a user's or an account's
    state into a ``Score``; ``Rules.model(name)`` finds one by name.

    Added in version 0.1.0.
    """

    name: str
    subject: str
    gate: Compiled | None
    multiplier: Compiled | None
    signals: tuple[Signal, ...]
    tiers: tuple[tuple[float, str], ...]
    """(threshold, name), lowest threshold first."""
    routes: tuple[Route, ...]
    default_route: str
    do_not_contact: Compiled | None
    aggregates: frozenset[Aggregate]

    def tier_for(self, score: float) -> str:
        """Return the highest tier whose threshold ``score`` reaches (else the lowest).

        Added in version 0.1.0.
        """
        index = bisect.bisect_right(self._thresholds, score)
        return self.tiers[index - 1 if index else 0][1]

    @functools.cached_property
    def _thresholds(self) -> tuple[float, ...]:
        return tuple(threshold for threshold, _ in self.tiers)

    @functools.cached_property
    def _standing(self) -> Callable[[Any], tuple[float, str, bool]]:
        """The score, tier and gate as one compiled function of the facts (``_inline``).

        Built on first use, once per model: what ``decide()`` and tier crossings
        compute for every user they look at.
        """
        from ._inline import standing_function  # noqa: PLC0415 - loads with the compiler

        return standing_function(self)

    @functools.cached_property
    def _standing_variables(self) -> Callable[[Any], dict[str, Any]]:
        """The standing as the variables a moment's ``when`` reads (``score``, ``tier``...)."""
        from ._inline import standing_function  # noqa: PLC0415 - loads with the compiler

        return standing_function(self, variables=True)

    @functools.cached_property
    def _signal_runs(self) -> tuple[tuple[float, bool, Callable[[Any], Any]], ...]:
        """Each signal as ``(points, is_when, evaluate)`` of its ``when`` or its ``value``.

        Scoring reads these rather than each signal's fields: taken apart once
        per model, not once per signal per score. (The loader gives every signal
        exactly one of ``when`` and ``value``.)
        """
        return tuple(
            (s.points, True, s.when.evaluate)
            if s.when is not None
            else (s.points, False, cast("Compiled", s.value).evaluate)
            for s in self.signals
        )

    def rank(self, tier: str) -> int:
        """Return the position of ``tier`` from the bottom (0 for the lowest).

        Added in version 0.1.0.
        """
        return [name for _, name in self.tiers].index(tier)


class PQA(msgspec.Struct, frozen=True):
    """Account roll-up: a PQA has ``min_users`` users at ``tier`` or above in ``model``.

    Added in version 0.1.0.
    """

    model: str
    tier: str
    min_users: int


class MomentKind(msgspec.Struct, frozen=True):
    """A compiled moment kind. Windows and cooldowns are in microseconds."""

    name: str
    at: str
    """``"decide"`` or ``"gate"``."""
    when: Compiled | None
    priority: int
    cap: tuple[int, int] | None
    """(max, per): at most ``max`` of this kind in any ``per``."""
    cooldowns: tuple[tuple[str, int], ...]
    """(outcome, duration): not shown for ``duration`` after ``outcome``."""
    holdout: float
    """Percentage of users (0-100) who never see this kind."""
    content: Mapping[str, str]
    """``title``, ``body`` and ``cta``, with ``{placeholders}``."""


class CapGroup(msgspec.Struct, frozen=True):
    """At most ``max`` showings of ``kinds`` together in any ``per`` (µs)."""

    kinds: frozenset[str]
    max: int
    per: int


class Moments(msgspec.Struct, frozen=True, dict=True):
    """Every moment kind, highest priority first, and the caps they share."""

    model: str
    trial_end: str
    kinds: tuple[MomentKind, ...]
    caps: tuple[CapGroup, ...]
    conversion: Compiled | None = None
    """What counts as converting, for the lift report (``pqlsdk moments``)."""
    conversion_window: int = 14 * 86_400_000_000
    """How long (µs) after a user's first exposure to a kind a conversion counts."""

    def at(self, place: str) -> tuple[MomentKind, ...]:
        """Return the kinds shown at ``place`` (``"decide"`` or ``"gate"``), highest first."""
        return self._by_place.get(place, ())

    @functools.cached_property
    def _by_place(self) -> dict[str, tuple[MomentKind, ...]]:
        places: dict[str, list[MomentKind]] = {}
        for kind in self.kinds:
            places.setdefault(kind.at, []).append(kind)
        return {place: tuple(kinds) for place, kinds in places.items()}

    @property
    def horizon(self) -> int:
        """How far back (µs) any cap or cooldown looks: older history can be dropped."""
        spans = [kind.cap[1] for kind in self.kinds if kind.cap]
        spans += [span for kind in self.kinds for _, span in kind.cooldowns]
        spans += [group.per for group in self.caps]
        return max(spans, default=0)


class Entitlements(msgspec.Struct, frozen=True):
    """Plans and their features; ``plan`` gives a subject's plan."""

    plan: Compiled
    default_plan: str | None
    plans: Mapping[str, frozenset[str]]
    names: Mapping[str, str] = {}
    """Features' human names; a feature without one is called by its id."""

    def name(self, feature: str) -> str:
        """Return ``feature``'s human name (``"Single sign-on"``), or the id itself."""
        return self.names.get(feature, feature)


class RulesWarning(msgspec.Struct, frozen=True):
    """A line of a rules file that loads but is probably not what was meant.

    Comparing one undeclared trait with a number in one rule and a string in
    another makes one of them silently false for every user. ``str(warning)``
    reads like ``RulesError``, with ``warning:`` before the message. ``pqlsdk
    check`` prints warnings and still exits 0; a ``Client`` logs them to the
    ``pqlsdk`` logger when it loads the rules, and a strict one raises the first.

    Added in version 0.1.0.
    """

    message: str
    path: str
    line: int
    column: int
    text: str = ""
    width: int = 1

    def as_error(self) -> RulesError:
        """Return this warning as the ``RulesError`` a strict client raises.

        Added in version 0.1.0.
        """
        return RulesError(
            self.message,
            path=self.path,
            line=self.line,
            column=self.column,
            text=self.text,
            width=self.width,
        )

    def __str__(self) -> str:
        return located(
            f"warning: {self.message}",
            path=self.path,
            line=self.line,
            column=self.column,
            text=self.text,
            width=self.width,
        )


class Rules(msgspec.Struct, frozen=True):
    """A loaded rules file: its models, the primary one, and the account roll-up.

    Added in version 0.1.0.
    """

    models: Mapping[str, Model]
    primary: str
    pqa: PQA | None
    origin: str
    """Where the rules came from (a path, or a name given to ``loads``)."""
    moments: Moments | None = None
    entitlements: Entitlements | None = None
    warnings: tuple[RulesWarning, ...] = ()
    """What loaded but looks like a mistake (``RulesWarning``), in file order."""

    @property
    def aggregates(self) -> frozenset[Aggregate]:
        """Every aggregate any model needs: what the store must keep.

        Added in version 0.1.0.
        """
        needed = [model.aggregates for model in self.models.values()]
        if self.moments is not None:
            needed += [kind.when.aggregates for kind in self.moments.kinds if kind.when]
            if self.moments.conversion is not None:
                needed.append(self.moments.conversion.aggregates)
        if self.entitlements is not None:
            needed.append(self.entitlements.plan.aggregates)
        return frozenset().union(*needed)

    def model(self, name: str | None = None) -> Model:
        """Return model ``name``, or the primary model; ``ConfigError`` if unknown.

        Added in version 0.1.0.
        """
        key = self.primary if name is None else name
        try:
            return self.models[key]
        except KeyError:
            known = ", ".join(sorted(self.models))
            raise ConfigError(f"no model {key!r} in {self.origin} (models: {known})") from None
