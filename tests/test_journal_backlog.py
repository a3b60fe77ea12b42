"""A backlog larger than memory waits in the journal; past its bound, ``on_full`` decides.

Real journal files next to a real SQLite store. The intake thread is kept away
(a long ``gather``) where a test needs a backlog to stay put.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import signal
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

import pqlsdk
from pqlsdk import _journal
from pqlsdk._intake import Intake, _Marker
from pqlsdk._journal import Journal


class Applied:
    """What an intake applied, in order."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.drops: list[tuple[str, int]] = []

    def apply(self, chunk: list[bytes]) -> None:
        self.messages.extend(chunk)

    def drop(self, reason: str, detail: str, count: int) -> None:
        self.drops.append((reason, count))


def spilling(folder: Path, applied: Applied, *, memory_bytes: int) -> Intake:
    """An intake on a real journal whose thread stays away, keeping ``memory_bytes`` in memory."""
    return Intake(
        applied.apply,
        journal=Journal(folder / "s.db"),
        memory_bytes=memory_bytes,
        gather=60.0,
        on_drop=applied.drop,
    )


def client_on(folder: Path, **delivery: object) -> pqlsdk.Client:
    client = pqlsdk.Client(
        store=f"sqlite:///{folder}/s.db",
        delivery=pqlsdk.Delivery(**delivery),  # type: ignore[arg-type]
    )
    client._recorder.intake._gather = 60.0  # type: ignore[union-attr]  # the intake thread stays away
    return client


def test_messages_past_the_memory_bound_are_read_back_in_order_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``memory_bytes`` messages are in the journal only, across files, and come back."""
    monkeypatch.setattr(_journal, "_SEGMENT", 64 << 10)  # several files for 300 KiB
    applied = Applied()
    intake = spilling(tmp_path, applied, memory_bytes=4 << 10)
    sent = [b"%06d" % i + b"." * 1000 for i in range(300)]
    for data in sent[:150]:
        intake.put(data)
    intake.drain(limit=100)  # read back in part, while more arrive
    for data in sent[150:]:
        intake.put(data)
    assert intake._memory <= (4 << 10) + 1006
    assert intake.pending() == 200
    intake.drain()
    assert applied.messages == sent
    assert (intake.pending(), intake.applied, applied.drops) == (0, 300, [])
    intake.close()


def test_a_flush_marker_amid_spilled_messages_is_reached_with_its_chunk(tmp_path: Path) -> None:
    """A marker between messages in memory and messages read back is taken in their order."""
    applied = Applied()
    intake = spilling(tmp_path, applied, memory_bytes=1000)
    sent = [b"%06d" % i + b"." * 1000 for i in range(4)]
    intake.put(sent[0])  # in memory: the bound is reached
    marker = _Marker()
    intake._pending.append(marker)  # what settle() queues
    for data in sent[1:]:
        intake.put(data)  # in the journal only, after the marker
    assert (intake._spilled, marker.reached) == (3, False)
    intake.drain()
    assert (applied.messages, marker.reached, intake.pending()) == (sent, True, 0)
    intake.close()


def test_memory_stays_bounded_with_a_large_backlog(tmp_path: Path) -> None:
    """20,000 waiting messages (4 MB) hold little memory: the journal holds them."""
    applied = Applied()
    intake = spilling(tmp_path, applied, memory_bytes=16 << 10)
    message = b"m" * 200
    intake.put(message)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20_000):
            intake.put(message)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 256 << 10
    intake.drain()
    assert len(applied.messages) == 20_001
    intake.close()


def test_a_deleted_journal_counts_its_messages_as_lost(tmp_path: Path) -> None:
    """Journal files deleted under the process: what only they held is counted, not hung on."""
    applied = Applied()
    intake = spilling(tmp_path, applied, memory_bytes=100)
    for i in range(5):
        intake.put(b"%03d" % i + b"." * 60)
    for path in tmp_path.glob("s.db.journal.*"):
        path.unlink()
    intake.drain()
    assert [data[:3] for data in applied.messages] == [b"000", b"001"]
    assert applied.drops == [("journal_lost", 3)]
    assert (intake.pending(), intake.applied) == (0, 5)
    intake._memory_bytes = 0  # now nothing at all is in memory
    intake.put(b"005")
    for path in tmp_path.glob("s.db.journal.*"):
        path.unlink()
    intake.drain()
    assert applied.drops[-1] == ("journal_lost", 1)
    assert (intake.pending(), intake.applied) == (0, 6)
    intake.close()


def test_a_client_applies_a_spilled_backlog_once(tmp_path: Path) -> None:
    """A client's calls past the memory bound are recorded once each, from the journal."""
    client = client_on(tmp_path)
    client._recorder.intake._memory_bytes = 2000  # type: ignore[union-attr]
    for i in range(200):
        client.track("u", "tick", {"i": i})
    assert client._recorder.intake._spilled > 150  # type: ignore[union-attr]
    assert client.user("u").tracks == 200  # type: ignore[union-attr]
    assert client.stats().dropped == {}
    client.close()


def test_drop_past_the_backlog_bound_counts_and_logs_and_keeps_what_came_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``on_full="drop_newest"``: later calls are dropped, counted, logged once; earlier kept."""
    client = client_on(tmp_path, backlog_bytes=600)
    with caplog.at_level(logging.WARNING, logger="pqlsdk"):
        for i in range(10):
            client.track("u", "tick", {"i": i})
    dropped = client.stats().dropped["backlog_full"]
    assert 0 < dropped < 10
    assert len([r for r in caplog.records if "backlog" in r.getMessage()]) == 1
    assert client.user("u").tracks == 10 - dropped  # type: ignore[union-attr]
    client.close()


def test_block_never_waits_longer_than_its_bound(tmp_path: Path) -> None:
    """``on_full="block"``: a call past the bound waits ``block_timeout``, then drops."""
    client = client_on(tmp_path, backlog_bytes=1, on_full="block", block_timeout=0.02)
    took = []
    for _ in range(3):
        started = time.perf_counter()
        client.track("u", "tick")
        took.append(time.perf_counter() - started)
    assert min(took) >= 0.02
    assert max(took) < 0.02 + 0.25  # a shared machine's scheduling, not a stall
    assert client.stats().dropped == {"backlog_full": 3}
    client.close()


def test_block_goes_on_once_the_intake_makes_room(tmp_path: Path) -> None:
    """``on_full="block"`` with the intake live: calls wait for room and nothing is dropped."""
    client = client_on(tmp_path, backlog_bytes=3000, on_full="block", block_timeout=5.0)
    client._recorder.intake._gather = 0.0  # type: ignore[union-attr]
    for i in range(300):
        client.track("u", "tick", {"i": i})
    assert client.stats().dropped == {}
    assert client.user("u").tracks == 300  # type: ignore[union-attr]
    client.close()


def test_an_unknown_on_full_is_refused_at_construction() -> None:
    """A misspelt policy is a ConfigError naming it, not a silent default."""
    with pytest.raises(pqlsdk.ConfigError, match="'wait'"):
        pqlsdk.Delivery(on_full="wait")  # type: ignore[arg-type]


def test_an_intake_nobody_counts_for_logs_its_drops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without ``on_drop`` a drop still reaches the host's logs."""
    intake = Intake(Applied().apply, journal=Journal(tmp_path / "s.db"), max_bytes=1)
    with caplog.at_level(logging.WARNING, logger="pqlsdk"):
        intake.put(b"mm")
    assert "dropped 1 message(s)" in caplog.text
    intake.close()


@contextlib.contextmanager
def file_size_limit(size: int) -> Iterator[None]:
    """Writes past ``size`` bytes fail in this process, as on a full disk (RLIMIT_FSIZE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_message_the_journal_could_not_take_keeps_everyone_s_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the disk refuses leaves no torn record, and commits release no unread message.

    One file per record, so a release one place too far would delete a message
    still waiting in the journal only.
    """
    monkeypatch.setattr(_journal, "_SEGMENT", 1)
    applied = Applied()
    faults: list[str] = []
    intake = Intake(
        applied.apply,
        journal=Journal(tmp_path / "s.db"),
        memory_bytes=100,
        gather=60.0,
        on_fault=lambda reason, detail: faults.append(reason),
        on_drop=applied.drop,
    )
    journal = intake._journal
    assert journal is not None
    sent = [b"%03d" % i + b"." * 60 for i in range(12)]
    for data in sent[:5]:
        intake.put(data)
    with file_size_limit(8):  # less than a record: its file cannot be allocated
        intake.put(sent[5])
    for data in sent[6:]:
        intake.put(data)
    assert faults == ["journal_error"]
    intake.drain(limit=6)
    journal.release(intake.applied)  # the store committed what was applied
    intake.drain()
    assert applied.messages == sent
    assert applied.drops == []
    assert all(path.stat().st_size != 8 for path in tmp_path.glob("s.db.journal.*"))
    intake.close()
