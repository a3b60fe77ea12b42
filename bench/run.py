"""Benchmarks against the peers, in one run on one machine, with a report.

Run: ``python3 bench/run.py`` (about 50 minutes; ``--quick`` for a few seconds
of small sizes, which the test suite runs to prove the runner works).

It makes ``bench/.venv`` (pqlsdk and the peers pinned in ``pyproject.toml``'s
``bench`` dependency group: PostHog, Segment, GrowthBook, LaunchDarkly,
OpenFeature, DuckDB, matplotlib), unless ``--python`` names an interpreter that
has them. Then it runs every case in ``bench/cases/`` ``--repeat`` times, each
run a fresh process with the same interpreter and the same loopback sink, and
prints and writes:

- ``bench/results/latest.md``: each figure as the median of the runs with min
  and max (per-call figures also with p99.9 and the longest call), then every
  comparison as a ratio pqlsdk / peer from this run, beside its target;
- ``bench/results/latest.json``: the raw figures; ``bench/results/latest.png``:
  the ratios against their targets as a chart;
- with ``--readme``, the table in the README's performance section.

One case runs once, in the first round: ``pqlsdk score --engine duckdb`` on a
history ten times the batch's, whose peak memory is held to a 2 GiB budget.
Issue 21's own bounds (tails, intake capacity, Redis, memory per user) are
budget rows too, each against the worst run.

Numbers depend on the machine and on what else it runs; the ratios, measured
side by side in one run, are what the targets are about.
"""

# The comparisons read best as a table, one a line.
# ruff: noqa: E501

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from _case import PREFIX  # noqa: E402

Key = tuple[str, str, str]  # case, subject, variant


@dataclass(frozen=True)
class Comparison:
    """A ratio pqlsdk / peer from this run, and the bound it should meet."""

    label: str
    ours: Key
    theirs: Key | tuple[Key, ...] | float  # several: the fastest of them; a float: a budget
    target: str  # "<= 0.33" or ">= 0.5": how the ratio must compare; "": reported only
    field: str = "value"
    higher_is_better: bool = False  # for throughputs: the ratio is pqlsdk / peer all the same


def cases(quick: bool, sink: str, events: int) -> list[list[str]]:
    """Every case run, as arguments after ``python``."""
    capture = [
        ["cases/capture.py", "--sdk", sdk, "--mode", mode, "--sink", sink]
        for mode in ("live", "disabled")
        for sdk in ("pqlsdk", "pqlsdk-memory", "posthog", "segment")
    ]
    # The machine's own tail: a no-op call through the same loops (its rows are named "live").
    capture.append(["cases/capture.py", "--sdk", "floor", "--mode", "live"])
    decide = [
        ["cases/decide.py", "--sdk", sdk]
        for sdk in ("pqlsdk-gate", "pqlsdk-decide", "growthbook", "launchdarkly", "openfeature")
    ]
    runs = [
        *capture,
        *decide,
        # Intake capacity and a 100,000-call burst's tail on the default store.
        ["cases/intake.py", "--sink", sink],
        *(["cases/score.py", "--store", store] for store in ("memory", "sqlite")),
        # Figures only: track(), gate() and decide() on memory, SQLite and Redis.
        *(["cases/stores.py", "--store", store] for store in ("memory", "sqlite", "redis")),
        *(
            ["cases/batch.py", "--engine", engine, "--events", str(events)]
            for engine in ("pqlsdk", "pqlsdk-duckdb", "sqlite", "duckdb")
        ),
        # Replay of the same file on both engines; the SQL queries' figures are batch.py's.
        *(
            ["cases/replay.py", "--engine", engine, "--events", str(events)]
            for engine in ("pqlsdk", "pqlsdk-duckdb")
        ),
        *(["cases/imports.py", "--module", module] for module in ("pqlsdk", "posthog")),
        *(["cases/memory.py", "--store", store] for store in ("memory", "sqlite", "redis")),
        *(["cases/web.py", "--framework", framework] for framework in ("flask", "django")),
    ]
    return [[*run, "--quick"] if quick else run for run in runs]


def large_cases(quick: bool, large: int) -> list[list[str]]:
    """Cases run once, in the first round: a history ten times the batch's, against a budget."""
    run = ["cases/batch.py", "--engine", "pqlsdk-duckdb", "--events", str(large)]
    return [[*run, "--quick"] if quick else run]


def comparisons(events: int, sizes: tuple[int, int], big: int) -> list[Comparison]:
    """The targets of issue 8, each a ratio from the same run."""
    live = ("capture", "posthog", "live"), ("capture", "segment", "live")
    burst = ("capture", "posthog", "live, burst"), ("capture", "segment", "live, burst")
    quiet = ("capture", "posthog", "disabled"), ("capture", "segment", "disabled")
    growthbook = ("decision", "growthbook", "")
    gate, decide = ("decision", "pqlsdk-gate", ""), ("decision", "pqlsdk-decide", "")
    small, large = (("score", "pqlsdk", f"memory, {n:,} events") for n in sizes)
    ours, duckdb, sqlite, compiled = (("batch", e, f"{events:,} events") for e in ENGINES)
    fastest = "/ fastest peer"
    return [
        Comparison(f"track(), sender live {fastest}", ("capture", "pqlsdk", "live"), live, "<= 0.33"),
        Comparison(f"track(), memory store, sender live {fastest}", ("capture", "pqlsdk-memory", "live"), live, "<= 0.33"),
        Comparison(f"track(), sending disabled {fastest}", ("capture", "pqlsdk", "disabled"), quiet, "<= 0.33"),
        Comparison(f"track() p99.9, sender live {fastest}", ("capture", "pqlsdk", "live"), live, "<= 1.0", "p999"),
        Comparison(f"track() p99.9, burst, sender live {fastest}", ("capture", "pqlsdk", "live, burst"), burst, "<= 0.1", "p999"),
        Comparison(f"track() longest call, burst, sender live {fastest}", ("capture", "pqlsdk", "live, burst"), burst, "<= 0.4", "longest"),
        Comparison("gate() / GrowthBook is_on()", gate, growthbook, "<= 1.0"),
        Comparison("decide() / GrowthBook is_on()", decide, growthbook, "<= 1.0"),
        Comparison("decide(), memo cold / GrowthBook is_on()", ("decision", "pqlsdk-decide", "memo cold"), growthbook, "<= 1.0"),
        Comparison("gate() / LaunchDarkly variation()", gate, ("decision", "launchdarkly", ""), "<= 1.0"),
        Comparison("gate() / OpenFeature in-memory", gate, ("decision", "openfeature", ""), "<= 1.0"),
        Comparison(f"score(): {large[2]} / {small[2]}", large, small, "<= 1.2"),
        # `pqlsdk score` as installed with the warehouse extra: --engine auto is duckdb.
        Comparison("batch scoring throughput / DuckDB", compiled, duckdb, ">= 0.5", higher_is_better=True),
        Comparison("batch scoring throughput / SQLite", compiled, sqlite, ">= 5", higher_is_better=True),
        Comparison("batch scoring throughput, --engine python / DuckDB", ours, duckdb, "", higher_is_better=True),
        Comparison("batch scoring throughput, --engine python / SQLite", ours, sqlite, "", higher_is_better=True),
        Comparison("batch scoring peak memory / DuckDB", ours, duckdb, "<= 0.2", "peak_rss_mib"),
        Comparison("batch scoring --engine duckdb throughput / DuckDB", compiled, duckdb, ">= 0.8", higher_is_better=True),
        Comparison("replay --engine duckdb throughput / --engine python", ("replay", "pqlsdk-duckdb", f"{events:,} events"), ("replay", "pqlsdk", f"{events:,} events"), ">= 5", higher_is_better=True),
        Comparison("import pqlsdk / import posthog", ("import", "pqlsdk", ""), ("import", "posthog", ""), "<= 0.5"),
        # Issue 20: ten times the history within 2 GiB (one run: the time is in the table).
        Comparison(f"batch scoring --engine duckdb, {big:,} events: peak memory / 2 GiB", ("batch", "pqlsdk-duckdb", f"{big:,} events"), 2048.0, "<= 1.0", "peak_rss_mib"),
        # Issue 21's own bounds, each against the worst of the runs ("in every run").
        Comparison("track() p99.9, 100,000-call burst, worst run / 200 µs", ("intake_burst", "pqlsdk", "sqlite, sender live"), 200.0, "<= 1.0", "p999_worst"),
        Comparison("track() longest call, 100,000-call burst / 5 ms", ("intake_burst", "pqlsdk", "sqlite, sender live"), 5000.0, "<= 1.0", "longest"),
        Comparison("track() p99.9, paced, sender live, worst run / 100 µs", ("capture", "pqlsdk", "live"), 100.0, "<= 1.0", "p999_worst"),
        Comparison("track() longest call, paced, sender live / 2 ms", ("capture", "pqlsdk", "live"), 2000.0, "<= 1.0", "longest"),
        Comparison("intake capacity, SQLite, slowest run / 60,000 events/s", ("intake_capacity", "pqlsdk", "sqlite"), 60000.0, ">= 1.0", "min", higher_is_better=True),
        Comparison("Redis track() at 10k calls/s, slowest run / 50 µs", ("stores", "pqlsdk", "redis track()"), 50.0, "<= 1.0", "max_value"),
        Comparison("memory store per user, playbook model / 1 KiB", ("memory", "pqlsdk", "memory"), 100_000 / 1024, "<= 1.0", "max_value"),
    ]  # fmt: skip


ENGINES = ("pqlsdk", "duckdb", "sqlite", "pqlsdk-duckdb")


def run_case(python: str, args: list[str], timeout: float) -> list[dict[str, Any]]:
    """Run one case in a fresh process; return its figures."""
    done = subprocess.run(
        [python, *args],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return [
        json.loads(line[len(PREFIX) :])
        for line in done.stdout.splitlines()
        if line.startswith(PREFIX)
    ]


def summarise(figures: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """Median, min and max of each figure's value over the runs; tails kept whole."""
    runs: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for figure in figures:
        runs[figure["case"], figure["subject"], figure["variant"]].append(figure)
    table: dict[Key, dict[str, Any]] = {}
    for key, group in runs.items():
        values = [f["value"] for f in group]
        row: dict[str, Any] = {
            "unit": group[0]["unit"],
            "value": statistics.median(values),
            "min": min(values),
            "max_value": max(values),
            "runs": len(values),
        }
        if "p999" in group[0]:
            row["p999"] = statistics.median(f["p999"] for f in group)
            row["p999_worst"] = max(f["p999"] for f in group)
            row["longest"] = max(f["max"] for f in group)
        if "peak_rss_mib" in group[0]:
            row["peak_rss_mib"] = statistics.median(f["peak_rss_mib"] for f in group)
        table[key] = row
    return table


def ratio(table: dict[Key, dict[str, Any]], comparison: Comparison) -> tuple[float, str] | None:
    """The comparison's ratio and the peer it was taken against (None if a side is missing)."""
    ours = table.get(comparison.ours)
    if isinstance(comparison.theirs, float):  # a budget, not a peer
        return None if ours is None else (ours[comparison.field] / comparison.theirs, "budget")
    peers = comparison.theirs if isinstance(comparison.theirs[0], tuple) else (comparison.theirs,)
    found = [(table[k][comparison.field], k) for k in peers if k in table]
    if ours is None or not found:
        return None
    best = max(found) if comparison.higher_is_better else min(found)
    return ours[comparison.field] / best[0], best[1][1]


def holds(value: float, target: str) -> bool:
    """Whether ``value`` meets ``target`` ("<= x" or ">= x")."""
    op, bound = target.split()
    return value <= float(bound) if op == "<=" else value >= float(bound)


def machine() -> str:
    """One line naming this machine: CPU, cores, memory, OS, Python."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB"
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def markdown(
    table: dict[Key, dict[str, Any]], checks: list[Comparison], header: str, *, quick: bool
) -> str:
    """The report: figures, then ratios with their targets."""
    lines = [header, ""]
    lines += [
        "| ratio (pqlsdk / peer, same run) | peer | ratio | target | |",
        "|---|---|---:|---|---|",
    ]
    for comparison in checks:
        found = ratio(table, comparison)
        if found is None:
            lines.append(f"| {comparison.label} | - | - | {comparison.target} | not measured |")
            continue
        value, peer = found
        if not comparison.target:  # a figure reported beside the others, without a bound
            lines.append(f"| {comparison.label} | {peer} | {value:.2f} | - | reported |")
            continue
        mark = "met" if holds(value, comparison.target) else "**missed**"
        lines.append(
            f"| {comparison.label} | {peer} | {value:.2f} | {comparison.target} | {mark} |"
        )
    lines += [
        "",
        "| case | subject | variant | unit | median | min | max | p99.9 | longest call |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for (case, subject, variant), row in sorted(table.items()):
        tail = (_fmt(row["p999"]), _fmt(row["longest"])) if "p999" in row else ("", "")
        unit = row["unit"]
        if "peak_rss_mib" in row:
            unit += f" (peak {row['peak_rss_mib']:,.0f} MiB)"
        lines.append(
            f"| {case} | {subject} | {variant or '-'} | {unit} | {_fmt(row['value'])} | "
            f"{_fmt(row['min'])} | {_fmt(row['max_value'])} | {tail[0]} | {tail[1]} |"
        )
    if quick:
        lines += ["", "Quick mode: small sizes, one run each; these numbers prove the runner only."]
    return "\n".join(lines) + "\n"


def chart(
    table: dict[Key, dict[str, Any]], checks: list[Comparison], path: Path, title: str
) -> None:
    """Each ratio beside its target, on a log scale: bars left of 1 are pqlsdk's wins."""
    import matplotlib  # noqa: PLC0415 - only the report needs it
    import matplotlib.ticker  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    labels, values, colours, targets = [], [], [], []
    for comparison in checks:
        found = ratio(table, comparison)
        if found is None or not comparison.target:  # the chart shows ratios against targets
            continue
        value = found[0]
        # Throughputs read better inverted: peer / pqlsdk, so smaller is better everywhere.
        shown, target = value, float(comparison.target.split()[1])
        if comparison.higher_is_better:
            shown, target = 1 / value, 1 / target
        labels.append(comparison.label)
        values.append(shown)
        targets.append(target)
        colours.append("#2a9d8f" if holds(value, comparison.target) else "#e76f51")
    figure, axes = plt.subplots(figsize=(10, 0.45 * len(labels) + 1.5))
    rows = range(len(labels))
    axes.barh(rows, values, color=colours)
    axes.scatter(targets, rows, marker="|", s=400, color="black", label="target", zorder=3)
    axes.set_yticks(list(rows), labels)
    axes.invert_yaxis()
    axes.set_xscale("log")
    low, high = min([*values, *targets]) / 1.5, max([*values, *targets]) * 1.5
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if low <= t <= high]
    axes.set_xlim(low, high)
    axes.set_xticks(ticks, [f"{t:g}" for t in ticks])
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.axvline(1.0, color="grey", linewidth=0.8)
    axes.set_title(title, fontsize=9)
    axes.set_xlabel("cost ratio pqlsdk / peer (throughputs: peer / pqlsdk); lower is better")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def update_readme(report: str) -> None:
    """Put the report between the README's benchmark markers."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"README.md has no {start} ... {end} section")
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    readme.write_text(f"{before}{start}\n{report}{end}{after}")


def bench_python() -> str:
    """``bench/.venv``'s interpreter, made and filled on first use."""
    venv = BENCH / ".venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip>=25.1"], check=True)  # reads dependency groups
    subprocess.run(
        [*pip, "--editable", str(ROOT), "--group", f"{ROOT}/pyproject.toml:bench"], check=True
    )
    return str(python)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each")
    parser.add_argument("--repeat", type=int, default=None, help="runs per case (default 5)")
    parser.add_argument("--python", help="an interpreter with pqlsdk and the peers installed")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--events", type=int, default=None, help="batch history size")
    parser.add_argument("--only", help="run only cases whose script name contains this")
    parser.add_argument("--readme", action="store_true", help="update README.md's table")
    parser.add_argument("--report", action="store_true", help="only redo the report from --out")
    args = parser.parse_args(argv)
    if args.report:
        report(args.out, readme=args.readme)
        return 0
    repeat = args.repeat or (1 if args.quick else 5)
    events = args.events or (5_000 if args.quick else 1_000_000)
    large = events * 10
    python = args.python or bench_python()
    timeout = 300 if args.quick else 1800
    # The batch histories are made once, outside every measured process.
    subprocess.run(
        [python, "-c", f"from cases.history import ensure; ensure({events}); ensure({large})"],
        cwd=BENCH,
        check=True,
    )
    figures: list[dict[str, Any]] = []
    started = time.monotonic()
    with _sink(python) as sink:
        runs = [r for r in cases(args.quick, sink, events) if not args.only or args.only in r[0]]
        once = [r for r in large_cases(args.quick, large) if not args.only or args.only in r[0]]
        for round_ in range(repeat):
            # Rounds interleave the cases, so a slow spell of the machine hits all alike.
            for case in runs + (once if round_ == 0 else []):
                progress(f"[{round_ + 1}/{repeat}] {' '.join(case)}")
                figures.extend(run_case(python, case, timeout))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"Measured {stamp} on {machine()}; {repeat} run(s) of each case, "
        f"{time.monotonic() - started:.0f} s in all (`python3 bench/run.py`)."
    )
    args.out.mkdir(parents=True, exist_ok=True)
    data = {"header": header, "stamp": stamp, "quick": args.quick, "events": events, "large": large}
    (args.out / "latest.json").write_text(json.dumps({**data, "figures": figures}, indent=1) + "\n")
    # The report needs matplotlib, which lives with the peers: draw it there.
    command = [python, __file__, "--report", "--out", str(args.out)]
    subprocess.run([*command, "--readme"] if args.readme else command, check=True)
    return 0


def report(out: Path, *, readme: bool) -> None:
    """Write ``latest.md`` and ``latest.png`` (and the README's table) from ``latest.json``."""
    data = json.loads((out / "latest.json").read_text())
    table = summarise(data["figures"])
    sizes = (10, 1_000) if data["quick"] else (10, 100_000)
    checks = comparisons(data["events"], sizes, data.get("large", data["events"] * 10))
    text = markdown(table, checks, data["header"], quick=data["quick"])
    (out / "latest.md").write_text(text)
    chart(
        table, checks, out / "latest.png", f"pqlsdk / peers, {data['stamp']}: green met, red missed"
    )
    if readme:
        update_readme(text)
    print(text)


class _sink:  # noqa: N801 - a context manager named for what it yields
    """The loopback sink in its own process, for as long as the run lasts."""

    def __init__(self, python: str) -> None:
        self._python = python
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> str:
        self._process = subprocess.Popen(
            [self._python, str(BENCH / "_sink.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        return self._process.stdout.readline().strip()

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
