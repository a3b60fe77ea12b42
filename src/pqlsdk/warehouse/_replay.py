"""``pqlsdk replay --engine duckdb``: the replay's standings from the compiled SQL.

The result is the python engine's ``Replay`` (``pqlsdk.replay._run``), so the
tables, suggestions and lists are made by the same code from the same numbers.
What the python engine folds message by message, this engine asks of DuckDB:

- the messages are read once (``parsed``) and put in folding order: by time,
  ties in arrival order, each ``messageId`` kept once (the first folded), the
  messages at or after ``--at`` left out. ``folded.seq`` is that order, so the
  compiled steps (which break ties by ``seq``) see what the fold sees;
- everyone's score at the evaluation time is the compiled model's over every
  folded message; an account's is its best member's;
- ``--every``: the compiled model again over the messages before each instant;
- converters are placed by the python engine itself (``place_converters``),
  from the messages of the converters and of everyone who ever shared an
  account with one: few, and the only ones that can move a converter's score.
  The no-look-ahead rule and the time to convert are then the python engine's
  own, not a second implementation of them.

The python engine folds through a bounded reorder window (``REORDER_WINDOW``):
a message more than the window out of order is folded late, which no set
operation reproduces. When a history might hold one (an earlier message more
than the window before it is later), this engine declines and the python
engine replays it: the same answer, never a different one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, cast

from sqlglot import exp

from .._aggregates import Aggregate
from .._history import History, read
from .._scoring import Score
from ..replay import _run
from ..replay._bands import Bands
from ..replay._outcomes import Conversion
from ..replay._run import (
    Checkpoint,
    Replay,
    Standing,
    end_of,
    place_converters,
)
from ..rules._model import Model, Rules
from . import _duckdb
from ._compile import _Builder, _new_builder
from ._dialect_duckdb import DUCKDB
from ._message_steps import _Reads, message_steps
from ._run import create, rows
from ._score import _score
from ._values import literal, select, template

__all__ = ["replay_sql"]

_NEVER: Final = 1 << 62  # µs: later than any instant
_DAY: Final = 86_400_000_000  # µs
_OWN: Final = frozenset({"clock", "parsed", "dropped", "m"})
"""The compiled steps this engine replaces: its clock, messages and folding order."""


def replay_sql(
    events: Path,
    models: Sequence[tuple[Rules, Model]],
    aggregates: Collection[Aggregate],
    *,
    sustained: tuple[Rules, Model] | None = None,
    edges: Sequence[float],
    loggers: tuple[float, str],
    conversions: dict[tuple[str, str], Conversion] | None = None,
    at: int | None = None,
    every: int | None = None,
) -> Replay | None:
    """Replay ``events`` under ``models`` in DuckDB; None when only the python engine can.

    ``models`` are the replayed model and ``--compare``'s, each with its rules
    file; ``sustained`` the single loggers' model, computed only for the single
    loggers ``loggers`` finds (the share of tracks on one day, the lowest tier).
    The other arguments are those of ``pqlsdk.replay.replay``. A rule the SQL
    cannot compute raises ``RulesError`` at its place in the rules file.

    Added in version 0.1.0.
    """
    chosen = [*models, *([sustained] if sustained is not None else [])]
    if any(model.subject != "user" for _, model in chosen):
        return None  # users scored under an account model: the python engine's case alone
    compiled = _Compiled(chosen)
    connection = _duckdb.connect()
    try:
        with _duckdb.source(events) as (relation, file_now):
            run = _SqlRun(connection, compiled, relation, at=at)
            run.replayed = len(models)
            if not run.in_order():
                return None
            return run.replay(
                events,
                [model for _, model in models],
                aggregates,
                edges=edges,
                conversions=conversions or {},
                file_now=file_now,
                every=every,
                loggers=loggers,
            )
    except _duckdb.UnreadableError:
        # DuckDB gives up on a whole file for one line that is not a message
        # object; the python engine names that line, or refuses it and goes on.
        return None
    finally:
        connection.close()


class _Compiled:
    """Every model's compiled steps, one set per rules file, reading one ``parsed``."""

    def __init__(self, chosen: Sequence[tuple[Rules, Model]]) -> None:
        reads = _Reads(DUCKDB)
        builders: dict[int, _Builder] = {}
        self.names: list[tuple[_Builder, str, Model]] = []
        for rules, model in chosen:
            builder = builders.get(id(rules))
            if builder is None:
                builder = builders[id(rules)] = _new_builder(rules, 0, DUCKDB)
                builder.reads = reads  # one reading of the messages for every rules file
            self.names.append((builder, builder.compile(model), model))
        self.steps = {
            id(builder): [step for step in builder.steps() if step[0] not in _OWN]
            for builder in builders.values()
        }
        # Last: every rules file has named the properties and traits it reads.
        self.parsed = dict(message_steps(reads))["parsed"]
        self.columns = [*reads.properties.values(), *reads.traits.values()]


class _SqlRun:
    """One replay's statements on one connection."""

    def __init__(
        self, connection: Any, compiled: _Compiled, relation: exp.Expr, *, at: int | None
    ) -> None:
        self.connection = connection
        self.compiled = compiled
        self.relation = relation
        self.at = at
        self.stop = _NEVER if at is None else at
        self.sorted = False
        self.replayed = len(compiled.names)
        create(connection, "parsed", compiled.parsed, DUCKDB, relation=relation)
        _duckdb._judge_doubtful(connection, relation)

    def one(self, statement: exp.Expr) -> tuple[Any, ...]:
        found: tuple[Any, ...] = self.connection.execute(statement.sql("duckdb")).fetchone()
        return found

    def all(self, statement: exp.Expr) -> list[tuple[Any, ...]]:
        found: list[tuple[Any, ...]] = self.connection.execute(statement.sql("duckdb")).fetchall()
        return found

    def in_order(self) -> bool:
        """Whether the reorder window folds every message in time order (see the module).

        Also notes whether the file is in time order already (``self.sorted``):
        then folding order is arrival order, and nothing need be sorted.
        """
        (unsorted,) = self.one(
            select(
                """
                SELECT COUNT(*) FROM (
                    SELECT ts, LAG(ts) OVER (ORDER BY seq) AS previous
                    FROM parsed WHERE type IS NOT NULL
                ) AS ordered WHERE previous > ts
                """
            )
        )
        self.sorted = int(unsorted) == 0
        if self.sorted:
            return True
        (late,) = self.one(
            select(
                """
                SELECT COUNT(*) FROM (
                    SELECT ts, MAX(ts) OVER (ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING
                        AND :w PRECEDING) AS before
                    FROM parsed WHERE type IS NOT NULL
                ) AS windowed WHERE before > ts
                """,
                w=literal(_run.REORDER_WINDOW + 1),
            )
        )
        return int(late) == 0

    def replay(
        self,
        events: Path,
        models: list[Model],
        aggregates: Collection[Aggregate],
        *,
        edges: Sequence[float],
        conversions: dict[tuple[str, str], Conversion],
        file_now: str | None,
        every: int | None,
        loggers: tuple[float, str],
    ) -> Replay:
        """Fold, score and place everyone; return what ``pqlsdk.replay.replay`` would."""
        stop = literal(self.stop)
        folded, latest, beyond, first, last_folded, accepted = self.one(
            select(
                """
                SELECT COUNT(*) FILTER (WHERE ts < :stop), MAX(ts),
                    MIN(ts) FILTER (WHERE ts >= :stop), MIN(ts),
                    MAX(ts) FILTER (WHERE ts < :stop), COUNT(*)
                FROM parsed WHERE type IS NOT NULL
                """,
                stop=stop,
            )
        )
        end = self.at if self.at is not None else end_of(file_now, -1 if latest is None else latest)
        duplicates = self.fold()
        self.evaluate(end)
        finals = [(model, self.scored(model)) for model in models]
        standings: dict[tuple[str, str], Standing] = {}
        if conversions:
            last = beyond if beyond is not None else latest
            standings |= place_converters(
                self.converters(conversions),
                models,
                aggregates,
                edges=edges,
                conversions=conversions,
                end=end,
                last=last,
            )
        users = [
            uid
            for (uid,) in self.all(select("SELECT uid FROM folded GROUP BY uid ORDER BY MIN(seq)"))
        ]
        for uid in users:
            if ("user", uid) not in standings:
                found = [rows_of[uid] for _, rows_of in finals]
                standings["user", uid] = Standing(
                    "user", uid, [r["score"] for r in found], [r["tier"] for r in found], end
                )
        groups = {
            gid
            for (gid,) in self.all(select("SELECT DISTINCT gid FROM folded WHERE type = 'group'"))
        }
        watched = {c.id for c in conversions.values() if c.subject == "account"}
        members: dict[str, list[str]] = {}
        for uid, row in finals[0][1].items():
            if row["account_id"] is not None:
                members.setdefault(row["account_id"], []).append(uid)
        for account_id in sorted(groups | watched):
            if ("account", account_id) not in standings:
                scores = [
                    max([0.0, *(rows_of[m]["score"] for m in members.get(account_id, ()))])
                    for _, rows_of in finals
                ]
                tiers = [m.tier_for(s) for m, s in zip(models, scores, strict=True)]
                standings["account", account_id] = Standing(
                    "account", account_id, scores, tiers, end
                )
        known = {"user": set(users), "account": groups}
        unmatched = [key for key in conversions if key[1] not in known[key[0]]]
        for key in unmatched:
            del standings[key]
        timeline = []
        if every is not None and first is not None and first < self.stop:
            timeline = self.timeline(models[0], every, (first, last_folded, end), finals[0][1])
        busiest = self.busiest()
        return Replay(
            models=tuple(models),
            bands=tuple((Bands.of_tiers(m), Bands.of_edges(edges)) for m in models),
            at=end,
            standings=standings,
            events=int(folded),
            late=0,
            unmatched=len(unmatched),
            timeline=timeline,
            busiest_day=busiest,
            ends=_RowEnds(finals + self.loggers(finals[0], busiest, loggers), end),
            skipped=self.skipped(events, int(folded), int(accepted)),
            duplicates=duplicates,
        )

    def fold(self) -> int:
        """Hold the folded messages (``folded``): in folding order, each ``messageId`` once.

        Return how many repeated an id (and are left out).
        """
        key = DUCKDB.id_key(exp.column("mid"))
        candidates = select(
            "SELECT seq, ts, mid, :key AS id_key FROM parsed "
            "WHERE type IS NOT NULL AND mid IS NOT NULL AND ts < :stop",
            key=key,
            stop=literal(self.stop),
        )
        dropped = select(
            """
            SELECT seq FROM (
                SELECT seq, ROW_NUMBER() OVER (PARTITION BY mid ORDER BY ts, seq) AS nth
                FROM candidates WHERE id_key IN (
                    SELECT id_key FROM candidates GROUP BY id_key HAVING COUNT(*) > 1
                )
            ) AS ranked WHERE nth > 1
            """
        ).with_("candidates", as_=candidates, copy=False)
        create(self.connection, "dropped", dropped, DUCKDB)
        (repeated,) = self.one(select("SELECT COUNT(*) FROM dropped"))
        # In a file in time order, arrival order is folding order: a view will do.
        order = "seq" if self.sorted else "ROW_NUMBER() OVER (ORDER BY ts, seq)"
        folded = select(
            f"""
            SELECT {order} AS seq, seq AS line_seq, type, uid, mid, ts, event, gid, doubt
            FROM parsed WHERE type IS NOT NULL AND ts < :stop
            """,  # noqa: S608 - the engine's own text
            stop=literal(self.stop),
        ).select(*self.compiled.columns, copy=False)
        if repeated:  # every step reads the view: no filter where there is nothing to drop
            folded = folded.where("seq NOT IN (SELECT seq FROM dropped)", copy=False)
        create(self.connection, "folded", folded, DUCKDB, view=self.sorted)
        return int(repeated)

    def evaluate(self, now: int) -> None:
        """Score at ``now`` over every folded message: the models' rows come from ``scored``."""
        clock = template("SELECT :now AS now_us", now=literal(now))
        create(self.connection, "clock", clock, DUCKDB)
        create(self.connection, "m", select("SELECT * FROM folded"), DUCKDB)
        self.held: int | None = None  # whose steps the tables hold: a rules file's
        self.found: dict[int, dict[str, dict[str, Any]]] = {}

    def loggers(
        self,
        first: tuple[Model, dict[str, dict[str, Any]]],
        busiest: dict[str, tuple[int, int]],
        loggers: tuple[float, str],
    ) -> list[tuple[Model, dict[str, dict[str, Any]]]]:
        """Return the single loggers' model and its rows, for the single loggers at least.

        A single logger (``_loggers``) has ``share`` of their tracks on one day
        and ``tier`` or above under the first model (``loggers``). When the
        model is another rules file's, only the
        single loggers are scored, from their messages and their accounts'
        members' (nobody else's change their scores): a few users, not all.
        """
        extra = self.compiled.names[self.replayed :]
        if not extra:
            return []
        (share, tier), (model, found) = loggers, first
        bar = model.rank(tier)
        wanted = [
            uid
            for uid, (most, total) in busiest.items()
            if most >= share * total and model.rank(found[uid]["tier"]) >= bar
        ]
        if not wanted:
            return []  # nobody to show under it: not computed
        if self.held != id(extra[0][0]):
            self.connection.execute(
                "CREATE OR REPLACE TEMPORARY TABLE wanted AS "
                "SELECT unnest(CAST(? AS VARCHAR[])) AS uid",
                [wanted],
            )
            kept = select(
                """
                SELECT * FROM folded WHERE uid IN (
                    SELECT uid FROM wanted
                    UNION
                    SELECT uid FROM folded WHERE type = 'group' AND gid IN (
                        SELECT gid FROM folded WHERE type = 'group'
                            AND uid IN (SELECT uid FROM wanted)
                    )
                )
                """
            )
            create(self.connection, "m", kept, DUCKDB, replace=True)
        return [(model, self.scored(model)) for _, _, model in extra]

    def scored(self, model: Model) -> dict[str, dict[str, Any]]:
        """Return ``model``'s rows by user id at the evaluation time, computed once, when asked.

        The single loggers' model is asked for only when there are single loggers.
        """
        index = next(i for i, (_, _, m) in enumerate(self.compiled.names) if m is model)
        if index not in self.found:
            builder, name, _ = self.compiled.names[index]
            if self.held != id(builder):  # each rules file's steps: the same table names
                self.held = id(builder)
                for step, body in self.compiled.steps[id(builder)]:
                    create(self.connection, step, body, DUCKDB, replace=True)
            rows_of = rows(self.connection, exp.select("*").from_(name), DUCKDB)
            self.found[index] = {row["id"]: row for row in rows_of}
        return self.found[index]

    def converters(
        self, conversions: dict[tuple[str, str], Conversion]
    ) -> Iterator[tuple[int, Any]]:
        """Yield, in folding order, the messages that can move a converter's score."""
        subjects, ids = zip(*conversions, strict=True)
        self.connection.execute(
            "CREATE OR REPLACE TEMPORARY TABLE converted AS SELECT "
            "unnest(CAST(? AS VARCHAR[])) AS subject, unnest(CAST(? AS VARCHAR[])) AS id",
            [list(subjects), list(ids)],
        )
        found = self.all(
            select(
                """
                SELECT line_seq, ts FROM folded WHERE uid IN (
                    SELECT id FROM converted WHERE subject = 'user'
                    UNION
                    SELECT uid FROM folded WHERE type = 'group' AND gid IN (
                        SELECT gid FROM folded WHERE type = 'group'
                            AND uid IN (SELECT id FROM converted WHERE subject = 'user')
                        UNION SELECT id FROM converted WHERE subject = 'account'
                    )
                ) ORDER BY seq
                """
            )
        )
        path = cast(Path, _duckdb.lines_of(self.relation))  # source() reads files only
        lines = dict(_duckdb.lines_at(path, {seq for seq, _ in found}))
        for seq, ts in found:
            yield ts, _duckdb.judged(lines[seq])

    def busiest(self) -> dict[str, tuple[int, int]]:
        """Per user: tracks on their busiest UTC day, and in all."""
        found = self.all(
            select(
                """
                SELECT uid, MAX(n), SUM(n) FROM (
                    SELECT uid, CAST(floor(ts / CAST(86400000000 AS DOUBLE)) AS BIGINT) AS day,
                        COUNT(*) AS n
                    FROM folded WHERE type = 'track' GROUP BY uid, day
                ) AS days GROUP BY uid
                """
            )
        )
        return {uid: (int(most), int(total)) for uid, most, total in found}

    def skipped(self, events: Path, folded: int, accepted: int) -> dict[str, int]:
        """Count, by reason, the refused messages the python engine reads before it stops.

        It stops at ``--at``, having read ``REORDER_WINDOW`` messages ahead; it
        names the reason, which the python reader alone knows: when there are
        refused messages, it reads the file as far again.
        """
        read_up_to = folded + _run.REORDER_WINDOW  # the accepted message read last, from 0
        limit = _NEVER
        if self.at is not None and read_up_to < accepted:
            (limit,) = self.one(
                select(
                    "SELECT seq FROM parsed WHERE type IS NOT NULL ORDER BY seq LIMIT 1 OFFSET :k",
                    k=literal(read_up_to),
                )
            )
        (refused,) = self.one(
            select("SELECT COUNT(*) FROM parsed WHERE type IS NULL AND seq < :l", l=literal(limit))
        )
        if not refused:
            return {}
        history = History()
        for count, _ in enumerate(read(events, history)):
            if count == read_up_to and limit != _NEVER:
                break
        return dict(history.skipped)

    def timeline(
        self,
        model: Model,
        every: int,
        span: tuple[int, int, int],
        final: dict[str, dict[str, Any]],
    ) -> list[Checkpoint]:
        """Count the users per tier at each ``--every`` instant, and those who changed tier.

        ``span``: the first message's time, the last folded one's, the evaluation
        time. Each instant is the first model's query over the messages before
        it, at it: one statement, written once, the instant its parameter.
        """
        first, last, end = span
        builder, name, _ = self.compiled.names[0]
        query = exp.select("id", "tier").from_(name)
        steps = [
            ("clock", select("SELECT CAST(? AS BIGINT) AS now_us")),
            ("m", select("SELECT * FROM folded WHERE ts < (SELECT now_us FROM clock)")),
            *self.compiled.steps[id(builder)],
        ]
        for step, body in steps:
            query = query.with_(step, as_=body)
        # Planned once: the query is long, and the messages before one instant few.
        self.connection.execute(f"PREPARE checkpoint AS {query.sql('duckdb')}")
        timeline: list[Checkpoint] = []
        before: dict[str, str] = {}
        instant = (first // every + 1) * every
        while instant <= last or instant < end:
            found = dict(self.connection.execute(f"EXECUTE checkpoint({instant:d})").fetchall())
            timeline.append(_checkpoint(model, instant, found, before))
            instant += every
        found = {uid: row["tier"] for uid, row in final.items()}
        timeline.append(_checkpoint(model, end, found, before))
        return timeline


def _checkpoint(model: Model, at: int, found: dict[str, str], before: dict[str, str]) -> Checkpoint:
    """Count ``found`` (user to tier) per tier and the changes since ``before``; update it."""
    tiers = dict.fromkeys((name for _, name in model.tiers), 0)
    tiers.update(Counter(found.values()))
    changed = sum(1 for uid, tier in found.items() if before.get(uid, tier) != tier)
    before |= found
    return Checkpoint(at, tiers, changed)


class _RowEnds:
    """``Ends`` from the rows of the compiled models at the evaluation time."""

    def __init__(self, scored: list[tuple[Model, dict[str, dict[str, Any]]]], at: int) -> None:
        self.found = scored
        self.at = at

    def _row(self, model: Model, user_id: str) -> dict[str, Any]:
        return next(rows_of for m, rows_of in self.found if m is model)[user_id]

    def user_ids(self) -> Iterator[str]:
        return iter(self.found[0][1])

    def tier(self, model: Model, user_id: str) -> str:
        tier: str = self._row(model, user_id)["tier"]
        return tier

    def score(self, model: Model, user_id: str) -> Score:
        return _score(self._row(model, user_id), model, self.at)
