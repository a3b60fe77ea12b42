"""Histories: files of messages folded into state in one streaming pass (``pqlsdk score``)."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

import pqlsdk
import pqlsdk._history
from pqlsdk._history import History, fold, read
from pqlsdk.cli import main
from pqlsdk.messages import MAX_MESSAGE_BYTES, check, convert
from pqlsdk.rules import load
from pqlsdk.stores import MemoryStore

from .conftest import ROOT, SCENARIOS, load_scenario

PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"
SCENARIO = SCENARIOS / "model1_additive.json"  # the repository's copy, tests/scenarios
T = "2026-03-01T00:00:00Z"


def line(**fields: Any) -> str:
    """One JSON Lines message: a track by "a" at ``T`` unless told otherwise."""
    message: dict[str, Any] = {"type": "track", "userId": "a", "event": "e", "timestamp": T}
    message.update(fields)
    return json.dumps({k: v for k, v in message.items() if v is not None})


def folded(path: Path, aggregates: Any = frozenset()) -> History:
    history = History()
    return fold(read(path, history), aggregates, history)


# -- file forms ----------------------------------------------------------------------


def _jsonl(events: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(e) + "\n" for e in events).encode()


# Each form a history file may take, written from the scenario's events.
FORMS: dict[str, tuple[str, Callable[[dict[str, Any]], bytes]]] = {
    "JSON Lines": ("events.jsonl", lambda data: _jsonl(data["events"])),
    "gzip JSON Lines": ("events.jsonl.gz", lambda data: gzip.compress(_jsonl(data["events"]))),
    "scenario JSON": ("events.json", lambda data: json.dumps(data, indent=1).encode()),
    "JSON array": ("events.json", lambda data: json.dumps(data["events"], indent=1).encode()),
    "gzip JSON array": (
        "events.json.gz",
        lambda data: gzip.compress(json.dumps(data["events"]).encode()),
    ),
}


@pytest.mark.parametrize("form", FORMS)
def test_every_file_form_folds_to_the_stores_state(form: str, tmp_path: Path) -> None:
    """JSON Lines, scenario JSON, JSON arrays, and gzip of them: the state a store keeps."""
    data = load_scenario(SCENARIO)
    aggregates = load(PLAYBOOK).aggregates
    store = MemoryStore()
    store.maintain(aggregates)
    store.record(check(convert(event)) for event in data["events"])
    users = {e.get("userId") or e["anonymousId"] for e in data["events"]}
    accounts = {e["groupId"] for e in data["events"] if e["type"] == "group"}
    name, write = FORMS[form]
    path = tmp_path / name
    path.write_bytes(write(data))
    history = folded(path, aggregates)
    assert {u: store.user(u) for u in users} == history.users
    assert {a: store.account(a) for a in accounts} == history.accounts
    assert (accounts, {}, 0) == (history.groups, dict(history.skipped), history.duplicates)
    assert (data["now"] if form == "scenario JSON" else None) == history.now


def test_fold_without_a_history_starts_one() -> None:
    """fold() of plain messages returns a fresh History with their state."""
    messages = [convert(json.loads(line(event=f"e{i}"))) for i in range(3)]
    history = fold(messages, [])
    assert (list(history.users), history.users["a"].tracks) == (["a"], 3)


# -- refused messages and unreadable files -------------------------------------------

BAD = [
    line(),
    line(userId=None),  # no identity
    line(timestamp="2026-03-01T00:00:00"),  # no timezone
    json.dumps({"hello": "world"}),  # JSON, not a message
    line(properties={"bio": "x" * MAX_MESSAGE_BYTES}),
    line(type="group", groupId="acme"),
]
SKIPPED = {"missing_identity": 1, "naive_timestamp": 1, "invalid": 1, "too_large": 1}


@pytest.mark.parametrize("form", ["JSON Lines", "JSON array"])
def test_invalid_messages_are_counted_by_reason_and_the_rest_folded(
    form: str, tmp_path: Path
) -> None:
    """Each refused message is skipped and counted; valid ones around it still count."""
    path = tmp_path / "events"
    if form == "JSON Lines":
        path.write_text("\n\n".join(BAD) + "\n")  # blank lines are skipped silently
    else:
        path.write_text("[" + ",".join([*BAD, "42"]) + "]")
    history = folded(path)
    expected = SKIPPED | {"invalid": 2} if form == "JSON array" else SKIPPED
    assert expected == dict(history.skipped)
    assert (1, "acme", {"acme"}) == (
        history.users["a"].tracks,
        history.users["a"].account_id,
        history.groups,
    )


def test_a_line_that_is_not_json_names_the_file_and_line(tmp_path: Path) -> None:
    """A broken line stops the read with ConfigError "file:line: not JSON"."""
    path = tmp_path / "events.jsonl"
    path.write_text(f"{line()}\n{line()}\n{{oops\n{line()}\n")
    with pytest.raises(pqlsdk.ConfigError, match=r"events\.jsonl:3: not JSON"):
        folded(path)


def test_an_unreadable_path_raises_config_error(tmp_path: Path) -> None:
    """A missing file is a ConfigError naming it."""
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(pqlsdk.ConfigError, match=r"cannot read events .*missing\.jsonl"):
        folded(missing)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{oops", "neither JSON Lines nor a JSON document"),
        ('{\n "now": "2026-03-01T00:00:00Z"\n}', "must be a list or have an 'events' list"),
        ('"events"', "must be a list or have an 'events' list"),
    ],
    ids=["not JSON", "object without events", "a string"],
)
def test_a_document_of_the_wrong_shape_raises_config_error(
    text: str, error: str, tmp_path: Path
) -> None:
    """A file that is neither JSON Lines nor a list or scenario object is refused whole."""
    path = tmp_path / "events.json"
    path.write_text(text)
    with pytest.raises(pqlsdk.ConfigError, match=error):
        folded(path)


# -- de-duplication ------------------------------------------------------------------


def test_a_repeated_message_id_is_skipped_within_the_window(tmp_path: Path) -> None:
    """Retried deliveries repeat a messageId: the repeat is counted, not folded."""
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(line(messageId=i) for i in ["m1", "m2", "m1", "m3", "m2"]))
    history = folded(path)
    assert (history.users["a"].tracks, history.duplicates) == (3, 2)


def test_a_repeat_far_apart_is_still_dropped(tmp_path: Path) -> None:
    """Every id is remembered, as the SQL backend does: a repeat 200,000 messages on is a repeat."""
    path = tmp_path / "events.jsonl"
    with path.open("w") as out:
        out.write(line(messageId="first") + "\n")
        out.writelines(line(messageId=f"m{i}") + "\n" for i in range(200_000))
        out.write(line(messageId="first") + "\n")
    history = folded(path)
    assert (history.users["a"].tracks, history.duplicates) == (200_001, 1)


# -- memory --------------------------------------------------------------------------


def test_memory_does_not_grow_with_events(tmp_path: Path) -> None:
    """100,000 events of 10 users fold in well under what holding them would take.

    Held in memory, 100,000 decoded messages take about 60 MiB and their ids alone
    about 8 MiB; the fold keeps 10 users' state and each id's 64-bit hash.
    """
    path = tmp_path / "events.jsonl"
    with path.open("w") as out:
        for i in range(100_000):
            out.write(
                f'{{"type":"track","userId":"u{i % 10}","event":"feature_used",'
                f'"properties":{{"feature":"f{i % 7}"}},'
                f'"timestamp":"2026-03-01T00:{i % 60:02d}:00Z",'
                f'"messageId":"{i:08x}-0000-4000-8000-000000000000"}}\n'
            )
    aggregates = load(PLAYBOOK).aggregates
    tracemalloc.start()
    try:
        history = folded(path, aggregates)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ([f"u{n}" for n in range(10)], [10_000] * 10) == (
        sorted(history.users),
        [history.users[f"u{n}"].tracks for n in range(10)],
    )
    assert peak < 5 * 2**20, f"peak {peak / 2**20:.1f} MiB"


# -- the same engine as the client ---------------------------------------------------


def _plain(value: Any) -> Any:
    """What ``value`` looks like once printed as JSON and read back."""
    return msgspec.json.decode(msgspec.json.encode(value))


def test_the_cli_scores_as_a_client_does(capsys: pytest.CaptureFixture[str]) -> None:
    """``pqlsdk score`` and a Client that ingests the same events agree on every score."""
    data = load_scenario(SCENARIO)
    assert main(["score", str(PLAYBOOK), str(SCENARIO), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    with pqlsdk.Client(
        store="memory://",
        clock=pqlsdk.FixedClock(data["now"]),
        rules=PLAYBOOK,
        retention=None,
        strict=True,
    ) as client:
        assert client.ingest(data["events"]) == len(data["events"])
        users = {uid: client.score(uid).to_dict() for uid in printed["users"]}
        accounts = {aid: client.score_account(aid).to_dict() for aid in printed["accounts"]}
    subjects = {e.get("userId") or e["anonymousId"] for e in data["events"]}
    assert (subjects, data["now"]) == (set(printed["users"]), printed["now"])
    # The command line also explains the gate and the multiplier (explain=True), which a
    # client's score() leaves out; everything else is the same.
    shown = {uid: {k: printed["users"][uid][k] for k in s} for uid, s in users.items()}
    assert {uid: _plain(s) for uid, s in users.items()} == shown
    assert _plain(accounts) == printed["accounts"]
    assert {u: w["score"] for u, w in data["expect"]["users"].items()} == {
        u: printed["users"][u]["score"] for u in data["expect"]["users"]
    }


# -- shapes and sizes that once were misread ----------------------------------------


@pytest.mark.parametrize("users", [5, 5_000], ids=["short", "long"])
def test_a_compact_scenario_file_is_read_as_a_document(users: int, tmp_path: Path) -> None:
    """{"now": ..., "events": [...]} on a single line is a scenario file, not one bad line."""
    events = [json.loads(line(userId=f"u{i}")) for i in range(users)]
    path = tmp_path / "compact.json"
    path.write_text(json.dumps({"now": T, "events": events}))  # json.dumps: one line
    history = folded(path)
    assert (history.now, dict(history.skipped), len(history.users)) == (T, {}, users)


def test_a_long_first_line_is_still_json_lines(tmp_path: Path) -> None:
    """A first message of 10 kB (within Segment's 32 KiB) does not change how a file is read."""
    path = tmp_path / "events.jsonl"
    path.write_text(line(properties={"note": "x" * 10_000}) + "\n" + line() + "\n")
    assert folded(path).users["a"].tracks == 2


@pytest.mark.parametrize("damage", ["truncated", "not gzip after the magic number"])
def test_a_broken_gzip_file_raises_config_error(damage: str, tmp_path: Path) -> None:
    """A cut-off or corrupt .gz file is reported as a ConfigError naming the file."""
    whole = gzip.compress("\n".join(line(event=f"e{i}") for i in range(1000)).encode())
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2] if damage == "truncated" else whole[:2] + b"junk")
    with pytest.raises(pqlsdk.ConfigError, match=r"events\.jsonl\.gz"):
        folded(path)


def test_a_message_of_the_largest_size_is_folded(tmp_path: Path) -> None:
    """A line whose message is exactly MAX_MESSAGE_BYTES is accepted, as track() accepts it."""

    def encoded(bio: str) -> str:  # the message as track() would encode it
        return check(convert(json.loads(line(messageId="m", properties={"bio": bio}))))[1].decode()

    text = encoded("x" * (MAX_MESSAGE_BYTES - len(encoded(""))))
    assert len(text) == MAX_MESSAGE_BYTES  # check() accepts it: track() would record it
    path = tmp_path / "events.jsonl"
    path.write_text(line() + "\n" + text + "\n")
    history = folded(path)
    assert (dict(history.skipped), history.users["a"].tracks) == ({}, 2)


# -- known faults --------------------------------------------------------------------


def test_blank_lines_before_the_first_message_are_skipped(tmp_path: Path) -> None:
    """Leading blank lines are skipped, as blank lines anywhere else in JSON Lines are."""
    path = tmp_path / "events.jsonl"
    path.write_text("\n\n" + line() + "\n" + line() + "\n")
    assert folded(path).users["a"].tracks == 2


def test_an_empty_file_holds_no_messages(tmp_path: Path) -> None:
    """An empty history folds to nothing rather than failing."""
    path = tmp_path / "events.jsonl"
    path.write_text("\n\n")
    assert len(folded(path).users) == 0


def test_a_broken_document_names_its_line_and_column(tmp_path: Path) -> None:
    """A JSON document that does not parse is reported at file:line:column."""
    path = tmp_path / "events.json"
    path.write_text('{"events": [\n  {"type": "track",\n  oops\n]}')
    with pytest.raises(pqlsdk.ConfigError, match=r"events\.json:3:3: neither"):
        folded(path)


def test_line_numbers_count_leading_blank_lines(tmp_path: Path) -> None:
    """An error after leading blank lines names the line as an editor shows it."""
    path = tmp_path / "events.jsonl"
    path.write_text("\n" + line() + "\n{oops\n")
    with pytest.raises(pqlsdk.ConfigError, match=r"events\.jsonl:3: not JSON"):
        folded(path)


def test_a_document_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 text raise ConfigError naming the file."""
    path = tmp_path / "events.json"
    path.write_bytes(b'{"events": ["\xff\xfe"]}')
    with pytest.raises(pqlsdk.ConfigError, match=r"events\.json: not UTF-8"):
        folded(path)
