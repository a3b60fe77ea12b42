"""The command line: the demo main job on the embedded defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pqlsdk.cli import main


def test_demo_records_and_prints_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo tracks a short story into SQLite and prints what the store holds."""
    url = f"sqlite:///{tmp_path}/demo.db"
    assert main(["demo", "--store", url]) == 0
    out = capsys.readouterr().out
    assert f"store {url}: 15 messages (0 before this run)" in out
    assert "recorded 15, dropped {'not_json': 1}" in out
    assert "user ada: account=acme tracks=10 last_active=2026-03-06T09:00:00+00:00" in out
    assert "account acme: active_members=2" in out
    # A second run finds the first run's messages: the demo's ids are fresh each run.
    assert main(["demo", "--store", url]) == 0
    assert "30 messages (15 before this run)" in capsys.readouterr().out


def test_demo_reports_setup_errors(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad store URL is a one-line error and exit status 2."""
    assert main(["demo", "--store", "nope://"]) == 2
    assert "pqlsdk: error: store URL 'nope://'" in capsys.readouterr().err


def test_python_dash_m_runs_the_cli() -> None:
    """``python -m pqlsdk`` is the same command line."""
    result = subprocess.run(
        [sys.executable, "-m", "pqlsdk", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("pqlsdk ")
