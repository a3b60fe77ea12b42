"""Scoring: evaluate a compiled model against a subject's stored state, with reasons.

This is the one implementation of a score. The client's ``score()``, tier
crossing detection, ``pqlsdk score`` and replays all call ``score_subject``
with state from a store and an instant from a clock; nothing here reads history,
so a score costs the same for a user with ten events or a hundred thousand.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec

from ._clock import from_micros
from .rules._facts import Facts
from .rules._inline import is_number as _is_number
from .rules._inline import rounded as _rounded
from .rules._model import Model, Rules
from .stores import AccountState, UserState

if TYPE_CHECKING:  # the compiler loads only when rules are loaded
    from .rules._compiler import Compiled

__all__ = [
    "AccountScore",
    "Measured",
    "Reason",
    "Score",
    "facts_for",
    "facts_from",
    "plain",
    "reason_texts",
    "score_account",
    "score_subject",
    "show",
    "standing",
]

_DAY: Final = 86_400_000_000.0  # µs


class Reason(msgspec.Struct, frozen=True, gc=False):
    """Why a signal did or did not add points.

    Added in version 0.1.0.
    """

    signal: str
    label: str
    points: float
    """What the signal is worth (its weight, for a ``value`` signal)."""
    earned: float
    """What it added to the raw score, before the multiplier."""
    fired: bool
    observed: Any
    """The measured value (e.g. 4 pricing page views), or whether the rule held."""
    needs: str | None
    """The condition the measured value is held to (e.g. ``>= 3``), if any."""

    def __str__(self) -> str:
        shown = show(self.observed)
        condition = f", needs {self.needs}" if self.needs else ""
        return f"{self.label} = {shown}{condition} ({_signed(self.earned)})"


class Measured(msgspec.Struct, frozen=True, gc=False):
    """A gate's or a multiplier's expression, and what it compared at the score's instant.

    A gate that did not pass, or a multiplier of 0.5, begs "why?": ``values``
    answers with the measured side of each comparison with a constant in the
    expression (``days_since_last_active()`` of ``days_since_last_active() <= 7``)
    and its value, so a score can say ``x0.5: days_since_last_active() = 12``.

    Added in version 0.1.0.
    """

    expression: str
    """The expression as the rules file writes it."""
    values: tuple[tuple[str, Any], ...]
    """Each measured side, as written, and its value; in the order they appear."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output: the expression and each measured value.

        Added in version 0.1.0.
        """
        return {
            "expression": self.expression,
            "measured": {text: plain(value) for text, value in self.values},
        }


class Score(msgspec.Struct, frozen=True, gc=False):
    """A subject's score under one model at one instant, and everything behind it.

    Added in version 0.1.0.
    """

    subject: str
    """``"user"`` or ``"account"``."""
    id: str
    model: str
    score: float
    tier: str
    route: str
    gate_passed: bool
    multiplier: float
    raw: float
    """Sum of earned points before the multiplier."""
    reasons: tuple[Reason, ...]
    at: datetime
    gate_measured: Measured | None = None
    """What the gate compared, when scored with ``explain=True`` and the model has a gate."""
    multiplier_measured: Measured | None = None
    """What the multiplier compared, when scored with ``explain=True`` and the model has one."""

    def top_reasons(self, count: int = 3) -> tuple[Reason, ...]:
        """Return the signals that added the most points, best first.

        Added in version 0.1.0.
        """
        fired = sorted((r for r in self.reasons if r.earned), key=lambda r: -abs(r.earned))
        return tuple(fired[:count])

    def explain(self) -> str:
        """Answer "why this score?" for a human, one line per signal.

        Added in version 0.1.0.
        """
        head = f"{self.id}: {show(self.score)} {self.tier} -> {self.route}"
        if not self.gate_passed:
            head += " (gate not passed: score 0)"
        elif self.multiplier != 1:
            head += f" (raw {show(self.raw)} x {show(self.multiplier)})"
        measured = [f"  {text}" for text in (self.gate_text(), self.multiplier_text()) if text]
        return "\n".join(
            [head, *measured, *(f"  {'+' if r.fired else '-'} {r}" for r in self.reasons)]
        )

    def gate_text(self) -> str | None:
        """Say whether the gate passed and what it measured, if the score was explained.

        ``gate count("core_workflow_completed") >= 1: 0, not passed``; None for a
        score made without ``explain=True`` or a model without a gate.

        Added in version 0.1.0.
        """
        gate = self.gate_measured
        if gate is None:
            return None
        values = [show(value) for _, value in gate.values]
        if len(values) > 1:
            values = [f"{text} = {show(value)}" for text, value in gate.values]
        outcome = "passed" if self.gate_passed else "not passed"
        return f"gate {gate.expression}: {', '.join([*values, outcome])}"

    def multiplier_text(self) -> str | None:
        """Say what the multiplier was and why, if the score was explained.

        ``x0.5: days_since_last_active() = 12``; the expression itself when it
        compares nothing. None for a score made without ``explain=True`` or a model
        without a multiplier.

        Added in version 0.1.0.
        """
        multiplier = self.multiplier_measured
        if multiplier is None:
            return None
        because = ", ".join(f"{text} = {show(value)}" for text, value in multiplier.values)
        return f"x{show(self.multiplier)}: {because or multiplier.expression}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output: score, tier, route, gate, multiplier, and the reasons.

        ``gate`` and ``multiplier_reason`` are there for a score made with
        ``explain=True`` whose model has a gate or a multiplier.

        Added in version 0.1.0.
        """
        data = encodable(self)
        # The fields in their order (signal, label, points, earned, fired, observed, needs).
        data["reasons"] = [
            {**msgspec.structs.asdict(r), "observed": plain(r.observed)} for r in self.reasons
        ]
        return data


class AccountScore(msgspec.Struct, frozen=True):
    """An account's roll-up: PQA status from its members, and its own model's score.

    Added in version 0.1.0.
    """

    id: str
    pqa: bool
    pql_users: int
    """Members at the PQA tier or above."""
    members: Mapping[str, str]
    """Each current member's tier under the PQA model."""
    score: Score | None
    """The account model's score, when the rules define an account model."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output.

        Added in version 0.1.0.
        """
        data: dict[str, Any] = {
            "pqa": self.pqa,
            "pql_users": self.pql_users,
            "members": dict(self.members),
        }
        if self.score is not None:
            data |= self.score.to_dict()
        return data


_MISSING: Final = object()


_NOTHING: Final[Mapping[str, Any]] = {}
"""The traits and aggregates of a subject that is not there (never written to)."""


class _Facts:
    """What expressions see about one subject at one instant (``rules.Facts``).

    Made by ``facts_for`` only, which fills the slots itself: calling a class with
    an ``__init__`` costs about as much as a third of a score.
    """

    __slots__ = (
        "_derive",
        "_variables",
        "account_aggregates",
        "account_traits",
        "days_since_first_seen",
        "days_since_last_active",
        "now",
        "team_size",
        "user_aggregates",
        "user_traits",
    )

    now: int
    user_traits: Mapping[str, Any]
    user_aggregates: Mapping[str, Any]
    account_traits: Mapping[str, Any]
    account_aggregates: Mapping[str, Any]
    days_since_last_active: float
    days_since_first_seen: float
    team_size: int
    _variables: dict[str, Any]
    _derive: Callable[[_Facts], dict[str, Any]] | None

    def variable(self, name: str) -> Any:
        found = self._variables.get(name, _MISSING)
        if found is not _MISSING:
            return found
        return None if self._derive is None else self.variables().get(name)

    def variables(self) -> dict[str, Any]:
        """Every variable, the derived ones (costly: the score) computed on first need."""
        if self._derive is not None:
            derive, self._derive = self._derive, None
            self._variables.update(derive(self))
        return self._variables

    def bind(self, **values: Any) -> None:
        """Make ``values`` visible to expressions (the score, for routing rules)."""
        self._variables.update(values)


def score_subject(
    model: Model,
    subject_id: str,
    user: UserState | None,
    account: AccountState | None,
    now: int,
    *,
    explain: bool = False,
) -> Score:
    """Score one user (or, for an account model, one account) at ``now`` (µs).

    ``explain`` also measures what the gate and the multiplier compared
    (``Score.gate_measured``, ``multiplier_measured``): a few more expressions
    to evaluate, so only for scores that are shown (``pqlsdk score``), not on
    the request path.
    """
    facts = _facts(model, subject_id, user, account, now)
    gate_passed, earned, measured, raw, multiplier, total = _points(model, facts)
    reasons = []
    for signal, points, value in zip(model.signals, earned, measured, strict=True):
        if signal.when is not None:
            fired = value is True
            observed = fired if signal.observe is None else signal.observe.evaluate(facts)
        else:
            fired, observed = bool(points), value
        reasons.append(
            Reason(signal.name, signal.label, signal.points, points, fired, observed, signal.needs)
        )
    tier = model.tier_for(total)
    score = Score(
        subject=model.subject,
        id=subject_id,
        model=model.name,
        score=total,
        tier=tier,
        route=_route(model, facts, total, tier, gate_passed),
        gate_passed=gate_passed,
        multiplier=multiplier,
        raw=_rounded(raw),
        reasons=tuple(reasons),
        at=from_micros(now),
    )
    if not explain:
        return score
    return msgspec.structs.replace(
        score,
        gate_measured=_measure(model.gate, model.subject, facts),
        multiplier_measured=_measure(model.multiplier, model.subject, facts),
    )


def _measure(expression: Compiled | None, scope: str, facts: _Facts) -> Measured | None:
    """Evaluate what ``expression`` compares, for a score that explains itself."""
    if expression is None:
        return None
    measures = _measured_sides(expression.source, scope)
    return Measured(
        expression.source, tuple((text, part.evaluate(facts)) for text, part in measures)
    )


@functools.lru_cache(maxsize=256)
def _measured_sides(source: str, scope: str) -> tuple[tuple[str, Compiled], ...]:
    """Compile the measured side of each ``X op constant`` in ``source``, in order.

    Found the way a signal's ``observe`` is (``split_comparison``), at every
    comparison of the expression rather than at its top only: a multiplier is
    usually a chain of ``a if X <= 7 else b if X <= 30 else c``. Each side is
    compiled once per rules source, on first need.
    """
    # The compiler and parser load with the rules; they are loaded by now.
    from .rules._compiler import compile_expression  # noqa: PLC0415
    from .rules._loader import split_comparison  # noqa: PLC0415
    from .rules._parser import Binary, Call, Conditional, ListLiteral, Unary, parse  # noqa: PLC0415

    found: dict[str, int] = {}
    pending = [parse(source)]
    while pending:
        node = pending.pop()
        if isinstance(node, Binary):
            split = split_comparison(source[node.offset : node.offset + node.length])
            if split is not None:
                found.setdefault(split[0], node.offset)
            pending += (node.left, node.right)
        elif isinstance(node, Conditional):
            pending += (node.then, node.condition, node.otherwise)
        elif isinstance(node, Unary):
            pending.append(node.operand)
        elif isinstance(node, ListLiteral):
            pending += node.items
        elif isinstance(node, Call):
            pending += (*node.args, *(keyword.value for keyword in node.keywords))
    ordered = sorted(found, key=found.__getitem__)
    return tuple(
        (text, compile_expression(text, scope="user" if scope == "user" else "account"))
        for text in ordered
    )


def standing(
    model: Model,
    subject_id: str,
    user: UserState | None,
    account: AccountState | None,
    now: int,
) -> tuple[float, str, bool]:
    """Return the score, tier and gate ``score_subject`` would give: no reasons, no route.

    Tier crossings are checked after every recorded message and moments read the
    tier on every decision; this keeps both to the expressions the score needs,
    and to the gate alone for a subject that has not passed it (most of them),
    in one compiled call per model (``rules._inline``). The model's expressions
    read no variables, so a decision's facts serve too (``Model._standing``).
    """
    return model._standing(_facts(model, subject_id, user, account, now))


def _facts(
    model: Model, subject_id: str, user: UserState | None, account: AccountState | None, now: int
) -> _Facts:
    user_id = subject_id if model.subject == "user" else None
    return facts_from(user, account, now, {"user_id": user_id})


def facts_for(
    user: UserState | None,
    account: AccountState | None,
    now: int,
    *,
    derive: Callable[[_Facts], dict[str, Any]] | None = None,
    **variables: Any,
) -> _Facts:
    """Facts about a subject at ``now`` (µs), with ``variables`` visible to expressions.

    ``derive`` supplies more variables from the facts, computed only if an
    expression reads a name ``variables`` lacks (the score, for a moment's ``when``).
    """
    return facts_from(user, account, now, variables, derive)


def facts_from(
    user: UserState | None,
    account: AccountState | None,
    now: int,
    variables: dict[str, Any],
    derive: Callable[[_Facts], dict[str, Any]] | None = None,
) -> _Facts:
    """``facts_for`` with the variables in a dict the facts may keep (and add to)."""
    variables["account_id"] = None if account is None else account.account_id
    facts = _new(_Facts)
    facts.now = now
    facts._variables = variables
    facts._derive = derive
    # Read once here, so that each expression's read is one attribute and one get.
    if user is None:
        facts.user_traits = facts.user_aggregates = _NOTHING
        facts.days_since_last_active = facts.days_since_first_seen = math.inf
    else:
        facts.user_traits, facts.user_aggregates = user.traits, user.aggregates
        last, first = user.last_active, user.first_seen
        facts.days_since_last_active = math.inf if last is None else (now - last) / _DAY
        facts.days_since_first_seen = math.inf if first is None else (now - first) / _DAY
    if account is None:
        facts.account_traits = facts.account_aggregates = _NOTHING
        facts.team_size = 1
    else:
        facts.account_traits, facts.account_aggregates = account.traits, account.aggregates
        members = account.active_members
        facts.team_size = members if members > 1 else 1
    return facts


_new = object.__new__


def _points(
    model: Model, facts: Facts, *, gate_passed: bool | None = None
) -> tuple[bool, list[float], list[Any], float, float, float]:
    """Evaluate the gate (unless the caller did), signals and multiplier.

    Returns whether the gate passed, each signal's earned points and evaluated
    ``when`` or ``value``, the raw sum, the multiplier and the total.
    """
    if gate_passed is None:
        gate_passed = model.gate is None or model.gate.evaluate(facts) is True
    earned: list[float] = []
    measured: list[Any] = []
    for points, when, run in model._signal_runs:
        measured.append(held := run(facts))
        if when:
            earned.append(points if held is True else 0.0)
        else:
            earned.append(points * held if _is_number(held) else 0.0)
    raw = sum(earned)
    multiplier = model.multiplier.evaluate(facts) if model.multiplier is not None else 1.0
    finite = math.isfinite(multiplier) if type(multiplier) is float else _is_number(multiplier)
    if not finite:
        multiplier = 1.0  # a multiplier that cannot be computed leaves the score as is
    total = _rounded(raw * multiplier) + 0.0 if gate_passed else 0.0
    return gate_passed, earned, measured, raw, float(multiplier), total


def _route(model: Model, facts: _Facts, total: float, tier: str, gate_passed: bool) -> str:
    """Route a scored subject: do-not-contact first, then the first matching rule."""
    facts.bind(score=total, tier=tier, gate_passed=gate_passed)
    if model.do_not_contact is not None and model.do_not_contact.evaluate(facts) is True:
        return "do_not_contact"
    return next(
        (r.route for r in model.routes if r.when.evaluate(facts) is True), model.default_route
    )


def score_account(
    rules: Rules,
    account: AccountState | None,
    account_id: str,
    members: Mapping[str, UserState | None],
    now: int,
    *,
    model: str | None = None,
    explain: bool = False,
) -> AccountScore:
    """Roll an account up: PQA status from ``members``' tiers, plus its own model's score.

    ``explain`` is passed on to the account model's ``score_subject``.
    """
    tiers: dict[str, str] = {}
    pql_users = 0
    pqa = rules.pqa
    if pqa is not None:
        user_model = rules.model(pqa.model)
        bar = user_model.rank(pqa.tier)
        for user_id, user in members.items():
            tier = standing(user_model, user_id, user, account, now)[1]
            tiers[user_id] = tier
            pql_users += user_model.rank(tier) >= bar
    account_model = _account_model(rules, model)
    own = None
    if account_model is not None:
        own = score_subject(account_model, account_id, None, account, now, explain=explain)
    return AccountScore(
        id=account_id,
        pqa=pqa is not None and pql_users >= pqa.min_users,
        pql_users=pql_users,
        members=tiers,
        score=own,
    )


def _account_model(rules: Rules, name: str | None) -> Model | None:
    if name is not None:
        return rules.model(name)
    return next((m for m in rules.models.values() if m.subject == "account"), None)


def show(value: Any) -> str:
    """Write a value the way reasons read: 3 not 3.0, yes/no, none."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "none" if value is None else str(value)


def reason_texts(reasons: Iterable[Mapping[str, Any]], count: int = 3) -> list[str]:
    """Return a record's fired reasons that earned the most, best first, as ``Reason`` text.

    For reasons that travelled as JSON (a crossing record): the feed and the alerts
    read exactly like ``Score.explain()``.
    """
    fired = sorted((r for r in reasons if r.get("fired")), key=lambda r: -abs(r.get("earned") or 0))
    return [
        str(
            Reason(
                signal=r.get("signal", ""),
                label=r.get("label") or r.get("signal", ""),
                points=r.get("points", 0),
                earned=r.get("earned") or 0,
                fired=True,
                observed=r.get("observed"),
                needs=r.get("needs"),
            )
        )
        for r in fired[:count]
    ]


def _signed(value: float) -> str:
    return f"+{show(value)}" if value >= 0 else show(value)


def encodable(score: Score) -> dict[str, Any]:
    """Return ``to_dict()`` with the reasons as structs: msgspec writes them alike, cheaper."""
    data: dict[str, Any] = {
        "score": score.score,
        "tier": score.tier,
        "route": score.route,
        "gate_passed": score.gate_passed,
        "multiplier": score.multiplier,
        "raw": score.raw,
    }
    if score.gate_measured is not None:
        data["gate"] = {"passed": score.gate_passed, **score.gate_measured.to_dict()}
    if score.multiplier_measured is not None:
        data["multiplier_reason"] = score.multiplier_measured.to_dict()
    data["reasons"] = score.reasons
    return data


def plain(value: Any) -> Any:
    """Make an observed value JSON-safe (infinity becomes None)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
