"""Fixtures for delivery tests: a real collector on loopback, and batches to send."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from pqlsdk import messages
from pqlsdk.transports import Batch

from .collector import Collector

SENT_AT = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)

MakeBatch = Callable[..., Batch]


@pytest.fixture
def collector() -> Iterator[Collector]:
    """A started collector; stopped (port and connections closed) after the test."""
    with Collector() as started:
        yield started


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A collector URL on 127.0.0.1 whose port refuses connections, held for the test.

    The port is bound but not listening: every connection is refused at once
    (ECONNREFUSED), and no other program can take the port meanwhile.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def make_batch() -> MakeBatch:
    """Build a batch of ``size`` encoded track messages, ``Signed Up 0``, ``Signed Up 1``..."""

    def make(size: int = 3, *, batch_id: str = "batch-1") -> Batch:
        encoded = tuple(
            messages.encode(
                messages.Track(user_id=f"u{n}", event=f"Signed Up {n}", timestamp=SENT_AT)
            )
            for n in range(size)
        )
        return Batch(id=batch_id, messages=encoded, sent_at=SENT_AT)

    return make
