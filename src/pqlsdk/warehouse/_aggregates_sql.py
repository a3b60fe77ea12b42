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
from ._dialects import JsonKind
from ._message_steps import _Reads
from ._values import aliased, literal, select, template

__all__: list[str] = []


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
