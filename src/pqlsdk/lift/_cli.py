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
from .._exceptions import ConfigError, RulesError
from .._formats import auto_engine, sniff
from .._history import History
from ..rules import load
from ..rules._model import Rules
from ._funnel import KindReport, MomentsReport, conversion_of, counted, measure
from ._sources import is_storage, ordered

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
    parser.add_argument(
        "--engine",
        choices=("auto", "python", "duckdb"),
        default="auto",
        help="python: fold the history in process (the reference); duckdb: count in SQL, run "
        "by DuckDB over a history file (JSON Lines, gzip, Parquet...; needs "
        "pqlsdk[warehouse]); auto (default): duckdb when installed, the source is a file and "
        "the conversion compiles to SQL, else python",
    )


def run(args: argparse.Namespace) -> int:
    """Execute ``pqlsdk moments``; return the exit status."""
    from .._score_cli import clock_for  # noqa: PLC0415 - the CLI's own helpers
    from .._score_table import report_invalid  # noqa: PLC0415

    rules = load(args.rules)
    now = None if args.now is None else clock_for(args.now, None)[0]
    report = None
    if _engine_for(args.engine, args.source) == "duckdb":
        report = _in_sql(rules, args.source, now, chosen=args.engine == "duckdb")
    if report is None:
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


def _engine_for(name: str, source: str) -> str:
    """Pick the engine as ``pqlsdk score`` does; the collector's storage is python's to read."""
    if name == "duckdb" and is_storage(source):
        raise ConfigError(
            f"--engine duckdb reads a history file; {source!r} is the collector's storage, "
            "which --engine python reads"
        )
    return "python" if is_storage(source) else auto_engine(name)


def _in_sql(rules: Rules, source: str, now: int | None, *, chosen: bool) -> MomentsReport | None:
    """Make the report with DuckDB counting; None where the python engine must make it.

    That is: a conversion the SQL cannot follow when the engine was not
    ``chosen`` (with ``--engine duckdb`` it is an error at its place), or a
    JSON file DuckDB cannot read, whose bad line the python reader names.
    """
    from .._score_table import say_refused  # noqa: PLC0415 - only the SQL engine needs these
    from ..warehouse import _duckdb, _sources  # noqa: PLC0415
    from ..warehouse._moments import compile_moments, count_moments  # noqa: PLC0415

    try:
        plan = compile_moments(rules, now=now)
    except RulesError:
        if chosen:
            raise
        return None
    path = Path(source)
    connection = _duckdb.connect()
    try:
        with _sources.messages(connection, _sources.Source(path)) as (relation, _):
            counts, at, refused = count_moments(plan, relation, connection)
    except _duckdb.UnreadableError:
        if sniff(path) != "json":
            raise
        return None
    finally:
        connection.close()
    say_refused(refused, path)
    _, window, kinds = conversion_of(rules)
    return counted(kinds, counts, window=window, at=at if now is None else now)


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
