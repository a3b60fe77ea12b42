"""The moments a crossing lists read as the user saw them, not as their templates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

import pqlsdk
from pqlsdk._tiers import moment_titles
from pqlsdk.stores._state import decode_user
from pqlsdk.testing import RecordingTransport

from .conftest import ROOT

PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The stores a moment record is kept in (tests/redis_store adds Redis)."""
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/state.db"


def crossings(transport: RecordingTransport) -> list[dict[str, Any]]:
    return [m["properties"] for m in transport.messages if m.get("event") == "pqlsdk_tier_changed"]


def test_a_crossing_names_each_moment_as_the_user_saw_it(store_url: str) -> None:
    """Shown the SSO prompt and the trial notice, a crossing lists their filled-in titles."""
    clock = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
    transport = RecordingTransport()
    with pqlsdk.Client(
        store=store_url, clock=clock, rules=PLAYBOOK, transport=transport, strict=True
    ) as client:
        client.identify("u", {"plan": "trial", "trial_ends_at": "2026-03-17T00:00:00Z"})
        gate = client.gate("u", "sso")
        notice = client.decide("u")
        client.track("u", "core_workflow_completed")
        client.track("u", "limit_hit")
    assert gate.moment is not None
    assert notice is not None
    [crossing] = crossings(transport)
    assert crossing["moments_seen"] == ["blocked_feature", "trial_ending"]
    assert crossing["moment_titles"] == [
        "Single sign-on is on the Business plan",
        "Your trial ends in 2 days",
    ]
    assert crossing["moment_titles"] == [gate.moment.title, notice.title]


def test_a_crossing_made_by_a_denied_gate_lists_the_prompt_it_showed(store_url: str) -> None:
    """The attempt that tips a user into a tier is tracked after its prompt is shown."""
    clock = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
    transport = RecordingTransport()
    with pqlsdk.Client(
        store=store_url, clock=clock, rules=PLAYBOOK, transport=transport, strict=True
    ) as client:
        client.identify("u", {"plan": "trial"})
        client.track("u", "core_workflow_completed")
        client.track("u", "limit_hit")  # 30: cold
        for feature in ("reports", "dashboards", "exports"):
            client.track("u", "feature_used", {"feature": feature})  # 40: warm
        gate = client.gate("u", "sso")  # +20 premium attempt: 60, hot
    assert gate.moment is not None
    hot = [c for c in crossings(transport) if c["tier"] == "hot"]
    assert [c["moments_seen"] for c in hot] == [["blocked_feature"]]
    assert hot[0]["moment_titles"] == ["Single sign-on is on the Business plan"]


def test_a_title_kept_for_the_feed_is_cut_but_the_user_sees_it_whole(
    store_url: str, tmp_path: Path
) -> None:
    """A trait in a title cannot bloat the state: the record keeps 200 characters of it."""
    rules = tmp_path / "rules.toml"
    rules.write_text(
        PLAYBOOK.read_text().replace(
            'title = "Your trial ends in {days_left} days"',
            'title = "{user.first_name}, your trial ends in {days_left} days"',
        )
    )
    name = "A" * 1000
    clock = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
    with pqlsdk.Client(store=store_url, clock=clock, rules=rules, strict=True) as client:
        client.identify(
            "u", {"plan": "trial", "trial_ends_at": "2026-03-17T00:00:00Z", "first_name": name}
        )
        notice = client.decide("u")
        state = client.user("u")
    assert notice is not None
    assert notice.title == f"{name}, your trial ends in 2 days"
    assert state is not None
    [record] = state.moments
    assert record.title == "A" * 200


def test_records_from_before_titles_decode_and_read_without_placeholders() -> None:
    """A state written without titles decodes; its moments read as words, never "[feature]"."""
    old = {
        "user_id": "u",
        "moments": [
            {"id": f"{kind}-1", "kind": kind, "at": 1, "held_out": False, "outcomes": {}}
            for kind in ("blocked_feature", "trial_ending", "upgrade_widget")
        ],
    }
    state = decode_user(msgspec.msgpack.encode(old))
    assert [record.title for record in state.moments] == [None, None, None]
    kinds = tuple(record.kind for record in state.moments)
    assert moment_titles(pqlsdk.rules.load(PLAYBOOK).moments, kinds, state.moments) == (
        "Blocked feature",
        "Trial ending",
        "Ready for more?",
    )


class OldRecord(msgspec.Struct, kw_only=True):
    """A moment record as the previous release kept it (no title)."""

    id: str
    kind: str
    at: int
    held_out: bool = False
    outcomes: dict[str, int] = {}


class OldUser(msgspec.Struct, kw_only=True):
    """A user state as the previous release read it (the fields that matter here)."""

    user_id: str
    moments: list[OldRecord] = []


def test_an_older_reader_skips_the_title() -> None:
    """A process on the previous release reads a state a newer one wrote (rolling deploys)."""

    new = pqlsdk.stores.UserState(
        user_id="u",
        moments=[pqlsdk.stores.MomentRecord(id="t-1", kind="trial_ending", at=1, title="Hi")],
    )
    [record] = msgspec.msgpack.decode(msgspec.msgpack.encode(new), type=OldUser).moments
    assert (record.id, record.kind) == ("t-1", "trial_ending")


def test_the_latest_showing_of_a_kind_names_it() -> None:
    """Seen twice (3 days left, then 2), the crossing lists the title the user saw last."""
    records = [
        pqlsdk.stores.MomentRecord(id=f"t-{n}", kind="trial_ending", at=n, title=title)
        for n, title in enumerate(["Your trial ends in 3 days", "Your trial ends in 2 days"])
    ]
    assert moment_titles(None, ("trial_ending",), records) == ("Your trial ends in 2 days",)


def test_a_feature_name_no_store_can_encode_is_kept_readable(store_url: str) -> None:
    """gate() with a lone surrogate in the feature still shows; the kept title has a "?"."""
    with pqlsdk.Client(store=store_url, rules=PLAYBOOK) as client:  # the track is dropped
        client.identify("u", {"plan": "trial"})
        gate = client.gate("u", "s\udfff")
        state = client.user("u")
    assert gate.moment is not None
    assert gate.moment.title == "s\udfff is on the Business plan"
    assert state is not None
    assert [record.title for record in state.moments] == ["s? is on the Business plan"]
