"""The journal: each accepted message on disk before its call returns, until committed.

A buffered SQLite store commits at least every 200 ms, and the intake applies
messages some milliseconds after the call that accepted them; until then they
lived only in the process, and a SIGKILL (the OOM killer, a deploy that does
not wait) lost them. The journal closes that window without making the caller
wait: ``append()`` copies the encoded message (the bytes the call already has)
into a file mapped into memory (``mmap``, shared): no system call, a copy of
some hundred bytes. The mapped pages are the file's pages in the page cache,
so they outlive the process; only a machine crash can lose the last writes the
kernel had not flushed yet. A ``write(2)`` per call cost the caller 2 to 4 µs
(the kernel's write path, cold after the caller's idle time), a third of a
paced ``track()``.

Records are framed by a 4-byte header: the record's length with the top bit
set. Each file is allocated whole when it is opened (``posix_fallocate``), so
a write into its mapping never needs a block (on a full disk it would kill the
process with ``SIGBUS``: the open fails instead, and the call's message is kept
in memory); its unwritten rest is zeros, and a zero header ends the records.
The record's bytes are copied before its header, so a process killed halfway
leaves the end where it was. Each record gets a sequence number
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
the same way. A copy into the mapping keeps the GIL, and the committer takes
the lock only for the instant it swaps files, never across a system call:
space is given back by opening (and allocating, and mapping) a new file first
(outside the lock), swapping it in when everything in the one being written
is committed, and closing and deleting the old file afterwards (a truncation,
1.5 to 10 ms, once ran under the lock). The file opened for the swap, or
opened ahead when the file being written passes half its size, is also what
the next rotation takes, so a caller rotating makes no system call either. A
forked child starts its own files.
"""

from __future__ import annotations

import contextlib
import glob
import mmap
import os
import secrets
import struct
import threading
from collections import deque
from pathlib import Path
from typing import Final, cast

from ._liveness import gone, identity

__all__ = ["Journal"]

_SEGMENT: Final = 8 << 20
"""Bytes of a file (a larger record gets a file of its own size); released files go whole."""
_READ: Final = 1 << 20
"""Bytes read back at once when a backlog is re-read from the journal."""
_HEADER: Final = struct.Struct("<I")
_HEAD: Final = _HEADER.size
_pack_header: Final = _HEADER.pack_into  # once, not on each append
_WHOLE: Final = 1 << 31
"""Set in every record's header, so that only the zeros past the last record end them."""
_SIZE: Final = _WHOLE - 1
_FLAGS: Final = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
_UNMAP: Final = 512 << 10
"""Most bytes one release takes out of resident memory (``madvise`` keeps the GIL)."""
_Done = tuple[mmap.mmap | None, Path | None]
"""A file to let go of: its map to close (None: none), its path to delete (None: keep it)."""
_ZEROS: Final = 1 << 20
"""Bytes of zeros written at once where a file cannot be allocated otherwise."""


def _order(tail: str) -> tuple[str, str, int, int, str]:
    """Sort key of a journal file's name after the marker: ``holder.token.segment``.

    A holder's files are read back in the order it wrote them: the files it had
    claimed at its start (``replay-N``) first, then its own by segment number,
    as numbers (``.10`` after ``.2``, which a sort of the names would invert).
    """
    holder, _, rest = tail.partition(".")
    token, _, segment = rest.partition(".")
    claimed = segment.startswith("replay-")
    number = segment.removeprefix("replay-")
    if not number.isdigit():
        return holder, token, 2, 0, segment
    return holder, token, 0 if claimed else 1, int(number), ""


class Journal:
    """The append-only files of one client's accepted, not yet committed messages."""

    def __init__(self, store: Path) -> None:
        """Journal next to the SQLite file ``store``."""
        self._store = store
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        # Held by a release, which opens and deletes files outside ``_lock``, and by
        # close(): once close() returns, no file of this journal appears or goes (a
        # host deleting the directory while a committer still finishes a commit).
        self._files = threading.Lock()
        self._prefix = f"{self._store.name}.journal.{identity().encode().hex()}."
        self._token = secrets.token_hex(4)
        self._map: mmap.mmap | None = None  # the file being written
        self._segment = 0
        self._next = 0  # the next segment number to give a new file
        self._spare: tuple[int, mmap.mmap] | None = None  # a new file opened ahead: segment, map
        self._retired: list[_Done] = []  # files to let go of
        self._size = 0  # bytes of the records in the file being written
        self._resident = 0  # bytes of it from where its pages may still be mapped in
        self._held = 0  # bytes in every file not yet released
        self._written = 0  # sequence number of the last record appended
        self._released = 0  # records up to this one are committed
        # Earlier files: (path, bytes of records, sequence number of their last record).
        self._closed: deque[tuple[Path, int, int]] = deque()

    def _path(self, segment: int | str) -> Path:
        return self._store.with_name(f"{self._prefix}{self._token}.{segment}")

    def append(self, data: bytes) -> tuple[int, int]:
        """Write one record (the lock is held by the caller); return where: segment and offset."""
        # Its place in the order, written or not: the intake counts it applied either way.
        self._written += 1
        size = len(data)
        at = self._size
        end = at + _HEAD + size
        view = self._map
        if view is None or end > len(view):
            view = self._rotate(_HEAD + size)
            at, end = 0, _HEAD + size
        view[end - size : end] = data
        _pack_header(view, at, size | _WHOLE)  # last: until then, the records end before it
        self._size = end
        self._held += end - at
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
                        (header,) = _HEADER.unpack_from(data)
                        data += file.read(max(0, _HEADER.size + (header & _SIZE) - len(data)))
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

    def _rotate(self, need: int) -> mmap.mmap:
        """Move on to a new file with room for ``need`` bytes (the lock is held).

        The full one is kept until released. The new file is the spare the
        committer opened ahead, if there is one and the record fits: then no
        system call is made here. Unmapping the full file is left to the next
        ``release()``.
        """
        if self._map is not None:
            # Its last record is the one before the record being appended.
            self._closed.append((self._path(self._segment), self._size, self._written - 1))
            self._retired.append((self._map, None))
            self._map = None  # not a closed map if the next cannot be opened
        spare, self._spare = self._spare, None
        if spare is not None and len(spare[1]) < need:  # a record larger than a file
            self._retired.append((spare[1], self._path(spare[0])))
            spare = None
        self._segment, self._map = spare or self._open(self._number(), need)
        self._size = self._resident = 0
        return self._map

    def _number(self) -> int:
        """Give out the next segment number (the lock is held)."""
        self._next += 1
        return self._next - 1

    def _open(self, segment: int, need: int = 0) -> tuple[int, mmap.mmap]:
        """Create file ``segment``, allocated whole, and map it; ``OSError`` leaves no file."""
        path = self._path(segment)
        fd = os.open(path, _FLAGS, 0o600)
        try:
            size = max(_SEGMENT, need)
            _allocate(fd, size)
            view = mmap.mmap(fd, size)  # shared, read and write; it keeps a descriptor of its own
        except OSError:
            path.unlink()
            raise
        finally:
            os.close(fd)
        return segment, view

    def release(self, committed: int) -> None:
        """Give back the space of records up to ``committed``: the store committed them.

        For the committer's thread: every system call is made outside the lock
        (see the module's docstring).
        """
        with self._files:  # close() waits for the files this opens and deletes
            with self._lock:
                self._released = max(self._released, committed)
                self._unmap_written()
                wanted = self._spare_wanted()
                done, self._retired = self._retired, []
                while self._closed and self._closed[0][2] <= self._released:
                    path, size, _ = self._closed.popleft()
                    self._held -= size
                    done.append((None, path))
            if wanted is not None:
                done.extend(self._offer(wanted))
            _let_go(done)

    def _unmap_written(self) -> None:
        """Take the whole pages written so far out of the process's memory (the lock is held).

        They stay in the page cache, dirty until the kernel writes them back, so
        nothing is lost; only the process's resident memory (what a host's
        monitoring sees of a worker) no longer counts up to a file's 8 MiB.
        ``madvise`` keeps the GIL, like the copies do, so each call takes at
        most ``_UNMAP`` (some 50 µs); a commit every 200 ms keeps up with 2.5 MB/s
        of calls, and a file filled faster goes whole when it is released.
        """
        view = self._map
        written = min(self._size - self._size % mmap.PAGESIZE, self._resident + _UNMAP)
        if view is not None and written > self._resident:
            view.madvise(mmap.MADV_DONTNEED, self._resident, written - self._resident)
            self._resident = written

    def _idle(self) -> bool:
        """Whether the file being written holds records, all of them committed (lock held)."""
        return self._map is not None and self._size > 0 and self._written <= self._released

    def _swap(self, spare: tuple[int, mmap.mmap]) -> _Done:
        """Write to ``spare`` from now on; return the old file, to close and delete (lock held)."""
        old = (cast("mmap.mmap", self._map), self._path(self._segment))
        self._held -= self._size
        self._segment, self._map = spare
        self._size = self._resident = 0
        return old

    def _spare_wanted(self) -> int | None:
        """Swap in the spare if that is due; return a number for a new file if one is wanted.

        A new file is wanted to swap for the file being written once everything
        in it is committed, or ahead of its rotation once it is half full (the
        lock is held).
        """
        if self._map is None:
            return None
        if self._spare is None:
            return self._number() if self._idle() or self._size >= _SEGMENT // 2 else None
        if self._idle():
            self._retired.append(self._swap(self._spare))
            self._spare = None
        return None

    def _offer(self, segment: int) -> list[_Done]:
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
        start = len(self._store.name) + len(marker)
        for path in sorted(self._store.parent.glob(pattern), key=lambda p: _order(p.name[start:])):
            holder_hex = path.name[start:].split(".", 1)[0]
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
            records = _records(mine.read_bytes())
            found.extend(records)
            held = sum(_HEADER.size + len(data) for data in records)
            self._closed.append((mine, held, 0))
            self._held += held
        return found

    def close(self) -> None:
        """Close the files; delete the one being written if everything in it is committed.

        Waits for a file being opened ahead (``_offer``): after close, none appears.
        """
        with self._files:
            with self._lock:
                view, self._map = self._map, None
                done, self._retired = self._retired, []
                if self._spare is not None:
                    done.append((self._spare[1], self._path(self._spare[0])))
                    self._spare = None
                if view is not None:
                    committed = self._written <= self._released
                    done.append((view, self._path(self._segment) if committed else None))
            _let_go(done)

    def after_fork(self) -> None:
        """In a forked child: leave the parent's files to the parent; start new ones."""
        # The child's copies of the maps; the parent keeps its own, and its files.
        _let_go([(view, None) for view, _ in self._retired])
        for view in (self._map, self._spare and self._spare[1]):
            if view is not None:
                view.close()
        self._reset()


def _let_go(files: list[_Done]) -> None:
    """Close each map and delete each file given."""
    for view, path in files:
        if view is not None:
            view.close()
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _allocate(fd: int, size: int) -> None:
    """Give the file ``size`` bytes of disk now: a write into its mapping then needs none.

    A block the file system cannot give to a mapped page kills the process
    (``SIGBUS``); an allocation refused here is an ``OSError`` at open.
    """
    allocate = getattr(os, "posix_fallocate", None)
    if allocate is None:  # pragma: no cover - macOS has none: zeros, written once
        zeros = bytes(_ZEROS)
        for at in range(0, size, _ZEROS):
            os.pwrite(fd, zeros[: size - at], at)
        return
    allocate(fd, 0, size)


def _records(data: bytes) -> list[bytes]:
    """Split a journal file into records, up to a zero header (the file's unwritten rest).

    A torn last record (a machine crash) is left out.
    """
    records = []
    at = 0
    while at + _HEADER.size <= len(data):
        (header,) = _HEADER.unpack_from(data, at)
        end = at + _HEADER.size + (header & _SIZE)
        if not header or end > len(data):
            break
        records.append(data[at + _HEADER.size : end])
        at = end
    return records
