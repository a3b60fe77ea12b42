"""The replay's findings as plain data: what ``--json`` prints and the table and report draw."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from .._clock import from_micros
from ..rules._model import Model
from ._bands import Member, rows
from ._calibrate import Suggestion, best_separation, moves, target_threshold
from ._compare import tier_changes
from ._loggers import single_loggers
from ._run import Replay, Standing

__all__ = ["LOOK_AHEAD_RULE", "iso", "summarize"]

LOOK_AHEAD_RULE: Final = (
    "No look-ahead: a converter's band is taken from the events strictly before its "
    "conversion time (events folded in time order), scored at that time; everyone else "
    "is placed at the evaluation time."
)
"""Printed with every conversion table (text, JSON, HTML): the rates are not hindsight.

Added in version 0.1.0.
"""


def iso(at: int) -> str:
    """Write an instant (µs) as ISO-8601 UTC with a ``Z``."""
    return from_micros(at).isoformat().replace("+00:00", "Z")


def summarize(
    replay: Replay,
    *,
    origins: list[str],
    outcomes: bool,
    target_rate: float,
    tier: str,
    sustained: Model | None,
    share: float,
) -> dict[str, Any]:
    """Gather every table, suggestion and list of a replay into JSON-ready data.

    Added in version 0.1.0.
    """
    kinds = [k for k in ("user", "account") if any(True for _ in _of(replay, k))]
    data: dict[str, Any] = {
        "rules": origins,
        "models": [m.name for m in replay.models],
        "at": iso(replay.at),
        "events": replay.events,
        "users": sum(1 for key in replay.standings if key[0] == "user"),
        "accounts": sum(1 for key in replay.standings if key[0] == "account"),
        "skipped": replay.skipped,
        "duplicates": replay.duplicates,
        "late": replay.late,
        "outcomes": outcomes,
        "tables": [
            _tables(replay, index, kinds) | {"rules": Path(origins[index]).name}
            for index in range(len(replay.models))
        ],
    }
    if outcomes:
        data["look_ahead_rule"] = LOOK_AHEAD_RULE
        data["unmatched_outcomes"] = replay.unmatched
        data["calibration"] = _calibration(replay, target_rate, tier)
    if len(replay.models) > 1:
        names = [Path(origin).name for origin in origins]
        data["tier_changes"] = [
            change
            | {
                "under": [
                    side | {"rules": name}
                    for side, name in zip(change["under"], names, strict=True)
                ]
            }
            for change in tier_changes(replay)
        ]
    data["single_loggers"] = {
        "share": share,
        "tier": tier,
        "sustained_model": None if sustained is None else sustained.name,
        "users": single_loggers(replay, share=share, tier=tier, sustained=sustained),
    }
    data["scores"] = {
        f"{kind}s": {
            s.id: {
                "score": s.scores[0],
                "tier": s.tiers[0],
                "at": iso(s.at),
                "converted": None if s.conversion is None else iso(s.conversion.at),
            }
            for s in sorted(_of(replay, kind), key=lambda s: s.id)
        }
        for kind in ("user", "account")
    }
    data["timeline"] = [
        {"at": iso(c.at), "tiers": c.tiers, "changed": c.changed} for c in replay.timeline
    ]
    return data


def _of(replay: Replay, kind: str) -> Iterator[Standing]:
    return (s for key, s in replay.standings.items() if key[0] == kind)


def _tables(replay: Replay, index: int, kinds: list[str]) -> dict[str, Any]:
    tiers, bands = replay.bands[index]
    out: dict[str, Any] = {"model": replay.models[index].name}
    for kind in kinds:
        out[kind] = {
            name: [row.to_dict() for row in rows(grouping, _members(replay, kind, index, position))]
            for position, (name, grouping) in enumerate((("tiers", tiers), ("bands", bands)))
        }
    return out


def _members(replay: Replay, kind: str, index: int, position: int) -> Iterator[Member]:
    grouping = replay.bands[index][position]
    for standing in _of(replay, kind):
        conversion = standing.conversion
        delay = value = None
        if conversion is not None:
            delay = max(conversion.at - standing.entered[index][position], 0)
            value = conversion.value
        yield grouping.index(standing.scores[index]), delay, value


def _calibration(replay: Replay, target_rate: float, tier: str) -> dict[str, Any]:
    """Suggest thresholds for ``tier`` from the first model's outcomes."""
    model = replay.models[0]
    kind = "user" if any(s.conversion for s in _of(replay, "user")) else "account"
    scored = [(s.scores[0], s.conversion is not None) for s in _of(replay, kind)]
    scores = [score for score, _ in scored]
    current = next(low for low, name in model.tiers if name == tier)
    suggestions: list[Suggestion] = []
    band_rows = rows(replay.bands[0][1], _members(replay, kind, 0, 1))
    found = target_threshold(band_rows, target_rate)
    if found is not None:
        threshold, rate = found
        suggestions.append(
            Suggestion(
                "target_rate",
                tier,
                current,
                threshold,
                {"target_rate": target_rate, "band_rate": rate},
                moves(model, tier, threshold, scores),
            )
        )
    converters = sum(converted for _, converted in scored)
    if 0 < converters < len(scored):
        cut, j, sensitivity, specificity = best_separation(scored)
        suggestions.append(
            Suggestion(
                "youden",
                tier,
                current,
                cut,
                {"j": j, "sensitivity": sensitivity, "specificity": specificity},
                moves(model, tier, cut, scores),
            )
        )
    return {
        "subject": kind,
        "tier": tier,
        "target_rate": target_rate,
        "suggestions": [s.to_dict() for s in suggestions],
    }
