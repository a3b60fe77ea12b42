"""A disk fault under the outbox never escapes from flush(), close(), aflush() or aclose().

The fault is real: another connection drops the outbox table of the client's
SQLite file, so every count, lease and commit of the outbox fails as a broken
file would make it fail ("no such table: outbox"). A default client counts it,
logs it (without traits) and answers honestly: what was delivered, and the
messages it knows still wait. ``close()`` releases its threads and the file
whatever fails; a strict client raises ``StoreError``, after releasing them.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Literal

import pytest

import pqlsdk
from pqlsdk.testing import RecordingTransport
from pqlsdk.transports import AsyncHTTPTransport

from .collector import Collector
from .test_failures_visible import wait_until

Mode = Literal["background", "caller"]
SECRET = "s3cret-trait-value"  # noqa: S105 - a trait that must never reach a log line


def pqlsdk_threads() -> int:
    """Threads pqlsdk runs (intake, writer, sender), of any client."""
    return sum(t.name.startswith("pqlsdk-") for t in threading.enumerate())


def faulty(
    tmp_path: Path, mode: Mode, *, strict: bool = False, held: int = 3
) -> tuple[pqlsdk.Client, RecordingTransport, Callable[[], None]]:
    """A client that delivered one message, whose outbox then vanished, holding ``held`` more.

    Also returns how to mend the file: the outbox table made again as it was.
    """
    transport = RecordingTransport()
    client = pqlsdk.Client(
        store=f"sqlite:///{tmp_path}/s.db",
        transport=transport,
        strict=strict,
        delivery=pqlsdk.Delivery(mode=mode, flush_interval=0.05),
    )
    client.track("u1", "tick")
    assert client.flush(timeout=5) == pqlsdk.FlushResult(1, 0)
    return client, transport, break_outbox(client, tmp_path, held)


def break_outbox(client: pqlsdk.Client, tmp_path: Path, held: int) -> Callable[[], None]:
    """Drop the outbox table of ``s.db``, then have ``client`` hold ``held`` messages; the mend."""
    with closing(sqlite3.connect(tmp_path / "s.db")) as conn, conn:
        (schema,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'outbox'").fetchone()
        conn.execute("DROP TABLE outbox")
    for _ in range(held):
        client.identify("u1", {"email": SECRET})

    def mend() -> None:
        with closing(sqlite3.connect(tmp_path / "s.db")) as conn, conn:
            conn.execute(schema)

    return mend


@pytest.mark.parametrize("mode", ["background", "caller"])
@pytest.mark.parametrize("method", ["flush", "aflush"])
def test_a_flush_that_cannot_count_the_outbox_counts_the_fault_and_says_what_waits(
    tmp_path: Path, mode: Mode, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    """flush()/aflush() answer 0 delivered, the 3 held pending; counted, logged once, no traits."""
    client, _, _ = faulty(tmp_path, mode)
    call = client.flush(1) if method == "flush" else asyncio.run(client.aflush(1))
    assert call == pqlsdk.FlushResult(0, 3)
    assert client.stats().errors["store_error"] >= 1
    lines = [r.getMessage() for r in caplog.records if r.name == "pqlsdk"]
    faults = [line for line in lines if "no such table: outbox" in line]
    assert len(faults) == 1, lines  # once; later ones are paced
    assert all(SECRET not in line for line in lines)
    client.close(timeout=0)


@pytest.mark.parametrize("mode", ["background", "caller"])
@pytest.mark.parametrize("method", ["close", "aclose"])
def test_close_releases_threads_and_file_when_the_outbox_fails(
    tmp_path: Path, mode: Mode, method: str
) -> None:
    """close()/aclose() return what waits, stop every thread and close the SQLite file."""
    before = pqlsdk_threads()
    client, _, _ = faulty(tmp_path, mode)
    call = client.close(1) if method == "close" else asyncio.run(client.aclose(1))
    assert call == pqlsdk.FlushResult(0, 3)
    assert client.stats().errors["store_error"] >= 1
    wait_until(lambda: pqlsdk_threads() == before)
    assert not (tmp_path / "s.db-wal").exists()  # SQLite removes it when the last connection closes


def test_a_strict_client_raises_the_fault_after_releasing_everything(tmp_path: Path) -> None:
    """Strict: flush() and close() raise ``StoreError``; close() has released everything first."""
    before = pqlsdk_threads()
    client, _, _ = faulty(tmp_path, "background", strict=True)
    with pytest.raises(pqlsdk.StoreError, match="no such table: outbox"):
        client.flush(1)
    with pytest.raises(pqlsdk.StoreError, match="no such table: outbox"):
        client.close(1)
    wait_until(lambda: pqlsdk_threads() == before)
    assert not (tmp_path / "s.db-wal").exists()


def test_the_sender_outlives_the_fault_and_delivers_once_the_file_is_mended(
    tmp_path: Path,
) -> None:
    """The sender thread counts its failed takes instead of dying: mended, it sends on its own."""
    client, transport, mend = faulty(tmp_path, "background")
    assert client.flush(0.2) == pqlsdk.FlushResult(0, 3)
    sender = next(t for t in threading.enumerate() if t.name == "pqlsdk-sender")
    mend()
    client.track("u1", "after")
    wait_until(lambda: len(transport.messages) == 5)  # the 3 kept in memory, and the new one
    assert sender.is_alive()
    assert client.close(timeout=5) == pqlsdk.FlushResult(0, 0)


def test_a_fault_in_the_sender_thread_is_counted_not_raised(tmp_path: Path) -> None:
    """The sender woken by flush() fails to take a batch: one more store error, and it lives on.

    Nothing is held, so no commit fails: flush() counts its own failed count,
    the sender its failed take (an exception there would fail this test).
    """
    client, _, _ = faulty(tmp_path, "background", held=0)
    assert client.flush(1) == pqlsdk.FlushResult(0, 0)
    wait_until(lambda: client.stats().errors == {"store_error": 2})
    assert any(t.name == "pqlsdk-sender" for t in threading.enumerate())
    client.close(timeout=0)


def test_an_asyncio_flush_counts_a_fault_taking_a_batch(
    tmp_path: Path, collector: Collector
) -> None:
    """With ``AsyncHTTPTransport``, aflush() and aclose() count the failed take and answer."""

    async def main() -> tuple[pqlsdk.FlushResult, pqlsdk.FlushResult, pqlsdk.FlushResult]:
        transport = AsyncHTTPTransport(collector.url, collector.write_key)
        client = pqlsdk.Client(store=f"sqlite:///{tmp_path}/s.db", transport=transport)
        client.track("u1", "tick")
        delivered = await client.aflush(timeout=5)
        break_outbox(client, tmp_path, 3)
        results = delivered, await client.aflush(timeout=1), await client.aclose(timeout=1)
        await transport.aclose()
        assert client.stats().errors["store_error"] >= 2
        return results

    assert asyncio.run(main()) == (
        pqlsdk.FlushResult(1, 0),
        pqlsdk.FlushResult(0, 3),
        pqlsdk.FlushResult(0, 3),
    )
    assert not (tmp_path / "s.db-wal").exists()
