"""The memo behind decide(): answers reused briefly, forgotten when the user changes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path

import pqlsdk
from pqlsdk._exceptions import StoreError
from pqlsdk._memo import TTL, Memo
from pqlsdk.stores import AccountState, MemoryStore, Record, Written

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"


def counting(
    standing: tuple[float, str, bool],
) -> tuple[list[int], Callable[[], tuple[float, str, bool]]]:
    calls: list[int] = []

    def compute() -> tuple[float, str, bool]:
        calls.append(1)
        return standing

    return calls, compute


def test_a_standing_is_reused_within_the_ttl_and_computed_again_after() -> None:
    """Within TTL µs of the client's clock the memo answers; past it, it computes again."""
    memo = Memo()
    calls, compute = counting((60.0, "hot", True))
    memo.get("playbook", "u", 0, compute)
    memo.get("playbook", "u", TTL, compute)
    memo.get("playbook", "u", TTL + 1, compute)
    assert len(calls) == 2


def test_forgetting_a_user_drops_their_standings_only() -> None:
    """forget() makes the next read of that user compute; other users stay memoised."""
    memo = Memo()
    calls, compute = counting((10.0, "cold", False))
    for user in ("u", "v"):
        memo.get("playbook", user, 0, compute)
    memo.forget(["u"])
    for user in ("u", "v"):
        memo.get("playbook", user, 0, compute)
    assert len(calls) == 3


def test_a_standing_computed_across_a_forget_is_not_kept() -> None:
    """A change applied while a standing was computed means that standing may be stale."""
    memo = Memo()

    def racing() -> tuple[float, str, bool]:
        memo.forget(["other"])  # another thread applied a message meanwhile
        return (1.0, "cold", False)

    memo.get("playbook", "u", 0, racing)
    calls, compute = counting((2.0, "cold", False))
    assert memo.get("playbook", "u", 0, compute) == (2.0, "cold", False)
    assert len(calls) == 1


def test_a_full_memo_starts_afresh() -> None:
    """At maxsize users the memo is emptied rather than growing."""
    memo = Memo(maxsize=2)
    calls, compute = counting((1.0, "cold", False))
    for user in ("a", "b", "c", "a"):
        memo.get("playbook", user, 0, compute)
    assert len(calls) == 4  # "a" was dropped when "c" arrived


def test_decide_sees_the_users_own_new_events_at_once(clock: pqlsdk.FixedClock) -> None:
    """A user who turns hot gets the upgrade widget on the next decide, memo or not."""
    with pqlsdk.Client(store="memory://", clock=clock, rules=PLAYBOOK) as client:
        client.identify("u", {"plan": "business"})
        client.track("u", "core_workflow_completed")
        assert client.decide("u") is None  # warm at most: nothing due; standing memoised
        client.track("u", "limit_hit")
        client.track("u", "checkout_started")
        moment = client.decide("u")
        assert moment is not None
        assert moment.kind == "upgrade_widget"


def test_decide_sees_account_traits_from_a_group_message(clock: pqlsdk.FixedClock) -> None:
    """A group message changing the account's traits reaches every member's next decide."""
    with pqlsdk.Client(store="memory://", clock=clock, rules=PLAYBOOK) as client:
        client.identify("u", {"plan": "business"})
        client.group("u", "acme", {"employees": 10})
        for event in ("core_workflow_completed", "limit_hit"):
            client.track("u", event)
        assert client.decide("u") is None  # 30 + 0: warm
        client.group("v", "acme", {"plan": "paid", "employees": 500, "industry": "fintech"})
        moment = client.decide("u")  # + expansion 20, size 10, vertical 10: hot
        assert moment is not None
        assert moment.kind == "upgrade_widget"


def test_time_passing_reaches_decide_within_the_ttl(clock: pqlsdk.FixedClock) -> None:
    """A standing older than the TTL is recomputed: recency decay shows after a second."""
    with pqlsdk.Client(store="memory://", clock=clock, rules=PLAYBOOK) as client:
        client.identify("u", {"plan": "business"})
        for event in ("core_workflow_completed", "limit_hit", "checkout_started"):
            client.track("u", event)
        shown = client.decide("u")  # hot: the widget, and a memoised standing
        clock.advance(timedelta(days=40))  # the cap has lapsed; x0.1 recency: cold
        assert (shown is not None, client.decide("u")) == (True, None)


def test_a_kept_answer_is_only_what_keep_accepts() -> None:
    """decide() keeps "nothing due" and never a moment it showed."""
    memo = Memo()
    calls, compute = counting((1.0, "cold", False))
    for _ in range(2):
        memo.get("decide", "u", 0, compute, keep=lambda answer: answer is None)
    assert len(calls) == 2


def test_nothing_due_is_remembered_until_the_user_records_an_outcome(
    clock: pqlsdk.FixedClock,
) -> None:
    """A memoised "nothing due" is dropped by record(), as by the user's own events."""
    with pqlsdk.Client(store="memory://", clock=clock, rules=PLAYBOOK) as client:
        client.identify("u", {"plan": "business"})
        for event in ("core_workflow_completed", "limit_hit", "checkout_started"):
            client.track("u", event)
        shown = client.decide("u")  # the widget; "nothing due" is not memoised for a showing
        assert shown is not None
        assert client.decide("u") is None  # capped: memoised
        assert client.record("u", shown.id, "dismissed")
        assert "u" not in client._recorder.memo._memo


class AccountsDown(MemoryStore):
    """Records fine but hands back no states (as a custom store may); reading an account fails."""

    def record(
        self, records: Iterable[Record], *, outbox: bool = False, written: Written | None = None
    ) -> int:
        return super().record(records, outbox=outbox)

    def account(self, account_id: str) -> AccountState | None:
        raise StoreError("accounts are unreadable")


def test_a_store_fault_while_forgetting_is_counted_and_loses_nothing(
    clock: pqlsdk.FixedClock,
) -> None:
    """Finding a group's members to forget can fail; the message is recorded all the same."""
    store = AccountsDown()
    with pqlsdk.Client(store=store, clock=clock, rules=PLAYBOOK) as client:
        client.group("u", "acme", {"employees": 5})
        stats = client.stats()
    assert (stats.recorded, stats.errors["store_error"] >= 1) == (1, True)
