"""Fixtures for the collector: real SQLite files, real PostgreSQL schemas, a real server.

PostgreSQL is the suite's server (``tests/postgres.py``): each test gets a fresh
schema, selected through the URL's ``search_path`` and dropped afterwards.

The collector runs under uvicorn on 127.0.0.1 (a free port) in a background
thread, and is stopped through uvicorn's own graceful shutdown, which also runs
the app's lifespan and so closes its storage.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from pqlsdk import messages
from pqlsdk._tiers import TIER_CHANGED_EVENT
from pqlsdk.collector import create_app

from ..postgres import fresh_schema

WRITE_KEY = "wk-test"
OTHER_KEY = "wk-other"
T0 = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def block(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``package`` and its submodules fail to import, as if it were not installed."""
    for name in [*sys.modules]:
        if name == package or name.startswith(f"{package}."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A URL whose connections work in a fresh schema of their own; dropped after the test."""
    with fresh_schema(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A storage URL for each backend: an SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/collector.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


class Served:
    """A collector app served by uvicorn on 127.0.0.1 from a background thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            lifespan="on",
            http="h11",
            ws="none",
            log_config=None,
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="collector", daemon=True)
        self.url = ""

    @property
    def storage(self) -> Any:
        """The app's open storage."""
        return self.app.state.storage

    def start(self) -> None:
        """Serve, and return once the socket listens."""
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.005)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        """Shut down gracefully: connections closed, lifespan run, thread joined."""
        self._server.should_exit = True
        self._thread.join(10)
        assert not self._thread.is_alive()


Serve = Callable[..., Served]


@pytest.fixture
def serve(storage_url: str) -> Iterator[Serve]:
    """Start collectors on ``storage_url`` (keyword options go to ``create_app``)."""
    started: list[Served] = []

    def start(**options: Any) -> Served:
        options.setdefault("write_keys", [WRITE_KEY, OTHER_KEY])
        served = Served(create_app(storage_url, **options))
        started.append(served)
        served.start()
        return served

    yield start
    for served in started:
        served.stop()


@pytest.fixture
def crossings() -> list[dict[str, Any]]:
    """What ``on_crossing`` was called with, in order."""
    return []


@pytest.fixture
def collector(serve: Serve, crossings: list[dict[str, Any]]) -> Served:
    """A running collector whose ``on_crossing`` appends to ``crossings``."""
    return serve(on_crossing=crossings.append)


def track(user: str = "u1", *, event: str = "Signed Up", minutes: int = 0, **fields: Any) -> Any:
    """A valid track message, ``minutes`` after T0."""
    return messages.Track(
        user_id=user, event=event, timestamp=T0 + timedelta(minutes=minutes), **fields
    )


def crossing(
    subject_id: str,
    tier: str,
    *,
    minutes: int = 0,
    score: float = 50.0,
    route: str = "sales_development",
    model: str = "pql",
    message_id: str | None = None,
    **properties: Any,
) -> messages.Track:
    """A ``pqlsdk_tier_changed`` message for user ``subject_id``, ``minutes`` after T0."""
    fields: dict[str, Any] = {} if message_id is None else {"message_id": message_id}
    return messages.Track(
        user_id=subject_id,
        event=TIER_CHANGED_EVENT,
        timestamp=T0 + timedelta(minutes=minutes),
        properties={
            "subject": "user",
            "subject_id": subject_id,
            "model": model,
            "previous_tier": "warm",
            "tier": tier,
            "direction": "up",
            "score": score,
            "route": route,
            "reasons": [{"signal": "checkout", "label": "Started checkout", "points": 40}],
            "top_features": ["reports"],
            "team_size": 3,
            "moments_seen": ["upgrade_widget"],
            **properties,
        },
        **fields,
    )
