"""scripts/test-redis.sh, which scripts/test.sh sources: a Redis for the tests, or a throwaway one.

Each test sources the script in a child bash (as test.sh does, under ``set -euo
pipefail``), with ``PQLSDK_TEST_REDIS_URL`` naming a server that answers or a
port where nothing listens, and looks at what the shell saw and what it left.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from ..conftest import ROOT
from ..processes import untraced_env
from .conftest import Server

SCRIPT = """set -euo pipefail
source scripts/test-redis.sh
echo "url=$PQLSDK_TEST_REDIS_URL"
echo "bench=${PQLSDK_BENCH_REDIS_URL:-}"
echo "pid=${throwaway_redis_pid:-}"
echo "dir=${throwaway_redis_dir:-}"
"$VENV_PYTHON" -c 'import redis, sys; print("ping", redis.Redis.from_url(sys.argv[1]).ping())' \\
    "$PQLSDK_TEST_REDIS_URL"
exit 3
"""


def _source(url: str, **extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Source the script with the tests' URL set to ``url``; return the run and what it printed."""
    env = untraced_env(PQLSDK_TEST_REDIS_URL=url, VENV_PYTHON=sys.executable, **extra)
    env.pop("PQLSDK_BENCH_REDIS_URL", None)
    run = subprocess.run(
        ["bash", "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    seen = dict(re.findall(r"^(\w+)=(.*)$", run.stdout, re.MULTILINE))
    return run, seen


def _unused_url() -> str:
    """A Redis URL on a port of 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/15"


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.ConnectionError:
        return False


def test_a_server_that_answers_is_used_as_it_is(server: Server) -> None:
    """A reachable server: the URL is kept, nothing is started, the shell's status is its own."""
    run, seen = _source(server.url())
    assert run.returncode == 3, run.stderr  # the EXIT trap, if any, keeps the status
    assert seen["url"] == server.url()
    assert seen["pid"] == ""
    assert "ping True" in run.stdout
    assert f"== Redis at {server.url()}" in run.stdout


def test_with_no_server_a_throwaway_one_serves_the_run_and_stops(tmp_path: Path) -> None:
    """Nothing at the URL: a redis-server on a free port answers inside, and is gone after."""
    if not Path(os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")).exists():
        pytest.skip("no redis-server to start")
    unused = _unused_url()
    run, seen = _source(unused)
    try:
        assert run.returncode == 3, run.stdout + run.stderr
        assert seen["url"] != unused
        assert seen["url"].startswith("redis://127.0.0.1:")
        assert seen["bench"] == seen["url"]  # the bench's stores case uses it too
        assert "ping True" in run.stdout
        assert "started a throwaway redis-server" in run.stdout
        assert not _answers(seen["url"])  # stopped when the shell exited
        assert not Path(seen["dir"]).exists()
        assert not Path(f"/proc/{seen['pid']}").exists()
    finally:
        if seen.get("pid") and Path(f"/proc/{seen['pid']}").exists():
            os.kill(int(seen["pid"]), 9)  # only if the script left it behind


def test_with_no_server_and_no_binary_the_tests_are_told_they_skip() -> None:
    """No server and no redis-server: the URL is kept and the script says the tests skip."""
    unused = _unused_url()
    run, seen = _source(unused, REDIS_SERVER="/nonexistent/redis-server")
    assert seen["url"] == unused
    assert seen["pid"] == ""
    assert "the Redis store's tests skip" in run.stdout
    assert run.returncode == 1  # the final ping fails: there is no server, as said
