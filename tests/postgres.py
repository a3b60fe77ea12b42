"""The PostgreSQL server the tests use: where it is, and schemas of their own in it.

The server comes from ``PQLSDK_TEST_POSTGRES_URL`` (default: a local server
with trust auth). ``conftest.postgres_server`` checks that it answers: without
one the PostgreSQL cases are skipped, except under ``CI=true``, where a missing
server is a failure. Each test (or module) works in a fresh schema, selected
through the URL's ``search_path`` and dropped afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

POSTGRES_URL = os.environ.get(
    "PQLSDK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def with_options(url: str, **params: str) -> str:
    """Add libpq parameters to a ``postgresql://`` URL."""
    query = "&".join(f"{name}={quote(value, safe='')}" for name, value in params.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


@contextmanager
def fresh_schema(server: str) -> Iterator[str]:
    """Yield a URL whose connections work in a new schema of their own; drop it after."""
    schema = f"pqlsdk_test_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield with_options(server, options=f"-csearch_path={schema}", application_name=schema)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            # A connection a test failed to close must not keep the schema locked.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (schema,),
            )
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def load_messages(conn: psycopg.Connection[Any], table: str, items: Iterable[Any]) -> None:
    """(Re)create ``table`` with one column per Segment field and ``items`` in order (``seq``).

    The fields are read from each message's JSON by PostgreSQL, as DuckDB reads
    a JSON Lines file: text columns, ``properties`` and ``traits`` as JSON. What
    is not an object is an empty message, refused in its place.
    """
    name = sql.Identifier(table)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
    conn.execute(sql.SQL("CREATE TEMP TABLE loading (seq BIGINT, body JSON)"))
    with conn.cursor().copy("COPY loading (seq, body) FROM STDIN") as copy:
        for seq, item in enumerate(items, 1):
            copy.write_row((seq, json.dumps(item if isinstance(item, dict) else {})))
    fields = ("type", "userId", "anonymousId", "messageId", "groupId", "event", "timestamp")
    texts = sql.SQL(", ").join(
        sql.SQL("body ->> {} AS {}").format(sql.Literal(f), sql.Identifier(f)) for f in fields
    )
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} AS SELECT seq, {}, body -> 'properties' AS properties, "
            "body -> 'traits' AS traits FROM loading"
        ).format(name, texts)
    )
    conn.execute("DROP TABLE loading")
