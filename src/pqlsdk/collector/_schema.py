"""The collector's schema: one logical schema, its forward migrations, and its queries.

SQLite and PostgreSQL hold the same tables and run the same statements. Where
their column types differ, statements name a type slot (``{timestamp}``,
``{json}``, ``{float}``) that ``migration`` fills per dialect:

- timestamps are ``TIMESTAMPTZ`` in PostgreSQL and fixed-width ISO-8601 UTC text
  in SQLite (``2026-03-15T12:00:00.000000Z``), which sorts like the instants;
- JSON is PostgreSQL's ``json`` (kept as sent, and, unlike ``jsonb``, able to
  hold escaped NUL characters) and plain text in SQLite.

``MIGRATIONS[n]`` upgrades a database from version ``n`` to ``n + 1``; the version
lives in a one-row ``schema_version`` table in both dialects. Migrations only
ever add: a database written by a newer pqlsdk is refused, never guessed at.
Statements use ``?`` placeholders; the PostgreSQL storage rewrites them.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "CONTACT_COLUMNS",
    "INSERT_MESSAGE",
    "LEAD_COLUMNS",
    "MARK_CONTACTED",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "UPSERT_LEAD",
    "Dialect",
    "migration",
]

Dialect = Literal["sqlite", "postgresql"]

_TYPES: Final[dict[Dialect, dict[str, str]]] = {
    "sqlite": {"timestamp": "TEXT", "json": "TEXT", "float": "REAL"},
    "postgresql": {"timestamp": "TIMESTAMPTZ", "json": "JSON", "float": "DOUBLE PRECISION"},
}

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: every accepted message, and the leads projection of tier crossings.
    (
        """CREATE TABLE messages (
            message_id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            user_id TEXT,
            anonymous_id TEXT,
            event TEXT,
            timestamp {timestamp} NOT NULL,
            received_at {timestamp} NOT NULL,
            body {json} NOT NULL
        )""",
        "CREATE INDEX messages_by_user ON messages (user_id, timestamp)",
        """CREATE TABLE leads (
            subject TEXT NOT NULL,
            subject_id TEXT NOT NULL,
            model TEXT NOT NULL,
            previous_tier TEXT,
            tier TEXT NOT NULL,
            direction TEXT NOT NULL,
            score {float} NOT NULL,
            route TEXT NOT NULL,
            reasons {json} NOT NULL,
            top_features {json} NOT NULL,
            team_size INTEGER NOT NULL,
            moments_seen {json} NOT NULL,
            crossed_at {timestamp} NOT NULL,
            user_id TEXT,
            message_id TEXT NOT NULL,
            PRIMARY KEY (subject, subject_id, model)
        )""",
        "CREATE INDEX leads_by_tier ON leads (tier, score)",
    ),
    # 2: what the feed shows beside the reasons (the multiplier, a PQA's members,
    # the titles of the moments seen) and the rep who contacted the lead, and when.
    (
        "ALTER TABLE leads ADD COLUMN multiplier {float} NOT NULL DEFAULT 1",
        "ALTER TABLE leads ADD COLUMN members {json} NOT NULL DEFAULT '[]'",
        "ALTER TABLE leads ADD COLUMN moment_titles {json} NOT NULL DEFAULT '[]'",
        "ALTER TABLE leads ADD COLUMN contacted_by TEXT",
        "ALTER TABLE leads ADD COLUMN contacted_at {timestamp}",
    ),
    # 3: messages in time order, read from a place on (keyset paging, and the
    # moments report reading only what was stored since its last request).
    ("CREATE INDEX messages_by_time ON messages (timestamp, message_id)",),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)
"""The schema version this pqlsdk writes."""


def migration(version: int, dialect: Dialect) -> list[str]:
    """Return the statements that upgrade a ``dialect`` database from ``version``."""
    return [statement.format_map(_TYPES[dialect]) for statement in MIGRATIONS[version]]


INSERT_MESSAGE: Final = (
    "INSERT INTO messages (message_id, type, user_id, anonymous_id, event, timestamp, "
    "received_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (message_id) DO NOTHING RETURNING message_id"
)

LEAD_COLUMNS: Final = (
    "subject",
    "subject_id",
    "model",
    "previous_tier",
    "tier",
    "direction",
    "score",
    "route",
    "reasons",
    "top_features",
    "team_size",
    "moments_seen",
    "crossed_at",
    "user_id",
    "message_id",
    "multiplier",
    "members",
    "moment_titles",
)
"""A lead's columns that each new crossing sets."""

CONTACT_COLUMNS: Final = ("contacted_by", "contacted_at")
"""A lead's columns that a rep sets (``MARK_CONTACTED``); a new crossing keeps them."""

# The newer crossing wins; an equal timestamp falls to the larger message id, so
# the projection ends the same whatever order crossings arrive in. RETURNING
# yields a row only when the crossing became the key's lead.
UPSERT_LEAD: Final = (
    f"INSERT INTO leads ({', '.join(LEAD_COLUMNS)}) "  # noqa: S608 - constant column names
    f"VALUES ({', '.join('?' * len(LEAD_COLUMNS))}) "
    "ON CONFLICT (subject, subject_id, model) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in LEAD_COLUMNS[3:])
    + " WHERE (excluded.crossed_at, excluded.message_id) > (leads.crossed_at, leads.message_id)"
    " RETURNING message_id"
)

MARK_CONTACTED: Final = (
    "UPDATE leads SET contacted_by = ?, contacted_at = ? "
    "WHERE subject = ? AND subject_id = ? AND model = ? RETURNING message_id"
)
"""Record who contacted a lead and when; a row comes back only if the lead exists."""
