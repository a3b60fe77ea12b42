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
(segments) are deleted, and the file being written is truncated once
everything in it is committed. Nothing is ever rewritten, so a record is on
disk exactly until its commit.

Each client writes its own files, named after the process (``_liveness``
identity, so another process can tell it died) and a token (several clients
in one process): ``<store>.journal.<holder, hex>.<token>.<segment>``. A
client opening the store claims (renames to its own name, atomically, so two
never replay the same file) the journals of processes that died, and records
their messages; recording is idempotent by ``messageId``, so a record already
committed before the death is skipped, and its outbox row was queued once.

The lock orders the callers (a record's place in the file is its place in the
intake's queue); the committer takes it only for the instant it swaps or
truncates a file, never across a commit. A forked child starts its own files.
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
from pathlib import Path
from typing import Final

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
        self._size = 0  # bytes in the file being written
        self._held = 0  # bytes in every file not yet released
        self._written = 0  # sequence number of the last record appended
        self._released = 0  # records up to this one are committed
        # Earlier files: (path, size, sequence number of their last record).
        self._closed: deque[tuple[Path, int, int]] = deque()

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
        if os.write(fd, record) < len(record):  # the disk filled mid-record: no torn record
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
        """Close the file being written (kept until released) and open the next."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None  # not a closed descriptor if the next cannot be opened
            # Its last record is the one before the record being appended.
            self._closed.append((self._path(self._segment), self._size, self._written - 1))
            self._segment += 1
        self._fd = os.open(self._path(self._segment), _FLAGS, 0o600)
        self._size = 0
        return self._fd

    def release(self, committed: int) -> None:
        """Give back the space of records up to ``committed``: the store committed them."""
        if committed <= self._released and not self._closed:
            return
        done: list[Path] = []
        with self._lock:
            self._released = max(self._released, committed)
            while self._closed and self._closed[0][2] <= self._released:
                path, size, _ = self._closed.popleft()
                self._held -= size
                done.append(path)
            if self._fd is not None and self._size and self._written <= self._released:
                os.ftruncate(self._fd, 0)  # O_APPEND: the next record goes to offset 0
                self._held -= self._size
                self._size = 0
        for path in done:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

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
        """Close the file; delete it if everything in it is committed."""
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)
                if self._written <= self._released:
                    with contextlib.suppress(FileNotFoundError):
                        self._path(self._segment).unlink()

    def after_fork(self) -> None:
        """In a forked child: leave the parent's files to the parent; start new ones."""
        if self._fd is not None:
            os.close(self._fd)  # the child's copy of the descriptor; the parent keeps its own
        self._reset()


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
