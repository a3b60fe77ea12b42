"""Wiring a client's store to the collector: durability, outbox, batcher, transport.

The client records; this module decides where the recorded bytes wait and how
they leave:

- a SQLite store is buffered (write-behind) unless ``durability="sync"``;
- the store says where messages wait (``Store.outbox``): a SQLite store's own
  table (durable, shared by the host's processes, committed with the records),
  a Redis store's entries on the server (durable, shared by every host, queued
  in the step that logs each message); a store with none (memory) gets a
  bounded in-process queue;
- a ``Batcher`` sends from the outbox through the transport (``HTTPTransport``
  to ``endpoint`` unless a transport is given);
- at open, the outbox takes back what senders that died on this host held, and
  what an earlier run left starts being sent at once.

Delivery is one package: this wiring, the sender (``_batcher``), what it tells
the logs (``_log``) and the in-process queue (``_outbox``). The durable
outboxes belong to their stores (``pqlsdk.stores._outbox``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

from .._exceptions import ConfigError, DeliveryError, StoreError
from .._stats import Counters
from ..messages import Message
from ..stores import Store
from ..stores.buffered import BufferedStore
from ..stores.sqlite import SQLiteStore
from ..transports import AsyncTransport, Transport
from ._batcher import Batcher, Delivery, FlushResult
from ._outbox import MemoryOutbox

__all__ = ["Pipeline", "prepare_store"]


def prepare_store(
    store: Store,
    options: Delivery,
    *,
    delivering: bool,
    on_commit: Callable[[int], None],
    on_error: Callable[[StoreError], None],
) -> Store:
    """Wrap a SQLite store in write-behind buffering unless durability is ``sync``."""
    if isinstance(store, SQLiteStore) and options.durability == "buffered":
        return BufferedStore(
            store,
            interval=options.buffer_interval,
            outbox=delivering,
            on_commit=on_commit,
            on_error=on_error,
        )
    return store


class Pipeline:
    """One client's way to the collector."""

    def __init__(
        self,
        store: Store,
        transport: Transport | AsyncTransport,
        options: Delivery,
        counters: Counters,
        *,
        owns_transport: bool,
        on_error: Callable[[DeliveryError], None] | None,
        on_store_error: Callable[[StoreError], None] | None = None,
    ) -> None:
        outbox = store.outbox(lease=options.lease)
        if outbox is None:
            outbox = MemoryOutbox(
                max_messages=options.max_queue,
                on_full=options.on_full,
                block_timeout=options.block_timeout,
                counters=counters,
            )
        self._buffered = isinstance(store, BufferedStore)
        self._durable = outbox.durable
        self._transport = transport
        self._owns_transport = owns_transport
        self._counters = counters
        # An asyncio transport sends only from ``Client.aflush()``, in the event loop.
        self.async_transport = transport if isinstance(transport, AsyncTransport) else None
        sync = None if isinstance(transport, AsyncTransport) else transport
        self.batcher = Batcher(
            outbox,
            sync,
            options,
            counters,
            on_error=on_error,
            on_store_error=on_store_error,
            collector=_describe(transport),
        )
        outbox.when_queued(self.batcher.notify)  # e.g. a replay after a Redis outage
        try:
            waiting = outbox.recover()
        except StoreError as exc:  # the next take or flush tries again
            counters.error("store_error", str(exc))
        else:
            self.batcher.resume(waiting)

    @property
    def durable(self) -> bool:
        """Whether the store queues records for the collector in its own transaction."""
        return self._durable

    def recorded(self, records: Sequence[tuple[Message, bytes]], added: int) -> None:
        """Queue what the store just recorded (unless the store queued it itself)."""
        if not self._durable:
            added = self.batcher.outbox.put([(m.message_id, data) for m, data in records])
        if self._buffered:
            self.batcher.expect(added)
        else:
            self.batcher.notify(added)

    def committed(self, count: int) -> None:
        """Wake the sender: the buffered store committed ``count`` outbox rows."""
        self.batcher.notify(count, counted=True)

    def emit(self, message_id: str, data: bytes) -> None:
        """Queue one of pqlsdk's own records (crossings, moments) for the collector."""
        self.batcher.notify(self.batcher.outbox.put([(message_id, data)]))

    def flush(self, timeout: float | None) -> FlushResult:
        """Deliver what waits, within ``timeout``; log what is still waiting."""
        return self.flushed(self.batcher.flush(timeout))

    def flushed(self, result: FlushResult) -> FlushResult:
        """Log (paced) that a flush left messages waiting, and where; return ``result``."""
        if result.pending:
            self.batcher.log.unflushed(result.pending)
        return result

    async def aflush(self, deadline: float | None) -> FlushResult:
        """Send what waits from the event loop until ``deadline`` (``time.monotonic()``).

        Only with an asyncio transport (``async_transport``): with another the
        client flushes in a worker thread. Logs what is still waiting.
        """
        before = self._counters.snapshot().delivered
        transport = cast("AsyncTransport", self.async_transport)
        await self.batcher.adrain(transport, deadline=deadline)
        delivered = self._counters.snapshot().delivered - before
        return self.flushed(self.batcher.result(delivered))

    def close(self, timeout: float | None) -> FlushResult:
        """Deliver within ``timeout``, stop the sender and release the transport, whatever fails."""
        try:
            return self.batcher.close(timeout)
        finally:
            if self._owns_transport and isinstance(self._transport, Transport):
                self._transport.close()


def _describe(transport: Transport | AsyncTransport) -> str:
    """Name the collector in log lines: an HTTP transport's URL (no credentials), else its type."""
    url = getattr(transport, "url", None)
    return url if isinstance(url, str) else f"(a {type(transport).__name__})"


def make_transport(
    endpoint: str | None, write_key: str | None, transport: Transport | AsyncTransport | None
) -> tuple[Transport | AsyncTransport | None, bool]:
    """Choose the transport and say whether the client owns it; None means no delivery."""
    if transport is not None:
        if endpoint is not None:
            raise ConfigError("give either endpoint= or transport=, not both")
        return transport, False
    if endpoint is None:
        if write_key is not None:
            raise ConfigError("write_key= needs endpoint= (the collector's URL)")
        return None, False
    from ..transports.http import HTTPTransport  # noqa: PLC0415 - httpx only when delivering

    return HTTPTransport(endpoint, write_key or ""), True
