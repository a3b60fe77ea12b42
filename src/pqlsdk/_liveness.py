"""Which process holds an outbox lease, and whether that process still runs.

A sender leases outbox rows so that two senders never send the same rows at
once; a lease also ends by itself (``Delivery.lease``), for senders that die.
Waiting for that end is what made a restart after a crash deliver nothing for
a minute. So a lease names its holder, and a process opening the outbox takes
over at once the leases of holders it can prove dead.

Proof, never a guess: a pid is only meaningful on the same running kernel and
in the same pid namespace (containers sharing a volume have their own), so a
holder is named by the boot id, the pid namespace, the pid and the process's
start time (``/proc/<pid>/stat`` field 22, in clock ticks since boot). The
holder is dead when, on this kernel and namespace, that pid no longer exists,
is a zombie, or belongs to a process that started at another time (the pid was
reused). A holder from another host, kernel or namespace is never judged: its
lease ends by itself. Without ``/proc`` (macOS) the host is the host name and a
pid that ``kill(pid, 0)`` cannot find is dead; pid reuse is not detected there.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Final

__all__ = ["gone", "identity"]

_PROC: Final = Path("/proc")
_SEP: Final = "|"

_cache: dict[tuple[int, Path], str] = {}  # (pid, proc root) -> identity; a fork has a new pid


def identity(*, proc: Path = _PROC) -> str:
    """Name this process as a lease holder: ``host|pid|start``.

    ``proc`` is where procfs is mounted (tests point it elsewhere).
    """
    pid = os.getpid()
    key = (pid, proc)
    if key not in _cache:
        _cache[key] = _SEP.join((_host(proc), str(pid), _start(proc, pid) or ""))
    return _cache[key]


def gone(holder: str, *, proc: Path = _PROC) -> bool:
    """Tell whether ``holder`` (an ``identity()``) is provably no longer running.

    False for holders on another host, kernel or pid namespace, for live ones,
    and for anything unreadable: their leases simply run out.
    """
    parts = holder.split(_SEP)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    host, pid, start = parts[0], int(parts[1]), parts[2]
    if host != _host(proc):
        return False
    if not start:  # no procfs when the holder named itself: ask the kernel
        return not _signalable(pid)
    return _start(proc, pid) != start


def _host(proc: Path) -> str:
    """Where pids are comparable: boot id and pid namespace, or the host name without procfs."""
    try:
        boot = (proc / "sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink(proc / "self/ns/pid")
    except OSError:
        return socket.gethostname()
    return f"{boot}:{namespace}"


def _start(proc: Path, pid: int) -> str | None:
    """Read the process's start time in clock ticks since boot; None if gone or a zombie."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    fields = stat[stat.rindex(")") + 2 :].split()
    state, start = fields[0], fields[19]  # fields 3 and 22
    return None if state in {"Z", "X"} else start


def _signalable(pid: int) -> bool:
    """Whether a process with this pid exists (signal 0 checks without sending)."""
    try:
        with contextlib.suppress(PermissionError):  # it exists, under another user
            os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
