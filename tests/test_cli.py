"""The command line: the demo main job, scoring a file with reasons, and the help."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
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


T = "2026-03-01T00:00:00Z"


def line(user: str, event: str) -> str:
    """One track message as a JSON line."""
    return json.dumps({"type": "track", "userId": user, "event": event, "timestamp": T})


def group(user: str, account: str, **traits: object) -> str:
    """One group message as a JSON line."""
    message = {"type": "group", "userId": user, "groupId": account, "timestamp": T}
    return json.dumps({**message, "traits": traits})


LINES = [
    '{"type":"track","userId":"a","event":"core_workflow_completed","timestamp":"2026-03-01T00:00:00Z"}',
    '{"type":"track","userId":"a","event":"checkout_started","timestamp":"2026-03-01T00:00:00Z"}',
    '{"type":"track","userId":"b","event":"core_workflow_completed","timestamp":"2026-03-01T00:00:00Z"}',
    '{"type":"group","userId":"b","groupId":"acme","timestamp":"2026-03-01T00:00:00Z"}',
    '{"type":"track","event":"no identity","timestamp":"2026-03-01T00:00:00Z"}',
]


def test_score_prints_a_ranked_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Human output ranks users by score, each with why under it; bad lines are reported."""
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(LINES) + "\n\n")
    assert main(["score", PLAYBOOK, str(events), "--now", "2026-03-05T00:00:00Z"]) == 0
    captured = capsys.readouterr()
    rows = captured.out.splitlines()
    assert rows[0] == "Users by score under 'playbook', scored at 2026-03-05T00:00:00Z:"
    assert rows[1].split() == ["#", "user", "score", "tier", "route"]
    assert rows[2].split() == ["1", "a", "40.00", "warm", "nurture"]
    assert rows[4] == "       + checkouts started = 1, needs >= 1 (+40)"
    assert rows[5].split() == ["2", "b", "0.00", "cold", "nurture"]
    assert rows[7] == "       no signal fired"
    assert "skipped 1 invalid message(s) (missing_identity: 1):" in captured.err


GATED = [
    # "c" never completes the core workflow, but hits a limit and views pricing three times.
    *(line("c", event) for event in ["limit_hit", "page_viewed", "page_viewed", "page_viewed"]),
    # "d" passes the gate, earns four signals, and was last active 12 days before --now.
    *(line("d", event) for event in ["core_workflow_completed", "limit_hit", "demo_requested"]),
    line("d", "checkout_started"),
    line("d", "premium_feature_attempted"),
]


def test_score_table_explains_the_gate_the_multiplier_and_every_fired_signal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each user's rows say whether the gate passed and on what, what set the multiplier,
    and every signal that fired (not the top three only)."""
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(GATED) + "\n")
    assert main(["score", PLAYBOOK, str(events), "--now", "2026-03-13T00:00:00Z"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[2:10] == [
        "  1  d        60.00  hot       sales_development",
        '       gate count("core_workflow_completed") >= 1: 1, passed; '
        "x0.5: days_since_last_active() = 12",
        "       + checkouts started = 1, needs >= 1 (+40)",
        "       + free-tier limits hit = 1, needs >= 1 (+30)",
        "       + demo requests = 1, needs >= 1 (+30)",
        "       + premium features attempted = 1, needs >= 1 (+20)",
        "  2  c         0.00  cold      nurture",
        '       gate count("core_workflow_completed") >= 1: 0, not passed (score 0)',
    ]


def test_score_json_carries_the_gate_the_multiplier_and_labelled_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json says what the gate and the multiplier measured, beside every reason."""
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(GATED) + "\n")
    assert main(["score", PLAYBOOK, str(events), "--json", "--now", "2026-03-13T00:00:00Z"]) == 0
    users = json.loads(capsys.readouterr().out)["users"]
    measure = 'count("core_workflow_completed")'
    assert users["c"]["gate"] == {
        "passed": False,
        "expression": f"{measure} >= 1",
        "measured": {measure: 0},
    }
    assert users["d"]["multiplier_reason"]["measured"] == {"days_since_last_active()": 12.0}
    assert (users["d"]["multiplier"], users["d"]["raw"], users["d"]["score"]) == (0.5, 120, 60)
    fired = [(r["label"], r["earned"]) for r in users["d"]["reasons"] if r["fired"]]
    assert fired == [
        ("free-tier limits hit", 30),
        ("premium features attempted", 20),
        ("demo requests", 30),
        ("checkouts started", 40),
    ]


def test_score_json_of_many_users_is_formatted_as_json_dumps_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json is printed in chunks of users: past a chunk's end it reads as ``json.dumps``."""
    events = tmp_path / "events.jsonl"
    users = [*(f"u{n}" for n in range(300)), "zoë"]  # many chunks (of 32 KiB), and not ASCII
    events.write_text("".join(line(user, "limit_hit") + "\n" for user in users))
    assert main(["score", PLAYBOOK, str(events), "--json", "--now", T]) == 0
    out = capsys.readouterr().out
    assert sorted(json.loads(out)["users"]) == sorted(users)
    assert out == json.dumps(json.loads(out), indent=2, ensure_ascii=False) + "\n"


HOT = ["limit_hit", "demo_requested"]
NORTHWIND = [
    # Two burning members and a cold one make Northwind a PQA; Maybe Labs has one hot member.
    *(line(user, "core_workflow_completed") for user in ["ada", "bo", "cy", "max"]),
    *(line(user, event) for user in ["ada", "bo", "max"] for event in HOT),
    *(group(user, "northwind") for user in ["ada", "bo", "cy"]),
    group("max", "maybe-labs"),
]


def test_score_table_lists_the_accounts_and_which_make_a_pqa(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After the users, the table lists each account: PQA or not, how many members qualify."""
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(NORTHWIND) + "\n")
    assert main(["score", PLAYBOOK, str(events), "--now", "2026-03-02T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    accounts = out.split("\n\n", 1)[1].splitlines()
    assert accounts == [
        "Accounts (a PQA has 2 or more members hot or above under 'playbook'):",
        "  #  account     PQA  qualifying  members",
        "  1  northwind   yes  2 of 3      ada burning, bo burning, cy cold",
        "  2  maybe-labs  no   1 of 1      max hot",
    ]


ACCOUNT_RULES = """
[model.people]
gate = 'count("signed_up") >= 1 and user.role in ["admin", "owner"] and not count("banned") >= 1'
multiplier = 'min(team_size(), 2) / 2'
tiers = { low = 0, high = 10 }

[model.people.signals]
busy = { when = 'count() >= 1', points = 20 }

[model.teams]
subject = "account"
tiers = { small = 0, big = 1 }

[model.teams.signals]
seats = { value = 'account.seats', points = 1 }

[pqa]
model = "people"
tier = "high"
min_users = 2
"""


def test_score_table_explains_any_gate_multiplier_and_account_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A gate of several comparisons names each; a multiplier that compares nothing shows its
    expression; an account lists its best members first and explains its own model's score."""
    rules = tmp_path / "rules.toml"
    rules.write_text(ACCOUNT_RULES)
    members = [f"u{n}" for n in range(7)]
    events = tmp_path / "events.jsonl"
    admin = {"type": "identify", "userId": "u6", "traits": {"role": "admin"}, "timestamp": T}
    events.write_text(
        "\n".join(
            [
                json.dumps(admin),
                *(line(user, "signed_up") for user in members),
                *(group(user, "acme", seats=12) for user in members),
            ]
        )
    )
    assert main(["score", str(rules), str(events), "--now", "2026-03-02T00:00:00Z"]) == 0
    out = capsys.readouterr().out.splitlines()
    gate = (
        'gate count("signed_up") >= 1 and user.role in ["admin", "owner"] and not '
        'count("banned") >= 1: count("signed_up") = 1, user.role = admin, count("banned") = 0'
    )
    assert out[2:6] == [
        "  1  u6       20.00  high      nurture",
        f"       {gate}, passed; x1: min(team_size(), 2) / 2",
        "       + busy = 1, needs >= 1 (+20)",
        "  2  u0        0.00  low       nurture",
    ]
    assert out[-5:] == [
        "Accounts (a PQA has 2 or more members high or above under 'people'):",
        "  #  account  PQA  qualifying  members",
        "  1  acme     no   1 of 7      u6 high, u0 low, u1 low, u2 low, u3 low, +2 more",
        "       teams: 12.00 big -> nurture",
        "       + seats = 12 (+12)",
    ]


def test_score_table_without_pqa_rules_lists_accounts_by_members(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rules without [pqa] claim no PQA; the accounts still show who belongs to them."""
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(NORTHWIND) + "\n")
    weighted = str(Path(PLAYBOOK).with_name("weighted.toml"))
    assert main(["score", weighted, str(events), "--now", "2026-03-02T00:00:00Z"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-3:] == [
        "  #  account     PQA  qualifying  members",
        "  1  maybe-labs  -    -           max",
        "  2  northwind   -    -           ada, bo, cy",
    ]


def test_score_says_which_time_it_used_unless_given_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --now, the wall clock (to the second) or the file's own now is said on stderr
    and is the JSON's now; with --now, nothing is said."""
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(LINES[:4]) + "\n")
    before = datetime.now(UTC).replace(microsecond=0)
    assert main(["score", PLAYBOOK, str(events), "--json"]) == 0
    captured = capsys.readouterr()
    now = json.loads(captured.out)["now"]
    assert before <= datetime.fromisoformat(now) <= datetime.now(UTC)
    assert captured.err == f"pqlsdk: scored at {now} (now; pass --now to pin it)\n"
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"now": "2026-03-09T00:00:00Z", "events": []}))
    assert main(["score", PLAYBOOK, str(scenario)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "pqlsdk: scored at 2026-03-09T00:00:00Z (the file's 'now')\n"
    assert "scored at 2026-03-09T00:00:00Z:" in captured.out
    assert main(["score", PLAYBOOK, str(scenario), "--now", "2026-03-10T00:00:00Z"]) == 0
    assert capsys.readouterr().err == ""


def test_invalid_lines_are_reported_by_line_the_first_ten_then_a_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each of the first ten refused messages is named by file:line and why; then a count."""
    events = tmp_path / "events.jsonl"
    bad = json.dumps({"type": "track", "event": "x", "timestamp": "2026-03-01T00:00:00Z"})
    events.write_text("\n".join([LINES[0], '{"hello": "world"}', *[bad] * 12, LINES[2]]) + "\n")
    assert main(["score", PLAYBOOK, str(events), "--now", "2026-03-05T00:00:00Z"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "pqlsdk: skipped 13 invalid message(s) (missing_identity: 12, invalid: 1):",
        f"  {events}:2: not a valid message: Object missing required field `type`",
        *(
            f"  {events}:{number}: track message needs a userId or an anonymousId"
            for number in range(3, 12)
        ),
        "  ... and 3 more invalid message(s)",
    ]


def test_invalid_messages_of_a_document_are_reported_by_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In a JSON array a refused message is placed by its position, counting from 1."""
    events = tmp_path / "events.json"
    events.write_text("[" + ",".join([LINES[0], "42", LINES[4]]) + "]")
    assert main(["score", PLAYBOOK, str(events), "--now", "2026-03-05T00:00:00Z"]) == 0
    assert capsys.readouterr().err.splitlines()[1:] == [
        f"  {events}: message 2: not a valid message: Expected `object`, got `int`",
        f"  {events}: message 3: track message needs a userId or an anonymousId",
    ]


ROOT = Path(__file__).resolve().parent.parent


def _commands(page: Path) -> list[str]:
    """The ``pqlsdk check`` and ``pqlsdk score`` lines of a page's sh blocks, as written."""
    blocks = re.findall(r"^```sh\n(.*?)^```", page.read_text(), re.MULTILINE | re.DOTALL)
    return [
        line
        for block in blocks
        for line in block.splitlines()
        if line.startswith(("pqlsdk check ", "pqlsdk score "))
    ]


@pytest.mark.parametrize(
    "command",
    [*_commands(ROOT / "README.md"), *_commands(ROOT / "docs" / "rules.md")],
)
def test_the_documented_commands_run_as_written(command: str) -> None:
    """Each check and score line of the README and the rules page runs from a checkout, as
    pasted (comments and all), and scores the sample into hot users and a PQA."""
    done = subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
    )
    assert done.returncode == 0, done.stderr
    if " check " in command:
        assert ": ok: " in done.stdout
    elif "--json" in command:
        printed = json.loads(done.stdout)
        tiers = {user["tier"] for user in printed["users"].values()}
        assert tiers & {"hot", "pql", "burning", "stuck"}, tiers
    else:
        assert re.search(r"^  \d+  \S+\s+[\d.]+  (hot|burning) ", done.stdout, re.MULTILINE)
        assert re.search(r"^  \d+  northwind\s+yes  2 of 3 ", done.stdout, re.MULTILINE)


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", ["", "check", "score", "demo", "collector", "replay"])
def test_help_is_plain_text_describes_positionals_and_shows_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """No reST or Markdown markup; every positional argument has a description; at least
    one example, which names the command."""
    text = _help([command] if command else [], capsys)
    assert "`" not in text
    examples = text.split("\nexample", 1)[1]
    assert f"\n  pqlsdk {command}".rstrip() in examples
    if "positional arguments:" in text:
        section = text.split("positional arguments:\n", 1)[1].split("\n\n", 1)[0]
        entries = [line for line in section.splitlines() if not line.startswith("    ")]
        assert entries
        for entry in entries:
            name, _, description = entry.strip().partition(" ")
            assert description.strip(), f"{name} has no description"


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


def test_scoring_loads_no_other_command(tmp_path: Path) -> None:
    """``pqlsdk score`` builds its own parser only: the collector, replay and moments
    modules (and what they import) are not loaded for it."""
    events = tmp_path / "e.jsonl"
    events.write_text(LINES[0])
    code = (
        "import sys\n"
        "from pqlsdk.cli import main\n"
        f"main(['score', {PLAYBOOK!r}, {str(events)!r}, '--engine', 'python', '--json'])\n"
        "others = ('pqlsdk.collector', 'pqlsdk.replay', 'pqlsdk.lift')\n"
        "print(sorted(m for m in sys.modules if m.startswith(others)), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stderr.strip().splitlines()[-1] == "[]"
