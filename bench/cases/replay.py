"""Replay: ``pqlsdk replay`` over a generated history, against one SQL query in SQLite and DuckDB.

The history is ``history.py``'s (the same file ``batch.py`` scores), written by a
child process so that generating it never counts in this process's peak memory.
Engines, each from the JSON Lines file to every user's playbook tier, reading and
parsing included:

- ``pqlsdk``: ``pqlsdk replay playbook.toml EVENTS --at NOW --json --engine python``
  in process (tables per tier and band, single loggers, every user's score), its
  JSON written to a temporary file;
- ``pqlsdk-duckdb``: the same command with ``--engine duckdb`` (the rules compiled
  to SQL, ``pqlsdk.warehouse``), its output byte for byte the python engine's;
- ``sqlite`` and ``duckdb``: the playbook as ONE query, ``batch.py``'s SQL and
  runners (imported from there, not copied).

``--outcomes`` adds a conversion for every 20th user at a seeded time, so the
replay also places converters with no look-ahead and suggests thresholds.

Figures: events per second and the process's peak RSS. Memory grows with users,
not events: ``--events 10000000`` (100,000 users) prints the peak RSS and the
KiB per user to compare with the 1,000,000-event run (10,000 users). ``--quick``:
5,000 events.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _case import emit, peak_rss_mib, quick
from cases.batch import ENGINES, PLAYBOOK, Scores, checksum, differences
from cases.batch import run as run_sql
from cases.history import DAYS, NOW, NOW_MS, default_directory, path_for

HERE = Path(__file__).resolve().parent
DAY_MS = 86_400_000


def history(events: int, directory: str | None) -> Path:
    """Return the generated history's path, writing it in a child process when missing."""
    path = path_for(events, Path(directory) if directory else default_directory())
    if not path.exists():
        command = [sys.executable, str(HERE / "history.py"), str(events)]
        subprocess.run([*command, *([directory] if directory else [])], check=True)
    return path


def outcomes(events: int, out: Path) -> Path:
    """Write a conversion for every 20th user of the history, at a seeded time in its span."""
    rng = random.Random(events)
    lines = ["user,time,value"]
    for index in range(0, max(10, events // 100), 20):
        at = NOW_MS - rng.randrange(0, DAYS * DAY_MS // 2)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at / 1000))
        lines.append(f"user-{index:06d},{stamp},{rng.choice([0, 490, 1900])}")
    out.write_text("\n".join(lines) + "\n")
    return out


def rss_mib() -> float:
    """Current resident memory (not the peak), MiB, from /proc."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * 4096 / 2**20


def replay(
    path: Path, outcome_file: Path | None, engine: str = "python"
) -> tuple[Scores, float, float]:
    """Run ``pqlsdk replay`` on ``path``; return every user's (score, tier), seconds, peak MiB."""
    from pqlsdk.cli import main  # noqa: PLC0415 - imported before the clock starts

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "replay.json"
        args = ["replay", str(PLAYBOOK), str(path), "--at", NOW, "--json", "--engine", engine]
        if outcome_file is not None:
            args += ["--outcomes", str(outcome_file)]
        start = time.perf_counter()
        with out.open("w", encoding="utf-8") as sink, contextlib.redirect_stdout(sink):
            code = main(args)
        seconds = time.perf_counter() - start
        peak = peak_rss_mib()
        if code != 0:
            raise SystemExit(f"pqlsdk replay exited with {code}")
        with out.open(encoding="utf-8") as data:
            users = json.load(data)["scores"]["users"]
    return {u: (s["score"], s["tier"]) for u, s in users.items()}, seconds, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=ENGINES, default="pqlsdk")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--data", default=None, help="where generated histories are kept")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--outcomes", action="store_true", help="replay with conversions")
    parser.add_argument("--compare", action="store_true", help="check the engines agree")
    args = parser.parse_args()
    events = args.events or (5_000 if quick() else 1_000_000)
    path = history(events, args.data)
    import pqlsdk.cli  # noqa: PLC0415 - imports are not timed
    import pqlsdk.replay._cli  # noqa: PLC0415

    if args.engine == "pqlsdk-duckdb":
        import pqlsdk.warehouse._replay  # noqa: F401, PLC0415

    baseline = rss_mib()

    with tempfile.TemporaryDirectory() as tmp:
        outcome_file = outcomes(events, Path(tmp) / "outcomes.csv") if args.outcomes else None
        if args.compare:
            ours = replay(path, None)[0]
            for engine in ENGINES[1:]:
                found = differences(ours, run_sql(engine, path)[0])
                print(f"{engine}: {found or 'agrees'}")
            return 0
        if args.engine == "pqlsdk":
            scores, seconds, peak = replay(path, outcome_file)
        elif args.engine == "pqlsdk-duckdb":
            scores, seconds, peak = replay(path, outcome_file, engine="duckdb")
        else:
            scores, seconds, peak = run_sql(args.engine, path)
    variant = f"{events:,} events" + (", outcomes" if args.outcomes else "")
    emit(
        "replay",
        args.engine,
        events / seconds,
        unit="events/s",
        variant=variant,
        seconds=seconds,
        peak_rss_mib=peak,
        baseline_rss_mib=baseline,
        users=len(scores),
        checksum=checksum(scores),
    )
    grown = peak - baseline
    print(
        f"{args.engine}: {events:,} events, {len(scores):,} users in {seconds:.2f} s "
        f"({events / seconds:,.0f} events/s); peak RSS {peak:.0f} MiB, {grown:.0f} MiB over "
        f"the {baseline:.0f} MiB after imports ({grown * 1024 / max(len(scores), 1):.1f} KiB "
        "per user)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
