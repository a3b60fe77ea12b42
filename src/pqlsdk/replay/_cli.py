"""``pqlsdk replay``: backtest rules on a history, measure them against outcomes, tune.

``pqlsdk.cli`` calls ``add_parser`` to register the subcommand and ``run`` to
execute it.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from .._aggregates import Aggregate
from .._clock import micros
from .._exceptions import ConfigError, RulesError
from .._formats import auto_engine
from ..rules import load
from ..rules._lexer import parse_duration
from ..rules._model import Model, Rules
from ._bands import DEFAULT_EDGES, parse_edges
from ._calibrate import pql_tier
from ._outcomes import load_outcomes
from ._report import write_report
from ._run import replay
from ._summary import summarize
from ._table import write_text

__all__ = ["add_parser", "run"]

_SUSTAINED = "sustained"


_DESCRIPTION = """\
Backtest rules on a history: stream it through the client's own engine in time
order and report users and accounts per tier and score band. With --outcomes it
adds the conversion rate of each band and suggests thresholds; --compare puts a
second rules file beside the first; --report writes an HTML report with charts.
"""

_EXAMPLES = """\
examples:
  pqlsdk replay examples/rules/playbook.toml examples/events.jsonl --at 2026-03-15T12:00:00Z
  pqlsdk replay playbook.toml events.jsonl --outcomes outcomes.csv --report replay.html
  pqlsdk replay playbook.toml events.jsonl --compare candidate.toml
"""


def add_parser(subparsers: Any) -> None:
    """Add the ``replay`` subcommand to ``subparsers`` (an argparse subparsers action)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="replay a history through rules: bands, conversion, thresholds",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("rules", type=Path, help="the rules file to backtest (TOML or JSON)")
    parser.add_argument(
        "events",
        type=Path,
        help="the history: JSON Lines, a JSON document, or gzip of either",
    )
    parser.add_argument(
        "--outcomes", type=Path, help="conversions: CSV or JSON Lines of user|account, time, value"
    )
    parser.add_argument("--compare", type=Path, help="a second rules file to replay side by side")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--at", help="evaluation time (ISO-8601); later events are not folded")
    when.add_argument("--every", help="also count tiers at every interval, e.g. 1d or 12h")
    parser.add_argument("--report", type=Path, help="write an HTML report with charts here")
    parser.add_argument(
        "--engine",
        choices=("auto", "python", "duckdb"),
        default="auto",
        help="python: the in-process engine (the reference); duckdb: the rules compiled to "
        "SQL (pip install 'pqlsdk[warehouse]'); auto (default): duckdb when installed",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--model", help="which model of RULES (default: its primary)")
    parser.add_argument(
        "--bands",
        default=",".join(str(int(edge)) for edge in DEFAULT_EDGES),
        help="score band edges, ascending (default 0,10,...,100)",
    )
    parser.add_argument(
        "--target-rate",
        type=float,
        default=0.2,
        help="suggest the lowest band converting at this rate or better (default 0.2)",
    )
    parser.add_argument(
        "--tier",
        help="the tier whose threshold is tuned (default: the PQA tier, else second-highest)",
    )
    parser.add_argument(
        "--sustained",
        type=Path,
        help="rules file of the sustained-usage model for single loggers "
        "(default: a 'sustained' model in RULES or --compare, else sustained.toml beside RULES)",
    )
    parser.add_argument(
        "--logger-share",
        type=float,
        default=0.8,
        help="share of a user's events on one UTC day that makes a single logger (default 0.8)",
    )


def run(args: argparse.Namespace) -> int:
    """Execute ``pqlsdk replay``; return the exit status."""
    rules = load(args.rules)
    model = rules.model(args.model)
    models, origins = [model], [str(args.rules)]
    aggregates: set[Aggregate] = set(rules.aggregates)
    other = None
    if args.compare is not None:
        other = load(args.compare)
        models.append(other.model())
        origins.append(str(args.compare))
        aggregates |= other.aggregates
    found = _sustained(args.sustained, args.rules, rules, other)
    sustained = None if found is None else found[1]
    if sustained is not None:
        aggregates |= sustained.aggregates
    try:
        edges = parse_edges(args.bands)
    except ValueError as exc:
        raise ConfigError(f"--bands {args.bands!r}: {exc}") from exc
    named = args.tier
    if named is None and rules.pqa is not None and rules.pqa.model == model.name:
        named = rules.pqa.tier
    try:
        tier = pql_tier(model, named)
    except ValueError:
        known = ", ".join(name for _, name in model.tiers)
        raise ConfigError(f"--tier {named!r}: model {model.name!r} has {known}") from None
    conversions = None if args.outcomes is None else load_outcomes(args.outcomes)
    at = None if args.at is None else _instant(args.at)
    every = None if args.every is None else _every(args.every)
    result = None
    if auto_engine(args.engine) == "duckdb":
        from ..warehouse._replay import replay_sql  # noqa: PLC0415 - the warehouse extra

        sources = [(rules, model)] + ([] if other is None else [(other, models[1])])
        result = replay_sql(
            args.events,
            sources,
            aggregates,
            sustained=found,
            edges=edges,
            conversions=conversions,
            at=at,
            every=every,
            loggers=(args.logger_share, tier),
        )
    if result is None:  # the python engine, asked for or the only one that can
        result = replay(
            args.events,
            models,
            aggregates,
            edges=edges,
            conversions=conversions,
            at=at,
            every=every,
            progress=sys.stderr,
        )
    data = summarize(
        result,
        origins=origins,
        outcomes=conversions is not None,
        target_rate=args.target_rate,
        tier=tier,
        sustained=sustained,
        share=args.logger_share,
    )
    if args.report is not None:
        write_report(data, args.report)
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(data), indent=2).decode() + "\n")
    else:
        write_text(data, sys.stdout)
    return 0


def _sustained(
    path: Path | None, origin: Path, rules: Rules, other: Rules | None
) -> tuple[Rules, Model] | None:
    """Find the sustained-usage model single loggers are shown under, and its rules file."""
    if path is not None:
        loaded = load(path)
        return loaded, loaded.model()
    for found in (rules, other):
        if found is not None and _SUSTAINED in found.models:
            return found, found.models[_SUSTAINED]
    beside = origin.parent / f"{_SUSTAINED}.toml"
    if beside.exists():
        try:
            loaded = load(beside)
            return loaded, loaded.model()
        except RulesError:
            return None  # a broken neighbour does not stop a replay of other rules
    return None


def _instant(text: str) -> int:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ConfigError(f"--at {text!r} is not an ISO-8601 instant with a timezone")
    return micros(at)


def _every(text: str) -> int:
    try:
        return parse_duration(text) * 1_000_000
    except ValueError as exc:  # the rules' ExpressionError
        raise ConfigError(f"--every {text!r}: expected a duration like 1d or 12h") from exc
