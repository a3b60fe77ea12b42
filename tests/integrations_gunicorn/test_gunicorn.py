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

import re
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

pytest.importorskip("gunicorn")

from tests.delivery.collector import Collector
from tests.processes import Process, untraced_env

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


class Gunicorn(Process):
    """A gunicorn master serving the app module in ``folder``."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        args = ["--preload", "--workers", "2", "--worker-class", "sync", "--bind", "127.0.0.1:0"]
        args += ["--graceful-timeout", "15", "--no-control-socket", "pqlsdk_gunicorn_app:app"]
        super().__init__("gunicorn", [str(GUNICORN), *args], folder, env)

    def url(self) -> str:
        """The address the master bound (port 0 picks a free one), from its log."""
        found: list[str] = []

        def listening() -> bool:
            found.extend(re.findall(r"Listening at: (http://127\.0\.0\.1:\d+)", self.output()))
            return bool(found)

        self.wait_for(listening, "listening socket")
        return found[0]


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
    env = untraced_env(
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
