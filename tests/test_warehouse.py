"""The SQL backend (pqlsdk.warehouse, DuckDB): the same answers as the in-process engine."""

from __future__ import annotations

import gc
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlglot import exp

import pqlsdk.rules
from pqlsdk._clock import FixedClock, micros
from pqlsdk._exceptions import ConfigError, RulesError
from pqlsdk._formats import auto_engine
from pqlsdk.cli import main
from pqlsdk.warehouse import (
    _dialects,
    _duckdb,
    compile_model,
    compile_plan,
    compile_rules,
    score_file,
)
from pqlsdk.warehouse._dialect_duckdb import DUCKDB, DuckDB
from pqlsdk.warehouse._dialect_postgres import POSTGRES
from pqlsdk.warehouse._dialect_spark import SPARK
from pqlsdk.warehouse._dialects import Dialect

from .conftest import ROOT, load_scenario, scenario_files, scenario_id

RULES = ROOT / "examples" / "rules"
MODEL_FILES = {
    "domain.md model 1": RULES / "playbook.toml",
    "domain.md model 2": RULES / "weighted.toml",
    "domain.md model 3": RULES / "sustained.toml",
}


def _scoring_files() -> list[Path]:
    return [p for p in scenario_files() if "steps" not in load_scenario(p)]


def _rules_for(data: dict[str, Any]) -> Path:
    return next(path for name, path in MODEL_FILES.items() if data["model"].startswith(name))


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("path", _scoring_files(), ids=scenario_id)
def test_every_vector_scores_the_same_in_sql(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each vector's expectations hold under DuckDB, and every model's output equals Python's."""
    data = load_scenario(path)
    rules_path = _rules_for(data)
    rules = pqlsdk.rules.load(rules_path)
    for model in rules.models:
        outputs = {
            engine: _cli(
                capsys,
                "score",
                str(rules_path),
                str(path),
                "--json",
                "--model",
                model,
                "--engine",
                engine,
            )
            for engine in ("python", "duckdb")
        }
        # Same users and accounts, scores, tiers, routes, reasons: the same text.
        assert outputs["duckdb"] == outputs["python"]
    printed = json.loads(outputs["duckdb"])
    tables = [
        _cli(capsys, "score", str(rules_path), str(path), "--engine", e)
        for e in ("python", "duckdb")
    ]
    assert tables[0] == tables[1]
    expect = data["expect"]
    scored = score_file(rules, path, now=micros(FixedClock(data["now"]).now()))
    users = {score.id: score for score in scored.users}
    for user_id, wanted in expect.get("users", {}).items():
        assert users[user_id].score == pytest.approx(wanted["score"], abs=1e-6)
        assert users[user_id].tier == wanted["tier"]
    for user_id, tier in expect.get("classes", {}).items():
        assert users[user_id].tier == tier
    for account_id, wanted in expect.get("accounts", {}).items():
        got = printed["accounts"][account_id]
        assert {"pqa": got["pqa"], "pql_users": got["pql_users"]} == wanted
    if "ranking" in expect:
        assert sorted(expect["ranking"], key=lambda uid: -users[uid].score) == expect["ranking"]


ACCOUNT_RULES = """
[model.u]
tiers = { low = 0, high = 20 }
[model.u.signals]
limit = { when = 'count("limit_hit") >= 1', points = 30 }
[model.team]
subject = "account"
tiers = { small = 0, big = 10 }
multiplier = 'team_size() / 2'
[model.team.signals]
busy = { value = 'count(within=30d)', points = 1 }
fintech = { when = 'account.industry == "fintech"', points = 5 }
who = { when = 'user.plan == null', points = 1 }
[pqa]
model = "u"
tier = "high"
min_users = 1
"""
"""A user model, an account model (aggregates credited at arrival, team size) and [pqa]."""


def test_an_account_model_scores_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Account models (aggregates credited at arrival, team size) and [pqa] agree with Python."""
    rules = tmp_path / "accounts.toml"
    rules.write_text(ACCOUNT_RULES)
    path = ROOT / "tests" / "scenarios" / "model1_edges.json"
    outputs = [
        _cli(capsys, "score", str(rules), str(path), "--json", "--engine", engine)
        for engine in ("python", "duckdb")
    ]
    assert outputs[0] == outputs[1]
    assert any(a.get("score") for a in json.loads(outputs[0])["accounts"].values())


def test_an_event_name_made_of_sql_stays_a_literal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names and values from rules and messages never become SQL: the query runs, tables stay."""
    evil = "x'); DROP TABLE events; --"
    rules = tmp_path / "evil.json"
    signals = {
        "a": {"when": f'count("{evil}", path="{evil}") >= 1', "points": 1},
        "b": {"when": 'distinct("x", "it\'s") >= 1', "points": 2},
        "c": {"when": 'user.quote == "a\\"b"', "points": 4},
    }
    spec = {"model": {"m": {"tiers": {"low": 0, "high": 1}, "signals": signals}}}
    rules.write_text(json.dumps(spec))
    events = tmp_path / "events.jsonl"
    lines = [
        {
            "type": "track",
            "userId": "u'1",
            "event": evil,
            "properties": {"path": evil, "it's": 1},
            "timestamp": "2026-03-01T00:00:00Z",
            "messageId": "m1",
        },
        {
            "type": "track",
            "userId": "u'1",
            "event": "x",
            "properties": {"it's": evil},
            "timestamp": "2026-03-01T00:00:00Z",
            "messageId": "m2",
        },
        {
            "type": "identify",
            "userId": "u'1",
            "traits": {"quote": 'a"b'},
            "timestamp": "2026-03-01T00:00:00Z",
            "messageId": "m3",
        },
    ]
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    connection = duckdb.connect()
    connection.execute("CREATE TABLE events (x INTEGER)")
    loaded = pqlsdk.rules.load(rules)
    now = micros(FixedClock("2026-03-02T00:00:00Z").now())
    query = compile_model(loaded, now=now)
    with _duckdb.source(events) as (relation, _):
        ran = _duckdb.run(connection, compile_plan(loaded, now=now), relation)
    assert ran.refused == 0
    assert [(row["id"], row["score"]) for row in ran.users] == [("u'1", 7.0)]
    assert connection.execute("SELECT count(*) FROM events").fetchone() == (0,)
    text = query.sql()
    assert "'x''); DROP TABLE events; --'" in text  # a quoted literal, its quote doubled
    # Every occurrence is inside a literal: the value, or its JSON text (a property filter).
    literals = ("'x''); DROP TABLE events; --'", "'\"x''); DROP TABLE events; --\"'")
    assert text.count("DROP TABLE") == sum(text.count(literal) for literal in literals)
    python = _cli(
        capsys,
        "score",
        str(rules),
        str(events),
        "--json",
        "--now",
        "2026-03-02T00:00:00Z",
        "--engine",
        "python",
    )
    duck = _cli(
        capsys,
        "score",
        str(rules),
        str(events),
        "--json",
        "--now",
        "2026-03-02T00:00:00Z",
        "--engine",
        "duckdb",
    )
    assert python == duck


@pytest.mark.parametrize("dialect", [DUCKDB, SPARK], ids=lambda d: d.name)
def test_a_construct_sql_cannot_compute_fails_at_compile_time(
    tmp_path: Path, dialect: Dialect
) -> None:
    """An 'if' mixing a trait with an infinite number is refused at file:line:col, naming python."""
    rules = tmp_path / "r.toml"
    rules.write_text(
        "[model.m]\ntiers = { low = 0 }\n[model.m.signals]\n"
        "s = { value = 'user.x if user.y == 1 else days_since_last_active()', points = 1 }\n"
    )
    with pytest.raises(RulesError) as caught:
        compile_model(pqlsdk.rules.load(rules), dialect=dialect)
    error = caught.value
    assert (error.path, error.line, error.column) == (str(rules), 4, 16)
    assert "infinite" in str(error)
    assert "python" in str(error)


def test_sql_command_prints_one_query_per_model(capsys: pytest.CaptureFixture[str]) -> None:
    """``pqlsdk sql RULES`` prints each model's query and the roll-up, which DuckDB parses."""
    out = _cli(capsys, "sql", str(RULES / "playbook.toml"))
    assert out.count("-- model") == 2
    assert "-- accounts' roll-up" in out
    queries = [q for q in out.split(";\n") if q.strip()]
    connection = duckdb.connect()
    for query in queries:  # prepares against an empty messages table: the text is valid SQL
        connection.execute(
            "CREATE OR REPLACE TABLE messages (seq BIGINT, type VARCHAR, userId VARCHAR, "
            "anonymousId VARCHAR, messageId VARCHAR, groupId VARCHAR, event VARCHAR, "
            '"timestamp" VARCHAR, properties JSON, traits JSON)'
        )
        assert connection.execute(query).fetchall() == []
    assert len(compile_rules(pqlsdk.rules.load(RULES / "playbook.toml"))) == 3


def test_gzip_json_lines_score_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A gzipped JSON Lines file is read by DuckDB and scored as Python scores it."""
    source = ROOT / "examples" / "events.jsonl"
    zipped = tmp_path / "events.jsonl.gz"
    zipped.write_bytes(gzip.compress(source.read_bytes()))
    args = ["score", str(RULES / "playbook.toml"), str(zipped), "--now", "2026-03-15T12:00:00Z"]
    assert _cli(capsys, *args, "--engine", "duckdb") == _cli(capsys, *args, "--engine", "python")


def test_score_duckdb_leaves_the_garbage_collector_as_it_found_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The engine pauses Python's cyclic collector as it scores: enabled after, or still off."""
    args = ["score", str(RULES / "playbook.toml"), str(ROOT / "examples" / "events.jsonl")]
    args += ["--now", "2026-03-15T12:00:00Z", "--engine", "duckdb"]
    _cli(capsys, *args)
    assert gc.isenabled()
    gc.disable()
    try:
        _cli(capsys, *args)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_connection_that_cannot_open_fails_where_it_is_first_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Opening`` raises DuckDB's failure to open at its first statement.

    Interrupting it and closing it are no-ops: there is no statement and no connection.
    """

    def fail() -> None:
        raise ConfigError("the duckdb engine needs duckdb")

    monkeypatch.setattr(_duckdb, "connect", fail)
    opening = _duckdb.Opening()
    with pytest.raises(ConfigError, match="needs duckdb"):
        opening.execute("SELECT 1")
    opening.interrupt()
    opening.close()


def test_a_connection_that_fails_to_close_on_a_thread_says_so_when_the_caller_is_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Opening.closing`` closes while the caller works; the close's failure is raised after.

    A real connection whose close fails (DuckDB's own failure cannot be provoked).
    """
    real = _duckdb.connect

    class FailingClose:
        def __init__(self) -> None:
            self.connection = real()

        def execute(self, *args: Any) -> Any:
            return self.connection.execute(*args)

        def close(self) -> None:
            self.connection.close()
            raise RuntimeError("could not close")

    monkeypatch.setattr(_duckdb, "connect", FailingClose)
    opening = _duckdb.Opening()
    assert opening.execute("SELECT 42").fetchall() == [(42,)]
    worked = []
    with pytest.raises(RuntimeError, match="could not close"), opening.closing():
        worked.append(True)
    assert worked == [True]


def test_score_says_why_duckdb_cannot_open_in_its_own_words(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Opened on a thread, DuckDB's failure to open (the extra missing) is not made a scoring error.

    Its first statement is where it surfaces: the message stays the one that says what to
    install, not "could not score the messages", as when DuckDB was opened up front.
    """
    needs = "the duckdb engine needs duckdb: pip install 'pqlsdk[warehouse]'"

    def fail() -> None:
        raise ConfigError(needs)

    monkeypatch.setattr(_duckdb, "connect", fail)
    args = ["score", str(RULES / "playbook.toml"), str(ROOT / "examples" / "events.jsonl")]
    assert main([*args, "--now", "2026-03-15T12:00:00Z", "--engine", "duckdb"]) != 0
    assert capsys.readouterr().err == f"pqlsdk: error: {needs}\n"


def test_auto_engine_is_duckdb_when_the_extra_is_installed() -> None:
    """``--engine auto`` picks duckdb here (the extra is installed)."""
    assert auto_engine("auto") == "duckdb"
    assert auto_engine("python") == "python"


def test_import_pqlsdk_loads_no_warehouse() -> None:
    """``import pqlsdk`` (and its cli) loads neither sqlglot nor duckdb nor pqlsdk.warehouse."""
    code = (
        "import sys, pqlsdk, pqlsdk.cli, pqlsdk.rules\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlglot', 'duckdb')"
        " or m.startswith('pqlsdk.warehouse')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


EVERY_CONSTRUCT = {
    "model": {
        "m": {
            "tiers": {"low": 0, "mid": 2, "high": 6},
            "gate": 'not (user.plan == "banned")',
            "multiplier": "user.boost",
            "do_not_contact": "user.dnc",
            "routes": [{"route": "sales", "when": "score >= 6 and account.n >= 1"}],
            "signals": {
                "text_filter": {"when": 'count("a", p="x") >= 1', "points": 1},
                "bool_filter": {"when": 'count("a", p=true) >= 1', "points": 1},
                "number_filter": {"when": 'count("a", p=2) >= 1', "points": 1},
                "breadth": {"value": 'distinct("a", "p", within=10d)', "points": 0.5},
                "days": {"value": "active_days(within=3d) % 2", "points": 1},
                "modulo": {"value": '7 % count("a")', "points": 0.25},
                "in_mixed": {"when": 'count("a") in [1, null, "x", true]', "points": 1},
                "text_in_trait": {"when": '"x" in user.tags', "points": 1},
                "flag_in_trait": {"when": "true in user.tags", "points": 1},
                "days_in_trait": {"when": "days_since_last_active() in user.tags", "points": 1},
                "count_in_trait": {"when": 'count("a") in user.tags', "points": 1},
                "not_in_trait": {"when": '"x" not in user.tags', "points": 1},
                "trait_in_list": {"when": 'user.plan in ["x", "pro"]', "points": 1},
                "number_in_texts": {"when": '1 in ["x"]', "points": 1},
                "trait_or_number": {"value": "user.n if user.plan == 1 else 2", "points": 1},
                "abs_trait": {"value": "abs(user.n)", "points": 1},
                "nulls": {"when": "null == null and null != user.n", "points": 1},
                "count_null": {
                    "when": 'count("a") == null or (1 / count("a")) == null',
                    "points": 1,
                },
                "trait_text": {"when": 'user.n == "x"', "points": 1},
                "text_order": {"when": 'user.plan >= "pro"', "points": 1.5},
                "trait_value": {"value": "user.plan", "points": 1},
                "nan_differs": {"when": "user.n != days_since_last_active()", "points": 1},
                "infinite_differs": {
                    "when": "days_since_last_active() != days_since_first_seen()",
                    "points": 1,
                },
                "mixed_max": {"value": "max(1, 2.5) + min(1, 2)", "points": 1},
                "infinite_max": {"value": "max(days_since_last_active(), 1)", "points": 1},
                "seen": {"when": "days_since_first_seen() <= 30", "points": 1},
                "negated": {"value": "-user.n", "points": 1},
                "float_modulo": {"value": 'count("a") % 2.5', "points": 1},
                "not_in_list": {"when": 'user.n not in ["x"]', "points": 1},
                "int_or_float": {"value": "1 if user.n == 3 else 2.5", "points": 1},
                "trait_or_negated": {
                    "value": 'user.n if user.plan == "pro" else -user.n',
                    "points": 1,
                },
                "in_trait_or_null": {
                    "when": "1 in (user.tags if user.n == 3 else null)",
                    "points": 1,
                },
            },
        }
    }
}


def _message(kind: str, user: str, day: int, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "userId": user,
        "timestamp": f"2026-03-{day:02d}T10:00:00Z",
        "messageId": f"{user}-{kind}-{day}-{len(fields)}-{json.dumps(fields, sort_keys=True)}",
        **fields,
    }


EVERY_HISTORY = [
    _message("identify", "u1", 1, traits={"plan": "pro", "boost": 2, "tags": ["x", 1, True]}),
    _message("identify", "u2", 1, traits={"plan": 1, "n": 3, "tags": "x", "dnc": True}),
    _message("identify", "u3", 1, traits={"plan": "banned", "boost": "high", "n": None}),
    _message("identify", "u4", 1, traits={"tags": [None, 2.5, "y"], "n": "x"}),
    _message("group", "u1", 2, groupId="acme", traits={"n": 4}),
    _message("group", "u2", 2, groupId="acme"),
    *(
        _message("track", user, day, event="a", properties={"p": value})
        for user in ("u1", "u2", "u3")
        for day, value in ((3, "x"), (10, True), (12, 2), (13, 2.0), (14, None))
    ),
    _message("track", "u4", 5, event="b", properties={}),
]


def test_every_construct_scores_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One model using every construct of the language: both engines print the same JSON."""
    rules = tmp_path / "every.json"
    rules.write_text(json.dumps(EVERY_CONSTRUCT))
    events = tmp_path / "events.jsonl"
    events.write_text("\n" + "".join(json.dumps(m) + "\n" for m in EVERY_HISTORY))
    args = ["score", str(rules), str(events), "--json", "--now", "2026-03-15T12:00:00Z"]
    python = _cli(capsys, *args, "--engine", "python")
    assert _cli(capsys, *args, "--engine", "duckdb") == python
    scores = {uid: user["score"] for uid, user in json.loads(python)["users"].items()}
    assert scores["u3"] == 0.0  # the gate
    assert len(set(scores.values())) == len(scores)  # the users differ: the test discriminates


def test_a_refusal_is_placed_even_when_the_rules_file_is_gone(tmp_path: Path) -> None:
    """The file moved since it loaded: the error still names it and the construct."""
    rules = tmp_path / "r.toml"
    rules.write_text(
        "[model.m]\ntiers = { low = 0 }\n[model.m.signals]\n"
        "s = { value = 'user.x if user.y == 1 else days_since_last_active()', points = 1 }\n"
    )
    loaded = pqlsdk.rules.load(rules)
    rules.unlink()
    with pytest.raises(RulesError) as caught:
        compile_model(loaded)
    assert caught.value.path == str(rules)
    assert "days_since_last_active()" in str(caught.value)


def test_sql_of_a_file_without_pqa_has_no_roll_up(capsys: pytest.CaptureFixture[str]) -> None:
    """Without [pqa] there is one query per model and no accounts' roll-up."""
    out = _cli(capsys, "sql", str(RULES / "weighted.toml"))
    assert "-- accounts' roll-up" not in out
    assert out.count("-- model") == len(pqlsdk.rules.load(RULES / "weighted.toml").models)


def test_an_id_repeated_far_apart_counts_once_in_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both engines keep the first message of an id across the whole history.

    An export concatenated with an overlapping one repeats ids far apart: here
    the repeat comes 150,000 messages after the first.
    """
    events = tmp_path / "events.jsonl"
    first = _message("track", "u", 1, event="core_workflow_completed", messageId="dup")
    filler = {"type": "identify", "userId": "x", "timestamp": "2026-03-01T00:00:00Z"}
    with events.open("w") as out:
        out.write(json.dumps(first) + "\n")
        out.writelines(json.dumps({**filler, "messageId": f"f{i}"}) + "\n" for i in range(150_000))
        out.write(json.dumps({**first, "event": "limit_hit"}) + "\n")
    rules = str(ROOT / "examples" / "rules" / "playbook.toml")
    now = "2026-03-15T00:00:00Z"
    python = _cli(capsys, "score", rules, str(events), "--now", now, "--json", "--engine", "python")
    sql = _cli(capsys, "score", rules, str(events), "--now", now, "--json", "--engine", "duckdb")
    assert python == sql
    assert json.loads(python)["users"]["u"]["gate"]["passed"] is True


def test_a_history_past_the_evaluation_time_counts_windows_as_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tracks after ``now``: a window keeps what the in-process engine kept, per user and account.

    In process a window ends at the later of ``now`` and the latest matching
    track (older tracks were dropped as newer ones arrived); the SQL agrees.
    """
    rules = tmp_path / "late.json"
    windowed = {
        "c": {"value": 'count("a", within=2d)', "points": 1},
        "d": {"value": 'distinct("a", "p", within=2d)', "points": 10},
        "e": {"value": "active_days(within=2d)", "points": 100},
    }
    rules.write_text(
        json.dumps(
            {
                "model": {
                    "m": {"tiers": {"low": 0}, "signals": windowed},
                    "team": {"subject": "account", "tiers": {"low": 0}, "signals": windowed},
                }
            }
        )
    )
    events = tmp_path / "events.jsonl"
    history = [_message("group", "u", 1, groupId="acme")]
    history += [
        _message("track", "u", day, event="a", properties={"p": day % 3})
        for day in (10, 11, 12, 20)
    ]
    history.append(_message("track", "v", 11, event="a", properties={"p": 1}))
    events.write_text("".join(json.dumps(m) + "\n" for m in history))
    args = ["score", str(rules), str(events), "--json", "--now", "2026-03-12T12:00:00Z"]
    python = _cli(capsys, *args, "--engine", "python")
    assert _cli(capsys, *args, "--engine", "duckdb") == python
    printed = json.loads(python)
    # Only the track of day 20 is within 2 days of u's latest track; v has none after now.
    assert printed["users"]["u"]["score"] == 111.0
    assert printed["users"]["v"]["score"] == 111.0
    assert printed["accounts"]["acme"]["score"] == 111.0


DISTINCTS = """
[model.m]
tiers = { low = 0 }
[model.m.signals]
breadth = { value = 'distinct("a", "p")', points = 1 }
days = { value = 'active_days(within=2d)', points = 1 }
[model.team]
subject = "account"
tiers = { low = 0 }
[model.team.signals]
breadth = { value = 'distinct("a", "p", within=2d)', points = 1 }
"""


def test_duckdb_counts_each_distinct_aggregate_in_a_grouping_of_its_own(tmp_path: Path) -> None:
    """DuckDB's users and tallies count no ``DISTINCT`` beside other aggregates; PostgreSQL's do.

    DuckDB groups the (subject, value) pairs and counts them for less
    (``distinct_apart``); a window's edge still reads the clock.
    """
    path = tmp_path / "distincts.toml"
    path.write_text(DISTINCTS)
    rules = pqlsdk.rules.load(path)
    grouped = ("counted", "tallied")
    for dialect, apart in ((DUCKDB, True), (POSTGRES, False)):
        steps = dict(compile_plan(rules, now=0, dialect=dialect).steps)
        for name in grouped:
            distincts = [c for c in steps[name].find_all(exp.Count) if c.find(exp.Distinct)]
            assert (not distincts) is apart, (dialect.name, name)
    tallied = dict(compile_plan(rules, now=0).steps)["tallied"]
    assert "clock" in tallied.sql("duckdb").split("LEFT JOIN", 1)[1]


def _nested(depth: int) -> dict[str, Any]:
    """``{"a": {"a": ... {}}}``: ``depth`` objects inside the outer one."""
    inner: dict[str, Any] = {}
    for _ in range(depth):
        inner = {"a": inner}
    return inner


def _refusable() -> list[dict[str, Any]]:
    """Messages the python reader refuses field by field, beside ones it keeps that look alike."""
    core = {"event": "core_workflow_completed"}
    return [
        _message("track", "kept", 1, **core),
        {**_message("track", "n", 1, **core), "userId": 5},
        {**_message("track", "a", 1, **core), "userId": None, "anonymousId": 7},
        {**_message("track", "m", 1, **core), "messageId": 9},
        _message("track", "e", 1, event=True),
        _message("track", "g", 1, event="limit_hit", properties=_nested(11)),
        _message("track", "kept", 2, event="limit_hit", properties=_nested(10)),
        _message("track", "p", 1, event="core_workflow_completed", properties=[1]),
        _message("identify", "t", 1, traits=_nested(11)),
        _message("group", "kept", 1, groupId=12),
        # Text that reads as JSON, kept: only the doubt is shared with the refused.
        _message("track", "12345", 1, **core),
        # Over 32 KiB, refused: checked because its userId is doubtful too.
        _message("track", "67890", 1, event="x", properties={"big": "b" * 33_000}),
    ]


def test_messages_the_python_reader_refuses_field_by_field_are_refused_in_sql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A number for an id, properties nested too deep or not an object: refused by both.

    DuckDB reads ids as text; the messages it cannot judge are checked again
    with the python reader, so both engines keep the same messages and say so.
    """
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(m) for m in _refusable()) + "\n\n")
    rules = str(RULES / "playbook.toml")
    args = ["score", rules, str(events), "--json", "--now", "2026-03-15T00:00:00Z"]
    assert main([*args, "--engine", "python"]) == 0
    python = capsys.readouterr()
    assert main([*args, "--engine", "duckdb"]) == 0
    duck = capsys.readouterr()
    assert duck.out == python.out
    assert duck.err == python.err
    assert sorted(json.loads(duck.out)["users"]) == ["12345", "kept"]
    assert "skipped 9 invalid message(s)" in duck.err


def test_a_message_too_large_for_the_python_reader_is_refused_in_sql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Properties or traits past the size limit, the ids of the usual kind: refused by both."""
    core = {"event": "core_workflow_completed"}
    history = [
        _message("track", "kept", 1, **core),
        _message("track", "props", 1, **core, properties={"big": "b" * 33_000}),
        _message("identify", "traits", 1, traits={"big": "b" * 33_000}),
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(m) + "\n" for m in history))
    args = ["score", str(RULES / "playbook.toml"), str(events), "--json"]
    args += ["--now", "2026-03-15T00:00:00Z"]
    python = _cli(capsys, *args, "--engine", "python")
    assert _cli(capsys, *args, "--engine", "duckdb") == python
    assert sorted(json.loads(python)["users"]) == ["kept"]


def test_what_the_python_reader_refuses_outside_properties_and_traits_is_refused_in_sql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A context nested too deep or too large, a message too large in all, a number wider
    than 64 bits: the ids of the usual kind, refused by both engines."""
    core = {"event": "core_workflow_completed"}
    deep: dict[str, object] = {"x": 1}
    for _ in range(12):
        deep = {"x": deep}
    history = [
        _message("track", "kept", 1, **core),
        {**_message("track", "deep", 1, **core), "context": deep},
        {**_message("track", "context", 1, **core), "context": {"big": "c" * 33_000}},
        {
            **_message("track", "halves", 1, **core, properties={"half": "p" * 17_000}),
            "context": {"half": "c" * 17_000},
        },
        _message("track", "wide", 1, **core, properties={"n": 2**64 + 1}),
        _message("identify", "wide_trait", 1, traits={"n": -(2**63) - 1}),
        {**_message("track", "listed_context", 1, **core), "context": ["a"]},
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(m) + "\n" for m in history))
    args = ["score", str(RULES / "playbook.toml"), str(events), "--json"]
    args += ["--now", "2026-03-15T00:00:00Z"]
    python = _cli(capsys, *args, "--engine", "python")
    assert sorted(json.loads(python)["users"]) == ["kept"]
    assert _cli(capsys, *args, "--engine", "duckdb") == python


def _both(
    capsys: pytest.CaptureFixture[str], events: Path, now: str = "2026-03-15T00:00:00Z"
) -> dict[str, Any]:
    """Score ``events`` with the playbook by both engines; assert equal outputs, return Python's."""
    args = ["score", str(RULES / "playbook.toml"), str(events), "--json", "--now", now]
    assert main([*args, "--engine", "python"]) == 0
    python = capsys.readouterr()
    assert main([*args, "--engine", "duckdb"]) == 0
    duck = capsys.readouterr()
    printed: dict[str, Any] = json.loads(python.out)
    # The users first: a short message where the engines keep different messages.
    assert sorted(json.loads(duck.out)["users"]) == sorted(printed["users"])
    assert (duck.out, duck.err) == (python.out, python.err)
    return printed


def _kept(tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[str]) -> list[str]:
    """The users both engines keep from a JSON Lines file of ``lines`` (``_both``), sorted."""
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    return sorted(_both(capsys, events)["users"])


def _line(user: str, **fields: Any) -> str:
    """A track of ``user`` that the playbook counts, with ``fields`` (raw JSON text) added."""
    head = json.dumps(_message("track", user, 1, event="core_workflow_completed"))[:-1]
    return head + "".join(f', "{name}": {text}' for name, text in fields.items()) + "}"


def test_a_number_the_python_reader_refuses_anywhere_is_refused_in_sql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Integers wider than 64 bits, floats past a double's range: in context or nested.

    DuckDB keeps a number's text as written; the python reader refuses these.
    """
    wide = "123456789012345678901234567890"
    lines = [
        _line("kept"),
        _line("widest_kept", context=f'{{"n": {2**64 - 1}, "m": {-(2**63)}}}'),
        _line("small_kept", properties='{"n": 1e-400}'),
        _line("context_wide", context=f'{{"n": {2**64}}}'),
        _line("context_negative", context=f'{{"n": {-(2**63) - 1}}}'),
        _line("context_float", context='{"n": 1e400}'),
        _line("context_nested", context=f'{{"a": {{"n": {wide}}}}}'),
        _line("context_listed", context=f'{{"a": [1, {wide}]}}'),
        _line("properties_nested", properties=f'{{"a": {{"n": {wide}}}}}'),
        _line("properties_listed", properties=f'{{"a": [{wide}]}}'),
        _line("properties_float", properties='{"amount": 1e400, "currency": "EUR"}'),
        _line("properties_exponent", properties='{"amount": -2.5E+309, "currency": "EUR"}'),
    ]
    assert _kept(tmp_path, capsys, lines) == ["kept", "small_kept", "widest_kept"]


def test_a_null_where_the_python_reader_wants_an_object_or_a_text_is_refused_in_sql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``null`` for context, properties, traits or messageId: refused, as no field at all is not.

    DuckDB reads a JSON null as it reads a missing field; the python reader
    refuses a null where its message has an object or a text.
    """
    identify = json.dumps(_message("identify", "traits_null", 1))[:-1] + ', "traits": null}'
    lines = [
        _line("kept"),
        _line("null_id_kept", anonymousId="null"),
        _line("context_null", context="null"),
        _line("context_spaced", context=" null "),
        _line("properties_null", properties="null"),
        _line("message_id_null").replace('"messageId": "', '"messageId": null, "x": "'),
        identify,
    ]
    assert _kept(tmp_path, capsys, lines) == ["kept", "null_id_kept"]


def _sized(user: str, size: int, **fields: Any) -> str:
    """A compact track of ``user`` whose line (``fields`` in it) is ``size`` bytes long."""
    line = json.dumps(
        {**_message("track", user, 1, event="core_workflow_completed"), **fields, "properties": {}},
        separators=(",", ":"),
    )
    pad = size - len(line) - len('{"p":""}') + len("{}")
    return line.replace('"properties":{}', '"properties":{"p":"' + "p" * pad + '"}')


@pytest.mark.parametrize("zipped", [False, True], ids=["plain", "gzip"])
def test_a_line_over_the_size_limit_by_what_duckdb_does_not_read_is_refused_in_sql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], zipped: bool
) -> None:
    """Spaces, or a field DuckDB does not read, past 32 KiB: refused by both; at 32 KiB, kept.

    The python reader measures the line; DuckDB reads no line's length.
    """
    limit = 32 * 1024
    lines = [
        _sized("kept", limit),
        _sized("unread_kept", limit, integrations={"x": "x" * 2000}),
        _sized("spaced", limit - 1999).replace(",", "," + " " * 500, 4),
        _sized("unread", limit + 1, integrations={"x": "x" * 2000}),
        _sized("padded", limit - 1999).replace("{", " " * 2000 + "{", 1),
    ]
    assert [len(line) for line in lines] == [limit, limit, limit + 1, limit + 1, limit + 1]
    events = tmp_path / "events.jsonl"
    data = ("\n".join(lines) + "\n").encode()
    events.write_bytes(gzip.compress(data) if zipped else data)
    assert sorted(_both(capsys, events)["users"]) == ["kept", "unread_kept"]


def test_a_document_is_checked_message_by_message_as_the_python_reader_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A scenario file's messages are the python reader's own: timestamps, sizes, types."""
    accepted = [
        {
            **_message("track", "lower", 1, event="core_workflow_completed"),
            "timestamp": "2026-03-01t10:00:00z",
        },
        {
            **_message("track", "offset", 1, event="core_workflow_completed"),
            "timestamp": "2026-03-01T10:00:00+0100",
        },
    ]
    refused = [
        _message(
            "track", "big", 1, event="core_workflow_completed", properties={"b": "b" * 33_000}
        ),
        {
            **_message("track", "hour", 1, event="core_workflow_completed"),
            "timestamp": "2026-03-01T24:00:00Z",
        },
        {**_message("track", "nulls", 1, event="core_workflow_completed"), "properties": None},
    ]
    events = tmp_path / "scenario.json"
    events.write_text(json.dumps({"now": "2026-03-15T00:00:00Z", "events": [*accepted, *refused]}))
    args = ["score", str(RULES / "playbook.toml"), str(events), "--json"]
    python = _cli(capsys, *args, "--engine", "python")
    assert _cli(capsys, *args, "--engine", "duckdb") == python
    assert sorted(json.loads(python)["users"]) == ["lower", "offset"]


def test_an_engine_without_doubts_or_hashes_scores_the_same(tmp_path: Path) -> None:
    """The base ``Dialect``'s defaults: repeated ids grouped as text, no message in doubt."""

    class Plain(DuckDB):
        doubtful = _dialects.Dialect.doubtful
        id_key = _dialects.Dialect.id_key

    events = tmp_path / "events.jsonl"
    first = _message("track", "u", 1, event="core_workflow_completed", messageId="dup")
    events.write_text(
        "".join(json.dumps(m) + "\n" for m in (first, {**first, "event": "limit_hit"}))
    )
    loaded = pqlsdk.rules.load(RULES / "playbook.toml")
    now = micros(FixedClock("2026-03-15T00:00:00Z").now())
    scores = []
    for dialect in (DUCKDB, Plain()):
        with _duckdb.source(events) as (relation, _):
            ran = _duckdb.run(
                duckdb.connect(), compile_plan(loaded, now=now, dialect=dialect), relation
            )
        scores.append([(row["id"], row["score"], row["reasons"]) for row in ran.users])
    assert scores[0] == scores[1]
    assert "hash(" not in compile_model(loaded, now=now, dialect=Plain()).sql()


def test_a_timestamp_of_an_uncommon_form_is_read_as_the_python_reader_reads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON Lines: ``t``/``z``, ``+0100``, 7 digits of fraction kept; hour 24, year 0 refused."""
    core = {"event": "core_workflow_completed"}
    forms = {
        "lower": "2026-03-14t23:59:59.9999999z",
        "compact": "2026-03-14T10:00:00+0100",
        "hour": "2026-03-14T24:00:00Z",
        "year": "0000-03-14T10:00:00Z",
        "far": "2026-03-14T10:00:00+24:00",
    }
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps({**_message("track", user, 1, **core), "timestamp": stamp}) + "\n"
            for user, stamp in forms.items()
        )
    )
    args = ["score", str(RULES / "playbook.toml"), str(events), "--json"]
    args += ["--now", "2026-03-22T00:00:00Z"]
    python = _cli(capsys, *args, "--engine", "python")
    assert _cli(capsys, *args, "--engine", "duckdb") == python
    users = json.loads(python)["users"]
    assert sorted(users) == ["compact", "lower"]
    # 7 days and a tenth of a microsecond: rounded up to the 7-day multiplier's edge.
    assert users["lower"]["multiplier"] == 1.0


def test_a_file_is_read_in_two_buffers_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """160 MB on two cores: four buffers of 40 MB, not three of 64 MiB (one idle thread)."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert _duckdb._buffer_bytes(160_000_000) == 40_000_001
    assert _duckdb._buffer_bytes(1_000) == 16 * 1024 * 1024  # DuckDB's own, at the least
    assert _duckdb._buffer_bytes(10**12) == 64 * 1024 * 1024  # at the most
    assert _duckdb._buffer_bytes(None) == 64 * 1024 * 1024  # gzip: its size is unknown
    assert _duckdb._size(tmp_path / "missing.jsonl") is None  # DuckDB's read says why


def test_a_float_past_a_double_in_a_short_document_is_refused_in_sql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``{"n":1e400}``: 20 bytes or less, room for no 19 digits but for an exponent of 3.

    Written compactly as DuckDB would keep it; the python reader refuses it.
    """
    group = json.dumps(_message("group", "traits_short", 1))[:-1]
    lines = [
        _line("kept"),
        _line("key_kept", properties='{"e100":"1e400"}'),
        _line("properties_short", properties='{"n":1e400}'),
        _line("properties_mantissa", properties='{"n":99999e305}'),
        _line("properties_capital", context='{"a":1E+999}'),
        group + ', "groupId": "acme", "traits": {"x":-9e999}}',
    ]
    assert _kept(tmp_path, capsys, lines) == ["kept", "key_kept"]


def _extracted(rules: pqlsdk.rules.Rules, column: str) -> str:
    """The SQL that ``parsed`` reads column ``column`` (a property) with."""
    now = micros(FixedClock("2026-03-15T00:00:00Z").now())
    parsed = dict(compile_plan(rules, now=now).steps)["parsed"]
    alias = next(a for a in parsed.find_all(exp.Alias) if a.alias == column)
    text: str = alias.this.sql("duckdb")
    return text


PROPERTIES_BY_EVENT = """
[model.m]
tiers = { low = 0, high = 2 }
[model.m.signals]
pricing = { when = 'count("page_viewed", path="/pricing") >= 1', points = 1 }
paths = { when = 'distinct("checkout_started", "path") >= 2', points = 1 }
plans = { when = 'count(plan="pro") >= 1', points = 1 }
pro = { when = 'count("page_viewed", plan="pro") >= 1', points = 1 }
"""


def test_a_property_read_for_some_events_is_extracted_on_their_messages_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``path`` is read on page views and checkouts only; both engines score the same.

    Its value on another message never counts: each aggregate that reads it
    also tests the event. A history with ``path`` on other events too scores
    as in process.
    """
    rules = tmp_path / "r.toml"
    rules.write_text(PROPERTIES_BY_EVENT)
    extracted = _extracted(pqlsdk.rules.load(rules), "p_0")
    assert extracted == (
        "CASE WHEN event IN ('checkout_started', 'page_viewed') THEN properties -> '/path' END"
    )
    pages = [("page_viewed", "/pricing"), ("checkout_started", "/a"), ("checkout_started", "/b")]
    history = [
        _message("track", user, day, event=event, properties={"path": path})
        for user in ("u1", "u2")
        for day, (event, path) in enumerate(pages if user == "u1" else pages[1:], 1)
    ]
    history += [_message("track", "u2", 5, event="other", properties={"path": "/pricing"})]
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(m) + "\n" for m in history))
    args = ["score", str(rules), str(events), "--json", "--now", "2026-03-15T12:00:00Z"]
    python = _cli(capsys, *args, "--engine", "python")
    assert _cli(capsys, *args, "--engine", "duckdb") == python
    scores = {uid: user["score"] for uid, user in json.loads(python)["users"].items()}
    assert scores == {"u1": 2.0, "u2": 1.0}  # the other event's /pricing counts for nothing


def test_a_property_a_count_of_any_event_reads_is_extracted_on_every_message(
    tmp_path: Path,
) -> None:
    """``plan`` is read by ``count(plan=...)`` too: every message's, whatever else reads it."""
    rules = tmp_path / "r.toml"
    rules.write_text(PROPERTIES_BY_EVENT)
    loaded = pqlsdk.rules.load(rules)
    assert _extracted(loaded, "p_1") == "properties -> '/plan'"
    assert _extracted(loaded, "p_0").startswith("CASE WHEN event IN")
