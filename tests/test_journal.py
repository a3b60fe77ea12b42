"""The journal: accepted calls on disk until committed, never a wait below its bound.

Real files next to a real SQLite store; the SIGKILL end to end test is in
``tests/delivery/test_journal.py``.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

import pqlsdk
from pqlsdk import _journal
from pqlsdk._intake import Intake
from pqlsdk._journal import Journal
from pqlsdk.messages import Track, check


def journals(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.journal.*"))


def records(path: Path) -> list[bytes]:
    """The records in a journal file (its allocated rest is zeros)."""
    return _journal._records(path.read_bytes())


def journaled(folder: Path) -> int:
    """Bytes of the records in the folder's journal files, headers included."""
    return sum(4 + len(data) for path in journals(folder) for data in records(path))


def tick(i: int) -> bytes:
    at = datetime.now(UTC)
    return check(
        Track(user_id="u", event="tick", properties={"i": i}, timestamp=at, message_id=f"m-{i}")
    )[1]


def client_on(folder: Path, **delivery: object) -> pqlsdk.Client:
    return pqlsdk.Client(
        store=f"sqlite:///{folder}/s.db",
        delivery=pqlsdk.Delivery(**delivery),  # type: ignore[arg-type]
    )


def dead_journal(folder: Path, records: list[bytes], *, commit_first: int = 0) -> None:
    """Leave the journal of a process that died, having committed ``commit_first`` records."""
    script = """
        import os, sys
        from pathlib import Path
        from pqlsdk._journal import Journal
        journal = Journal(Path(sys.argv[1]))
        for data in sys.stdin.buffer.read().split(b"\\0"):
            with journal.lock:
                journal.append(data)
        os._exit(0)
    """
    if commit_first:
        with client_on(folder) as client:
            for i in range(commit_first):
                client.track("u", "tick", {"i": i}, message_id=f"m-{i}")
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), str(folder / "s.db")],
        input=b"\0".join(records),
        check=True,
    )


def test_a_call_is_in_the_journal_when_it_returns(tmp_path: Path) -> None:
    """Before any apply or commit, the call's bytes are in the journal file."""
    client = client_on(tmp_path, buffer_interval=3600)
    client.track("u", "tick", message_id="m-1")
    assert b'"m-1"' in b"".join(path.read_bytes() for path in journals(tmp_path))
    client.close()


def test_a_commit_releases_the_journal_and_close_deletes_it(tmp_path: Path) -> None:
    """Committed records leave the journal; a closed client leaves no journal file."""
    client = client_on(tmp_path, buffer_interval=3600)
    client.track("u", "tick")
    client.flush()
    assert journaled(tmp_path) == 0
    client.close()
    assert journals(tmp_path) == []


def test_a_dead_process_journal_is_recorded_at_open(tmp_path: Path) -> None:
    """A new client records what a process that died left in its journal, and deletes it."""
    dead_journal(tmp_path, [tick(i) for i in range(3)])
    with client_on(tmp_path) as client:
        assert client.user("u").tracks == 3  # type: ignore[union-attr]
    assert journals(tmp_path) == []


def test_replay_skips_what_the_dead_process_had_committed(tmp_path: Path) -> None:
    """Recording is idempotent by messageId: a record committed before the death counts once."""
    dead_journal(tmp_path, [tick(i) for i in range(4)], commit_first=2)
    with client_on(tmp_path) as client:
        assert client.user("u").tracks == 4  # type: ignore[union-attr]


def test_a_torn_or_unreadable_record_is_left_out_and_counted(tmp_path: Path) -> None:
    """A record that is not a message is counted as dropped; a torn last one is not read."""
    dead_journal(tmp_path, [tick(0), b"not json"])
    path = journals(tmp_path)[0]
    with path.open("r+b") as torn:  # a header whose record runs past the end of the file
        torn.seek(journaled(tmp_path))
        torn.write((path.stat().st_size | 1 << 31).to_bytes(4, "little") + b"{")
    with client_on(tmp_path) as client:
        assert client.user("u").tracks == 1  # type: ignore[union-attr]
        assert client.stats().dropped == {"journal_corrupt": 1}


def test_a_live_process_journal_is_left_alone(tmp_path: Path) -> None:
    """Another live client's journal (here: this process's) is not replayed."""
    first = client_on(tmp_path, buffer_interval=3600)
    first._recorder.intake._closed = True  # type: ignore[union-attr]  # keep it unapplied
    first.track("u", "tick")
    with client_on(tmp_path) as second:
        assert second.user("u") is None
    first.close()


def test_files_that_only_look_like_journals_are_left_alone(tmp_path: Path) -> None:
    """A name with the journal's marker but no holder in it is not someone's journal."""
    (tmp_path / "s.db.journal.notes.txt").write_text("mine")
    with client_on(tmp_path) as client:
        assert client.user("u") is None
    assert (tmp_path / "s.db.journal.notes.txt").exists()


def test_a_journal_that_cannot_be_written_keeps_the_message(tmp_path: Path) -> None:
    """A file name past the file system's limit: the call is kept, the fault counted."""
    long = tmp_path / ("s" * 200 + ".db")
    client = pqlsdk.Client(store=f"sqlite:///{long}")
    client.track("u", "tick")
    assert client.user("u").tracks == 1  # type: ignore[union-attr]
    assert client.stats().errors == {"journal_error": 1}
    client.close()


def test_journals_go_to_new_files_and_committed_ones_are_deleted(tmp_path: Path) -> None:
    """Past a segment's size appends open the next file; a release deletes the earlier whole."""
    journal = Journal(tmp_path / "s.db")
    big = b"x" * (5 << 20)
    for data in (big, b"y" * (2 << 20), big):  # the third does not fit in the first file
        with journal.lock:
            journal.append(data)
    assert len(journals(tmp_path)) == 2
    journal.release(2)
    # The first file is gone; the second is past half full, so a spare is opened ahead.
    assert [records(path) for path in journals(tmp_path)] == [[big], []]
    assert journal.pending_bytes() == (5 << 20) + 4
    journal.release(3)
    assert journal.pending_bytes() == 0
    journal.close()
    assert journals(tmp_path) == []


def test_a_release_makes_no_system_call_under_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Giving space back never holds the lock a calling thread takes across a system call."""
    journal = Journal(tmp_path / "s.db")
    under_lock: list[str] = []
    releasing = False

    def watched(name: str) -> Callable[..., object]:
        call = getattr(os, name)

        def run(*args: object) -> object:
            if releasing and journal.lock.locked():
                under_lock.append(name)
            return call(*args)

        return run

    names = ("open", "close", "posix_fallocate", "unlink")
    fake = SimpleNamespace(**{name: getattr(os, name) for name in dir(os)})
    for name in names:
        setattr(fake, name, watched(name))
    monkeypatch.setattr(_journal, "os", fake)
    for i in range(3):
        with journal.lock:
            journal.append(b"x" * (5 << 20))  # the third goes to a second file
        releasing = True
        journal.release(i + 1)
        releasing = False
    assert (under_lock, journal.pending_bytes(), len(journals(tmp_path))) == ([], 0, 1)
    journal.close()


def test_a_committed_file_is_swapped_for_an_empty_one(tmp_path: Path) -> None:
    """Once all of it is committed, appends go to a new file and the old one is deleted."""
    journal = Journal(tmp_path / "s.db")
    with journal.lock:
        journal.append(b"one")
    first = journals(tmp_path)
    journal.release(1)
    with journal.lock:
        journal.append(b"two")
    assert first[0] not in journals(tmp_path)
    assert [records(path) for path in journals(tmp_path)] == [[b"two"]]
    journal.close()


def test_a_rotation_takes_the_file_opened_ahead(tmp_path: Path) -> None:
    """Past half a file, a release opens the next; the rotation then writes there."""
    journal = Journal(tmp_path / "s.db")
    for size in (5 << 20, (3 << 20) - 8):  # the file is full
        with journal.lock:
            journal.append(b"x" * size)
    journal.release(1)  # not all committed: the new file waits as the spare
    journal.release(1)  # and keeps waiting
    spare = journals(tmp_path)[-1]
    with journal.lock:
        journal.append(b"next")
    assert (len(journals(tmp_path)), records(spare)) == (2, [b"next"])
    journal.close()


def test_a_spare_is_swapped_in_once_everything_is_committed(tmp_path: Path) -> None:
    """A file opened ahead replaces the file being written as soon as all of it is committed."""
    journal = Journal(tmp_path / "s.db")
    with journal.lock:
        journal.append(b"x" * (5 << 20))
    journal.release(0)  # half full, nothing committed: a spare is opened ahead
    journal.release(1)
    assert [records(path) for path in journals(tmp_path)] == [[]]
    assert journal.pending_bytes() == 0
    journal.close()
    assert journals(tmp_path) == []


def test_a_spare_numbered_before_a_rotation_is_not_used(tmp_path: Path) -> None:
    """A rotation between a release's two steps took a later file: the earlier spare goes."""
    journal = Journal(tmp_path / "s.db")
    with journal.lock:
        journal.append(b"x" * (5 << 20))
        wanted = journal._spare_wanted()  # what release() asks for, under the lock
        journal.append(b"x" * ((3 << 20) - 8))  # the file is full
        journal.append(b"next")  # past the segment: a new file, numbered after the wanted one
    assert wanted is not None
    _journal._let_go(journal._offer(wanted))
    with journal.lock:
        journal.append(b"after")
    assert journal.read(1, 0, 10)[0] == [b"next", b"after"]
    assert len(journals(tmp_path)) == 2
    journal.close()


def test_close_deletes_the_spare_and_keeps_what_is_not_committed(tmp_path: Path) -> None:
    """The file opened ahead goes with the client; uncommitted records stay for a replay."""
    journal = Journal(tmp_path / "s.db")
    with journal.lock:
        journal.append(b"x" * (5 << 20))
    journal.release(0)  # a spare, empty
    journal.close()
    assert [records(path) for path in journals(tmp_path)] == [[b"x" * (5 << 20)]]


def test_close_waits_for_a_file_being_opened_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit still opening the next file when the client closes: once close() returns,
    no file of the journal appears or stays (the host may delete the directory then)."""
    journal = Journal(tmp_path / "s.db")
    with journal.lock:
        journal.append(b"x" * (5 << 20))
    opening, go_on = threading.Event(), threading.Event()
    allocate = _journal._allocate

    def slow(fd: int, size: int) -> None:
        opening.set()
        go_on.wait(10)
        allocate(fd, size)

    monkeypatch.setattr(_journal, "_allocate", slow)
    committer = threading.Thread(target=journal.release, args=(1,))
    committer.start()
    assert opening.wait(10)
    closer = threading.Thread(target=journal.close)
    closer.start()
    closer.join(0.2)
    waited = closer.is_alive()
    go_on.set()
    closer.join(10)
    committer.join(10)
    assert (waited, journals(tmp_path)) == (True, [])


def test_a_spare_that_cannot_be_opened_leaves_the_file_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No file to swap in (a full disk): the records stay where they are, counted, until later."""
    journal = Journal(tmp_path / "s.db")
    with journal.lock:
        journal.append(b"one")

    def refused(segment: int) -> tuple[int, int]:
        raise OSError(errno.ENOSPC, "no space left")

    monkeypatch.setattr(journal, "_open", refused)
    journal.release(1)
    assert [records(path) for path in journals(tmp_path)] == [[b"one"]]
    monkeypatch.undo()
    journal.release(1)
    assert (journal.pending_bytes(), journaled(tmp_path)) == (0, 0)
    journal.close()


def test_a_file_that_cannot_be_allocated_is_not_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk refuses the file's blocks at open: the append fails and no file stays."""

    def refused(fd: int, size: int) -> None:
        raise OSError(errno.ENOSPC, "no space left")

    monkeypatch.setattr(_journal, "_allocate", refused)
    journal = Journal(tmp_path / "s.db")
    with journal.lock, pytest.raises(OSError, match="no space left"):
        journal.append(b"one")
    assert journals(tmp_path) == []
    journal.close()


def test_a_record_larger_than_the_spare_gets_a_file_of_its_size(tmp_path: Path) -> None:
    """The file opened ahead is too small for the record: it goes, and a larger file takes it."""
    journal = Journal(tmp_path / "s.db")
    with journal.lock:
        journal.append(b"x" * (5 << 20))
    journal.release(0)  # past half full: a spare
    huge = b"y" * (9 << 20)
    with journal.lock:
        journal.append(huge)
    journal.release(0)  # lets go of the small spare, and opens the next ahead
    assert [records(path) for path in journals(tmp_path)] == [[b"x" * (5 << 20)], [huge], []]
    journal.close()


def resident_kib(path: Path) -> int:
    """KiB of ``path``'s mapping resident in this process (Linux's ``/proc/self/smaps``)."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for at, line in enumerate(lines):
        if line.endswith(str(path)):
            return next(int(d.split()[1]) for d in lines[at + 1 :] if d.startswith("Rss:"))
    raise AssertionError(f"{path} is not mapped")


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc")
def test_a_release_takes_the_written_pages_out_of_resident_memory(tmp_path: Path) -> None:
    """Whole pages written leave the process's resident memory; their records stay in the file."""
    journal = Journal(tmp_path / "s.db")
    sent = [b"%04d" % i + b"." * 996 for i in range(100)]  # 100 KB: 24 whole pages
    for data in sent:
        with journal.lock:
            journal.append(data)
    path = journals(tmp_path)[0]
    before = resident_kib(path)
    journal.release(0)  # nothing committed: only the memory goes
    assert (before >= 96, resident_kib(path) <= 4, records(path)) == (True, True, sent)
    journal.close()


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc")
def test_a_release_takes_a_bounded_part_out_of_resident_memory(tmp_path: Path) -> None:
    """A release takes at most ``_UNMAP`` bytes out (madvise keeps the GIL); later ones the rest."""
    journal = Journal(tmp_path / "s.db")
    for _ in range(3):
        with journal.lock:
            journal.append(b"x" * (400 << 10))  # 1.2 MB: more than one release takes
    path = journals(tmp_path)[0]
    journal.release(0)
    first = resident_kib(path)
    journal.release(0)
    journal.release(0)
    assert (first >= 1200 - 512, resident_kib(path) <= 4) == (True, True)
    journal.close()


def test_a_forked_child_closes_the_parents_maps(tmp_path: Path) -> None:
    """The child's copies of every mapped file (written, rotated out, spare) are closed."""
    journal = Journal(tmp_path / "s.db")
    for _ in range(3):
        with journal.lock:
            journal.append(b"x" * (5 << 20))
    wanted = journal._spare_wanted()  # a spare ahead, as release() opens it, but no release
    assert wanted is not None
    assert journal._offer(wanted) == []
    views = [journal._map, *(view for view, _ in journal._retired), journal._spare[1]]  # type: ignore[index]
    journal.after_fork()
    assert [view.closed for view in views] == [True] * 4  # type: ignore[union-attr]
    assert len(journals(tmp_path)) == 4  # the parent's files stay


def test_a_forked_child_writes_its_own_journal(tmp_path: Path) -> None:
    """After fork() the child appends to a file of its own; the parent's stays the parent's."""
    client = client_on(tmp_path, buffer_interval=3600)
    client.track("u", "tick", {"who": "parent"})
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its exit status is the test
        client.track("u", "tick", {"who": "child"})
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    contents = sorted(path.read_bytes() for path in journals(tmp_path))
    assert [b'"parent"' in c for c in contents] == [False, True]
    assert [b'"child"' in c for c in contents] == [True, False]
    client.close()


def test_an_intake_reset_after_fork_starts_a_new_journal_file(tmp_path: Path) -> None:
    """What a forked child's intake does (run here, where coverage sees it): new file, old kept."""
    journal = Journal(tmp_path / "s.db")
    intake = Intake(lambda chunk: None, journal=journal, gather=60.0)
    intake.put(b"parent")
    intake.after_fork()
    intake.put(b"child")
    assert sorted(data for path in journals(tmp_path) for data in records(path)) == [
        b"child",
        b"parent",
    ]
    intake.close()
    journal.close()


def test_a_journal_reset_before_any_append_opens_nothing(tmp_path: Path) -> None:
    """A child forked before its parent's first call has no file to close, and makes none."""
    journal = Journal(tmp_path / "s.db")
    journal.after_fork()
    assert journals(tmp_path) == []


def test_a_journal_fault_nobody_counts_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An intake whose journal cannot be written, and no fault handler, logs it and goes on."""
    applied: list[bytes] = []
    intake = Intake(applied.extend, journal=Journal(tmp_path / ("s" * 250)))
    intake.put(b"kept")
    intake.close()
    assert (applied, "cannot write the journal" in caplog.text) == ([b"kept"], True)


def test_a_dead_process_files_are_read_back_in_segment_order(tmp_path: Path) -> None:
    """Its tenth file comes after its second (numbers, not names), its claimed ones first."""
    dead_journal(tmp_path, [tick(0)])
    (first,) = journals(tmp_path)
    stem = first.name.rsplit(".", 1)[0]

    def leave(segment: str, i: int) -> None:
        data = tick(i)
        (tmp_path / f"{stem}.{segment}").write_bytes(
            (len(data) | 1 << 31).to_bytes(4, "little") + data
        )

    first.unlink()
    leave("10", 3)
    leave("2", 2)
    leave("replay-1", 1)
    leave("replay-0", 0)
    found = Journal(tmp_path / "s.db").claim_orphans()
    assert [json.loads(data)["properties"]["i"] for data in found] == [0, 1, 2, 3]
