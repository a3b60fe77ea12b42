"""A server or worker the test starts as a subprocess: its own session, its output in a file.

For the tests that run pqlsdk inside real hosts (gunicorn, a Celery worker):
the process gets its own process group so ``kill()`` reaches every child it
forked, and each failure message carries the process's whole output.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def untraced_env(**extra: str) -> dict[str, str]:
    """This environment without coverage's variables (subprocesses run untraced), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV")}
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server the test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Process:
    """A subprocess in its own session, logging to ``folder/<name>.log``."""

    def __init__(self, name: str, args: list[str], folder: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = folder / f"{name}.log"
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(
            args,
            cwd=folder,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group: kill() reaches the children too
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, done: Callable[[], bool], what: str, timeout: float = 15) -> None:
        """Poll ``done``; fail with the process's output if it dies or time runs out."""
        deadline = time.monotonic() + timeout
        while not done():
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited ({self.proc.returncode}) before {what}:\n{self}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout} s:\n{self}")
            time.sleep(0.05)

    def children(self) -> set[int]:
        """The pids of this process's children that still run (zombies left out); Linux only."""
        found: set[int] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # it ended while we looked
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == self.proc.pid and state != "Z":
                found.add(int(entry.name))
        return found

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM the process (a graceful stop) and wait for it."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} did not stop within {timeout} s of SIGTERM:\n{self}")

    def kill(self) -> None:
        """Kill the whole process group (this test started it), if still there."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._out.close()

    def __str__(self) -> str:
        return f"--- {self.name} output ---\n{self.output()}"
