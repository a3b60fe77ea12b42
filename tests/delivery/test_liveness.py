"""Who holds an outbox lease, and whether it still runs: pids, start times, hosts, the store.

The restart tests (``test_restart.py``) drive this with real killed and live
processes; these check each rule of ``pqlsdk._liveness`` on its own.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pqlsdk import _liveness as liveness
from pqlsdk.stores.sqlite import SQLiteStore


def wait_until(done: Callable[[], bool], what: str, timeout: float = 20) -> None:
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < timeout, f"no {what} within {timeout} s"
        time.sleep(0.02)


def dead_pid() -> int:
    """The pid of a process that ran and was reaped (it may be reused later; rarely so soon)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_holder_is_judged_by_pid_start_time_and_host() -> None:
    """Dead pid, zombie or reused pid (other start time): gone. Self, other host, junk: not."""
    me = liveness.identity()
    host, pid, start = me.split("|")
    assert pid == str(os.getpid())
    assert not liveness.gone(me)
    assert liveness.gone(f"{host}|{pid}|{int(start) + 1}")  # this pid, another process's start
    assert liveness.gone(f"{host}|{dead_pid()}|{start}")
    assert not liveness.gone(f"another-host|{dead_pid()}|{start}")
    assert not liveness.gone("junk")
    assert not liveness.gone(f"{host}|x|{start}")
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_until(
        lambda: (Path("/proc") / str(zombie.pid) / "stat").read_text().split(") ")[1][0] == "Z",
        "zombie",
    )
    assert liveness.gone(f"{host}|{zombie.pid}|{start}")
    zombie.wait()


def test_without_procfs_a_holder_is_judged_by_host_name_and_kill(tmp_path: Path) -> None:
    """No /proc (macOS): the host name names the host, and kill(pid, 0) finds the process."""
    me = liveness.identity(proc=tmp_path)
    assert me.endswith(f"|{os.getpid()}|")
    assert not liveness.gone(me, proc=tmp_path)
    assert not liveness.gone(me.replace(f"|{os.getpid()}|", "|1|"), proc=tmp_path)
    assert liveness.gone(me.replace(f"|{os.getpid()}|", f"|{dead_pid()}|"), proc=tmp_path)


def test_the_store_ends_only_dead_holders_leases(tmp_path: Path) -> None:
    """Rows of a dead holder come free; a live holder's and another host's stay leased."""
    store = SQLiteStore(tmp_path / "s.db")
    store.enqueue([b"1", b"2", b"3", b"4"])
    host, _, start = liveness.identity().split("|")
    dead = f"{host}|{dead_pid()}|{start}"
    later = time.time() + 60
    with sqlite3.connect(tmp_path / "s.db") as conn:
        for seq, holder in [(1, dead), (2, dead), (3, liveness.identity()), (4, f"h|1|{start}")]:
            conn.execute(
                "UPDATE outbox SET lease_until = ?, holder = ? WHERE seq = ?", (later, holder, seq)
            )
    assert store.take_over_leases(time.time()) == {dead: 2}
    assert store.take_over_leases(time.time()) == {}
    taken = store.lease(10, 1000, now=time.time(), until=time.time() + 60)
    assert [body for _, body in taken] == [b"1", b"2"]
    store.close()
