"""Arrival order under DuckDB: ``seq`` is each message's line, however DuckDB splits the file."""

from __future__ import annotations

import json
from pathlib import Path

import pqlsdk.rules
from pqlsdk.warehouse import _duckdb, compile_plan

from .conftest import ROOT

LINES = 120_000
"""Enough lines (~40 MB with the padding) that DuckDB reads the file in several parts."""


def test_seq_is_the_line_order_of_a_file_read_on_every_core(tmp_path: Path) -> None:
    """Every message's ``seq`` is its place in the file; a doubtful one far in is judged there.

    Equal timestamps are broken by ``seq`` (the later arrival wins): DuckDB reads
    a large file in parts, in parallel, and the rows must still come out numbered
    in file order. Blank lines have no ``seq``, as the python reader counts them.
    """
    events = tmp_path / "events.jsonl"
    pad = "x" * 300
    with events.open("w") as out:
        for i in range(LINES):
            message: dict[str, object] = {
                "type": "group",
                "userId": "u",
                "groupId": f"g{i}",
                "messageId": f"m{i}",
                "timestamp": "2026-03-01T00:00:00Z",
                "traits": {"pad": pad},
            }
            if i == LINES - 7:  # an id the python reader refuses: a doubtful line, judged again
                message["userId"] = 7
            out.write(json.dumps(message) + ("\n\n" if i == 5 else "\n"))
    assert events.stat().st_size > 32 * 2**20
    plan = compile_plan(pqlsdk.rules.load(ROOT / "examples" / "rules" / "playbook.toml"), now=0)
    connection = _duckdb.connect()
    with _duckdb.source(events) as (relation, _):
        ran = _duckdb.run(connection, plan, relation)
    rows = connection.execute("SELECT seq, mid, type FROM parsed ORDER BY seq").fetchall()
    assert [(seq, mid) for seq, mid, _ in rows] == [(i + 1, f"m{i}") for i in range(LINES)]
    assert [seq for seq, _, kind in rows if kind is None] == [LINES - 6]
    assert ran.refused == 1
    last = connection.execute("SELECT account_id FROM user_facts").fetchall()
    assert last == [(f"g{LINES - 1}",)]  # the last of the groups at one instant
