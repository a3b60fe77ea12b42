"""Every shared scenario vector (../shared/scenarios, read in place) on the Redis store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pqlsdk

from .. import test_scenarios as scenarios
from ..test_moments import PLAYBOOK, _moment_fields, _step_files


@pytest.mark.parametrize("path", scenarios._scoring_files(), ids=lambda p: p.name)
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


@pytest.mark.parametrize("path", _step_files(), ids=lambda p: p.name)
def test_moment_steps_hold(path: Path, redis_store_url: str) -> None:
    """Each step of a moments vector gives the expected answer (tests/test_moments.py's runner)."""
    data = scenarios.load_scenario(path)
    clock = pqlsdk.FixedClock(data["steps"][0]["at"])
    with pqlsdk.Client(
        store=redis_store_url, clock=clock, rules=PLAYBOOK, strict=True, retention=None
    ) as client:
        client.ingest(data["events"])
        for number, step in enumerate(data["steps"]):
            clock.set(step["at"])
            where = f"step {number} {step}"
            op, user, expect = step["op"], step["user"], step.get("expect")
            if op == "identify":
                client.identify(user, step["traits"])
            elif op == "track":
                client.track(user, step["event"])
            elif op == "gate":
                gate = client.gate(user, step["feature"])
                assert gate.allowed is expect["allowed"], where
                assert _moment_fields(gate.moment, expect["moment"]) == expect["moment"], where
            elif op == "decide":
                moment = client.decide(user)
                assert _moment_fields(moment, expect["moment"]) == expect["moment"], where
            elif op == "record":
                assert client.record(user, step["moment"], step["outcome"]), where
            elif op == "score":
                score = client.score(user)
                assert (score.score, score.tier) == (expect["score"], expect["tier"]), where
            else:
                raise AssertionError(f"unknown op in {where}")
