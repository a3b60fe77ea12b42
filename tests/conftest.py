"""Shared fixtures: the scenario vectors read in place, clocks and stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pqlsdk
from pqlsdk.stores import Store, open_store
from pqlsdk.stores.buffered import BufferedStore
from pqlsdk.stores.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT.parent / "shared" / "scenarios"


def scenario_files() -> list[Path]:
    """Every vector file in ../shared/scenarios, read in place (new files are picked up)."""
    files = sorted(SCENARIOS.glob("*.json"))
    assert files, f"no scenario files found in {SCENARIOS}"
    return files


def load_scenario(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture
def clock() -> pqlsdk.FixedClock:
    return pqlsdk.FixedClock("2026-03-15T12:00:00Z")


@pytest.fixture(params=["memory", "sqlite", "buffered"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each store a user can end up with: memory, SQLite, and SQLite behind write-behind."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/state.db"
    opened = open_store(url)
    if request.param == "buffered":
        assert isinstance(opened, SQLiteStore)
        opened = BufferedStore(opened, interval=0.05)
    yield opened
    opened.close()
