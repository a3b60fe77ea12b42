"""The first steps of every compiled query: the messages read, checked and de-duplicated.

``parsed`` reads relation ``messages`` once and keeps, of each message, what
scoring reads (the properties and traits the rules name included, ``_Reads``);
``dropped`` and ``m`` leave each ``messageId`` once. The scoring queries, the
replay (``_replay``) and the moments' counts (``_moments``) all start here, so
the three see the same messages the python reader keeps.
"""

from __future__ import annotations

from typing import Final

from sqlglot import exp

from ._dialects import Dialect
from ._values import aliased, literal, select, template

__all__ = ["message_steps"]


class _Reads:
    """Names the columns of ``parsed`` that hold the properties and traits the rules read.

    Each is extracted from the message's JSON once, when the messages are read,
    and nothing else of ``properties`` and ``traits`` is kept.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.properties: dict[str, str] = {}
        self.traits: dict[str, str] = {}
        self.events: dict[str, set[str] | None] = {}
        """Each property's events: it is read on those tracks only (None: on every message)."""

    def property(self, name: str, event: str | None = None) -> exp.Expr:
        """Return the column of property ``name`` (JSON; NULL when missing).

        ``event``: the column is read where a test ``event = :event`` is ANDed
        with it (an aggregate's ``_matching``), so its value on other messages
        never counts; None: it is read on any message.
        """
        events = self.events.get(name, set())
        if events is not None:
            self.events[name] = None if event is None else events | {event}
        return exp.column(self.properties.setdefault(name, f"p_{len(self.properties)}"))

    def trait(self, name: str) -> exp.Expr:
        """Return the column of trait ``name`` (JSON; NULL when missing)."""
        return exp.column(self.traits.setdefault(name, f"r_{len(self.traits)}"))

    def columns(self) -> list[exp.Expr]:
        """Select each property and trait read, from the message's JSON."""
        return [
            *(aliased(self._property(name), column) for name, column in self.properties.items()),
            *(
                aliased(self.dialect.json_field(exp.column("traits"), name), column)
                for name, column in self.traits.items()
            ),
        ]

    def _property(self, name: str) -> exp.Expr:
        """Read property ``name`` from the message's JSON, only on the tracks that use it.

        Extracting a property parses the message's JSON: a property read for a few
        events (``count("page_viewed", path=...)``) is extracted for those alone: of
        the bench's million messages, two such properties, 2 to 4 % of ``parsed``'s CPU.
        """
        read = self.dialect.json_field(exp.column("properties"), name)
        events = self.events[name]
        if events is None:
            return read
        named = exp.Tuple(expressions=[literal(event) for event in sorted(events)])
        return template("CASE WHEN event IN :e THEN :r END", e=named, r=read)


_ZONED: Final = "\\d{4}-\\d{2}-\\d{2}[Tt ]\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?([Zz]|[+-]\\d{2}:\\d{2})"
"""An ISO-8601 instant with its zone: pqlsdk refuses a naive timestamp."""


def message_steps(reads: _Reads) -> list[tuple[str, exp.Expr]]:
    """Select every message (``parsed``), the repeated ones (``dropped``), the rest (``m``).

    ``parsed`` keeps, of each message, the fields scoring reads and the
    properties and traits ``reads`` names, with the time ``ts`` in µs and the
    arrival order ``seq``; a message pqlsdk refuses (no identity, no zoned
    timestamp, a track without its event, a group without its groupId) has a
    NULL ``type``. ``dropped`` lists the accepted messages whose ``messageId``
    arrived, accepted, before: few or none. ``m`` holds the accepted messages
    less those.

    The messages are read in one pass, written once (``parsed``): ``m`` is a
    filter over it, cheap enough to run for each step that reads it. The
    repeated ids are found by a 64-bit key first (``Dialect.id_key``: grouping
    numbers costs less than grouping text), then exactly, by the ids
    themselves, among the few messages whose key repeats. Where the engine
    counts distinct keys for less (``Dialect.counts_repeats_first``), the keys
    are grouped only when their count shows a repeat.
    """
    dialect = reads.dialect
    # Quoted: the message's own names, exactly, in engines that fold unquoted ones.
    ts, zoned = dialect.instant_us(exp.column("timestamp", quoted=True), _ZONED)
    raw = select(
        """
        SELECT seq, type, COALESCE(NULLIF("userId", ''), "anonymousId") AS uid,
            "messageId" AS mid, :ts AS ts, event, "groupId" AS gid, :zoned AS zoned,
            "userId" AS user_text, "anonymousId" AS anonymous_text, properties, traits
        FROM messages
        """,
        ts=ts,
        zoned=zoned,
    ).select(*reads.columns(), copy=False)
    # Over raw's columns: each test computed once (zoned is a regular expression).
    doubt = dialect.doubtful(
        [exp.column(name) for name in ("user_text", "anonymous_text", "mid", "event", "gid")],
        [exp.column("properties"), exp.column("traits")],
        exp.column("zoned"),
    )
    read = [*reads.properties.values(), *reads.traits.values()]
    parsed = select(
        """
        SELECT seq,
            CASE WHEN uid <> '' AND zoned AND ts IS NOT NULL
                AND (type = 'identify' OR (type = 'track' AND event <> '')
                    OR (type = 'group' AND gid <> '')) THEN type END AS type,
            uid, mid, ts, event, gid, :doubt AS doubt
        FROM raw
        """,
        doubt=doubt,
    ).select(*read, copy=False)
    parsed = parsed.with_("raw", as_=raw, copy=False)
    key = dialect.id_key(exp.column("mid"))
    repeated_keys = select(
        """
        SELECT :key AS id_key FROM parsed WHERE type IS NOT NULL AND mid IS NOT NULL
        GROUP BY id_key HAVING COUNT(*) > 1
        """,
        key=key,
    )
    firsts = select(
        """
        SELECT mid, MIN(seq) AS first FROM parsed
        WHERE type IS NOT NULL AND :key IN (SELECT id_key FROM repeated_keys)
        GROUP BY mid HAVING COUNT(*) > 1
        """,
        key=key,
    )
    dropped = select(
        """
        SELECT parsed.seq FROM parsed JOIN firsts ON parsed.mid = firsts.mid
        WHERE parsed.type IS NOT NULL AND parsed.seq > firsts.first
        """
    )
    if dialect.counts_repeats_first:  # no repeated key, usually: no grouping
        repeats = select(
            """
            SELECT COUNT(*) - COUNT(DISTINCT :key) AS repeats FROM parsed
            WHERE type IS NOT NULL AND mid IS NOT NULL
            """,
            key=key.copy(),
        )
        repeated_keys = repeated_keys.where(
            template("(SELECT repeats FROM repeats) > 0"), copy=False
        )
        dropped = dropped.with_("repeats", as_=repeats, copy=False)
    dropped = dropped.with_("repeated_keys", as_=repeated_keys, copy=False)
    dropped = dropped.with_("firsts", as_=firsts, copy=False)
    kept = select(
        """
        SELECT * FROM parsed
        WHERE type IS NOT NULL AND seq NOT IN (SELECT seq FROM dropped)
        """
    )
    return [("parsed", parsed), ("dropped", dropped), ("m", kept)]


def _messages(now: int | None, reads: _Reads) -> list[tuple[str, exp.Expr]]:
    """Select the clock, then the accepted, de-duplicated messages of relation ``messages``."""
    now_sql = reads.dialect.now_us() if now is None else literal(now)
    clock = template("SELECT :now AS now_us", now=now_sql)
    return [("clock", clock), *message_steps(reads)]
