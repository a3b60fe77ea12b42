"""The ``pqlsdk`` command line.

- ``pqlsdk check RULES``: validate a rules file; errors print like a compiler's.
- ``pqlsdk score RULES EVENTS [--now ISO] [--json] [--model NAME]``: score every
  user and account in a file of messages with the same engine as the client.
- ``pqlsdk demo [--serve]``: the main job, the whole loop on one machine: a
  collector on a temporary SQLite file, a simulated cohort played through a real
  client with the playbook rules, and the ranked PQL feed (needs the
  ``collector`` extra; ``--serve`` keeps the feed up for a browser).
- ``pqlsdk collector [--storage URL] [--write-key KEY]...``: serve the reference
  collector (needs the ``collector`` extra).
- ``pqlsdk replay RULES EVENTS [--outcomes FILE] [--compare RULES] ...``: backtest
  rules on a history: tiers and bands, conversion per band, suggested thresholds
  (``pqlsdk.replay``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import msgspec

from ._clock import FixedClock, micros
from ._exceptions import ConfigError, PQLError, RulesError
from ._history import History, fold, read
from ._scoring import Score, score_account, score_subject
from ._version import __version__
from .rules import load
from .stores import AccountState, UserState

__all__ = ["main"]

_DEMO_START = "2026-03-01T09:00:00Z"


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - a return per command
    """Run the command line; return the process exit status.

    Added in version 0.1.0.
    """
    parser = argparse.ArgumentParser(prog="pqlsdk", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pqlsdk {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate a rules file")
    check.add_argument("rules", type=Path)
    score = commands.add_parser("score", help="score the users and accounts in a file of messages")
    score.add_argument("rules", type=Path)
    score.add_argument("events", type=Path, help="JSON object with 'events', or JSON Lines")
    score.add_argument("--now", help="evaluation time (ISO-8601); else the file's 'now'")
    score.add_argument("--json", action="store_true", help="print JSON instead of a table")
    score.add_argument("--model", help="which model of the rules file (default: its primary)")
    demo = commands.add_parser("demo", help="run the whole loop and print the ranked PQL feed")
    demo.add_argument("--serve", action="store_true", help="keep the collector up for a browser")
    demo.add_argument("--port", type=int, default=0, help="collector port (default: any free one)")
    _add_collector(commands)
    _add_replay(commands)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return _check(args.rules)
        if args.command == "score":
            return _score(
                args.rules, args.events, now=args.now, as_json=args.json, model=args.model
            )
        if args.command == "collector":
            return _run_collector(args)
        if args.command == "replay":
            return _run_replay(args)
        return _demo(serve=args.serve, port=args.port)
    except RulesError as exc:
        print(exc, file=sys.stderr)
        return 1
    except PQLError as exc:
        print(f"pqlsdk: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader left (``pqlsdk score ... | head``): stop quietly, as Unix tools do.
        # Python's own flush of stdout at exit would fail again, so point it at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for such a pipeline


def _add_collector(commands: Any) -> None:
    from .collector._cli import add_parser  # noqa: PLC0415 - the collector loads on demand

    add_parser(commands)


def _run_collector(args: argparse.Namespace) -> int:
    from .collector._cli import run  # noqa: PLC0415 - the collector loads on demand

    return run(args)


def _add_replay(commands: Any) -> None:
    from .replay._cli import add_parser  # noqa: PLC0415 - replay loads on demand

    add_parser(commands)


def _run_replay(args: argparse.Namespace) -> int:
    from .replay._cli import run  # noqa: PLC0415 - replay loads on demand

    return run(args)


def _check(path: Path) -> int:
    rules = load(path)
    for warning in rules.warnings:  # printed like errors, but the file is usable: exit 0
        print(warning, file=sys.stderr)
    signals = sum(len(model.signals) for model in rules.models.values())
    warned = f", {len(rules.warnings)} warning(s)" if rules.warnings else ""
    print(
        f"{path}: ok: {len(rules.models)} model(s) ({', '.join(rules.models)}), "
        f"{signals} signal(s), {len(rules.aggregates)} aggregate(s){warned}"
    )
    return 0


def _score(path: Path, events: Path, *, now: str | None, as_json: bool, model: str | None) -> int:
    rules = load(path)
    chosen = rules.model(model)  # fails early on a bad name
    history = History()
    fold(read(events, history), rules.aggregates, history)
    at = now or history.now or datetime.now(UTC).isoformat()
    try:
        clock = FixedClock(at)
    except ValueError as exc:
        raise ConfigError(f"--now {at!r} is not an ISO-8601 instant with a timezone") from exc
    instant = micros(clock.now())
    if history.skipped:
        print(
            f"pqlsdk: skipped {sum(history.skipped.values())} invalid message(s): "
            f"{dict(history.skipped)}",
            file=sys.stderr,
        )
    # Scores are made one at a time and written (or reduced to a table row) at
    # once: memory stays that of the users' state, however many users there are.
    users = (
        score_subject(chosen, user_id, state, _account_of(history, state), instant)
        for user_id, state in sorted(history.users.items())
    )
    if not as_json:
        _print_table([_row(score) for score in users])
        return 0
    accounts = (
        score_account(
            rules,
            history.accounts.get(account_id),
            account_id,
            _members(history, account_id),
            instant,
        )
        for account_id in sorted(history.groups)
    )
    out = sys.stdout
    out.write(f'{{\n  "now": {_json(clock.now().isoformat().replace("+00:00", "Z"))},\n')
    _write_object(out, "users", ((score.id, _user_json(score)) for score in users))
    out.write(",\n")
    _write_object(out, "accounts", ((account.id, account.to_dict()) for account in accounts))
    out.write("\n}\n")
    return 0


def _json(value: Any, indent: int = 0) -> str:
    """``value`` as indented JSON, its inner lines indented by ``indent`` more spaces."""
    text = msgspec.json.format(msgspec.json.encode(value), indent=2).decode()
    return text.replace("\n", "\n" + " " * indent) if indent else text


def _write_object(out: TextIO, name: str, items: Iterable[tuple[str, Any]]) -> None:
    """Write ``"name": {...}`` item by item, formatted as ``json.dumps(indent=2)`` would."""
    out.write(f'  "{name}": {{')
    separator = "\n"
    for key, value in items:
        out.write(f"{separator}    {_json(key)}: {_json(value, 4)}")
        separator = ",\n"
    out.write("\n  }" if separator != "\n" else "}")


def _account_of(history: History, user: UserState) -> AccountState | None:
    return None if user.account_id is None else history.accounts.get(user.account_id)


def _members(history: History, account_id: str) -> dict[str, UserState | None]:
    account = history.accounts.get(account_id)
    members = [] if account is None else account.members
    return {member: history.users.get(member) for member in members}


def _user_json(score: Score) -> dict[str, Any]:
    data = score.to_dict()
    return {
        "score": data["score"],
        "tier": data["tier"],
        "route": data["route"],
        "reasons": data["reasons"],
    }


_Row = tuple[float, str, str, str, str]
"""A ranked table's row: score, user id, tier, route, top reasons."""


def _row(score: Score) -> _Row:
    reasons = "; ".join(str(r) for r in score.top_reasons()) or "-"
    return score.score, score.id, score.tier, score.route, reasons


def _print_table(rows: list[_Row]) -> None:
    ranked = sorted(rows, key=lambda row: (-row[0], row[1]))
    width = max([4, *(len(row[1]) for row in ranked)])
    print(f"{'#':>3}  {'user':<{width}}  {'score':>8}  {'tier':<9} {'route':<18} top reasons")
    for rank, (points, user_id, tier, route, reasons) in enumerate(ranked, 1):
        print(f"{rank:>3}  {user_id:<{width}}  {points:>8.2f}  {tier:<9} {route:<18} {reasons}")


def _demo(*, serve: bool, port: int) -> int:
    from .collector._demo import print_feed, running_demo  # noqa: PLC0415 - loads the collector

    try:
        with running_demo(port=port) as demo:
            print_feed(demo, sys.stdout)
            if serve:
                print("Serving the feed; press Ctrl-C to stop.", flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    threading.Event().wait()
    except ImportError as exc:  # the collector extra is missing; the message names it
        raise ConfigError(str(exc)) from exc
    if not serve:
        # The URL above is dead by now: say so, and how to keep it up.
        print(
            "\nThe demo's collector has stopped and its temporary data is gone, so the feed "
            "URL above no longer answers. To keep it up for a browser, run:\n"
            "    bash scripts/run.sh --serve      (or: pqlsdk demo --serve)"
        )
    return 0
