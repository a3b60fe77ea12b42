"""Process lifecycle hooks: after ``fork()`` and at exit, in one place.

Objects that own threads, connections or buffers must react when the process
forks (the child gets fresh locks and no threads, and must not reuse the
parent's connections) and when it exits (commit buffers, then drain outboxes).
They register here; pqlsdk installs one ``os.register_at_fork`` hook and one
``atexit`` hook per process, lazily, on the first registration, never at import.

Exit work runs in phases, lowest first: client intakes apply what they accepted
(``APPLY``), then buffered stores commit (``COMMIT``), then batchers drain
(``DRAIN``), so the drain sends everything that was recorded.
Objects are held weakly: registering never keeps a client alive.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import weakref
from typing import Final, Protocol

from ._stats import logger

__all__ = [
    "APPLY",
    "COMMIT",
    "DRAIN",
    "Forkable",
    "Stoppable",
    "install_sigterm",
    "run_after_fork",
    "run_at_exit",
    "unwatch",
    "watch",
]

APPLY: Final = 0
"""Exit phase of client intakes: apply the messages accepted but not yet recorded."""
COMMIT: Final = 1
"""Exit phase of buffered stores: commit what they hold."""
DRAIN: Final = 2
"""Exit phase of batchers: deliver what the outboxes hold."""


class Forkable(Protocol):
    """Something that must reset itself in a forked child."""

    def after_fork(self) -> None:
        """Reset locks, threads and connections inherited from the parent."""
        ...


class Stoppable(Forkable, Protocol):
    """Something with work to finish when the process exits."""

    def at_exit(self) -> None:
        """Finish what must not be lost (within a time budget)."""
        ...


_forkable: weakref.WeakSet[Forkable] = weakref.WeakSet()
_phases: dict[int, weakref.WeakSet[Stoppable]] = {
    APPLY: weakref.WeakSet(),
    COMMIT: weakref.WeakSet(),
    DRAIN: weakref.WeakSet(),
}
_installed = False
_sigterm = False  # install_sigterm() installed its handler


def watch(obj: Forkable, *, exit_phase: int | None = None) -> None:
    """Call ``obj.after_fork()`` in forked children, and ``obj.at_exit()`` in ``exit_phase``."""
    global _installed  # noqa: PLW0603 - one pair of process-wide hooks
    if not _installed:
        os.register_at_fork(after_in_child=run_after_fork)
        atexit.register(run_at_exit)
        _installed = True
    _forkable.add(obj)
    if exit_phase is not None:
        _phases[exit_phase].add(obj)  # type: ignore[arg-type]


def unwatch(obj: Forkable) -> None:
    """Forget ``obj`` (it was closed)."""
    _forkable.discard(obj)
    for members in _phases.values():
        members.discard(obj)  # type: ignore[arg-type]


def run_after_fork() -> None:
    """Reset every watched object (the fork hook; callable directly in tests)."""
    for obj in list(_forkable):
        obj.after_fork()


def run_at_exit() -> None:
    """Run the exit phases in order; one object's failure never stops the others."""
    for phase in sorted(_phases):
        for obj in list(_phases[phase]):
            try:
                obj.at_exit()
            except Exception:  # at exit, log and go on
                logger.exception("pqlsdk: exit work failed for %s", type(obj).__name__)


def install_sigterm() -> None:
    """Run the exit phases on SIGTERM too, when the host has not taken SIGTERM itself.

    Containers and process managers stop with SIGTERM, which skips ``atexit``.
    Called lazily by whatever holds work in memory (the intake, buffered stores);
    only from the main thread (Python's rule for ``signal.signal``) and only while
    SIGTERM still has its default action, so a host's own handler always wins.
    """
    global _sigterm  # noqa: PLW0603 - one handler per process
    if _sigterm or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _finish_and_die)
        # Ours now, and it stays (a host that takes SIGTERM later wins): not asked again.
        # ``getsignal`` of a function handler costs a failed enum lookup, some 10 µs,
        # which the intake paid once per chunk it applied on the main thread.
        _sigterm = True


def _finish_and_die(signum: int, frame: object) -> None:  # pragma: no cover - the process dies
    # Exercised by tests/delivery/test_client_delivery.py::test_sigterm_commits_buffered_writes,
    # in a process that this very function kills before coverage can save.
    """Run the exit phases, then die of SIGTERM as the default action would."""
    del frame
    run_at_exit()  # applies, commits, then drains outboxes within their budgets
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
