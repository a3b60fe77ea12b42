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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
from sqlglot import exp

from .._exceptions import ConfigError
from .._history import _is_message, document_items
from ._run import Rows, UnreadableError, run
from ._values import literal, template

__all__ = ["Rows", "UnreadableError", "connect", "messages_relation", "run", "source"]

_COLUMNS = (
    "{type: 'VARCHAR', userId: 'VARCHAR', anonymousId: 'VARCHAR', messageId: 'VARCHAR', "
    "groupId: 'VARCHAR', event: 'VARCHAR', \"timestamp\": 'VARCHAR', properties: 'JSON', "
    "traits: 'JSON'}"
)


def connect() -> Any:
    """Open an in-memory DuckDB connection; ``ConfigError`` naming the extra if missing."""
    try:
        import duckdb  # noqa: PLC0415 - the warehouse extra, loaded on use
    except ImportError as exc:  # pragma: no cover - the test environment has the extra
        raise ConfigError(
            "the duckdb engine needs duckdb: pip install 'pqlsdk[warehouse]'"
        ) from exc
    return duckdb.connect()


def messages_relation(path: Path, *, gzipped: bool) -> exp.Expr:
    """``SELECT`` every line of a JSON Lines file as a message row, in file order."""
    return template(
        "SELECT ordinality AS seq, * FROM read_json(:path, format := 'newline_delimited', "  # noqa: S608
        f"compression := :compression, columns := {_COLUMNS}) WITH ORDINALITY",
        path=literal(str(path)),
        compression=literal("gzip" if gzipped else "none"),
    )


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
                # What is not an object is no message: an empty one keeps its place, refused.
                out.write(msgspec.json.encode(item if isinstance(item, dict) else {}) + b"\n")
        yield messages_relation(lines, gzipped=False), now
