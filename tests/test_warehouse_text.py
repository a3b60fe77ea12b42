"""The compiler's trees are built and written without copies where none is needed.

The SQL must not change for it: ``bench/sql_text.py`` compares every text with
another checkout's; these tests pin the rules that make it so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlglot import exp

import pqlsdk.rules
from pqlsdk._clock import FixedClock, micros
from pqlsdk.warehouse import _duckdb, compile_plan
from pqlsdk.warehouse._dialect_duckdb import DUCKDB
from pqlsdk.warehouse._run import _settled, _text
from pqlsdk.warehouse._values import copied, template

from .conftest import ROOT

NOW = micros(FixedClock("2026-03-15T12:00:00Z").now())


def test_a_template_takes_a_new_part_as_it_is_and_copies_one_placed_already() -> None:
    """A part no tree holds is the template's own; its second place, and a held part, copies."""
    part = exp.column("x")
    built = template("COALESCE(:a, :a)", a=part)
    assert built.this is part
    assert built.expressions[0] is not part
    assert built.expressions[0] == part
    again = template("COALESCE(:a, 0)", a=part)
    assert again.this is not part
    assert part.parent is built


def test_a_template_of_one_placeholder_is_its_part() -> None:
    """The placeholder is the whole tree: the part (in parentheses unless atomic) is."""
    part = exp.column("x")
    assert template(":a", a=part) is part
    assert template(":a", a=exp.EQ(this=part, expression=exp.column("y"))).sql() == "(x = y)"


def test_a_copy_is_what_sqlglot_copies() -> None:
    """``copied`` gives the tree ``copy()`` gives: children, comments, type, meta; none shared."""
    trees = []
    for _ in range(2):
        tree = exp.select(exp.column("x"), "y").from_("t")
        tree.expressions[0].add_comments(["why"])
        tree.expressions[0].type = "BIGINT"
        inner = exp.column("z")
        tree.set("options", ["kept", exp.column("w")])  # a list of other values than nodes
        tree.meta.update(line=3, tree=inner, many=[1, 2])
        hash(tree)  # kept with the tree, as sqlglot keeps it
        trees.append(tree)
    mine, theirs = copied(trees[0]), trees[1].copy()
    assert mine == theirs
    assert mine.sql() == theirs.sql()
    assert mine.expressions[0].comments == theirs.expressions[0].comments == ["why"]
    assert mine.expressions[0].type == theirs.expressions[0].type
    assert mine.meta["tree"] == inner
    assert mine.meta["tree"] is not trees[0].meta["tree"]
    assert mine.meta["many"] == [1, 2]
    assert mine.meta["many"] is not trees[0].meta["many"]
    assert mine.meta["line"] == 3
    assert mine.args["options"][0] == "kept"
    assert mine.args["options"][1].parent is mine
    assert all(a is not b for a, b in zip(mine.walk(), trees[0].walk(), strict=True))
    assert _settled(mine)


def test_a_node_in_two_places_is_not_settled() -> None:
    """A builder that does not copy leaves a node in two places: its links name one."""
    shared = exp.column("x")
    listed = exp.select(shared, shared.copy(), copy=False)
    assert _settled(listed)
    listed.expressions.append(shared)  # the list holds it twice: one index is wrong
    assert not _settled(listed)
    single = exp.Not(this=exp.column("y"))
    assert _settled(single)
    exp.Paren(this=single.this)  # the column's parent is now the Paren
    assert not _settled(single)


def test_a_tree_that_is_not_settled_is_written_as_its_copy() -> None:
    """Written once or not, a tree with a node in two places gives the same text."""
    shared = exp.column("x")
    query = exp.select(exp.Paren(this=shared), shared, copy=False).from_("t", copy=False)
    assert not _settled(query)
    assert _text(query, DUCKDB, once=True) == query.sql("duckdb")


class _Recording:
    """A DuckDB connection that keeps the text of every statement."""

    def __init__(self) -> None:
        self.connection = _duckdb.connect()
        self.texts: list[str] = []

    def execute(self, sql: str, *args: Any) -> Any:
        self.texts.append(sql)
        return self.connection.execute(sql, *args)


def test_a_plan_run_once_runs_the_statements_of_one_run_again() -> None:
    """``once`` writes the plan's own trees: the statements are those of a plan copied first."""
    rules = pqlsdk.rules.load(ROOT / "examples" / "rules" / "playbook.toml")
    events = Path(ROOT / "examples" / "events.jsonl")
    ran: dict[bool, tuple[list[str], Any]] = {}
    for once in (False, True):
        recording = _Recording()
        plan = compile_plan(rules, now=NOW, output=True)
        with _duckdb.source(events) as (relation, _):
            rows = _duckdb.run(recording, plan, relation, once=once)
        recording.connection.close()
        ran[once] = (recording.texts, rows)
    assert ran[True] == ran[False]
