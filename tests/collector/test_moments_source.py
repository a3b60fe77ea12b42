"""``pqlsdk moments`` on the collector's storage: the same report as on the history file."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from pqlsdk import messages
from pqlsdk.cli import main
from pqlsdk.collector import open_storage

from ..lift.cohort import RULES, build
from .conftest import T0, track


def test_storage_gives_the_same_report_as_the_file(
    storage_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cohort's messages stored by the collector (SQLite, PostgreSQL) report as the file does."""
    history = tmp_path / "history.jsonl"
    build(history, users=60)
    (tmp_path / "rules.toml").write_text(RULES)
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    with open_storage(storage_url) as storage:
        storage.store([messages.convert(line) for line in reversed(lines)])  # any order
    assert main(["moments", str(tmp_path / "rules.toml"), str(history), "--json"]) == 0
    from_file = capsys.readouterr().out
    assert main(["moments", str(tmp_path / "rules.toml"), storage_url, "--json"]) == 0
    assert capsys.readouterr().out == from_file


def test_a_collector_sqlite_file_is_recognised_by_its_header(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain path to the collector's SQLite file is storage, not a history file."""
    (tmp_path / "rules.toml").write_text(RULES)
    with open_storage(str(tmp_path / "collector.db")) as storage:
        storage.store([track("u", event="pqlsdk_moment_shown", properties={"kind": "nudge"})])
    assert (
        main(["moments", str(tmp_path / "rules.toml"), str(tmp_path / "collector.db"), "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["moments"]["nudge"]["shown"] == 1


def test_messages_come_in_time_order_page_by_page(storage_url: str) -> None:
    """Pages of two, ties on the instant broken by messageId, nothing lost or repeated."""
    stored = [
        messages.Track(
            user_id="u", event="e", message_id=f"m{n}", timestamp=T0 + timedelta(seconds=n // 2)
        )
        for n in (4, 0, 3, 1, 2)
    ]
    with open_storage(storage_url) as storage:
        storage.store(stored)
        assert [m.message_id for m in storage.messages(page=2)] == ["m0", "m1", "m2", "m3", "m4"]
        with pytest.raises(ValueError, match="page must be at least 1"):
            list(storage.messages(page=0))
