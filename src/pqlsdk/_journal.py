"""The journal: each accepted message on disk before its call returns, until committed.

A buffered SQLite store commits at least every 200 ms, and the intake applies
messages some milliseconds after the call that accepted them; until then they
lived only in the process, and a SIGKILL (the OOM killer, a deploy that does
not wait) lost them. The journal closes that window without making the caller
wait: ``append()`` writes the encoded message (the bytes the call already has)
to an append-only file with one ``os.write``. The page cache keeps what was
written through the death of the process; only a machine crash can lose the
last writes the kernel had not flushed yet.

Records are framed by a 4-byte length. Each record gets a sequence number
(how many appends were tried before it, plus one: one that failed still takes
its place, as the intake counts every message it applies); after the store commits every
message up to one of them, ``release()`` gives the space back: whole files
(segments) are deleted, and the file being written is swapped for an
empty one once everything in it is committed. Nothing is ever rewritten, so a record is on
disk exactly until its commit.

Each client writes its own files, named after the process (``_liveness``
identity, so another process can tell it died) and a token (several clients
in one process): ``<store>.journal.<holder, hex>.<token>.<segment>``. A
client opening the store claims (renames to its own name, atomically, so two
never replay the same file) the journals of processes that died, and records
their messages; recording is idempotent by ``messageId``, so a record already
committed before the death is skipped, and its outbox row was queued once.

The lock orders the callers (a record's place in the file is its place in the
intake's queue). Nothing under it lets go of the GIL: a thread that gives the
GIL up in a call (any system call through ``os``) may wait up to the switch
interval (5 ms) to get it back while the intake, the committer or the sender
runs Python, and a caller that finds the lock held waits for whoever holds it
the same way. So the append is a ``write(2)`` made through ``ctypes.PyDLL``,
which keeps the GIL (``os.write`` where libc cannot be called: the wait is
then possible again), and the committer takes the lock only for the instant
it swaps files, never across a system call: space is given back by opening a
new file first (outside the lock), swapping it in when everything in the one
being written is committed, and closing and deleting the old file afterwards
(a truncation, 1.5 to 10 ms, once ran under the lock). The file opened for the
swap, or opened ahead when the file being written passes half its size, is
also what the next rotation takes, so a caller rotating makes no system call
either. A forked child starts its own files.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import secrets
import struct
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Final, cast

from ._liveness import gone, identity

__all__ = ["Journal"]

_SEGMENT: Final = 8 << 20
"""Bytes after which appends go to a new file, so released files can be deleted whole."""
_READ: Final = 1 << 20
"""Bytes read back at once when a backlog is re-read from the journal."""
_HEADER: Final = struct.Struct("<I")
_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


class Journal:
    """The append-only files of one client's accepted, not yet committed messages."""

    def __init__(self, store: Path) -> None:
        """Journal next to the SQLite file ``store``."""
        self._store = store
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._prefix = f"{self._store.name}.journal.{identity().encode().hex()}."
        self._token = secrets.token_hex(4)
        self._fd: int | None = None
        self._segment = 0
        self._next = 0  # the next segment number to give a new file
        self._spare: tuple[int, int] | None = None  # a new file opened ahead: segment, descriptor
        self._retired: list[tuple[int, Path | None]] = []  # descriptors to close, files to delete
        self._size = 0  # bytes in the file being written
        self._held = 0  # bytes in every file not yet released
        self._written = 0  # sequence number of the last record appended
        self._released = 0  # records up to this one are committed
        # Earlier files: (path, size, sequence number of their last record).
        self._closed: deque[tuple[Path, int, int]] = deque()
        self._write = _writer()

    def _path(self, segment: int | str) -> Path:
        return self._store.with_name(f"{self._prefix}{self._token}.{segment}")

    def append(self, data: bytes) -> tuple[int, int]:
        """Write one record (the lock is held by the caller); return where: segment and offset."""
        # Its place in the order, written or not: the intake counts it applied either way.
        self._written += 1
        fd = self._fd
        if fd is None or self._size >= _SEGMENT:
            fd = self._rotate()
        record = _HEADER.pack(len(data)) + data
        at = self._size
        if self._write(fd, record) < len(record):  # the disk filled mid-record: no torn record
            os.ftruncate(fd, at)
            raise OSError(errno.ENOSPC, "the journal's write was cut short")
        self._size += len(record)
        self._held += len(record)
        return self._segment, at

    def read(self, segment: int, offset: int, count: int) -> tuple[list[bytes], int, int]:
        """Read back up to ``count`` records appended from ``(segment, offset)`` on.

        For the intake, which keeps only a bounded amount of a backlog in memory
        and takes the rest from here. The records asked for were written whole
        (their ``append()`` returned) and are not released yet. Reads at most
        one block (``_READ`` bytes, or one record if larger); returns the
        records and where the next one starts. None at all means the files are
        gone (deleted under the process): the caller counts them as lost.
        """
        while segment <= self._segment:
            try:
                with self._path(segment).open("rb") as file:
                    file.seek(offset)
                    data = file.read(_READ)
                    if len(data) >= _HEADER.size:  # a record larger than a block
                        (size,) = _HEADER.unpack_from(data)
                        data += file.read(max(0, _HEADER.size + size - len(data)))
            except FileNotFoundError:
                data = b""
            records = _records(data)[:count]
            if records:
                return records, segment, offset + sum(_HEADER.size + len(r) for r in records)
            segment, offset = segment + 1, 0  # the rest is in the next file
        return [], segment, offset

    @property
    def lock(self) -> threading.Lock:
        """Held by the appending call around ``append()`` and its queueing."""
        return self._lock

    def _rotate(self) -> int:
        """Move on to a new file (the lock is held); the full one is kept until released.

        The new file is the spare the committer opened ahead, if there is one:
        then no system call is made here. Closing the full file's descriptor is
        left to the next ``release()``.
        """
        if self._fd is not None:
            # Its last record is the one before the record being appended.
            self._closed.append((self._path(self._segment), self._size, self._written - 1))
            self._retired.append((self._fd, None))
            self._fd = None  # not a closed descriptor if the next cannot be opened
        self._segment, self._fd = self._spare or self._open(self._number())
        self._spare = None
        self._size = 0
        return self._fd

    def _number(self) -> int:
        """Give out the next segment number (the lock is held)."""
        self._next += 1
        return self._next - 1

    def _open(self, segment: int) -> tuple[int, int]:
        return segment, os.open(self._path(segment), _FLAGS, 0o600)

    def release(self, committed: int) -> None:
        """Give back the space of records up to ``committed``: the store committed them.

        For the committer's thread: every system call is made outside the lock
        (see the module's docstring).
        """
        with self._lock:
            self._released = max(self._released, committed)
            wanted = self._spare_wanted()
            done, self._retired = self._retired, []
            while self._closed and self._closed[0][2] <= self._released:
                path, size, _ = self._closed.popleft()
                self._held -= size
                done.append((-1, path))
        if wanted is not None:
            done.extend(self._offer(wanted))
        _let_go(done)

    def _idle(self) -> bool:
        """Whether the file being written holds records, all of them committed (lock held)."""
        return self._fd is not None and self._size > 0 and self._written <= self._released

    def _swap(self, spare: tuple[int, int]) -> tuple[int, Path | None]:
        """Write to ``spare`` from now on; return the old file, to close and delete (lock held)."""
        old = (cast("int", self._fd), self._path(self._segment))
        self._held -= self._size
        self._segment, self._fd = spare
        self._size = 0
        return old

    def _spare_wanted(self) -> int | None:
        """Swap in the spare if that is due; return a number for a new file if one is wanted.

        A new file is wanted to swap for the file being written once everything
        in it is committed, or ahead of its rotation once it is half full (the
        lock is held).
        """
        if self._fd is None:
            return None
        if self._spare is None:
            return self._number() if self._idle() or self._size >= _SEGMENT // 2 else None
        if self._idle():
            self._retired.append(self._swap(self._spare))
            self._spare = None
        return None

    def _offer(self, segment: int) -> list[tuple[int, Path | None]]:
        """Open file ``segment``; swap it in if what is being written is all committed.

        Returns what to let go of: the swapped-out file. A file that cannot be
        opened (a full disk, no descriptors left) is not offered: the file
        being written keeps growing, and the next rotation opens its own.
        """
        try:
            spare = self._open(segment)
        except OSError:
            return []
        with self._lock:
            if self._fd is None:  # pragma: no cover - closed meanwhile: a close racing a commit
                return [(spare[1], self._path(segment))]
            if segment < self._segment:
                # A rotation took a later number meanwhile: files must follow in order
                # (a read-back goes on to the next number), so this one goes.
                return [(spare[1], self._path(segment))]
            if self._idle():
                return [self._swap(spare)]
            self._spare = spare  # the next rotation takes it
            return []

    def pending_bytes(self) -> int:
        """Bytes written and not yet released."""
        return self._held

    def claim_orphans(self) -> list[bytes]:
        """Take over the journals of processes that died; return their records in order.

        Each is renamed to this client's name first (only one claimant wins a
        file) and kept as a released-at-first-commit file of this journal.
        """
        found: list[bytes] = []
        marker = ".journal."
        pattern = f"{glob.escape(self._store.name)}{marker}*"
        for path in sorted(self._store.parent.glob(pattern)):
            holder_hex = path.name[len(self._store.name) + len(marker) :].split(".", 1)[0]
            try:
                holder = bytes.fromhex(holder_hex).decode()
            except ValueError:
                continue  # not a journal of ours
            if not gone(holder):
                continue
            mine = self._path(f"replay-{len(self._closed)}")
            try:
                path.rename(mine)
            except FileNotFoundError:  # pragma: no cover - another claimant won the race
                continue
            data = mine.read_bytes()
            found.extend(_records(data))
            self._closed.append((mine, len(data), 0))
            self._held += len(data)
        return found

    def close(self) -> None:
        """Close the files; delete the one being written if everything in it is committed."""
        with self._lock:
            fd, self._fd = self._fd, None
            done, self._retired = self._retired, []
            if self._spare is not None:
                done.append((self._spare[1], self._path(self._spare[0])))
                self._spare = None
            if fd is not None:
                committed = self._written <= self._released
                done.append((fd, self._path(self._segment) if committed else None))
        _let_go(done)

    def after_fork(self) -> None:
        """In a forked child: leave the parent's files to the parent; start new ones."""
        # The child's copies of the descriptors; the parent keeps its own, and its files.
        _let_go([(fd, None) for fd, _ in self._retired])
        for fd in (self._fd, self._spare and self._spare[1]):
            if fd is not None:
                os.close(fd)
        self._reset()


def _let_go(files: list[tuple[int, Path | None]]) -> None:
    """Close each descriptor (-1: none) and delete each file (None: keep it)."""
    for fd, path in files:
        if fd >= 0:
            os.close(fd)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _writer() -> Callable[[int, bytes], int]:
    """``os.write``, but keeping the GIL: libc's ``write(2)`` called through ``ctypes.PyDLL``.

    A write to the page cache takes a microsecond or two; letting the GIL go
    for it is what costs (see the module's docstring). Where libc cannot be
    loaded this way, ``os.write``.
    """
    try:
        import ctypes  # noqa: PLC0415 - only a journaling client needs it

        libc = ctypes.PyDLL(None, use_errno=True)
        write = libc.write
    except (ImportError, OSError, TypeError, AttributeError):  # pragma: no cover - no libc
        return os.write
    write.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
    write.restype = ctypes.c_ssize_t

    def gil_held_write(fd: int, data: bytes) -> int:
        written: int = write(fd, data, len(data))
        if written < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return written

    return gil_held_write


def _records(data: bytes) -> list[bytes]:
    """Split a journal file into records; a torn last record (a machine crash) is left out."""
    records = []
    at = 0
    while at + _HEADER.size <= len(data):
        (size,) = _HEADER.unpack_from(data, at)
        end = at + _HEADER.size + size
        if end > len(data):
            break
        records.append(data[at + _HEADER.size : end])
        at = end
    return records
