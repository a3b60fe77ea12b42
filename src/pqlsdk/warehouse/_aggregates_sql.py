"""The rules' aggregates and merged traits as SQL over the messages' steps.

What ``pqlsdk._aggregates`` keeps per user as tracks arrive (``count``,
``distinct``, ``active_days``, each with its filters and window), computed over a
group of tracks at once: a user's (``users``) or an account's credited ones
(``tallies``); and a trait merged by time, the latest message carrying it winning.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from .._aggregates import Aggregate
from ._dialects import Dialect, JsonKind
from ._message_steps import _Reads
from ._values import aliased, literal, select, template

__all__ = ["distinct_apart"]


def _filter_test(name: str, value: object, event: str | None, reads: _Reads) -> exp.Expr:
    """``properties[name] == value`` as ``Aggregate.matches`` decides it (bool is not 1).

    ``event``: the aggregate's, which the test is ANDed with (``_Reads.property``).
    """
    read = reads.property(name, event)
    dialect = reads.dialect
    cheaper = dialect.read_equals(read, value) if isinstance(value, str) else None
    if cheaper is not None:
        return cheaper
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
    event = aggregate.event
    tests += [_filter_test(name, value, event, reads) for name, value in aggregate.where]
    if aggregate.field is not None:
        field = reads.property(aggregate.field, event)
        null = dialect.read_equals(field, None)
        if null is not None:  # NOT null, and NULL (missing) is not counted
            tests.append(template("NOT :n AND :f IS NOT NULL", n=null, f=field.copy()))
        else:
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
        dialect.distinct_key(reads.property(aggregate.field, aggregate.event))
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
            aliased(
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
            exp.select(aliased(key, "late_id"))
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
                aliased(
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
                aliased(
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


def distinct_apart(grouped: exp.Select, key: str, dialect: Dialect) -> exp.Select:
    """Return ``grouped`` with each ``COUNT(DISTINCT x) FILTER (WHERE c)`` counted apart.

    ``grouped`` groups its rows by one expression, selected as ``key``. Where
    the engine counts a pair's groups for less (``Dialect.counts_distinct_apart``:
    DuckDB, whose distinct aggregates beside others cost it half of
    ``users``), each such count becomes a grouping of its own, of the
    (key, x) pairs where c holds and x is not NULL, counted by key and joined
    back: 0 where a group has none, as ``COUNT(DISTINCT ...)`` gives. The
    columns keep their names and order.
    """
    if not dialect.counts_distinct_apart:
        return grouped
    columns = grouped.expressions
    apart = {index: found for index, column in enumerate(columns) if (found := _distinct(column))}
    if not apart:
        return grouped
    (group_key,) = grouped.args["group"].expressions
    rest = grouped.copy()
    rest.set("expressions", [c.copy() for i, c in enumerate(columns) if i not in apart])
    outer = exp.select(
        *(
            aliased(
                template("COALESCE(:n, 0)", n=exp.column("n", f"d_{index}"))
                if index in apart
                else exp.column(column.alias_or_name, "g"),
                column.alias_or_name,
            )
            for index, column in enumerate(columns)
        )
    ).from_(exp.Subquery(this=rest, alias=exp.TableAlias(this=exp.to_identifier("g"))))
    for index, (value, condition) in apart.items():
        pairs = exp.select(aliased(group_key.copy(), "k")).from_(grouped.args["from_"].copy())
        if any(c.name == "now_us" for part in apart[index] for c in part.find_all(exp.Column)):
            # The clock's row (``grouped``'s join), for a window's edge only: it cost a tenth.
            for join in grouped.args.get("joins") or []:
                pairs = pairs.join(join.copy(), copy=False)
        pairs = pairs.where(
            exp.and_(
                condition.copy(), exp.Not(this=exp.Is(this=value.copy(), expression=exp.null()))
            ),
            copy=False,
        ).group_by(group_key.copy(), value.copy(), copy=False)
        counts = (
            select("SELECT k, COUNT(*) AS n")
            .from_(
                exp.Subquery(this=pairs, alias=exp.TableAlias(this=exp.to_identifier("p"))),
                copy=False,
            )
            .group_by("k", copy=False)
        )
        outer = outer.join(
            exp.Subquery(this=counts, alias=exp.TableAlias(this=exp.to_identifier(f"d_{index}"))),
            on=template(
                ":d IS NOT DISTINCT FROM :g",
                d=exp.column("k", f"d_{index}"),
                g=exp.column(key, "g"),
            ),
            join_type="left",
            copy=False,
        )
    return outer


def _distinct(column: exp.Expr) -> tuple[exp.Expr, exp.Expr] | None:
    """``(x, c)`` of a column ``COUNT(DISTINCT x) FILTER (WHERE c)`` or None.

    The one form ``_aggregate_sql`` writes a distinct count in.
    """
    counted = column.this if isinstance(column, exp.Alias) else None
    if not (
        isinstance(counted, exp.Filter)
        and isinstance(counted.this, exp.Count)
        and isinstance(counted.this.this, exp.Distinct)
        and len(counted.this.this.expressions) == 1
    ):
        return None
    return counted.this.this.expressions[0], counted.expression.this
