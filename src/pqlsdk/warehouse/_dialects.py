"""SQL engines: every piece of SQL that differs between engines, one class per engine.

The compiler (``_compile``, ``_expressions``, ``_values``) builds its query from
plain SQL that every engine reads the same way (``CASE``, ``COALESCE``,
``COUNT(*) FILTER``, joins, casts to ``DOUBLE``/``BIGINT``/``BOOLEAN``/``JSON``)
and asks its ``Dialect`` for the rest: reading JSON, the latest value by time,
turning text into instants, Python's ``%``, ``min``/``max``, rounding, building
JSON for the reasons. The tree is then written out in the engine's own SQL by
sqlglot (``Dialect.name``).

Adding an engine is one subclass of ``Dialect`` with every method below, and an
entry in ``_engines.DIALECTS``; each engine's class lives in
``_dialect_<engine>``. Each method documents what its SQL must compute: the
in-process engine's answer, to the bit, or the construct goes into ``refuses``
and the compiler names it as an error at its place in the rules file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

from sqlglot import exp

from ._values import literal, template

__all__ = ["Construct", "Dialect", "JsonKind", "object_text"]

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
    writes_entries: bool = False
    """Whether the engine writes each subject's ``--json`` entry (``_output_sql``)."""
    counts_repeats_first: bool = False
    """Whether repeated ``messageId`` keys are counted (one number) before being grouped.

    An engine that counts distinct values for less than it groups them by
    value skips the grouping when the count shows no repeat, as is usual.
    """
    counts_distinct_apart: bool = False
    """Whether a grouped ``COUNT(DISTINCT ...)`` is counted in a grouping of its own.

    An engine that groups pairs (subject, value) and then counts them for less
    than it counts distinct values beside other aggregates.
    """

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

    def read_equals(self, read: exp.Expr, value: str | None) -> exp.Expr | None:
        """Test a property as read (``_Reads.property``) against a string, or JSON null.

        ``value`` None: whether it holds JSON null. None when this engine has
        no cheaper test than ``json_is`` and the typed value (the default).
        """
        return None

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


def object_text(
    function: str, pairs: Sequence[tuple[str, exp.Expr]]
) -> tuple[str, dict[str, exp.Expr]]:
    """``function(:k0, :v0, ...)`` and its parts: keys enter as literals, never as text."""
    text = ", ".join(f":k{i}, :v{i}" for i in range(len(pairs)))
    parts = {f"k{i}": literal(key) for i, (key, _) in enumerate(pairs)}
    parts |= {f"v{i}": value for i, (_, value) in enumerate(pairs)}
    return f"{function}({text})", parts
