"""A real Celery worker (prefork pool, 2 processes, filesystem broker) delivering to a collector.

The client is created at import of the tasks module, in the worker's main
process, before the pool forks; batches wait for 10,000 messages or an hour, so
only pqlsdk's hooks can deliver during the test. Billiard ends pool processes
with ``os._exit()``: without ``install()`` this test receives nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")

from celery import Celery

from tests.delivery.collector import Collector

TASKS = 20
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


class Worker:
    """A ``celery worker`` subprocess in its own session, its output in a log file."""

    def __init__(self, folder: Path, env: dict[str, str], options: list[str]) -> None:
        self.log = folder / "worker.log"
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(
            [
                str(CELERY),
                "-A",
                "pqlsdk_worker_tasks",
                "worker",
                "-P",
                "prefork",
                "-c",
                "2",
                "-n",
                "pqlsdk-test@localhost",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "info",
                *options,
            ],
            cwd=folder,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group: kill() reaches the pool too
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, done: Callable[[], bool], what: str, timeout: float = 15) -> None:
        """Poll ``done``; fail with the worker's output if it dies or time runs out."""
        deadline = time.monotonic() + timeout
        while not done():
            if self.proc.poll() is not None:
                pytest.fail(f"the worker exited ({self.proc.returncode}) before {what}:\n{self}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout} s:\n{self}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM the main process (a warm shutdown) and wait for it."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not stop within {timeout} s of SIGTERM:\n{self}")

    def kill(self) -> None:
        """Kill the worker's whole process group (this test started it), if still there."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._out.close()

    def __str__(self) -> str:
        return f"--- celery worker output ---\n{self.output()}"


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as started:
        yield started


def start_worker(tmp_path: Path, collector: Collector, mode: str, options: list[str]) -> Worker:
    for name in ("broker", "control", "done"):
        (tmp_path / name).mkdir()
    module = textwrap.dedent(TASKS_MODULE).replace("BROKER", repr(broker(tmp_path)))
    (tmp_path / "pqlsdk_worker_tasks.py").write_text(module)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV")}  # no tracing
    env.update(
        PYTHONPATH=str(tmp_path),
        PQLSDK_TEST_DIR=str(tmp_path),
        PQLSDK_TEST_URL=collector.url,
        PQLSDK_TEST_KEY=collector.write_key,
        PQLSDK_TEST_MODE=mode,
    )
    return Worker(tmp_path, env, options)


def send_tasks(folder: Path) -> None:
    """Queue ``TASKS`` tasks through the broker, as a web app would."""
    app = Celery("sender", set_as_current=False)
    app.conf.update(broker(folder))
    try:
        for n in range(TASKS):
            app.send_task("track", args=(n,))
    finally:
        app.close()


def task_pids(folder: Path) -> dict[int, int]:
    return {int(p.name): int(p.read_text()) for p in (folder / "done").iterdir() if p.read_text()}


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
        ("exit", ["--max-tasks-per-child", "5"], 4),
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
        assert worker.stop() == 0, str(worker)
    finally:
        worker.kill()
    pids = task_pids(tmp_path)
    assert received(collector) == pids, str(worker)
    assert len(set(pids.values())) >= processes, f"too few pool processes ran tasks:\n{worker}"
    assert os.getpid() not in pids.values()
