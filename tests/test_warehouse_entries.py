"""Each user's ``--json`` entry written by DuckDB (``_output_sql``): the command's, to the byte."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest
from sqlglot import exp

import pqlsdk.rules
from pqlsdk.cli import main
from pqlsdk.rules._types import Type
from pqlsdk.warehouse import _duckdb, compile_plan
from pqlsdk.warehouse._dialect_duckdb import DUCKDB
from pqlsdk.warehouse._output_sql import _Entry
from pqlsdk.warehouse._values import Value, template

NOW = "2026-03-15T12:00:00Z"

RULES = {
    "model": {
        "m": {
            "gate": 'count("go") >= 1 and count("go") < 100',
            "multiplier": "user.boost",
            "tiers": {"low": 0, "high": 30},
            "signals": {
                "plan": {"when": 'user.plan == "paid"', "points": 10},
                "ratio": {"value": "user.ratio", "points": 5},
                "size": {"when": "user.size >= 3", "points": 7, "label": "size\u001b"},
            },
        }
    }
}
"""Traits the entry reads as they were sent: strings, numbers of every size, objects."""

TRAITS: list[dict[str, Any]] = [
    {"plan": "paid", "ratio": 0.5, "size": 3, "boost": 2},
    {
        "plan": "pa\u001bid",
        "ratio": 0.00001,
        "size": 1e20,
        "boost": 1e-5,
    },  # DuckDB writes otherwise
    {"plan": {"b": 1, "b ": 2}, "ratio": 1e16, "size": [1, 2], "boost": 0.25},
    {"plan": "paid", "ratio": 3, "size": "3", "boost": 1e300},
    {"plan": None, "ratio": -0.0, "boost": {"x": 1}},
    {},
]


def _history(folder: Path) -> Path:
    events = folder / "events.jsonl"
    lines = []
    for index, traits in enumerate(TRAITS):
        user = f"u{index}"
        lines.append({"type": "identify", "userId": user, "traits": traits})
        lines += [{"type": "track", "userId": user, "event": "go"}] * (index + 1)
    with events.open("w") as out:
        for number, line in enumerate(lines):
            stamp = f"2026-03-{1 + number % 10:02d}T00:00:00Z"
            out.write(json.dumps({**line, "timestamp": stamp, "messageId": f"m{number}"}) + "\n")
    return events


def _score(*args: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["score", *args]) == 0
    return out.getvalue()


def test_the_entries_are_the_python_engines_output(tmp_path: Path) -> None:
    """Strings, tiny and huge numbers, objects: ``--json`` from DuckDB is python's text."""
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES))
    events = _history(tmp_path)
    args = [str(rules), str(events), "--json", "--now", NOW]
    python = _score(*args, "--engine", "python")
    assert _score(*args, "--engine", "duckdb") == python
    assert len(json.loads(python)["users"]) == len(TRAITS)


def _users_rows(folder: Path) -> list[dict[str, Any]]:
    """The users' rows DuckDB gives for ``RULES`` over ``_history``, entries written."""
    rules = folder / "rules.json"
    rules.write_text(json.dumps(RULES))
    events = _history(folder)
    plan = compile_plan(pqlsdk.rules.load(rules), now=0, output=True)
    with _duckdb.source(events) as (relation, _):
        return _duckdb.run(_duckdb.connect(), plan, relation).users


def test_duckdb_leaves_the_entries_it_writes_otherwise_to_python(tmp_path: Path) -> None:
    """Where DuckDB's text would differ from msgspec's, the entry is not marked exact."""
    rows = _users_rows(tmp_path)
    exact = {row["id"]: bool(row["pqlsdk_exact"]) for row in rows}
    assert exact == {"u0": True, "u1": False, "u2": False, "u3": False, "u4": True, "u5": True}


@pytest.mark.parametrize(
    ("value", "sql", "python", "exact"),
    [
        (Value(Type.NUMBER, exp.null()), "NULL", None, True),
        (Value(Type.NUMBER, exp.null()), "'inf'::DOUBLE", None, True),
        (Value(Type.NUMBER, exp.null()), "0.5::DOUBLE", 0.5, True),
        (Value(Type.NUMBER, exp.null()), "1e-5::DOUBLE", 1e-5, False),
        (Value(Type.NUMBER, exp.null(), integer=True), "7::BIGINT", 7, True),
        (Value(Type.NUMBER, exp.null(), whole=template("x = 1")), "1::DOUBLE", 1, True),
        (Value(Type.NUMBER, exp.null(), whole=template("x = 1")), "0.5::DOUBLE", 0.5, True),
        (Value(Type.BOOL, exp.null()), "true", True, True),
        (Value(Type.STRING, exp.null()), "'a\"b/é'", 'a"b/é', True),
        (Value(Type.STRING, exp.null()), "chr(27)", "\u001b", False),
        (Value(Type.ANY, exp.null()), "'\"x\"'::JSON", "x", True),
        (Value(Type.ANY, exp.null()), "'12'::JSON", 12, True),
        (Value(Type.ANY, exp.null()), "'2.5'::JSON", 2.5, True),
        (Value(Type.ANY, exp.null()), "'1e-7'::JSON", 1e-7, False),
        (Value(Type.ANY, exp.null()), "'[1]'::JSON", [1], False),
        (Value(Type.ANY, exp.null()), "NULL::JSON", None, True),
        (Value(Type.NULL, exp.null()), "NULL", None, True),
        (Value(Type.LIST, exp.null()), "NULL", None, False),
    ],
)
def test_each_kind_of_value_is_written_as_msgspec_writes_it(
    value: Value, sql: str, python: object, exact: bool
) -> None:
    """A value's text is msgspec's where it is marked exact, and marked where it is not."""
    entry = _Entry(DUCKDB)
    entry.value(Value(value.type, exp.column("x"), value.integer, whole=value.whole))
    text, test = entry.written()
    query = exp.select(exp.alias_(text, "t"), exp.alias_(test, "e")).from_(
        template(f"(SELECT {sql} AS x)")  # the test's own constants
    )
    row = duckdb.connect().execute(query.sql("duckdb")).fetchone()
    assert row is not None
    written, marked = row
    assert bool(marked) is exact
    if exact:
        assert written == msgspec.json.encode(python).decode()


def test_a_property_filter_counts_as_python_whatever_its_text(tmp_path: Path) -> None:
    """Plain strings are compared as DuckDB writes them; quotes, escapes, accents as values."""
    paths = ["/pricing", 'a"b', "a\\b", "é", "\u00e9\u0301"]
    signals = {
        f"s{index}": {
            "when": f'count("view", path={json.dumps(path, ensure_ascii=False)}) >= 1',
            "points": 1,
        }
        for index, path in enumerate(paths)
    }
    signals["features"] = {"when": 'distinct("use", "feature") >= 2', "points": 1}
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"model": {"m": {"tiers": {"low": 0}, "signals": signals}}}))
    sent = [*paths, "/pricing/", 1, None, {"a": 1}]
    lines = [
        f'{{"type":"track","userId":"u{index % 3}","event":"view","properties":{{"path":{text}}}}}'
        for index, text in enumerate([json.dumps(p) for p in sent] + ['"\\u00e9"', '"\\/pricing"'])
    ]
    lines += [
        f'{{"type":"track","userId":"u{index % 2}","event":"use","properties":{{"feature":{f}}}}}'
        for index, f in enumerate(["null", '"a"', "1", '"a"', "null", '"b"', "{}"])
    ]
    lines.append('{"type":"track","userId":"u2","event":"use","properties":{}}')
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            line[:-1] + f',"timestamp":"2026-03-01T00:00:0{n % 10}Z","messageId":"m{n}"}}\n'
            for n, line in enumerate(lines)
        )
    )
    args = [str(rules), str(events), "--json", "--now", NOW]
    python = _score(*args, "--engine", "python")
    assert _score(*args, "--engine", "duckdb") == python
    users = json.loads(python)["users"].values()
    fired = {r["signal"] for user in users for r in user["reasons"] if r["fired"]}
    assert fired == {"s0", "s1", "s2", "s3", "s4", "features"}  # each filter discriminates


def test_the_tier_and_the_route_are_written_without_a_test() -> None:
    """They are rules names (nothing to escape): the exactness test reads neither."""
    rules = pqlsdk.rules.loads(json.dumps(RULES), format="json")
    plan = compile_plan(rules, now=0, output=True)
    last = dict(plan.steps)["model_0"]
    exact = next(c for c in last.expressions if c.alias == "pqlsdk_exact")
    assert not {column.name for column in exact.find_all(exp.Column)} & {"tier", "route"}


def test_only_the_rows_whose_entry_is_not_exact_are_fetched_whole(tmp_path: Path) -> None:
    """The users' query gives ids, entries and exactness; the rest is asked by id where inexact."""
    rows = _users_rows(tmp_path)
    exact = [row for row in rows if row["pqlsdk_exact"]]
    inexact = [row for row in rows if not row["pqlsdk_exact"]]
    assert (len(exact), len(inexact)) == (3, 3)
    assert all(set(row) == {"id", "pqlsdk_output", "pqlsdk_exact"} for row in exact)
    assert all(row["reasons"] is not None and "score" in row for row in inexact)
