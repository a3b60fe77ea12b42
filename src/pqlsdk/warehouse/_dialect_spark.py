"""Apache Spark SQL (4.x): JSON as ``VARIANT``, higher-order functions for lists and lambdas.

A JSON value is a ``VARIANT`` (``parse_json``): SQL ``NULL`` is a missing value
and a variant null is JSON ``null``, as with the other engines' JSON types.
Spark's variant keeps a number's kind only in part: an integer is a ``BIGINT``
(or an exact ``DECIMAL`` with no fraction when it is too large), a number with
an exponent a ``DOUBLE``, but ``3.0`` becomes the decimal ``3``. The messages
relation (``_spark.messages_view``) therefore gives every fraction an exponent
before ``parse_json`` reads it (``FLOATS``): a float stays a ``DOUBLE``, an int
stays an int, exactly as Python decodes them.

Every function used runs under ANSI mode (Spark 4's default) and without it:
``TRY_CAST`` and ``TRY_ELEMENT_AT`` where a value may not fit, ``NULLIF`` on
divisors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, cast

from sqlglot import exp

from ._dialects import Dialect, JsonKind
from ._values import grouped, literal, template

__all__ = ["FLOATS", "SPARK", "Spark"]

FLOATS: Final = (
    "(-?(?:0|[1-9][0-9]*)[.][0-9]+)(?![0-9eE.])"
    '(?=(?:[^"\\\\]|\\\\.)*(?:"(?:[^"\\\\]|\\\\.)*"(?:[^"\\\\]|\\\\.)*)*$)'
)
"""A JSON number with a fraction and no exponent, outside strings (Java's regular expressions).

The lookahead sees an even number of unescaped quotes to the end of the text:
the number is not inside a string. ``$1e0`` replaces it, which ``parse_json``
reads as the ``DOUBLE`` Python decodes.
"""


class Spark(Dialect):
    """Apache Spark SQL: ``VARIANT`` for JSON, ``MAX_BY`` over ``(ts, seq)``, lambdas."""

    name = "spark"
    engine = "spark"

    _TYPES: Final = {
        "null": "is_variant_null(:j)",
        "boolean": "schema_of_variant(:j) = 'BOOLEAN'",
        "string": "schema_of_variant(:j) = 'STRING'",
        "number": "(schema_of_variant(:j) IN ('TINYINT', 'SMALLINT', 'INT', 'BIGINT', 'DOUBLE', "
        "'FLOAT') OR schema_of_variant(:j) LIKE 'DECIMAL(%')",
        "integer": "(schema_of_variant(:j) IN ('TINYINT', 'SMALLINT', 'INT', 'BIGINT') "
        "OR schema_of_variant(:j) LIKE 'DECIMAL(%,0)')",
        "array": "schema_of_variant(:j) LIKE 'ARRAY<%'",
    }

    def template(self, text: str, **parts: exp.Expr) -> exp.Expr:
        """Parse ``text`` as Spark SQL; ``parse_json`` stays a call (sqlglot would drop it)."""
        return _spark_sql(template(text, read=self.name, **parts))

    def written(self, tree: exp.Expr, *, pretty: bool = False) -> str:
        """Write ``tree`` in Spark SQL, the compiler's ``JSON`` casts as ``VARIANT``."""
        return _spark_sql(tree.copy()).sql(self.name, pretty=pretty)

    def json_field(self, document: exp.Expr, name: str) -> exp.Expr:
        # Through a map: the name is a key (a literal), never a path to escape.
        return self.template(
            "TRY_ELEMENT_AT(TRY_VARIANT_GET(:d, '$', 'map<string,variant>'), :n)",
            d=document,
            n=literal(name),
        )

    def json_is(self, value: exp.Expr, kind: JsonKind) -> exp.Expr:
        return self.template(self._TYPES[kind], j=value)

    def json_number(self, value: exp.Expr) -> exp.Expr:
        return self.template("TRY_VARIANT_GET(:j, '$', 'double')", j=value)

    def json_text(self, value: exp.Expr) -> exp.Expr:
        return self.template("TRY_VARIANT_GET(:j, '$', 'string')", j=value)

    def json_flag(self, value: exp.Expr) -> exp.Expr:
        return self.template("TRY_VARIANT_GET(:j, '$', 'boolean')", j=value)

    def distinct_key(self, value: exp.Expr) -> exp.Expr:
        # A variant's JSON: ints without a fraction, floats with one, strings quoted.
        return self.template("TO_JSON(:j)", j=value)

    def json_of(self, value: exp.Expr, *, double: bool) -> exp.Expr:
        # A DOUBLE variant prints with its fraction (1.0): it reads back as a float.
        return self.template("CAST(:x AS VARIANT)", x=value)

    def json_object(self, pairs: Sequence[tuple[str, exp.Expr]]) -> exp.Expr:
        # NAMED_STRUCT as a call: sqlglot reads its keys as names (no placeholders there).
        # A bare NULL has no type a variant takes: it is JSON null's SQL NULL.
        fields = [
            part
            for key, value in pairs
            for part in (
                literal(key),
                self.template("CAST(NULL AS VARIANT)")
                if isinstance(value, exp.Null)
                else grouped(value.copy()),
            )
        ]
        struct = exp.Anonymous(this="NAMED_STRUCT", expressions=fields)
        return self.template("TO_VARIANT_OBJECT(:s)", s=struct)

    def json_array(self, items: Sequence[exp.Expr]) -> exp.Expr:
        if not items:
            return self.template("PARSE_JSON('[]')")
        return self.template("TO_VARIANT_OBJECT(:a)", a=exp.Array(expressions=list(items)))

    def json_agg(self, value: exp.Expr) -> exp.Expr:
        # Strings sort by their UTF-8 bytes: by code point, as Python sorts.
        return self.template("TO_VARIANT_OBJECT(ARRAY_SORT(COLLECT_LIST(:v)))", v=value)

    def json_map_agg(self, key: exp.Expr, value: exp.Expr) -> exp.Expr:
        return self.template(
            "TO_VARIANT_OBJECT(MAP_FROM_ENTRIES(ARRAY_SORT(COLLECT_LIST(STRUCT(:k, :v)))))",
            k=key,
            v=value,
        )

    def instant_us(self, text: exp.Expr, pattern: str) -> tuple[exp.Expr, exp.Expr]:
        # Computed from the digits, as for PostgreSQL: Spark's casts take forms Python
        # refuses and refuse some it takes. Days from the civil date by arithmetic
        # (Howard Hinnant's days_from_civil), so no date function sees a bad day.
        zoned = self.template(":t RLIKE :p", t=text, p=literal(f"^(?:{pattern})$"))
        parts = {
            "y": self.template("TRY_CAST(SUBSTR(:t, 1, 4) AS BIGINT)", t=text),
            "mo": self.template("TRY_CAST(SUBSTR(:t, 6, 2) AS BIGINT)", t=text),
            "d": self.template("TRY_CAST(SUBSTR(:t, 9, 2) AS BIGINT)", t=text),
            "h": self.template("TRY_CAST(SUBSTR(:t, 12, 2) AS BIGINT)", t=text),
            "mi": self.template("TRY_CAST(SUBSTR(:t, 15, 2) AS BIGINT)", t=text),
            "s": self.template("TRY_CAST(SUBSTR(:t, 18, 2) AS BIGINT)", t=text),
            "oh": self.template("TRY_CAST(SUBSTR(RIGHT(:t, 6), 2, 2) AS BIGINT)", t=text),
            "om": self.template("TRY_CAST(SUBSTR(RIGHT(:t, 6), 5, 2) AS BIGINT)", t=text),
            "utc": self.template("UPPER(RIGHT(:t, 1)) = 'Z'", t=text),
            "minus": self.template("SUBSTR(RIGHT(:t, 6), 1, 1) = '-'", t=text),
            "fraction": self.template(
                "TRY_CAST(RPAD(SUBSTR(REGEXP_EXTRACT(:t, '^.{19}[.]([0-9]+)', 1), 1, 7), 7, '0') "
                "AS BIGINT)",
                t=text,
            ),
        }
        valid = self.template(
            """
            :y >= 1 AND :mo BETWEEN 1 AND 12
            AND :d BETWEEN 1 AND CASE
                WHEN :mo IN (4, 6, 9, 11) THEN 30
                WHEN :mo <> 2 THEN 31
                WHEN :y % 4 = 0 AND (:y % 100 <> 0 OR :y % 400 = 0) THEN 29
                ELSE 28 END
            AND :h <= 23 AND :mi <= 59 AND :s <= 59
            AND (:utc OR (:oh <= 23 AND :om <= 59))
            """,
            **parts,
        )
        shifted = self.template("(:y - CASE WHEN :mo <= 2 THEN 1 ELSE 0 END)", **parts)
        era = self.template(":sy DIV 400", sy=shifted)
        yoe = self.template("(:sy - :era * 400)", sy=shifted, era=era)
        doy = self.template(
            "((153 * (:mo + CASE WHEN :mo > 2 THEN -3 ELSE 9 END) + 2) DIV 5 + :d - 1)", **parts
        )
        days = self.template(
            ":era * 146097 + :yoe * 365 + :yoe DIV 4 - :yoe DIV 100 + :doy - 719468",
            era=era,
            yoe=yoe,
            doy=doy,
        )
        micros = self.template(
            """
            :days * 86400000000 + :h * 3600000000 + :mi * 60000000 + :s * 1000000
            + (:fraction + 5) DIV 10
            - CASE WHEN :utc THEN 0 ELSE (CASE WHEN :minus THEN -1 ELSE 1 END)
                * (:oh * 3600000000 + :om * 60000000) END
            """,
            days=days,
            **parts,
        )
        # Python refuses an instant outside years 1 to 9999 once in UTC.
        instant = self.template(
            """
            CASE WHEN :zoned AND :valid
                AND :us BETWEEN -62135596800000000 AND 253402300799999999 THEN :us END
            """,
            zoned=zoned,
            valid=valid,
            us=micros,
        )
        return instant, exp.true()

    def now_us(self) -> exp.Expr:
        return self.template("UNIX_MICROS(CURRENT_TIMESTAMP())")

    def is_finite(self, number: exp.Expr) -> exp.Expr:
        # Spark orders NaN above infinity: ABS() < inf is false for both.
        return self.template("ABS(:x) < CAST('Infinity' AS DOUBLE)", x=number)

    def is_nan(self, number: exp.Expr) -> exp.Expr:
        # Spark's NaN equals itself; ISNAN(NULL) would be FALSE, not NULL.
        return self.template("(:x = CAST('NaN' AS DOUBLE))", x=number)

    def divide(self, dividend: exp.Expr, divisor: exp.Expr) -> exp.Expr:
        return self.template("(CAST(:a AS DOUBLE) / NULLIF(:b, 0))", a=dividend, b=divisor)

    def modulo(self, dividend: exp.Expr, divisor: exp.Expr, *, integer: bool) -> exp.Expr:
        # Java's % is C's fmod on doubles (exact) and truncated on ints: the
        # dividend's sign; a nonzero result moves to the divisor's.
        return self.template(
            "(CASE WHEN :a % NULLIF(:b, 0) <> 0 "
            "AND (:a % NULLIF(:b, 0) < 0) <> (:b < 0) "
            "THEN :a % NULLIF(:b, 0) + :b ELSE :a % NULLIF(:b, 0) END)",
            a=dividend,
            b=divisor,
        )

    def round9(self, number: exp.Expr) -> exp.Expr:
        # Spark rounds a double's shortest text, half up: PostgreSQL's round9.
        return self.template("ROUND(:x, 9)", x=number)

    def best(
        self, name: str, items: Sequence[tuple[exp.Expr, exp.Expr]]
    ) -> tuple[exp.Expr, exp.Expr]:
        # AGGREGATE walks the items in order, as Python does; NaN = NaN in Spark.
        better = "b.v < a.v" if name == "min" else "b.v > a.v"
        structs = [
            self.template("named_struct('v', CAST(:x AS DOUBLE), 'w', :w)", x=number, w=whole)
            for number, whole in items
        ]
        winner = self.template(
            "AGGREGATE(SLICE(:items, 2, :n), :first, (a, b) -> CASE "
            "WHEN a.v IS NULL OR b.v IS NULL THEN named_struct('v', CAST(NULL AS DOUBLE), "
            "'w', CAST(NULL AS BOOLEAN)) "
            f"WHEN {better} AND NOT isnan(a.v) AND NOT isnan(b.v) THEN b ELSE a END)",
            items=exp.Array(expressions=structs),
            n=literal(len(structs)),
            first=structs[0],
        )
        return (
            exp.Dot(this=winner.copy(), expression=exp.to_identifier("v")),
            exp.Dot(this=winner, expression=exp.to_identifier("w")),
        )

    def any_element(self, array: exp.Expr, test: exp.Expr) -> exp.Expr:
        return self.template(
            "EXISTS(TRY_VARIANT_GET(:list, '$', 'array<variant>'), item -> COALESCE(:test, FALSE))",
            list=array,
            test=test,
        )

    def latest(self, value: exp.Expr, condition: exp.Expr) -> exp.Expr:
        return self.template(
            "MAX_BY(:v, named_struct('ts', ts, 'seq', seq)) FILTER (WHERE :c)",
            v=value,
            c=condition,
        )

    def credited(self) -> exp.Select:
        # A window takes no FILTER: a NULL ordering (a track) is never the maximum.
        return cast(
            exp.Select,
            self.template(
                """
                SELECT * FROM (
                    SELECT m.*, MAX_BY(CASE WHEN type = 'group' THEN gid END,
                        CASE WHEN type = 'group' THEN named_struct('ts', ts, 'seq', seq) END)
                        OVER (PARTITION BY uid ORDER BY seq
                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS account_id
                    FROM m WHERE type IN ('group', 'track')
                ) AS linked
                WHERE type = 'track' AND account_id IS NOT NULL
                """
            ),
        )


def _spark_sql(tree: exp.Expr) -> exp.Expr:
    """Make the tree Spark's: JSON is ``VARIANT``, and ``PARSE_JSON`` stays a call."""

    def fix(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.ParseJSON):
            return exp.Anonymous(this="PARSE_JSON", expressions=[node.this])
        if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.JSON):
            if isinstance(node.this, exp.Null):
                return exp.cast(node.this, exp.DataType.build("VARIANT", dialect="spark"))
            return exp.Anonymous(this="PARSE_JSON", expressions=[node.this])
        return node

    return tree.transform(fix)


SPARK: Final = Spark()
