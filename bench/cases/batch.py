"""Batch scoring: the playbook model over a history of events, by pqlsdk and by one SQL query.

Each engine starts from the same JSON Lines file (``history.py``) and ends with
every user's playbook score and tier; the time covers both, reading and parsing
the file included:

- ``pqlsdk``: ``pqlsdk score playbook.toml EVENTS --now NOW --json --engine python``,
  called in process through ``pqlsdk.cli.main`` with its output written to a
  temporary file (parsed afterwards, outside the time, for the checksum and the
  comparison): the in-process engine.
- ``pqlsdk-duckdb``: the same command with ``--engine duckdb``, what ``pqlsdk
  score`` runs by default with the warehouse extra installed: the rules file
  compiled to SQL (``pqlsdk.warehouse``) and run by DuckDB, reasons included
  (DuckDB writes each user's JSON entry; Python indents them). The batch
  throughput rows of ``bench/run.py`` time this one; ``pqlsdk``'s are reported
  beside them.
- ``sqlite``: stdlib ``sqlite3`` in memory; the raw lines go into a one-column
  table (``executemany``) and ONE query, which does the JSON parsing with ``->>``,
  computes every user's score and tier.
- ``duckdb``: ONE query over ``read_json`` of the file (load and query together).

Run ``python bench/cases/batch.py --engine sqlite --events 1000000`` (``--quick``:
5,000 events). ``--compare`` runs all four engines on the same file in one
process and checks that every user's score (to 1e-6) and tier agree.

The SQL is written by hand for this one model (``examples/rules/playbook.toml``,
defined in ``tests/scenarios/README.md``): it is what an analyst would write,
not something generated from the rules file. Its constants (points, thresholds,
windows) are the rules file's.
"""

# The queries are built from constants only (NOW and the path are bound parameters).
# ruff: noqa: S608

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _case import emit, peak_rss_mib, quick
from cases.history import NOW, NOW_MS, ensure

ROOT = Path(__file__).resolve().parent.parent.parent
PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"
DAY_MS = 86_400_000
ENGINES = ("pqlsdk", "pqlsdk-duckdb", "sqlite", "duckdb")

Scores = dict[str, tuple[float, str]]

# The score from per-user facts, shared by both dialects. Expects columns
# activated, limit_hit, premium, demo, checkout, pricing, days, features, team,
# employees, industry, plan (account traits; NULL when missing or of another
# JSON type) and last_ms (NULL for a user who never tracked).
_SCORE = f"""
, signals AS (
    SELECT uid,
        activated,
        (CASE WHEN limit_hit >= 1 THEN 30 ELSE 0 END)
        + (CASE WHEN premium >= 1 THEN 20 ELSE 0 END)
        + (CASE WHEN team >= 3 THEN 25 ELSE 0 END)
        + (CASE WHEN demo >= 1 THEN 30 ELSE 0 END)
        + (CASE WHEN checkout >= 1 THEN 40 ELSE 0 END)
        + (CASE WHEN pricing >= 3 THEN 15 ELSE 0 END)
        + (CASE WHEN days >= 14 THEN 10 ELSE 0 END)
        + (CASE WHEN features >= 3 THEN 10 ELSE 0 END)
        + (CASE WHEN employees >= 100 THEN 10 ELSE 0 END)
        + (CASE WHEN industry IN ('fintech', 'healthcare') THEN 10 ELSE 0 END)
        + (CASE WHEN plan = 'paid' THEN 20 ELSE 0 END) AS raw,
        CASE
            WHEN last_ms IS NULL THEN 0.1
            WHEN $now - last_ms <= {7 * DAY_MS} THEN 1.0
            WHEN $now - last_ms <= {30 * DAY_MS} THEN 0.5
            ELSE 0.1
        END AS multiplier
    FROM facts
), scored AS (
    SELECT uid,
        CAST(CASE WHEN activated THEN round(raw * multiplier, 9) ELSE 0 END AS DOUBLE) AS score
    FROM signals
)
SELECT uid, score,
    CASE
        WHEN score >= 76 THEN 'burning'
        WHEN score >= 51 THEN 'hot'
        WHEN score >= 26 THEN 'warm'
        ELSE 'cold'
    END AS tier
FROM scored
"""


def _facts(divide: str) -> str:
    """The per-user facts from messages m(seq, type, uid, ms, event, path, feature,
    group_id) and account traits accounts(group_id, employees, industry, plan);
    ``divide`` is the dialect's integer division (``/`` in SQLite, ``//`` in DuckDB).
    """
    return f"""
, tracked AS (
    SELECT uid,
        sum(CASE WHEN event = 'core_workflow_completed' THEN 1 ELSE 0 END) AS core,
        sum(CASE WHEN event = 'limit_hit' THEN 1 ELSE 0 END) AS limit_hit,
        sum(CASE WHEN event = 'premium_feature_attempted' THEN 1 ELSE 0 END) AS premium,
        sum(CASE WHEN event = 'demo_requested' THEN 1 ELSE 0 END) AS demo,
        sum(CASE WHEN event = 'checkout_started' THEN 1 ELSE 0 END) AS checkout,
        sum(CASE WHEN event = 'page_viewed' AND path = '/pricing' THEN 1 ELSE 0 END) AS pricing,
        count(DISTINCT CASE WHEN event = 'feature_used' THEN feature END) AS features,
        count(DISTINCT ms {divide} {DAY_MS}) AS days,
        max(ms) AS last_ms
    FROM m WHERE type = 'track'
    GROUP BY uid
), membership AS (
    SELECT uid, group_id FROM (
        SELECT uid, group_id,
            row_number() OVER (PARTITION BY uid ORDER BY ms DESC, seq DESC) AS latest
        FROM m WHERE type = 'group'
    ) WHERE latest = 1
), teams AS (
    SELECT group_id, count(*) AS active
    FROM membership JOIN tracked USING (uid)
    GROUP BY group_id
), facts AS (
    SELECT u.uid,
        coalesce(t.core, 0) >= 1 AS activated,
        t.limit_hit, t.premium, t.demo, t.checkout, t.pricing, t.days, t.features, t.last_ms,
        CASE WHEN coalesce(tm.active, 0) > 1 THEN tm.active ELSE 1 END AS team,
        a.employees, a.industry, a.plan
    FROM (SELECT DISTINCT uid FROM m) AS u
    LEFT JOIN tracked AS t ON t.uid = u.uid
    LEFT JOIN membership AS mb ON mb.uid = u.uid
    LEFT JOIN teams AS tm ON tm.group_id = mb.group_id
    LEFT JOIN accounts AS a ON a.group_id = mb.group_id
)
"""


# SQLite: the raw lines are in raw(j); SQLite parses the JSON. Timestamps become
# integer milliseconds through julianday() (exact to the millisecond). A
# feature's value is compared as JSON text ('"f3"'), as pqlsdk keys distinct
# values by their JSON encoding; JSON null is no value.
SQLITE_QUERY = (
    """
WITH m AS MATERIALIZED (
    SELECT seq, type, uid,
        CAST(round((julianday(ts) - 2440587.5) * 86400000) AS INTEGER) AS ms,
        event, path, nullif(feature, 'null') AS feature, group_id, traits
    FROM (
        SELECT rowid AS seq,
            j ->> '$.type' AS type,
            coalesce(nullif(j ->> '$.userId', ''), j ->> '$.anonymousId') AS uid,
            j ->> '$.timestamp' AS ts,
            j ->> '$.event' AS event,
            j ->> '$.properties.path' AS path,
            j -> '$.properties.feature' AS feature,
            j ->> '$.groupId' AS group_id,
            CASE WHEN j ->> '$.type' = 'group' THEN j -> '$.traits' END AS traits
        FROM raw
    )
    WHERE uid <> '' AND (type = 'identify' OR (type = 'track' AND event <> '')
        OR (type = 'group' AND group_id <> ''))
), account_traits AS (
    SELECT g.group_id, t.key, t.value, t.type AS json_type,
        row_number() OVER (PARTITION BY g.group_id, t.key ORDER BY g.ms DESC, g.seq DESC) AS latest
    FROM m AS g, json_each(g.traits) AS t
    WHERE g.type = 'group'
), accounts AS (
    SELECT group_id,
        max(CASE WHEN key = 'employees' AND json_type IN ('integer', 'real')
            THEN value END) AS employees,
        max(CASE WHEN key = 'industry' AND json_type = 'text' THEN value END) AS industry,
        max(CASE WHEN key = 'plan' AND json_type = 'text' THEN value END) AS plan
    FROM account_traits WHERE latest = 1
    GROUP BY group_id
)"""
    + _facts("/")
    + _SCORE
)


def _sqlite(path: Path, now_ms: int = NOW_MS) -> Scores:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE raw (j TEXT)")
    with path.open(encoding="utf-8") as lines:
        db.executemany("INSERT INTO raw VALUES (?)", ((line,) for line in lines if line.strip()))
    rows = db.execute(SQLITE_QUERY, {"now": now_ms}).fetchall()
    db.close()
    return {uid: (score, tier) for uid, score, tier in rows}


# DuckDB: read_json with the columns the model needs, typed; traits stay JSON so
# that each key merges on its own (the latest message carrying that key wins).
DUCKDB_QUERY = (
    """
WITH m AS (
    SELECT ordinality AS seq, type,
        coalesce(nullif(userId, ''), anonymousId) AS uid,
        epoch_ms("timestamp") AS ms,
        event, properties.path AS path, properties.feature AS feature,
        groupId AS group_id, traits
    FROM read_json($path, format = 'newline_delimited', columns = {
        type: 'VARCHAR', userId: 'VARCHAR', anonymousId: 'VARCHAR', groupId: 'VARCHAR',
        event: 'VARCHAR', "timestamp": 'TIMESTAMPTZ',
        properties: 'STRUCT(path VARCHAR, feature JSON)', traits: 'JSON'
    }) WITH ORDINALITY
    WHERE coalesce(nullif(userId, ''), anonymousId) <> ''
        AND (type = 'identify' OR (type = 'track' AND event <> '')
            OR (type = 'group' AND groupId <> ''))
), group_traits AS (
    SELECT group_id, ms, seq, traits FROM m WHERE type = 'group'
), accounts AS (
    SELECT group_id,
        arg_max(traits -> '$.employees', (ms, seq))
            FILTER (WHERE json_exists(traits, '$.employees')) AS employees_json,
        arg_max(traits -> '$.industry', (ms, seq))
            FILTER (WHERE json_exists(traits, '$.industry')) AS industry_json,
        arg_max(traits -> '$.plan', (ms, seq))
            FILTER (WHERE json_exists(traits, '$.plan')) AS plan_json,
        CASE WHEN json_type(employees_json) IN ('BIGINT', 'UBIGINT', 'DOUBLE')
            THEN CAST(employees_json AS DOUBLE) END AS employees,
        CASE WHEN json_type(industry_json) = 'VARCHAR'
            THEN industry_json ->> '$' END AS industry,
        CASE WHEN json_type(plan_json) = 'VARCHAR' THEN plan_json ->> '$' END AS plan
    FROM group_traits
    GROUP BY group_id
)"""
    + _facts("//")
    + _SCORE
)


def _duckdb(path: Path, now_ms: int = NOW_MS) -> Scores:
    import duckdb  # noqa: PLC0415 - only this engine needs it

    with duckdb.connect() as db:
        rows = db.execute(DUCKDB_QUERY, {"path": str(path), "now": now_ms}).fetchall()
    return {uid: (score, tier) for uid, score, tier in rows}


def _pqlsdk(path: Path, out: Path, engine: str = "python") -> None:
    """Write ``pqlsdk score --json --engine ENGINE`` of ``path`` to ``out``, as the CLI would."""
    from pqlsdk.cli import main  # noqa: PLC0415 - run() imports it before the clock starts

    with out.open("w", encoding="utf-8") as sink, contextlib.redirect_stdout(sink):
        code = main(["score", str(PLAYBOOK), str(path), "--now", NOW, "--json", "--engine", engine])
    if code != 0:
        raise SystemExit(f"pqlsdk score exited with {code}")


def _read_pqlsdk(out: Path) -> Scores:
    with out.open(encoding="utf-8") as data:
        users = json.load(data)["users"]
    return {uid: (user["score"], user["tier"]) for uid, user in users.items()}


def run(engine: str, path: Path) -> tuple[Scores, float, float]:
    """Score every user of ``path`` with ``engine``; return scores, seconds and peak MiB.

    Imports happen before the clock starts. For pqlsdk the time ends when its JSON
    output is written; reading that output back (for the checksum) is neither
    timed nor counted in the peak memory, which is read when the time ends.
    """
    ours = engine.startswith("pqlsdk")
    if engine in ("duckdb", "pqlsdk-duckdb"):
        import duckdb  # noqa: F401, PLC0415
    if ours:
        # And what ``pqlsdk score`` imports on its way (the command, the rules' reader).
        import pqlsdk._score_cli  # noqa: PLC0415
        import pqlsdk.cli  # noqa: PLC0415
        import pqlsdk.rules._loader  # noqa: PLC0415
    if engine == "pqlsdk-duckdb":
        import pqlsdk.warehouse  # noqa: PLC0415 - sqlglot too
        import pqlsdk.warehouse._sources  # noqa: F401, PLC0415 - the file's reader
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scores.json"
        start = time.perf_counter()
        if ours:
            _pqlsdk(path, out, "duckdb" if engine == "pqlsdk-duckdb" else "python")
            scores: Scores = {}
        else:
            scores = _sqlite(path) if engine == "sqlite" else _duckdb(path)
        seconds = time.perf_counter() - start
        peak = peak_rss_mib()
        if ours:
            scores = _read_pqlsdk(out)
    return scores, seconds, peak


def checksum(scores: Scores) -> dict[str, object]:
    tiers = Counter(tier for _, tier in scores.values())
    return {
        "tiers": {name: tiers.get(name, 0) for name in ("cold", "warm", "hot", "burning")},
        "score_sum": round(sum(score for score, _ in scores.values()), 2),
    }


def differences(expected: Scores, actual: Scores, limit: int = 10) -> list[str]:
    found = []
    for uid in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(uid), actual.get(uid)
        if want is None or got is None or abs(want[0] - got[0]) > 1e-6 or want[1] != got[1]:
            found.append(f"{uid}: expected {want}, got {got}")
    return found[:limit] if limit else found


def compare(path: Path) -> int:
    results = {}
    for engine in ENGINES:
        scores, seconds, _ = run(engine, path)
        results[engine] = scores
        print(f"{engine:>7}: {len(scores):,} users in {seconds:.2f} s  {checksum(scores)}")
    failed = 0
    for engine in ENGINES[1:]:
        found = differences(results["pqlsdk"], results[engine], limit=0)
        if found:
            failed += 1
            print(f"{engine} differs from pqlsdk for {len(found)} user(s); the first:")
            for line in found[:10]:
                print(f"  {line}")
        else:
            print(f"{engine} agrees with pqlsdk on all {len(results['pqlsdk']):,} users")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=ENGINES, default="pqlsdk")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--data", default=None, help="where generated histories are kept")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--compare", action="store_true", help="run all engines, check they agree")
    parser.add_argument("--check", action="store_true", help="also print every user's score")
    args = parser.parse_args()
    events = args.events or (5_000 if quick() else 1_000_000)
    path = ensure(events, args.data)
    if args.compare:
        return compare(path)
    scores, seconds, peak = run(args.engine, path)
    emit(
        "batch",
        args.engine,
        events / seconds,
        unit="events/s",
        variant=f"{events:,} events",
        seconds=seconds,
        peak_rss_mib=peak,
        users=len(scores),
        checksum=checksum(scores),
    )
    if args.check:
        print(json.dumps({uid: list(value) for uid, value in sorted(scores.items())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
