"""Every scoring vector (tests/scenarios, ../shared/scenarios, $PQLSDK_SCENARIOS), checked.

A file is matched to an example rules file by the model it names, so new vector
files for the same models are picked up without code changes. Any expectation
key this runner does not know fails the test rather than being skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import pqlsdk
from pqlsdk.cli import main

from .conftest import ROOT, load_scenario, scenario_files, scenario_id

RULES = ROOT / "examples" / "rules"
MODEL_FILES = {
    "domain.md model 1": RULES / "playbook.toml",
    "domain.md model 2": RULES / "weighted.toml",
    "domain.md model 3": RULES / "sustained.toml",
}
KNOWN = {"users", "ranking", "classes", "stuck", "accounts"}


def _rules_for(data: dict[str, Any]) -> Path:
    for name, path in MODEL_FILES.items():
        if data["model"].startswith(name):
            return path
    raise AssertionError(f"no rules file for model {data['model']!r}")


def _scoring_files() -> list[Path]:
    # moments_steps.json is a sequence of operations, run by the moments tests.
    return [p for p in scenario_files() if "steps" not in load_scenario(p)]


def _client(data: dict[str, Any]) -> pqlsdk.Client:
    client = pqlsdk.Client(
        store="memory://",
        clock=pqlsdk.FixedClock(data["now"]),
        rules=_rules_for(data),
        retention=None,
        strict=True,
    )
    assert client.ingest(data["events"]) == len(data["events"])
    return client


@pytest.mark.parametrize("path", _scoring_files(), ids=scenario_id)
def test_scenario_expectations_hold(path: Path) -> None:
    """Each user's score and tier, rankings, classes, stuck users and PQAs match the vector."""
    data = load_scenario(path)
    expect = data["expect"]
    assert set(expect) <= KNOWN, f"unknown expectations {set(expect) - KNOWN}"
    with _client(data) as client:
        for user_id, wanted in expect.get("users", {}).items():
            got = client.score(user_id)
            assert (got.score, got.tier) == (  # type: ignore[comparison-overlap]
                pytest.approx(wanted["score"], abs=1e-6),
                wanted["tier"],
            ), f"{user_id}:\n{got.explain()}"
        if "ranking" in expect:
            scores = {uid: client.score(uid).score for uid in expect["ranking"]}
            assert sorted(scores, key=lambda uid: -scores[uid]) == expect["ranking"]
            assert len(set(scores.values())) == len(scores), "ties make a ranking ambiguous"
        for user_id, tier in expect.get("classes", {}).items():
            assert client.score(user_id).tier == tier
        for user_id, stuck in expect.get("stuck", {}).items():
            assert (client.score(user_id, model="stuck").tier == "stuck") is stuck
        for account_id, wanted in expect.get("accounts", {}).items():
            rolled = client.score_account(account_id)
            assert {"pqa": rolled.pqa, "pql_users": rolled.pql_users} == wanted


@pytest.mark.parametrize("path", _scoring_files(), ids=scenario_id)
def test_cli_score_json_matches_the_vector(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``pqlsdk score RULES FILE --json`` prints the vector's scores and tiers."""
    data = load_scenario(path)
    assert main(["score", str(_rules_for(data)), str(path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    for user_id, wanted in data["expect"].get("users", {}).items():
        got = printed["users"][user_id]
        assert (got["score"], got["tier"]) == (
            pytest.approx(wanted["score"], abs=1e-6),
            wanted["tier"],
        )
    for user_id, tier in data["expect"].get("classes", {}).items():
        assert printed["users"][user_id]["tier"] == tier
    for account_id, wanted in data["expect"].get("accounts", {}).items():
        got = printed["accounts"][account_id]
        assert {"pqa": got["pqa"], "pql_users": got["pql_users"]} == wanted
