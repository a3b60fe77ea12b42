"""PostgreSQL's SQL: the pieces ``Dialect`` leaves to each engine (see ``_dialects``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, cast

from sqlglot import exp

from ._dialects import Dialect, JsonKind, object_text
from ._values import literal

__all__ = ["POSTGRES", "Postgres"]


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
        text, parts = object_text("json_build_object", pairs)
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


POSTGRES: Final = Postgres()
