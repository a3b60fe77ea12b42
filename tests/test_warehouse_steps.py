"""The duckdb engine's steps run on a thread as they compile: same plan, same order, no leftover."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest
from sqlglot import exp

import pqlsdk.rules
from pqlsdk._exceptions import ConfigError
from pqlsdk.cli import main
from pqlsdk.warehouse import _duckdb, compile_plan, score_file
from pqlsdk.warehouse._dialect_duckdb import DUCKDB
from pqlsdk.warehouse._run import Steps
from pqlsdk.warehouse._values import select

from .conftest import ROOT

PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"
EVENTS = ROOT / "examples" / "events.jsonl"


def _threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("pqlsdk")]


def test_the_messages_steps_are_given_before_the_models_compile() -> None:
    """``started`` gets the plan's first steps (clock and the messages'), as the plan holds them.

    They name the properties and traits the rules read, so they are the same
    steps, written the same, as in a plan compiled without ``started``.
    """
    rules = pqlsdk.rules.load(PLAYBOOK)
    given: list[list[tuple[str, exp.Expr]]] = []
    plan = compile_plan(rules, now=0, output=True, started=given.append)
    assert len(given) == 1
    assert [name for name, _ in given[0]] == ["clock", "parsed", "dropped", "m"]
    assert all(a is b for a, b in zip(given[0], plan.steps, strict=False))
    alone = compile_plan(rules, now=0, output=True)
    assert [(name, body.sql("duckdb")) for name, body in plan.steps] == [
        (name, body.sql("duckdb")) for name, body in alone.steps
    ]


def test_steps_on_a_thread_stop_at_the_first_failure_and_end_the_thread() -> None:
    """The first failing step is raised by ``rows``; the steps after it are not run.

    The thread is over once ``rows`` returns.
    """
    connection = _duckdb.connect()
    steps = Steps(connection, DUCKDB, select("SELECT 1 AS x"), threaded=True)
    steps.add(
        [
            ("first", select("SELECT 1 AS x")),
            ("broken", select("SELECT x FROM missing")),
            ("after", select("SELECT 2 AS x")),
        ]
    )
    try:
        with pytest.raises(ConfigError, match="missing"):
            steps.rows()
    finally:
        steps.close()
    tables = {
        name for (name,) in connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    }
    assert tables == {"first"}
    assert "pqlsdk-steps" not in _threads()


def test_steps_closed_early_drop_those_not_yet_run() -> None:
    """A caller that fails while the steps run (compiling, say) closes them: none after is run."""
    connection = _duckdb.connect()
    running = threading.Event()
    go_on = threading.Event()

    def hold() -> None:  # a step still running when the caller fails
        running.set()
        go_on.wait()

    steps = Steps(connection, DUCKDB, select("SELECT 1 AS x"), threaded=True)
    steps._do(hold)
    steps.add([("after", select("SELECT 2 AS x"))])
    running.wait()
    releasing = threading.Timer(0.05, go_on.set)  # once ``close`` has dropped the rest
    releasing.start()
    steps.close()
    releasing.join()
    assert connection.execute("SELECT table_name FROM duckdb_tables()").fetchall() == []
    assert "pqlsdk-steps" not in _threads()


def test_closing_steps_raises_none_of_their_failures() -> None:
    """``close`` ends the thread quietly: the caller's own failure is the one reported."""
    connection = _duckdb.connect()
    steps = Steps(connection, DUCKDB, select("SELECT 1 AS x"), threaded=True)
    steps.add([("broken", select("SELECT x FROM missing"))])
    failed = threading.Event()
    steps._do(failed.set, always=True)
    failed.wait()
    steps.close()
    assert "pqlsdk-steps" not in _threads()


class _Recording:
    """A connection that records each statement it runs."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.statements: list[str] = []

    def execute(self, sql: str, *args: Any) -> Any:
        self.statements.append(sql)
        return self.connection.execute(sql, *args)


def test_the_users_rows_come_before_the_accounts_roll_up_is_computed() -> None:
    """The users' query runs as soon as the steps it reads: the accounts' roll-up after it.

    ``users`` gives the users' rows while the engine computes the accounts' (the command
    formats the users meanwhile); ``rows`` gives them all, as ``_duckdb.run`` does.
    """
    rules = pqlsdk.rules.load(PLAYBOOK)
    plan = compile_plan(rules, now=0, output=True)
    connection = _Recording(_duckdb.connect())
    with _duckdb.source(EVENTS) as (relation, _):
        steps = _duckdb.steps(connection, relation, once=True, threaded=True)
        try:
            steps.queue(plan)
            refused, users = steps.users()
            ran = steps.rows()
        finally:
            steps.close()
    assert (refused, users) == (ran.refused, ran.users)
    assert users
    assert ran.accounts
    statements = connection.statements
    users_at = next(i for i, sql in enumerate(statements) if sql.startswith("SELECT id"))
    created = [(i, sql.split()[3]) for i, sql in enumerate(statements) if sql.startswith("CREATE")]
    assert [name for _, name in created[-3:]] == ["accounts_", "team_", "roll_"]
    assert users_at < created[-3][0]


def _running_endlessly(connection: Any) -> Steps:
    """Return steps on a thread whose statement never ends, once it runs."""
    steps = Steps(connection, DUCKDB, select("SELECT 1 AS x"), threaded=True)
    endless = select("SELECT count(*) AS n FROM range(10000000000000) AS t(x) WHERE x % 7 = 3")
    reached = threading.Event()
    steps._do(reached.set)
    steps.add([("endless", endless)])
    reached.wait()
    time.sleep(0.2)  # the endless statement runs
    return steps


def test_closing_steps_interrupts_the_statement_running() -> None:
    """A caller stopped (Ctrl-C, a failure) does not wait for a long step to end.

    DuckDB's statement is interrupted; the connection runs the next statement as usual.
    """
    connection = _duckdb.Opening()
    steps = _running_endlessly(connection)
    started = time.perf_counter()
    steps.close()
    assert time.perf_counter() - started < 5
    assert "pqlsdk-steps" not in _threads()
    assert connection.execute("SELECT 42").fetchall() == [(42,)]
    connection.close()


def test_ctrl_c_while_the_steps_run_stops_them_and_says_the_engine_was_interrupted() -> None:
    """Ctrl-C as the caller waits stops the running statement: its failure is what is raised.

    As when the caller ran the statement itself: ``pqlsdk score`` says DuckDB could not
    score the messages (exit status 2), the thread over.
    """
    connection = _duckdb.connect()
    steps = _running_endlessly(connection)

    def ctrl_c() -> None:
        raise KeyboardInterrupt

    with pytest.raises(ConfigError, match="could not score the messages"):
        steps._waiting(ctrl_c)
    assert "pqlsdk-steps" not in _threads()


def _intervals_during(call: Any) -> set[float]:
    """Call ``call``; return every switch interval a thread saw meanwhile (each millisecond)."""
    seen: set[float] = set()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.add(sys.getswitchinterval())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        call()
    finally:
        done.set()
        sampler.join()
    return seen


def test_scoring_as_a_library_leaves_the_switch_interval_alone() -> None:
    """``score_file`` in a host's process keeps the host's switch interval throughout."""
    rules = pqlsdk.rules.load(ROOT / "examples" / "rules" / "playbook.toml")
    interval = sys.getswitchinterval()
    seen = _intervals_during(
        lambda: score_file(rules, ROOT / "examples" / "events.jsonl", now=1773576000000000)
    )
    assert seen == {interval}


def test_pqlsdk_score_shortens_the_switch_interval_while_it_runs_and_gives_it_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The command owns its process: a short interval while it scores, the old one after."""
    interval = sys.getswitchinterval()
    arguments = [
        "score",
        str(ROOT / "examples" / "rules" / "playbook.toml"),
        str(ROOT / "examples" / "events.jsonl"),
        "--now",
        "2026-03-15T12:00:00Z",
        "--engine",
        "duckdb",
    ]
    seen = _intervals_during(lambda: main(arguments))
    assert "Users by score" in capsys.readouterr().out
    assert min(seen) < interval
    assert sys.getswitchinterval() == interval


def test_ctrl_c_while_no_statement_runs_is_raised_as_it_came() -> None:
    """Ctrl-C as the caller waits, the steps idle: the thread ends, KeyboardInterrupt is raised."""
    steps = Steps(_duckdb.connect(), DUCKDB, select("SELECT 1 AS x"), threaded=True)

    def ctrl_c() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        steps._waiting(ctrl_c)
    assert "pqlsdk-steps" not in _threads()
