"""Random rules files and histories: the SQL backends answer as the in-process engine does.

Hypothesis writes a rules file (signals over count/distinct/active_days with
filters and windows, trait comparisons, membership, arithmetic, min/max/clamp/abs,
conditionals, a gate, a multiplier, tiers, routes, an account model, [pqa]) and a
small history (tracks, identifies, groups; equal timestamps, repeated
messageIds, traits of every JSON type), scores it with ``--engine python`` and
``--engine duckdb`` (and, on fewer examples, ``--engine postgres`` over the
history in a table), and compares the JSON outputs value by value.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pqlsdk.cli import main

from .postgres import fresh_schema, load_messages

NOW = "2026-03-15T12:00:00Z"
EVENTS = ["a", "b", "c"]
USERS = ["u1", "u2", "u3", "u4"]
ACCOUNTS = ["acme", "beta"]
JSON_VALUES: st.SearchStrategy[object] = st.sampled_from(
    [None, 0, 1, 3, 7.5, -2, "x", "paid", True, False, [1, "x"], {}]
)
TRAIT_NAMES = ["plan", "n"]
PROPERTY_VALUES = st.sampled_from([1, 2, 1.0, "x", "y", True, False, None])

# Expressions, as text -------------------------------------------------------

durations = st.sampled_from(["1d", "3d", "10d", "12h", "2w"])


def _quoted(value: Any) -> str:
    return json.dumps(value) if value is not None else "null"


@st.composite
def aggregates(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["count", "distinct", "active_days"]))
    window = draw(st.none() | durations)
    args: list[str] = []
    if kind == "active_days":
        return f"active_days(within={window})" if window else "active_days()"
    if kind == "count":
        event = draw(st.none() | st.sampled_from(EVENTS))
        if event is not None:
            args.append(_quoted(event))
    else:
        args += [_quoted(draw(st.sampled_from(EVENTS))), _quoted("p")]
    if window:
        args.append(f"within={window}")
    if event_filter := draw(st.none() | st.sampled_from([1, "x", True, 2.0])):
        args.append(f"q={_quoted(event_filter)}")
    return f"{kind}({', '.join(args)})"


traits = st.sampled_from(
    [f"{scope}.{name}" for scope in ("user", "account") for name in TRAIT_NAMES]
)
facts = st.sampled_from(["days_since_last_active()", "days_since_first_seen()", "team_size()"])
literals = st.sampled_from(["0", "1", "2", "2.5", "-1", '"x"', "true", "null"])


def numbers(depth: int = 2) -> st.SearchStrategy[str]:
    atoms = aggregates() | facts | traits | st.sampled_from(["0", "1", "3", "0.5", "10"])
    if depth == 0:
        return atoms
    inner = numbers(depth - 1)
    return st.one_of(
        atoms,
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "%"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(st.sampled_from(["min", "max"]), inner, inner).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
        st.tuples(inner, inner, inner).map(lambda t: f"clamp({t[0]}, {t[1]}, {t[2]})"),
        inner.map(lambda x: f"abs({x})"),
        inner.map(lambda x: f"-{x}"),
        st.tuples(inner, conditions(0), inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
    )


def conditions(depth: int = 2) -> st.SearchStrategy[str]:
    compare = st.tuples(
        numbers(0 if depth == 0 else 1),
        st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
        numbers(0) | literals,
    ).map(lambda t: f"{t[0]} {t[1]} {t[2]}")
    membership = st.tuples(
        traits,
        st.sampled_from(["in", "not in"]),
        st.lists(st.sampled_from(['"x"', '"paid"', "1", "true", "7.5"]), max_size=3).map(
            lambda items: "[" + ", ".join(items) + "]"
        )
        | traits,
    ).map(lambda t: f"{t[0]} {t[1]} {t[2]}")
    atoms = compare | membership | traits.map(lambda t: f"{t} == null") | traits
    if depth == 0:
        return atoms
    inner = conditions(depth - 1)
    return st.one_of(
        atoms,
        inner.map(lambda c: f"not ({c})"),
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda t: f"({t[0]}) {t[1]} ({t[2]})"
        ),
    )


@st.composite
def signals(draw: st.DrawFn) -> dict[str, Any]:
    points = draw(st.sampled_from([1, 5, 10, 2.5, -3]))
    if draw(st.booleans()):
        return {"when": draw(conditions()), "points": points}
    return {"value": draw(numbers()), "points": points}


@st.composite
def models(draw: st.DrawFn, *, subject: str = "user") -> dict[str, Any]:
    count = draw(st.integers(1, 4))
    model: dict[str, Any] = {
        "signals": {f"s{i}": draw(signals()) for i in range(count)},
        "tiers": draw(
            st.sampled_from(
                [{"low": 0, "high": 10}, {"cold": 0, "warm": 5, "hot": 20}, {"only": 0}]
            )
        ),
    }
    if subject == "account":
        model["subject"] = "account"
    if draw(st.booleans()):
        model["gate"] = draw(conditions(1))
    if draw(st.booleans()):
        model["multiplier"] = draw(numbers(1))
    if draw(st.booleans()):
        model["routes"] = [
            {"route": f"r{i}", "when": draw(conditions(1))} for i in range(draw(st.integers(1, 2)))
        ]
    if subject == "user" and draw(st.booleans()):
        model["do_not_contact"] = draw(conditions(0))
    return model


@st.composite
def rules_files(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": {"m": draw(models())}}
    if draw(st.booleans()):
        spec["model"]["team"] = draw(models(subject="account"))
    if draw(st.booleans()):
        tiers = list(spec["model"]["m"]["tiers"])
        spec["pqa"] = {
            "model": "m",
            "tier": draw(st.sampled_from(tiers)),
            "min_users": draw(st.integers(1, 2)),
        }
    return spec


# Histories ------------------------------------------------------------------


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["track", "track", "track", "identify", "group"]))
    # Past NOW too: a window then ends at the latest matching track, in both engines.
    day = draw(st.integers(0, 17))
    hour = draw(st.sampled_from([0, 6, 12, 23]))
    message: dict[str, Any] = {
        "type": kind,
        "userId": draw(st.sampled_from(USERS)),
        "timestamp": f"2026-03-{1 + day:02d}T{hour:02d}:00:00Z",
        "messageId": f"m{draw(st.integers(0, 40))}",
    }
    if kind == "track":
        message["event"] = draw(st.sampled_from(EVENTS))
        message["properties"] = draw(
            st.dictionaries(st.sampled_from(["p", "q"]), PROPERTY_VALUES, max_size=2)
        )
    else:
        message["traits"] = draw(st.dictionaries(st.sampled_from(TRAIT_NAMES), JSON_VALUES))
        if kind == "group":
            message["groupId"] = draw(st.sampled_from(ACCOUNTS))
    return message


def _score(rules: Path, events: Path | str, engine: str) -> dict[str, Any] | None:
    """Score with ``engine`` (postgres: ``events`` is the DSN); None when rules are refused."""
    out, err = io.StringIO(), io.StringIO()
    source = ["--dsn", str(events), "--table", "history"] if engine == "postgres" else [events]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(
            ["score", str(rules), *map(str, source), "--json", "--now", NOW, "--engine", engine]
        )
    if code == 1:
        # Only what an engine's SQL cannot compute is refused by that engine alone.
        assert engine == "python" or "runs on the python engine" in err.getvalue(), err.getvalue()
        return None
    assert code == 0, err.getvalue()
    parsed: dict[str, Any] = json.loads(out.getvalue())
    return parsed


def _same(python: Any, duck: Any, where: str = "") -> None:
    """Equal, floats to 1e-9 (the contract), every other value exactly: 3 is not 3.0."""
    assert type(python) is type(duck), where
    if isinstance(python, float):
        assert math.isclose(python, duck, rel_tol=1e-9, abs_tol=1e-9), where
    elif isinstance(python, dict):
        assert isinstance(duck, dict), where
        assert python.keys() == duck.keys(), where
        for key in python:
            _same(python[key], duck[key], f"{where}.{key}")
    elif isinstance(python, list):
        assert isinstance(duck, list), where
        assert len(python) == len(duck), where
        for index, (a, b) in enumerate(zip(python, duck, strict=True)):
            _same(a, b, f"{where}[{index}]")
    else:
        assert python == duck, where


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec=rules_files(), history=st.lists(messages(), max_size=25))
def test_random_rules_and_histories_score_the_same(
    spec: dict[str, Any], history: list[dict[str, Any]]
) -> None:
    """Every user's and account's score, tier, route and reasons agree across the engines."""
    with tempfile.TemporaryDirectory() as folder:
        rules = Path(folder) / "rules.json"
        rules.write_text(json.dumps(spec))
        events = Path(folder) / "events.jsonl"
        events.write_text("".join(json.dumps(message) + "\n" for message in history))
        python = _score(rules, events, "python")
        if python is None:  # not a valid rules file: nothing to compare
            return
        duck = _score(rules, events, "duckdb")
        if duck is not None:  # None: refused at compile time, never a different answer
            _same(python, duck)


@pytest.fixture(scope="module")
def postgres_database(postgres_server: str) -> Iterator[tuple[str, psycopg.Connection[Any]]]:
    """A fresh schema's URL, and one connection to it that loads each history."""
    with fresh_schema(postgres_server) as url, psycopg.connect(url, autocommit=True) as conn:
        yield url, conn


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(spec=rules_files(), history=st.lists(messages(), max_size=25))
def test_random_rules_and_histories_score_the_same_in_postgres(
    postgres_database: tuple[str, psycopg.Connection[Any]],
    spec: dict[str, Any],
    history: list[dict[str, Any]],
) -> None:
    """The same on PostgreSQL, over the history loaded into a table (fewer examples)."""
    url, conn = postgres_database
    with tempfile.TemporaryDirectory() as folder:
        rules = Path(folder) / "rules.json"
        rules.write_text(json.dumps(spec))
        events = Path(folder) / "events.jsonl"
        events.write_text("".join(json.dumps(message) + "\n" for message in history))
        python = _score(rules, events, "python")
        if python is None:
            return
        load_messages(conn, "history", history)
        postgres = _score(rules, url, "postgres")
        if postgres is not None:
            _same(python, postgres)
