"""Moments and gates: the shared step vectors, caps under concurrency, and holdouts."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import pqlsdk
from pqlsdk import rules
from pqlsdk._moments import days_left, held_out, outcome_message

from .conftest import ROOT, load_scenario, scenario_files, scenario_id

PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"


def _step_files() -> list[Path]:
    return [p for p in scenario_files() if "steps" in load_scenario(p)]


def _moment_fields(
    moment: pqlsdk.Moment | None, wanted: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The fields of ``moment`` that the vector names (kind, plus feature or days_left)."""
    if moment is None or wanted is None:
        return None if moment is None else {"kind": moment.kind}
    return {name: getattr(moment, name) for name in wanted}


@pytest.mark.parametrize("path", _step_files(), ids=scenario_id)
@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_moment_steps_hold(path: Path, store_kind: str, tmp_path: Path) -> None:
    """Each step of the vector, applied at its time, gives exactly the expected answer."""
    run_moment_steps(path, "memory://" if store_kind == "memory" else f"sqlite:///{tmp_path}/m.db")


def run_moment_steps(path: Path, url: str, **options: Any) -> None:
    """Play a moments vector's steps on a client over the store at ``url`` (any store's tests).

    ``options`` go to the client (a transport, to keep the messages it sends).
    """
    data = load_scenario(path)
    clock = pqlsdk.FixedClock(data["steps"][0]["at"])
    with pqlsdk.Client(
        store=url, clock=clock, rules=PLAYBOOK, strict=True, retention=None, **options
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


def hot_client(clock: pqlsdk.FixedClock, url: str = "memory://", **options: Any) -> pqlsdk.Client:
    options.setdefault("strict", True)
    client = pqlsdk.Client(store=url, clock=clock, rules=PLAYBOOK, **options)
    client.identify("u", {"plan": "trial", "first_name": "Ada"})
    for event in ("core_workflow_completed", "limit_hit", "checkout_started"):
        client.track("u", event)
    return client


def test_a_moment_has_content_and_a_stable_id(clock: pqlsdk.FixedClock) -> None:
    """decide() fills the content and gives an id that record() accepts."""
    with hot_client(clock) as client:
        moment = client.decide("u")
        assert moment is not None
        assert (moment.kind, moment.title, moment.cta) == (
            "upgrade_widget",
            "Ready for more?",
            "Upgrade",
        )
        assert moment.id.startswith("upgrade_widget-")
        assert moment.at == clock.now()
        assert client.record("u", moment.id, "clicked")
        message = moment.to_message("u")
        assert (message.event, message.properties["moment_id"]) == (
            "pqlsdk_moment_shown",
            moment.id,
        )


def test_gate_moments_fill_the_feature(clock: pqlsdk.FixedClock) -> None:
    """A denied gate says why, tracks the attempt and offers the blocked-feature moment."""
    with hot_client(clock) as client:
        gate = client.gate("u", "sso")
        assert (bool(gate), gate.plan, gate.reason) == (
            False,
            "trial",
            "plan 'trial' does not include 'sso'",
        )
        assert gate.moment is not None
        assert (gate.moment.title, gate.moment.feature) == (
            "Single sign-on is on the Business plan",  # {feature}: the playbook's name for sso
            "sso",
        )
        assert client.score("u").reasons[1].observed == 1  # premium_feature_attempted counted
        allowed = client.gate("u", "reports")
        assert (bool(allowed), allowed.reason, allowed.moment) == (
            True,
            "plan 'trial' includes 'reports'",
            None,
        )


def test_gates_without_a_known_plan_deny(clock: pqlsdk.FixedClock) -> None:
    """No plan trait, or a plan the entitlements do not list, denies with the reason."""
    with hot_client(clock) as client:
        client.identify("v", {"plan": "legacy"})
        assert client.gate("nobody", "reports").reason == "no plan, so no 'reports'"
        assert client.gate("v", "reports").reason == "plan 'legacy' is not in the entitlements"


def test_outcomes_must_be_known(clock: pqlsdk.FixedClock) -> None:
    """record() refuses unknown outcomes and unknown moments: counted, or raised when strict."""
    with hot_client(clock, strict=False) as client:
        assert not client.record("u", "upgrade_widget", "loved")
        assert not client.record("u", "upgrade_widget", "clicked")  # never shown
        assert dict(client.stats().dropped) == {"invalid": 1, "unknown_moment": 1}
    with hot_client(clock) as strict, pytest.raises(pqlsdk.InvalidMessageError, match="outcome"):
        strict.record("u", "x", "loved")


def test_decide_and_gate_need_their_configuration(clock: pqlsdk.FixedClock) -> None:
    """Without moments or entitlements in the rules, decide() and gate() are setup errors."""
    bare = rules.loads("[model.m]\ntiers = { low = 0 }\n")
    with pqlsdk.Client(store="memory://", rules=bare) as client:
        with pytest.raises(pqlsdk.ConfigError, match=r"no \[moment\.\*\] tables"):
            client.decide("u")
        with pytest.raises(pqlsdk.ConfigError, match=r"no \[entitlements\]"):
            client.gate("u", "sso")


ACTIVATION = """
[model.m]
gate = 'count("core_workflow_completed") >= 1'
tiers = { cold = 0, hot = 50 }
[model.m.signals]
checkout = { when = 'count("checkout_started") >= 1', points = 60 }
[moment.upgrade]
when = 'tier == "hot"'
priority = 10
title = "Upgrade, {user.first_name}"
[moment.activation_help]
when = 'not gate_passed and days_since_first_seen() >= 2'
priority = 5
cap = { max = 1, per = "72h" }
title = "Finish setting up ({plan}, {score}, {account.name})"
"""


def test_low_scorers_get_activation_help_and_high_scorers_upgrades(
    clock: pqlsdk.FixedClock,
) -> None:
    """The configuration can send activation help to cold users and upgrades to hot ones."""
    with pqlsdk.Client(
        store="memory://", clock=clock, rules=rules.loads(ACTIVATION), strict=True
    ) as client:
        client.identify("new", {"plan": "trial"})
        client.group("new", "acme", {"name": "Acme"})
        client.identify("hot", {"first_name": "Ada"})
        client.track("hot", "core_workflow_completed")
        client.track("hot", "checkout_started")
        assert client.decide("new") is None  # too soon to nag
        clock.advance(timedelta(days=3))
        help_moment, upgrade = client.decide("new"), client.decide("hot")
    assert help_moment is not None
    assert upgrade is not None
    assert (help_moment.kind, help_moment.title) == (
        "activation_help",
        "Finish setting up (trial, 0, Acme)",
    )
    assert (upgrade.kind, upgrade.title) == ("upgrade", "Upgrade, Ada")


UNCAPPED = """
[model.m]
tiers = { low = 0 }
[moment.tip]
title = "A tip"
"""


def test_a_kind_without_a_cap_or_cooldown_shows_at_every_decision(
    clock: pqlsdk.FixedClock,
) -> None:
    """Only a cap or a cooldown holds a kind back: without either, a user who has seen it
    sees it again (decide() never replays a showing from its memo)."""
    with pqlsdk.Client(
        store="memory://", clock=clock, rules=rules.loads(UNCAPPED), strict=True
    ) as client:
        first = client.decide("u")
        clock.advance(timedelta(minutes=1))
        second = client.decide("u")
        seen = client.user("u")
    assert first is not None
    assert second is not None
    assert (first.kind, second.kind) == ("tip", "tip")
    assert seen is not None
    assert len(seen.moments) == 2


HOLDOUT = """
[model.m]
tiers = { low = 0 }
[moment.nudge]
holdout = 10
title = "hi"
"""


def test_holdout_share_is_close_to_the_setting() -> None:
    """Over 10,000 users the held-out share is within one point of 10 %."""
    kind = rules.loads(HOLDOUT).moments.kinds[0]  # type: ignore[union-attr]
    share = sum(held_out(f"user-{i}", kind) for i in range(10_000)) / 100
    assert 9.0 <= share <= 11.0


def test_held_out_users_never_see_the_kind_and_are_recorded(clock: pqlsdk.FixedClock) -> None:
    """A held-out decision returns nothing, is recorded as held out, and recurs with the cap."""
    kind = rules.loads(HOLDOUT).moments.kinds[0]  # type: ignore[union-attr]
    held = next(f"user-{i}" for i in range(100) if held_out(f"user-{i}", kind))
    seen = next(f"user-{i}" for i in range(100) if not held_out(f"user-{i}", kind))
    with pqlsdk.Client(
        store="memory://", clock=clock, rules=rules.loads(HOLDOUT), strict=True
    ) as client:
        assert client.decide(held) is None
        assert client.decide(seen) is not None
        user = client.user(held)
        assert user is not None
        assert [(r.kind, r.held_out) for r in user.moments] == [("nudge", True)]


HOLDOUT_PROBE = textwrap.dedent(
    """
    import sys
    from pqlsdk import rules
    from pqlsdk._moments import days_left, held_out, outcome_message
    kind = rules.loads(sys.stdin.read()).moments.kinds[0]
    print("".join("1" if held_out(f"user-{i}", kind) else "0" for i in range(2000)))
    """
)


def test_holdout_assignment_is_stable_across_processes() -> None:
    """Two fresh processes (different hash seeds) hold out exactly the same users."""
    runs = [
        subprocess.run(
            [sys.executable, "-c", HOLDOUT_PROBE],
            input=HOLDOUT,
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        for seed in ("1", "2")
    ]
    assert runs[0] == runs[1]
    assert "1" in runs[0]


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_eight_threads_deciding_at_once_show_one_widget(
    clock: pqlsdk.FixedClock, tmp_path: Path, store_kind: str
) -> None:
    """Eight threads deciding for one user at the same instant: exactly one upgrade widget."""
    url = "memory://" if store_kind == "memory" else f"sqlite:///{tmp_path}/t.db"
    barrier = threading.Barrier(8)
    shown: list[pqlsdk.Moment | None] = []
    with hot_client(clock, url) as client:

        def decide() -> None:
            barrier.wait()
            shown.append(client.decide("u"))

        threads = [threading.Thread(target=decide) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(m.kind for m in shown if m) == ["upgrade_widget"]
    assert shown.count(None) == 7


DECIDER = textwrap.dedent(
    """
    import sys, time, pqlsdk
    url, rules_path, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    clock = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
    with pqlsdk.Client(store=url, clock=clock, rules=rules_path, strict=True) as client:
        while time.time() < start:
            time.sleep(0.0005)
        moment = client.decide("u")
    print(moment.kind if moment else "none")
    """
)


def test_four_processes_deciding_at_once_show_one_widget(
    clock: pqlsdk.FixedClock, tmp_path: Path
) -> None:
    """Four processes sharing one SQLite file, same instant: exactly one upgrade widget."""
    url = f"sqlite:///{tmp_path}/p.db"
    hot_client(clock, url).close()
    start = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DECIDER, url, str(PLAYBOOK), str(start)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    answers = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert answers == ["none", "none", "none", "upgrade_widget"]


def _freeze_users(path: Path) -> None:
    """Make every rewrite of an existing user row fail, as a full or broken disk would."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TRIGGER frozen BEFORE INSERT ON users "
        "WHEN EXISTS (SELECT 1 FROM users WHERE user_id = NEW.user_id) "
        "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    conn.commit()
    conn.close()


def test_store_faults_never_reach_the_host(clock: pqlsdk.FixedClock, tmp_path: Path) -> None:
    """decide(), gate() and record() count store faults and answer safely."""
    client = hot_client(
        clock,
        f"sqlite:///{tmp_path}/f.db",
        strict=False,
        delivery=pqlsdk.Delivery(durability="sync"),
    )
    _freeze_users(tmp_path / "f.db")
    assert client.decide("u") is None  # the showing could not be recorded
    denied = client.gate("u", "sso")
    assert (denied.allowed, denied.moment) == (False, None)
    assert not client.record("u", "upgrade_widget", "clicked")
    conn = sqlite3.connect(tmp_path / "f.db")
    conn.execute("DROP TABLE users")
    conn.commit()
    conn.close()
    assert client.decide("u") is None
    assert client.gate("u", "sso") == pqlsdk.Gate(
        "sso", True, "store unavailable: allowed", None, None
    )
    stats = client.stats()
    assert dict(stats.dropped) == {"store_error": 2}  # the gate's tracked attempt, the outcome
    assert dict(stats.errors) == {"store_error": 4}
    client.close()


def test_gates_work_without_moments(clock: pqlsdk.FixedClock) -> None:
    """Entitlements alone answer gates; a denial then carries no moment."""
    only_gates = rules.loads(
        "[model.m]\ntiers = { low = 0 }\n[entitlements]\nplans = { free = ['a'] }\n"
        "default_plan = 'free'\n"
    )
    with pqlsdk.Client(store="memory://", clock=clock, rules=only_gates, strict=True) as client:
        assert client.gate("u", "a").allowed
        assert client.gate("u", "b") == pqlsdk.Gate(
            "b", False, "plan 'free' does not include 'b'", "free", None
        )


def test_outcome_records_name_the_moment(clock: pqlsdk.FixedClock) -> None:
    """Outcomes go on the named moment (not an older one) and become collector records."""
    with hot_client(clock) as client:
        first = client.decide("u")
        clock.advance(timedelta(days=2))
        second = client.decide("u")
        assert first is not None
        assert second is not None
        assert client.record("u", first.id, "dismissed")
        user = client.user("u")
        assert user is not None
        record = next(r for r in user.moments if r.id == first.id)
        message = outcome_message("u", record, "dismissed")
    assert (message.event, message.properties) == (
        "pqlsdk_moment_outcome",
        {"moment_id": first.id, "kind": "upgrade_widget", "outcome": "dismissed"},
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-16T12:00:00Z", 1),
        ("2026-03-16T12:00:01Z", 2),
        ("2026-03-15T11:00:00Z", 0),
        ("not a date", None),
        ("2026-03-16T12:00:00", None),
        (1773662400, None),
        (None, None),
    ],
)
def test_days_left_rounds_up_and_ignores_bad_values(value: Any, expected: int | None) -> None:
    """Whole days rounded up; anything that is not an aware ISO instant gives None."""
    now = 1_773_576_000_000_000  # 2026-03-15T12:00:00Z in µs
    assert days_left(value, now) == expected


@pytest.mark.parametrize(
    ("extra", "line", "message"),
    [
        (
            "[moments]\nmodel = 'nope'\n[moment.k]\ntitle = 'x'\n",
            5,
            "moments model 'nope' is not a user model",
        ),
        (
            "[moments]\ncaps = [{ kinds = ['ghost'], max = 1, per = '1d' }]\n"
            "[moment.k]\ntitle = 'x'\n",
            5,
            "cap names unknown moment 'ghost'",
        ),
        ("[moment.k]\ntitle = 'Hi {user}'\n", 5, "unknown placeholder {user}"),
        (
            "[moment.k]\ncap = { max = 1, per = '1 day' }\n",
            5,
            "expected a duration like 24h, got '1 day'",
        ),
        (
            "[moment.k]\ncap = { max = 1, per = '10' }\n",
            5,
            "expected a duration like 24h, got '10'",
        ),
        (
            "[entitlements]\nplans = { free = ['a'] }\ndefault_plan = 'pro'\n",
            6,
            "default plan 'pro' is not one of the plans",
        ),
        (
            "[entitlements]\nplans = { free = ['a'] }\nnames = { a = 'A', b = 'Bee' }\n",
            6,
            "'b' is not a feature of any plan",
        ),
    ],
)
def test_moment_and_entitlement_mistakes_are_rules_errors(
    extra: str, line: int, message: str
) -> None:
    """Moment and entitlement settings are checked at load, with the line."""
    with pytest.raises(pqlsdk.RulesError) as caught:
        rules.loads("[model.m]\ntiers = { low = 0 }\n\n" + extra)
    assert caught.value.message.startswith(message)
    assert caught.value.line == line
