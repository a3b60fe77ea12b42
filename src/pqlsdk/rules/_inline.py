"""Inline source: a model's gate, signals and multiplier written out as one function.

The compiler turns each expression into a tree of small closures. Scoring a user
calls a dozen of them per model (one per signal, more for a multiplier chain),
and on ``decide()``'s path each call is a good share of the cost. So beside its
closure the compiler gives most shapes an ``Inline``: the same computation as
Python expression text, with what it binds (keys, literals, closures) by name.
``standing_function`` joins a model's pieces into the text of one function,
with the facts it reads taken into locals once, and compiles it once per model;
a moment's decision (``_due``) joins the same lines with each kind's ``when``.

Each template is a transcription of the closure it stands beside, operator for
operator and in the same order of evaluation, so the two give identical values;
a shape without a template is called as its closure from the joined text. The
closures stay the reference: everything else (reasons, routes, claims) calls them.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeGuard

if TYPE_CHECKING:
    from ._model import Model

__all__ = [
    "Inline",
    "bound",
    "called",
    "folded",
    "function",
    "indented",
    "is_number",
    "rounded",
    "standing_function",
    "standing_lines",
    "template",
]

_DIGITS: Final = 9  # scores are rounded so that 35 * 0.1 is 3.5, not 3.5000000000000004
_FACT: Final = re.compile(r"\bF_(\w+)")
_PLACE: Final = re.compile(r"\{(\w+)\}")
_LITERALS: Final = frozenset({int, float, str, bool, type(None)})
_serial = itertools.count()


class Inline(NamedTuple):
    """An expression's computation as Python text over ``f`` (the facts), and its names.

    The text reads a facts attribute ``x`` as the local ``F_x`` (read once per
    function) and every bound value by a name unique to the process, so texts
    join without clashes.
    """

    text: str
    names: Mapping[str, Any]


def _fresh() -> str:
    return f"_v{next(_serial)}"


def bound(value: object) -> Inline:
    """Bind a value known at compile time (a literal, a key, a set of items) to a name."""
    name = _fresh()
    return Inline(name, {name: value})


def called(run: Callable[[Any], Any]) -> Inline:
    """Call a closure that has no template on the facts."""
    name = _fresh()
    return Inline(f"{name}(f)", {name: run})


def template(pattern: str, **parts: Inline | object) -> Inline:
    """Fill ``pattern``'s ``{name}`` places: an ``Inline`` in parentheses, else bound.

    A place named ``{t...}`` that no part fills is a fresh local (a walrus target).
    """
    names: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for place in set(_PLACE.findall(pattern)):
        if place not in parts and place.startswith("t"):
            texts[place] = _fresh()
            continue
        part = parts[place]
        inline = part if isinstance(part, Inline) else bound(part)
        texts[place] = inline.text if inline.text.isidentifier() else f"({inline.text})"
        names.update(inline.names)
    return Inline(_PLACE.sub(lambda match: texts[match.group(1)], pattern), names)


def rounded(value: float) -> float:
    """``round(value, 9)``: a whole float is its own rounding, and skips a decimal conversion."""
    if type(value) is float and value.is_integer():
        return value
    return round(value, _DIGITS)


def is_number(value: Any) -> TypeGuard[float]:
    """Whether ``value`` is a finite int or float (not a bool): what points multiply."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def standing_function(model: Model, *, variables: bool = False) -> Callable[[Any], Any]:
    """Compile ``model``'s score, tier and gate into one function of the facts.

    Computes exactly what evaluating the gate, then each signal and the
    multiplier in turn, gives (``_scoring._points``): the same values, summed
    by ``sum`` over the same sequence, rounded the same way. It returns them as
    a tuple, or with ``variables`` as the dict a moment's ``when`` reads them from.
    """
    names: dict[str, Any] = {}
    lines = standing_lines(model, names)
    if variables:
        lines.append('return {"score": _score, "tier": _tier, "gate_passed": _gate}')
    else:
        lines.append("return _score, _tier, _gate")
    return function(f"<model {model.name}>", lines, names)


def standing_lines(model: Model, names: dict[str, Any], tag: str = "") -> list[str]:
    """Lines that set the locals ``_score``, ``_tier`` and ``_gate`` to ``model``'s standing.

    What they bind goes into ``names``. They read the facts as ``F_`` locals and
    calls without a template as ``name(f)``, so they can be part of a larger
    function (a moment's decision, ``_moments``) as well as the model's own. The
    names they bind for this model alone end with ``tag``: several models' lines
    then join into one function (the tier checks, ``_tiers``).
    """
    thresholds, tiers, low = f"_thresholds{tag}", f"_tiers{tag}", f"_low{tag}"
    names.update(
        {
            "_sum": sum,
            "_is_number": is_number,
            "_isfinite": math.isfinite,
            "_bisect": bisect.bisect_right,
            thresholds: tuple(threshold for threshold, _ in model.tiers),
            # tier_for: the tier below the insertion point, or the lowest one.
            tiers: tuple(model.tiers[max(i - 1, 0)][1] for i in range(len(model.tiers) + 1)),
            "_round": round,
            low: model.tier_for(0.0),
        }
    )

    def inline(expression: Any) -> str:
        found = expression.inline or called(expression.evaluate)
        names.update(found.names)
        return f"({found.text})"

    lines: list[str] = []
    earned = []
    for index, signal in enumerate(model.signals):
        points, result = f"_p{index}{tag}", f"_e{index}"
        names[points] = signal.points
        if signal.when is not None:
            lines.append(f"{result} = {points} if {inline(signal.when)} is True else 0.0")
        else:
            held = inline(signal.value)
            lines.append(f"{result} = {points} * _h if _is_number(_h := {held}) else 0.0")
        earned.append(result)
    lines.append(f"_raw = _sum(({''.join(f'{e}, ' for e in earned)}))")
    if model.multiplier is None:  # the check below, made now: 1.0 is a finite number
        lines.append("_total = _raw * 1.0")
    else:
        lines += [
            f"_m = {inline(model.multiplier)}",
            "if not (_isfinite(_m) if type(_m) is float else _is_number(_m)): _m = 1.0",
            "_total = _raw * _m",
        ]
    lines += [  # rounded() written out: one call fewer
        "if not (type(_total) is float and _total.is_integer()):",
        f"    _total = _round(_total, {_DIGITS})",
        "_score = _total + 0.0",
        f"_tier = {tiers}[_bisect({thresholds}, _score)]",
        "_gate = True",
    ]
    if model.gate is None:
        return lines
    return [
        f"if {inline(model.gate)} is not True:",
        f"    _score, _tier, _gate = 0.0, {low}, False",
        "else:",
        *indented(lines),
    ]


def indented(lines: list[str], depth: int = 1) -> list[str]:
    """``lines`` as the body of a block ``depth`` levels in."""
    return [" " * 4 * depth + line for line in lines]


def function(
    origin: str,
    lines: list[str],
    names: Mapping[str, Any],
    *,
    parameters: str = "f",
    prologue: bool = True,
) -> Callable[..., Any]:
    """Compile ``lines`` as the body of ``run(parameters)``, with ``names`` bound.

    With ``prologue``, each facts attribute the lines read (``F_x``) is read once
    up front from ``f``; without it, the lines set their ``F_`` locals themselves.
    A bound literal (a number, a string, a bool, None) is written into the text
    as a constant: one less closure cell to read, and the text says what it does.
    """
    names, lines = folded(names, lines)
    reads = sorted(set(_FACT.findall("\n".join(lines)))) if prologue else []
    head = [f"F_{attribute} = f.{attribute}" for attribute in reads]
    text = "\n".join(
        [
            f"def _make({', '.join(names)}):",
            f"    def run({parameters}):",
            *indented([*head, *lines], 2),
            "    return run",
        ]
    )
    namespace: dict[str, Any] = {}
    exec(compile(text, origin, "exec"), namespace)  # noqa: S102 - text made from templates only
    made: Callable[..., Any] = namespace["_make"](**names)
    return made


def folded(names: Mapping[str, Any], lines: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Write the bound literals of ``names`` into ``lines``; return the names left bound.

    A literal's ``repr`` reads back as the same value of the same type; a float
    that is not finite has no literal and stays bound. Each is parenthesised,
    so that ``-1`` or ``2.5`` can stand wherever the name stood.
    """
    kept: dict[str, Any] = {}
    constants: dict[str, str] = {}
    for name, value in names.items():
        if type(value) in _LITERALS and (type(value) is not float or math.isfinite(value)):
            constants[name] = f"({value!r})"
        else:
            kept[name] = value
    if not constants:
        return kept, lines
    pattern = re.compile(r"\b(" + "|".join(sorted(constants, key=len, reverse=True)) + r")\b")
    return kept, [pattern.sub(lambda match: constants[match.group(1)], line) for line in lines]
