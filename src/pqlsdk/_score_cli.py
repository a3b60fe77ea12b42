"""``pqlsdk score`` and ``pqlsdk sql``: score a history with an engine, or print its SQL.

``pqlsdk.cli`` calls ``add_parsers`` to register both subcommands and ``run`` to
execute one. The python engine (the reference) folds the messages in process;
the others run the rules compiled to SQL (``pqlsdk.warehouse``, loaded on use).
Every engine's scores are printed by ``_score_table``.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ._clock import FixedClock, micros
from ._exceptions import ConfigError
from ._formats import auto_engine, python_reads, sniff
from ._history import History, fold, read
from ._score_table import formatted_users, print_scores, report_invalid, say_refused
from ._scoring import AccountScore, Score, score_account, score_subject
from .rules import Rules, load
from .stores import AccountState, UserState

if TYPE_CHECKING:
    from .warehouse import Scored

__all__ = ["add_parsers", "clock_for", "run"]

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


_DIALECTS = (
    "duckdb",
    "postgres",
    "spark",
    "databricks",
    "snowflake",
    "bigquery",
    "clickhouse",
    "trino",
)
"""``pqlsdk sql --dialect``: the SQL engines, then dialects sqlglot translates DuckDB's query to."""


def add_parsers(commands: Any) -> None:
    """Add ``score`` and ``sql`` to ``commands`` (an argparse subparsers action)."""
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
        choices=("auto", "python", "duckdb", "postgres", "spark"),
        default="auto",
        help="python: the in-process engine (the reference); duckdb: the rules compiled to "
        "SQL, run by DuckDB (needs pqlsdk[warehouse]); postgres: run in the PostgreSQL "
        "database --dsn names (needs pqlsdk[warehouse,postgres]); spark: run by Apache "
        "Spark's spark.sql, in local mode unless a session is active (needs "
        "pqlsdk[warehouse,spark]); auto (default): duckdb when installed",
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
        choices=_DIALECTS,
        default="duckdb",
        help="the engine the SQL is written for (default: duckdb); duckdb, postgres, spark "
        "and databricks are the engines pqlsdk checks against --engine python; the others "
        "are DuckDB's query translated by sqlglot, to check on a sample before use",
    )


def run(args: argparse.Namespace) -> int:
    """Execute ``pqlsdk score`` or ``pqlsdk sql``; return the exit status."""
    if args.command == "sql":
        return _sql(args.rules, args.dialect)
    return _score_command(args)


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
        "route, reasons, scored_at) into TABLE of the engine's database (the DuckDB or "
        "SQLite file, or --dsn's), replaced in one transaction",
    )
    where.add_argument(
        "--database",
        type=Path,
        metavar="FILE",
        help="the DuckDB or SQLite file for --into (default: EVENTS)",
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
    from .warehouse._engines import DIALECTS  # noqa: PLC0415

    # Databricks runs Spark SQL; the other dialects get DuckDB's query, translated.
    engine = DIALECTS.get("spark" if dialect == "databricks" else dialect)
    translated = engine is None
    if translated:
        print(
            f"-- Translated from DuckDB's SQL to {dialect}'s by sqlglot: pqlsdk does not run it.\n"
            "-- Check its scores against `pqlsdk score --engine python` on a sample first.\n"
        )
    for query in compile_rules(load(path), dialect=engine or DIALECTS["duckdb"]):
        label = "accounts' roll-up" if query.name == "accounts" else f"model {query.name!r}"
        text = query.sql(dialect if translated or dialect == "databricks" else None)
        print(f"-- {label}: one row per {query.subject}\n{text};\n")
    return 0


def _score_command(args: argparse.Namespace) -> int:
    """``pqlsdk score``: check which source the engine reads, then score it."""
    engine = auto_engine(args.engine)
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
    if engine == "spark":
        unread = where.reading() or ("--into" if where.into else None)
        if unread is not None:
            raise ConfigError(f"{unread} reads or writes a DuckDB database: not --engine spark")
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
    instant, when = clock_for(now, None)
    _say_when(now, None, when)
    connection = _postgres.connect(dsn)
    try:
        scored = _postgres.score_table(rules, chosen, connection, table, now=instant)
        if into is not None:
            _postgres.write_scores(connection, into, scored.users, scored.accounts)
    finally:
        connection.close()
    _print_scored(rules, chosen, when, scored, as_json=as_json)
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
    if engine == "duckdb":
        return _score_sql(path, events, model, now=now, as_json=as_json, where=where)
    rules = load(path)
    chosen = rules.model(model)  # fails early on a bad name
    if engine == "spark":
        return _score_spark(rules, chosen.name, events, now=now, as_json=as_json, where=where)
    _python_reads(events, where)
    history = History()
    fold(read(events, history), rules.aggregates, history)
    instant, when = clock_for(now, history.now)
    _say_when(now, history.now, when)
    report_invalid(history)
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
    print_scores(
        rules, chosen.name, when, users=users, accounts=accounts, members=members, as_json=as_json
    )
    _write_scores(events, where, users, accounts)
    return 0


def _python_reads(events: Path, where: _Where) -> None:
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


def clock_for(now: str | None, file_now: str | None) -> tuple[int, str]:
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
    events: Path,
    model: str | None,
    *,
    now: str | None,
    as_json: bool,
    where: _Where,
) -> int:
    """``pqlsdk score --engine duckdb``: the same output, computed by the compiled SQL."""
    from .warehouse import _duckdb  # noqa: PLC0415 - the extra, on use

    rules = load(path)
    chosen = rules.model(model).name  # fails early on a bad name
    connection = _duckdb.Opening()  # opened as the rules compile
    try:
        try:
            with _uncollected(), _switching_often():
                scored, formatted, when, file_now = _scored_by_duckdb(
                    rules, chosen, events, connection, now=now, as_json=as_json, where=where
                )
        except BaseException:
            connection.close()
            raise
    except _duckdb.UnreadableError:
        if sniff(events) != "json":
            raise
        # DuckDB gives up on a whole file for one line that is not a message object;
        # the python engine names that line, or refuses it and scores the rest.
        return _score(path, events, now=now, as_json=as_json, model=model, engine="python")
    _say_when(now, file_now, when)
    # DuckDB frees its tables on a thread (no GIL held) while the scores are printed.
    with connection.closing():
        _print_scored(
            rules, chosen, when, scored, as_json=as_json, events=events, formatted=formatted
        )
    _write_scores(events, where, scored.users, scored.accounts)
    return 0


@contextmanager
def _uncollected() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while the duckdb engine scores, as it was after.

    The run makes many objects (syntax nodes, a row per user) and few cycles (its
    syntax trees, collected once it is over): at 10,000 users the collector ran
    113 times, once over every object the imports made, 0.03 s in all.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


_SWITCH_SECONDS: Final = 0.0002
"""Python's switch interval while ``pqlsdk score`` compiles beside DuckDB (``_switching_often``)."""


@contextmanager
def _switching_often() -> Iterator[None]:
    """Make Python's switch interval short while the duckdb engine scores, as it was after.

    The plan's steps run on a thread as they are compiled (``warehouse._run.Steps``):
    DuckDB's client takes the GIL between a statement's tasks, and while the
    command compiles the models (holding it) the thread that reads the messages got
    it once every 5 ms (Python's interval): ``parsed`` started 30 ms later than it
    could. The command owns its process; the library's callers keep their interval.
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(_SWITCH_SECONDS)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def _scored_by_duckdb(
    rules: Rules,
    model: str,
    events: Path,
    connection: Any,
    *,
    now: str | None,
    as_json: bool,
    where: _Where,
) -> tuple[Scored, list[bytes | memoryview] | None, str, str | None]:
    """Score ``events`` with the SQL run by DuckDB over ``connection`` (``_score_sql``).

    Return the scores, the users' object formatted (printed as JSON only: it is
    formatted while DuckDB computes the accounts), the evaluation time as
    printed and the file's own ``now``.
    """
    from .warehouse import _sources  # noqa: PLC0415 - the extra, on use
    from .warehouse._score import scoring  # noqa: PLC0415

    source = _sources.Source(
        events,
        table=where.table,
        layout=where.layout,
        schema=where.schema,
        columns=_sources.columns_option(where.column),
    )
    with _sources.messages(connection, source) as (relation, file_now):
        instant, when = clock_for(now, file_now)
        with scoring(
            rules,
            model,
            relation,
            now=instant,
            connection=connection,
            # Printed as JSON only: each user's entry as the engine wrote it.
            entries=as_json and not (where.output or where.into),
        ) as run:
            formatted = None if run.entries is None else formatted_users(run.entries)
            scored = run.scored()
    return scored, formatted, when, file_now


def _score_spark(
    rules: Rules, model: str, events: Path, *, now: str | None, as_json: bool, where: _Where
) -> int:
    """``pqlsdk score --engine spark``: the same output, computed by Spark's ``spark.sql``."""
    from .warehouse import _spark  # noqa: PLC0415 - the extras, on use

    spark = _spark.session()
    frame, file_now = _spark.read_messages(spark, events)
    instant, when = clock_for(now, file_now)
    scored = _spark.score_frame(spark, rules, model, frame, now=instant)
    _say_when(now, file_now, when)
    _print_scored(rules, model, when, scored, as_json=as_json, events=events)
    _write_scores(events, where, scored.users, scored.accounts)
    return 0


def _print_scored(
    rules: Rules,
    model: str,
    when: str,
    scored: Scored,
    *,
    as_json: bool,
    events: Path | None = None,
    formatted: list[bytes | memoryview] | None = None,
) -> None:
    """Print an SQL engine's scores, after saying how many messages it refused and why.

    ``events``: the file of messages the engine read, if any; ``formatted``: the
    users' object as printed, formatted already (``print_scores``).
    """
    say_refused(scored.refused, events)
    print_scores(
        rules,
        model,
        when,
        users=scored.users,
        accounts=scored.accounts,
        members=scored.members,
        as_json=as_json,
        formatted=formatted,
    )


def _account_of(history: History, user: UserState) -> AccountState | None:
    return None if user.account_id is None else history.accounts.get(user.account_id)


def _member_ids(history: History, account_id: str) -> list[str]:
    account = history.accounts.get(account_id)
    return [] if account is None else list(account.members)


def _members(history: History, account_id: str) -> dict[str, UserState | None]:
    return {member: history.users.get(member) for member in _member_ids(history, account_id)}
