"""What a transport is: something that delivers one ``Batch`` to a collector.

Transports do one attempt per call and classify failure: ``RetryableDeliveryError``
(try again later) or ``BatchRejectedError`` (drop). Retrying, backoff and
budgets belong to the sender, so every transport gets the same policy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

import msgspec

__all__ = ["AsyncTransport", "Batch", "Transport"]


class Batch(msgspec.Struct, frozen=True, gc=False):
    """Messages to deliver together, already encoded (each message is encoded once).

    ``id`` stays the same across retries, and so does ``body()``: a collector
    that saw a batch before may recognise it (each message also has its own
    ``messageId`` for de-duplication).

    Added in version 0.1.0.
    """

    id: str
    messages: tuple[bytes, ...]
    sent_at: datetime

    def body(self) -> bytes:
        """Return the Segment batch JSON ``{"batch": [...], "sentAt": ...}``, built by joining.

        Added in version 0.1.0.
        """
        sent_at = self.sent_at.isoformat().replace("+00:00", "Z")
        return b'{"batch":[' + b",".join(self.messages) + b'],"sentAt":"' + sent_at.encode() + b'"}'

    def __len__(self) -> int:
        return len(self.messages)


@runtime_checkable
class Transport(Protocol):
    """Delivers batches synchronously, one attempt per ``send``.

    Added in version 0.1.0.
    """

    def send(self, batch: Batch) -> None:
        """Deliver ``batch`` once; raise ``RetryableDeliveryError`` or ``BatchRejectedError``.

        Added in version 0.1.0.
        """
        ...

    def close(self) -> None:
        """Release connections.

        Added in version 0.1.0.
        """
        ...


@runtime_checkable
class AsyncTransport(Protocol):
    """Delivers batches from an asyncio event loop, one attempt per ``send``.

    Added in version 0.1.0.
    """

    async def send(self, batch: Batch) -> None:
        """Deliver ``batch`` once; raise ``RetryableDeliveryError`` or ``BatchRejectedError``.

        Added in version 0.1.0.
        """
        ...

    async def aclose(self) -> None:
        """Release connections.

        Added in version 0.1.0.
        """
        ...
