"""The command line: the demo main job on the embedded defaults."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pqlsdk.cli import main
from pqlsdk.collector._demo import running_demo


def test_the_main_job_runs_the_whole_loop(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo starts a collector, plays the cohort and prints the ranked feed and its URL."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Simulated 15 users over two weeks: ")
    ranked = [line.split()[2] for line in out.splitlines() if line[:4].strip().endswith(".")]
    assert ranked.index("ada@northwind") < ranked.index("max@maybe-labs")
    assert "sol@onceco" not in ranked  # the single logger never left cold
    assert "free-tier limits hit = 1, needs >= 1 (+30)" in out  # reasons explain each lead
    assert "Feed: http://127.0.0.1:" in out


def test_python_dash_m_runs_the_cli() -> None:
    """``python -m pqlsdk`` is the same command line."""
    result = subprocess.run(
        [sys.executable, "-m", "pqlsdk", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("pqlsdk ")


PLAYBOOK = str(Path(__file__).resolve().parent.parent / "examples" / "rules" / "playbook.toml")
LINES = [
    '{"type":"track","userId":"a","event":"core_workflow_completed","timestamp":"2026-03-01T00:00:00Z"}',
    '{"type":"track","userId":"a","event":"checkout_started","timestamp":"2026-03-01T00:00:00Z"}',
    '{"type":"track","userId":"b","event":"core_workflow_completed","timestamp":"2026-03-01T00:00:00Z"}',
    '{"type":"group","userId":"b","groupId":"acme","timestamp":"2026-03-01T00:00:00Z"}',
    '{"type":"track","event":"no identity","timestamp":"2026-03-01T00:00:00Z"}',
]


def test_score_prints_a_ranked_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Human output ranks users by score with their top reasons; bad lines are reported."""
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(LINES) + "\n\n")
    assert main(["score", PLAYBOOK, str(events), "--now", "2026-03-05T00:00:00Z"]) == 0
    captured = capsys.readouterr()
    rows = captured.out.splitlines()
    assert rows[0].split() == ["#", "user", "score", "tier", "route", "top", "reasons"]
    assert rows[1].split()[:5] == ["1", "a", "40.00", "warm", "nurture"]
    assert "checkouts started = 1, needs >= 1 (+40)" in rows[1]
    assert rows[2].split() == ["2", "b", "0.00", "cold", "nurture", "-"]
    assert "skipped 1 invalid message(s): {'missing_identity': 1}" in captured.err


def test_score_json_uses_now_model_and_lists_accounts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--now sets the evaluation time, --model picks a model, accounts roll up."""
    events = tmp_path / "events.json"
    events.write_text("[" + ",".join(LINES[:4]) + "]")
    assert main(["score", PLAYBOOK, str(events), "--json", "--now", "2026-04-15T00:00:00Z"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["now"] == "2026-04-15T00:00:00Z"
    assert printed["users"]["a"]["score"] == 4.0  # 45 days idle: x0.1
    assert printed["accounts"] == {"acme": {"pqa": False, "pql_users": 0, "members": {"b": "cold"}}}
    assert main(["score", PLAYBOOK, str(events), "--json", "--model", "stuck"]) == 0
    assert json.loads(capsys.readouterr().out)["users"]["a"]["tier"] == "fine"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--model", "nope"], "no model 'nope'"),
        (["--now", "yesterday"], "--now 'yesterday' is not an ISO-8601 instant"),
    ],
)
def test_score_reports_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], text: str
) -> None:
    """A bad model name or time is a one-line error, exit 2."""
    events = tmp_path / "e.jsonl"
    events.write_text(LINES[0])
    assert main(["score", PLAYBOOK, str(events), *args]) == 2
    assert text in capsys.readouterr().err


def test_score_reports_unreadable_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Missing files and non-JSON lines name the file (and line)."""
    assert main(["score", PLAYBOOK, str(tmp_path / "missing.json")]) == 2
    assert "cannot read events" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text(LINES[0] + "\n{oops\n")
    assert main(["score", PLAYBOOK, str(tmp_path / "bad.jsonl")]) == 2
    assert "bad.jsonl:2: not JSON" in capsys.readouterr().err


def test_the_main_job_names_the_missing_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the collector extra, the demo says what to install."""
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if uvicorn were not installed
    assert main(["demo"]) == 2
    assert "pip install 'pqlsdk[collector]'" in capsys.readouterr().err


def test_the_main_job_serves_the_feed_until_interrupted() -> None:
    """``pqlsdk demo --serve`` keeps the feed up for a browser and stops cleanly on Ctrl-C."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pqlsdk", "demo", "--serve"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Serving the feed"):
            break
    feed = next(line for line in lines if line.startswith("Feed: "))
    url = feed.split()[1]
    key = next(line for line in lines if "feed key: " in line).split("feed key: ")[1].strip()
    page = httpx.get(url, auth=(key, ""), timeout=10)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    proc.stdout.close()
    assert page.status_code == 200
    assert 'data-id="ada@northwind"' in page.text


def test_the_demo_reports_a_collector_that_cannot_start() -> None:
    """A port already taken is a clear error, not a hang."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="did not start"), running_demo(port=port):
            pass


def test_a_reader_that_leaves_early_ends_the_command_quietly(tmp_path: Path) -> None:
    """``pqlsdk score ... | head -1``: no BrokenPipeError traceback, status 141."""
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps({"type": "track", "userId": f"u{n}", "event": "limit_hit",
                        "timestamp": "2026-03-01T00:00:00Z"}) + "\n"
            for n in range(20_000)
        )
    )  # fmt: skip
    with subprocess.Popen(
        [sys.executable, "-m", "pqlsdk", "score", PLAYBOOK, str(events), "--now",
         "2026-03-02T00:00:00Z"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:  # fmt: skip
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.readline()
        process.stdout.close()  # the reader leaves while the table is still being written
        errors = process.stderr.read().decode()
        status = process.wait(timeout=60)
    assert (status, errors) == (141, "")
