"""DuckDB, embedded: the compiled queries run over a file of messages, in process.

The file is read by DuckDB itself (``read_json``): JSON Lines, gzip JSON Lines.
A scenario-shaped JSON document (``{"now", "events"}``) or a JSON array is small
by nature; it is read whole, as ``pqlsdk._history`` does, and handed to DuckDB
as JSON Lines. Each message keeps its place in the file (``seq``): ties between
equal timestamps go to the later arrival, as in process.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
from sqlglot import exp

from .._exceptions import ConfigError
from .._history import _is_message
from ._compile import Query
from ._values import literal, template

__all__ = ["connect", "messages_relation", "run", "source"]

_COLUMNS = (
    "{type: 'VARCHAR', userId: 'VARCHAR', anonymousId: 'VARCHAR', messageId: 'VARCHAR', "
    "groupId: 'VARCHAR', event: 'VARCHAR', \"timestamp\": 'VARCHAR', properties: 'JSON', "
    "traits: 'JSON'}"
)


def connect() -> Any:
    """A new in-memory DuckDB connection; ``ConfigError`` naming the extra if missing."""
    try:
        import duckdb  # noqa: PLC0415 - the warehouse extra, loaded on use
    except ImportError as exc:  # pragma: no cover - the test environment has the extra
        raise ConfigError(
            "the duckdb engine needs duckdb: pip install 'pqlsdk[warehouse]'"
        ) from exc
    return duckdb.connect()


def messages_relation(path: Path, *, gzipped: bool) -> exp.Expression:
    """``SELECT`` every line of a JSON Lines file as a message row, in file order."""
    return template(
        "SELECT ordinality AS seq, * FROM read_json(:path, format := 'newline_delimited', "
        f"compression := :compression, columns := {_COLUMNS}) WITH ORDINALITY",
        path=literal(str(path)),
        compression=literal("gzip" if gzipped else "none"),
    )


@contextmanager
def source(path: Path) -> Iterator[tuple[exp.Expression, str | None]]:
    """The messages of the file at ``path`` as a relation, and the file's own ``now``."""
    try:
        with path.open("rb") as raw:
            head = raw.read(2)
            gzipped = head == b"\x1f\x8b"
            opened = gzip.open(path, "rb") if gzipped else path.open("rb")
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
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: neither JSON Lines nor a JSON document: {exc}") from exc
    now = None
    if isinstance(document, dict) and isinstance(document.get("events"), list):
        now, items = document.get("now"), document["events"]
    elif isinstance(document, list):
        items = document
    else:
        raise ConfigError(f"{path}: a JSON document must be a list or have an 'events' list")
    with tempfile.TemporaryDirectory(prefix="pqlsdk-") as folder:
        lines = Path(folder) / "messages.jsonl"
        with lines.open("wb") as out:
            for item in items:
                out.write(msgspec.json.encode(item) + b"\n")
        yield messages_relation(lines, gzipped=False), now


def run(connection: Any, query: Query, relation: exp.Expression) -> list[dict[str, Any]]:
    """Run ``query`` over ``relation`` (the messages); return its rows as dicts."""
    sql = query.over(relation).sql("duckdb", pretty=False)
    try:
        cursor = connection.execute(sql)
    except Exception as exc:  # duckdb's errors: a file that is not JSON Lines, mostly
        raise ConfigError(f"duckdb could not score the messages: {exc}") from exc
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
