"""Scoring through the client: reasons, routes, accounts, crossings and hot reload."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

import pqlsdk
from pqlsdk import rules
from pqlsdk._clock import micros
from pqlsdk._scoring import facts_for, standing
from pqlsdk._tiers import TierChange, detect_crossings
from pqlsdk.stores import Written

from .conftest import ROOT

PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"


def client_with(
    clock: pqlsdk.FixedClock, store: str = "memory://", **options: object
) -> pqlsdk.Client:
    return pqlsdk.Client(store=store, clock=clock, rules=PLAYBOOK, strict=True, **options)  # type: ignore[arg-type]


def make_hot(client: pqlsdk.Client, user_id: str) -> None:
    client.track(user_id, "core_workflow_completed")
    client.track(user_id, "limit_hit")
    client.track(user_id, "checkout_started")


def test_score_explains_itself(clock: pqlsdk.FixedClock) -> None:
    """Every signal has a reason: points, whether it fired, the observed value and the bar."""
    with client_with(clock) as client:
        client.track("u", "core_workflow_completed")
        for _ in range(4):
            client.track("u", "page_viewed", {"path": "/pricing"})
        score = client.score("u")
    pricing = next(r for r in score.reasons if r.signal == "pricing")
    assert (score.score, score.tier, score.gate_passed, score.multiplier) == (
        15.0,
        "cold",
        True,
        1.0,
    )
    assert (pricing.fired, pricing.observed, pricing.needs, pricing.earned) == (True, 4, ">= 3", 15)
    assert str(pricing) == "pricing page views = 4, needs >= 3 (+15)"
    assert score.top_reasons() == (pricing,)
    assert score.explain().splitlines()[0] == "u: 15 cold -> nurture"


def test_gate_zeroes_the_score_but_keeps_the_reasons(clock: pqlsdk.FixedClock) -> None:
    """Without activation the score is 0, and the reasons still show what was seen."""
    with client_with(clock) as client:
        client.track("u", "checkout_started")
        score = client.score("u")
    assert (score.score, score.gate_passed, score.raw) == (0.0, False, 40.0)
    assert "(gate not passed: score 0)" in score.explain()


def test_recency_multiplier_decays_the_score(clock: pqlsdk.FixedClock) -> None:
    """Ten days later the score halves; it shows the raw score and the multiplier."""
    with client_with(clock) as client:
        make_hot(client, "u")
        clock.advance(timedelta(days=10))
        score = client.score("u")
    assert (score.score, score.raw, score.multiplier, score.tier) == (35.0, 70.0, 0.5, "warm")
    assert "(raw 70 x 0.5)" in score.explain()


def test_routing_follows_customer_fit_and_do_not_contact(clock: pqlsdk.FixedClock) -> None:
    """Routes come from rules in order; do-not-contact changes the route, never the score."""
    with client_with(clock) as client:
        for user_id in ("ae", "cs", "dnc"):
            make_hot(client, user_id)
            client.track(user_id, "demo_requested")
        client.group("ae", "big", {"employees": 500})
        client.group("cs", "customer", {"plan": "paid"})
        client.identify("dnc", {"do_not_contact": True})
        ae, cs, dnc = client.score("ae"), client.score("cs"), client.score("dnc")
        assert (ae.route, ae.score) == ("account_executive", 110.0)
        assert (cs.route, cs.score) == ("customer_success", 120.0)
        assert (dnc.route, dnc.score) == ("do_not_contact", 100.0)
        client.track("sdr", "core_workflow_completed")
        client.track("sdr", "checkout_started")
        client.track("sdr", "premium_feature_attempted")
        assert client.score("sdr").route == "sales_development"


def test_an_unknown_user_scores_as_an_empty_history(clock: pqlsdk.FixedClock) -> None:
    """Scoring someone pqlsdk never saw is not an error."""
    with client_with(clock) as client:
        score = client.score("nobody")
    assert (score.score, score.tier, score.route) == (0.0, "cold", "nurture")


def test_scoring_without_rules_is_a_setup_error() -> None:
    """score() needs rules; the error says how to give them."""
    with (
        pqlsdk.Client(store="memory://") as client,
        pytest.raises(pqlsdk.ConfigError, match="no rules"),
    ):
        client.score("u")


def test_account_rolls_up_members_into_a_pqa(clock: pqlsdk.FixedClock) -> None:
    """Two hot members make a PQA; a member who moves away stops counting."""
    with client_with(clock) as client:
        for user_id in ("a", "b", "c"):
            client.group(user_id, "acme")
            make_hot(client, user_id)
        rolled = client.score_account("acme")
        # Three active teammates add 25 each: everyone is burning.
        assert (rolled.pqa, rolled.pql_users, dict(rolled.members)) == (
            True,
            3,
            {"a": "burning", "b": "burning", "c": "burning"},
        )
        client.group("b", "elsewhere")
        client.group("c", "elsewhere")
        rolled = client.score_account("acme")
        assert (rolled.pqa, rolled.pql_users) == (False, 1)
        assert rolled.to_dict() == {"pqa": False, "pql_users": 1, "members": {"a": "hot"}}
        assert client.score_account("ghost").pql_users == 0


def test_account_models_score_the_accounts_events(clock: pqlsdk.FixedClock) -> None:
    """A model with subject = "account" counts every member's tracks."""
    team = rules.loads(
        """
        [model.team]
        subject = "account"
        tiers = { quiet = 0, busy = 3 }
        [model.team.signals]
        usage = { value = 'count("feature_used")', points = 1 }
        """
    )
    with pqlsdk.Client(store="memory://", clock=clock, rules=team, strict=True) as client:
        for user_id in ("a", "b"):
            client.group(user_id, "acme")
            client.track(user_id, "feature_used")
            client.track(user_id, "feature_used")
        rolled = client.score_account("acme")
    assert rolled.score is not None
    assert (rolled.score.score, rolled.score.tier, rolled.pqa) == (4.0, "busy", False)
    assert rolled.to_dict()["tier"] == "busy"


def test_tier_crossings_are_reported_once_each_way(clock: pqlsdk.FixedClock) -> None:
    """Moving up reports once; staying reports nothing; decaying reports a move down."""
    changes: list[pqlsdk.TierChange] = []
    with client_with(clock, on_tier_change=changes.append) as client:
        client.track("u", "core_workflow_completed")  # cold: a first placement at the bottom
        client.track("u", "limit_hit")  # 30: warm
        client.track("u", "checkout_started")  # 70: hot
        client.track("u", "session_started")  # still hot
        clock.advance(timedelta(days=31))
        client.track("v", "anything")
        assert [c.tier for c in changes] == ["warm", "hot"]  # v's message does not re-score u
        client.identify("u", {"plan": "trial"})  # a message for u re-scores u: 7, cold
    assert [(c.previous, c.tier, c.direction) for c in changes] == [
        ("cold", "warm", "up"),
        ("warm", "hot", "up"),
        ("hot", "cold", "down"),
    ]
    hot = changes[1]
    assert (hot.subject, hot.id, hot.model, hot.score.score, hot.user_id) == (
        "user",
        "u",
        "playbook",
        70.0,
        "u",
    )
    message = hot.to_message()
    assert (message.event, message.user_id, message.properties["tier"]) == (
        "pqlsdk_tier_changed",
        "u",
        "hot",
    )
    assert message.properties["signals"] == [
        {"signal": "limit_hit", "points": 30.0},
        {"signal": "checkout", "points": 40.0},
    ]


def test_a_first_placement_above_the_bottom_is_a_crossing(clock: pqlsdk.FixedClock) -> None:
    """A user imported straight into hot is reported, with no previous tier."""
    changes: list[pqlsdk.TierChange] = []
    with client_with(clock, on_tier_change=changes.append) as client:
        client.ingest(
            [
                {"type": "track", "userId": "u", "event": e, "timestamp": "2026-03-15T11:00:00Z"}
                for e in ("core_workflow_completed", "limit_hit", "checkout_started")
            ]
        )
    assert [(c.previous, c.tier, c.direction) for c in changes] == [(None, "hot", "up")]


def test_a_failing_callback_never_breaks_tracking(clock: pqlsdk.FixedClock) -> None:
    """The host's callback raising is counted; the track call returns normally."""

    def explode(change: pqlsdk.TierChange) -> None:
        raise RuntimeError("boom")

    with pqlsdk.Client(
        store="memory://", clock=clock, rules=PLAYBOOK, on_tier_change=explode
    ) as client:
        make_hot(client, "u")
        assert client.stats().errors == {"callback_error": 2}
        assert client.stats().recorded == 3
    with client_with(clock, on_tier_change=explode) as strict, pytest.raises(RuntimeError):
        make_hot(strict, "u")


CROSSER = textwrap.dedent(
    """
    import sys, time, pqlsdk
    path, start = sys.argv[1], float(sys.argv[2])
    seen = []
    clock = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
    with pqlsdk.Client(store=f"sqlite:///{path}", clock=clock, rules=sys.argv[3],
                       on_tier_change=seen.append) as client:
        while time.time() < start:
            time.sleep(0.001)
        client.track("u", "checkout_started")
    print(len(seen))
    """
)


def test_processes_sharing_a_store_report_a_crossing_once(
    tmp_path: Path, clock: pqlsdk.FixedClock
) -> None:
    """Two processes seeing the same crossing: exactly one reports it."""
    path = tmp_path / "s.db"
    with client_with(clock, store=f"sqlite:///{path}") as client:
        client.track("u", "core_workflow_completed")
        client.track("u", "limit_hit")  # warm
    start = __import__("time").time() + 1.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CROSSER, str(path), str(start), str(PLAYBOOK)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    reported = sorted(int(p.communicate(timeout=60)[0]) for p in procs)
    assert reported == [0, 1]


def test_a_crossing_another_process_reported_first_is_not_reported_again(
    clock: pqlsdk.FixedClock,
) -> None:
    """Guard: when the remembered tier moved since the write read it, the swap fails: no report.

    Deterministic twin of the two-process test above: the write's own state still
    says the user was never placed, the store already says warm.
    """
    with client_with(clock) as client:
        client.track("u", "core_workflow_completed")
        client.track("u", "limit_hit")  # warm, remembered by the store
        store, loaded = client.store, client.rules
        assert loaded is not None
        state = store.user("u")
        assert state is not None
        assert state.tiers["playbook"] == "warm"
        written = Written()
        written.users["u"] = msgspec.structs.replace(state, tiers={})  # as read before the swap
        reported: list[TierChange] = []
        detect_crossings(
            store,
            loaded,
            ["u"],
            micros(clock.now()),
            joined=set(),
            report=reported.append,
            written=written,
        )
        after = store.user("u")
        assert (reported, after and after.tiers) == ([], {"playbook": "warm", "stuck": "fine"})


def test_load_rules_swaps_and_rebuilds_new_aggregates(clock: pqlsdk.FixedClock) -> None:
    """New rules that need an aggregate nobody kept get it from the message log."""
    with pqlsdk.Client(store="memory://", clock=clock, strict=True) as client:
        for _ in range(3):
            client.track("u", "export_clicked", {"format": "csv"})
        client.track("u", "export_clicked", {"format": "pdf"})
        loaded = client.load_rules(
            rules.loads(
                """
            [model.m]
            tiers = { low = 0, high = 3 }
            [model.m.signals]
            csv = { value = 'count("export_clicked", format="csv")', points = 1 }
            """
            )
        )
        assert client.rules is loaded
        assert client.score("u").score == 3.0
        client.track("u", "export_clicked", {"format": "csv"})
        assert client.score("u").score == 4.0


def test_a_broken_new_rules_file_keeps_the_old_rules(
    tmp_path: Path, clock: pqlsdk.FixedClock
) -> None:
    """load_rules() raises for a broken file and the old rules stay in force."""
    with client_with(clock) as client:
        before = client.rules
        (tmp_path / "broken.toml").write_text("[model.m]\ntiers = { cold = 0 }\ngate = 'count(('\n")
        with pytest.raises(pqlsdk.RulesError, match=r"broken\.toml:3:"):
            client.load_rules(tmp_path / "broken.toml")
        assert client.rules is before
        make_hot(client, "u")
        assert client.score("u").tier == "hot"


def test_sqlite_rebuild_and_aggregates_survive_restart(
    tmp_path: Path, clock: pqlsdk.FixedClock
) -> None:
    """Aggregates kept in SQLite are there for the next process, and rebuilt once."""
    url = f"sqlite:///{tmp_path}/s.db"
    with pqlsdk.Client(store=url, clock=clock, strict=True) as client:
        make_hot(client, "u")  # recorded before any rules existed
    with client_with(clock, store=url) as client:
        assert client.store.maintain(client.rules.aggregates) == 0  # type: ignore[union-attr]
        assert client.score("u").score == 70.0
    with client_with(clock, store=url) as client:
        client.track("u", "demo_requested")
        assert client.score("u").score == 100.0


ODD = """
[model.odd]
multiplier = 'user.boost'
tiers = { low = 0, high = 10 }
[model.odd.signals]
fresh = { when = 'days_since_first_seen() <= 1', points = 5 }
idle = { when = 'days_since_last_active() <= 7', points = 3 }
penalty = { value = '0 - count("refund_requested")', points = 4, label = "refunds" }
flag = { when = 'user.vip == true and count("x") >= 0', points = 2 }
[model.team]
subject = "account"
tiers = { quiet = 0, busy = 1 }
[model.team.signals]
usage = { value = 'count("x")', points = 1 }
"""


def test_reasons_show_every_kind_of_observation(clock: pqlsdk.FixedClock) -> None:
    """Booleans, missing values, negatives and infinity read well and export as JSON."""
    with pqlsdk.Client(
        store="memory://", clock=clock, rules=rules.loads(ODD), strict=True
    ) as client:
        client.identify("u", {"vip": True, "boost": "not a number"})
        client.track("u", "refund_requested", timestamp=clock.now() - timedelta(days=30))
        score = client.score("u")
        never = client.score("nobody")
    assert score.multiplier == 1.0  # a multiplier that is not a number leaves the score alone
    assert [str(r) for r in score.reasons] == [
        "fresh = 30, needs <= 1 (+0)",
        "idle = 30, needs <= 7 (+0)",
        "refunds = -1 (-4)",
        "flag = yes (+2)",
    ]
    assert score.score == -2.0
    assert score.explain().splitlines()[0] == "u: -2 low -> nurture"
    assert [r["observed"] for r in never.to_dict()["reasons"]] == [None, None, 0, False]
    assert str(never.reasons[1]) == "idle = inf, needs <= 7 (+0)"


def test_account_models_can_be_named(clock: pqlsdk.FixedClock) -> None:
    """score_account(model=...) picks the account model to use."""
    with pqlsdk.Client(
        store="memory://", clock=clock, rules=rules.loads(ODD), strict=True
    ) as client:
        client.group("u", "acme")
        client.track("u", "x")
        named = client.score_account("acme", model="team")
    assert named.score is not None
    assert (named.score.tier, named.pqa) == ("busy", False)


def test_account_model_crossings_need_an_account(clock: pqlsdk.FixedClock) -> None:
    """Users without an account never cross an account model's tiers; members do."""
    changes: list[pqlsdk.TierChange] = []
    with pqlsdk.Client(
        store="memory://",
        clock=clock,
        rules=rules.loads(ODD),
        on_tier_change=changes.append,
        strict=True,
    ) as client:
        client.track("loner", "x")
        client.group("member", "acme")
        client.track("member", "x")
    assert [(c.subject, c.id, c.tier, c.user_id) for c in changes] == [
        ("account", "acme", "busy", "member")
    ]


def test_store_faults_during_crossing_checks_are_counted(
    tmp_path: Path, clock: pqlsdk.FixedClock
) -> None:
    """A store that fails after the write loses no message; the crossing check counts an error."""
    client = pqlsdk.Client(store=f"sqlite:///{tmp_path}/s.db", clock=clock, rules=PLAYBOOK)
    conn = sqlite3.connect(tmp_path / "s.db")
    # The recording transaction writes u's row once; the crossing check's second write fails.
    conn.execute(
        "CREATE TRIGGER no_rewrite BEFORE INSERT ON users "
        "WHEN EXISTS (SELECT 1 FROM users WHERE user_id = NEW.user_id) "
        "BEGIN SELECT RAISE(ABORT, 'read-only'); END"
    )
    conn.commit()
    conn.close()
    client.ingest(
        [
            {"type": "track", "userId": "u", "event": e, "timestamp": "2026-03-15T11:00:00Z"}
            for e in ("core_workflow_completed", "checkout_started", "limit_hit")
        ]
    )
    stats = client.stats()
    assert (stats.recorded, dict(stats.errors)) == (3, {"store_error": 1})
    client.close()


def test_crossing_records_carry_what_sales_needs(clock: pqlsdk.FixedClock) -> None:
    """A crossing's record lists every reason, top features, team size and moments seen."""
    changes: list[pqlsdk.TierChange] = []
    with client_with(clock, on_tier_change=changes.append) as client:
        client.identify("u", {"plan": "trial"})
        for teammate in ("u", "v", "w"):
            client.group(teammate, "acme")
            client.track(teammate, "session_started")
        for feature in ("reports", "exports", "dashboards", 7):  # 7: not a feature name
            client.track("u", "feature_used", {"feature": feature})
        client.track("u", "core_workflow_completed")
        client.track("u", "limit_hit")  # 30 + 25 team + 10 breadth = 65: hot
        assert client.decide("u") is not None  # the upgrade widget
        clock.advance(timedelta(days=1))
        client.track("u", "checkout_started")  # 105: burning
    burning = changes[-1].to_message().properties
    assert (burning["previous_tier"], burning["tier"], burning["team_size"]) == (
        "hot",
        "burning",
        3,
    )
    assert burning["top_features"] == ["dashboards", "exports", "reports"]
    assert burning["moments_seen"] == ["upgrade_widget"]
    pricing = next(r for r in burning["reasons"] if r["signal"] == "pricing")
    assert pricing == {
        "signal": "pricing",
        "label": "pricing page views",
        "points": 15.0,
        "earned": 0.0,
        "fired": False,
        "observed": 0,
        "needs": ">= 3",
    }


def test_an_explained_score_says_what_the_gate_and_multiplier_measured(
    clock: pqlsdk.FixedClock,
) -> None:
    """score_subject(explain=True) keeps the gate's and multiplier's measured values, and
    Score.explain() shows them; the client's score() (the request path) leaves them out."""
    from pqlsdk._clock import micros  # noqa: PLC0415
    from pqlsdk._scoring import score_subject  # noqa: PLC0415

    with client_with(clock) as client:
        client.track("u", "core_workflow_completed")
        client.track("u", "checkout_started")
        clock.advance(timedelta(days=12))
        plain_score = client.score("u")
        explained = score_subject(
            rules.load(PLAYBOOK).model(None), "u", client.user("u"), None, micros(clock.now()),
            explain=True,
        )  # fmt: skip
    assert (plain_score.gate_measured, plain_score.multiplier_measured) == (None, None)
    assert (plain_score.gate_text(), plain_score.multiplier_text()) == (None, None)
    assert "gate" not in plain_score.to_dict()
    assert explained.explain().splitlines()[:3] == [
        "u: 20 cold -> nurture (raw 40 x 0.5)",
        '  gate count("core_workflow_completed") >= 1: 1, passed',
        "  x0.5: days_since_last_active() = 12",
    ]


def test_scoring_calls_once_per_signal_not_once_per_value(clock: pqlsdk.FixedClock) -> None:
    """Scoring reads the facts once, then evaluates the whole model in one call.

    Every Python call is a fixed cost on the request path (decide() scores with a
    cold memo): a standing under the playbook is one compiled function for the
    gate, the signals and the multiplier, plus a few calls for the facts and the
    rounding, whatever the number of signals. A call per signal took twice as long.
    """
    with client_with(clock) as client:
        client.group("u", "acme", {"employees": 150, "industry": "fintech"})
        make_hot(client, "u")
        user, account = client.user("u"), client.account("acme")
        assert client.rules is not None
        model = client.rules.model("playbook")
        now = micros(clock.now())
        calls = 0

        def count(frame: object, event: str, arg: object) -> None:
            nonlocal calls
            calls += event == "call"

        sys.setprofile(count)
        try:
            score, tier, passed = standing(model, "u", user, account, now)
        finally:
            sys.setprofile(None)
    assert (score, tier, passed) == (90.0, "burning", True)
    assert calls <= 7


def test_derived_variables_are_computed_once_on_first_need() -> None:
    """A moment's facts derive the score only when read, and only once however often read."""
    calls: list[int] = []

    def derive(_facts: object) -> dict[str, object]:
        calls.append(1)
        return {"score": 42}

    facts = facts_for(None, None, 0, derive=derive, plan="trial")
    assert (facts.variable("plan"), calls) == ("trial", [])
    assert (facts.variable("score"), facts.variables()["score"], facts.variable("x")) == (
        42,
        42,
        None,
    )
    assert len(calls) == 1
