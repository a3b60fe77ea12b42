"""The rules compiled to Spark SQL, run by Apache Spark in local mode: Python's answers.

One SparkSession serves every test (``spark``, session-scoped): starting the JVM
costs seconds, each scoring a few more. ``pqlsdk.cli.main`` runs in process and
finds that session active, as a notebook's would be. scripts/test.sh runs these
tests in their own step (``pytest -m spark``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

import pqlsdk.rules
from pqlsdk._clock import FixedClock, micros
from pqlsdk.cli import main
from pqlsdk.warehouse import compile_model
from pqlsdk.warehouse._dialect_spark import SPARK
from pqlsdk.warehouse._spark import read_messages, score_spark
from pqlsdk.warehouse._spark import session as spark_session

from .conftest import ROOT, load_scenario, scenario_files, scenario_id, unavailable
from .test_warehouse import ACCOUNT_RULES, EVERY_CONSTRUCT, EVERY_HISTORY, MODEL_FILES

pytestmark = pytest.mark.spark

RULES = ROOT / "examples" / "rules"
NOW = "2026-03-15T12:00:00Z"


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local SparkSession for every test: one core, one shuffle partition, no UI.

    Started by ``_spark.session`` as the command line starts its own, when none is active.
    Spark runs on a Java runtime: without one the tests skip, except under ``CI=true``,
    where a missing runtime fails the run (as a missing Redis or PostgreSQL does).
    """
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        unavailable(
            "Apache Spark needs a Java runtime (17 or later): no java on PATH, no JAVA_HOME"
        )
    assert SparkSession.getActiveSession() is None
    session = spark_session("local[1]", {"spark.sql.shuffle.partitions": "1"})
    session.sparkContext.setLogLevel("ERROR")
    assert session.conf.get("spark.ui.enabled") == "false"
    yield session
    session.stop()


def _distinct_vectors() -> list[Path]:
    """The scoring vectors, each content once: ../shared/scenarios repeats the repo's."""
    seen: set[bytes] = set()
    found = []
    for path in scenario_files():
        data = path.read_bytes()
        if data not in seen and "steps" not in load_scenario(path):
            seen.add(data)
            found.append(path)
    return found


def _rules_for(data: dict[str, Any]) -> Path:
    return next(path for name, path in MODEL_FILES.items() if data["model"].startswith(name))


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    assert main(list(args)) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


@pytest.mark.parametrize("path", _distinct_vectors(), ids=scenario_id)
def test_every_vector_scores_the_same_on_spark(
    spark: Any, path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each vector, every model: Spark prints Python's JSON (the table is the same objects')."""
    rules_path = _rules_for(load_scenario(path))
    rules = pqlsdk.rules.load(rules_path)
    for model in rules.models:
        args = ["score", str(rules_path), str(path), "--json", "--model", model]
        assert _cli(capsys, *args, "--engine", "spark") == _cli(capsys, *args, "--engine", "python")


def test_every_construct_scores_the_same_on_spark(
    spark: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The model using every construct (float '%' included): Spark prints Python's JSON."""
    rules = tmp_path / "every.json"
    rules.write_text(json.dumps(EVERY_CONSTRUCT))
    events = tmp_path / "events.jsonl"
    events.write_text("\n" + "".join(json.dumps(m) + "\n" for m in EVERY_HISTORY))
    args = ["score", str(rules), str(events), "--json", "--now", NOW]
    assert _cli(capsys, *args, "--engine", "spark") == _cli(capsys, *args, "--engine", "python")


def test_an_account_model_scores_the_same_on_spark(
    spark: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Account models (tracks credited at arrival, team size) and [pqa]: Python's JSON."""
    rules = tmp_path / "accounts.toml"
    rules.write_text(ACCOUNT_RULES)
    path = ROOT / "tests" / "scenarios" / "model1_edges.json"
    args = ["score", str(rules), str(path), "--json"]
    out = _cli(capsys, *args, "--engine", "spark")
    assert out == _cli(capsys, *args, "--engine", "python")
    assert any(account.get("score") for account in json.loads(out[0])["accounts"].values())


def test_an_event_name_made_of_sql_stays_a_literal_on_spark(
    spark: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An event, property and trait made of SQL and quotes: Spark scores them as Python does."""
    evil = "x'); DROP TABLE events; --"
    spark.sql("CREATE OR REPLACE TEMPORARY VIEW events AS SELECT 1 AS x")
    rules = tmp_path / "evil.json"
    signals = {
        "a": {"when": f'count("{evil}", path="{evil}") >= 1', "points": 1},
        "b": {"when": 'distinct("x", "it\'s") >= 1', "points": 2},
        "c": {"when": 'user.quote == "a\\"b\\\\"', "points": 4},
    }
    rules.write_text(json.dumps({"model": {"m": {"tiers": {"low": 0}, "signals": signals}}}))
    at = "2026-03-01T00:00:00Z"
    lines = [
        {"type": "track", "userId": "u'1", "event": evil, "properties": {"path": evil}},
        {"type": "track", "userId": "u'1", "event": "x", "properties": {"it's": evil}},
        {"type": "identify", "userId": "u'1", "traits": {"quote": 'a"b\\'}},
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps({**line, "timestamp": at}) + "\n" for line in lines))
    args = ["score", str(rules), str(events), "--json", "--now", "2026-03-02T00:00:00Z"]
    out, _ = _cli(capsys, *args, "--engine", "spark")
    assert (out, _) == _cli(capsys, *args, "--engine", "python")
    assert json.loads(out)["users"]["u'1"]["score"] == 7.0
    assert spark.sql("SELECT x FROM events").collect()[0][0] == 1  # the view is still there
    text = compile_model(pqlsdk.rules.load(rules), dialect=SPARK).sql()
    assert "'x\\'); DROP TABLE events; --'" in text  # a quoted literal, its quote escaped
    assert text.count("DROP TABLE") == text.count("'x\\'); DROP TABLE events; --'")


def test_invalid_messages_are_refused_and_reported_as_python_does(
    spark: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused messages are refused by Spark too and said the same way; --output is the same."""
    good = {"type": "track", "userId": "u1", "event": "e", "timestamp": "2026-03-01T00:00:00Z"}
    lines = [
        json.dumps(good),
        "",
        json.dumps({**good, "userId": 5}),  # an id that is a number
        json.dumps({**good, "timestamp": "2026-02-30T00:00:00Z"}),  # a day February lacks
        json.dumps({**good, "timestamp": "2026-03-01T00:00:00.12345675+23:59"}),
        json.dumps({key: value for key, value in good.items() if key != "userId"}),
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    args = ["score", str(RULES / "playbook.toml"), str(events), "--now", NOW]
    written = {engine: tmp_path / f"{engine}.csv" for engine in ("spark", "python")}
    outputs = {
        engine: _cli(capsys, *args, "--engine", engine, "--output", str(path))
        for engine, path in written.items()
    }
    assert outputs["spark"][0] == outputs["python"][0]  # the table
    assert outputs["spark"][1] == outputs["python"][1].replace("python.csv", "spark.csv")
    assert "skipped 3 invalid message(s)" in outputs["spark"][1]
    assert written["spark"].read_text() == written["python"].read_text()


def test_score_spark_reads_a_table_and_returns_lazy_frames(
    spark: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A table without seq or traits, properties as VARIANT: lazy frames of Python's scores."""
    rules = pqlsdk.rules.load(RULES / "playbook.toml")
    events = tmp_path / "events.jsonl"
    with (ROOT / "examples" / "events.jsonl").open() as source:
        messages = [json.loads(line) for line in source if line.strip()]
    events.write_text("".join(json.dumps({**m, "traits": None}) + "\n" for m in messages))
    frame, _ = read_messages(spark, events)
    frame.orderBy("seq").selectExpr(
        *(f"`{name}`" for name in ("type", "userId", "anonymousId", "messageId", "groupId")),
        "event",
        "`timestamp`",
        "PARSE_JSON(properties) AS properties",
    ).createOrReplaceTempView("segment_events")
    now = micros(FixedClock(NOW).now())
    users, accounts = score_spark(spark, rules, "segment_events", model="stuck", now=now)
    assert isinstance(users, DataFrame)
    assert isinstance(accounts, DataFrame)
    assert "reasons" in users.columns  # analysed, not run: a lazy frame
    out, _ = _cli(
        capsys,
        "score",
        str(RULES / "playbook.toml"),
        str(events),
        "--json",
        "--now",
        NOW,
        "--engine",
        "python",
        "--model",
        "stuck",
    )
    python = json.loads(out)
    got = {row["id"]: (row["score"], row["tier"]) for row in users.collect()}
    assert got == {uid: (user["score"], user["tier"]) for uid, user in python["users"].items()}
    from_frame, _ = score_spark(spark, rules, frame, model="stuck", now=now)
    assert from_frame.columns == users.columns


def test_options_spark_cannot_take_are_refused(
    spark: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """--table and --into name a DuckDB database: an error, before Spark runs anything."""
    events = str(ROOT / "examples" / "events.jsonl")
    rules = str(RULES / "playbook.toml")
    for option in (["--table", "t"], ["--into", "scores"]):
        assert main(["score", rules, events, "--engine", "spark", *option]) == 2
        assert f"{option[0]} reads or writes a DuckDB database" in capsys.readouterr().err
