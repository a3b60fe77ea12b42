"""Every SQL text the compiler writes, for the example rules and random ones: unchanged or not?

A change meant to make the compiler cheaper (not to change its SQL) is checked
with this guard: it writes every text the warehouse produces for

- each rules file of ``examples/rules`` (``tests/scenarios`` reads those),
  ``EVERY_CONSTRUCT`` of ``tests/test_warehouse.py`` and ``--random`` rules
  files drawn (derandomized, so the same ones each run) by
  ``tests/test_warehouse_random.py``'s strategy,
- in each engine's dialect: ``pqlsdk sql --dialect D`` for every ``D``; each
  step of ``compile_plan`` (with and without the ``--json`` entries, at a fixed
  instant and at the engine's), its users' and accounts' queries; and every
  statement DuckDB runs for ``pqlsdk score`` (table and ``--json``) and
  ``pqlsdk replay --engine duckdb`` over ``examples/events.jsonl``,

then, with ``--against SRC``, runs itself with ``SRC`` (another checkout's
``src``) first on the path and compares the two, text by text. Run from the
repository root with the dev environment::

    .venv/bin/python bench/sql_text.py --against /work/main/src

Exit status 1 when any text differs (the first differences are printed).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-03-15T12:00:00Z"
EVENTS = ROOT / "examples" / "events.jsonl"

Texts = dict[str, str]


class _Recording:
    """A DuckDB connection that keeps the text of every statement it is given."""

    def __init__(self, connection: Any, texts: list[str]) -> None:
        self._connection = connection
        self._texts = texts

    def execute(self, sql: str, *args: Any) -> Any:
        self._texts.append(sql)
        return self._connection.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


@contextlib.contextmanager
def _recorded() -> Iterator[list[str]]:
    """Record what every connection ``pqlsdk.warehouse._duckdb.connect`` opens runs."""
    from pqlsdk.warehouse import _duckdb  # noqa: PLC0415 - after sys.path is set

    texts: list[str] = []
    opened = _duckdb.connect
    _duckdb.connect = lambda: _Recording(opened(), texts)
    try:
        yield texts
    finally:
        _duckdb.connect = opened


def _cli(*args: str) -> tuple[str, list[str]]:
    """Run ``pqlsdk ARGS``; return its output and the statements DuckDB ran."""
    from pqlsdk.cli import main  # noqa: PLC0415

    out, err = io.StringIO(), io.StringIO()
    with _recorded() as texts, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code: object = main(list(args))
        except Exception as exc:  # sqlglot does not translate every query to every dialect
            code = f"{type(exc).__name__}: {exc}"
    return f"exit {code}\n{out.getvalue()}", texts


def _rules_files(folder: Path, random: int) -> list[Path]:
    """The rules files to compile: the examples, every construct, ``random`` drawn ones."""
    sys.path.insert(0, str(ROOT))
    from tests.test_warehouse import EVERY_CONSTRUCT  # noqa: PLC0415

    files = sorted((ROOT / "examples" / "rules").glob("*.toml"))
    construct = folder / "every_construct.json"
    construct.write_text(json.dumps(EVERY_CONSTRUCT))
    files.append(construct)
    if random:
        from hypothesis import HealthCheck, given, settings  # noqa: PLC0415
        from tests.test_warehouse_random import rules_files  # noqa: PLC0415

        drawn: list[dict[str, Any]] = []

        @settings(
            derandomize=True,
            max_examples=random,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(rules_files())
        def draw(rules: dict[str, Any]) -> None:
            drawn.append(rules)

        draw()
        for index, rules in enumerate(drawn):
            path = folder / f"random_{index:03d}.json"
            path.write_text(json.dumps(rules))
            files.append(path)
    return files


def _texts(random: int) -> Texts:
    """Every SQL text, by a name saying where it came from."""
    import pqlsdk.rules  # noqa: PLC0415
    from pqlsdk._clock import FixedClock, micros  # noqa: PLC0415
    from pqlsdk._score_cli import _DIALECTS  # noqa: PLC0415
    from pqlsdk.warehouse import compile_plan  # noqa: PLC0415
    from pqlsdk.warehouse._engines import DIALECTS  # noqa: PLC0415

    now = micros(FixedClock(NOW).now())
    texts: Texts = {}
    with tempfile.TemporaryDirectory() as folder:
        for path in _rules_files(Path(folder), random):
            name = path.name
            try:
                rules = pqlsdk.rules.load(path)
            except pqlsdk.RulesError as exc:
                texts[f"{name} load"] = str(exc)
                continue
            for written_for in _DIALECTS:
                printed, _ = _cli("sql", str(path), "--dialect", written_for)
                texts[f"{name} sql --dialect {written_for}"] = printed
            for dialect in DIALECTS.values():
                for model in rules.models:
                    for output in (False, True):
                        for instant in (now, None) if dialect.name == "duckdb" else (now,):
                            where = f"{name} plan {dialect.name} {model} {output} {instant}"
                            try:
                                plan = compile_plan(
                                    rules, model, now=instant, dialect=dialect, output=output
                                )
                            except pqlsdk.PQLError as exc:
                                texts[where] = f"refused: {exc}"
                                continue
                            for step, body in plan.steps:
                                texts[f"{where} step {step}"] = body.sql(dialect.name)
                                texts[f"{where} step {step} written"] = dialect.written(body)
                            texts[f"{where} users"] = plan.users.sql(dialect.name)
                            texts[f"{where} accounts"] = plan.accounts.sql(dialect.name)
            score = ["score", str(path), str(EVENTS), "--now", NOW, "--engine", "duckdb"]
            runs = {
                "score --json": [*score, "--json"],
                "score": score,
                "replay": ["replay", str(path), str(EVENTS), "--at", NOW, "--engine", "duckdb"],
            }
            for label, args in runs.items():
                output_text, ran = _cli(*args)
                texts[f"{name} {label} output"] = output_text
                for index, sql in enumerate(ran):
                    texts[f"{name} {label} statement {index}"] = sql
    # The temporary folder's name differs from run to run.
    return {name: text.replace(folder, "FOLDER") for name, text in texts.items()}


def _compare(ours: Texts, theirs: Texts, limit: int = 5) -> int:
    """Print how ``ours`` differs from ``theirs``; return how many texts differ."""
    names = sorted(ours.keys() | theirs.keys())
    differing = [name for name in names if ours.get(name) != theirs.get(name)]
    for name in differing[:limit]:
        print(f"--- differs: {name}")
        diff = difflib.unified_diff(
            theirs.get(name, "<missing>").splitlines(),
            ours.get(name, "<missing>").splitlines(),
            "against",
            "this",
            lineterm="",
        )
        print("\n".join(list(diff)[:40]))
    print(f"{len(names) - len(differing)} of {len(names)} texts the same, {len(differing)} differ")
    return len(differing)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="another checkout's src: compare its texts with these")
    parser.add_argument("--random", type=int, default=12, help="how many random rules files")
    parser.add_argument("--write", help="write the texts (JSON) to this file and stop")
    args = parser.parse_args()
    if args.write:
        Path(args.write).write_text(json.dumps(_texts(args.random)))
        return 0
    if args.against is None:
        print(f"{len(_texts(args.random))} texts")
        return 0
    with tempfile.TemporaryDirectory() as folder:
        written = Path(folder) / "theirs.json"
        environ = {**os.environ, "PYTHONPATH": args.against}
        command = [sys.executable, __file__, "--random", str(args.random), "--write", str(written)]
        with subprocess.Popen(command, env=environ) as theirs_run:  # both at once
            ours = _texts(args.random)
        if theirs_run.returncode:
            raise SystemExit(f"{command} exited with {theirs_run.returncode}")
        theirs = json.loads(written.read_text())
    return 1 if _compare(ours, theirs) else 0


if __name__ == "__main__":
    sys.exit(main())
