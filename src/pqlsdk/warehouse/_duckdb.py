"""DuckDB, embedded: the compiled queries run over a file of messages, in process.

The file is read by DuckDB itself (``read_json``): JSON Lines, gzip JSON Lines.
A scenario-shaped JSON document (``{"now", "events"}``) or a JSON array is small
by nature; it is read whole, as ``pqlsdk._history`` does, and handed to DuckDB
as JSON Lines. Each message keeps its place in the file (``seq``): ties between
equal timestamps go to the later arrival, as in process.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import tempfile
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import msgspec
from sqlglot import exp

from .._clock import micros
from .._exceptions import ConfigError, InvalidMessageError
from .._history import _is_message, document_items
from ..messages import (
    MAX_DEPTH,
    MAX_MESSAGE_BYTES,
    Group,
    Identify,
    Message,
    Track,
    check_decoded,
    convert,
    encode,
)
from ._compile import Plan
from ._dialect_duckdb import DUCKDB, refusable_numbers
from ._run import IN_FILE_ORDER, PARSED_ROWS, Rows, Steps, UnreadableError
from ._values import literal, template

__all__ = [
    "Opening",
    "Rows",
    "UnreadableError",
    "connect",
    "judged",
    "lines_at",
    "lines_of",
    "messages_relation",
    "run",
    "source",
    "steps",
]

_COLUMNS = (
    "{type: 'VARCHAR', userId: 'VARCHAR', anonymousId: 'VARCHAR', messageId: 'VARCHAR', "
    "groupId: 'VARCHAR', event: 'VARCHAR', \"timestamp\": 'VARCHAR', properties: 'JSON', "
    "traits: 'JSON', context: 'JSON'}"
)


_BUFFER_BYTES: Final = 64 * 1024 * 1024
"""The largest line DuckDB reads (``maximum_object_size``), which sizes its read buffers.

DuckDB's default (16 MiB) reads a million messages in about ten buffers, each a
batch that the ordered write of ``parsed`` (``_run.create``) stitches to the
next: larger buffers spare most of that. A longer line still fails the read, as
a shorter one did; the python reader refuses any message over
``MAX_MESSAGE_BYTES``, and so does ``Dialect.doubtful`` (``_dialect_duckdb``),
whatever the buffer. See ``_buffer_bytes`` for a file of known size.
"""

_SMALLEST_BUFFER: Final = 16 * 1024 * 1024
"""DuckDB's own ``maximum_object_size``: the smallest buffer ``_buffer_bytes`` gives."""


def _size(path: Path) -> int | None:
    """``path``'s size, or None where it cannot be read (DuckDB's read says why)."""
    try:
        return path.stat().st_size
    except OSError:
        return None


def _buffer_bytes(size: int | None) -> int:
    """Size the read buffer for a file of ``size`` bytes (None: unknown, as a gzip file's is).

    Two buffers a thread: a file in three 64 MiB buffers on two threads left the
    last one to one thread while the other waited (a million messages: 0.1 s of
    1.6, every run), and more than two a thread brings back the stitching.
    """
    if size is None:
        return _BUFFER_BYTES
    share = size // (2 * (os.cpu_count() or 1)) + 1
    return max(_SMALLEST_BUFFER, min(_BUFFER_BYTES, share))


_FIELDS: Final = (
    ("type", False),
    ("userId", False),
    ("anonymousId", False),
    ("messageId", False),
    ("groupId", False),
    ("event", False),
    ("timestamp", False),
    ("properties", True),
    ("traits", True),
    ("context", True),
)
"""The fields read from each line (``_COLUMNS``), and whether each is read as JSON (else text)."""

_LINES: Final = "pqlsdk_lines"
"""The key, in a relation's ``meta``, of the JSON Lines file it reads."""


def connect() -> Any:
    """Open an in-memory DuckDB connection; ``ConfigError`` naming the extra if missing."""
    try:
        import duckdb  # noqa: PLC0415 - the warehouse extra, loaded on use
    except ImportError as exc:  # pragma: no cover - the test environment has the extra
        raise ConfigError(
            "the duckdb engine needs duckdb: pip install 'pqlsdk[warehouse]'"
        ) from exc
    # Every query orders what it needs by ``seq``: a table need not keep arrival order,
    # which lets DuckDB write its steps in parallel and with less memory (but for
    # ``parsed`` of a JSON Lines file, whose rows' places are ``seq``: ``_run.create``). Past
    # MEMORY_LIMIT the steps' tables go to files in the temporary directory: ten
    # million messages take 2 GiB of memory at most, Python's scores included.
    return duckdb.connect(
        config={
            "preserve_insertion_order": False,
            "memory_limit": MEMORY_LIMIT,
            "temp_directory": str(Path(tempfile.gettempdir()) / "pqlsdk-duckdb"),
        }
    )


MEMORY_LIMIT: Final = "1GB"
"""What DuckDB may hold in memory before it writes its tables to temporary files."""


class Opening:
    """A connection (``connect``) opened on a thread while its caller does other work.

    Opening DuckDB costs 20 to 45 ms (its catalog takes every built-in function),
    during which DuckDB holds no GIL: ``pqlsdk score`` compiles the rules
    meanwhile. ``execute`` and ``close`` wait for it; a failure to open is raised
    where the connection is first used, and ``close`` then has nothing to close.
    """

    def __init__(self) -> None:
        self._opened: Any = None
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._open, name="pqlsdk-duckdb-open")
        self._thread.start()

    def _open(self) -> None:
        try:
            self._opened = connect()
        except Exception as exc:  # raised where the connection is used
            self._error = exc

    def _connection(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._opened

    def execute(self, *args: Any) -> Any:
        """Run a statement (as ``duckdb``'s ``execute``), once the connection is open."""
        return self._connection().execute(*args)

    def interrupt(self) -> None:
        """Interrupt the statement running, if the connection is open (as ``duckdb``'s)."""
        if not self._thread.is_alive() and self._opened is not None:
            self._opened.interrupt()

    def close(self) -> None:
        """Close the connection once open; nothing if it could not be opened."""
        self._thread.join()
        if self._opened is not None:
            self._opened.close()

    @contextmanager
    def closing(self) -> Iterator[None]:
        """Close the connection on a thread while the caller works; closed on leaving.

        DuckDB frees its tables (15 ms for a million messages' steps) holding no
        GIL: ``pqlsdk score`` prints meanwhile. A failure to close is raised on
        leaving, unless the caller's own is.
        """
        failed: list[Exception] = []

        def close() -> None:
            try:
                self.close()
            except Exception as exc:  # raised on leaving
                failed.append(exc)

        closer = threading.Thread(target=close, name="pqlsdk-duckdb-close")
        closer.start()
        try:
            yield
        finally:
            closer.join()
        if failed:
            raise failed[0]


def _accounted() -> str:
    """Return the SQL of the bytes of a line that its fields read account for: all, if compact.

    A field's ``"name":``, its value (a text in quotes, or JSON as DuckDB writes
    it back, never longer than as written), a comma between fields and the
    braces. A line holding anything else (spaces, a field not read, a null,
    an escape in a text) is longer: ``_all_accounted`` compares the sum with the
    file's size.
    """
    parts = [
        f'COALESCE(strlen("{name}") + {len(name) + 4 + (0 if json else 2)}, 0)'
        for name, json in _FIELDS
    ]
    return "(1 + " + " + ".join(parts) + ")"


def messages_relation(path: Path, *, gzipped: bool) -> exp.Expr:
    """``SELECT`` every line of a JSON Lines file as a message row, in file order."""
    # No ``WITH ORDINALITY``: it makes DuckDB read the file on one thread. The
    # row's place in ``parsed`` is its ``seq`` (``IN_FILE_ORDER``), which leaves
    # this relation's ``seq`` column to hold the bytes the line's fields account
    # for (``_accounted``), for ``_judge_doubtful`` to add up.
    # ``context`` is read only here (no other source has it): a line whose context,
    # or whose fields together, the python reader might refuse reads as having a
    # timestamp of no usual form (``''``), which ``Dialect.doubtful`` doubts, so
    # the python reader judges it (``_judge_doubtful``, which sets its type and ts
    # from the line itself). A context that is not an object, holds more than
    # MAX_DEPTH brackets (strings included) or a number the python reader may
    # refuse (``refusable_numbers``) is doubted; and a line longer than ``MAX_MESSAGE_BYTES``
    # by its fields alone: ``strlen`` counts bytes, at no cost.
    # Counting with ``replace`` costs a tenth of ``translate``'s.
    accounted = _accounted()
    relation = template(
        f'SELECT CAST({accounted} AS BIGINT) AS seq, * EXCLUDE (context, "timestamp"), '  # noqa: S608
        f"CASE WHEN {accounted} > :size THEN '' "
        'WHEN context IS NULL THEN "timestamp" '
        "WHEN NOT starts_with(context, '{') THEN '' "
        "WHEN strlen(context) - strlen(replace(replace(context, '{', ''), '[', '')) > :depth "
        "THEN '' "
        "WHEN :numbers THEN '' "
        'ELSE "timestamp" END AS "timestamp" FROM read_json(:path, '
        f"format := 'newline_delimited', compression := :compression, columns := {_COLUMNS}, "
        "maximum_object_size := :largest)",
        path=literal(str(path)),
        compression=literal("gzip" if gzipped else "none"),
        largest=literal(_buffer_bytes(None if gzipped else _size(path))),
        size=literal(MAX_MESSAGE_BYTES),
        depth=literal(MAX_DEPTH),
        numbers=refusable_numbers(exp.column("context")),
    )
    relation.meta[IN_FILE_ORDER] = True
    # Where ``run`` reads a doubtful message again, with the python reader.
    relation.meta[_LINES] = path
    return relation


def _opened(path: Path) -> tuple[io.BufferedIOBase, bool]:
    """Open ``path`` for reading, unzipped if it is gzip; and whether it was."""
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    # The caller closes the stream (its ``with``).
    stream: io.BufferedIOBase = gzip.open(path, "rb") if gzipped else path.open("rb")  # noqa: SIM115
    return stream, gzipped


@contextmanager
def source(path: Path) -> Iterator[tuple[exp.Expr, str | None]]:
    """Yield the messages of the file at ``path`` as a relation, and the file's own ``now``."""
    try:
        opened, gzipped = _opened(path)
        with opened as stream:
            first = stream.readline()
            while first and not first.strip():
                first = stream.readline()
            if not first or _is_message(first):
                yield messages_relation(path, gzipped=gzipped), None
                return
            data = first + stream.read()
    except (OSError, EOFError) as exc:
        raise ConfigError(f"cannot read events {str(path)!r}: {exc}") from exc
    now, items = document_items(path, data)
    with tempfile.TemporaryDirectory(prefix="pqlsdk-") as folder:
        lines = Path(folder) / "messages.jsonl"
        with lines.open("wb") as out:
            for item in items:
                out.write(_checked(item) + b"\n")
        yield messages_relation(lines, gzipped=False), now


def _checked(item: Any) -> bytes:
    """Return the message the python reader makes of a document's item, as JSON; ``{}`` if refused.

    A document is small: each item is checked as ``pqlsdk._history`` checks it,
    so DuckDB reads exactly the messages the python engine folds (a refused one
    keeps its place as an empty object, which the SQL refuses too).
    """
    try:
        return encode(convert(item))
    except InvalidMessageError:
        return b"{}"


def run(connection: Any, plan: Plan, relation: exp.Expr, *, once: bool = False) -> Rows:
    """Run ``plan`` over ``relation`` (``_run.run``), the doubtful messages judged by python.

    When ``relation`` is one of ``messages_relation`` (a JSON Lines file), its
    doubtful lines (``_judge_doubtful``) are read again. ``once``: as ``_run.run``'s.
    """
    ran = steps(connection, relation, once=once)
    ran.queue(plan)
    return ran.rows()


def steps(
    connection: Any, relation: exp.Expr, *, once: bool = False, threaded: bool = False
) -> Steps:
    """Return the runner of a plan's steps over ``relation`` (``_run.Steps``), judging as ``run``.

    ``threaded``: the steps run on a thread as they are added, while the caller compiles the next.
    """
    return Steps(
        connection,
        DUCKDB,
        relation,
        lambda: _judge_doubtful(connection, relation),
        once=once,
        threaded=threaded,
    )


_decode_message: Final = msgspec.json.Decoder(Message).decode


def _judge_doubtful(connection: Any, relation: exp.Expr) -> None:
    """Have the python reader judge, in ``parsed``, the messages DuckDB cannot.

    DuckDB reads ids as text (a number among them becomes text), does not
    bound nesting, reads one form of timestamp, keeps numbers as written, and
    reads a null as no field and no line's length; ``parsed.doubt`` marks
    every message the python reader might judge otherwise for its fields
    (``Dialect.doubtful``), usually none. When the file holds nothing but the
    fields read, compactly (``_all_accounted``), those are all; else every line
    too long or with a null where the python reader wants an object or a text
    (``_suspect``) is judged too. Each is read again and checked as
    ``pqlsdk._history`` checks it, and gets the python reader's verdict
    (``type`` NULL when refused) and time: the two engines keep the same
    messages at the same instants.
    """
    path = lines_of(relation)
    if path is None:  # a table or a Parquet file: typed, and no python reader reads it
        return
    # Over the runner's own table: a failure here is DuckDB's, not the file's.
    # A refused message may have a type that is no text (``_accounted`` counts quotes).
    doubted, refused, accounted, count = connection.execute(
        "SELECT COUNT(*) FILTER (WHERE doubt), COUNT(*) FILTER (WHERE type IS NULL), "  # noqa: S608
        f"SUM(seq), COUNT(*) FROM {PARSED_ROWS}"
    ).fetchone()
    if not (doubted or refused) and _all_accounted(path, accounted or 0, count):
        return
    found = connection.execute("SELECT seq FROM parsed WHERE doubt").fetchall()
    doubtful = {seq for (seq,) in found}
    verdicts = [
        _verdict(seq, judged(line))
        for seq, line in _numbered(path)
        if seq in doubtful or _suspect(line)
    ]
    if not verdicts:
        return
    seqs, kinds, times = zip(*verdicts, strict=True)
    # ``parsed`` is a view of ``PARSED_ROWS``, where a message's ``seq`` is its rowid + 1.
    connection.execute(
        f"UPDATE {PARSED_ROWS} SET type = v.kind, ts = v.at FROM (SELECT "  # noqa: S608
        "unnest(CAST(? AS BIGINT[])) AS seq, unnest(CAST(? AS VARCHAR[])) AS kind, "
        f"unnest(CAST(? AS BIGINT[])) AS at) AS v WHERE {PARSED_ROWS}.rowid = v.seq - 1",
        [list(seqs), list(kinds), list(times)],
    )


def _all_accounted(path: Path, accounted: int, count: int) -> bool:
    """Whether the ``count`` lines of ``path`` are the ``accounted`` bytes of their fields.

    Each line is at least its fields' bytes (``_accounted``): the file's size
    equal to their sum (and a newline a line, the last one's optional) means
    no line holds more, so none is longer than DuckDB counted, and none has a
    null it read as a missing field. A gzip file's size says nothing of its lines.
    """
    with path.open("rb") as stream:
        if stream.read(2) == b"\x1f\x8b":
            return False
        size = stream.seek(0, io.SEEK_END)
        if not size:
            return True
        stream.seek(size - 1)
        newlines = count - (stream.read(1) != b"\n")
    return accounted + newlines == size


_NULLED: Final = re.compile(rb'"(?:context|properties|traits|messageId)"\s*:\s*null')
"""A null where the python reader wants an object or a text (a field of the message or deeper)."""


def _suspect(line: bytes) -> bool:
    """Whether the python reader may refuse ``line`` for what DuckDB does not see.

    Its length past ``MAX_MESSAGE_BYTES``, or a null for context, properties,
    traits or messageId (DuckDB reads it as no field), perhaps written with
    escapes in its key.
    """
    if len(line) - line.endswith(b"\n") - line.endswith(b"\r\n") > MAX_MESSAGE_BYTES:
        return True
    return b"null" in line and (b"\\" in line or _NULLED.search(line) is not None)


def _numbered(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield ``(seq, line)`` for each line of a JSON Lines file that DuckDB reads."""
    opened, _ = _opened(path)
    with opened as stream:
        seq = 0
        for line in stream:
            if not line.strip():  # DuckDB skips blank lines: they have no seq
                continue
            seq += 1
            yield seq, line


def lines_at(path: Path, seqs: Collection[int]) -> Iterator[tuple[int, bytes]]:
    """Yield ``(seq, line)`` for the lines of a JSON Lines file whose ``seq`` is in ``seqs``."""
    return ((seq, line) for seq, line in _numbered(path) if seq in seqs)


def lines_of(relation: exp.Expr) -> Path | None:
    """Return the JSON Lines file ``relation`` reads (``messages_relation``), or None."""
    path: Path | None = relation.meta.get(_LINES)
    return path


_KINDS: Final = {Identify: "identify", Group: "group", Track: "track"}


def _verdict(seq: int, message: Message | None) -> tuple[int, str | None, int | None]:
    """``(seq, type, ts)`` of a judged message: NULLs for one refused."""
    if message is None:
        return seq, None, None
    return seq, _KINDS[type(message)], micros(message.timestamp)


def judged(line: bytes) -> Message | None:
    """Return the message the python reader makes of ``line`` (``_history._lines``), or None."""
    try:
        message = _decode_message(line)
        size = len(line)
        if size > MAX_MESSAGE_BYTES:
            size -= line.endswith(b"\n") + line.endswith(b"\r\n")
        return check_decoded(message, size)
    except (msgspec.ValidationError, InvalidMessageError):
        return None
