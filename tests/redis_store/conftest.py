"""A Redis store per test: a unique key prefix on the test server, deleted afterwards.

The server comes from ``PQLSDK_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``).
When it is unreachable the tests skip with the reason, except under ``CI=true``,
where a missing server fails the run. The outage tests start a server of their
own (``server``) with ``redis-server`` from the PATH.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

redis = pytest.importorskip("redis")

from pqlsdk.stores.redis import RedisStore  # noqa: E402 - after the extra is known to be there
from pqlsdk.stores.redis._write import STEPS, Write  # noqa: E402

from ..conftest import unavailable  # noqa: E402

DEFAULT_URL = "redis://127.0.0.1:6379/15"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test server's URL, checked once: skip (or fail under CI) when it does not answer."""
    url = os.environ.get("PQLSDK_TEST_REDIS_URL", DEFAULT_URL)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        unavailable(f"no Redis server at {url} ({exc}); set PQLSDK_TEST_REDIS_URL")
    return url


@pytest.fixture
def make_url(redis_url: str) -> Iterator[Callable[[], str]]:
    """Hand out store URLs with fresh prefixes; delete every key under them afterwards.

    Their timeout is 5 s, not the request path's 100 ms: a test machine busy
    with four writer processes must not turn into an outage (the outage tests
    start a server of their own and set their own timeouts).
    """
    prefixes: list[str] = []

    def make() -> str:
        prefixes.append(f"pqlsdk-test-{uuid.uuid4().hex[:12]}")
        separator = "&" if "?" in redis_url else "?"
        return f"{redis_url}{separator}prefix={prefixes[-1]}&timeout=5"

    yield make
    client = redis.Redis.from_url(redis_url)
    for prefix in prefixes:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    client.close()


@pytest.fixture
def redis_store_url(make_url: Callable[[], str]) -> str:
    """One fresh store URL."""
    return make_url()


@pytest.fixture
def store(redis_store_url: str) -> Iterator[RedisStore]:
    """The Redis store, under the name the shared store tests (tests/test_state.py) use."""
    opened = RedisStore.from_url(redis_store_url)
    yield opened
    opened.close()


class Died(BaseException):
    """The writer's process died: no handler of the store's catches it, as none runs on a kill."""


@contextmanager
def when_a_writer_has_done(step: str, then: Callable[[], None]) -> Iterator[None]:
    """Run ``then`` once, in the first write that has done ``step`` of a user's write.

    The seam is ``Write.after``: ``then`` raising ``Died`` plays a process that
    dies there (``dies_after``); ``then`` writing plays another writer of the
    same user in between.
    """
    assert step in STEPS
    done: list[str] = []

    def after(self: Write, reached: str) -> None:
        if reached == step and not done:
            done.append(reached)
            then()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Write, "after", after)
        yield
    assert done == [step], f"no write reached {step!r}"


@contextmanager
def dies_after(step: str) -> Iterator[None]:
    """Play a writer whose process dies once its write has done ``step``."""

    def die() -> None:
        raise Died

    with pytest.raises(Died), when_a_writer_has_done(step, die):
        yield


class Server:
    """A redis-server of the test's own, on a free port, that the test stops and starts.

    It keeps no persistence of its own (``--save '' --appendonly no``); ``stop()``
    saves a snapshot on the way out (``SAVE``, then SIGTERM) and ``start()`` loads it,
    as a production server with persistence would come back.
    """

    def __init__(self, directory: Path, *options: str) -> None:
        self.directory = directory
        self.options = options  # more of redis-server's command line
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, **options: object) -> str:
        """The store URL for this server, with pqlsdk's query parameters."""
        query = "&".join(f"{key}={value}" for key, value in options.items())
        return f"redis://127.0.0.1:{self.port}/0" + (f"?{query}" if query else "")

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        client.close()

    def stop(self) -> None:
        """Save a snapshot and stop (the data comes back at the next start)."""
        assert self.process is not None
        client = redis.Redis(port=self.port)
        client.save()
        client.close()
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process = None

    def pause(self) -> None:
        """Freeze the server: connections stay open, replies never come (a slow server)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@contextmanager
def own_server(directory: Path, *options: str) -> Iterator[Server]:
    """Run a redis-server of the test's own (skipped, or failed under CI, without one)."""
    if not Path(REDIS_SERVER).exists():
        unavailable(f"no {REDIS_SERVER} to start a server of the test's own")
    started = Server(directory, *options)
    started.start()
    try:
        yield started
    finally:
        started.kill()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A running redis-server of this test's own."""
    with own_server(tmp_path) as started:
        yield started


@pytest.fixture
def server_without_info(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own that refuses INFO (renamed away, as some hosted ones do)."""
    with own_server(tmp_path, "--rename-command", "INFO", "") as started:
        yield started


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Server]:
    """A one-node Redis Cluster of this test's own, holding every slot.

    A cluster node refuses a script whose keys are in two slots (``CROSSSLOT``),
    however many of them it holds.
    """
    # The cluster bus listens on a port of its own: by default the server's plus 10,000,
    # which a free port above 55535 does not have (the server then refuses to start).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        bus = probe.getsockname()[1]
    with own_server(tmp_path, "--cluster-enabled", "yes", "--cluster-port", str(bus)) as started:
        _hold_every_slot(started)
        yield started


def _hold_every_slot(started: Server) -> None:
    client = redis.Redis(port=started.port)
    client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    deadline = time.monotonic() + 10
    while client.cluster("INFO")["cluster_state"] != "ok":
        assert time.monotonic() < deadline, "the one-node cluster never came up"
        time.sleep(0.05)
    client.close()
