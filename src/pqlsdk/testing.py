"""Helpers for your own tests: a transport that records batches, and a fixed clock.

``RecordingTransport`` stands in for the HTTP transport so tests can check what
pqlsdk would have sent without a network, and can script delivery failures to
exercise retries:

```python
transport = RecordingTransport()
client = pqlsdk.Client(store="memory://", transport=transport)
client.track("u1", "Signed Up")
client.close()
assert [m["event"] for m in transport.messages] == ["Signed Up"]
```

``FixedClock`` (also ``pqlsdk.FixedClock``) stands still until told to move.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

import msgspec

from ._clock import FixedClock
from ._exceptions import DeliveryError
from .transports import Batch

__all__ = ["FixedClock", "RecordingTransport"]

# One decoder for every message, as msgspec recommends: it is built once.
_MESSAGE: msgspec.json.Decoder[dict[str, Any]] = msgspec.json.Decoder(dict[str, Any])


class RecordingTransport:
    """Record every batch sent, in order; optionally fail the first sends first.

    ``fail`` lists errors to raise, one per send, before sends start to succeed
    (a failed send records nothing), so tests can check retries and drops.
    Safe to use from several threads.

    Added in version 0.1.0.
    """

    def __init__(self, *, fail: Iterable[DeliveryError] = ()) -> None:
        self._lock = threading.Lock()
        self._failures = deque(fail)
        self._batches: list[Batch] = []
        self.closed = False

    def send(self, batch: Batch) -> None:
        """Raise the next scripted failure, if any is left; otherwise record ``batch``.

        Added in version 0.1.0.
        """
        with self._lock:
            if self._failures:
                raise self._failures.popleft()
            self._batches.append(batch)

    def close(self) -> None:
        """Mark the transport closed (``closed`` becomes True); recordings stay readable.

        Added in version 0.1.0.
        """
        self.closed = True

    @property
    def batches(self) -> list[Batch]:
        """Every batch delivered so far, in the order it was sent (a copy).

        Added in version 0.1.0.
        """
        with self._lock:
            return list(self._batches)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every message delivered so far, decoded from JSON, in the order it was sent.

        Added in version 0.1.0.
        """
        return [_MESSAGE.decode(message) for batch in self.batches for message in batch.messages]
