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
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final, cast

import attrs
from sqlglot import exp

from .._aggregates import Aggregate, Scope
from .._exceptions import RulesError
from .._scoring import _measured_sides
from ..rules._compiler import Compiled, Type
from ..rules._lexer import ExpressionError
from ..rules._model import Model, Rules, Signal
from ._dialect_duckdb import DUCKDB
from ._dialects import Dialect, JsonKind
from ._engines import DIALECTS
from ._expressions import SqlExpressions, Unsupported
from ._values import Value, literal, number_of, select, template, truth, wrapped

__all__ = [
    "DAY_US",
    "Plan",
    "Query",
    "compile_accounts",
    "compile_model",
    "compile_plan",
    "compile_rules",
    "message_steps",
]

DAY_US: Final = 86_400_000_000
_ALL_ENGINES: Final = "the python engine (pqlsdk score --engine python)"


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


class _Reads:
    """Names the columns of ``parsed`` that hold the properties and traits the rules read.

    Each is extracted from the message's JSON once, when the messages are read,
    and nothing else of ``properties`` and ``traits`` is kept.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.properties: dict[str, str] = {}
        self.traits: dict[str, str] = {}

    def property(self, name: str) -> exp.Expr:
        """Return the column of property ``name`` (JSON; NULL when missing)."""
        return exp.column(self.properties.setdefault(name, f"p_{len(self.properties)}"))

    def trait(self, name: str) -> exp.Expr:
        """Return the column of trait ``name`` (JSON; NULL when missing)."""
        return exp.column(self.traits.setdefault(name, f"r_{len(self.traits)}"))

    def columns(self) -> list[exp.Expr]:
        """Select each property and trait read, from the message's JSON."""
        field = self.dialect.json_field
        return [
            *(
                exp.alias_(field(exp.column("properties"), name), column)
                for name, column in self.properties.items()
            ),
            *(
                exp.alias_(field(exp.column("traits"), name), column)
                for name, column in self.traits.items()
            ),
        ]


def _filter_test(name: str, value: object, reads: _Reads) -> exp.Expr:
    """``properties[name] == value`` as ``Aggregate.matches`` decides it (bool is not 1)."""
    read = reads.property(name)
    dialect = reads.dialect
    # CASE, not AND: an engine may cast before it tests the type, and fail on the value.
    kind: JsonKind
    if isinstance(value, bool):
        kind, typed = "boolean", dialect.json_flag(read)
    elif isinstance(value, str):
        kind, typed = "string", dialect.json_text(read)
    else:
        kind, typed = "number", dialect.json_number(read)
    test = exp.Case(
        ifs=[
            exp.If(
                this=dialect.json_is(read, kind), true=exp.EQ(this=typed, expression=literal(value))
            )
        ]
    )
    return template("COALESCE(:t, FALSE)", t=test)


def _matching(aggregate: Aggregate, reads: _Reads) -> exp.Expr:
    """Whether a track feeds ``aggregate`` (``Aggregate.matches``), its window aside."""
    dialect = reads.dialect
    tests: list[exp.Expr] = [template("type = 'track'")]
    if aggregate.event is not None:
        tests.append(template("event = :e", e=literal(aggregate.event)))
    tests += [_filter_test(name, value, reads) for name, value in aggregate.where]
    if aggregate.field is not None:
        field = reads.property(aggregate.field)
        tests.append(template("COALESCE(NOT :n, FALSE)", n=dialect.json_is(field, "null")))
    return exp.and_(*tests)


def _aggregate_sql(
    aggregate: Aggregate, reads: _Reads, horizon: exp.Expr | None = None
) -> exp.Expr:
    """Compute the aggregate over one group's tracks (a user's, or an account's credited ones).

    A window counts the tracks at most ``window`` before ``horizon``: the
    evaluation time ``now_us`` unless told otherwise (``_Windows``).
    """
    dialect = reads.dialect
    condition = _matching(aggregate, reads)
    if aggregate.window is not None:  # now - t <= within: the far edge included
        edge = template(
            "ts >= :h - :w",
            h=horizon if horizon is not None else exp.column("now_us"),
            w=literal(aggregate.window * 1_000_000),
        )
        condition = exp.and_(condition, edge)
    if aggregate.kind == "count":
        return template("COUNT(*) FILTER (WHERE :c)", c=condition)
    what = (
        dialect.distinct_key(reads.property(aggregate.field))
        if aggregate.kind == "distinct" and aggregate.field is not None
        else template("CAST(floor(ts / CAST(86400000000 AS DOUBLE)) AS BIGINT)")
    )
    return template("COUNT(DISTINCT :x) FILTER (WHERE :c)", x=what, c=condition)


class _Windows:
    """Windowed aggregates measured as the in-process engine measures them.

    In process, a windowed aggregate drops, as each track arrives, the tracks
    older than the latest matching one less the window (``_aggregates._count_within``,
    ``_latest``); at ``now`` it counts those at most the window before ``now``.
    Together: the tracks at most the window before ``max(now, M)``, ``M`` the
    latest matching track. ``M`` is after ``now`` only for a history that goes
    on past the evaluation time: then, and for those groups only, the aggregate
    is counted again with that horizon (``redone``), and the group's count
    replaced. Each group's ``M`` is one more ``MAX`` beside its counts.
    """

    def __init__(
        self, name: str, key: str, aggregates: dict[Aggregate, str], reads: _Reads
    ) -> None:
        self.name = name
        self.key = key
        self.reads = reads
        self.windowed = {a: c for a, c in aggregates.items() if a.window is not None}

    def latest(self) -> list[exp.Expr]:
        """Columns for the counting step: each windowed aggregate's latest matching time."""
        return [
            exp.alias_(
                template("MAX(ts) FILTER (WHERE :c)", c=_matching(aggregate, self.reads)),
                f"x_{column}",
            )
            for aggregate, column in self.windowed.items()
        ]

    def steps(
        self, counted: str, source: str, source_key: str, columns: Sequence[str]
    ) -> list[tuple[str, exp.Expr]]:
        """Return the steps giving ``self.name`` from ``counted`` (``columns``, the key first).

        ``source`` is what ``counted`` grouped by ``source_key``; a group whose
        latest matching track is after ``now`` has its windowed counts redone.
        """
        late = exp.or_(
            *(
                template(":x > now_us", x=exp.column(f"x_{column}"))
                for column in self.windowed.values()
            )
        )
        stale = select(f"SELECT {counted}.* FROM {counted} CROSS JOIN clock")  # noqa: S608 - own names
        stale = stale.where(late, copy=False)
        key = exp.column(source_key, source)
        redone = (
            exp.select(exp.alias_(key, "late_id"))
            .from_(source)
            .join(
                f"stale_{self.name}",
                on=exp.EQ(this=key, expression=exp.column(self.key, f"stale_{self.name}")),
            )
            .join("clock", join_type="cross")
            .group_by(key)
        )
        redone = redone.select(
            *(
                exp.alias_(
                    _aggregate_sql(
                        aggregate,
                        self.reads,
                        template(
                            "GREATEST(now_us, :x)",
                            x=exp.column(f"x_{column}", f"stale_{self.name}"),
                        ),
                    ),
                    column,
                )
                for aggregate, column in self.windowed.items()
            ),
            copy=False,
        )
        final = exp.select(
            *(
                exp.alias_(
                    template(
                        "COALESCE(:r, :c)",
                        r=exp.column(column, f"redone_{self.name}"),
                        c=exp.column(column, counted),
                    )
                    if column in self.windowed.values()
                    else exp.column(column, counted),
                    column,
                )
                for column in columns
            )
        ).from_(counted)
        final = final.join(
            f"redone_{self.name}",
            on=exp.EQ(
                this=exp.column("late_id", f"redone_{self.name}"),
                expression=exp.column(self.key, counted),
            ),
            join_type="left",
        )
        return [(f"stale_{self.name}", stale), (f"redone_{self.name}", redone), (self.name, final)]


def _latest_trait(name: str, kind: str, reads: _Reads) -> exp.Expr:
    """Merge a trait by time: the value of the latest message carrying it."""
    value = reads.trait(name)
    return reads.dialect.latest(
        value, template("type = :k AND :v IS NOT NULL", v=value, k=literal(kind))
    )


_ZONED: Final = "\\d{4}-\\d{2}-\\d{2}[Tt ]\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?([Zz]|[+-]\\d{2}:\\d{2})"
"""An ISO-8601 instant with its zone: pqlsdk refuses a naive timestamp."""


def message_steps(reads: _Reads) -> list[tuple[str, exp.Expr]]:
    """Select every message (``parsed``), the repeated ones (``dropped``), the rest (``m``).

    ``parsed`` keeps, of each message, the fields scoring reads and the
    properties and traits ``reads`` names, with the time ``ts`` in µs and the
    arrival order ``seq``; a message pqlsdk refuses (no identity, no zoned
    timestamp, a track without its event, a group without its groupId) has a
    NULL ``type``. ``dropped`` lists the accepted messages whose ``messageId``
    arrived, accepted, before: few or none. ``m`` holds the accepted messages
    less those.

    The messages are read in one pass, written once (``parsed``): ``m`` is a
    filter over it, cheap enough to run for each step that reads it. The
    repeated ids are found by a 64-bit key first (``Dialect.id_key``: grouping
    numbers costs less than grouping text), then exactly, by the ids
    themselves, among the few messages whose key repeats.
    """
    dialect = reads.dialect
    # Quoted: the message's own names, exactly, in engines that fold unquoted ones.
    ts, zoned = dialect.instant_us(exp.column("timestamp", quoted=True), _ZONED)
    raw = select(
        """
        SELECT seq, type, COALESCE(NULLIF("userId", ''), "anonymousId") AS uid,
            "messageId" AS mid, :ts AS ts, event, "groupId" AS gid, :zoned AS zoned,
            "userId" AS user_text, "anonymousId" AS anonymous_text, properties, traits
        FROM messages
        """,
        ts=ts,
        zoned=zoned,
    ).select(*reads.columns(), copy=False)
    # Over raw's columns: each test computed once (zoned is a regular expression).
    doubt = dialect.doubtful(
        [exp.column(name) for name in ("user_text", "anonymous_text", "mid", "event", "gid")],
        [exp.column("properties"), exp.column("traits")],
        exp.column("zoned"),
    )
    read = [*reads.properties.values(), *reads.traits.values()]
    parsed = select(
        """
        SELECT seq,
            CASE WHEN uid <> '' AND zoned AND ts IS NOT NULL
                AND (type = 'identify' OR (type = 'track' AND event <> '')
                    OR (type = 'group' AND gid <> '')) THEN type END AS type,
            uid, mid, ts, event, gid, :doubt AS doubt
        FROM raw
        """,
        doubt=doubt,
    ).select(*read, copy=False)
    parsed = parsed.with_("raw", as_=raw, copy=False)
    key = dialect.id_key(exp.column("mid"))
    repeated_keys = select(
        """
        SELECT :key AS id_key FROM parsed WHERE type IS NOT NULL AND mid IS NOT NULL
        GROUP BY id_key HAVING COUNT(*) > 1
        """,
        key=key,
    )
    firsts = select(
        """
        SELECT mid, MIN(seq) AS first FROM parsed
        WHERE type IS NOT NULL AND :key IN (SELECT id_key FROM repeated_keys)
        GROUP BY mid HAVING COUNT(*) > 1
        """,
        key=key,
    )
    dropped = select(
        """
        SELECT parsed.seq FROM parsed JOIN firsts ON parsed.mid = firsts.mid
        WHERE parsed.type IS NOT NULL AND parsed.seq > firsts.first
        """
    )
    dropped = dropped.with_("repeated_keys", as_=repeated_keys, copy=False)
    dropped = dropped.with_("firsts", as_=firsts, copy=False)
    kept = select(
        """
        SELECT * FROM parsed
        WHERE type IS NOT NULL AND seq NOT IN (SELECT seq FROM dropped)
        """
    )
    return [("parsed", parsed), ("dropped", dropped), ("m", kept)]


def _messages(now: int | None, reads: _Reads) -> list[tuple[str, exp.Expr]]:
    """Select the clock, then the accepted, de-duplicated messages of relation ``messages``."""
    now_sql = reads.dialect.now_us() if now is None else literal(now)
    clock = template("SELECT :now AS now_us", now=now_sql)
    return [("clock", clock), *message_steps(reads)]


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

    def steps(self) -> list[tuple[str, exp.Expr]]:
        """List the CTEs: messages, the facts the compiled models need, then their steps."""
        facts = self._facts()  # first: they name the properties and traits read
        ctes = [*_messages(self.now, self.reads), *facts]
        for name, steps in self.pending:
            ctes += steps.ctes(
                name, "user_facts" if steps.model.subject == "user" else "account_facts"
            )
        return ctes

    def build(self, final: exp.Select, extra: Sequence[tuple[str, exp.Expr]] = ()) -> exp.Select:
        """Return ``final`` with every step, then ``extra``, as its CTEs."""
        for name, body in [*self.steps(), *extra]:
            final = final.with_(name, as_=body, copy=False)
        return final

    def _facts(self) -> list[tuple[str, exp.Expr]]:
        user_columns = [
            exp.alias_(_latest_trait(name, "identify", self.reads), column)
            for (scope, name), column in self.users.traits.items()
            if scope == "user"
        ]
        user_columns += [
            exp.alias_(_aggregate_sql(aggregate, self.reads), column)
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
                exp.alias_(_latest_trait(name, "group", self.reads), f"t_{i}")
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
                exp.alias_(exp.column(trait_column[name], "groups"), column)
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
                exp.alias_(_aggregate_sql(aggregate, self.reads), column)
                for aggregate, column in self.accounts.aggregates.items()
            ),
            *windows.latest(),
            copy=False,
        )
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
                exp.alias_(
                    exp.column(trait_column[name], "groups")
                    if scope == "account"
                    else template("CAST(NULL AS JSON)"),
                    column,
                )
                for (scope, name), column in self.accounts.traits.items()
            ),
            *(
                exp.alias_(template("COALESCE(:c, 0)", c=exp.column(column, "tallies")), column)
                for column in self.accounts.aggregates.values()
            ),
            copy=False,
        )
        return [("credited", credited), *tally_steps, ("account_facts", facts)]


class _ModelSteps:
    """One model's scoring steps, compiled up front (so unknown facts are collected)."""

    def __init__(
        self, model: Model, expressions: SqlExpressions, origin: str, dialect: Dialect
    ) -> None:
        self.model = model
        self.origin = origin
        self.dialect = dialect
        where = ("model", model.name)

        def compile_(source: str, path: Sequence[str | int]) -> Value:
            try:
                return expressions.compile_source(source)
            except Unsupported as exc:
                raise _located(origin, (*where, *path), source, exc, dialect) from None

        self.gate = None if model.gate is None else compile_(model.gate.source, ("gate",))
        self.multiplier = (
            None if model.multiplier is None else compile_(model.multiplier.source, ("multiplier",))
        )
        self.signals = []
        for signal in model.signals:
            key = "when" if signal.when is not None else "value"
            expression = cast(Compiled, signal.when or signal.value)  # one is set
            held = compile_(expression.source, ("signals", signal.name, key))
            observed = None
            if signal.when is not None and signal.observe is not None:
                observed = compile_(signal.observe.source, ("signals", signal.name, key))
            self.signals.append((signal, held, observed))
        self.measured = {
            part: [
                (text, compile_(text, (part,)))
                for text, _ in _measured_sides(compiled.source, model.subject)
            ]
            for part, compiled in (("gate", model.gate), ("multiplier", model.multiplier))
            if compiled is not None
        }
        self.dnc = (
            None
            if model.do_not_contact is None
            else compile_(model.do_not_contact.source, ("do_not_contact",))
        )
        self.routes = [
            (route.route, compile_(route.when.source, ("routes", index, "when")))
            for index, route in enumerate(model.routes)
        ]

    def _signal(
        self, index: int, signal: Signal, held: Value, observed: Value | None
    ) -> tuple[exp.Expr, exp.Expr]:
        """Compile one signal: its earned points (column ``e_<index>``) and its reason."""
        dialect = self.dialect
        earned_name = f"e_{index}"
        if signal.when is not None:
            fired = truth(held, dialect)
            earned: exp.Expr = exp.Case(
                ifs=[exp.If(this=fired, true=literal(float(signal.points)))],
                default=literal(0.0),
            )
            seen = (
                wrapped(observed, dialect)
                if observed is not None
                else dialect.json_object([("v", fired)])
            )
        else:
            fired = None
            # The rules' checker makes a value a number or a trait: it reads as a number.
            number = cast(exp.Expr, number_of(held, dialect))
            earned = exp.Case(
                ifs=[
                    exp.If(
                        this=exp.and_(
                            template(":x IS NOT NULL", x=number), dialect.is_finite(number)
                        ),
                        true=template(
                            "CAST(:p AS DOUBLE) * :x", p=literal(float(signal.points)), x=number
                        ),
                    )
                ],
                default=literal(0.0),
            )
            seen = wrapped(held, dialect)
        fired_sql = fired if fired is not None else template(f"{earned_name} <> 0")
        reason = dialect.json_object(
            [
                ("signal", literal(signal.name)),
                ("label", literal(signal.label)),
                ("points", literal(float(signal.points))),
                ("earned", exp.column(earned_name)),
                ("fired", fired_sql),
                ("observed", seen),
                ("needs", literal(signal.needs)),
            ]
        )
        return exp.alias_(earned, earned_name), reason

    def ctes(self, name: str, source: str) -> list[tuple[str, exp.Expr]]:
        dialect = self.dialect
        gate = exp.true() if self.gate is None else truth(self.gate, dialect)
        columns: list[exp.Expr] = [exp.alias_(gate, "gate_passed")]
        reasons = []
        for index, (signal, held, observed) in enumerate(self.signals):
            earned, reason = self._signal(index, signal, held, observed)
            columns.append(earned)
            reasons.append(reason)
        multiplier: exp.Expr = literal(1.0)
        if self.multiplier is not None:  # a number or a trait, as the checker allows
            number = cast(exp.Expr, number_of(self.multiplier, dialect))
            multiplier = exp.Case(
                ifs=[
                    exp.If(
                        this=exp.and_(
                            template(":x IS NOT NULL", x=number), dialect.is_finite(number)
                        ),
                        true=template("CAST(:x AS DOUBLE)", x=number),
                    )
                ],
                default=template("CAST(1.0 AS DOUBLE)"),
            )
        columns.append(exp.alias_(multiplier, "multiplier"))
        for part in ("gate", "multiplier"):
            if part in self.measured:
                values = [
                    dialect.json_object(
                        [("text", literal(text)), ("value", wrapped(value, dialect))]
                    )
                    for text, value in self.measured[part]
                ]
                columns.append(exp.alias_(dialect.json_array(values), f"{part}_measured"))
            else:
                columns.append(exp.alias_(exp.Null(), f"{part}_measured"))
        signals = select(f"SELECT * FROM {source}")  # noqa: S608 - the compiler's own CTE name
        signals = signals.select(*columns, copy=False)
        raw = literal(0.0)
        for index in range(len(self.signals)):
            raw = exp.Add(this=raw, expression=exp.column(f"e_{index}"))
        raw = exp.paren(raw)
        # The reasons read the earned columns: a step after the one that names them.
        # One JSON array: the reader decodes one document a row, not one a reason.
        totals = template(
            "SELECT *, :reasons AS reasons, :rounded AS raw, CASE WHEN gate_passed "
            "THEN :scored + CAST(0.0 AS DOUBLE) "
            "ELSE CAST(0.0 AS DOUBLE) END AS score FROM signals_",
            reasons=dialect.json_array(reasons),
            rounded=dialect.round9(raw),
            scored=dialect.round9(template(":raw * multiplier", raw=raw)),
        )
        tiers = self.model.tiers
        tier = exp.Case(
            ifs=[
                exp.If(
                    this=template("score >= :t", t=literal(float(threshold))),
                    true=literal(tier_name),
                )
                for threshold, tier_name in reversed(tiers)
            ],
            default=literal(tiers[0][1]),
        )
        tiered = template("SELECT *, :tier AS tier FROM totals_", tier=tier)
        route_ifs = []
        if self.dnc is not None:
            route_ifs.append(exp.If(this=truth(self.dnc, dialect), true=literal("do_not_contact")))
        route_ifs += [
            exp.If(this=truth(when, dialect), true=literal(route)) for route, when in self.routes
        ]
        route = (
            exp.Case(ifs=route_ifs, default=literal(self.model.default_route))
            if route_ifs
            else literal(self.model.default_route)
        )
        routed = template(
            "SELECT id, account_id, score, tier, :route AS route, gate_passed, multiplier, raw, "
            "reasons, gate_measured, multiplier_measured FROM tiered_",
            route=route,
        )
        renames = {
            "signals_": f"{name}_signals",
            "totals_": f"{name}_totals",
            "tiered_": f"{name}_tiered",
        }
        steps = [
            (f"{name}_signals", signals),
            (f"{name}_totals", totals),
            (f"{name}_tiered", tiered),
            (name, routed),
        ]
        for _, body in steps:
            for table in body.find_all(exp.Table):
                if table.name in renames:
                    table.set("this", exp.to_identifier(renames[table.name]))
        return steps


def _located(
    origin: str, path: Sequence[str | int], source: str, error: Unsupported, dialect: Dialect
) -> RulesError:
    """Place a ``RulesError`` at the construct, in the rules file when it can be read again.

    The message says which engines can run it: the python engine always, and
    the SQL engines that do not refuse the construct.
    """
    if error.construct is None:
        message = f"{error} (runs on {_ALL_ENGINES}, not in SQL)"
    else:
        able = [d.engine for d in DIALECTS.values() if error.construct not in d.refuses]
        engines = " and ".join([_ALL_ENGINES, *(f"--engine {name}" for name in able)])
        message = f"{error} (runs on {engines}; not on --engine {dialect.engine})"
    try:
        from ..rules._loader import _decode  # noqa: PLC0415 - only to place an error

        text = Path(origin).read_text(encoding="utf-8")
        where, _ = _decode(text, origin, "json" if origin.endswith(".json") else "toml")
        return where.in_value(tuple(path), _as_expression_error(message, error))
    except (OSError, RulesError, KeyError):
        return RulesError(f"{message}: {source!r}", path=origin, line=0, column=0)


def _as_expression_error(message: str, error: Unsupported) -> ExpressionError:
    return ExpressionError(message, error.offset, error.length)


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


def compile_plan(
    rules: Rules, model: str | None = None, *, now: int | None = None, dialect: Dialect = DUCKDB
) -> Plan:
    """Compile the steps that score ``model``'s subjects and the accounts, sharing their work.

    Added in version 0.1.0.
    """
    builder = _new_builder(rules, now, dialect)
    users = exp.select("*").from_(builder.compile(rules.model(model)))
    users = users.order_by(dialect.collated(exp.column("id")))
    accounts, extra = _roll_up(builder, rules)
    return Plan([*builder.steps(), *extra], users, accounts, dialect)


def _roll_up(builder: _Builder, rules: Rules) -> tuple[exp.Select, list[tuple[str, exp.Expr]]]:
    """Select the accounts' roll-up; return it and the CTEs it adds to ``builder``'s."""
    pqa = rules.pqa
    accounts = select("SELECT DISTINCT gid AS id FROM m WHERE type = 'group'")
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
        name = builder.compile(user_model)
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
                for column in (
                    "score",
                    "tier",
                    "route",
                    "gate_passed",
                    "multiplier",
                    "raw",
                    "reasons",
                    "gate_measured",
                    "multiplier_measured",
                )
            ),
        ).join(f"{name} AS own_", on="own_.id = accounts_.id", join_type="left")
    return final.order_by(dialect.collated(exp.column("id", "accounts_"))), extra


def _new_builder(rules: Rules, now: int | None, dialect: Dialect) -> _Builder:
    builder = _Builder(rules, now, dialect)
    builder.pending = []
    return builder
