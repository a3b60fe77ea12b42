"""The duckdb engine's sources and sinks: the files and tables users already have.

Every scenario vector is written, for real, as each source a user may hold
(Parquet, CSV, a DuckDB table, a SQLite table, Segment's and RudderStack's
warehouse layout) and scored by ``pqlsdk score --engine duckdb``: the output
must be the text ``--engine python`` prints for the vector itself.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

import pqlsdk.rules
from pqlsdk._formats import sniff
from pqlsdk.cli import main
from pqlsdk.warehouse import _sinks, _sources

from .conftest import ROOT, load_scenario, scenario_files, scenario_id

RULES = ROOT / "examples" / "rules"
MODEL_FILES = {
    "domain.md model 1": RULES / "playbook.toml",
    "domain.md model 2": RULES / "weighted.toml",
    "domain.md model 3": RULES / "sustained.toml",
}
FIELDS = _sources.FIELDS[1:]  # what a message carries: every field but the arrival order
EVIL = "x'); DROP TABLE events; --"


def _scoring_files() -> list[Path]:
    return [p for p in scenario_files() if "steps" not in load_scenario(p)]


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def _rows(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Messages as rows of text: properties and traits as JSON text, absent as NULL."""
    rows = []
    for event in events:
        row = [event.get(field) for field in FIELDS]
        for at in (7, 8):
            row[at] = None if row[at] is None else json.dumps(row[at])
        rows.append(tuple(row))
    return rows


def _load(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    rows: list[dict[str, Any]],
    kinds: dict[str, str],
    folder: Path,
) -> None:
    """Create ``table`` from ``rows`` through a JSON Lines file: DuckDB's fast way in."""
    lines = folder / f"{len(list(folder.iterdir()))}.jsonl"
    lines.write_text("".join(json.dumps(row) + "\n" for row in rows))
    quoted = {name.replace("'", "''"): kind for name, kind in kinds.items()}
    spec = ", ".join(f"'{name}': '{kind}'" for name, kind in quoted.items())
    connection.execute(
        f"CREATE TABLE {table} AS SELECT * FROM read_json('{lines}', "  # noqa: S608 - the test's own names
        f"format := 'newline_delimited', columns := {{{spec}}})"
    )


def _duckdb_messages(events: list[dict[str, Any]], folder: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    kinds = {"seq": "BIGINT"} | {
        f: "JSON" if f in ("properties", "traits") else "VARCHAR" for f in FIELDS
    }
    rows = [{"seq": i} | event for i, event in enumerate(events, 1)]
    scratch = folder / "scratch"
    scratch.mkdir(exist_ok=True)
    _load(connection, "m", rows, kinds, scratch)
    return connection


def as_parquet(events: list[dict[str, Any]], folder: Path) -> list[str]:
    """A Parquet file of messages, in arrival order (no seq column: the file's order)."""
    path = folder / "events.parquet"
    connection = _duckdb_messages(events, folder)
    connection.execute(f"COPY (SELECT * EXCLUDE (seq) FROM m ORDER BY seq) TO '{path}'")  # noqa: S608 - the test's own names
    return [str(path)]


def as_csv(events: list[dict[str, Any]], folder: Path) -> list[str]:
    """A CSV export: properties and traits as JSON text columns."""
    path = folder / "events.csv"
    connection = _duckdb_messages(events, folder)
    connection.execute(f"COPY (SELECT * EXCLUDE (seq) FROM m ORDER BY seq) TO '{path}' (HEADER)")  # noqa: S608 - the test's own names
    return [str(path)]


def as_duckdb_table(events: list[dict[str, Any]], folder: Path) -> list[str]:
    """A DuckDB table inserted backwards: its seq column, not its rowid, is the order."""
    path = folder / "history.duckdb"
    connection = _duckdb_messages(events, folder)
    connection.execute(f"ATTACH '{path}' AS h")
    connection.execute("CREATE TABLE h.events AS SELECT * FROM m ORDER BY seq DESC")
    connection.execute("CREATE TABLE h.other (x INTEGER)")
    connection.close()
    return [str(path), "--table", "events"]


def as_sqlite_table(events: list[dict[str, Any]], folder: Path) -> list[str]:
    """A SQLite table with snake_case names (user_id...), in rowid order."""
    path = folder / "history.sqlite"
    db = sqlite3.connect(path)
    names = ", ".join(re.sub(r"([A-Z])", r"_\1", f).lower() for f in FIELDS)
    db.execute(f"CREATE TABLE events ({names})")
    db.executemany(f"INSERT INTO events VALUES ({', '.join('?' * 9)})", _rows(events))  # noqa: S608 - the test's own names
    db.commit()
    db.close()
    return [str(path)]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _kind(values: list[Any]) -> str:
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return "BOOLEAN"
    if kinds == {int}:
        return "BIGINT"
    if kinds <= {float} and kinds:
        return "DOUBLE"
    if kinds == {str}:
        return "VARCHAR"
    return "JSON"  # mixed kinds, lists and objects: kept as JSON, as a DuckDB user would


def _layout_tables(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The messages as Segment writes them: one row per call, a column per trait/property."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for seq, event in enumerate(events, 1):
        row = {
            "id": f"m{seq}",
            "user_id": event.get("userId"),
            "anonymous_id": event.get("anonymousId"),
            "timestamp": event["timestamp"],
            "received_at": f"2030-01-01T00:00:{seq // 1000000:02d}.{seq % 1000000:06d}Z",
            "context_library_name": "analytics.js",
        }
        if event["type"] == "track":
            slug = _slug(event["event"])
            row |= {"event": slug, "event_text": event["event"]}
            tables.setdefault("tracks", []).append(dict(row))
            tables.setdefault(slug, []).append(row | event.get("properties", {}))
        elif event["type"] == "identify":
            tables.setdefault("identifies", []).append(row | event.get("traits", {}))
        else:
            row["group_id"] = event["groupId"]
            tables.setdefault("groups", []).append(row | event.get("traits", {}))
    return tables


def _write_layout(
    connection: duckdb.DuckDBPyConnection, prefix: str, tables: dict[str, Any], folder: Path
) -> None:
    scratch = folder / "scratch"
    scratch.mkdir(exist_ok=True)
    for name, rows in tables.items():
        columns = list(dict.fromkeys(key for row in rows for key in row))
        kinds = {c: _kind([row.get(c) for row in rows]) for c in columns}
        kinds |= {"timestamp": "TIMESTAMPTZ", "received_at": "TIMESTAMPTZ"}
        _load(connection, f'{prefix}"{name}"', rows, kinds, scratch)


def as_segment_duckdb(events: list[dict[str, Any]], folder: Path) -> list[str]:
    """Segment's layout in a DuckDB database, under the source's schema."""
    path = folder / "warehouse.duckdb"
    connection = duckdb.connect(str(path))
    connection.execute("CREATE SCHEMA product_app")
    _write_layout(connection, "product_app.", _layout_tables(events), folder)
    connection.close()
    return [str(path), "--layout", "segment", "--schema", "product_app"]


def as_rudderstack_sqlite(events: list[dict[str, Any]], folder: Path) -> list[str]:
    """RudderStack's layout in a SQLite database (values as SQLite holds them)."""
    path = folder / "warehouse.sqlite"
    db = sqlite3.connect(path)
    for name, rows in _layout_tables(events).items():
        columns = list(dict.fromkeys(key for row in rows for key in row))
        db.execute(f'CREATE TABLE "{name}" ({", ".join(f"{c!r}" for c in columns)})')
        values = [
            [json.dumps(v) if isinstance(v := row.get(c), list | dict) else v for c in columns]
            for row in rows
        ]
        db.executemany(f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(columns))})', values)  # noqa: S608 - the test's own names
    db.commit()
    db.close()
    return [str(path), "--layout", "rudderstack"]


def as_segment_parquet(events: list[dict[str, Any]], folder: Path) -> list[str]:
    """Segment's layout as a folder of Parquet files, one per table (a data lake export)."""
    lake = folder / "lake"
    lake.mkdir()
    connection = duckdb.connect()
    tables = _layout_tables(events)
    _write_layout(connection, "", tables, folder)
    for name in tables:
        connection.execute(f"COPY \"{name}\" TO '{lake / name}.parquet'")
    return [str(lake), "--layout", "segment"]


SOURCES: dict[str, Callable[[list[dict[str, Any]], Path], list[str]]] = {
    "parquet": as_parquet,
    "csv": as_csv,
    "duckdb-table": as_duckdb_table,
    "sqlite-table": as_sqlite_table,
    "segment-duckdb": as_segment_duckdb,
    "rudderstack-sqlite": as_rudderstack_sqlite,
    "segment-parquet": as_segment_parquet,
}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("path", _scoring_files(), ids=scenario_id)
def test_every_vector_scores_the_same_from_every_source(
    path: Path, source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A vector written as this source scores as the python engine scores the vector."""
    data = load_scenario(path)
    rules = next(p for name, p in MODEL_FILES.items() if data["model"].startswith(name))
    where = SOURCES[source](data["events"], tmp_path)
    for model in pqlsdk.rules.load(rules).models:
        common = ["score", str(rules), "--json", "--model", model, "--now", data["now"]]
        key = (path, model)
        if key not in _PYTHON:  # the reference, once per vector and model
            _PYTHON[key] = _cli(capsys, *common, str(path), "--engine", "python")
        assert _cli(capsys, *common, *where, "--engine", "duckdb") == _PYTHON[key]
        assert json.loads(_PYTHON[key])["users"]  # someone scores: the check discriminates


_PYTHON: dict[tuple[Path, str], str] = {}
"""The python engine's output by vector and model: the same for every source."""


def test_names_and_values_made_of_sql_stay_literals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An event, a property column and a value spelling SQL are data: the tables stay."""
    rules = tmp_path / "evil.json"
    signal = {"when": f'count("{EVIL}", path="{EVIL}") >= 1', "points": 3}
    spec = {"model": {"m": {"tiers": {"low": 0, "high": 1}, "signals": {"s": signal}}}}
    rules.write_text(json.dumps(spec))
    events = [
        {
            "type": "track",
            "userId": EVIL,
            "event": EVIL,
            "properties": {"path": EVIL, EVIL: 1},
            "timestamp": "2026-03-01T00:00:00Z",
        },
        {
            "type": "identify",
            "userId": EVIL,
            "traits": {EVIL: EVIL},
            "timestamp": "2026-03-01T00:00:00Z",
        },
    ]
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text("".join(json.dumps(e) + "\n" for e in events))
    common = ["score", str(rules), "--json", "--now", "2026-03-02T00:00:00Z"]
    python = _cli(capsys, *common, str(jsonl), "--engine", "python")
    assert json.loads(python)["users"][EVIL]["score"] == 3.0
    for source in (as_duckdb_table, as_segment_duckdb, as_rudderstack_sqlite):
        folder = tmp_path / source.__name__
        folder.mkdir()
        where = source(events, folder)
        assert _cli(capsys, *common, *where, "--engine", "duckdb") == python
        if where[0].endswith(".duckdb"):
            with duckdb.connect(where[0], read_only=True) as connection:
                listed = connection.execute("SELECT table_name FROM information_schema.tables")
                tables = {row[0] for row in listed.fetchall()}
            assert {"events", "other"} <= tables or {"tracks", "identifies"} <= tables


def _message_table(tmp_path: Path, columns: str, *rows: tuple[Any, ...]) -> Path:
    path = tmp_path / "m.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute(f"CREATE TABLE events ({columns})")
        for row in rows:
            connection.execute(f"INSERT INTO events VALUES ({', '.join('?' * len(row))})", row)  # noqa: S608 - the test's own names
    return path


def _error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 2
    return capsys.readouterr().err


def test_column_mapping_reads_other_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--column names the columns that differ; typed timestamps are read as UTC instants."""
    path = _message_table(
        tmp_path,
        'kind VARCHAR, uid BIGINT, "at" TIMESTAMP, name VARCHAR, props STRUCT(plan VARCHAR)',
        ("track", 7, "2026-03-01 10:00:00", "limit_hit", {"plan": "pro"}),
        ("track", 7, "2026-03-01 11:00:00", "limit_hit", {"plan": "pro"}),
    )
    jsonl = tmp_path / "m.jsonl"
    line = {"type": "track", "userId": "7", "event": "limit_hit", "properties": {"plan": "pro"}}
    jsonl.write_text(
        json.dumps(line | {"timestamp": "2026-03-01T10:00:00Z"})
        + "\n"
        + json.dumps(line | {"timestamp": "2026-03-01T11:00:00Z"})
        + "\n"
    )
    rules = tmp_path / "pro.json"
    signal = {"when": 'count("limit_hit", plan="pro") >= 2', "points": 30}
    rules.write_text(json.dumps({"model": {"m": {"tiers": {"low": 0}, "signals": {"s": signal}}}}))
    common = ["score", str(rules), "--json", "--now", "2026-03-02T00:00:00Z"]
    mapped = [
        *("--column", "type=kind", "--column", "userId=uid", "--column", "timestamp=at"),
        *("--column", "event=name", "--column", "properties=props"),
    ]
    duck = _cli(capsys, *common, str(path), *mapped, "--engine", "duckdb")
    assert duck == _cli(capsys, *common, str(jsonl), "--engine", "python")
    assert json.loads(duck)["users"]["7"]["score"] > 0


def test_mapping_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown field, an unknown column, a missing column: each says what and which."""
    path = _message_table(tmp_path, "kind VARCHAR, uid VARCHAR", ("track", "u"))
    rules = str(RULES / "playbook.toml")
    base = ["score", rules, str(path), "--engine", "duckdb"]
    assert "'nope' is not a message field" in _error(capsys, *base, "--column", "nope=uid")
    assert "write FIELD=COLUMN" in _error(capsys, *base, "--column", "userId")
    err = _error(capsys, *base, "--column", "userId=missing")
    assert "has no column 'missing' (its columns: kind, uid)" in err
    err = _error(capsys, *base, "--column", "type=kind")
    assert "no column for timestamp, userId or anonymousId" in err
    assert "--column FIELD=COLUMN" in err


def test_a_database_names_its_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --table a database of several tables is an error listing them; so is a typo."""
    path = tmp_path / "two.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE a (x INTEGER); CREATE TABLE b (x INTEGER)")
    rules = str(RULES / "playbook.toml")
    assert "--table (its tables: a, b)" in _error(capsys, "score", rules, str(path))
    assert "no table 'c' (its tables: a, b)" in _error(
        capsys, "score", rules, str(path), "--table", "c"
    )
    assert "none of the tables identifies, groups, tracks" in _error(
        capsys, "score", rules, str(path), "--layout", "segment"
    )


def test_the_python_engine_names_the_duckdb_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Parquet file or a --layout under --engine python: an error naming duckdb and the extra."""
    where = as_parquet(load_scenario(_scoring_files()[0])["events"], tmp_path)
    rules = str(RULES / "playbook.toml")
    err = _error(capsys, "score", rules, *where, "--engine", "python")
    assert "is a parquet source: read by the duckdb engine only" in err
    assert "pip install 'pqlsdk[warehouse]'" in err
    jsonl = ROOT / "examples" / "events.jsonl"
    err = _error(capsys, "score", rules, str(jsonl), "--layout", "segment", "--engine", "python")
    assert "--layout is read by the duckdb engine only" in err


def test_sniff_tells_formats_by_magic_then_name(tmp_path: Path) -> None:
    """Magic numbers first; the name where a file has none; JSON otherwise."""
    parquet = as_parquet([], tmp_path)[0]
    assert sniff(Path(parquet)) == "parquet"
    (tmp_path / "x.csv.gz").write_bytes(b"\x1f\x8b")
    assert sniff(tmp_path / "x.csv.gz") == "csv"
    assert sniff(tmp_path / "missing.jsonl") == "json"
    assert sniff(tmp_path) == "folder"


def _scores(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    vector = ROOT / "tests" / "scenarios" / "stuck_and_pqa.json"
    rules = str(RULES / "playbook.toml")
    out = _cli(capsys, "score", rules, str(vector), "--json", *extra)
    scored: dict[str, Any] = json.loads(out)
    return scored


def _expected(scored: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted(
        ("user", uid, u["score"], u["tier"], u["route"], u["reasons"])
        for uid, u in scored["users"].items()
    )


def _read(connection: Any, what: str) -> list[tuple[Any, ...]]:
    rows = connection.execute(
        f"SELECT subject, id, score, tier, route, reasons, scored_at, model FROM {what}"  # noqa: S608 - the test's own names
    ).fetchall()
    for row in rows:
        assert row[7] == "playbook"
        assert row[6].isoformat() == "2026-03-15T12:00:00+00:00"
    return sorted((*row[:5], json.loads(row[5])) for row in rows)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_scores_written_to_a_file_read_back(
    suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--output FILE.parquet|.csv: one row per subject and model, as the JSON says."""
    out = tmp_path / f"scores{suffix}"
    for engine in ("duckdb", "python"):
        scored = _scores(capsys, "--output", str(out), "--engine", engine)
        reader = "read_parquet" if suffix == ".parquet" else "read_csv"
        assert _read(duckdb.connect(), f"{reader}('{out}')") == _expected(scored)


def test_an_unknown_output_format_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--output FILE.txt says which formats it writes."""
    vector = ROOT / "tests" / "scenarios" / "stuck_and_pqa.json"
    err = _error(capsys, "score", str(RULES / "playbook.toml"), str(vector), "--output", "x.txt")
    assert "FILE.parquet or FILE.csv" in err


def test_scores_written_into_the_source_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--into TABLE writes into the DuckDB file the messages came from, replacing the table."""
    vector = ROOT / "tests" / "scenarios" / "stuck_and_pqa.json"
    where = as_duckdb_table(load_scenario(vector)["events"], tmp_path)
    with duckdb.connect(where[0]) as connection:
        connection.execute("CREATE SCHEMA crm; CREATE TABLE crm.scores (old INTEGER)")
    rules = str(RULES / "playbook.toml")
    common = ["score", rules, "--json", "--now", "2026-03-15T12:00:00Z"]
    out = _cli(capsys, *common, *where, "--into", "crm.scores", "--engine", "duckdb")
    with duckdb.connect(where[0], read_only=True) as connection:
        assert _read(connection, "crm.scores") == _expected(json.loads(out))
    err = _error(capsys, *common, str(vector), "--into", "scores")
    assert "name one with --database FILE" in err
    database = tmp_path / "crm.duckdb"
    _cli(capsys, *common, str(vector), "--into", "s", "--database", str(database))
    with duckdb.connect(str(database), read_only=True) as connection:
        assert _read(connection, "s") == _expected(json.loads(out))
    assert "name a table" in _error(
        capsys, *common, str(vector), "--into", "a..b", "--database", str(database)
    )


def test_a_failed_write_leaves_the_old_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted mid-write (Ctrl-C between batches), the old table stays, whole, throughout."""
    database = tmp_path / "crm.duckdb"
    with duckdb.connect(str(database)) as connection:
        connection.execute("CREATE TABLE scores AS SELECT 'old' AS id FROM range(3)")
    monkeypatch.setattr(_sinks, "_BATCH", 2)  # several batches from a few rows
    seen: list[list[tuple[Any, ...]]] = []

    def interrupted() -> Iterator[dict[str, Any]]:
        row = {"subject": "user", "id": "new", "model": "m", "score": 1.0, "tier": "t"}
        row |= {"route": "r", "reasons": [], "scored_at": "2026-03-15T12:00:00+00:00"}
        for _ in range(4):
            yield row
        # Two batches are in: another reader still sees the old table, all of it.
        with duckdb.connect(str(database)) as reader:
            seen.append(reader.execute("SELECT id FROM scores").fetchall())
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _sinks.write_table(database, "scores", interrupted())
    assert seen == [[("old",)] * 3]
    with duckdb.connect(str(database), read_only=True) as connection:
        assert connection.execute("SELECT id FROM scores").fetchall() == [("old",)] * 3


def _read_sqlite(path: Path, table: str) -> list[tuple[Any, ...]]:
    """``_read`` for a SQLite file: ``scored_at`` is ISO text there, ``reasons`` JSON text."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            f"SELECT subject, id, score, tier, route, reasons, scored_at, model FROM {table}"  # noqa: S608 - the test's own names
        ).fetchall()
    for row in rows:
        assert row[7] == "playbook"
        assert row[6] == "2026-03-15T12:00:00+00:00"
    return sorted((*row[:5], json.loads(row[5])) for row in rows)


def test_scores_written_into_a_sqlite_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--into TABLE writes into the SQLite file the messages came from, or --database's."""
    vector = ROOT / "tests" / "scenarios" / "stuck_and_pqa.json"
    where = as_sqlite_table(load_scenario(vector)["events"], tmp_path)
    path = Path(where[0])
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE scores (old INTEGER)")
        db.commit()
    common = ["score", str(RULES / "playbook.toml"), "--json", "--now", "2026-03-15T12:00:00Z"]
    source = [*where, "--table", "events"]
    out = _cli(capsys, *common, *source, "--into", "scores")
    assert _read_sqlite(path, "scores") == _expected(json.loads(out))
    _cli(capsys, *common, str(vector), "--into", "main.s", "--database", str(path))
    assert _read_sqlite(path, "s") == _expected(json.loads(out))
    assert "scores or main.scores" in _error(capsys, *common, *source, "--into", "a.main.s")
    assert 'unknown database "crm"' in _error(capsys, *common, *source, "--into", "crm.s")


def test_a_failed_sqlite_write_leaves_the_old_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into SQLite too, an interrupted write leaves the old table, whole, throughout."""
    database = tmp_path / "crm.sqlite"
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute("CREATE TABLE scores (id TEXT)")
        db.executemany("INSERT INTO scores VALUES (?)", [("old",)] * 3)
        db.commit()
    monkeypatch.setattr(_sinks, "_BATCH", 2)  # several batches from a few rows
    seen: list[list[tuple[Any, ...]]] = []

    def interrupted() -> Iterator[dict[str, Any]]:
        row = {"subject": "user", "id": "new", "model": "m", "score": 1.0, "tier": "t"}
        row |= {"route": "r", "reasons": [], "scored_at": "2026-03-15T12:00:00+00:00"}
        for _ in range(4):
            yield row
        # Two batches are in: another reader still sees the old table, all of it.
        with contextlib.closing(sqlite3.connect(database)) as reader:
            seen.append(reader.execute("SELECT id FROM scores").fetchall())
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _sinks.write_table(database, "scores", interrupted())
    assert seen == [[("old",)] * 3]
    with contextlib.closing(sqlite3.connect(database)) as db:
        assert db.execute("SELECT id FROM scores").fetchall() == [("old",)] * 3


def test_a_tracks_table_with_a_column_per_property(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand-made layout (tracks holding its properties, no ids, no received_at) scores too."""
    path = tmp_path / "lake.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute(
            "CREATE TABLE tracks (id VARCHAR, user_id VARCHAR, event VARCHAR, timestamp VARCHAR,"
            " plan VARCHAR);"
            "INSERT INTO tracks VALUES ('m1', 'u1', 'limit_hit', '2026-03-01 10:00:00', 'pro'),"
            " ('m2', 'u1', 'limit_hit', '2026-03-01T11:00:00Z', NULL);"
            "CREATE TABLE groups (user_id VARCHAR, group_id VARCHAR, timestamp TIMESTAMP,"
            " employees BIGINT);"
            "INSERT INTO groups VALUES ('u1', 'acme', '2026-03-01 09:00:00', 120);"
            "CREATE TABLE notes (x INTEGER)"
        )
    jsonl = tmp_path / "same.jsonl"
    lines = [
        {"type": "group", "userId": "u1", "groupId": "acme", "traits": {"employees": 120}},
        {"type": "track", "userId": "u1", "event": "limit_hit", "properties": {"plan": "pro"}},
        {"type": "track", "userId": "u1", "event": "limit_hit", "properties": {}},
    ]
    stamps = ("2026-03-01T09:00:00Z", "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z")
    jsonl.write_text(
        "".join(
            json.dumps(line | {"timestamp": at}) + "\n"
            for line, at in zip(lines, stamps, strict=True)
        )
    )
    rules = tmp_path / "r.json"
    signals = {
        "pro": {"when": 'count("limit_hit", plan="pro") >= 1', "points": 1},
        "all": {"value": 'count("limit_hit")', "points": 10},
        "big": {"when": "account.employees >= 100", "points": 100},
    }
    rules.write_text(json.dumps({"model": {"m": {"tiers": {"low": 0}, "signals": signals}}}))
    common = ["score", str(rules), "--json", "--now", "2026-03-02T00:00:00Z"]
    python = _cli(capsys, *common, str(jsonl), "--engine", "python")
    assert json.loads(python)["users"]["u1"]["score"] == 121.0
    assert _cli(capsys, *common, str(path), "--layout", "segment") == python
    with duckdb.connect(str(path)) as connection:  # the shape: no ids at all
        connection.execute("ALTER TABLE tracks DROP COLUMN id")
    assert _cli(capsys, *common, str(path), "--layout", "segment") == python


def test_sources_refuse_what_they_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each misuse of a source says what is wrong and where, with exit status 2."""
    rules = str(RULES / "playbook.toml")
    jsonl = str(ROOT / "examples" / "events.jsonl")
    events = load_scenario(ROOT / "tests" / "scenarios" / "stuck_and_pqa.json")["events"]
    parquet = as_parquet(events, tmp_path)[0]
    database = as_duckdb_table(events, tmp_path)[0]
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.parquet").write_text("not parquet")
    cases = {
        "a JSON file holds Segment messages": [jsonl, "--table", "x"],
        "No such file": [str(tmp_path / "gone.parquet")],
        "a --layout has its names": [database, "--layout", "segment", "--column", "type=x"],
        "a --layout is read from a DuckDB or SQLite database": [parquet, "--layout", "segment"],
        "--table names a database's table": [parquet, "--table", "x"],
        "holds *.parquet files; none": [str(tmp_path / "empty")],
        "has no table nope.events": [database, "--table", "nope.events"],
        "duckdb could not read the messages": [str(tmp_path / "broken.parquet")],
    }
    for expected, args in cases.items():
        assert expected in _error(capsys, "score", rules, *args, "--engine", "duckdb")
    qualified = [database, "--table", "main.events", "--now", "2026-03-15T12:00:00Z"]
    assert _cli(capsys, "score", rules, *qualified, "--engine", "duckdb")


def test_a_sqlite_table_without_rowid_is_read_by_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SQLite table WITHOUT ROWID has no rowid: its seq column (its key) orders it."""
    vector = ROOT / "tests" / "scenarios" / "stuck_and_pqa.json"
    data = load_scenario(vector)
    path = as_sqlite_table(data["events"], tmp_path)[0]
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE keyed (seq INTEGER PRIMARY KEY, rest) WITHOUT ROWID")
        db.execute("INSERT INTO keyed SELECT rowid, 0 FROM events")
        db.execute(
            "CREATE TABLE messages AS SELECT keyed.seq, events.* FROM keyed "
            "JOIN events ON events.rowid = keyed.seq ORDER BY keyed.seq DESC"
        )
        db.execute(
            "CREATE TABLE backwards (seq INTEGER PRIMARY KEY, type, user_id, "
            "anonymous_id, message_id, group_id, event, timestamp, properties, traits)"
            " WITHOUT ROWID"
        )
        db.execute("INSERT INTO backwards SELECT * FROM messages")
    common = ["score", str(RULES / "playbook.toml"), "--json", "--now", data["now"]]
    python = _cli(capsys, *common, str(vector), "--engine", "python")
    assert _cli(capsys, *common, path, "--table", "backwards", "--engine", "duckdb") == python


def test_a_csv_with_bad_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A naive timestamp is refused and counted; properties that are not JSON stop the run."""
    path = tmp_path / "events.csv"
    path.write_text(
        "type,userId,event,timestamp,properties\n"
        'track,u1,limit_hit,2026-03-01T10:00:00,"{}"\n'
        'track,u2,limit_hit,2026-03-01T10:00:00Z,"{}"\n'
    )
    common = ["score", str(RULES / "playbook.toml"), str(path), "--now", "2026-03-02T00:00:00Z"]
    assert main([*common, "--engine", "duckdb"]) == 0
    assert "skipped 1 invalid message(s)" in capsys.readouterr().err
    path.write_text("type,userId,event,timestamp,properties\ntrack,u1,x,2026-03-01T10:00:00Z,{\n")
    assert "could not score the messages" in _error(capsys, *common, "--engine", "duckdb")


def test_account_scores_and_write_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An account model's scores are rows too; a folder or database that cannot take them fails."""
    rules = tmp_path / "accounts.toml"
    rules.write_text(
        '[model.u]\ntiers = { low = 0 }\n[model.u.signals]\nany = { value = "count()", points = 1 }'
        '\n[model.team]\nsubject = "account"\ntiers = { small = 0 }\n[model.team.signals]\n'
        'busy = { value = "count()", points = 2 }\n'
    )
    vector = ROOT / "tests" / "scenarios" / "stuck_and_pqa.json"
    out = tmp_path / "scores.parquet"
    common = ["score", str(rules), str(vector), "--json"]
    scored = json.loads(_cli(capsys, *common, "--output", str(out)))
    with duckdb.connect() as connection:
        accounts = connection.execute(
            f"SELECT id, score FROM '{out}' WHERE subject = 'account' ORDER BY id"  # noqa: S608 - the test's own names
        ).fetchall()
    assert accounts == sorted((a, v["score"]) for a, v in scored["accounts"].items())
    assert accounts  # the rules score accounts: the rows are there
    missing = str(tmp_path / "no" / "scores.csv")
    assert "cannot write" in _error(capsys, *common, "--output", missing)
    into = ["--into", "scores", "--database"]
    assert "is not a DuckDB or SQLite database" in _error(capsys, *common, *into, str(vector))
    nowhere = str(tmp_path / "no" / "crm.duckdb")
    assert "cannot open" in _error(capsys, *common, *into, nowhere, "--engine", "python")
    assert "--into nope.scores" in _error(
        capsys, *common, "--into", "nope.scores", "--database", str(tmp_path / "c.duckdb")
    )
