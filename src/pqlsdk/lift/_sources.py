"""Where a moments report reads its history: a file of messages, or the collector's storage.

A file (JSON Lines, a JSON document, gzip of either: what ``pqlsdk score``
reads) is put in time order through replay's bounded reorder buffer. The
collector's storage (a ``postgresql://`` or ``sqlite://`` URL, or the path of a
SQLite file the collector wrote) gives its messages in time order itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from .._clock import micros
from .._exceptions import ConfigError
from .._history import History, read
from ..messages import Message
from ..replay._run import _time_order

__all__ = ["is_storage", "ordered"]

_SQLITE_MAGIC: Final = b"SQLite format 3\x00"


def is_storage(source: str) -> bool:
    """Whether ``source`` names collector storage rather than a file of messages."""
    if "://" in source:
        return True
    try:
        with Path(source).open("rb") as file:
            return file.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False  # read() says what is wrong with the file


@contextmanager
def ordered(source: str, history: History) -> Iterator[Iterator[tuple[int, Message]]]:
    """Open ``source`` and lend its (µs, message) pairs in time order; close it after.

    Refused lines of a file are counted in ``history``. A ``sqlite://`` URL or
    path must name an existing file: a report never creates an empty database.
    """
    if not is_storage(source):
        pairs = _time_order(read(Path(source), history), {})
        try:
            yield pairs
        finally:
            pairs.close()
        return
    from ..collector import open_storage  # noqa: PLC0415 - only reports on storage need it

    scheme, _, rest = source.partition("://")
    if scheme == "sqlite" and not Path(rest[1:]).is_file():
        raise ConfigError(f"no collector storage at {rest[1:]!r}")
    with open_storage(source) as storage:
        yield ((micros(m.timestamp), m) for m in storage.messages())
