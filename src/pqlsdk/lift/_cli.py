"""``pqlsdk moments``: each moment kind's funnel and lift against its holdout.

``pqlsdk.cli`` calls ``add_parser`` to register the subcommand and ``run`` to
execute it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

import msgspec

from .._clock import from_micros
from .._history import History
from ..rules import load
from ._funnel import KindReport, MomentsReport, measure
from ._sources import ordered

__all__ = ["add_parser", "run", "write_text"]

_DESCRIPTION = """\
Do the moments work? For each moment kind: the users shown it and held out of
it, who clicked and dismissed, who converted (the rules file's [moments]
conversion) within the window after their first showing or held-out decision,
each arm's rate, the lift with its 95 % interval, and a verdict. SOURCE is a
history file (as for pqlsdk score) or the collector's storage: a postgresql://
or sqlite:// URL, or the collector's SQLite file. docs/moments.md says how
users are attributed and how the interval is computed.
"""

_EXAMPLES = """\
examples:
  pqlsdk moments examples/rules/playbook.toml collector.db
  pqlsdk moments rules.toml history.jsonl --now 2026-03-31T00:00:00Z --json
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``moments`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "moments",
        help="each moment's funnel and lift against its holdout",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("rules", type=Path, help="the rules file, with [moments] conversion")
    parser.add_argument("source", help="a history file, or the collector's storage URL or file")
    parser.add_argument(
        "--now", help="read messages up to this instant, ISO-8601 (default: the latest message)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    """Execute ``pqlsdk moments``; return the exit status."""
    from .._score_cli import clock_for  # noqa: PLC0415 - the CLI's own helpers
    from .._score_table import report_invalid  # noqa: PLC0415

    rules = load(args.rules)
    now = None if args.now is None else clock_for(args.now, None)[0]
    history = History()
    with ordered(args.source, history) as pairs:
        report = measure(rules, pairs, now=now, history=history)
    report_invalid(history)
    if args.json:
        text = msgspec.json.format(msgspec.json.encode(report.as_json()), indent=2).decode()
        sys.stdout.write(text + "\n")
    else:
        write_text(report, sys.stdout)
    return 0


def write_text(report: MomentsReport, out: TextIO) -> None:
    """Write the report for a person: a paragraph per kind, the verdict first."""
    at = from_micros(report.at).isoformat().replace("+00:00", "Z") if report.at >= 0 else "-"
    out.write(
        f"moments as of {at}; conversions within {report.window_days:g} days of a user's "
        "first showing or held-out decision\n"
    )
    for kind, found in report.moments.items():
        out.write(f"\n{kind}: {found.verdict}\n")
        out.write(
            f"  eligible {found.eligible}: shown {found.shown} (clicked {found.clicked}, "
            f"dismissed {found.dismissed}), held out {found.held_out}\n"
        )
        out.write(
            f"  converted: shown {_rate(found.converted_shown, found.shown)}, "
            f"held out {_rate(found.converted_held_out, found.held_out)}\n"
        )
        out.write(f"  {_lift(found)}\n")


def _rate(converted: int, users: int) -> str:
    return f"{converted}/{users}" + (f" = {converted / users:.1%}" if users else "")


def _lift(found: KindReport) -> str:
    """Say the lift in points with its interval, and relative to the held-out rate."""
    if found.lift is None or found.lift_low is None or found.lift_high is None:
        return "lift: needs users in both arms"
    relative = found.relative_lift
    text = (
        f"lift {found.lift * 100:+.1f} points (95 % interval {found.lift_low * 100:+.1f} "
        f"to {found.lift_high * 100:+.1f})"
    )
    return text if relative is None else f"{text}, relative {relative:+.0%}"
