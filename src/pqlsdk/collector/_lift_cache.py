"""The collector's moments report, kept between requests: each one folds only what is new.

The report is one fold of the stored messages in time order (``pqlsdk.lift``).
The collector keeps that fold (``lift.Running``) and the place in time order
(``(timestamp, message_id)``) it has read to. A request:

1. counts the stored messages at or before that place (an index range, no
   message read): when it is more than were folded, a message arrived late,
   behind the place, and the fold starts again from the first message;
2. reads and folds the messages after the place (keyset, on the
   ``messages_by_time`` index), and moves the place to the last one;
3. makes the report again only if something was folded; else it serves the
   one it made last.

So a request costs the messages stored since the last one, and the report is
exactly what ``pqlsdk moments`` prints on the same storage: the fold meets the
messages in the same order. A message timestamped before the last request's
place (a client flushing an old batch after newer ones arrived) costs one full
fold again, as every request did before. Memory is the fold's: the users' state
and their arms, as ``pqlsdk moments`` holds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from .._clock import micros
from ..lift import MomentsReport, Running
from ..messages import Message
from ..rules._model import Rules
from ._storage import Position, Storage

__all__ = ["MomentsCache"]


class MomentsCache:
    """The moments report of one storage and rules file, folded on as messages arrive."""

    def __init__(self, storage: Storage, rules: Rules) -> None:
        self._storage = storage
        self._rules = rules
        # Requests run in worker threads: one folds at a time, the others then
        # find nothing new and take its report.
        self._lock = threading.Lock()
        self._running = Running(rules)
        self._place: Position | None = None
        self._folded = 0
        self._report: MomentsReport | None = None

    def report(self) -> MomentsReport:
        """Return the report on every stored message, folding only those new since last time."""
        with self._lock:
            if self._place is not None and self._storage.count(upto=self._place) != self._folded:
                self._running, self._place, self._folded = Running(self._rules), None, 0
                self._report = None
            before = self._folded
            self._running.feed(self._new())
            if self._report is None or self._folded != before:
                self._report = self._running.report()
            return self._report

    def _new(self) -> Iterator[tuple[int, Message]]:
        """Yield the messages after the place as (µs, message), moving the place along."""
        for place, message in self._storage.positioned(after=self._place):
            self._place = place
            self._folded += 1
            yield micros(message.timestamp), message
