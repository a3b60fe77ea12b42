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
import tempfile
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
from ._run import IN_FILE_ORDER, PARSED_ROWS, Rows, UnreadableError
from ._run import run as run_plan
from ._values import literal, template

__all__ = [
    "Rows",
    "UnreadableError",
    "connect",
    "judged",
    "lines_at",
    "lines_of",
    "messages_relation",
    "run",
    "source",
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
next: 64 MiB buffers spare most of that (a sixth of ``parsed``'s time), and
both cores still parse. A longer line still fails the read, as a shorter one
did; the python reader refuses any message over ``MAX_MESSAGE_BYTES``, and so
does ``Dialect.doubtful`` (``_dialect_duckdb``), whatever the buffer.
"""

_MARGIN: Final = 1024
"""Bytes a message's line holds besides its properties, traits and context, at the least assumed.

The ids, type, event, timestamp and keys of a usual message take a few hundred
bytes: a message whose parts leave less than this of ``MAX_MESSAGE_BYTES``
may be too large, and is judged by the python reader (``messages_relation``).
"""

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


def messages_relation(path: Path, *, gzipped: bool) -> exp.Expr:
    """``SELECT`` every line of a JSON Lines file as a message row, in file order."""
    # No ``WITH ORDINALITY``: it makes DuckDB read the file on one thread. ``seq``
    # is the row's place in ``parsed``, written in file order (``IN_FILE_ORDER``).
    # ``context`` is read only here (no other source has it): a line whose context,
    # or whose parts together, the python reader might refuse reads as having a
    # timestamp of no usual form (``''``), which ``Dialect.doubtful`` doubts, so
    # the python reader judges it (``_judge_doubtful``, which sets its type and ts
    # from the line itself). A context that is not an object, or holds more than
    # MAX_DEPTH brackets (strings included), is doubted; and a message whose parts'
    # text (documents and texts; at most the line's) passes ``MAX_MESSAGE_BYTES``
    # less ``_MARGIN``: ``strlen`` counts bytes, at no cost.
    # Counting with ``replace`` costs a tenth of ``translate``'s; the search for a
    # number too wide (``Dialect.doubtful``'s regular expression) would cost more
    # than the whole read for a usual context, so it is not made here.
    relation = template(
        'SELECT CAST(NULL AS BIGINT) AS seq, * EXCLUDE (context, "timestamp"), '  # noqa: S608
        "CASE WHEN COALESCE(strlen(properties), 0) + COALESCE(strlen(traits), 0) "
        "+ COALESCE(strlen(context), 0) + COALESCE(strlen(event), 0) "
        '+ COALESCE(strlen("userId"), 0) + COALESCE(strlen("anonymousId"), 0) '
        '+ COALESCE(strlen("messageId"), 0) + COALESCE(strlen("groupId"), 0) > :size THEN \'\' '
        'WHEN context IS NULL THEN "timestamp" '
        "WHEN NOT starts_with(context, '{') THEN '' "
        "WHEN strlen(context) - strlen(replace(replace(context, '{', ''), '[', '')) > :depth "
        "THEN '' "
        'ELSE "timestamp" END AS "timestamp" FROM read_json(:path, '
        f"format := 'newline_delimited', compression := :compression, columns := {_COLUMNS}, "
        "maximum_object_size := :largest)",
        path=literal(str(path)),
        compression=literal("gzip" if gzipped else "none"),
        largest=literal(_BUFFER_BYTES),
        size=literal(MAX_MESSAGE_BYTES - _MARGIN),
        depth=literal(MAX_DEPTH),
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
    return run_plan(
        connection, plan, relation, lambda: _judge_doubtful(connection, relation), once=once
    )


_decode_message: Final = msgspec.json.Decoder(Message).decode


def _judge_doubtful(connection: Any, relation: exp.Expr) -> None:
    """Have the python reader judge, in ``parsed``, the messages DuckDB cannot.

    DuckDB reads ids as text (a number among them becomes text), does not
    bound nesting, and reads one form of timestamp; ``parsed.doubt`` marks
    every message the python reader might judge otherwise for that
    (``Dialect.doubtful``), usually none. Those lines are read again and
    checked as ``pqlsdk._history`` checks them; each gets the python reader's
    verdict (``type`` NULL when refused) and time: the two engines keep the
    same messages at the same instants.
    """
    path = lines_of(relation)
    if path is None:  # a table or a Parquet file: typed, and no python reader reads it
        return
    # Over the runner's own table: a failure here is DuckDB's, not the file's.
    found = connection.execute("SELECT seq FROM parsed WHERE doubt ORDER BY seq").fetchall()
    if not found:
        return
    verdicts = [_verdict(seq, judged(line)) for seq, line in lines_at(path, {s for (s,) in found})]
    seqs, kinds, times = zip(*verdicts, strict=True)
    # ``parsed`` is a view of ``PARSED_ROWS``, where a message's ``seq`` is its rowid + 1.
    connection.execute(
        f"UPDATE {PARSED_ROWS} SET type = v.kind, ts = v.at FROM (SELECT "  # noqa: S608
        "unnest(CAST(? AS BIGINT[])) AS seq, unnest(CAST(? AS VARCHAR[])) AS kind, "
        f"unnest(CAST(? AS BIGINT[])) AS at) AS v WHERE {PARSED_ROWS}.rowid = v.seq - 1",
        [list(seqs), list(kinds), list(times)],
    )


def lines_at(path: Path, seqs: Collection[int]) -> Iterator[tuple[int, bytes]]:
    """Yield ``(seq, line)`` for the lines of a JSON Lines file whose ``seq`` is in ``seqs``."""
    opened, _ = _opened(path)
    with opened as stream:
        seq = 0
        for line in stream:
            if not line.strip():  # DuckDB skips blank lines: they have no seq
                continue
            seq += 1
            if seq in seqs:
                yield seq, line


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
