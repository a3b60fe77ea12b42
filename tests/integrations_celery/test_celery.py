"""pqlsdk.integrations.celery in this process: real Celery apps and signals, a real collector.

The clients here send nothing on their own during a test (a batch waits for
10,000 messages or an hour), so whatever reaches the collector was delivered by
the hook under test.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("celery")

from celery import Celery, signals

import pqlsdk
from pqlsdk.integrations import celery as pqlsdk_celery
from tests.delivery.collector import Collector

QUIET = pqlsdk.Delivery(flush_at=10_000, flush_interval=3600)


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as started:
        yield started


@pytest.fixture
def client(collector: Collector) -> Iterator[pqlsdk.Client]:
    with pqlsdk.Client(
        store="memory://", endpoint=collector.url, write_key=collector.write_key, delivery=QUIET
    ) as made:
        yield made


@pytest.fixture
def app() -> Iterator[Celery]:
    """A Celery app that runs tasks eagerly, in this thread, with its signals."""
    made = Celery("pqlsdk_tests", set_as_current=False)
    made.conf.update(task_always_eager=True, task_store_eager_result=False)
    yield made
    made.close()


@pytest.fixture(autouse=True)
def uninstalled() -> Iterator[None]:
    """Every test starts and ends without pqlsdk's hooks connected."""
    pqlsdk_celery.Installed(flushes_after_task=False).uninstall()
    yield
    pqlsdk_celery.Installed(flushes_after_task=False).uninstall()


def tracking_task(app: Celery, client: pqlsdk.Client, name: str = "track") -> Any:
    @app.task(name=name)  # type: ignore[untyped-decorator]
    def track(n: int) -> int:
        client.track(f"u{n}", "task_ran", {"n": n})
        return n

    return track


def delivered(collector: Collector) -> list[int]:
    return sorted(m["properties"]["n"] for m in collector.messages)


def test_process_shutdown_delivers_what_the_process_tracked(
    collector: Collector, client: pqlsdk.Client
) -> None:
    """The signal billiard sends before ``os._exit()`` drains every client's outbox."""
    pqlsdk_celery.install()
    for n in range(3):
        client.track(f"u{n}", "task_ran", {"n": n})
    signals.worker_process_shutdown.send(sender="w1@localhost", pid=1, exitcode=0)
    assert delivered(collector) == [0, 1, 2]


def test_without_install_process_shutdown_delivers_nothing(
    collector: Collector, client: pqlsdk.Client
) -> None:
    """Uninstalled, the signal leaves the events waiting (here: until the fixture's close)."""
    pqlsdk_celery.install().uninstall()
    client.track("u0", "task_ran", {"n": 0})
    assert client.stats().recorded == 1  # applied: in the outbox, waiting for a batch
    signals.worker_process_shutdown.send(sender="w1@localhost", pid=1, exitcode=0)
    assert collector.messages == []


def test_flush_after_task_delivers_before_the_call_returns(
    app: Celery, collector: Collector, client: pqlsdk.Client
) -> None:
    installed = pqlsdk_celery.install(app, flush_after_task=client)
    tracking_task(app, client).apply(args=(7,))
    assert installed.flushes_after_task
    assert delivered(collector) == [7]


def test_flush_after_task_takes_a_function_returning_the_client(
    app: Celery, collector: Collector, client: pqlsdk.Client
) -> None:
    current: list[pqlsdk.Client] = []
    pqlsdk_celery.install(flush_after_task=lambda: current[0] if current else None)
    task = tracking_task(app, client)
    task.apply(args=(1,))  # no client yet: nothing to flush, nothing raised
    assert collector.messages == []
    current.append(client)
    task.apply(args=(2,))
    assert delivered(collector) == [1, 2]


def test_flush_after_task_only_for_the_given_apps_tasks(
    app: Celery, collector: Collector, client: pqlsdk.Client
) -> None:
    other = Celery("other", set_as_current=False)
    other.conf.update(task_always_eager=True, task_store_eager_result=False)
    pqlsdk_celery.install(app, flush_after_task=client)
    tracking_task(other, client, "other.track").apply(args=(1,))
    assert collector.messages == []
    tracking_task(app, client).apply(args=(2,))
    assert delivered(collector) == [1, 2]
    other.close()


def test_a_failing_flush_never_reaches_the_task(
    app: Celery, client: pqlsdk.Client, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> pqlsdk.Client:
        raise RuntimeError("no client for you")

    pqlsdk_celery.install(app, flush_after_task=broken)
    with caplog.at_level(logging.WARNING, logger="pqlsdk"):
        result = tracking_task(app, client).apply(args=(3,))
    assert (result.successful(), result.result) == (True, 3)
    assert [r.getMessage() for r in caplog.records if r.name == "pqlsdk"] == [
        "pqlsdk: flush after a Celery task failed: RuntimeError"
    ]


def test_installing_again_replaces_the_hooks(
    app: Celery, collector: Collector, client: pqlsdk.Client
) -> None:
    pqlsdk_celery.install(app, flush_after_task=client)
    installed = pqlsdk_celery.install(app)
    tracking_task(app, client).apply(args=(4,))
    assert not installed.flushes_after_task
    assert collector.messages == []


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"app": "tasks"}, "app must be a Celery app or None, got str"),
        ({"flush_after_task": "client"}, "flush_after_task must be a pqlsdk.Client"),
        ({"timeout": 0}, "timeout must be positive, got 0"),
        ({"timeout": float("nan")}, "timeout must be positive, got nan"),
    ],
)
def test_setup_mistakes_fail_at_install(options: dict[str, Any], text: str) -> None:
    with pytest.raises(pqlsdk.ConfigError, match=text):
        pqlsdk_celery.install(**options)
    assert not signals.worker_process_shutdown.has_listeners()


def test_without_celery_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "celery", None)  # what a missing package looks like
    monkeypatch.delitem(sys.modules, "pqlsdk.integrations.celery")
    with pytest.raises(ImportError, match=r"pip install 'pqlsdk\[celery\]'"):
        importlib.import_module("pqlsdk.integrations.celery")
