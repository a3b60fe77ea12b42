"""The replay's findings as terminal text: aligned tables, two models side by side."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, TextIO

from .._scoring import show

__all__ = ["write_text"]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _block(title: str, table: list[dict[str, Any]]) -> list[str]:
    """One table as lines: band, subjects and the conversion columns."""
    width = max(len(title), *(len(row["band"]) for row in table))
    columns = f"{'n':>7} {'conv':>6} {'rate':>6} {'95% CI':>13} {'days':>6} {'revenue':>10}"
    lines = [f"{title:<{width}}  {columns}"]
    for row in table:
        ci = row["ci95"]
        interval = "-" if ci is None else f"{_percent(ci[0])}-{_percent(ci[1])}"
        days = (
            "-" if row["median_days_to_convert"] is None else f"{row['median_days_to_convert']:.1f}"
        )
        revenue = "-" if row["revenue"] is None else show(round(row["revenue"], 2))
        lines.append(
            f"{row['band']:<{width}}  {row['subjects']:>7} {row['converted']:>6} "
            f"{_percent(row['rate']):>6} {interval:>13} {days:>6} {revenue:>10}"
        )
    return lines


def _counts(title: str, tables: dict[str, Any], grouping: str) -> list[str]:
    """Users and accounts per band, one table: the view without outcomes."""
    users = tables.get("user", {}).get(grouping, [])
    accounts = {row["band"]: row["subjects"] for row in tables.get("account", {}).get(grouping, [])}
    width = max(len(title), *(len(row["band"]) for row in users))
    lines = [f"{title:<{width}}  {'users':>8} {'accounts':>8}"]
    lines += [
        f"{row['band']:<{width}}  {row['subjects']:>8} {accounts.get(row['band'], 0):>8}"
        for row in users
    ]
    return lines


def _name(table: dict[str, Any], data: dict[str, Any]) -> str:
    """Name a table's model, with its rules file when two files are compared."""
    if len(data["tables"]) == 1:
        return str(table["model"])
    return f"{table['rules']}: {table['model']}"


def _side_by_side(blocks: Sequence[list[str]]) -> list[str]:
    widths = [max(len(line) for line in block) for block in blocks]
    return [
        "   |   ".join(f"{line:<{w}}" for line, w in zip(lines, widths, strict=True)).rstrip()
        for lines in itertools.zip_longest(*blocks, fillvalue="")
    ]


def write_text(data: dict[str, Any], out: TextIO) -> None:
    """Write the summary ``data`` as the terminal report."""
    head = (
        f"Replayed {data['events']:,} events: {data['users']:,} users, "
        f"{data['accounts']:,} accounts, evaluated at {data['at']}"
    )
    out.write(head + "\n")
    if data["skipped"] or data["duplicates"] or data["late"]:
        out.write(
            f"skipped {sum(data['skipped'].values())} invalid, {data['duplicates']} repeated, "
            f"{data['late']} out of time order (folded late)\n"
        )
    outcomes = data["outcomes"]
    if outcomes:
        out.write(data["look_ahead_rule"] + "\n")
        if data["unmatched_outcomes"]:
            out.write(f"{data['unmatched_outcomes']} outcome(s) name no one in the events\n")
    kinds = [k for k in ("user", "account") if k in data["tables"][0]]
    for grouping in ("tiers", "bands") if kinds else ():
        if not outcomes:  # counts only: users and accounts in one table
            blocks = [
                _counts(f"by {grouping[:-1]} ({_name(t, data)})", t, grouping)
                for t in data["tables"]
            ]
            out.write("\n" + "\n".join(_side_by_side(blocks)) + "\n")
            continue
        for kind in kinds:
            blocks = [
                _block(f"{kind}s by {grouping[:-1]} ({_name(t, data)})", t[kind][grouping])
                for t in data["tables"]
            ]
            out.write("\n" + "\n".join(_side_by_side(blocks)) + "\n")
    if outcomes:
        _write_calibration(data["calibration"], out)
    if "tier_changes" in data:
        _write_changes(data["tier_changes"], out)
    _write_loggers(data["single_loggers"], out)
    if data["timeline"]:
        out.write("\nTiers over time (users; changed = moved since the previous line)\n")
        for point in data["timeline"]:
            tiers = "  ".join(f"{name} {count}" for name, count in point["tiers"].items())
            out.write(f"  {point['at']}  {tiers}  changed {point['changed']}\n")


def _write_calibration(calibration: dict[str, Any], out: TextIO) -> None:
    out.write(f"\nSuggested thresholds for tier {calibration['tier']!r}")
    out.write(f" ({calibration['subject']}s):\n")
    if not calibration["suggestions"]:
        out.write("  none: no band reaches the target rate and nothing separates converters\n")
    for s in calibration["suggestions"]:
        if s["method"] == "target_rate":
            why = (
                f"lowest band converting at >= {_percent(s['target_rate'])} "
                f"({_percent(s['band_rate'])})"
            )
        else:
            why = (
                f"best separation, Youden's J {s['j']:.3f} (sensitivity "
                f"{_percent(s['sensitivity'])}, specificity {_percent(s['specificity'])})"
            )
        out.write(
            f"  {show(s['current'])} -> {show(s['threshold'])}: {why}; moves "
            f"{s['moves_up']} up, {s['moves_down']} down\n"
        )


def _write_changes(changes: list[dict[str, Any]], out: TextIO) -> None:
    out.write(f"\nUsers whose tier differs: {len(changes)}\n")
    for change in changes:
        out.write(f"  {change['user']}\n")
        for side in change["under"]:
            out.write(f"    {side['rules']}: {_explained(side)}\n")


def _explained(side: dict[str, Any]) -> str:
    """Write a score as ``Score.explain()`` heads it: gate, multiplier, then the reasons."""
    head = f"{show(side['score'])} {side['tier']}"
    if not side["gate_passed"]:
        head += " (gate not passed: score 0)"
    elif side["multiplier"] != 1:
        head += f" (raw {show(side['raw'])} x {show(side['multiplier'])})"
    return f"{head}: {'; '.join(side['reasons']) or 'no signal fired'}"


def _write_loggers(loggers: dict[str, Any], out: TextIO) -> None:
    users = loggers["users"]
    out.write(
        f"\nSingle loggers (>= {_percent(loggers['share'])} of events on one UTC day, "
        f"tier {loggers['tier']} or above): {len(users)}\n"
    )
    for entry in users:
        line = (
            f"  {entry['user']}: {show(entry['score'])} {entry['tier']}, "
            f"{entry['busiest_day_tracks']} of {entry['tracks']} events on one day"
        )
        sustained = entry.get("sustained")
        if sustained is not None:
            line += f"; {sustained['model']}: {show(sustained['score'])} {sustained['tier']}"
        out.write(line + "\n")
