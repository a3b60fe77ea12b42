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
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import msgspec

from ._clock import FixedClock, micros
from ._exceptions import ConfigError, PQLError, RulesError
from ._history import History, fold, read
from ._scoring import AccountScore, Score, score_account, score_subject
from ._version import __version__
from .rules import PQA, Rules, load
from .stores import AccountState, UserState

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

_SCORE = """\
Score every user and account in a file of messages with the same engine as the
client. The table ranks users by score and says why under each: the gate (and
what it measured), the multiplier (and what set it) and every signal that fired;
then the accounts, with the members that make a PQA. Messages that pqlsdk
refuses are skipped and reported on stderr, the first ten with their line.
"""

_SCORE_EXAMPLES = """\
examples:
  pqlsdk score examples/rules/playbook.toml examples/events.jsonl --now 2026-03-15T12:00:00Z
  pqlsdk score examples/rules/weighted.toml examples/events.jsonl --now 2026-03-15T12:00:00Z --json
  pqlsdk score examples/rules/playbook.toml examples/events.jsonl --model stuck
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
    score = commands.add_parser(
        "score",
        help="score the users and accounts in a file of messages",
        description=_SCORE,
        epilog=_SCORE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score.add_argument("rules", type=Path, help="the rules file (TOML or JSON)")
    score.add_argument(
        "events",
        type=Path,
        nargs="?",
        help="the messages: JSON Lines, a JSON array, an object with an 'events' list "
        "(and its 'now'), or gzip of any of these (not with --engine postgres)",
    )
    score.add_argument(
        "--now",
        help="evaluation time, ISO-8601 with a timezone (default: the file's 'now', else "
        "the current time, printed on stderr)",
    )
    score.add_argument("--json", action="store_true", help="print JSON instead of a table")
    score.add_argument("--model", help="which model of the rules file (default: its primary)")
    score.add_argument(
        "--engine",
        choices=("auto", "python", "duckdb", "postgres"),
        default="auto",
        help="python: the in-process engine (the reference); duckdb: the rules compiled to "
        "SQL, run by DuckDB (needs pqlsdk[warehouse]); postgres: run in the PostgreSQL "
        "database --dsn names (needs pqlsdk[warehouse,postgres]); auto (default): duckdb "
        "when installed",
    )
    score.add_argument("--dsn", help="--engine postgres: the database's libpq URL")
    _add_sources(score)
    sql = commands.add_parser(
        "sql",
        help="print the SQL a rules file compiles to",
        description="Print one query per model (and the accounts' roll-up) over a table of "
        "Segment messages named 'messages' (needs pqlsdk[warehouse]).",
    )
    sql.add_argument("rules", type=Path, help="the rules file (TOML or JSON)")
    sql.add_argument(
        "--dialect",
        choices=("duckdb", "postgres"),
        default="duckdb",
        help="the engine the SQL is written for (default: duckdb)",
    )
    demo = commands.add_parser(
        "demo",
        help="run the whole loop and print the ranked PQL feed",
        description=_DEMO,
        epilog=_DEMO_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--serve", action="store_true", help="keep the collector up for a browser")
    demo.add_argument("--port", type=int, default=0, help="collector port (default: any free one)")
    _add_collector(commands)
    _add_replay(commands)
    _add_moments(commands)
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
        if args.command == "score":
            return _score_command(args)
        if args.command == "sql":
            return _sql(args.rules, args.dialect)
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


def _engine(name: str) -> str:
    """``auto`` is duckdb when the warehouse extra is installed, else python."""
    if name != "auto":
        return name
    import importlib.util  # noqa: PLC0415

    found = all(importlib.util.find_spec(module) for module in ("sqlglot", "duckdb"))
    return "duckdb" if found else "python"


def _add_sources(score: argparse.ArgumentParser) -> None:
    """Add the duckdb engine's sources and the outputs of ``pqlsdk score`` (docs/warehouse.md)."""
    where = score.add_argument_group(
        "sources (duckdb engine) and outputs (either engine)",
        "EVENTS may also be a Parquet or CSV file, a folder of Parquet files, or a DuckDB\n"
        "or SQLite database (docs/warehouse.md).",
    )
    where.add_argument(
        "--table",
        help="the database's table of messages (schema.table allowed); --engine postgres: "
        "the collector's table (default: messages) or one with a column per Segment field",
    )
    where.add_argument(
        "--layout",
        choices=("segment", "rudderstack"),
        help="read the warehouse layout: identifies, groups, tracks and one table per event",
    )
    where.add_argument("--schema", help="the layout's schema in a DuckDB database (default main)")
    where.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="the column holding a message field, e.g. userId=uid (repeatable)",
    )
    where.add_argument(
        "--output", type=Path, metavar="FILE", help="also write the scores to FILE.parquet or .csv"
    )
    where.add_argument(
        "--into",
        metavar="TABLE",
        help="also write one row per subject and model (subject, id, model, score, tier, "
        "route, reasons, scored_at) into TABLE of the engine's database (the DuckDB file, "
        "or --dsn's), replaced in one transaction",
    )
    where.add_argument(
        "--database", type=Path, metavar="FILE", help="the DuckDB file for --into (default: EVENTS)"
    )


class _Where:
    """Where ``pqlsdk score`` reads messages from and writes scores to, beyond EVENTS."""

    def __init__(self, **options: Any) -> None:
        self.table: str | None = options.get("table")
        self.layout: str | None = options.get("layout")
        self.schema: str | None = options.get("schema")
        self.column: list[str] = options.get("column") or []
        self.output: Path | None = options.get("output")
        self.into: str | None = options.get("into")
        self.database: Path | None = options.get("database")

    @classmethod
    def of(cls, args: argparse.Namespace) -> _Where:
        names = ("table", "layout", "schema", "column", "output", "into", "database")
        return cls(**{name: getattr(args, name) for name in names})

    def reading(self, *, postgres: bool = False) -> str | None:
        """Return the first option only the duckdb engine reads, as typed; None if none is.

        ``postgres``: the options the postgres engine cannot take (it reads ``--table``).
        """
        options: list[tuple[str, object]] = [
            ("--layout", self.layout),
            ("--schema", self.schema),
            ("--column", self.column),
        ]
        if postgres:
            options += [("--output", self.output), ("--database", self.database)]
        else:
            options.insert(0, ("--table", self.table))
        for flag, value in options:
            if value:
                return flag
        return None


def _sql(path: Path, dialect: str) -> int:
    from .warehouse import compile_rules  # noqa: PLC0415 - the warehouse extra, on use
    from .warehouse._dialects import DIALECTS  # noqa: PLC0415

    for query in compile_rules(load(path), dialect=DIALECTS[dialect]):
        label = "accounts' roll-up" if query.name == "accounts" else f"model {query.name!r}"
        print(f"-- {label}: one row per {query.subject}\n{query.sql()};\n")
    return 0


def _score_command(args: argparse.Namespace) -> int:
    """``pqlsdk score``: check which source the engine reads, then score it."""
    engine = _engine(args.engine)
    where = _Where.of(args)
    if engine == "postgres":
        if args.events is not None or args.dsn is None:
            raise ConfigError(
                "--engine postgres reads the table --dsn and --table name, not a file"
            )
        unread = where.reading(postgres=True)
        if unread is not None:
            raise ConfigError(f"{unread} reads a file or a DuckDB database: not --engine postgres")
        return _score_postgres(
            args.rules,
            args.dsn,
            where.table or "messages",
            now=args.now,
            as_json=args.json,
            model=args.model,
            into=args.into,
        )
    if args.events is None:
        raise ConfigError(f"--engine {engine} reads a file of messages: name it")
    if args.dsn is not None:
        raise ConfigError("--dsn needs --engine postgres")
    if where.into is not None:
        from .warehouse._sinks import into_database  # noqa: PLC0415 - the extra, on use

        into_database(args.events, where.into, where.database)  # said before scoring
    return _score(
        args.rules,
        args.events,
        now=args.now,
        as_json=args.json,
        model=args.model,
        engine=engine,
        where=where,
    )


def _score_postgres(
    path: Path,
    dsn: str,
    table: str,
    *,
    now: str | None,
    as_json: bool,
    model: str | None,
    into: str | None,
) -> int:
    """``pqlsdk score --engine postgres``: the compiled SQL run where the messages are stored."""
    from .warehouse import _postgres  # noqa: PLC0415 - the extras, on use

    rules = load(path)
    chosen = rules.model(model).name
    instant, when = _clock_for(now, None)
    _say_when(now, None, when)
    connection = _postgres.connect(dsn)
    try:
        scored = _postgres.score_table(rules, chosen, connection, table, now=instant)
        if into is not None:
            own = (account.score for account in scored.accounts if account.score is not None)
            at = FixedClock(when).now()
            _postgres.write_scores(connection, into, [*scored.users, *own], at=at)
    finally:
        connection.close()
    if scored.refused:
        print(f"pqlsdk: skipped {scored.refused} invalid message(s)", file=sys.stderr)
    _print_scores(
        rules,
        chosen,
        when,
        users=scored.users,
        accounts=scored.accounts,
        members=scored.members,
        as_json=as_json,
    )
    return 0


def _score(
    path: Path,
    events: Path,
    *,
    now: str | None,
    as_json: bool,
    model: str | None,
    engine: str = "python",
    where: _Where | None = None,
) -> int:
    where = where or _Where()
    rules = load(path)
    chosen = rules.model(model)  # fails early on a bad name
    if engine == "duckdb":
        return _score_sql(path, rules, chosen.name, events, now=now, as_json=as_json, where=where)
    _python_reads(events, where)
    history = History()
    fold(read(events, history), rules.aggregates, history)
    instant, when = _clock_for(now, history.now)
    _say_when(now, history.now, when)
    _report_invalid(history)
    # Scores are made one at a time and written (or reduced to a table row) at
    # once: memory stays that of the users' state, however many users there are.
    users: Iterable[Score] = (
        score_subject(chosen, user_id, state, _account_of(history, state), instant, explain=True)
        for user_id, state in sorted(history.users.items())
    )
    accounts: Iterable[AccountScore] = (
        score_account(
            rules,
            history.accounts.get(account_id),
            account_id,
            _members(history, account_id),
            instant,
            explain=True,
        )
        for account_id in sorted(history.groups)
    )
    if where.output or where.into:  # written twice: kept
        users, accounts = list(users), list(accounts)
    members = {account_id: _member_ids(history, account_id) for account_id in history.groups}
    _print_scores(
        rules, chosen.name, when, users=users, accounts=accounts, members=members, as_json=as_json
    )
    _write_scores(events, where, users, accounts)
    return 0


def _python_reads(events: Path, where: _Where) -> None:
    from ._formats import python_reads  # noqa: PLC0415 - only score needs it

    python_reads(events, where.reading())


def _write_scores(
    events: Path, where: _Where, users: Iterable[Score], accounts: Iterable[AccountScore]
) -> None:
    if not (where.output or where.into):
        return
    from .warehouse._sinks import write_scores  # noqa: PLC0415 - the warehouse extra, on use

    for line in write_scores(
        events, users, accounts, output=where.output, into=where.into, database=where.database
    ):
        print(f"pqlsdk: {line}", file=sys.stderr)


def _clock_for(now: str | None, file_now: str | None) -> tuple[int, str]:
    """Return the evaluation time in µs and as printed."""
    # The wall clock to the second: the time printed is one --now can repeat exactly.
    at = now or file_now or datetime.now(UTC).replace(microsecond=0).isoformat()
    try:
        clock = FixedClock(at)
    except ValueError as exc:
        raise ConfigError(f"--now {at!r} is not an ISO-8601 instant with a timezone") from exc
    when = clock.now().isoformat().replace("+00:00", "Z")
    return micros(clock.now()), when


def _say_when(now: str | None, file_now: str | None, when: str) -> None:
    """Say on stderr where the evaluation time came from, unless --now gave it."""
    if now is None:  # a file's messages scored against today is a common surprise
        source = "the file's 'now'" if file_now else "now; pass --now to pin it"
        print(f"pqlsdk: scored at {when} ({source})", file=sys.stderr)


def _score_sql(
    path: Path,
    rules: Rules,
    model: str,
    events: Path,
    *,
    now: str | None,
    as_json: bool,
    where: _Where,
) -> int:
    """``pqlsdk score --engine duckdb``: the same output, computed by the compiled SQL."""
    from ._formats import sniff  # noqa: PLC0415 - only score needs it
    from .warehouse import _duckdb, _sources  # noqa: PLC0415 - the extra, on use
    from .warehouse._score import score_relation  # noqa: PLC0415

    source = _sources.Source(
        events,
        table=where.table,
        layout=where.layout,
        schema=where.schema,
        columns=_sources.columns_option(where.column),
    )
    connection = _duckdb.connect()
    try:
        with _sources.messages(connection, source) as (relation, file_now):
            instant, when = _clock_for(now, file_now)
            scored = score_relation(rules, model, relation, now=instant, connection=connection)
    except _duckdb.UnreadableError:
        if sniff(events) != "json":
            raise
        # DuckDB gives up on a whole file for one line that is not a message object;
        # the python engine names that line, or refuses it and scores the rest.
        return _score(path, events, now=now, as_json=as_json, model=model, engine="python")
    finally:
        connection.close()
    _say_when(now, file_now, when)
    if scored.refused and sniff(events) == "json":
        # Rare: the reader says which and why, in the words of --engine python.
        history = History()
        for _ in read(events, history):
            pass
        _report_invalid(history)
    elif scored.refused:
        print(
            f"pqlsdk: skipped {scored.refused} invalid message(s): without a userId or an "
            "anonymousId, a timestamp with a time zone, a track's event or a group's groupId",
            file=sys.stderr,
        )
    _print_scores(
        rules,
        model,
        when,
        users=scored.users,
        accounts=scored.accounts,
        members=scored.members,
        as_json=as_json,
    )
    _write_scores(events, where, scored.users, scored.accounts)
    return 0


def _print_scores(
    rules: Rules,
    model: str,
    when: str,
    *,
    users: Iterable[Score],
    accounts: Iterable[AccountScore],
    members: dict[str, list[str]],
    as_json: bool,
) -> None:
    """Print users' and accounts' scores as a table or JSON, whichever engine made them."""
    if not as_json:
        print(f"Users by score under {model!r}, scored at {when}:")
        _print_table([_row(score) for score in users])
        # Members at the highest tiers first: those are what makes (or would make) a PQA.
        rank = rules.model(rules.pqa.model).rank if rules.pqa is not None else None
        rows = [_account_row(account, members.get(account.id, []), rank) for account in accounts]
        _print_accounts(rules.pqa, rows)
        return
    out = sys.stdout
    out.write(f'{{\n  "now": {_json(when)},\n')
    _write_object(out, "users", ((score.id, score.to_dict()) for score in users))
    out.write(",\n")
    _write_object(out, "accounts", ((account.id, account.to_dict()) for account in accounts))
    out.write("\n}\n")


def _report_invalid(history: History) -> None:
    """Say on stderr which messages were skipped: the first few by place, then a count."""
    total = sum(history.skipped.values())
    if not total:
        return
    reasons = ", ".join(f"{reason}: {count}" for reason, count in history.skipped.most_common())
    lines = [f"pqlsdk: skipped {total} invalid message(s) ({reasons}):"]
    lines += [f"  {place}" for place in history.invalid]
    if total > len(history.invalid):
        lines.append(f"  ... and {total - len(history.invalid)} more invalid message(s)")
    print("\n".join(lines), file=sys.stderr)


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


def _member_ids(history: History, account_id: str) -> list[str]:
    account = history.accounts.get(account_id)
    return [] if account is None else list(account.members)


def _members(history: History, account_id: str) -> dict[str, UserState | None]:
    return {member: history.users.get(member) for member in _member_ids(history, account_id)}


_WHY = " " * 7
"""How far a row's explanation is indented: under the subject's id."""


def _why(score: Score) -> str:
    """Why a score is what it is, for the table: gate and multiplier, then what fired."""
    lines = []
    # Past a closed gate the score is 0 whatever the multiplier: only the gate matters.
    shown = (
        (score.gate_text(),)
        if not score.gate_passed
        else (score.gate_text(), score.multiplier_text())
    )
    measured = "; ".join(text for text in shown if text)
    if not score.gate_passed:
        measured += " (score 0)"
    if measured:
        lines.append(f"{_WHY}{measured}")
    fired = sorted((r for r in score.reasons if r.fired), key=lambda r: -abs(r.earned))
    lines += [f"{_WHY}+ {reason}" for reason in fired]
    if not fired:
        lines.append(f"{_WHY}no signal fired")
    return "\n".join(lines)


_Row = tuple[float, str, str, str, str]
"""A ranked table's row: score, user id, tier, route, and why (lines to print under it)."""


def _row(score: Score) -> _Row:
    return score.score, score.id, score.tier, score.route, _why(score)


def _print_table(rows: list[_Row]) -> None:
    ranked = sorted(rows, key=lambda row: (-row[0], row[1]))
    width = max([4, *(len(row[1]) for row in ranked)])
    print(f"{'#':>3}  {'user':<{width}}  {'score':>8}  {'tier':<9} route")
    for rank, (points, user_id, tier, route, why) in enumerate(ranked, 1):
        print(f"{rank:>3}  {user_id:<{width}}  {points:>8.2f}  {tier:<9} {route}")
        print(why)


_AccountRow = tuple[bool, int, float, str, int, str, str]
"""An account's row: PQA, qualifying members, own score, id, member count, members, why."""

_SHOWN_MEMBERS = 5
"""Members listed on an account's row; the rest are counted."""


def _account_row(
    account: AccountScore, members: Iterable[str], rank: Callable[[str], int] | None
) -> _AccountRow:
    tiers = account.members
    ordered = list(members)
    if rank is not None:
        ordered.sort(key=lambda member: -rank(tiers[member]))
    named = [f"{member} {tiers[member]}" if tiers else member for member in ordered]
    shown = ", ".join(named[:_SHOWN_MEMBERS])
    if len(named) > _SHOWN_MEMBERS:
        shown += f", +{len(named) - _SHOWN_MEMBERS} more"
    own = account.score
    why = ""
    if own is not None:
        why = f"{_WHY}{own.model}: {own.score:.2f} {own.tier} -> {own.route}\n{_why(own)}"
    points = own.score if own is not None else 0.0
    return account.pqa, account.pql_users, points, account.id, len(named), shown or "-", why


def _print_accounts(pqa: PQA | None, rows: list[_AccountRow]) -> None:
    if not rows:
        return
    ranked = sorted(rows, key=lambda row: (not row[0], -row[1], -row[2], row[3]))
    rule = (
        "no [pqa] in the rules"
        if pqa is None
        else f"a PQA has {pqa.min_users} or more members {pqa.tier} or above under {pqa.model!r}"
    )
    print(f"\nAccounts ({rule}):")
    width = max([7, *(len(row[3]) for row in ranked)])
    print(f"{'#':>3}  {'account':<{width}}  {'PQA':<4} {'qualifying':<10}  members")
    for rank, (is_pqa, qualifying, _, account_id, size, members, why) in enumerate(ranked, 1):
        flag = "-" if pqa is None else "yes" if is_pqa else "no"
        count = "-" if pqa is None else f"{qualifying} of {size}"
        print(f"{rank:>3}  {account_id:<{width}}  {flag:<4} {count:<10}  {members}")
        if why:
            print(why)


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
