"""Apache Spark: the compiled queries run by ``spark.sql``, as on a cluster (``pqlsdk[spark]``).

``score_spark`` takes a table (or DataFrame) of Segment messages and returns
two lazy DataFrames, the users' and the accounts' rows: each is one query with
every step of the plan as a CTE, run by ``spark.sql``, the same path as on a
cluster. Nothing is computed until the caller asks (``collect``, ``write``).

``pqlsdk score --engine spark`` reads a local file of messages: each one is
judged by the python reader, as the DuckDB engine judges its doubtful lines
(``_duckdb.judged``), so the same messages are refused and counted, and the
accepted ones reach Spark as the reader made them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import msgspec
from sqlglot import exp

from .._exceptions import ConfigError
from ..rules._model import Rules
from . import _duckdb
from ._compile import Plan, compile_plan
from ._dialect_spark import FLOATS, SPARK
from ._run import Rows
from ._score import Scored, scored_rows
from ._values import literal

__all__ = ["MESSAGES_SCHEMA", "read_messages", "score_frame", "score_spark", "session"]

_TEXT: Final = ("type", "userId", "anonymousId", "messageId", "groupId", "event", "timestamp")
_JSON: Final = ("properties", "traits")

MESSAGES_SCHEMA: Final = (
    "seq BIGINT, "
    + ", ".join(f"`{name}` STRING" for name in _TEXT)
    + ", properties STRING, traits STRING"
)
"""The table ``score_spark`` reads best: a column per field, JSON as text, ``seq`` the order."""

_encode: Final = msgspec.json.Encoder().encode


def session(master: str = "local[*]", config: Mapping[str, str] | None = None) -> Any:
    """Return the active SparkSession, else a new one on ``master``; ``ConfigError`` if no pyspark.

    ``config``: settings for a new session (an active one is used as it is).
    """
    try:
        from pyspark.sql import SparkSession  # noqa: PLC0415 - the spark extra, on use
    except ImportError as exc:  # pragma: no cover - the test environment has the extra
        raise ConfigError("the spark engine needs pyspark: pip install 'pqlsdk[spark]'") from exc
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.master(master).appName("pqlsdk")
    settings = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}
    for key, value in {**settings, **(config or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _messages(spark: Any, table: str) -> exp.Select:
    """Select the messages of ``table`` as ``compile_plan`` reads them: JSON as ``VARIANT``.

    A missing column is NULL; ``properties`` and ``traits`` may be JSON text
    (parsed, each fraction given an exponent: ``_dialect_spark.FLOATS``) or
    ``VARIANT`` already. Without ``seq``, the order is ``timestamp``, then
    ``messageId``.
    """
    fields = {field.name.lower(): field for field in spark.table(table).schema.fields}

    def column(name: str) -> exp.Expr:
        found = fields.get(name.lower())
        return exp.column(found.name, quoted=True) if found is not None else exp.Null()

    selected: list[exp.Expr] = []
    for name in _TEXT:
        text = exp.cast(column(name), exp.DataType.build("STRING", dialect="spark"))
        selected.append(exp.alias_(text, name, quoted=True))
    for name in _JSON:
        found = fields.get(name)
        value: exp.Expr = column(name)
        if found is None:
            value = SPARK.template("CAST(NULL AS VARIANT)")
        elif found.dataType.typeName() != "variant":
            value = SPARK.template(
                "TRY_PARSE_JSON(REGEXP_REPLACE(CAST(:j AS STRING), :floats, '$1e0'))",
                j=value,
                floats=literal(FLOATS),
            )
        selected.append(exp.alias_(value, name))
    order = SPARK.template(
        "ROW_NUMBER() OVER (ORDER BY :t, :m)", t=column("timestamp"), m=column("messageId")
    )
    seq = column("seq") if "seq" in fields else order
    seq = exp.cast(seq, exp.DataType.build("BIGINT"))
    return exp.select(exp.alias_(seq, "seq"), *selected).from_(exp.to_table(table))


def _query(plan: Plan, messages: exp.Select, final: exp.Select) -> exp.Select:
    """Return ``final`` with the messages and every step of ``plan`` as its CTEs."""
    query = final.copy()
    for name, step in [("messages", messages), *plan.steps]:
        query = query.with_(name, as_=step, copy=False)
    return query


def _frame(spark: Any, query: exp.Select) -> Any:
    """Run ``query`` (lazily) with ``spark.sql``; its JSON columns as JSON text."""
    from pyspark.sql import functions  # noqa: PLC0415 - the spark extra, on use
    from pyspark.sql.types import VariantType  # noqa: PLC0415

    frame = spark.sql(SPARK.written(query))
    for field in frame.schema.fields:
        if isinstance(field.dataType, VariantType):
            frame = frame.withColumn(field.name, functions.to_json(field.name))
    return frame


def score_spark(
    spark: Any,
    rules: Rules,
    messages: Any,
    *,
    model: str | None = None,
    now: int | None = None,
) -> tuple[Any, Any]:
    """Return lazy DataFrames of the users' and the accounts' scores, with their reasons.

    ``messages`` is a table name (``schema.table`` allowed) or a DataFrame
    (registered as a temporary view) with the columns of ``MESSAGES_SCHEMA``;
    ``model`` the rules' model to score users with (default: the primary);
    ``now`` the evaluation time in µs (default: the cluster's clock). Each row
    holds a subject's score, tier, route, gate, multiplier and reasons (JSON
    text): the in-process engine's answer.

    Added in version 0.1.0.
    """
    table = messages
    if not isinstance(messages, str):
        table = f"pqlsdk_messages_{uuid.uuid4().hex}"
        messages.createOrReplaceTempView(table)
    plan = compile_plan(rules, rules.model(model).name, now=now, dialect=SPARK)
    source = _messages(spark, table)
    return (
        _frame(spark, _query(plan, source, plan.users)),
        _frame(spark, _query(plan, source, plan.accounts)),
    )


def _rows(lines: Path) -> Iterator[tuple[Any, ...]]:
    """Each message of a JSON Lines file as the python reader judges it (``MESSAGES_SCHEMA``).

    A refused message keeps its place with NULL fields, which the SQL refuses.
    """
    opened, _ = _duckdb._opened(lines)
    with opened as stream:
        seq = 0
        for line in stream:
            if not line.strip():  # as DuckDB reads JSON Lines: no seq
                continue
            seq += 1
            message = _duckdb.judged(line)
            if message is None:
                yield (seq, *([None] * (len(_TEXT) + len(_JSON))))
                continue
            fields = msgspec.json.decode(_encode(message))
            texts = (fields.get(name) for name in _TEXT)
            documents = (
                None if fields.get(name) is None else _encode(fields[name]).decode()
                for name in _JSON
            )
            yield (seq, *texts, *documents)


def read_messages(spark: Any, path: Path) -> tuple[Any, str | None]:
    """Read a local file of messages into a DataFrame (``MESSAGES_SCHEMA``); and its ``now``.

    A document's messages are the python reader's already (``_duckdb.source``).
    """
    with _duckdb.source(path) as (relation, file_now):
        rows = list(_rows(relation.meta[_duckdb._LINES]))
    return spark.createDataFrame(rows, schema=MESSAGES_SCHEMA), file_now


def score_frame(spark: Any, rules: Rules, model: str, frame: Any, *, now: int) -> Scored:
    """Score the messages of ``frame`` with Spark, as ``Score`` and ``AccountScore`` objects.

    Step by step, as ``_run.run`` does with DuckDB: each step of the plan is
    run by ``spark.sql`` and held (``localCheckpoint``) as a temporary view of
    its name. Planning one query of every step as CTEs (``score_spark``) costs
    Spark far more than running them on a small file: seconds per step.
    """
    table = f"pqlsdk_messages_{uuid.uuid4().hex}"
    frame.createOrReplaceTempView(table)
    plan = compile_plan(rules, model, now=now, dialect=SPARK)
    views = [table]
    try:
        source = _messages(spark, table)
        for name, step in plan.steps:
            body = step
            if name == "parsed":  # the first step reads the messages: they are its CTE
                alias = exp.TableAlias(this=exp.to_identifier("p"))
                body = exp.select("*").from_(exp.Subquery(this=step, alias=alias))
                body = body.with_("messages", as_=source)
            spark.sql(SPARK.written(body)).localCheckpoint().createOrReplaceTempView(name)
            views.append(name)
        refused = spark.sql("SELECT COUNT(*) FROM parsed WHERE type IS NULL").collect()[0][0]
        ran = Rows(
            int(refused),
            [row.asDict() for row in _frame(spark, plan.users).collect()],
            [row.asDict() for row in _frame(spark, plan.accounts).collect()],
        )
    finally:
        for view in views:
            spark.catalog.dropTempView(view)
    return scored_rows(rules, model, ran, now=now)
