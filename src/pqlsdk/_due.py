"""Which moment kinds are due for a user now: one generated function per place.

``decide()`` runs on page views, and most calls find nothing due. Answering that
through the general parts (read the state, check each kind's caps with
``blocked``, build a facts object, call each kind's compiled ``when``, which
asks the facts for the score, which calls the model's function) costs a call
and an object at each step: together more than the arithmetic. So the whole
check is written out as the text of one function per place (``decide`` or
``gate``) and rules version, from the same templates the model's own function
is made of (``rules._inline``), and compiled once: caps and cooldowns in one
pass over the history, each fact read into a local once, literals folded in.
``_moments.Chooser`` calls it, and claims a showing only when something is due.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from ._clock import micros
from ._scoring import facts_from
from .rules._inline import called, function, indented, standing_lines
from .rules._model import Model, MomentKind, Moments
from .stores import AccountState, Store, UserState

__all__ = ["Decision", "days_left", "decision_function"]

_DAY: Final = 86_400_000_000


def days_left(value: Any, now: int) -> int | None:
    """Whole days from ``now`` (µs) until the instant ``value`` (ISO text), rounded up."""
    if not isinstance(value, str):
        return None
    try:
        end = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if end.tzinfo is None:
        return None
    return math.ceil((micros(end) - now) / _DAY)


Decision = Callable[
    [Store, str, str | None, int],
    tuple[list[MomentKind], UserState | None, AccountState | None] | None,
]
"""A place's decision: ``(store, user_id, feature, now)`` to the due kinds and the states read."""

_VARIABLE: Final = re.compile(r"\bf\.variable\((_v\d+)\)")
_USES_FACTS: Final = re.compile(r"\bf\b")
_FACT: Final = re.compile(r"\bF_(\w+)")
_STANDING: Final = {"score": "_score", "tier": "_tier", "gate_passed": "_gate"}
_FACT_READS: Final = {
    "now": "now",
    "user_traits": "_NOTHING if user is None else user.traits",
    "user_aggregates": "_NOTHING if user is None else user.aggregates",
    "days_since_last_active": (
        "_inf if user is None or (_t := user.last_active) is None else (now - _t) / _DAYS"
    ),
    "days_since_first_seen": (
        "_inf if user is None or (_t := user.first_seen) is None else (now - _t) / _DAYS"
    ),
    "account_traits": "_NOTHING if account is None else account.traits",
    "account_aggregates": "_NOTHING if account is None else account.aggregates",
    "team_size": "1 if account is None else (_t if (_t := account.active_members) > 1 else 1)",
}
"""How the decision reads each fact ``facts_from`` gives, from the states themselves."""


def state_names() -> dict[str, Any]:
    """Return the names ``fact_reads``'s lines use, for a compiled function's own globals."""
    return {"_NOTHING": {}, "_inf": math.inf, "_DAYS": float(_DAY)}


def fact_reads(text: str, also: Iterable[str] = ()) -> list[str]:
    """Lines that read, once, each fact ``text`` uses (its ``F_`` locals), and ``also``.

    They read from the states ``user`` and ``account`` and the instant ``now``,
    as ``facts_from`` would give them, with no facts object.
    """
    facts = {*_FACT.findall(text), *also}
    return [f"F_{fact} = {_FACT_READS[fact]}" for fact in sorted(facts)]


def reads_facts_object(text: str) -> bool:
    """Tell whether ``text`` reads a facts object ``f`` (a closure without a template)."""
    return _USES_FACTS.search(text) is not None


def decision_function(moments: Moments, model: Model, place: str) -> Decision:
    """Write ``place``'s whole eligibility check as one function, and compile it.

    It does what ``blocked`` and each kind's ``when`` over ``facts_from`` do, in
    the same order, and gives the same answer: it reads the user, and if every
    kind is capped or cooling down stops there (one pass over the history for
    all caps, not one per kind and cap); else it reads the account, takes each
    fact the ``when``s read into a local once (no facts object), and evaluates
    them with the model's standing written in, computed only before the first
    ``when`` that reads ``score``, ``tier`` or ``gate_passed``. A shape without a
    template is called as its closure, on facts built as ``choose`` built them.
    It returns None when nothing is due, else the due kinds (highest priority
    first) and the states read, for ``claim``.
    """
    kinds = moments.at(place)
    names = state_names()
    lines = ["user = store.user(user_id)"]
    if not kinds:
        return function(f"<decision {place}>", [*lines, "return None"], names, **_SIGNATURE)
    lines += _open_lines(kinds, moments, names)
    lines += [
        f"if not ({' or '.join(f'_o{i}' for i in range(len(kinds)))}):",
        "    return None",
        "account = None if user is None or user.account_id is None"
        " else store.account(user.account_id)",
    ]
    variables: set[str] = set()
    whens = _whens(kinds, names, variables)
    standing = standing_lines(model, names) if variables & _STANDING.keys() else []
    lines += _reads(
        "\n".join([*(w for w in whens if w), *standing]), variables, moments, model, names
    )
    lines.append("_due = []")
    if standing:
        lines.append("_gate = None")
    for index, (kind, when) in enumerate(zip(kinds, whens, strict=True)):
        names[f"_K{index}"] = kind
        body = []
        if when is not None and any(local in when for local in _STANDING.values()):
            body += ["if _gate is None:", *indented(standing)]
        if when is None:
            body.append(f"_due.append(_K{index})")
        else:
            body += [f"if ({when}) is True:", f"    _due.append(_K{index})"]
        lines += [f"if _o{index}:", *indented(body)]
    lines += ["return (_due, user, account) if _due else None"]
    return function(f"<decision {place}>", lines, names, **_SIGNATURE)


def _whens(
    kinds: Sequence[MomentKind], names: dict[str, Any], variables: set[str]
) -> list[str | None]:
    """Each kind's ``when`` as text (None for none), reading variables from locals.

    The names each reads go into ``variables``, what each binds into ``names``.
    """
    whens: list[str | None] = []
    for kind in kinds:
        if kind.when is None:
            whens.append(None)
            continue
        found = kind.when.inline or called(kind.when.evaluate)
        local = functools.partial(_variable, bound=found.names, seen=variables)
        whens.append(_VARIABLE.sub(local, found.text))
        names.update(found.names)
    return whens


def _reads(
    reading: str, variables: set[str], moments: Moments, model: Model, names: dict[str, Any]
) -> list[str]:
    """Lines that read, once, each fact and variable the text ``reading`` uses.

    A closure without a template reads a facts object ``f``: it is then made
    as ``choose`` made it, with the same variables and the score derived on demand.
    """
    facts_object = reads_facts_object(reading)
    if facts_object:
        variables |= {"days_left", "plan"}
    lines = fact_reads(reading, ("user_traits",) if variables & {"days_left", "plan"} else ())
    if "days_left" in variables:
        names["_days_left"] = days_left
        lines.append(
            f"_d = None if (_te := F_user_traits.get({moments.trial_end!r})) is None"
            " else _days_left(_te, now)"
        )
    if "plan" in variables:
        lines.append("_plan = F_user_traits.get('plan')")
    if "account_id" in variables:
        lines.append("_account_id = None if account is None else account.account_id")
    if facts_object:
        names["_facts_from"] = facts_from
        names["_derive"] = model._standing_variables
        lines.append(
            "f = _facts_from(user, account, now, {'days_left': _d, 'feature': feature,"
            " 'plan': _plan, 'user_id': user_id}, _derive)"
        )
    return lines


_SIGNATURE: Final[dict[str, Any]] = {
    "parameters": "store, user_id, feature, now",
    "prologue": False,
}


def _variable(match: re.Match[str], bound: Mapping[str, Any], seen: set[str]) -> str:
    """Return the local a ``when`` reads variable ``match`` from (others stay on the facts)."""
    name = bound[match.group(1)]
    local = _STANDING.get(name) or _VARIABLE_LOCALS.get(name)
    if local is None:
        return match.group(0)
    seen.add(name)
    return local


_VARIABLE_LOCALS: Final = {
    "days_left": "_d",
    "plan": "_plan",
    "account_id": "_account_id",
    "user_id": "user_id",
    "feature": "feature",
}


def _open_lines(kinds: Sequence[MomentKind], moments: Moments, names: dict[str, Any]) -> list[str]:
    """Lines that set ``_o<i>``: kind ``i`` is not held back by a cap or a cooldown.

    What ``blocked`` computes for each kind, in one pass over the history:
    each kind's own count and cooldowns, and each shared cap's count.
    """
    per_kind: list[str] = []
    start: list[str] = []
    conditions: list[list[str]] = [[] for _ in kinds]
    for index, kind in enumerate(kinds):
        checks = []
        if kind.cap is not None:
            limit, per = kind.cap
            start.append(f"_c{index} = 0")
            checks.append(f"if now - _r.at < {per!r}: _c{index} += 1")
            conditions[index].append(f"_c{index} >= {limit!r}")
        if kind.cooldowns:
            start.append(f"_w{index} = False")
            conditions[index].append(f"_w{index}")
        for outcome, span in kind.cooldowns:
            checks.append(
                f"if (_at := _r.outcomes.get({outcome!r})) is not None and now - _at < {span!r}:"
            )
            checks.append(f"    _w{index} = True")
        if checks:
            test = "if" if not per_kind else "elif"
            per_kind += [f"{test} _k == {kind.name!r}:", *indented(checks)]
    shared = []
    for group_index, group in enumerate(moments.caps):
        members = [i for i, kind in enumerate(kinds) if kind.name in group.kinds]
        if not members:
            continue
        names[f"_G{group_index}"] = group.kinds
        start.append(f"_g{group_index} = 0")
        shared += [
            f"if _k in _G{group_index} and now - _r.at < {group.per!r} and not _r.held_out:",
            f"    _g{group_index} += 1",
        ]
        for i in members:
            conditions[i].append(f"_g{group_index} >= {group.max!r}")
    every = [f"_o{i} = True" for i in range(len(kinds))]
    if not start:
        return every
    return [
        "if user is not None and user.moments:",
        *indented(start),
        "    for _r in user.moments:",
        "        _k = _r.kind",
        *indented([*per_kind, *shared], 2),
        *indented(
            [
                f"_o{i} = not ({' or '.join(c)})" if c else f"_o{i} = True"
                for i, c in enumerate(conditions)
            ]
        ),
        "else:",
        *indented(every),
    ]
