"""Flush and close: what a client accepted, applied, committed and delivered, within a deadline.

Each step feeds the next, so they run in this order, sharing one deadline:
the intake applies what it holds, a buffered store commits, and the pipeline
delivers what the outbox then holds. ``close()`` also releases everything
(sender, store, journal) even when a step fails, and a strict client raises
only after that. How long a call may wait is the host's ``timeout``, read here
once for every entry point (``flush``, ``close`` and their asyncio forms).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final, ParamSpec, TypeVar

from ._delivery._batcher import FlushResult
from ._exceptions import InvalidMessageError
from ._faults import Faults
from ._recording import Recorder
from .stores.buffered import BufferedStore

__all__ = ["aflush", "close", "flush", "seconds", "to_thread"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

_DEFAULT_TIMEOUT: Final = 10.0  # seconds: what flush() and close() wait unless told otherwise


def seconds(timeout: object, faults: Faults) -> float | None:
    """Return the seconds a flush or close may wait, from what the host passed (None: no limit).

    Negative means not at all, and infinite, or past what a thread can wait,
    no limit. Anything else (NaN too) is the host's bug: a strict client
    raises; by default it is counted and the default applies, so the call
    still ends.
    """
    if timeout is None:
        return None
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        if timeout >= threading.TIMEOUT_MAX:
            return None
        if timeout > 0:
            return float(timeout)
        if timeout <= 0:
            return 0.0
        # NaN is neither: it falls through
    got = "NaN" if isinstance(timeout, float) else f"a {type(timeout).__name__}"
    error = InvalidMessageError(f"timeout must be a number of seconds or None, got {got}")
    if faults.strict:
        raise error
    faults.counters.error("invalid_timeout", f"{error}: waiting {_DEFAULT_TIMEOUT} s")
    return _DEFAULT_TIMEOUT


def flush(recorder: Recorder, timeout: object) -> FlushResult:
    """Apply, commit, then deliver within ``timeout`` (``Client.flush()``)."""
    timeout = seconds(timeout, recorder.faults)
    deadline = None if timeout is None else time.monotonic() + timeout
    if recorder.intake is not None:
        recorder.intake.settle(deadline)
    if isinstance(recorder.store, BufferedStore):
        recorder.store.commit()
    if recorder.pipeline is None:
        return FlushResult(0, 0)
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    return recorder.pipeline.flush(left)


def close(recorder: Recorder, timeout: object) -> FlushResult:
    """Flush within ``timeout``, then release everything, failing or not (``Client.close()``)."""
    if recorder.closed:
        return FlushResult(0, 0)
    timeout = seconds(timeout, recorder.faults)  # a strict client's bad timeout leaves it open
    if recorder.intake is not None:
        recorder.intake.close()  # applies what it holds
    recorder.closed = True
    if recorder.intake is not None:
        recorder.intake.drain()  # a call racing with close(): counted as dropped, not kept
    try:
        if isinstance(recorder.store, BufferedStore):
            recorder.store.commit()
        return FlushResult(0, 0) if recorder.pipeline is None else recorder.pipeline.close(timeout)
    finally:
        recorder.store.close()
        if recorder.journal is not None:
            recorder.journal.close()
        recorder.faults.counters.log_rest()  # drops and errors whose log line was still held back


async def aflush(recorder: Recorder, timeout: object) -> FlushResult:
    """``flush()`` that never blocks the event loop (``Client.aflush()``)."""
    timeout = seconds(timeout, recorder.faults)
    pipeline = recorder.pipeline
    if pipeline is None or pipeline.async_transport is None:
        return await to_thread(flush, recorder, timeout)
    if recorder.intake is not None and recorder.intake.pending():
        await to_thread(recorder.settle)
    if isinstance(recorder.store, BufferedStore):
        await to_thread(recorder.store.commit)
    deadline = None if timeout is None else time.monotonic() + timeout
    return await pipeline.aflush(deadline)


async def to_thread(call: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """Await ``asyncio.to_thread``, imported on first use (see ``_delivery._batcher._sleep``)."""
    import asyncio  # noqa: PLC0415 - asyncio costs tens of milliseconds at import

    return await asyncio.to_thread(call, *args, **kwargs)
