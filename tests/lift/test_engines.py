"""``pqlsdk moments --engine duckdb``: the same report, byte for byte, as ``--engine python``."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from pqlsdk import messages
from pqlsdk.cli import main
from pqlsdk.collector import open_storage
from pqlsdk.testing import RecordingTransport

from ..test_moments import PLAYBOOK, _step_files, run_moment_steps
from .cohort import RULES, build

COHORTS = "conversion = 'count(\"subscription_started\") >= 1'"
EVIL = "x'); DROP TABLE kept; --"
DAY = 86_400


def at(seconds: int) -> str:
    """The instant ``seconds`` after 2026-03-02T00:00:00Z, as a message's timestamp."""
    days, rest = divmod(seconds, DAY)
    hours, rest = divmod(rest, 3600)
    return f"2026-03-{2 + days:02d}T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}Z"


def track(user: str, event: str, when: int, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": event, "timestamp": at(when)} | (
        {"properties": properties} if properties else {}
    )


def decided(user: str, kind: object, when: int, *, held: bool = False) -> dict[str, Any]:
    event = "pqlsdk_moment_held_out" if held else "pqlsdk_moment_shown"
    return track(user, event, when, kind=kind)


def outcome(user: str, kind: str, when: int, what: object) -> dict[str, Any]:
    return track(user, "pqlsdk_moment_outcome", when, kind=kind, outcome=what)


def edges() -> list[dict[str, Any]]:
    """A history of the attribution rule's edges, in arrival order (not quite time order)."""
    day, hour = DAY, 3600
    messages = [
        # Shown, clicked, converts in the window; also held out of a second kind.
        decided("u1", "nudge", 0),
        outcome("u1", "nudge", 60, "clicked"),
        decided("u1", "wall", 120, held=True),
        track("u1", "paid", 2 * day, tier="pro"),
        # Held out, converts after the window: not credited.
        decided("u2", "nudge", 0, held=True),
        track("u2", "paid", 8 * day),
        # Converted before the decision: in the arm, never credited.
        track("u3", "paid", 0, tier="pro"),
        decided("u3", "nudge", hour),
        track("u3", "paid", 2 * hour),
        # An outcome before the showing does not count; one after it does.
        outcome("u4", "nudge", 0, "clicked"),
        decided("u4", "nudge", hour),
        outcome("u4", "nudge", 2 * hour, "dismissed"),
        outcome("u4", "nudge", 3 * hour, 7),
        outcome("u13", "wall", day, "clicked"),  # same instant, an earlier line: before
        decided("u13", "wall", day),
        # Same instant as the decision: an earlier line is before it, a later one after.
        track("u5", "paid", day),
        decided("u5", "nudge", day),
        decided("u6", "nudge", day, held=True),
        track("u6", "paid", day),
        # Exactly at the window's far edge: credited.
        decided("u7", "nudge", 0),
        track("u7", "paid", 7 * day, tier="pro"),
        # A later decision of another arm changes nothing: the first decides.
        decided("u8", "nudge", 0, held=True),
        decided("u8", "nudge", hour),
        track("u8", "viewed", 2 * hour, page="a"),
        track("u8", "viewed", 3 * hour, page="b"),
        # A trait set after the decision; distinct pages, one of them null.
        {"type": "identify", "userId": "u9", "timestamp": at(0), "traits": {"plan": "free"}},
        track("u9", "viewed", 0, page="a"),
        decided("u9", "nudge", hour),
        track("u9", "viewed", 2 * hour, page=None),
        {"type": "identify", "userId": "u9", "timestamp": at(day), "traits": {"plan": "paid"}},
        track("u9", "viewed", 2 * day, page="a"),
        track("u9", "viewed", 3 * day, page="c"),
        # A kind named like an injection is a kind like any other; a number is no kind.
        decided("u10", EVIL, 0),
        outcome("u10", EVIL, 60, "clicked"),
        track("u10", "it's\"; DROP TABLE kept; --", day),
        decided("u10", 3, 0),
        # Active on a second day within the window.
        decided("u11", "wall", 0),
        track("u11", "viewed", 3 * day, page="a"),
        # No identity: refused by both engines.
        {"type": "track", "event": "paid", "timestamp": at(0)},
    ]
    # The same messageId twice: the copy first in time order counts (it is in the window).
    repeated = {"messageId": "dup-1"}
    messages += [
        decided("u12", "nudge", 0),
        track("u12", "paid", 10 * day) | repeated,
        track("u12", "paid", day) | repeated,
    ]
    return messages


CONVERSIONS = [
    'count("paid") >= 1',
    'count("paid", tier="pro") >= 1 or user.plan == "paid"',
    'distinct("viewed", "page") >= 2',
    "active_days() >= 2 and count() > 3",
    'user.plan in ["paid", "pro"] or (count("paid") if count() > 4 else 0) >= 1',
    'count("it\'s\\"; DROP TABLE kept; --") >= 1',
]


def write(tmp_path: Path, conversion: str, messages: list[dict[str, Any]]) -> tuple[str, str]:
    """A rules file with ``conversion`` and a JSON Lines history of ``messages``."""
    rules = tmp_path / "rules.toml"
    # The cohort's rules (a 7-day window, kinds nudge and wall), another conversion.
    rules.write_text(RULES.replace(COHORTS, f"conversion = {json.dumps(conversion)}"))
    history = tmp_path / "edges.jsonl"
    history.write_text("".join(json.dumps(m) + "\n" for m in messages))
    return str(rules), str(history)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("engines")
    (folder / "rules.toml").write_text(RULES)
    history = folder / "history.jsonl"
    build(history, users=120)
    return folder / "rules.toml", history


def moments(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["moments", *argv]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("now", [[], ["--now", "2026-03-04T12:00:00Z"]])
def test_the_planted_cohort_gives_the_same_json_on_both_engines(
    cohort: tuple[Path, Path], capsys: pytest.CaptureFixture[str], now: list[str]
) -> None:
    """The planted-conversion history, whole or cut at --now: byte-identical JSON."""
    rules, history = map(str, cohort)
    python = moments(capsys, rules, history, "--json", "--engine", "python", *now)
    sql = moments(capsys, rules, history, "--json", "--engine", "duckdb", *now)
    assert sql == python
    assert json.loads(sql)["moments"]["nudge"]["converted_shown"] > 0


def test_text_is_the_same_on_both_engines(
    cohort: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The text report too, its "as of" instant included."""
    rules, history = map(str, cohort)
    python = moments(capsys, rules, history, "--engine", "python")
    assert moments(capsys, rules, history, "--engine", "duckdb") == python


@pytest.mark.parametrize("conversion", CONVERSIONS)
def test_every_edge_of_the_attribution_rule_agrees(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], conversion: str
) -> None:
    """Ties, late outcomes, repeated ids, window edges, traits, distinct values: equal JSON."""
    rules, history = write(tmp_path, conversion, edges())
    assert main(["moments", rules, history, "--json", "--engine", "python"]) == 0
    python = capsys.readouterr()
    assert main(["moments", rules, history, "--json", "--engine", "duckdb"]) == 0
    sql = capsys.readouterr()
    assert sql.out == python.out
    assert sql.err == python.err  # the refused line, named alike
    assert "skipped 1 invalid message(s)" in sql.err
    assert list(json.loads(sql.out)["moments"]) == ["nudge", "wall", EVIL]


def test_the_expected_counts_of_the_edges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The edges' counts under ``count("paid") >= 1``, worked out by hand."""
    rules, history = write(tmp_path, 'count("paid") >= 1', edges())
    found = json.loads(moments(capsys, rules, history, "--json", "--engine", "duckdb"))
    nudge = found["moments"]["nudge"]
    # shown: u1 u3 u4 u5 u7 u9 u12; held: u2 u6 u8. Converted: u1 u7 u12 / u6.
    assert (nudge["shown"], nudge["held_out"]) == (7, 3)
    assert (nudge["clicked"], nudge["dismissed"]) == (1, 1)
    assert (nudge["converted_shown"], nudge["converted_held_out"]) == (3, 1)
    assert found["moments"][EVIL]["clicked"] == 1
    assert (found["moments"]["wall"]["shown"], found["moments"]["wall"]["clicked"]) == (2, 0)


@pytest.mark.parametrize(
    ("conversion", "construct", "place"),
    [
        (
            'count("paid") >= 1 and days_since_first_seen() < 3',
            "days_since_first_seen()",
            "days_since",
        ),
        ('count("paid", within=2d) >= 1', "a windowed count()", "count"),
        ('(team_size() if count("paid") >= 1 else 0) >= 1', "team_size()", "team_size"),
        ('account.plan == "paid"', "an account's trait", "account.plan"),
    ],
)
def test_a_conversion_sql_cannot_follow_is_an_error_at_its_place(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    conversion: str,
    construct: str,
    place: str,
) -> None:
    """--engine duckdb refuses it at file:line:col; auto computes it with python instead."""
    rules, history = write(tmp_path, conversion, edges())
    assert main(["moments", rules, history, "--json", "--engine", "duckdb"]) == 1
    err = capsys.readouterr().err
    column = f"conversion = {json.dumps(conversion)}".index(place) + 1
    line = RULES.splitlines().index(COHORTS) + 1
    assert err.startswith(f"{rules}:{line}:{column}: ")
    assert construct in err
    assert "--engine python" in err
    python = moments(capsys, rules, history, "--json", "--engine", "python")
    assert moments(capsys, rules, history, "--json", "--engine", "auto") == python


def test_parquet_gives_what_json_lines_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Parquet history (duckdb only) reports what the same messages in JSON Lines do."""
    from ..test_warehouse_sources import as_parquet  # noqa: PLC0415 - the suite's Parquet maker

    rules, history = write(tmp_path, 'count("paid") >= 1', edges())
    [parquet] = as_parquet(edges(), tmp_path)
    python = moments(capsys, rules, history, "--json", "--engine", "python")
    assert main(["moments", rules, parquet, "--json", "--engine", "duckdb"]) == 0
    sql = capsys.readouterr()
    assert sql.out == python
    assert "skipped 1 invalid message(s): without a userId" in sql.err


def test_gzip_and_a_line_duckdb_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """gzip is read in SQL; a line that is not an object goes to the python reader, named."""
    rules, history = write(tmp_path, 'count("paid") >= 1', edges())
    python = moments(capsys, rules, history, "--json", "--engine", "python")
    zipped = tmp_path / "edges.jsonl.gz"
    zipped.write_bytes(gzip.compress(Path(history).read_bytes()))
    assert moments(capsys, rules, str(zipped), "--json", "--engine", "duckdb") == python
    broken = tmp_path / "broken.jsonl"
    broken.write_text(Path(history).read_text() + "[1, 2]\n")
    assert main(["moments", rules, str(broken), "--json", "--engine", "duckdb"]) == 0
    sql = capsys.readouterr()
    assert sql.out == python
    assert f"{broken}:" in sql.err


def test_a_csv_duckdb_cannot_read_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CSV export with a properties cell that is not JSON: DuckDB's error, no fallback."""
    rules, _ = write(tmp_path, 'count("paid") >= 1', [])
    csv = tmp_path / "events.csv"
    csv.write_text(
        "type,userId,event,timestamp,properties\n"
        'track,u1,pqlsdk_moment_shown,2026-03-02T00:00:00Z,"{not json"\n'
    )
    assert main(["moments", rules, str(csv), "--json", "--engine", "duckdb"]) == 2
    assert "duckdb could not score the messages" in capsys.readouterr().err


def test_the_collectors_storage_is_read_by_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--engine duckdb refuses the collector's storage; auto reads it with python.

    (The storage orders ties by messageId and keeps the first copy stored: its
    report is python's on the storage, not on the file.)
    """
    rules, _ = write(tmp_path, 'count("paid") >= 1', edges())
    storage = tmp_path / "collector.db"
    with open_storage(f"sqlite:///{storage}") as opened:
        opened.store([messages.convert(m) for m in edges() if "userId" in m])
    assert main(["moments", rules, str(storage), "--engine", "duckdb"]) == 2
    assert "is the collector's storage, which --engine python reads" in capsys.readouterr().err
    python = moments(capsys, rules, str(storage), "--json", "--engine", "python")
    assert moments(capsys, rules, str(storage), "--json") == python


@pytest.mark.parametrize("vector", _step_files(), ids=lambda path: path.name)
def test_every_moments_vector_gives_the_same_report(
    vector: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The messages a client sends playing a moments vector, measured under the playbook."""
    transport = RecordingTransport()
    run_moment_steps(vector, "memory://", transport=transport)
    history = tmp_path / "sent.jsonl"
    history.write_text("".join(json.dumps(m) + "\n" for m in transport.messages))
    python = moments(capsys, str(PLAYBOOK), str(history), "--json", "--engine", "python")
    assert moments(capsys, str(PLAYBOOK), str(history), "--json", "--engine", "duckdb") == python
    assert json.loads(python)["moments"]["blocked_feature"]["shown"] > 0
