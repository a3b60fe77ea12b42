"""The benchmark runner works end to end in its quick mode (no assertion on speed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_mode_measures_every_case_and_writes_the_report(tmp_path: Path) -> None:
    """Every case runs, every comparison has a ratio, and the table, data and chart are written."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--quick",
            "--python",
            sys.executable,
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PQLSDK_BENCH_DATA": str(tmp_path / "data")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "latest.md").read_text()
    assert "not measured" not in report
    assert report.count(" met |") + report.count(" **missed** |") == 26
    figures = json.loads((tmp_path / "latest.json").read_text())["figures"]
    subjects = {(f["case"], f["subject"]) for f in figures}
    for expected in [
        ("capture", "posthog"),
        ("capture", "segment"),
        ("capture", "pqlsdk"),
        ("capture", "floor"),  # the machine's own tail, next to the SDKs'
        ("decision", "growthbook"),
        ("decision", "launchdarkly"),
        ("decision", "openfeature"),
        ("batch", "duckdb"),
        ("batch", "sqlite"),
        ("batch", "pqlsdk"),
        ("batch", "pqlsdk-duckdb"),
        ("import", "posthog"),
        ("memory", "pqlsdk"),
        ("web_added", "flask"),
        ("web_added", "django"),
        ("replay", "pqlsdk"),
        ("replay", "pqlsdk-duckdb"),
        ("stores", "pqlsdk"),
        ("intake_capacity", "pqlsdk"),
    ]:
        assert expected in subjects
    delivered = {f["subject"]: f["value"] for f in figures if f["case"] == "capture_delivered"}
    assert set(delivered.values()) == {650}  # every captured event reached the sink
    batch = [f for f in figures if f["case"] == "batch" and f["variant"] == "5,000 events"]
    assert len(batch) == 4  # every engine on the same history...
    assert len({json.dumps(f["checksum"], sort_keys=True) for f in batch}) == 1  # ...same scores
    large = [f for f in figures if f["case"] == "batch" and f["variant"] == "50,000 events"]
    assert [f["subject"] for f in large] == ["pqlsdk-duckdb"]  # ten times the history, once
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
