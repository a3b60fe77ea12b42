"""``gunicorn --preload -w 2`` with a module-level client: every event arrives, none twice.

No hooks are needed, and this test keeps it so: the client is created (and
tracks one event) in the master before it forks; each sync worker resets the
client's threads and queue after the fork (``os.register_at_fork``) and starts
its own sender on its first event. On SIGTERM the master stops the workers
gracefully; a sync worker leaves through ``sys.exit(0)``, so pqlsdk's ``atexit``
drain runs in every worker, and in the master for its own event. Batches wait
for 10,000 messages or an hour, so only those drains can deliver.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

pytest.importorskip("gunicorn")

from tests.delivery.collector import Collector

GUNICORN = Path(sys.executable).with_name("gunicorn")

APP_MODULE = """
    import json, os, time
    import pqlsdk

    client = pqlsdk.Client(
        store=os.environ["PQLSDK_TEST_STORE"],
        endpoint=os.environ["PQLSDK_TEST_URL"],
        write_key=os.environ["PQLSDK_TEST_KEY"],
        delivery=pqlsdk.Delivery(flush_at=10_000, flush_interval=3600),
    )
    client.track("master", "app_loaded", {"pid": os.getpid()})  # before the fork: sent once

    def app(environ, start_response):
        request = environ["QUERY_STRING"]
        client.track("visitor", "request_served", {"request": request, "pid": os.getpid()})
        time.sleep(0.01)  # a sync worker is busy meanwhile: the other one accepts
        body = json.dumps({"request": request, "pid": os.getpid()}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
"""


class Gunicorn:
    """A gunicorn master in its own session, its output in a log file."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.log = folder / "gunicorn.log"
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(
            [
                str(GUNICORN),
                "--preload",
                "--workers",
                "2",
                "--worker-class",
                "sync",
                "--bind",
                "127.0.0.1:0",
                "--graceful-timeout",
                "15",
                "--no-control-socket",
                "pqlsdk_gunicorn_app:app",
            ],
            cwd=folder,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group: kill() reaches the workers too
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, done: Callable[[], bool], what: str, timeout: float = 15) -> None:
        """Poll ``done``; fail with gunicorn's output if it dies or time runs out."""
        deadline = time.monotonic() + timeout
        while not done():
            if self.proc.poll() is not None:
                pytest.fail(f"gunicorn exited ({self.proc.returncode}) before {what}:\n{self}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout} s:\n{self}")
            time.sleep(0.05)

    def url(self) -> str:
        """The address the master bound (port 0 picks a free one), from its log."""
        found: list[str] = []

        def listening() -> bool:
            found.extend(re.findall(r"Listening at: (http://127\.0\.0\.1:\d+)", self.output()))
            return bool(found)

        self.wait_for(listening, "listening socket")
        return found[0]

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM the master (a graceful stop) and wait for it."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"gunicorn did not stop within {timeout} s of SIGTERM:\n{self}")

    def kill(self) -> None:
        """Kill the whole process group (this test started it), if still there."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._out.close()

    def __str__(self) -> str:
        return f"--- gunicorn output ---\n{self.output()}"


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as started:
        yield started


def serve(url: str, requests: range) -> dict[str, int]:
    """Send ``requests`` four at a time; return each request's id -> the worker's pid."""

    with httpx.Client(base_url=url, timeout=10) as http:

        def get(n: int) -> tuple[str, int]:
            answer = http.get(f"/?r{n}").raise_for_status().json()
            return answer["request"], answer["pid"]

        with ThreadPoolExecutor(4) as pool:
            return dict(pool.map(get, requests))


@pytest.mark.slow
@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_preload_workers_deliver_every_event_on_graceful_stop(
    tmp_path: Path, collector: Collector, store: str
) -> None:
    """Both workers served; after SIGTERM to the master the collector has every event once.

    A memory store's queue lives in each process; a SQLite store's outbox is the
    file the master and the workers share.
    """
    (tmp_path / "pqlsdk_gunicorn_app.py").write_text(textwrap.dedent(APP_MODULE))
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV")}  # no tracing
    env.update(
        PYTHONPATH=str(tmp_path),
        PQLSDK_TEST_STORE="memory://" if store == "memory" else f"sqlite:///{tmp_path}/pqlsdk.db",
        PQLSDK_TEST_URL=collector.url,
        PQLSDK_TEST_KEY=collector.write_key,
    )
    server = Gunicorn(tmp_path, env)
    try:
        url = server.url()
        served: dict[str, int] = {}
        for start in range(0, 400, 40):  # until both workers served (almost always at once)
            served |= serve(url, range(start, start + 40))
            if len(set(served.values())) == 2:
                break
        assert collector.messages == [], "sent before the stop"
        assert server.stop() == 0, str(server)
    finally:
        server.kill()
    assert len(set(served.values())) == 2, f"one worker served every request:\n{server}"
    events = [m for m in collector.messages if m.get("event") == "request_served"]
    assert len(events) == len(served), f"lost or doubled events:\n{server}"
    assert {m["properties"]["request"]: m["properties"]["pid"] for m in events} == served
    loaded = [m for m in collector.messages if m.get("event") == "app_loaded"]
    assert [m["properties"]["pid"] for m in loaded] == [server.proc.pid]
    assert len(collector.unique_message_ids()) == len(collector.messages)
