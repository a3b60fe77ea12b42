"""Several processes (standing in for hosts) on one Redis store: exact, and caps hold."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

import pqlsdk
from pqlsdk._aggregates import Aggregate
from pqlsdk.messages import Group, Track, check
from pqlsdk.stores.redis import RedisStore

from ..conftest import ROOT
from ..processes import untraced_env
from ..test_moments import DECIDER, hot_client
from .workload import ACCOUNTS, NOW, PLAYBOOK, messages, setup

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TEAM = Aggregate("count", "x", scope="account")
WRITERS = 4
PER_WRITER = 2_500


def test_threads_racing_on_one_user_lose_nothing(store: RedisStore) -> None:
    """Four threads recording one message at a time for one user: every one counts once."""
    store.record([check(Group(user_id="u", group_id="acme", timestamp=T0))])
    store.maintain([TEAM])
    barrier = threading.Barrier(4)

    def write(name: str) -> None:
        barrier.wait()
        for i in range(150):
            track = Track(user_id="u", event="x", timestamp=T0, message_id=f"{name}{i}")
            store.record([check(track)])

    threads = [threading.Thread(target=write, args=(name,)) for name in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    user = store.user("u")
    assert user is not None
    account = store.account("acme")
    assert account is not None
    assert (user.tracks, account.aggregates[TEAM.key], store.count()) == (600, 600, 601)


@pytest.mark.slow
def test_four_processes_give_the_single_process_result(make_url: Callable[[], str]) -> None:
    """4 processes x 2,500 messages for overlapping users: every aggregate and score is exact."""
    url = make_url()
    clock = pqlsdk.FixedClock(NOW)
    with pqlsdk.Client(store=url, clock=clock, rules=PLAYBOOK, strict=True) as client:
        setup(client)
    start = time.time() + 1.0
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.redis_store.workload",
                url,
                str(start),
                str(index),
                str(WRITERS),
                str(WRITERS * PER_WRITER),
            ],
            cwd=ROOT,
            env=untraced_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(WRITERS)
    ]
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * WRITERS, errors

    reference = pqlsdk.Client(store="memory://", clock=clock, rules=PLAYBOOK, strict=True)
    setup(reference)
    reference.ingest(messages(WRITERS * PER_WRITER))
    with pqlsdk.Client(store=url, clock=clock, rules=PLAYBOOK, strict=True) as shared:
        assert (
            shared.store.count() == reference.store.count() == WRITERS * PER_WRITER + len(ACCOUNTS)
        )
        for user_id in ACCOUNTS:
            got, want = shared.user(user_id), reference.user(user_id)
            assert got is not None
            assert want is not None
            assert (got.tracks, got.aggregates, got.traits, got.first_seen, got.last_active) == (
                want.tracks,
                want.aggregates,
                want.traits,
                want.first_seen,
                want.last_active,
            ), user_id
            for model in ("playbook", "stuck"):
                assert shared.score(user_id, model=model) == reference.score(user_id, model=model)
        for account_id in set(ACCOUNTS.values()):
            got_account, want_account = shared.account(account_id), reference.account(account_id)
            assert got_account is not None
            assert want_account is not None
            assert (got_account.aggregates, got_account.active_members, got_account.members) == (
                want_account.aggregates,
                want_account.active_members,
                want_account.members,
            )
            assert shared.score_account(account_id) == reference.score_account(account_id)
    reference.close()


@pytest.mark.slow
def test_four_processes_deciding_at_once_show_one_widget(
    clock: pqlsdk.FixedClock, redis_store_url: str
) -> None:
    """Four processes on one Redis store, same instant, one hot user: exactly one widget."""
    hot_client(clock, redis_store_url).close()
    start = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DECIDER, redis_store_url, str(PLAYBOOK), str(start)],
            stdout=subprocess.PIPE,
            text=True,
            env=untraced_env(),
        )
        for _ in range(4)
    ]
    answers = sorted(proc.communicate(timeout=60)[0].strip() for proc in procs)
    assert answers == ["none", "none", "none", "upgrade_widget"]
