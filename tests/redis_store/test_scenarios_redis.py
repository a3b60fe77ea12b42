"""Every scenario vector (tests/scenarios and the other places tests/conftest.py reads) on Redis."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pqlsdk

from .. import test_scenarios as scenarios
from ..conftest import scenario_id
from ..test_moments import _step_files, run_moment_steps


@pytest.mark.parametrize("path", scenarios._scoring_files(), ids=scenario_id)
def test_scoring_vectors_hold(
    path: Path, make_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scoring runner of tests/test_scenarios.py, its client on Redis instead of memory."""

    def redis_client(data: dict[str, Any]) -> pqlsdk.Client:
        client = pqlsdk.Client(
            store=make_url(),
            clock=pqlsdk.FixedClock(data["now"]),
            rules=scenarios._rules_for(data),
            retention=None,
            strict=True,
        )
        assert client.ingest(data["events"]) == len(data["events"])
        return client

    monkeypatch.setattr(scenarios, "_client", redis_client)
    scenarios.test_scenario_expectations_hold(path)


@pytest.mark.parametrize("path", _step_files(), ids=scenario_id)
def test_moment_steps_hold(path: Path, redis_store_url: str) -> None:
    """Each step of a moments vector gives the expected answer (tests/test_moments.py's runner)."""
    run_moment_steps(path, redis_store_url)
