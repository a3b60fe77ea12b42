"""The SQL backend on PostgreSQL: messages in tables of a real server, the same answers.

One schema and one loading connection for the module; each ``pqlsdk score
--engine postgres`` call connects as a user's would, through the schema's URL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pqlsdk.rules
from pqlsdk._exceptions import RulesError
from pqlsdk.cli import main
from pqlsdk.collector import open_storage
from pqlsdk.messages import decode
from pqlsdk.warehouse import compile_model
from pqlsdk.warehouse._dialect_duckdb import DUCKDB
from pqlsdk.warehouse._dialect_postgres import POSTGRES

from .conftest import ROOT, load_scenario, scenario_id
from .postgres import fresh_schema, load_messages
from .test_warehouse import EVERY_CONSTRUCT, EVERY_HISTORY, RULES, _rules_for, _scoring_files

Database = tuple[str, psycopg.Connection[Any]]


@pytest.fixture(scope="module")
def database(postgres_server: str) -> Iterator[Database]:
    """A fresh schema's URL, and one autocommit connection to it for loading."""
    with fresh_schema(postgres_server) as url, psycopg.connect(url, autocommit=True) as conn:
        yield url, conn


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


def _postgres(capsys: pytest.CaptureFixture[str], url: str, rules: Path, *args: str) -> str:
    return _cli(capsys, "score", str(rules), "--engine", "postgres", "--dsn", url, *args)


@pytest.mark.parametrize("path", _scoring_files(), ids=scenario_id)
def test_every_vector_scores_the_same_in_postgres(
    path: Path, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each vector in a table: every model's output equals Python's, the expectations hold."""
    url, conn = database
    data = load_scenario(path)
    load_messages(conn, "vector", data["events"])
    rules_path = _rules_for(data)
    rules = pqlsdk.rules.load(rules_path)
    now = ["--now", data["now"]]
    outputs = {}
    for model in rules.models:
        args = ["--json", "--model", model]
        python = _cli(capsys, "score", str(rules_path), str(path), *args, "--engine", "python")
        outputs[model] = _postgres(capsys, url, rules_path, "--table", "vector", *now, *args)
        assert outputs[model] == python
    tables = [
        _cli(capsys, "score", str(rules_path), str(path), "--engine", "python"),
        _postgres(capsys, url, rules_path, "--table", "vector", *now),
    ]
    assert tables[0] == tables[1]
    printed = json.loads(outputs[rules.model(None).name])
    expect = data["expect"]
    users = printed["users"]
    for user_id, wanted in expect.get("users", {}).items():
        assert users[user_id]["score"] == pytest.approx(wanted["score"], abs=1e-9)
        assert users[user_id]["tier"] == wanted["tier"]
    for user_id, tier in expect.get("classes", {}).items():
        assert users[user_id]["tier"] == tier
    for account_id, wanted in expect.get("accounts", {}).items():
        got = printed["accounts"][account_id]
        assert {"pqa": got["pqa"], "pql_users": got["pql_users"]} == wanted
    if "ranking" in expect:
        ranked = sorted(expect["ranking"], key=lambda uid: -users[uid]["score"])
        assert ranked == expect["ranking"]


def test_what_the_collector_stored_scores_the_same(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No --table: the collector's messages table, in arrival order, as Python scores it."""
    url, conn = database
    lines = (ROOT / "examples" / "events.jsonl").read_bytes().splitlines()
    storage = open_storage(url)
    try:
        for start in range(0, len(lines), 50):  # batches, each received later
            storage.store([decode(line) for line in lines[start : start + 50]])
    finally:
        storage.close()
    rows = conn.execute(
        "SELECT body::text FROM messages ORDER BY received_at, message_id"
    ).fetchall()
    events = tmp_path / "stored.jsonl"
    events.write_text("".join(body + "\n" for (body,) in rows))
    rules = RULES / "playbook.toml"
    now = ["--now", "2026-03-15T12:00:00Z"]
    for args in (["--json"], []):
        python = _cli(capsys, "score", str(rules), str(events), *now, *args, "--engine", "python")
        assert _postgres(capsys, url, rules, *now, *args) == python
    assert len(rows) == len(lines)


def test_a_table_of_typed_columns_scores_the_same(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """timestamptz, jsonb, names in other cases or missing, no seq: messages in time order."""
    url, conn = database
    history = sorted(EVERY_HISTORY, key=lambda m: (m["timestamp"], m["messageId"]))
    conn.execute(
        'CREATE TABLE typed (type TEXT, userid TEXT, "messageId" TEXT, "groupId" TEXT, '
        'event TEXT, "timestamp" TIMESTAMPTZ, properties JSONB, traits JSONB)'
    )
    for m in history:
        conn.execute(
            "INSERT INTO typed VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                m["type"],
                m["userId"],
                m["messageId"],
                m.get("groupId"),
                m.get("event"),
                m["timestamp"],
                json.dumps(m["properties"]) if "properties" in m else None,
                json.dumps(m["traits"]) if "traits" in m else None,
            ],
        )
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(m) + "\n" for m in history))
    rules = RULES / "playbook.toml"
    args = ["--json", "--now", "2026-03-15T12:00:00Z"]
    python = _cli(capsys, "score", str(rules), str(events), *args, "--engine", "python")
    assert _postgres(capsys, url, rules, "--table", "typed", *args) == python


def _every_construct_postgres_runs() -> dict[str, Any]:
    """EVERY_CONSTRUCT without '%' on floats, which PostgreSQL refuses."""
    spec: dict[str, Any] = json.loads(json.dumps(EVERY_CONSTRUCT))
    del spec["model"]["m"]["signals"]["float_modulo"]
    return spec


def test_every_construct_scores_the_same(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The model using every construct PostgreSQL computes: the same JSON as Python's."""
    url, conn = database
    rules = tmp_path / "every.json"
    rules.write_text(json.dumps(_every_construct_postgres_runs()))
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(m) + "\n" for m in EVERY_HISTORY))
    load_messages(conn, "every", EVERY_HISTORY)
    args = ["--json", "--now", "2026-03-15T12:00:00Z"]
    python = _cli(capsys, "score", str(rules), str(events), *args, "--engine", "python")
    assert _postgres(capsys, url, rules, "--table", "every", *args) == python
    scores = {uid: user["score"] for uid, user in json.loads(python)["users"].items()}
    assert len(set(scores.values())) == len(scores)  # the users differ: the test discriminates


EVIL = "x'); DROP TABLE events; --"


def test_an_event_name_made_of_sql_stays_a_literal(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An event, filter and value made of SQL are compared as text; table events survives."""
    url, conn = database
    conn.execute("CREATE TABLE events (x INTEGER)")
    rules = tmp_path / "evil.json"
    signals = {
        "a": {"when": f'count("{EVIL}", path="{EVIL}") >= 1', "points": 1},
        "b": {"when": f'distinct("x", "{EVIL}") >= 1', "points": 2},
        "c": {"when": f'user.quote == "{EVIL}"', "points": 4},
    }
    rules.write_text(json.dumps({"model": {"m": {"tiers": {"low": 0}, "signals": signals}}}))
    history = [
        {"type": "track", "userId": EVIL, "event": EVIL, "properties": {"path": EVIL}},
        {"type": "track", "userId": EVIL, "event": "x", "properties": {EVIL: EVIL}},
        {"type": "identify", "userId": EVIL, "traits": {"quote": EVIL}},
    ]
    for index, message in enumerate(history):
        message |= {"timestamp": "2026-03-01T00:00:00Z", "messageId": f"{EVIL}{index}"}
    load_messages(conn, "evil", history)
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(m) + "\n" for m in history))
    args = ["--json", "--now", "2026-03-02T00:00:00Z"]
    python = _cli(capsys, "score", str(rules), str(events), *args, "--engine", "python")
    assert _postgres(capsys, url, rules, "--table", "evil", *args) == python
    assert json.loads(python)["users"][EVIL]["score"] == 7.0
    assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)


def test_timestamps_are_refused_as_python_refuses_them(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offsets to 23:59, 24:00, leap seconds and days, case, fractions: the same ones count."""
    url, conn = database
    stamps = [
        "2026-03-01T10:00:00+23:59",
        "2026-03-01t10:00:00z",
        "2026-03-01 10:00:00.9999995Z",
        "2026-03-01T10:00:00.12345649-05:30",
        "2024-02-29T10:00:00Z",
        "2026-02-29T10:00:00Z",
        "2026-03-01T24:00:00Z",
        "2026-03-01T23:59:60Z",
        "2026-03-01T10:00:00+24:00",
        "0000-03-01T10:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "2026-13-01T10:00:00Z",
        "2026-03-01T10:00:00",
        "2026-01-31T10:00:00-15:59",
        "2026-04-31T10:00:00Z",
        "9999-12-31T23:00:00+01:00",
        "9999-12-31T23:30:00-01:00",
        "2026-03-01T10:00:00.1234565+16:00",
    ]
    history: list[Any] = [
        {
            "type": "track",
            "userId": f"u{index}",
            "event": "a",
            "timestamp": stamp,
            "messageId": f"m{index}",
        }
        for index, stamp in enumerate(stamps)
    ]
    history.append("not an object")
    rules = tmp_path / "r.json"
    signals = {"days": {"value": "days_since_last_active()", "points": 1}}
    rules.write_text(json.dumps({"model": {"m": {"tiers": {"low": 0}, "signals": signals}}}))
    load_messages(conn, "stamps", history)
    events = tmp_path / "events.json"
    events.write_text(json.dumps(history))
    args = ["--json", "--now", "2026-03-15T12:00:00Z"]
    python = _cli(capsys, "score", str(rules), str(events), *args, "--engine", "python")
    assert _postgres(capsys, url, rules, "--table", "stamps", *args) == python
    assert len(json.loads(python)["users"]) == 8  # 2026-02-29, 24:00, :60, +24:00... refused


def test_a_float_modulo_is_refused_for_postgres_at_its_place(tmp_path: Path) -> None:
    """'%' on a trait has no exact PostgreSQL form: file:line:col, and who can run it."""
    rules = tmp_path / "r.toml"
    rules.write_text(
        "[model.m]\ntiers = { low = 0 }\n[model.m.signals]\n"
        "s = { value = 'count() + user.n % 2', points = 1 }\n"
    )
    loaded = pqlsdk.rules.load(rules)
    compile_model(loaded, dialect=DUCKDB)  # DuckDB computes it
    with pytest.raises(RulesError) as caught:
        compile_model(loaded, dialect=POSTGRES)
    error = caught.value
    assert (error.path, error.line, error.column) == (str(rules), 4, 26)
    assert (
        "--engine python) and --engine duckdb and --engine spark; not on --engine postgres"
        in str(error)
    )


def test_sql_for_postgres_runs_there(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """``pqlsdk sql --dialect postgres``: each query runs on a table named messages."""
    _, conn = database
    path = ROOT / "tests" / "scenarios" / "stuck_and_pqa.json"
    data = load_scenario(path)
    load_messages(conn, "messages_for_sql", data["events"])
    out = _cli(capsys, "sql", str(RULES / "playbook.toml"), "--dialect", "postgres")
    conn.execute("CREATE TEMP VIEW messages AS SELECT * FROM messages_for_sql")
    counts = [len(conn.execute(q).fetchall()) for q in out.split(";\n") if q.strip()]
    conn.execute("DROP VIEW messages")
    python = json.loads(_cli(capsys, "score", str(RULES / "playbook.toml"), str(path), "--json"))
    assert counts == [len(python["users"]), len(python["users"]), len(python["accounts"])]


def test_into_writes_one_row_per_subject_and_model(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--into: each user's and account's score, tier, route, reasons and time; rerun replaces."""
    url, conn = database
    rules = tmp_path / "accounts.json"
    spec = {
        "model": {
            "u": {
                "tiers": {"low": 0, "high": 1},
                "signals": {"a": {"when": 'count("a") >= 1', "points": 1}},
            },
            "team": {
                "subject": "account",
                "tiers": {"small": 0},
                "signals": {"n": {"value": "team_size()", "points": 2}},
            },
        }
    }
    rules.write_text(json.dumps(spec))
    history = [m for m in EVERY_HISTORY if m["userId"] != "u4"]
    load_messages(conn, "into_source", history)
    args = ["--table", "into_source", "--now", "2026-03-15T12:00:00Z"]
    printed = json.loads(_postgres(capsys, url, rules, *args, "--json", "--into", "scores"))
    load_messages(conn, "into_source", history[:3])  # u1, u2 and u3's identifies
    _postgres(capsys, url, rules, *args, "--into", "scores")  # the table, replaced
    rows = conn.execute("SELECT subject, id FROM scores ORDER BY subject, id").fetchall()
    assert rows == [("user", "u1"), ("user", "u2"), ("user", "u3")]
    load_messages(conn, "into_source", history)
    _postgres(capsys, url, rules, *args, "--into", "scores")
    rows = conn.execute(
        "SELECT subject, id, model, score, tier, route, reasons::text, "
        "scored_at = '2026-03-15T12:00:00Z' FROM scores ORDER BY subject, id"
    ).fetchall()
    expected = [
        ("account", "acme", "team", *_row(printed["accounts"]["acme"])),
        *(("user", uid, "u", *_row(user)) for uid, user in sorted(printed["users"].items())),
    ]
    assert rows == expected


def _row(score: dict[str, Any]) -> tuple[Any, ...]:
    reasons = json.dumps(score["reasons"], separators=(",", ":"))
    return (score["score"], score["tier"], score["route"], reasons, True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "postgres", "EVENTS"], "not a file"),
        (["--engine", "postgres"], "not a file"),
        (["--engine", "duckdb"], "name it"),
        (["EVENTS", "--engine", "duckdb", "--into", "t"], "name one with --database"),
        (["--engine", "postgres", "--dsn", "x", "--layout", "segment"], "not --engine postgres"),
        (["--engine", "postgres", "--dsn", "x", "--output", "s.csv"], "not --engine postgres"),
        (["--now", "2026-03-15T12:00:00Z", "EVENTS", "--engine", "duckdb", "--dsn", "x"], "need"),
        (["--engine", "postgres", "--dsn", "postgresql://nobody@127.0.0.1:1/x"], "cannot connect"),
    ],
)
def test_score_says_which_source_an_engine_reads(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file for postgres, no file for duckdb, --into elsewhere, no server: exit 2, named."""
    events = str(ROOT / "examples" / "events.jsonl")
    argv = [events if arg == "EVENTS" else arg for arg in args]
    assert main(["score", str(RULES / "playbook.toml"), *argv]) == 2
    printed = capsys.readouterr()
    assert message in printed.err
    assert not printed.out  # said before any scoring


@pytest.mark.parametrize(
    ("table", "message"),
    [("nowhere", "no table"), ("x--y", "no table"), ("a.b.c", "table name"), (".t", "table name")],
)
def test_a_missing_table_is_named(
    table: str, message: str, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """--table that is not there, or not a name: exit 2 naming it."""
    url, _ = database
    argv = ["score", str(RULES / "playbook.toml"), "--engine", "postgres", "--dsn", url]
    assert main([*argv, "--table", table]) == 2
    assert message in capsys.readouterr().err


def test_an_argument_too_many_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """A second file after the events file is an error, as argparse says it."""
    events = str(ROOT / "examples" / "events.jsonl")
    with pytest.raises(SystemExit) as exited:
        main(["score", str(RULES / "playbook.toml"), "--now", "2026-03-15T12:00:00Z", events, "x"])
    assert exited.value.code == 2
    assert "unrecognized arguments:" in capsys.readouterr().err
