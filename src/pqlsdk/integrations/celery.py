"""Celery: what tasks track reaches the collector, prefork pool included.

Usage, in the module that creates the Celery app (every worker process imports it):

```python
import pqlsdk
from celery import Celery
from pqlsdk.integrations import celery as pqlsdk_celery

app = Celery("tasks")
client = pqlsdk.Client(store="sqlite:///pqlsdk.db", endpoint=..., write_key=...)
pqlsdk_celery.install(app)                           # deliver when a pool process ends
pqlsdk_celery.install(app, flush_after_task=client)  # ...and after every task, too
```

Why a hook is needed at all: pqlsdk drains its outboxes from an ``atexit`` hook,
and billiard's pool processes (``-P prefork``, Celery's default pool) end with
``os._exit()``, which skips ``atexit``. Without ``install()`` a pool process
that exits (warm shutdown, ``--max-tasks-per-child``, ``--max-memory-per-child``,
autoscale) takes with it what it tracked but has not sent yet: everything since
its last batch with a ``memory://`` store, the last ``buffer_interval`` with a
SQLite one.

What ``install()`` does:

- On ``worker_process_shutdown`` (sent in each pool process just before its
  ``os._exit()``) it runs the exit work ``atexit`` would have run: every pqlsdk
  client in that process applies what it accepted, commits, and drains its
  outbox within its ``Delivery.shutdown_timeout`` (5 s by default). It needs no
  client: clients created in the parent before the fork (a module-level
  client) and clients created in the pool process are all covered. It first
  clears the kill-with-parent signal Celery sets in pool processes: Linux
  would send it mid-drain to a process forked to replace a recycled one. The
  main worker process exits normally, so ``atexit`` serves it (and the solo,
  threads, gevent and eventlet pools).
- With ``flush_after_task=client`` (or a function returning the client, or
  None while there is none yet) it also calls ``client.flush(timeout)`` after
  every task (``task_postrun``), of ``app`` only when one is given. That costs
  each task a round trip to the collector (up to ``timeout`` while it is down),
  and buys delivery before the next task starts: for ``memory://`` stores whose
  pool processes may be SIGKILLed (OOM killer, hard time limits, a lost
  container). A SQLite store rarely needs it: its outbox is durable, a SIGKILL
  loses at most the last ``buffer_interval`` (0.2 s), and any process sharing
  the file (the worker's main process at its exit, or the next run) delivers
  the rest.

Neither hook ever raises into a task or the worker: a failing flush is logged
(without properties or traits) and the task's outcome stands. Forks need no
hook: every client resets its threads, locks and connections in a forked child
by itself (``os.register_at_fork``), and a pool process starts its own sender on
its first event. Calling ``install()`` again replaces the previous hooks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Final

import attrs

from .._client import Client
from .._exceptions import ConfigError
from .._lifecycle import run_at_exit
from .._stats import logger

try:
    from billiard.util import set_pdeathsig  # type: ignore[import-untyped]
    from celery import Celery, signals  # type: ignore[import-untyped]
except ImportError as exc:
    raise ImportError(
        "pqlsdk.integrations.celery needs Celery: pip install 'pqlsdk[celery]'"
    ) from exc

__all__ = ["Installed", "install"]

_EXIT_UID: Final = "pqlsdk.integrations.celery.process_shutdown"
_FLUSH_UID: Final = "pqlsdk.integrations.celery.task_postrun"

ClientSource = Client | Callable[[], Client | None]
"""A client, or a function returning the current one (None while there is none)."""


@attrs.frozen
class Installed:
    """The hooks ``install()`` connected; ``uninstall()`` disconnects them.

    Added in version 0.1.0.
    """

    flushes_after_task: bool

    def uninstall(self) -> None:
        """Disconnect both hooks (pool processes then exit without delivering).

        Added in version 0.1.0.
        """
        signals.worker_process_shutdown.disconnect(dispatch_uid=_EXIT_UID)
        signals.task_postrun.disconnect(dispatch_uid=_FLUSH_UID)


def install(
    app: Celery | None = None,
    *,
    flush_after_task: ClientSource | None = None,
    timeout: float = 2.0,
) -> Installed:
    """Deliver tracked events when a pool process exits, and after each task if asked.

    ``app`` limits the per-task flush to that app's tasks (None: every task).
    ``timeout`` bounds each per-task flush, in seconds. Setup mistakes raise
    ``ConfigError`` here, never later in a task.

    Added in version 0.1.0.
    """
    if app is not None and not isinstance(app, Celery):
        raise ConfigError(f"app must be a Celery app or None, got {type(app).__name__}")
    if flush_after_task is not None and not (
        isinstance(flush_after_task, Client) or callable(flush_after_task)
    ):
        raise ConfigError(
            "flush_after_task must be a pqlsdk.Client or a function returning one, "
            f"got {type(flush_after_task).__name__}"
        )
    if not timeout > 0:
        raise ConfigError(f"timeout must be positive, got {timeout!r}")
    installed = Installed(flushes_after_task=flush_after_task is not None)
    installed.uninstall()  # the latest call wins
    signals.worker_process_shutdown.connect(_finish_process, weak=False, dispatch_uid=_EXIT_UID)
    if flush_after_task is not None:
        flush = _after_task(app, flush_after_task, timeout)
        signals.task_postrun.connect(flush, weak=False, dispatch_uid=_FLUSH_UID)
    return installed


def _finish_process(**_: Any) -> None:
    """Run pqlsdk's exit work now: billiard is about to ``os._exit()`` this process.

    ``run_at_exit`` applies, commits and drains every live client within its
    ``shutdown_timeout`` and logs any one object's failure without stopping.

    First the process stops asking to be killed with its parent. Celery sets
    ``PR_SET_PDEATHSIG`` (SIGKILL) in each pool process, and Linux sends it
    when the *thread* that forked the process ends: billiard forks the
    replacement of a recycled process from its supervisor thread, which ends
    early in a warm shutdown, while that process drains here. It would die
    mid-drain, its events lost. The worker's main process still waits for every
    pool process, and the drain is bounded, so nothing is left behind.
    """
    with contextlib.suppress(OSError):  # not Linux: there is no such signal to clear
        set_pdeathsig(0)
    run_at_exit()


def _after_task(app: Celery | None, source: ClientSource, timeout: float) -> Callable[..., None]:
    """Build the ``task_postrun`` receiver: flush within ``timeout``, never raise."""

    def flush(sender: Any = None, **_: Any) -> None:
        if app is not None and getattr(sender, "app", None) is not app:
            return
        try:
            client = source if isinstance(source, Client) else source()
            if client is not None:
                client.flush(timeout)
        except Exception as exc:  # a task's outcome must not depend on delivery
            logger.warning("pqlsdk: flush after a Celery task failed: %s", type(exc).__name__)

    return flush
