"""The ``pqlsdk`` command line.

- ``pqlsdk check RULES``: validate a rules file; errors print like a compiler's.
- ``pqlsdk score RULES EVENTS [--now ISO] [--json] [--model NAME]``: score every
  user and account in a file of messages with the same engine as the client, each
  score with why (gate, multiplier, every signal that fired), accounts and PQAs.
- ``pqlsdk demo [--serve]``: the main job, the whole loop on one machine: a
  collector on a temporary SQLite file, a simulated cohort played through a real
  client with the playbook rules, and the ranked PQL feed (needs the
  ``collector`` extra; ``--serve`` keeps the feed up for a browser).
- ``pqlsdk collector [--storage URL] [--write-key KEY]...``: serve the reference
  collector (needs the ``collector`` extra).
- ``pqlsdk replay RULES EVENTS [--outcomes FILE] [--compare RULES] ...``: backtest
  rules on a history: tiers and bands, conversion per band, suggested thresholds
  (``pqlsdk.replay``).
- ``pqlsdk moments RULES SOURCE [--now ISO] [--json]``: each moment kind's funnel
  and lift against its holdout, from a history file or the collector's storage
  (``pqlsdk.lift``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from ._exceptions import ConfigError, PQLError, RulesError
from ._version import __version__
from .rules import load

__all__ = ["main"]

_DEMO_START = "2026-03-01T09:00:00Z"


# Help is printed as written (RawDescriptionHelpFormatter): plain text, no reST
# markup, and every command ends with an example that runs from a checkout.
_DESCRIPTION = """\
Score product-qualified leads from a rules file: validate the rules, score a
history of Segment messages, run the whole loop on one machine, serve the
reference collector, or replay a history to tune thresholds.
"""

_EXAMPLES = """\
examples:
  pqlsdk check examples/rules/playbook.toml
  pqlsdk score examples/rules/playbook.toml examples/events.jsonl --now 2026-03-15T12:00:00Z
  pqlsdk demo
  pqlsdk collector --storage collector.db --write-key wk_live_1 --feed-key fk_sales
  pqlsdk replay examples/rules/playbook.toml examples/events.jsonl --at 2026-03-15T12:00:00Z

Run "pqlsdk COMMAND --help" for what a command takes.
"""

_CHECK = """\
Validate a rules file: its schema, every expression, and the names they use.
A mistake prints as FILE:LINE:COLUMN with the line and a caret under it, and the
exit status is 1; a good file prints a one-line summary.
"""

_CHECK_EXAMPLE = """\
example:
  pqlsdk check examples/rules/playbook.toml
"""

_DEMO = """\
The whole loop on one machine: a collector on a temporary SQLite file, a
simulated cohort played through a real client with the playbook rules, and the
ranked PQL feed. Needs the collector extra.
"""

_DEMO_EXAMPLES = """\
examples:
  pqlsdk demo
  pqlsdk demo --serve --port 8787
"""


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - a return per command
    """Run the command line; return the process exit status.

    Added in version 0.1.0.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(argv[0] if argv and argv[0] in _COMMANDS else None)
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Python 3.11's argparse gives ``score``'s optional events file its empty value
        # when an option comes first (``score RULES --now T EVENTS``): it is left over.
        if args.command != "score" or args.events is not None or len(extra) > 1:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.events = Path(extra[0])
    try:
        if args.command == "check":
            return _check(args.rules)
        if args.command in ("score", "sql"):
            return _run_score(args)
        if args.command == "collector":
            return _run_collector(args)
        if args.command == "replay":
            return _run_replay(args)
        if args.command == "moments":
            return _run_moments(args)
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


def _parser(chosen: str | None) -> argparse.ArgumentParser:
    """Build the command line's parser; ``chosen``: the command named first, if any.

    Each command's parser is loaded with its module: the command named first
    needs only its own (``pqlsdk score`` loads neither the collector nor
    replay); help, or no command, needs them all.
    """
    parser = argparse.ArgumentParser(
        prog="pqlsdk",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pqlsdk {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="the command to run, one of:"
    )
    check = commands.add_parser(
        "check",
        help="validate a rules file",
        description=_CHECK,
        epilog=_CHECK_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("rules", type=Path, help="the rules file (TOML, or the same schema as JSON)")
    if chosen in (None, "score", "sql"):
        _add_score(commands)
    demo = commands.add_parser(
        "demo",
        help="run the whole loop and print the ranked PQL feed",
        description=_DEMO,
        epilog=_DEMO_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--serve", action="store_true", help="keep the collector up for a browser")
    demo.add_argument("--port", type=int, default=0, help="collector port (default: any free one)")
    for command, add in (
        ("collector", _add_collector),
        ("replay", _add_replay),
        ("moments", _add_moments),
    ):
        if chosen in (None, command):
            add(commands)
    return parser


_COMMANDS: Final = ("check", "score", "sql", "demo", "collector", "replay", "moments")
"""Every command: one named first is the only one whose module ``main`` loads for its parser."""


def _add_score(commands: Any) -> None:
    from ._score_cli import add_parsers  # noqa: PLC0415 - scoring loads on demand

    add_parsers(commands)


def _run_score(args: argparse.Namespace) -> int:
    from ._score_cli import run  # noqa: PLC0415 - scoring loads on demand

    return run(args)


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


def _add_moments(commands: Any) -> None:
    from .lift._cli import add_parser  # noqa: PLC0415 - the lift report loads on demand

    add_parser(commands)


def _run_moments(args: argparse.Namespace) -> int:
    from .lift._cli import run  # noqa: PLC0415 - the lift report loads on demand

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
