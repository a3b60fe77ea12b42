"""Shared fixtures: the scenario vectors, clocks and stores."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import pytest

import pqlsdk
from pqlsdk.stores import Store, open_store
from pqlsdk.stores.buffered import BufferedStore
from pqlsdk.stores.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Give Ctrl+C back its default action where the runner was started ignoring it.

    A shell without job control (a script's ``cmd &``) starts a background command
    with SIGINT ignored, and a child inherits that through ``exec``: the tests that
    stop a server as a newcomer would (Ctrl+C) found it still running. A signal the
    runner handles is reset to its default in a child: as a terminal's would be.
    """
    del config
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# The repository's copy of the public vectors: what a plain clone tests against.
SCENARIOS = ROOT / "tests" / "scenarios"


def _repo_folder(root: Path) -> Path:
    return root / "tests" / "scenarios"


def _shared_folder(root: Path) -> Path:
    return root.parent / "shared" / "scenarios"


def scenario_folders(root: Path = ROOT, environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where vectors are read: the repo's copy, ../shared/scenarios if there, $PQLSDK_SCENARIOS.

    The repository carries a copy so that a plain clone tests itself; the shared
    folder beside it and the folders named by ``PQLSDK_SCENARIOS`` (``os.pathsep``
    between them) are read in place, so a vector file dropped into any of them is
    checked with no code change. A named folder that does not exist is an error, not
    an empty set of vectors: a misspelt path must not pass by checking nothing. A
    folder named twice is read once.
    """
    env = os.environ if environ is None else environ
    folders = [_repo_folder(root)]
    if _shared_folder(root).is_dir():
        folders.append(_shared_folder(root))
    for named in env.get("PQLSDK_SCENARIOS", "").split(os.pathsep):
        if not named:
            continue
        folder = Path(named).expanduser().absolute()
        assert folder.is_dir(), f"PQLSDK_SCENARIOS names {named!r}, which is not a folder"
        if folder.resolve() not in {seen.resolve() for seen in folders}:
            folders.append(folder)
    return folders


def scenario_files(root: Path = ROOT, environ: Mapping[str, str] | None = None) -> list[Path]:
    """Every ``*.json`` vector in every folder of ``scenario_folders()``, folder by folder.

    The same file name in two folders is two vectors, each checked (``scenario_id``
    tells them apart).
    """
    folders = scenario_folders(root, environ)
    files = [path for folder in folders for path in sorted(folder.glob("*.json"))]
    assert files, f"no scenario files found in {', '.join(map(str, folders))}"
    return files


def scenario_id(path: Path, root: Path = ROOT) -> str:
    """A vector's test id, naming its place: ``repo/x.json``, ``shared/x.json`` or the full path."""
    if path.parent == _repo_folder(root):
        return f"repo/{path.name}"
    if path.parent == _shared_folder(root):
        return f"shared/{path.name}"
    return str(path)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL URL (``tests/postgres.py``), once it answers; skip (in CI, fail) if not."""
    import psycopg  # noqa: PLC0415 - only the PostgreSQL cases need it

    from .postgres import POSTGRES_URL  # noqa: PLC0415

    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        unavailable(f"PostgreSQL at {POSTGRES_URL} is not available: {exc}".strip())
    return POSTGRES_URL


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose service or tool is missing; under ``CI=true`` fail it instead.

    CI must not pass by skipping: there every service the suite uses is expected.
    """
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


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
