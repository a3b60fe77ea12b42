"""Outcomes: conversion per tier and band, measured with no look-ahead."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from pqlsdk import ConfigError
from pqlsdk.cli import main
from pqlsdk.replay import load_outcomes

from .conftest import PLAYBOOK, group, replay_json, track, write_lines

DAY1 = "2026-03-01T00:00:00Z"


def _cohort() -> tuple[list[dict[str, Any]], list[str]]:
    """10 cold users (2 convert), 5 warm (2 convert), 4 hot (3 convert)."""
    outcomes = ["user,time,value"]
    events = [track(f"cold{i}", "core_workflow_completed", DAY1) for i in range(10)]
    for i in range(5):
        events += [
            track(f"warm{i}", "core_workflow_completed", DAY1),
            track(f"warm{i}", "checkout_started", DAY1),
        ]
    for i in range(4):
        events += [
            track(f"hot{i}", "core_workflow_completed", DAY1),
            track(f"hot{i}", "checkout_started", DAY1),
            track(f"hot{i}", "limit_hit", "2026-03-01T12:00:00Z"),  # 70: hot from noon
        ]
    outcomes += [
        "cold0,2026-03-03T00:00:00Z,100",
        "cold1,2026-03-03T00:00:00Z,",
        "warm0,2026-03-03T00:00:00Z,250.5",
        "warm1,2026-03-04T00:00:00Z,",
        "hot0,2026-03-03T00:00:00Z,1000",
        "hot1,2026-03-03T00:00:00Z,1000",
        "hot2,2026-03-03T00:00:00Z,",
        "hot2,2026-03-04T00:00:00Z,500",  # a second row: later, its value adds up
        "hot2,2026-03-05T00:00:00Z,",
    ]
    return events, outcomes


def test_known_conversion_gives_exactly_those_rates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Per tier: counts, converters, rate, Wilson interval, median days and revenue."""
    events, outcomes = _cohort()
    history = write_lines(tmp_path / "events.jsonl", events)
    (tmp_path / "outcomes.csv").write_text("\n".join(outcomes) + "\n")
    data = replay_json(
        capsys,
        PLAYBOOK,
        history,
        "--outcomes",
        tmp_path / "outcomes.csv",
        "--at",
        "2026-03-05T00:00:00Z",
    )
    tiers = {row["band"]: row for row in data["tables"][0]["user"]["tiers"]}
    assert {t: (r["subjects"], r["converted"], r["rate"]) for t, r in tiers.items()} == {
        "cold": (10, 2, 0.2),
        "warm": (5, 2, 0.4),
        "hot": (4, 3, 0.75),
        "burning": (0, 0, None),
    }
    assert tiers["cold"]["ci95"] == pytest.approx([0.0567, 0.5098], abs=1e-4)
    assert tiers["hot"]["ci95"] == pytest.approx([0.3006, 0.9544], abs=1e-4)
    assert tiers["burning"]["ci95"] is None
    assert tiers["cold"]["median_days_to_convert"] == 2.0  # since first seen
    assert tiers["warm"]["median_days_to_convert"] == 2.5  # 2 and 3 days
    assert tiers["hot"]["median_days_to_convert"] == 1.5  # hot since noon on day 1
    assert [tiers[t]["revenue"] for t in ("cold", "warm", "hot", "burning")] == [
        100.0,
        250.5,
        2500.0,
        None,
    ]
    assert data["scores"]["users"]["hot2"]["converted"] == "2026-03-03T00:00:00Z"
    assert data["look_ahead_rule"].startswith("No look-ahead")
    bands = {row["band"]: row["converted"] for row in data["tables"][0]["user"]["bands"]}
    assert (bands["0-10"], bands["40-50"], bands["70-80"]) == (2, 2, 3)


def test_a_conversions_own_events_cannot_lift_it_into_a_band(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The band is taken from events strictly before the conversion, whatever the file order.

    x hits a limit one second before converting (30, warm). The checkout and demo
    at and after the conversion time would make x burning (100) if they counted;
    they come first in the file, so only folding in time order keeps them out.
    """
    converted = "2026-03-03T12:00:00Z"
    events = [
        track("x", "checkout_started", converted),
        track("x", "demo_requested", "2026-03-03T13:00:00Z"),
        track("x", "core_workflow_completed", DAY1),
        track("x", "limit_hit", "2026-03-03T11:59:59Z"),
    ]
    history = write_lines(tmp_path / "events.jsonl", events)
    outcomes = tmp_path / "outcomes.jsonl"
    outcomes.write_text(json.dumps({"user": "x", "time": converted}) + "\n")
    data = replay_json(capsys, PLAYBOOK, history, "--outcomes", outcomes)
    assert data["scores"]["users"]["x"] == {
        "score": 30.0,
        "tier": "warm",
        "at": converted,
        "converted": converted,
    }
    tiers = {row["band"]: row["converted"] for row in data["tables"][0]["user"]["tiers"]}
    assert tiers == {"cold": 0, "warm": 1, "hot": 0, "burning": 0}
    assert data["tables"][0]["user"]["tiers"][1]["median_days_to_convert"] == pytest.approx(
        1 / 86_400
    )


def test_account_outcomes_use_the_best_member_before_the_conversion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An account stands where its best member stood; later events and members do not count."""
    events = [
        group("a1", "acme", DAY1),
        track("a1", "core_workflow_completed", DAY1),
        track("a1", "checkout_started", "2026-03-01T06:00:00Z"),  # 40: warm from 06:00
        group("a2", "acme", "2026-03-02T00:00:00Z"),
        track("a2", "core_workflow_completed", "2026-03-02T00:00:00Z"),
        track("a2", "demo_requested", "2026-03-02T01:00:00Z"),
        track("a2", "checkout_started", "2026-03-05T00:00:00Z"),  # after the conversion
        group("b1", "globex", DAY1),
        track("b1", "page_viewed", DAY1),
    ]
    history = write_lines(tmp_path / "events.jsonl", events)
    outcomes = tmp_path / "outcomes.jsonl.gz"
    rows = [{"account": "acme", "time": "2026-03-03T06:00:00Z", "value": 9000}]
    rows.append({"account": "nobody", "time": "2026-03-03T06:00:00Z"})
    outcomes.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    data = replay_json(capsys, PLAYBOOK, history, "--outcomes", outcomes)
    assert data["scores"]["accounts"]["acme"]["score"] == 40.0  # a1's; a2 had 30
    assert data["unmatched_outcomes"] == 1
    tiers = {r["band"]: r for r in data["tables"][0]["account"]["tiers"]}
    assert (tiers["warm"]["subjects"], tiers["warm"]["converted"]) == (1, 1)
    assert tiers["warm"]["median_days_to_convert"] == 2.0
    assert tiers["warm"]["revenue"] == 9000.0
    assert tiers["cold"]["subjects"] == 1  # globex
    assert data["calibration"]["subject"] == "account"


def test_a_converter_before_its_first_event_stands_at_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A conversion before any of its user's events places the user where no state puts them."""
    history = write_lines(
        tmp_path / "e.jsonl",
        [track("early", "core_workflow_completed", "2026-03-02T00:00:00Z")],
    )
    outcomes = tmp_path / "o.csv"
    outcomes.write_text("user_id,timestamp\nearly,2026-03-01T00:00:00+00:00\n")
    data = replay_json(capsys, PLAYBOOK, history, "--outcomes", outcomes)
    assert data["scores"]["users"]["early"]["at"] == "2026-03-01T00:00:00Z"
    assert data["tables"][0]["user"]["tiers"][0]["converted"] == 1
    assert data["tables"][0]["user"]["tiers"][0]["median_days_to_convert"] == 0.0


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("user,time\nu,yesterday\n", "o.txt:2: 'time' must be ISO-8601 with a timezone"),
        ("user,time\nu,2026-03-01T00:00:00\n", "'time' must be ISO-8601 with a timezone"),
        ("user,account,time\nu,a,2026-03-01T00:00:00Z\n", "give exactly one of 'user'"),
        ("time\n2026-03-01T00:00:00Z\n", "o.txt:2: give exactly one of 'user'"),
        ("user,time,value\nu,2026-03-01T00:00:00Z,lots\n", "'value' must be a number"),
        ('{"user": "u", "time": "2026-03-01T00:00:00Z", "value": true}\n', "must be a number"),
        ('{"user": "u", "time": "2026-03-01T00:00:00Z", "value": "inf"}\n', "must be a number"),
        ('{"user": "u"\n', "o.txt:1: not JSON"),
        ('{"user": "u", "time": "2026-03-01T00:00:00Z"}\n\n[1]\n', "o.txt:3: expected a JSON"),
    ],
)
def test_bad_outcomes_are_named_with_their_line(tmp_path: Path, text: str, error: str) -> None:
    """Every mistake in an outcomes file says where it is and what is wrong."""
    (tmp_path / "o.txt").write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_outcomes(tmp_path / "o.txt")
    assert error in str(raised.value)


def test_unreadable_outcomes_are_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing, broken gzip or non-UTF-8 outcomes file is exit 2 with its name."""
    history = write_lines(tmp_path / "e.jsonl", [track("u", "x", DAY1)])
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b not gzip")
    (tmp_path / "latin.csv").write_bytes(b"user,time\n\xe9,2026-03-01T00:00:00Z\n")
    for name in ("missing.csv", "bad.gz", "latin.csv"):
        assert (
            main(["replay", str(PLAYBOOK), str(history), "--outcomes", str(tmp_path / name)]) == 2
        )
        assert f"cannot read outcomes '{tmp_path / name}'" in capsys.readouterr().err
