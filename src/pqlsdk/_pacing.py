"""Pacing: pqlsdk's background threads make way for the host's threads.

The intake, the sender and the committer run Python in the host's process,
under the host's GIL. A host thread that wants the GIL while one of them holds
it waits until that thread lets go of it: at a system call or a store
statement, a sleep, or after the switch interval (5 ms), when the interpreter
forces a switch. Python cannot hand the GIL over only if someone waits for it,
so the background threads look at how the host calls instead:

- every call on the request path counts itself in ``HOST`` (process-wide, as
  the GIL is); while the count moves (or moved ``_QUIET`` ago at most), a
  background thread works in short slices and naps (a real sleep, which
  lets go of the GIL and wakes a waiting host thread) after each, so a host
  call that finds the GIL taken waits about one slice;
- when the nap itself came back late (the GIL was taken for longer than
  ``_LATE``: the host calls back to back and lets go of it only when
  forced), the next nap is longer (``_BACK_OFF``, then twice the last), up
  to ``_NAP_MAX``: each return of a background thread then costs the host
  one forced switch, so it comes back seldom, and the work waits (in the
  journal, or a durable outbox) for the host's next lull, when it runs at
  full speed;
- where waiting work is bounded in memory (no journal, a memory outbox), the
  naps stay short: a long one would make the host wait for room.

The host's own settings (``sys.setswitchinterval``, the collector's) are left alone.
"""

from __future__ import annotations

import time
from typing import Final

__all__ = ["HOST", "SHORTEST_NAP", "Pacer", "next_nap"]

SHORTEST_NAP: Final = 0.00002
"""The shortest nap, s: long enough for a waiting host thread to wake and take the GIL
(timer slack makes it some 60 to 80 µs), short enough that slices of a few messages
keep up with a host calling 10,000 times a second. Also the nap after a window's work
that overran the window (the intake, for a store that pays per round trip)."""
_BACK_OFF: Final = 0.0001
"""The nap after the first one that came back late, s; it doubles from there."""
_NAP_MAX: Final = 0.02
"""The longest nap while the host calls back to back, s."""
_LATE: Final = 0.001
"""A nap this much longer than asked means the GIL was held meanwhile, s."""
_QUIET: Final = 0.005
"""How long after the host's last call it still counts as calling, s. Not "since the
last look": a host call that came late (its thread descheduled, or waiting for the
GIL) made a background thread take the host for idle and run a full chunk, some
milliseconds under the GIL, which the host's next call waited for."""


class _Host:
    """The host's calls on pqlsdk's request path, counted process-wide."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls = 0  # racy between host threads: only whether it moves matters


HOST: Final = _Host()


class Pacer:
    """One background thread's pacing: whether the host calls, and how long to nap."""

    __slots__ = ("_back_off", "_last", "_nap", "_seen")

    def __init__(self, *, back_off: bool) -> None:
        """``back_off``: whether naps may grow (the work waiting meanwhile is not bounded)."""
        self._back_off = back_off
        self._nap = SHORTEST_NAP
        self._seen = HOST.calls
        self._last = -_QUIET  # monotonic time the count was last seen moving

    def calling(self) -> bool:
        """Whether the host called since the last look, or less than ``_QUIET`` before it."""
        calls = HOST.calls
        if calls != self._seen:
            self._seen = calls
            self._last = time.monotonic()
            return True
        return time.monotonic() - self._last < _QUIET

    def rest(self) -> None:
        """Nap after a slice; longer next time if getting the GIL back took long."""
        nap = self._nap
        start = time.monotonic()
        time.sleep(nap)
        self._nap = next_nap(nap, time.monotonic() - start, back_off=self._back_off)


def next_nap(nap: float, took: float, *, back_off: bool) -> float:
    """Return the nap after one of ``nap`` seconds that took ``took`` (the GIL included)."""
    late = took - nap > _LATE
    return min(_NAP_MAX, max(nap * 2, _BACK_OFF)) if late and back_off else SHORTEST_NAP
