"""SQL engines: every piece of SQL that differs between engines, one class per engine.

The compiler (``_compile``, ``_expressions``, ``_values``) builds its query from
plain SQL that every engine reads the same way (``CASE``, ``COALESCE``,
``COUNT(*) FILTER``, joins, casts to ``DOUBLE``/``BIGINT``/``BOOLEAN``/``JSON``)
and asks its ``Dialect`` for the rest: reading JSON, the latest value by time,
turning text into instants, Python's ``%``, ``min``/``max``, rounding, building
JSON for the reasons. The tree is then written out in the engine's own SQL by
sqlglot (``Dialect.name``).

Adding an engine is one subclass of ``Dialect`` with every method below, and an
entry in ``_engines.DIALECTS``. Each method documents what its SQL must compute: the
in-process engine's answer, to the bit, or the construct goes into ``refuses``
and the compiler names it as an error at its place in the rules file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Final, Literal, cast

from sqlglot import exp

from ..messages import MAX_DEPTH
from ._values import literal, template

__all__ = [
    "DUCKDB",
    "POSTGRES",
    "Construct",
    "Dialect",
    "DuckDB",
    "JsonKind",
    "Postgres",
]

JsonKind = Literal["null", "boolean", "string", "number", "integer", "array"]
"""What a JSON value may be tested for; ``integer`` is a number Python decodes as an int."""

Construct = Literal["float_modulo"]
"""Constructs an engine may be unable to compute exactly (``Dialect.refuses``):

- ``float_modulo``: ``%`` on a number that may not be an int (Python's ``%`` on
  floats is C's exact ``fmod``, with the divisor's sign).
"""


class Dialect(ABC):
    """One SQL engine: its name for sqlglot, and the SQL of every engine-specific step.

    Arguments and results are sqlglot trees; every value from a rules file is
    already a literal in them. ``ts`` is a message's time in µs since the epoch
    (BIGINT), ``seq`` its arrival order (BIGINT, unique): "latest" always means
    the largest ``(ts, seq)``. A JSON value is the engine's JSON type, as a
    message sent it; SQL ``NULL`` stands for a missing value, JSON ``null`` is a
    value.
    """

    name: str
    """sqlglot's name of the dialect the SQL is written in (``duckdb``, ``postgres``)."""
    engine: str
    """The engine's name for ``pqlsdk score --engine`` and error messages."""
    refuses: frozenset[Construct] = frozenset()
    """Constructs this engine cannot compute exactly: refused at compile time."""

    def template(self, text: str, **parts: exp.Expr) -> exp.Expr:
        """Parse ``text`` (constant SQL of this dialect) with ``:name`` placeholders filled."""
        return template(text, read=self.name, **parts)

    def written(self, tree: exp.Expr, *, pretty: bool = False) -> str:
        """Write ``tree`` (the compiler's) as this engine's SQL text."""
        return tree.sql(self.name, pretty=pretty)

    # JSON, read ------------------------------------------------------------

    @abstractmethod
    def json_field(self, document: exp.Expr, name: str) -> exp.Expr:
        """Return the JSON value of key ``name`` in the JSON object ``document``.

        SQL NULL when the key is missing or ``document`` is not an object (or NULL).
        ``name`` is any text (``/``, ``~``, quotes): it enters as a literal.
        """

    @abstractmethod
    def json_is(self, value: exp.Expr, kind: JsonKind) -> exp.Expr:
        """Test whether the JSON ``value`` is of ``kind`` (NULL or FALSE for SQL NULL).

        ``integer`` is a number written without a fraction or exponent (``3``,
        not ``3.0`` or ``3e0``): what Python decodes as an ``int``.
        """

    @abstractmethod
    def json_number(self, value: exp.Expr) -> exp.Expr:
        """Return the DOUBLE a JSON number holds (only called on JSON numbers)."""

    @abstractmethod
    def json_text(self, value: exp.Expr) -> exp.Expr:
        """Return the text a JSON string holds, unescaped (only called on strings)."""

    @abstractmethod
    def json_flag(self, value: exp.Expr) -> exp.Expr:
        """Return the BOOLEAN a JSON ``true``/``false`` holds (only called on booleans)."""

    @abstractmethod
    def distinct_key(self, value: exp.Expr) -> exp.Expr:
        """Return a value to count ``DISTINCT``: equal exactly when Python's keys are.

        Python keys a property value by its JSON text as msgspec writes it, so
        ``1`` and ``1.0`` and ``"1"`` are three values, ``1.0`` and ``1.00`` one.
        """

    def collated(self, text: exp.Expr) -> exp.Expr:
        """Return ``text`` to compare and sort by code point, as Python does (not by locale)."""
        return text

    # JSON, written -----------------------------------------------------------

    @abstractmethod
    def json_of(self, value: exp.Expr, *, double: bool) -> exp.Expr:
        """Return the JSON of a typed SQL value (BIGINT, DOUBLE, text, BOOLEAN), or NULL.

        ``double``: ``value`` is a DOUBLE (finite), which Python holds as a float:
        its JSON must read back as a float (``1.0``, never ``1``).
        """

    @abstractmethod
    def json_object(self, pairs: Sequence[tuple[str, exp.Expr]]) -> exp.Expr:
        """Build a JSON object of the pairs, in order; a value is JSON or a typed SQL value.

        A DOUBLE value must read back as a float (``{"points": 1.0}``).
        """

    @abstractmethod
    def json_array(self, items: Sequence[exp.Expr]) -> exp.Expr:
        """Build a JSON array of JSON ``items``, in order (``[]`` when there are none)."""

    @abstractmethod
    def json_agg(self, value: exp.Expr) -> exp.Expr:
        """Aggregate a group's ``value`` (text) into a JSON array, ordered by ``value``."""

    @abstractmethod
    def json_map_agg(self, key: exp.Expr, value: exp.Expr) -> exp.Expr:
        """Aggregate a group's ``key`` and ``value`` (text) into a JSON object, by ``key``."""

    # Time ----------------------------------------------------------------------

    @abstractmethod
    def instant_us(self, text: exp.Expr, pattern: str) -> tuple[exp.Expr, exp.Expr]:
        """Read a message's ``timestamp`` text: ``(µs since the epoch, zoned)``.

        A message counts when ``zoned`` is true and the instant is not NULL.
        ``zoned``: whether the whole text matches the regular expression
        ``pattern`` (an ISO-8601 instant with its zone), or TRUE when the
        instant is NULL for every text that does not. The instant is a BIGINT,
        NULL when Python's reader refuses the text (a day the month lacks,
        24:00, a leap second, an offset past 23:59, a year outside 1 to 9999
        once in UTC); the fraction rounds half up on its 7th digit. Never an
        error: a bad timestamp refuses one message, not the query.
        """

    @abstractmethod
    def now_us(self) -> exp.Expr:
        """Return the engine's current time in µs since the epoch (BIGINT)."""

    # Numbers -------------------------------------------------------------------

    @abstractmethod
    def is_finite(self, number: exp.Expr) -> exp.Expr:
        """Whether a DOUBLE is neither infinite nor NaN (NULL stays NULL)."""

    @abstractmethod
    def is_nan(self, number: exp.Expr) -> exp.Expr:
        """Whether a DOUBLE is NaN (NULL stays NULL)."""

    @abstractmethod
    def divide(self, dividend: exp.Expr, divisor: exp.Expr) -> exp.Expr:
        """Divide as Python does: a DOUBLE (``7 / 2`` is 3.5), NULL when ``divisor`` is 0."""

    @abstractmethod
    def modulo(self, dividend: exp.Expr, divisor: exp.Expr, *, integer: bool) -> exp.Expr:
        """Python's ``%``: the sign of the divisor; NULL when ``divisor`` is 0.

        ``integer``: both are BIGINT and the result is one. Otherwise DOUBLEs,
        computed as C's ``fmod`` (exact), unless ``float_modulo`` is refused.
        """

    @abstractmethod
    def round9(self, number: exp.Expr) -> exp.Expr:
        """Round a DOUBLE to 9 decimals, as Python's ``round(x, 9)``."""

    @abstractmethod
    def best(
        self, name: str, items: Sequence[tuple[exp.Expr, exp.Expr]]
    ) -> tuple[exp.Expr, exp.Expr]:
        """Python's ``min``/``max`` (``name``) of ``(DOUBLE, is-int BOOLEAN)`` pairs.

        Return the winner's number and its flag: NULL if any number is NULL;
        otherwise, walking the items in order, an item replaces the best so far
        only if it is strictly better (``<`` for min) and neither is NaN.
        """

    @abstractmethod
    def any_element(self, array: exp.Expr, test: exp.Expr) -> exp.Expr:
        """Whether some element of the JSON ``array`` passes ``test``.

        ``test`` reads the element as the JSON column ``item``. FALSE (or NULL)
        when ``array`` is not a JSON array.
        """

    def doubtful(
        self, texts: Sequence[exp.Expr], documents: Sequence[exp.Expr], zoned: exp.Expr
    ) -> exp.Expr:
        """Whether the python reader might judge a message otherwise: FALSE by default.

        Where the messages come from a JSON file read by the engine, a field it
        reads as text may have been a number (``"userId": 5``, which the python
        reader refuses), an object may nest deeper than it allows, and a
        timestamp that fails ``zoned`` (the common form) may be one it reads.
        ``texts`` are such text fields, ``documents`` the JSON objects read
        (properties, traits). TRUE for every message the python reader could
        judge otherwise for them (and a few more): the runner has the python
        reader judge those (``_duckdb.run``). An engine reading typed columns
        needs no doubt.
        """
        return exp.false()

    def id_key(self, text: exp.Expr) -> exp.Expr:
        """Return a key of a ``messageId`` to find repeated ids by: equal for equal ids.

        Different ids may share a key (a hash): the ids are compared exactly
        afterwards. By default the id itself.
        """
        return text

    # Relations -----------------------------------------------------------------

    @abstractmethod
    def latest(self, value: exp.Expr, condition: exp.Expr) -> exp.Expr:
        """Aggregate the group's latest ``value``: of its largest ``(ts, seq)`` row.

        Only rows where ``condition`` holds count; NULL when none does.
        """

    @abstractmethod
    def credited(self) -> exp.Select:
        """Select the tracks of ``m`` credited to an account, with column ``account_id``.

        Every column of ``m`` for each ``track``, and ``account_id``: the
        ``gid`` of the latest ``group`` message of the same ``uid`` that arrived
        before it (smaller ``seq``); tracks without one are left out.
        """


class DuckDB(Dialect):
    """DuckDB, embedded: JSON pointers, ``ARG_MAX`` over ``(ts, seq)``, lists and lambdas."""

    name = "duckdb"
    engine = "duckdb"

    _TYPES: Final = {
        "null": "json_type(:j) = 'NULL'",
        "boolean": "json_type(:j) = 'BOOLEAN'",
        "string": "json_type(:j) = 'VARCHAR'",
        "number": "json_type(:j) IN ('BIGINT', 'UBIGINT', 'DOUBLE')",
        "integer": "json_type(:j) IN ('BIGINT', 'UBIGINT')",
        "array": "json_type(:j) = 'ARRAY'",
    }

    _COMMON: Final = (
        "([1-8]\\d{3}|9[0-8]\\d{2}|99[0-8]\\d|0[1-9]\\d{2}|00[1-9]\\d)-\\d{2}-\\d{2}[T ]"
        "([01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(\\.\\d{1,6})?(Z|[+-]([01]\\d|2[0-3]):[0-5]\\d)"
    )
    """The timestamps DuckDB's cast reads as the python reader does.

    Other forms (``t``/``z``, ``+0100``, hour 24, more than 6 digits of
    fraction, years 0-9 and 9999, which an offset may move out of range) are
    refused here and marked doubtful, for the python reader to judge.
    """

    def json_field(self, document: exp.Expr, name: str) -> exp.Expr:
        pointer = literal("/" + name.replace("~", "~0").replace("/", "~1"))
        return self.template(":d -> :p", d=document, p=pointer)

    def json_is(self, value: exp.Expr, kind: JsonKind) -> exp.Expr:
        return self.template(self._TYPES[kind], j=value)

    def json_number(self, value: exp.Expr) -> exp.Expr:
        return self.template("CAST(:j AS DOUBLE)", j=value)

    def json_text(self, value: exp.Expr) -> exp.Expr:
        return self.template(":j ->> '$'", j=value)

    def json_flag(self, value: exp.Expr) -> exp.Expr:
        return self.template("CAST(:j AS BOOLEAN)", j=value)

    def distinct_key(self, value: exp.Expr) -> exp.Expr:
        return value

    def json_of(self, value: exp.Expr, *, double: bool) -> exp.Expr:
        return self.template("to_json(:x)", x=value)

    def json_object(self, pairs: Sequence[tuple[str, exp.Expr]]) -> exp.Expr:
        text, parts = _object_text("json_object", pairs)
        return self.template(text, **parts)

    def json_array(self, items: Sequence[exp.Expr]) -> exp.Expr:
        if not items:
            return self.template("CAST('[]' AS JSON)")
        return self.template("to_json(:r)", r=exp.Array(expressions=list(items)))

    def json_agg(self, value: exp.Expr) -> exp.Expr:
        return self.template("to_json(LIST(:v ORDER BY :v))", v=value)

    def json_map_agg(self, key: exp.Expr, value: exp.Expr) -> exp.Expr:
        return self.template(
            "to_json(MAP(LIST(:k ORDER BY :k), LIST(:v ORDER BY :k)))", k=key, v=value
        )

    def instant_us(self, text: exp.Expr, pattern: str) -> tuple[exp.Expr, exp.Expr]:
        return (
            self.template("epoch_us(TRY_CAST(:t AS TIMESTAMPTZ))", t=text),
            # Narrower than ``pattern``: the form DuckDB's cast reads as Python does.
            self.template("regexp_full_match(:t, :p)", t=text, p=literal(self._COMMON)),
        )

    def now_us(self) -> exp.Expr:
        return self.template("epoch_us(CURRENT_TIMESTAMP)")

    def is_finite(self, number: exp.Expr) -> exp.Expr:
        return self.template("isfinite(:x)", x=number)

    def is_nan(self, number: exp.Expr) -> exp.Expr:
        return self.template("isnan(:x)", x=number)

    def divide(self, dividend: exp.Expr, divisor: exp.Expr) -> exp.Expr:
        # DuckDB's ``/`` is true division, of BIGINTs too.
        return self.template("(:a / NULLIF(:b, 0))", a=dividend, b=divisor)

    def modulo(self, dividend: exp.Expr, divisor: exp.Expr, *, integer: bool) -> exp.Expr:
        # C's fmod takes the dividend's sign: move a nonzero result to the divisor's.
        sql = self.template(
            "(CASE WHEN fmod(:a, NULLIF(:b, 0)) <> 0 "
            "AND (fmod(:a, :b) < 0) <> (:b < 0) "
            "THEN fmod(:a, :b) + :b ELSE fmod(:a, NULLIF(:b, 0)) END)",
            a=dividend,
            b=divisor,
        )
        return exp.cast(sql, exp.DataType.build("BIGINT")) if integer else sql

    def round9(self, number: exp.Expr) -> exp.Expr:
        return self.template("ROUND(:x, 9)", x=number)

    def best(
        self, name: str, items: Sequence[tuple[exp.Expr, exp.Expr]]
    ) -> tuple[exp.Expr, exp.Expr]:
        # ``list_reduce`` walks the items in order, as Python does.
        better = "b.v < a.v" if name == "min" else "b.v > a.v"
        array = exp.Array(
            expressions=[
                self.template("{'v': CAST(:x AS DOUBLE), 'w': :w}", x=number, w=whole)
                for number, whole in items
            ]
        )
        winner = self.template(
            "LIST_REDUCE(:items, LAMBDA a, b : CASE WHEN a.v IS NULL OR b.v IS NULL THEN NULL "
            f"WHEN {better} AND NOT isnan(a.v) AND NOT isnan(b.v) THEN b ELSE a END)",
            items=array,
        )
        return (
            self.template("struct_extract(:s, 'v')", s=winner),
            self.template("struct_extract(:s, 'w')", s=winner),
        )

    def any_element(self, array: exp.Expr, test: exp.Expr) -> exp.Expr:
        return self.template(
            # The cast only sees an array: DuckDB's AND does not stop it failing.
            "LENGTH(LIST_FILTER("
            "CAST(CASE WHEN json_type(:list) = 'ARRAY' THEN :list END AS JSON[]), "
            "LAMBDA item : COALESCE(:test, FALSE))) > 0",
            list=array,
            test=test,
        )

    def doubtful(
        self, texts: Sequence[exp.Expr], documents: Sequence[exp.Expr], zoned: exp.Expr
    ) -> exp.Expr:
        # A text that parses as JSON may have been a number, a bool, an object: the
        # reader turned it into text. An object with more than MAX_DEPTH brackets
        # (counted in its text, strings included) may nest too deep; one that is
        # not an object is refused by the python reader. A timestamp of another form
        # than the common one is read by the python reader.
        # Only a text that starts as a JSON number, string, object or array (or is a
        # bool) is parsed: CASE, so that the ids of the usual kind cost a comparison.
        tests = [
            self.template(
                "CASE WHEN :t < ':' OR starts_with(:t, '[') OR starts_with(:t, '{') "
                "OR :t IN ('true', 'false') THEN json_valid(:t) ELSE FALSE END",
                t=text,
            )
            for text in texts
        ]
        # DuckDB writes JSON without spaces: a nested object or array follows a colon,
        # and the (costlier) count is only for objects that have one: CASE, not OR,
        # which DuckDB would evaluate whole.
        tests += [
            self.template(
                "CASE WHEN NOT starts_with(:d, '{') THEN TRUE "
                "WHEN contains(:d, ':{') OR contains(:d, ':[') "
                "THEN length(:d) - length(translate(:d, '{[', '')) > :n ELSE FALSE END",
                d=document,
                n=literal(MAX_DEPTH),
            )
            for document in documents
        ]
        tests.append(self.template("NOT :z", z=zoned))
        return self.template("COALESCE(:t, FALSE)", t=exp.or_(*tests))

    def id_key(self, text: exp.Expr) -> exp.Expr:
        # A 64-bit hash: DuckDB groups a million of them faster than a million ids.
        return self.template("hash(:t)", t=text)

    def latest(self, value: exp.Expr, condition: exp.Expr) -> exp.Expr:
        return self.template("ARG_MAX(:v, (ts, seq)) FILTER (WHERE :c)", v=value, c=condition)

    def credited(self) -> exp.Select:
        return cast(
            exp.Select,
            self.template(
                """
                SELECT * FROM (
                    SELECT m.*, ARG_MAX(gid, (ts, seq))
                        FILTER (WHERE type = 'group')
                        OVER (PARTITION BY uid ORDER BY seq
                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS account_id
                    FROM m WHERE type IN ('group', 'track')
                ) AS linked
                WHERE type = 'track' AND account_id IS NOT NULL
                """
            ),
        )


class Postgres(Dialect):
    """PostgreSQL: ``json`` operators, ``ARRAY_AGG`` for the latest value, subqueries for lambdas.

    JSON stays PostgreSQL's ``json`` (text as sent), not ``jsonb``, which would
    rewrite numbers (``1e2`` as ``100``: an int where Python sees a float) and
    sort keys. Floats print shortest-exact as long as ``extra_float_digits`` is
    at least 1 (the default since PostgreSQL 12).
    """

    name = "postgres"
    engine = "postgres"
    # float8 has no exact fmod: numeric conversions round to 15 digits.
    refuses = frozenset({"float_modulo"})

    _TYPES: Final = {
        "null": "json_typeof(:j) = 'null'",
        "boolean": "json_typeof(:j) = 'boolean'",
        "string": "json_typeof(:j) = 'string'",
        "number": "json_typeof(:j) = 'number'",
        "integer": "(json_typeof(:j) = 'number' AND NOT CAST(:j AS TEXT) ~ '[.eE]')",
        "array": "json_typeof(:j) = 'array'",
    }

    def json_field(self, document: exp.Expr, name: str) -> exp.Expr:
        return self.template(":d -> :n", d=document, n=literal(name))

    def json_is(self, value: exp.Expr, kind: JsonKind) -> exp.Expr:
        return self.template(self._TYPES[kind], j=value)

    def json_number(self, value: exp.Expr) -> exp.Expr:
        return self.template("CAST(:j #>> '{}' AS DOUBLE PRECISION)", j=value)

    def json_text(self, value: exp.Expr) -> exp.Expr:
        return self.template(":j #>> '{}'", j=value)

    def json_flag(self, value: exp.Expr) -> exp.Expr:
        return self.template("CAST(:j #>> '{}' AS BOOLEAN)", j=value)

    def distinct_key(self, value: exp.Expr) -> exp.Expr:
        # Numbers by value and kind (1.0 = 1.00, 1 <> 1.0), strings unescaped, the rest as sent.
        return self.template(
            """
            CASE json_typeof(:j)
                WHEN 'number' THEN CASE WHEN CAST(:j AS TEXT) ~ '[.eE]'
                    THEN 'f' || CAST(CAST(:j #>> '{}' AS DOUBLE PRECISION) AS TEXT)
                    ELSE 'i' || CAST(CAST(:j #>> '{}' AS NUMERIC) AS TEXT) END
                WHEN 'string' THEN 's' || (:j #>> '{}')
                ELSE CAST(:j AS TEXT)
            END
            """,
            j=value,
        )

    def collated(self, text: exp.Expr) -> exp.Expr:
        return self.template(':t COLLATE "C"', t=text)

    def json_of(self, value: exp.Expr, *, double: bool) -> exp.Expr:
        if not double:
            return self.template("to_json(:x)", x=value)
        # float8 prints 1.0 as "1": give an integral float its ".0" back.
        return self.template(
            "CAST(regexp_replace(CAST(:x AS TEXT), '^(-?[0-9]+)$', '\\1.0') AS JSON)", x=value
        )

    def json_object(self, pairs: Sequence[tuple[str, exp.Expr]]) -> exp.Expr:
        text, parts = _object_text("json_build_object", pairs)
        return self.template(text, **parts)

    def json_array(self, items: Sequence[exp.Expr]) -> exp.Expr:
        if not items:
            return self.template("CAST('[]' AS JSON)")
        # ARRAY[...]: json_build_array takes at most 100 arguments.
        return self.template("array_to_json(:a)", a=exp.Array(expressions=list(items)))

    def json_agg(self, value: exp.Expr) -> exp.Expr:
        return self.template('json_agg(:v ORDER BY :v COLLATE "C")', v=value)

    def json_map_agg(self, key: exp.Expr, value: exp.Expr) -> exp.Expr:
        return self.template('json_object_agg(:k, :v ORDER BY :k COLLATE "C")', k=key, v=value)

    def instant_us(self, text: exp.Expr, pattern: str) -> tuple[exp.Expr, exp.Expr]:
        # Computed from the digits, not cast: PostgreSQL refuses offsets beyond
        # 15:59 (RFC 3339 allows 23:59), takes 24:00 and leap seconds, and a cast
        # fails the query where Python refuses one message.
        zoned = self.template(":t ~ :p", t=text, p=literal(f"^(?:{pattern})$"))
        valid = self.template(
            """
            CASE WHEN :zoned THEN
                CAST(SUBSTR(:t, 1, 4) AS INT) >= 1
                AND CAST(SUBSTR(:t, 6, 2) AS INT) BETWEEN 1 AND 12
                AND CAST(SUBSTR(:t, 9, 2) AS INT) BETWEEN 1 AND CASE
                    WHEN CAST(SUBSTR(:t, 6, 2) AS INT) IN (4, 6, 9, 11) THEN 30
                    WHEN CAST(SUBSTR(:t, 6, 2) AS INT) <> 2 THEN 31
                    WHEN MOD(CAST(SUBSTR(:t, 1, 4) AS INT), 4) = 0
                        AND (MOD(CAST(SUBSTR(:t, 1, 4) AS INT), 100) <> 0
                            OR MOD(CAST(SUBSTR(:t, 1, 4) AS INT), 400) = 0) THEN 29
                    ELSE 28 END
                AND CAST(SUBSTR(:t, 12, 2) AS INT) <= 23
                AND CAST(SUBSTR(:t, 15, 2) AS INT) <= 59
                AND CAST(SUBSTR(:t, 18, 2) AS INT) <= 59
                AND (UPPER(RIGHT(:t, 1)) = 'Z' OR (
                    CAST(SUBSTR(RIGHT(:t, 6), 2, 2) AS INT) <= 23
                    AND CAST(SUBSTR(RIGHT(:t, 6), 5, 2) AS INT) <= 59))
            END
            """,
            t=text,
            zoned=zoned,
        )
        # µs, the fraction rounded half up on its 7th digit as msgspec rounds it.
        micros = self.template(
            """
            CASE WHEN :valid THEN
                CAST(make_date(CAST(SUBSTR(:t, 1, 4) AS INT), CAST(SUBSTR(:t, 6, 2) AS INT),
                    CAST(SUBSTR(:t, 9, 2) AS INT)) - DATE '1970-01-01' AS BIGINT) * 86400000000
                + CAST(SUBSTR(:t, 12, 2) AS BIGINT) * 3600000000
                + CAST(SUBSTR(:t, 15, 2) AS BIGINT) * 60000000
                + CAST(SUBSTR(:t, 18, 2) AS BIGINT) * 1000000
                + COALESCE((CAST(RPAD(SUBSTR(SUBSTRING(:t FROM '^.{19}[.]([0-9]+)'), 1, 7), 7, '0')
                    AS BIGINT) + 5) / 10, 0)
                - CASE WHEN UPPER(RIGHT(:t, 1)) = 'Z' THEN 0 ELSE
                    (CASE WHEN SUBSTR(RIGHT(:t, 6), 1, 1) = '-' THEN -1 ELSE 1 END)
                    * (CAST(SUBSTR(RIGHT(:t, 6), 2, 2) AS BIGINT) * 3600000000
                        + CAST(SUBSTR(RIGHT(:t, 6), 5, 2) AS BIGINT) * 60000000) END
            END
            """,
            t=text,
            valid=valid,
        )
        # Most texts are plain: a day every month has, offsets within 15:59, at most 6
        # digits of fraction, years 2 to 9998. PostgreSQL's own cast reads those
        # exactly, and fast; the digits are added up only for the others. Python
        # refuses an instant outside years 1 to 9999 once in UTC.
        instant = self.template(
            """
            CASE
                WHEN SUBSTR(:t, 1, 4) COLLATE "C" BETWEEN '0002' AND '9998' AND :t ~ :plain
                THEN CAST(EXTRACT(EPOCH FROM CAST(:t AS TIMESTAMPTZ)) * 1000000 AS BIGINT)
                WHEN :us BETWEEN -62135596800000000 AND 253402300799999999 THEN :us
            END
            """,
            t=text,
            us=micros,
            plain=literal(_PLAIN_INSTANT),
        )
        # The instant is NULL for every text the pattern refuses: it says it all.
        return instant, exp.true()

    def now_us(self) -> exp.Expr:
        return self.template("CAST(EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) * 1000000 AS BIGINT)")

    def is_finite(self, number: exp.Expr) -> exp.Expr:
        # NaN sorts above infinity in PostgreSQL: abs() < inf is false for both.
        return self.template("ABS(:x) < CAST('Infinity' AS DOUBLE PRECISION)", x=number)

    def is_nan(self, number: exp.Expr) -> exp.Expr:
        # PostgreSQL's NaN equals itself.
        return self.template("(:x = CAST('NaN' AS DOUBLE PRECISION))", x=number)

    def divide(self, dividend: exp.Expr, divisor: exp.Expr) -> exp.Expr:
        # PostgreSQL's ``/`` on integers truncates: divide as floats.
        return self.template(
            "(CAST(:a AS DOUBLE PRECISION) / NULLIF(:b, 0))", a=dividend, b=divisor
        )

    def modulo(self, dividend: exp.Expr, divisor: exp.Expr, *, integer: bool) -> exp.Expr:
        # Only ints reach here (``refuses``). MOD takes the dividend's sign; every
        # MOD is guarded, as PostgreSQL may evaluate both sides of an AND.
        return self.template(
            "(CASE WHEN MOD(:a, NULLIF(:b, 0)) <> 0 "
            "AND (MOD(:a, NULLIF(:b, 0)) < 0) <> (:b < 0) "
            "THEN MOD(:a, NULLIF(:b, 0)) + :b ELSE MOD(:a, NULLIF(:b, 0)) END)",
            a=dividend,
            b=divisor,
        )

    def round9(self, number: exp.Expr) -> exp.Expr:
        # Through the shortest text that reads back as the float: a numeric cast
        # keeps only 15 digits.
        return self.template(
            "CAST(ROUND(CAST(CAST(:x AS TEXT) AS NUMERIC), 9) AS DOUBLE PRECISION)", x=number
        )

    def best(
        self, name: str, items: Sequence[tuple[exp.Expr, exp.Expr]]
    ) -> tuple[exp.Expr, exp.Expr]:
        # No lambdas: the items as rows. A NULL anywhere wins; a NaN first stays
        # (nothing compares better); otherwise the best non-NaN, the first of equals.
        direction = "ASC" if name == "min" else "DESC"
        rows = exp.Values(
            expressions=[
                exp.Tuple(
                    expressions=[
                        literal(index),
                        self.template("CAST(:x AS DOUBLE PRECISION)", x=number),
                        whole,
                    ]
                )
                for index, (number, whole) in enumerate(items, 1)
            ],
            alias=exp.TableAlias(
                this=exp.to_identifier("t"),
                columns=[exp.to_identifier(c) for c in ("i", "v", "w")],
            ),
        )

        def pick(column: str) -> exp.Expr:
            picked = self.template(
                f"""
                (SELECT CASE
                    WHEN BOOL_OR(v IS NULL) THEN NULL
                    WHEN BOOL_OR(i = 1 AND v = CAST('NaN' AS DOUBLE PRECISION))
                        THEN (ARRAY_AGG({column} ORDER BY i))[1]
                    ELSE (ARRAY_AGG({column} ORDER BY v {direction}, i)
                        FILTER (WHERE v <> CAST('NaN' AS DOUBLE PRECISION)))[1]
                END FROM (VALUES (1, 1, 1)) AS t(i, v, w))
                """  # noqa: S608 - constant column names and direction
            )
            cast(exp.Values, picked.find(exp.Values)).replace(rows.copy())
            return picked

        return pick("v"), pick("w")

    def any_element(self, array: exp.Expr, test: exp.Expr) -> exp.Expr:
        return self.template(
            "EXISTS (SELECT 1 FROM json_array_elements("
            "CASE WHEN json_typeof(:list) = 'array' THEN :list END) AS e(item) "
            "WHERE COALESCE(:test, FALSE))",
            list=array,
            test=test,
        )

    def latest(self, value: exp.Expr, condition: exp.Expr) -> exp.Expr:
        return self.template(
            "(ARRAY_AGG(:v ORDER BY ts DESC, seq DESC) FILTER (WHERE :c))[1]",
            v=value,
            c=condition,
        )

    def credited(self) -> exp.Select:
        # An aggregate's ORDER BY cannot be a window's: the running largest
        # (ts, seq) of the earlier groups, then that group's row by its seq.
        return cast(
            exp.Select,
            self.template(
                """
                SELECT linked.*, g.gid AS account_id FROM (
                    SELECT m.*, MAX(CASE WHEN type = 'group' THEN ARRAY[ts, seq] END)
                        OVER (PARTITION BY uid ORDER BY seq
                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS latest_group
                    FROM m WHERE type IN ('group', 'track')
                ) AS linked
                JOIN m AS g ON g.seq = linked.latest_group[2]
                WHERE linked.type = 'track'
                """
            ),
        )


_PLAIN_INSTANT: Final = (
    "^[0-9]{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
    "|(?:0[13578]|1[02])-31)[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[.][0-9]{1,6})?"
    "(?:[Zz]|[+-](?:0[0-9]|1[0-5]):[0-5][0-9])$"
)
"""An instant PostgreSQL's timestamptz reads as Python does: no day a month lacks, no
24:00 or leap second, offsets within 15:59, microseconds at most (no rounding)."""


def _object_text(
    function: str, pairs: Sequence[tuple[str, exp.Expr]]
) -> tuple[str, dict[str, exp.Expr]]:
    """``function(:k0, :v0, ...)`` and its parts: keys enter as literals, never as text."""
    text = ", ".join(f":k{i}, :v{i}" for i in range(len(pairs)))
    parts = {f"k{i}": literal(key) for i, (key, _) in enumerate(pairs)}
    parts |= {f"v{i}": value for i, (_, value) in enumerate(pairs)}
    return f"{function}({text})", parts


DUCKDB: Final = DuckDB()

POSTGRES: Final = Postgres()
