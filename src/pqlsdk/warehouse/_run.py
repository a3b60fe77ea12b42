"""Running a compiled plan on a DB-API connection: each step held as a temporary table.

DuckDB and PostgreSQL both take the plan this way (their connections'
``execute`` returns a cursor): the messages are read once, and the facts and
the PQA model computed once, for both the users' and the accounts' rows.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final

import attrs
from sqlglot import exp

from .._exceptions import ConfigError
from ._compile import Plan
from ._dialects import Dialect
from ._output_sql import EXACT
from ._values import copied, select, template

__all__ = [
    "IN_FILE_ORDER",
    "PARSED_ROWS",
    "Rows",
    "Steps",
    "UnreadableError",
    "create",
    "prepared",
    "rows",
    "run",
]


IN_FILE_ORDER: Final = "pqlsdk_in_file_order"
"""The key, in a relation's ``meta``, that says: ``seq`` is the row's place (DuckDB).

Such a relation (``_duckdb.messages_relation``) reads its file without
numbering the rows (``WITH ORDINALITY`` makes DuckDB read on one thread), and
``parsed`` is written in file order (``PARSED_ROWS``): ``seq`` is the row's place there.
"""

PARSED_ROWS: Final = "parsed_rows"
"""The table ``parsed`` reads when written in file order: ``parsed`` is a view giving ``seq``."""


class UnreadableError(ConfigError):
    """The engine could not read the messages (a line that is not a JSON object, mostly)."""


@attrs.frozen
class Rows:
    """What running a plan gave: refused messages, users' rows, accounts' rows."""

    refused: int
    users: list[dict[str, Any]]
    accounts: list[dict[str, Any]]


def _execute(
    connection: Any,
    sql: str,
    engine: str,
    error: type[ConfigError] = ConfigError,
    parameters: list[Any] | None = None,
) -> Any:
    try:
        if parameters is None:
            return connection.execute(sql)
        return connection.execute(sql, parameters)
    except ConfigError:  # a connection that could not open (``_duckdb.Opening``): its own words
        raise
    except Exception as exc:  # the driver's errors: a file that is not JSON Lines, mostly
        raise error(f"{engine} could not score the messages: {exc}") from exc


def run(
    connection: Any,
    plan: Plan,
    relation: exp.Expr,
    judge: Callable[[], None] | None = None,
    *,
    once: bool = False,
) -> Rows:
    """Run ``plan`` over ``relation`` (the messages): each step becomes a temporary table.

    ``m`` (the accepted messages less the repeated ones) is a view: a filter
    over ``parsed`` costs less than writing a million rows again. So are a
    model's steps (``model_*``): one row a subject, read once for the rows
    (and for the tiers alone by the accounts' roll-up, which the engine
    computes without the reasons), where a table would copy every reason at
    each step. ``judge``
    runs once ``parsed`` is written, to settle the doubtful messages there.
    Return how many messages were refused, the users' rows and the accounts'
    rows (as dicts). The temporary tables stay: the caller's connection (or
    transaction) ends them. ``once``: the plan is not run again (it was compiled
    for this run), so its trees are written as they are, not copied first
    (``_text``); sqlglot may change them as it writes them.
    """
    steps = Steps(connection, plan.dialect, relation, judge, once=once)
    steps.queue(plan)
    return steps.rows()


class Steps:
    """A plan's steps run in order, as they are given: ``run``'s, on a thread if asked.

    ``threaded``: each statement is written (by sqlglot) on the caller's thread
    and run on a thread of its own, in the order given, so the caller compiles
    and writes the next steps while the engine runs the first (DuckDB holds no
    GIL while it runs a statement): ``parsed``, which reads every message, can
    start before the models' steps are compiled (``compile_plan``'s ``started``).
    The first failure is raised by ``users`` or ``rows``, and the steps after
    it are not run; ``close`` ends the thread, whatever happened (a failure of the
    caller's: the steps not yet run are dropped).
    """

    def __init__(
        self,
        connection: Any,
        dialect: Dialect,
        relation: exp.Expr,
        judge: Callable[[], None] | None = None,
        *,
        once: bool = False,
        threaded: bool = False,
    ) -> None:
        self._connection = connection
        self._dialect = dialect
        self._relation = relation
        self._judge = judge
        self._once = once
        self._added: set[str] = set()
        self._failed: BaseException | None = None
        self._found: list[Any] = []
        self._users_given = threading.Event()
        self._calls: queue.SimpleQueue[tuple[Callable[[], None], bool] | None] | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._calls = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._work, name="pqlsdk-steps")
            self._thread.start()

    def add(self, steps: Iterable[tuple[str, exp.Expr]]) -> None:
        """Run ``steps`` after those added before; a step already added (by name) is not again."""
        dialect = self._dialect
        for name, body in steps:
            if name in self._added:
                continue
            self._added.add(name)
            self._do(
                prepared(
                    self._connection,
                    name,
                    body,
                    dialect,
                    relation=self._relation if name == "parsed" else None,
                    view=name.startswith("model_"),
                    once=self._once,
                )
            )
            if name == "parsed" and self._judge is not None:
                self._do(self._judge)

    def queue(self, plan: Plan) -> None:
        """Add ``plan``'s steps and queries: the users' query as soon as the steps it reads.

        The steps only the accounts' query reads (its roll-up) come after the
        users' query: ``users`` gives the users' rows while the engine computes
        the accounts'; ``rows`` gives all.
        """
        dialect, once, connection = plan.dialect, self._once, self._connection
        # Walked before they are written (``once``: sqlglot may change them as it writes).
        read = _read_by(plan.users, [step for step in plan.steps if step[0] not in self._added])
        users = _text(plan.users, dialect, once=once)
        inexact = None if plan.inexact is None else _text(_by_ids(plan.inexact), dialect, once=once)
        self.add(step for step in plan.steps if step[0] in read)

        def query_users() -> None:
            refused = _execute(
                connection, "SELECT count(*) FROM parsed WHERE type IS NULL", dialect.engine
            ).fetchone()
            self._found.append(int(refused[0]))
            rows = _rows(connection, users, dialect.engine)
            if inexact is not None:
                _complete(connection, inexact, rows, dialect.engine)
            self._found.append(rows)

        self._do(query_users)
        self._do(self._users_given.set, always=True)
        self.add(plan.steps)
        accounts = _text(plan.accounts, dialect, once=once)
        self._do(lambda: self._found.append(_rows(connection, accounts, dialect.engine)))

    def users(self) -> tuple[int, list[dict[str, Any]]]:
        """Wait for the users' rows (``queue``); return the refused messages and those rows."""
        self._waiting(self._users_given.wait)  # set at once when not ``threaded``
        self._raise()
        refused, users = self._found[:2]
        return refused, users

    def rows(self) -> Rows:
        """Wait for the steps and queries (``queue``); return what the queries gave."""
        self._finish()
        return Rows(*self._found)

    def close(self) -> None:
        """End the thread (``threaded``), the steps not yet run dropped; nothing otherwise.

        A statement still running is interrupted (where the connection can,
        as DuckDB's): a caller stopped by Ctrl-C does not wait for the messages
        to be read. A failure of the steps' own yields to the caller's.
        """
        thread = self._thread
        if thread is None or self._calls is None:
            return
        running = self._failed is None
        if running:
            self._failed = _Dropped()
        self._calls.put(None)
        interrupt = getattr(self._connection, "interrupt", None) if running else None
        while thread.is_alive():
            if interrupt is not None:
                interrupt()  # again, for a statement that started after the last
            thread.join(_INTERRUPTED_SECONDS)
        self._thread = self._calls = None

    def _do(self, call: Callable[[], None], *, always: bool = False) -> None:
        """Run ``call`` after the calls before, unless one failed (``always``: even then)."""
        if self._calls is None:
            call()
        else:
            self._calls.put((call, always))

    def _work(self) -> None:
        assert self._calls is not None  # noqa: S101 - threaded
        while (item := self._calls.get()) is not None:
            call, always = item
            if self._failed is None or always:
                try:
                    call()
                except BaseException as exc:  # raised by ``rows``, on the caller's thread
                    self._failed = exc

    def _finish(self) -> None:
        """Wait for the steps given so far (``threaded``); raise the first failure."""
        if self._thread is not None and self._calls is not None:
            self._calls.put(None)
            self._waiting(self._thread.join)
            self._thread = self._calls = None
        self._raise()

    def _waiting(self, wait: Callable[[], object]) -> None:
        """``wait`` for the steps; stopped (Ctrl-C), stop them and raise what stopped them.

        As when the caller runs a statement itself (DuckDB's client checks for
        Ctrl-C between its tasks): the statement is interrupted and its failure
        raised, ``pqlsdk score`` saying it could not score the messages.
        """
        try:
            wait()
        except KeyboardInterrupt:
            self.close()
            failed = self._failed
            if failed is None or isinstance(failed, _Dropped):
                raise
            raise failed from None

    def _raise(self) -> None:
        """Raise the first failure of the steps, if any (not their being dropped)."""
        failed = self._failed
        if failed is not None and not isinstance(failed, _Dropped):
            raise failed


def _by_ids(query: exp.Select) -> exp.Select:
    """``query`` (``Plan.inexact``) for the ids given as its one parameter, a list."""
    return query.where(template("list_contains(CAST(? AS VARCHAR[]), id)"))


def _complete(connection: Any, sql: str, rows: list[dict[str, Any]], engine: str) -> None:
    """Complete the users' ``rows`` whose entry is not exact with the rest (``Plan.inexact``)."""
    inexact = {row["id"]: row for row in rows if not row[EXACT]}
    if not inexact:
        return  # as usual: one query, bound and run, less
    for found in _rows(connection, sql, engine, parameters=[list(inexact)]):
        inexact[found["id"]].update(found)


def _read_by(query: exp.Expr, steps: list[tuple[str, exp.Expr]]) -> set[str]:
    """Name the steps ``query`` reads, itself or through the steps it reads (of ``steps``)."""
    read = {table.name for table in query.find_all(exp.Table)}
    for name, body in reversed(steps):  # a step reads only the steps before it
        if name in read:
            read |= {table.name for table in body.find_all(exp.Table)}
    return read


_INTERRUPTED_SECONDS: Final = 0.05
"""How long ``Steps.close`` waits for an interrupted statement before interrupting again."""


class _Dropped(Exception):  # noqa: N818 - a marker, never raised
    """Marks the steps of a ``Steps`` closed early: those left are not run."""


def create(
    connection: Any,
    name: str,
    body: exp.Expr,
    dialect: Dialect,
    *,
    relation: exp.Expr | None = None,
    replace: bool = False,
    view: bool = False,
    once: bool = False,
) -> None:
    """Hold step ``name`` as a temporary table (``m``: a view); ``relation``: ``parsed``'s input.

    ``replace``: the step is run again (another instant of a replay, another rules file);
    ``view``: a view whatever its name (a filter read once costs less than a table);
    ``once``: ``body`` is not written again (``run``).
    A ``relation`` read in file order (``IN_FILE_ORDER``) is written to table
    ``PARSED_ROWS`` in that order, ``name`` being a view of it that adds ``seq``.
    """
    prepared(
        connection, name, body, dialect, relation=relation, replace=replace, view=view, once=once
    )()


def prepared(
    connection: Any,
    name: str,
    body: exp.Expr,
    dialect: Dialect,
    *,
    relation: exp.Expr | None = None,
    replace: bool = False,
    view: bool = False,
    once: bool = False,
) -> Callable[[], None]:
    """Write the statements of ``create``; return what runs them (``Steps`` runs it on a thread)."""
    step = body
    if relation is not None:  # the first step (``parsed``) reads the messages: its CTE
        step = exp.select("*").from_(
            exp.Subquery(this=body, alias=exp.TableAlias(this=exp.to_identifier("p")))
        )
        step = step.with_("messages", as_=relation)  # a copy: written once
        once = True
    error = UnreadableError if name == "parsed" else ConfigError
    kind = "VIEW" if view or name == "m" else "TABLE"
    engine = dialect.engine
    if relation is None or not relation.meta.get(IN_FILE_ORDER):
        created = _create(name, kind, step, replace, dialect, once=once)
        return lambda: _execute(connection, created, engine, error)
    # DuckDB reads the file on every core and, told to keep insertion order, writes
    # the rows in file order: the row's place (``rowid``) is its arrival order.
    table = _create(PARSED_ROWS, kind, step, replace, dialect, once=once)
    in_order = select("SELECT rowid + 1 AS seq, * EXCLUDE (seq)").from_(PARSED_ROWS)
    ordered = _create(name, "VIEW", in_order, replace, dialect)

    def in_file_order() -> None:
        _execute(connection, "SET preserve_insertion_order = true", engine)
        try:
            _execute(connection, table, engine, error)
        finally:
            _execute(connection, "SET preserve_insertion_order = false", engine)
        _execute(connection, ordered, engine)

    return in_file_order


def _create(
    name: str, kind: str, query: exp.Expr, replace: bool, dialect: Dialect, *, once: bool = False
) -> str:
    """``CREATE [OR REPLACE] TEMPORARY kind name AS query``, in ``dialect``'s SQL."""
    statement = exp.Create(
        this=exp.to_table(name),
        kind=kind,
        expression=query,
        replace=replace,
        properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
    )
    return _text(statement, dialect, once=once)


def _text(statement: exp.Expr, dialect: Dialect, *, once: bool) -> str:
    """Write ``statement`` in ``dialect``'s SQL; ``once``: it is not written again.

    sqlglot writes a copy of a tree, as it may change what it writes. Copying
    costs more than writing (twice, for a plan's steps), and a tree written
    once need not stay as it was: it is written as it is, when every node is
    where its links say (``_settled``), as in its copy; else its copy is.
    """
    written = statement if once and _settled(statement) else copied(statement)
    return written.sql(dialect.name, copy=False)


def _settled(tree: exp.Expr) -> bool:
    """Tell whether each node of ``tree`` is once in it, where its parent, key and index say.

    A copy of the tree is: a node put in two places (a builder does not copy
    what it is given) is not, and sqlglot reads a node's parent as it writes.
    """
    for node in tree.walk():
        for key, value in node.args.items():
            if isinstance(value, exp.Expr):
                if value.parent is not node or value.arg_key != key or value.index is not None:
                    return False
            elif type(value) is list:
                for index, item in enumerate(value):
                    if isinstance(item, exp.Expr) and (
                        item.parent is not node or item.arg_key != key or item.index != index
                    ):
                        return False
    return True


def rows(connection: Any, final: exp.Select, dialect: Dialect) -> list[dict[str, Any]]:
    """Run ``final``; return its rows as dicts."""
    return _rows(connection, copied(final).sql(dialect.name, copy=False), dialect.engine)


def _rows(
    connection: Any, sql: str, engine: str, parameters: list[Any] | None = None
) -> list[dict[str, Any]]:
    cursor = _execute(connection, sql, engine, parameters=parameters)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
