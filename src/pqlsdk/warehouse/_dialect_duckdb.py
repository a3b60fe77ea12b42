"""DuckDB's SQL: the pieces ``Dialect`` leaves to each engine (see ``_dialects``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, cast

import msgspec
from sqlglot import exp

from ..messages import MAX_DEPTH, MAX_MESSAGE_BYTES
from ._dialects import Dialect, JsonKind
from ._values import copied, literal

__all__ = ["DUCKDB", "TEXT", "DuckDB", "as_json", "refusable_numbers", "text_of"]

NUMBERS: Final = "[0-9]{19}|[0-9][eE][+-]?[0-9]{3}"
"""Numbers the python reader may refuse, as DuckDB keeps them (their text as written).

19 digits in a row may be an integer wider than 64 bits; an exponent of 3
digits may put a float past a double's range (``1e400``). Text that is no
number may match too: such a message is only judged by the python reader.
"""

_VALUES: Final = ":-?([0-9]{19}|[0-9.]+[eE][+-]?[0-9]{3})"
"""``NUMBERS`` where no array is: a number is a value there, right after a colon.

DuckDB writes JSON without spaces. A colon first lets the search skip from
colon to colon: it takes a third of the time of ``NUMBERS``.
"""


class DuckDB(Dialect):
    """DuckDB, embedded: JSON pointers, ``ARG_MAX`` over ``(ts, seq)``, lists and lambdas."""

    name = "duckdb"
    engine = "duckdb"
    writes_entries = True
    counts_repeats_first = True  # no repeat in a million messages: dropped in a sixth less time
    counts_distinct_apart = True  # the bench's users: a tenth less CPU

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

    def read_equals(self, read: exp.Expr, value: str | None) -> exp.Expr | None:
        # A property as read (``->``) is JSON written by DuckDB: a string in it is
        # escaped only where it must be, so a string of printable ASCII without
        # quote or backslash is equal exactly when its text is; null is ``null``.
        # Comparing text spares parsing the JSON on every message.
        if value is None:
            text = "null"
        elif all(" " <= char <= "~" and char not in '"\\' for char in value):
            text = f'"{value}"'
        else:
            return None
        return self.template(
            "COALESCE(CAST(:r AS VARCHAR) = :t, FALSE)", r=read, t=exp.Literal.string(text)
        )

    def json_of(self, value: exp.Expr, *, double: bool) -> exp.Expr:
        return self.template("to_json(:x)", x=value)

    def json_object(self, pairs: Sequence[tuple[str, exp.Expr]]) -> exp.Expr:
        # Written as text: DuckDB's json_object costs ~1 µs an object, and a
        # reason is one per signal per subject (a million for 10,000 users of
        # a playbook). Keys and string literals are encoded here, values by
        # to_json; an object or array built here is spliced in as text.
        pieces: list[exp.Expr | str] = []
        for index, (key, value) in enumerate(pairs):
            pieces.append(("{" if index == 0 else ",") + _encoded(key) + ":")
            pieces.append(text_of(value))
        pieces.append("}" if pairs else "{}")
        return as_json(pieces)

    def json_array(self, items: Sequence[exp.Expr]) -> exp.Expr:
        if not items:
            return self.template("CAST('[]' AS JSON)")
        pieces: list[exp.Expr | str] = ["["]
        for index, item in enumerate(items):
            if index:
                pieces.append(",")
            pieces.append(text_of(item))
        pieces.append("]")
        return as_json(pieces)

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
        # The usual ids (a lowercase letter first, none ``true``/``false``; or none)
        # pass one test of comparisons first (half the time of LEAST and GREATEST
        # over the texts): the per-text tests run for the rows that fail it.
        each = exp.or_(
            *(
                self.template(
                    "CASE WHEN :t < ':' OR starts_with(:t, '[') OR starts_with(:t, '{') "
                    "OR :t IN ('true', 'false') THEN json_valid(:t) ELSE FALSE END",
                    t=text,
                )
                for text in texts
            )
        )
        usual = exp.and_(
            *(
                self.template(
                    "COALESCE(:t >= 'a' AND :t < '{' AND :t <> 'true' AND :t <> 'false', TRUE)",
                    t=text.copy(),
                )
                for text in texts
            )
        )
        tests: list[exp.Expr] = [
            exp.Case(ifs=[exp.If(this=usual, true=exp.false())], default=exp.paren(each))
        ]
        # No document and the empty object, the most common (traits on tracks,
        # properties of half the bench's events), are settled by the first test:
        # CASE runs each later one on the rows left, and each costs a pass (the
        # first test took ``parsed``'s CPU down by 3 %).
        # DuckDB writes JSON without spaces: a nested object or array follows a colon,
        # and the (costlier) count is only for objects that have one: CASE, not OR,
        # which DuckDB would evaluate whole. A document longer than a whole message
        # may be (``strlen`` counts bytes, at no cost) is one the python reader refuses.
        # DuckDB keeps a number's text as written (``refusable_numbers``). A document
        # of 20 bytes or less has no room for 19 digits, but has for an exponent of 3
        # (``{"n":1e400}``): it is searched if it has an ``e`` or ``E`` (a quarter of
        # them, ``"feature"``: 2 % of ``parsed``'s CPU; ``translate`` to find a digit
        # before the ``e`` cost ten times the search). There, with no object or array
        # after a colon, the object holds no array: each number is a value, after a
        # colon (``_VALUES``).
        tests += [
            self.template(
                "CASE WHEN :d IS NULL OR :d = '{}' THEN FALSE "
                "WHEN NOT starts_with(:d, '{') OR strlen(:d) > :size THEN TRUE "
                "WHEN contains(:d, ':{') OR contains(:d, ':[') "
                "THEN strlen(:d) - strlen(replace(replace(:d, '{', ''), '[', '')) > :n "
                "OR :numbers "
                "WHEN strlen(:d) > 20 OR contains(:d, 'e') OR contains(:d, 'E') "
                "THEN regexp_matches(:d, :values) "
                "ELSE FALSE END",
                d=document,
                n=literal(MAX_DEPTH),
                size=literal(MAX_MESSAGE_BYTES),
                numbers=refusable_numbers(document),
                values=literal(_VALUES),
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


def refusable_numbers(document: exp.Expr) -> exp.Expr:
    """Whether the JSON text ``document`` may hold a number the python reader refuses.

    ``NUMBERS``, or where the text has no ``[`` (so no array) the faster ``_VALUES``.
    """
    return DUCKDB.template(
        "CASE WHEN contains(:d, '[') THEN regexp_matches(:d, :anywhere) "
        "ELSE regexp_matches(:d, :values) END",
        d=document,
        anywhere=literal(NUMBERS),
        values=literal(_VALUES),
    )


TEXT: Final = "pqlsdk_json_text"
"""The key, in a JSON value's ``meta``, of the text it was built from (``as_json``)."""


def _encoded(text: str) -> str:
    """``text`` as a JSON string (what to_json writes, read back alike)."""
    return msgspec.json.encode(text).decode()


def text_of(value: exp.Expr) -> exp.Expr | str:
    """Return the JSON text of ``value``, as text or as SQL giving it.

    A string literal is encoded here, JSON built here is its text, a ``CASE``
    of those a ``CASE`` of texts; anything else goes through to_json.
    """
    if isinstance(value, exp.Literal) and value.is_string:
        return _encoded(value.this)
    text = value.meta.get(TEXT)
    if text is not None:
        return copied(cast(exp.Expr, text))
    if (
        isinstance(value, exp.Case)
        and value.args.get("default") is not None
        and value.args.get("this") is None
        and all(branch.args["true"].meta.get(TEXT) is not None for branch in value.args["ifs"])
        and value.args["default"].meta.get(TEXT) is not None
    ):
        return exp.Case(
            ifs=[
                exp.If(this=copied(branch.this), true=copied(branch.args["true"].meta[TEXT]))
                for branch in value.args["ifs"]
            ],
            default=copied(value.args["default"].meta[TEXT]),
        )
    return DUCKDB.template("COALESCE(CAST(to_json(:v) AS VARCHAR), 'null')", v=value)


def as_json(pieces: Sequence[exp.Expr | str]) -> exp.Expr:
    """Concatenate ``pieces`` (JSON text) into a JSON value that remembers its text."""
    flat: list[exp.Expr | str] = []
    for piece in pieces:  # one concat, not one per level of nesting
        if isinstance(piece, exp.Anonymous) and piece.name == "concat":
            flat += piece.expressions
        else:
            flat.append(piece)
    merged: list[exp.Expr | str] = []
    for piece in flat:  # adjacent constants as one literal
        text = piece.this if isinstance(piece, exp.Literal) and piece.is_string else piece
        if isinstance(text, str) and merged and isinstance(merged[-1], str):
            merged[-1] += text
        else:
            merged.append(text)
    parts = [exp.Literal.string(p) if isinstance(p, str) else p for p in merged]
    joined: exp.Expr = (
        parts[0] if len(parts) == 1 else exp.Anonymous(this="concat", expressions=parts)
    )
    json = exp.cast(
        exp.paren(joined, copy=False), exp.DataType.build("JSON", dialect="duckdb"), copy=False
    )
    json.meta[TEXT] = joined  # shared with the cast: neither is changed in place, only copied
    return json


DUCKDB: Final = DuckDB()
