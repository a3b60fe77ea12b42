"""Rules compiled to SQL: one query per model over a relation of Segment messages.

The query does what ``pqlsdk._history.fold`` and ``pqlsdk._scoring`` do in
process, as set operations:

- ``m``: the messages pqlsdk accepts (a known type, a subject, a timestamp with a
  zone, a track's event, a group's groupId), each ``messageId`` once (the first
  in arrival order), with arrival order ``seq`` and the time ``ts`` in µs;
- ``users``: per subject, the first and last times, the account named by the
  latest ``group`` (ties: the later arrival), each trait the rules read merged
  by time (ties: the later arrival, as ``stores._state._merge``) and each
  aggregate the rules read (``count``, ``distinct``, ``active_days``);
- ``teams`` and ``groups``: members who tracked anything, and account traits
  merged the same way from every member's ``group`` messages;
- ``credited`` (account models): each track credited to the account its user
  belonged to when the track arrived, as the stores credit it;
- one CTE per step of ``score_subject``: gate, signals and reasons, multiplier,
  score (rounded to 9 digits), tier, route.

Every name and value from the rules enters the syntax tree as a literal
(``exp.Literal``), never as text: a rules file cannot change the query's shape.
Column names are the compiler's own (``u_0``, ``g_3``).

The pieces live beside it: the messages' steps in ``_message_steps``, the
aggregates and merged traits in ``_aggregates_sql``, each model's scoring steps
in ``_model_steps``; this module puts them together into queries and plans.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import attrs
from sqlglot import exp

from .._aggregates import Aggregate, Scope
from ..rules._compiler import Type
from ..rules._model import Model, Rules
from ._aggregates_sql import _aggregate_sql, _latest_trait, _Windows, distinct_apart
from ._dialect_duckdb import DUCKDB
from ._dialects import Dialect
from ._expressions import SqlExpressions
from ._message_steps import _messages, _Reads
from ._model_steps import ROW_COLUMNS, _ModelSteps, tiered_step
from ._output_sql import EXACT, OUTPUT
from ._values import Value, aliased, literal, select, template

__all__ = [
    "DAY_US",
    "Plan",
    "Query",
    "compile_accounts",
    "compile_model",
    "compile_plan",
    "compile_rules",
]

DAY_US: Final = 86_400_000_000


@attrs.frozen
class Query:
    """A compiled query and what its rows hold.

    Added in version 0.1.0.
    """

    name: str
    """The model's name, or ``"accounts"`` for the roll-up."""
    subject: str
    """``"user"`` or ``"account"``."""
    select: exp.Select
    dialect: Dialect = DUCKDB
    """The engine the query was compiled for."""

    def sql(self, dialect: str | None = None, *, pretty: bool = True) -> str:
        """Return the query's text, over a table or view named ``messages``.

        In the SQL of the engine it was compiled for; ``dialect`` (sqlglot's
        name) only transpiles that text, which another engine may not run.

        Added in version 0.1.0.
        """
        if dialect is None:
            return self.dialect.written(self.select, pretty=pretty)
        return self.select.sql(dialect=dialect, pretty=pretty)


class _Facts:
    """Names the columns each fact lives in, collecting what a model reads."""

    def __init__(self, prefix: str, dialect: Dialect) -> None:
        self.prefix = prefix
        self.dialect = dialect
        self.traits: dict[tuple[Scope, str], str] = {}
        self.aggregates: dict[Aggregate, str] = {}
        self.days_since: Value | None = None

    def trait(self, scope: Scope, name: str) -> exp.Expr:
        key = (scope, name)
        if key not in self.traits:
            self.traits[key] = f"{scope[0]}_{len(self.traits)}"
        return exp.column(self.traits[key])

    def aggregate(self, aggregate: Aggregate) -> exp.Expr:
        if aggregate not in self.aggregates:
            self.aggregates[aggregate] = f"g_{len(self.aggregates)}"
        return exp.column(self.aggregates[aggregate])

    def fact(self, name: str) -> Value:
        if name == "team_size":
            return Value(Type.NUMBER, exp.column("team_size"), integer=True, nullable=False)
        column = "last_active" if name == "days_since_last_active" else "first_seen"
        sql = template(
            "COALESCE((now_us - :t) / CAST(86400000000.0 AS DOUBLE), CAST('inf' AS DOUBLE))",
            t=exp.column(column),
        )
        return Value(Type.NUMBER, sql, nonfinite=True, nullable=False)

    def variable(self, name: str) -> Value:
        kinds = {
            "score": Value(Type.NUMBER, exp.column("score"), nullable=False),
            "tier": Value(Type.STRING, exp.column("tier"), nullable=False),
            "gate_passed": Value(Type.BOOL, exp.column("gate_passed"), nullable=False),
            "user_id": Value(Type.STRING, exp.column("user_id")),
            "account_id": Value(Type.STRING, exp.column("account_id")),
        }
        return kinds[name]


class _Builder:
    """Collects the CTEs of one query: the shared facts, then each model's steps."""

    def __init__(self, rules: Rules, now: int | None, dialect: Dialect) -> None:
        self.rules = rules
        self.now = now
        self.dialect = dialect
        self.reads = _Reads(dialect)
        self.users = _Facts("user", dialect)
        self.accounts = _Facts("account", dialect)
        self.models: dict[str, str] = {}

    def compile(self, model: Model) -> str:
        """Add ``model``'s steps (once); return the name of its last CTE."""
        if model.name in self.models:  # the PQA model is often the one scored
            return self.models[model.name]
        facts = self.users if model.subject == "user" else self.accounts
        scope: Scope = "user" if model.subject == "user" else "account"
        expressions = SqlExpressions(facts, scope, self.dialect)
        steps = _ModelSteps(model, expressions, self.rules.origin, self.dialect)
        name = f"model_{len(self.models)}"
        self.models[model.name] = name
        self.pending.append((name, steps))
        return name

    pending: list[tuple[str, _ModelSteps]]
    output: str | None = None
    """The model whose steps write each subject's ``--json`` entry (``compile_plan``)."""
    started: Callable[[list[tuple[str, exp.Expr]]], None] | None = None
    """Given the messages' steps once compiled, before the rest (``compile_plan``)."""

    def steps(self) -> list[tuple[str, exp.Expr]]:
        """List the CTEs: messages, the facts the compiled models need, then their steps."""
        facts = self._facts()  # first: they name the properties and traits read
        messages = _messages(self.now, self.reads)
        if self.started is not None:
            self.started(messages)
        ctes = [*messages, *facts]
        for name, steps in self.pending:
            ctes += steps.ctes(
                name,
                "user_facts" if steps.model.subject == "user" else "account_facts",
                output=steps.model.name == self.output,
            )
        return ctes

    def build(self, final: exp.Select, extra: Sequence[tuple[str, exp.Expr]] = ()) -> exp.Select:
        """Return ``final`` with every step, then ``extra``, as its CTEs."""
        for name, body in [*self.steps(), *extra]:
            final = final.with_(name, as_=body, copy=False)
        return final

    def _facts(self) -> list[tuple[str, exp.Expr]]:
        user_columns = [
            aliased(_latest_trait(name, "identify", self.reads), column)
            for (scope, name), column in self.users.traits.items()
            if scope == "user"
        ]
        user_columns += [
            aliased(_aggregate_sql(aggregate, self.reads), column)
            for aggregate, column in self.users.aggregates.items()
        ]
        users = select(
            """
            SELECT uid AS id, MIN(ts) AS first_seen,
                MAX(ts) FILTER (WHERE type = 'track') AS last_active, :account AS account_id
            FROM m CROSS JOIN clock GROUP BY uid
            """,
            account=self.dialect.latest(exp.column("gid"), template("type = 'group'")),
        )
        windows = _Windows("users", "id", self.users.aggregates, self.reads)
        users = users.select(*user_columns, *windows.latest(), copy=False)
        users = distinct_apart(users, "id", self.dialect)
        user_steps: list[tuple[str, exp.Expr]] = [("users", users)]
        if windows.windowed:
            columns = ["id", "first_seen", "last_active", "account_id"]
            columns += [c for (scope, _), c in self.users.traits.items() if scope == "user"]
            columns += list(self.users.aggregates.values())
            user_steps = [("counted", users), *windows.steps("counted", "m", "uid", columns)]
        # Every account trait either model reads, merged from every member's groups.
        account_traits = {
            name: column
            for facts in (self.users, self.accounts)
            for (scope, name), column in facts.traits.items()
            if scope == "account"
        }
        groups = select("SELECT gid AS account_id FROM m WHERE type = 'group' GROUP BY gid")
        groups = groups.select(
            *(
                aliased(_latest_trait(name, "group", self.reads), f"t_{i}")
                for i, name in enumerate(account_traits)
            ),
            copy=False,
        )
        teams = template(
            """
            SELECT account_id, COUNT(*) FILTER (WHERE last_active IS NOT NULL) AS active
            FROM users WHERE account_id IS NOT NULL GROUP BY account_id
            """
        )
        trait_column = {name: f"t_{i}" for i, name in enumerate(account_traits)}
        user_facts = select(
            """
            SELECT users.*, users.id AS user_id,
                CASE WHEN users.account_id IS NULL THEN 1
                    ELSE GREATEST(COALESCE(teams.active, 0), 1) END AS team_size,
                clock.now_us
            FROM users CROSS JOIN clock
            LEFT JOIN teams ON teams.account_id = users.account_id
            LEFT JOIN groups ON groups.account_id = users.account_id
            """
        )
        user_facts = user_facts.select(
            *(
                aliased(exp.column(trait_column[name], "groups"), column)
                for (scope, name), column in self.users.traits.items()
                if scope == "account"
            ),
            copy=False,
        )
        ctes: list[tuple[str, exp.Expr]] = [
            *user_steps,
            ("groups", groups),
            ("teams", teams),
            ("user_facts", user_facts),
        ]
        if any(name == "account_facts" for name in self._sources()):
            ctes += self._account_facts(trait_column)
        return ctes

    def _sources(self) -> list[str]:
        return [
            "user_facts" if steps.model.subject == "user" else "account_facts"
            for _, steps in self.pending
        ]

    def _account_facts(self, trait_column: dict[str, str]) -> list[tuple[str, exp.Expr]]:
        credited = self.dialect.credited()
        tallies = select("SELECT account_id FROM credited CROSS JOIN clock GROUP BY account_id")
        windows = _Windows("tallies", "account_id", self.accounts.aggregates, self.reads)
        tallies = tallies.select(
            *(
                aliased(_aggregate_sql(aggregate, self.reads), column)
                for aggregate, column in self.accounts.aggregates.items()
            ),
            *windows.latest(),
            copy=False,
        )
        tallies = distinct_apart(tallies, "account_id", self.dialect)
        tally_steps: list[tuple[str, exp.Expr]] = [("tallies", tallies)]
        if windows.windowed:
            columns = ["account_id", *self.accounts.aggregates.values()]
            tally_steps = [
                ("tallied", tallies),
                *windows.steps("tallied", "credited", "account_id", columns),
            ]
        facts = select(
            """
            SELECT groups.account_id AS id, groups.account_id,
                CAST(NULL AS VARCHAR) AS user_id,
                CAST(NULL AS BIGINT) AS last_active, CAST(NULL AS BIGINT) AS first_seen,
                GREATEST(COALESCE(teams.active, 0), 1) AS team_size, clock.now_us
            FROM groups CROSS JOIN clock
            LEFT JOIN teams ON teams.account_id = groups.account_id
            LEFT JOIN tallies ON tallies.account_id = groups.account_id
            """
        )
        facts = facts.select(
            *(
                aliased(
                    exp.column(trait_column[name], "groups")
                    if scope == "account"
                    else template("CAST(NULL AS JSON)"),
                    column,
                )
                for (scope, name), column in self.accounts.traits.items()
            ),
            *(
                aliased(template("COALESCE(:c, 0)", c=exp.column(column, "tallies")), column)
                for column in self.accounts.aggregates.values()
            ),
            copy=False,
        )
        return [("credited", credited), *tally_steps, ("account_facts", facts)]


def compile_rules(
    rules: Rules, *, now: int | None = None, dialect: Dialect = DUCKDB
) -> list[Query]:
    """One query per model of ``rules``, and the accounts' roll-up when there is one.

    ``dialect`` is the engine the queries are written for (``_engines.DIALECTS``).

    Added in version 0.1.0.
    """
    queries = [compile_model(rules, name, now=now, dialect=dialect) for name in rules.models]
    if rules.pqa is not None:
        queries.append(compile_accounts(rules, now=now, dialect=dialect))
    return queries


def compile_model(
    rules: Rules, model: str | None = None, *, now: int | None = None, dialect: Dialect = DUCKDB
) -> Query:
    """Compile the query that scores every subject of ``model`` (the primary one by default).

    ``now`` is the evaluation time in µs (None: the engine's current time). Rows:
    ``id, account_id, score, tier, route, gate_passed, multiplier, raw, reasons,
    gate_measured, multiplier_measured`` (the last three JSON).

    Added in version 0.1.0.
    """
    chosen = rules.model(model)
    builder = _new_builder(rules, now, dialect)
    name = builder.compile(chosen)
    final = exp.select("*").from_(name).order_by(dialect.collated(exp.column("id")))
    return Query(chosen.name, chosen.subject, builder.build(final), dialect)


def compile_accounts(rules: Rules, *, now: int | None = None, dialect: Dialect = DUCKDB) -> Query:
    """Compile the accounts' roll-up: each account named by a group, its PQA and own score.

    Rows: ``id, pqa, pql_users, members`` (JSON: member to tier under the PQA
    model, empty without ``[pqa]``) and ``model, score`` for the first account
    model (the columns of ``compile_model``, prefixed ``own_``), NULL without one.

    Added in version 0.1.0.
    """
    builder = _new_builder(rules, now, dialect)
    final, extra = _roll_up(builder, rules)
    return Query("accounts", "account", builder.build(final, extra), dialect)


@attrs.frozen
class Plan:
    """Scoring a model and the accounts in steps: each step may be held as a table.

    ``steps`` are named selects, each reading relation ``messages`` or earlier
    steps; ``users`` and ``accounts`` read the steps and give the rows of
    ``compile_model`` and ``compile_accounts``. Both share one reading of the
    messages and one computation of the facts and of the PQA model.

    Added in version 0.1.0.
    """

    steps: list[tuple[str, exp.Expr]]
    users: exp.Select
    accounts: exp.Select
    dialect: Dialect = DUCKDB
    """The engine the steps are written for."""
    inexact: exp.Select | None = None
    """Where the engine writes the entries (``compile_plan``'s ``output``) and ``users``
    gives each subject's ``id``, entry and exactness alone: each subject's row, reasons
    included, asked by ``id`` for the subjects whose entry is not exact (``_run.Steps``)."""


def compile_plan(
    rules: Rules,
    model: str | None = None,
    *,
    now: int | None = None,
    dialect: Dialect = DUCKDB,
    output: bool = False,
    started: Callable[[list[tuple[str, exp.Expr]]], None] | None = None,
) -> Plan:
    """Compile the steps that score ``model``'s subjects and the accounts, sharing their work.

    ``output``: the users' rows also hold each subject's ``pqlsdk score --json``
    entry, where the engine writes them (``_output_sql``). ``started``: given
    the messages' steps (the plan's first, also in ``Plan.steps``) as soon as
    they are compiled, before the models' steps are: the engine may start
    reading the messages, the longest step, meanwhile (``_run.Steps``).

    Added in version 0.1.0.
    """
    builder = _new_builder(rules, now, dialect)
    builder.output = rules.model(model).name if output else None
    builder.started = started
    users = exp.select("*").from_(builder.compile(rules.model(model)))
    if output and dialect.writes_entries:
        # A user whose entry is exact needs nothing else: its row is not fetched (a
        # dozen values a user, made Python objects), only asked for where the entry
        # is not exact (``Plan.inexact``). The entry is fetched as bytes (DuckDB's
        # encode, the only engine that writes entries), as printed: its text is not
        # made a str and encoded again (30 MB for the bench's 10,000 users: 15 ms).
        users = exp.select("id", template(f"encode({OUTPUT}) AS {OUTPUT}"), EXACT).from_(
            builder.compile(rules.model(model))
        )
    users = users.order_by(dialect.collated(exp.column("id")))
    accounts, extra = _roll_up(builder, rules)
    steps = builder.steps()
    inexact = next((s.inexact for _, s in builder.pending if s.inexact is not None), None)
    return Plan([*steps, *extra], users, accounts, dialect, inexact)


def _roll_up(builder: _Builder, rules: Rules) -> tuple[exp.Select, list[tuple[str, exp.Expr]]]:
    """Select the accounts' roll-up; return it and the CTEs it adds to ``builder``'s."""
    pqa = rules.pqa
    # The accounts named by a group: ``groups``' (one row each), not the messages again.
    accounts = select("SELECT account_id AS id FROM groups")
    dialect = builder.dialect
    team = template(
        "SELECT account_id, :ids AS member_ids FROM users "
        "WHERE account_id IS NOT NULL GROUP BY account_id",
        ids=dialect.json_agg(exp.column("id")),
    )
    final = (
        exp.select(
            "accounts_.id", template("COALESCE(team_.member_ids, CAST('[]' AS JSON)) AS member_ids")
        )
        .from_("accounts_")
        .join("team_", on="team_.account_id = accounts_.id", join_type="left")
    )
    extra: list[tuple[str, exp.Expr]] = [("accounts_", accounts), ("team_", team)]
    if pqa is not None:
        user_model = rules.model(pqa.model)
        name = tiered_step(builder.compile(user_model))
        bar = user_model.rank(pqa.tier)
        qualifying = [literal(tier) for _, tier in user_model.tiers[bar:]]
        roll = template(
            f"""
            SELECT account_id,
                COUNT(*) FILTER (WHERE tier IN :tiers) AS pql_users, :members AS members
            FROM {name} WHERE account_id IS NOT NULL GROUP BY account_id
            """,  # noqa: S608 - the compiler's own CTE name
            tiers=exp.Tuple(expressions=qualifying),
            members=dialect.json_map_agg(exp.column("id"), exp.column("tier")),
        )
        extra.append(("roll_", roll))
        final = final.select(
            template("COALESCE(roll_.pql_users, 0) >= :n AS pqa", n=literal(pqa.min_users)),
            template("COALESCE(roll_.pql_users, 0) AS pql_users"),
            template("COALESCE(roll_.members, CAST('{}' AS JSON)) AS members"),
        ).join("roll_", on="roll_.account_id = accounts_.id", join_type="left")
    else:
        final = final.select(
            template("FALSE AS pqa"),
            template("0 AS pql_users"),
            template("CAST('{}' AS JSON) AS members"),
        )
    own = next((m for m in rules.models.values() if m.subject == "account"), None)
    if own is not None:
        name = builder.compile(own)
        final = final.select(
            template(":m AS own_model", m=literal(own.name)),
            *(
                template(f"own_.{column} AS own_{column}")
                for column in ROW_COLUMNS[2:]  # what the model gives beyond the ids
            ),
        ).join(f"{name} AS own_", on="own_.id = accounts_.id", join_type="left")
    return final.order_by(dialect.collated(exp.column("id", "accounts_"))), extra


def _new_builder(rules: Rules, now: int | None, dialect: Dialect) -> _Builder:
    builder = _Builder(rules, now, dialect)
    builder.pending = []
    return builder
