"""A real Celery worker (prefork pool, 2 processes, filesystem broker) delivering to a collector.

The client is created at import of the tasks module, in the worker's main
process, before the pool forks; batches wait for 10,000 messages or an hour, so
only pqlsdk's hooks can deliver during the test. Billiard ends pool processes
with ``os._exit()``: without ``install()`` this test receives nothing.

With recycled processes the stop waits until billiard has replaced every process
that reached its task limit. Its supervisor thread checks that the pool still
runs, then forks the replacement; a warm shutdown that lands in between sends
its "no more work" sentinels to the processes it sees, so the new process never
gets one and the worker's main process waits for it forever (billiard 4.3.2:
``Pool._repopulate_pool`` against ``Pool.close``). That is the host's bug, not
pqlsdk's, and the test is not about it.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")

from celery import Celery

from tests.delivery.collector import Collector
from tests.processes import Process, untraced_env

TASKS = 20
TASKS_PER_CHILD = 5
CELERY = Path(sys.executable).with_name("celery")

TASKS_MODULE = """
    import os, pathlib, time
    import pqlsdk
    from celery import Celery
    from pqlsdk.integrations import celery as pqlsdk_celery

    folder = pathlib.Path(os.environ["PQLSDK_TEST_DIR"])
    app = Celery("pqlsdk_worker_tasks")
    app.conf.update(BROKER)
    client = pqlsdk.Client(
        store="memory://",
        endpoint=os.environ["PQLSDK_TEST_URL"],
        write_key=os.environ["PQLSDK_TEST_KEY"],
        delivery=pqlsdk.Delivery(flush_at=10_000, flush_interval=3600),
    )
    if os.environ["PQLSDK_TEST_MODE"] == "after_task":
        pqlsdk_celery.install(app, flush_after_task=client)
    else:
        pqlsdk_celery.install(app)

    @app.task(name="track")
    def track(n):
        client.track(f"u{n}", "task_ran", {"n": n, "pid": os.getpid()})
        time.sleep(0.05)  # long enough that both pool processes get tasks
        (folder / "done" / str(n)).write_text(str(os.getpid()))
"""


def broker(folder: Path) -> dict[str, Any]:
    """Celery settings for kombu's filesystem transport in ``folder``; no result backend."""
    messages = str(folder / "broker")
    return {
        "broker_url": "filesystem://",
        "broker_transport_options": {
            "data_folder_in": messages,
            "data_folder_out": messages,
            "control_folder": str(folder / "control"),
            "polling_interval": 0.05,
        },
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,
        "worker_hijack_root_logger": False,
    }


class Worker(Process):
    """A ``celery worker`` (prefork pool, 2 processes) for the tasks module in ``folder``."""

    def __init__(self, folder: Path, env: dict[str, str], options: list[str]) -> None:
        args = ["-A", "pqlsdk_worker_tasks", "worker", "-P", "prefork", "-c", "2"]
        args += ["-n", "pqlsdk-test@localhost", "--without-gossip", "--without-mingle"]
        args += ["--without-heartbeat", "-l", "info", *options]
        super().__init__("celery worker", [str(CELERY), *args], folder, env)


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as started:
        yield started


def start_worker(tmp_path: Path, collector: Collector, mode: str, options: list[str]) -> Worker:
    for name in ("broker", "control", "done"):
        (tmp_path / name).mkdir()
    module = textwrap.dedent(TASKS_MODULE).replace("BROKER", repr(broker(tmp_path)))
    (tmp_path / "pqlsdk_worker_tasks.py").write_text(module)
    env = untraced_env(
        PYTHONPATH=str(tmp_path),
        PQLSDK_TEST_DIR=str(tmp_path),
        PQLSDK_TEST_URL=collector.url,
        PQLSDK_TEST_KEY=collector.write_key,
        PQLSDK_TEST_MODE=mode,
    )
    return Worker(tmp_path, env, options)


def send_tasks(folder: Path, count: int = TASKS) -> None:
    """Queue ``count`` tasks through the broker, as a web app would."""
    app = Celery("sender", set_as_current=False)
    app.conf.update(broker(folder))
    try:
        for n in range(count):
            app.send_task("track", args=(n,))
    finally:
        app.close()


def task_pids(folder: Path) -> dict[int, int]:
    return {int(p.name): int(p.read_text()) for p in (folder / "done").iterdir() if p.read_text()}


def pool_settled(worker: Worker, folder: Path) -> bool:
    """Whether both pool processes run and neither will end by itself (its task limit reached).

    Then billiard has nothing left to replace, so a stop cannot race its supervisor.
    """
    done = Counter(task_pids(folder).values())
    running = worker.children()
    return len(running) == 2 and all(done[pid] < TASKS_PER_CHILD for pid in running)


def received(collector: Collector) -> dict[int, int]:
    """Task number -> pid of every delivered ``task_ran`` event (duplicates would show)."""
    events = [m for m in collector.messages if m.get("event") == "task_ran"]
    assert len(events) == len({m["properties"]["n"] for m in events}), "an event came twice"
    return {m["properties"]["n"]: m["properties"]["pid"] for m in events}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "options", "processes"),
    [
        ("exit", [], 2),
        ("after_task", [], 2),
        ("exit", ["--max-tasks-per-child", str(TASKS_PER_CHILD)], TASKS // TASKS_PER_CHILD),
    ],
    ids=["at-exit", "after-each-task", "recycled-processes"],
)
def test_every_task_event_reaches_the_collector(
    tmp_path: Path, collector: Collector, mode: str, options: list[str], processes: int
) -> None:
    """Pool processes track; after a warm shutdown the collector has every event, once.

    At exit: nothing is sent until the pool processes end. After each task: each
    event is delivered before its task finishes, so all are there before the
    stop. Recycled processes (five tasks each) deliver as each one ends.
    """
    worker = start_worker(tmp_path, collector, mode, options)
    try:
        send_tasks(tmp_path)
        worker.wait_for(lambda: len(task_pids(tmp_path)) == TASKS, f"{TASKS} tasks done")
        if mode == "after_task":
            worker.wait_for(lambda: len(received(collector)) == TASKS, "events", timeout=5)
        elif not options:
            assert received(collector) == {}, "sent before the pool processes ended"
        else:  # see the module's docstring
            worker.wait_for(lambda: pool_settled(worker, tmp_path), "replaced pool processes")
        assert worker.stop() == 0, str(worker)
    finally:
        worker.kill()
    pids = task_pids(tmp_path)
    assert received(collector) == pids, str(worker)
    assert len(set(pids.values())) >= processes, f"too few pool processes ran tasks:\n{worker}"
    assert os.getpid() not in pids.values()


@pytest.mark.slow
def test_replacement_processes_drain_in_full_at_a_warm_shutdown(
    tmp_path: Path, collector: Collector
) -> None:
    """Processes forked to replace recycled ones deliver at the stop, even after a retry.

    The first two processes run five tasks each and are replaced; the two left
    go to the replacements, which hold their events until the stop. Celery has
    the kernel SIGKILL a pool process when its parent *thread* ends, and billiard
    forks replacements from its supervisor thread, which ends within a second of
    a warm shutdown: a drain still waiting to retry would die with its events.
    """
    tasks = 2 * TASKS_PER_CHILD + 2
    options = ["--max-tasks-per-child", str(TASKS_PER_CHILD)]
    worker = start_worker(tmp_path, collector, "exit", options)
    try:
        send_tasks(tmp_path, tasks)
        worker.wait_for(lambda: len(task_pids(tmp_path)) == tasks, f"{tasks} tasks done")
        worker.wait_for(lambda: pool_settled(worker, tmp_path), "replaced pool processes")
        collector.set_status(503, retry_after="2", times=2)  # each drain's first attempt
        assert worker.stop() == 0, str(worker)
    finally:
        worker.kill()
    pids = task_pids(tmp_path)
    assert received(collector) == pids, str(worker)
    assert len(set(pids.values())) >= 3, f"no replacement process ran a task:\n{worker}"
