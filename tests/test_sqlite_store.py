"""The SQLite store: shared by processes, durable across restarts, versioned."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import pqlsdk
from pqlsdk import _lifecycle as lifecycle
from pqlsdk._clock import micros
from pqlsdk.messages import Track, check, decode_checked
from pqlsdk.stores import SQLiteStore, UserState, open_store
from pqlsdk.stores import sqlite as sqlite_module
from pqlsdk.stores._state import encode
from pqlsdk.stores.sqlite import SCHEMA_VERSION

WRITER = textwrap.dedent(
    """
    import sys, time
    import pqlsdk
    path, name, count, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    with pqlsdk.Client(store=f"sqlite:///{path}", strict=True) as client:
        while time.time() < start:
            time.sleep(0.001)
        for i in range(count):
            client.track("shared", "tick", {"writer": name, "i": i})
            client.track(f"{name}-own", "tick")
        client.group(f"{name}-own", "acme", {name: i})
    print(client.stats().recorded)
    """
)


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    """Two writers on one file, same user, same moment: every update survives."""
    path = tmp_path / "shared.db"
    SQLiteStore(path).close()  # create the schema first, as a host's first start would
    start = time.time() + 1.0
    count = 400
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(count), str(start)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert [int(out) for out in outputs] == [2 * count + 1, 2 * count + 1]
    # A third process sees both writers' work.
    reader = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
            import sys
            from pqlsdk.stores import open_store
            store = open_store(f"sqlite:///{sys.argv[1]}")
            shared, account = store.user("shared"), store.account("acme")
            print(store.count(), shared.tracks, account.active_members, sorted(account.traits))
            """
            ),
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert reader.stdout.split(maxsplit=3) == [
        str(4 * count + 2),
        str(2 * count),
        "2",
        "['a', 'b']\n",
    ]


SURVIVOR = (
    "import pqlsdk, sys, os\n"
    "durability, ending = sys.argv[2], sys.argv[3]\n"
    "c = pqlsdk.Client(store=sys.argv[1], strict=True,\n"
    "                  delivery=pqlsdk.Delivery(durability=durability))\n"
    "c.identify('u', {'plan': 'trial'})\n"
    "c.group('u', 'acme', {'employees': 120})\n"
    "c.track('u', 'limit_hit')\n"
    "if ending == 'kill':\n"
    "    os._exit(0)  # no close(), no atexit: only what is already committed survives\n"
)


@pytest.mark.parametrize(
    ("durability", "ending"),
    [("sync", "kill"), ("buffered", "exit")],
    ids=["sync-killed", "buffered-exit"],
)
def test_state_survives_a_new_client(tmp_path: Path, durability: str, ending: str) -> None:
    """Sync writes survive a hard exit; buffered writes survive a normal exit without close()."""
    url = f"sqlite:///{tmp_path}/state.db"
    subprocess.run([sys.executable, "-c", SURVIVOR, url, durability, ending], check=True)
    with pqlsdk.Client(store=url, strict=True) as client:
        user, account = client.user("u"), client.account("acme")
        assert user is not None
        assert account is not None
        assert (user.traits, user.account_id, user.tracks) == ({"plan": "trial"}, "acme", 1)
        assert (account.traits, account.active_members) == ({"employees": 120}, 1)


def test_fork_after_use_gives_the_child_its_own_connection(tmp_path: Path) -> None:
    """Parent and child both write after a fork; neither corrupts the other."""
    url = f"sqlite:///{tmp_path}/fork.db"
    client = pqlsdk.Client(store=url, strict=True)
    client.track("parent", "before_fork")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        try:
            client.track("child", "after_fork")
            client.close()
        finally:
            os._exit(0)
    client.track("parent", "after_fork")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.store.count() == 3
    child = client.user("child")
    assert child is not None
    assert child.tracks == 1
    client.close()


def test_a_fresh_file_gets_the_current_schema(tmp_path: Path) -> None:
    """Opening creates the tables and stamps the schema version."""
    SQLiteStore(tmp_path / "new.db").close()
    conn = sqlite3.connect(tmp_path / "new.db")
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_a_file_made_here_has_8_kib_pages_and_an_older_one_keeps_its_own(tmp_path: Path) -> None:
    """A new file takes the store's page size; a file that exists already is not changed."""
    older = sqlite3.connect(tmp_path / "older.db")
    older.execute("CREATE TABLE t (x)")
    older.close()
    SQLiteStore(tmp_path / "new.db").close()
    SQLiteStore(tmp_path / "older.db").close()
    sizes = []
    for name in ("new.db", "older.db"):
        conn = sqlite3.connect(tmp_path / name)
        sizes.append(conn.execute("PRAGMA page_size").fetchone()[0])
        conn.close()
    assert sizes == [8192, 4096]


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file written by a newer pqlsdk is not misread."""
    conn = sqlite3.connect(tmp_path / "future.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(pqlsdk.SchemaVersionError, match="upgrade pqlsdk"):
        SQLiteStore(tmp_path / "future.db")


def test_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    """A store path in a directory that does not exist fails at construction."""
    with pytest.raises(pqlsdk.ConfigError, match="does not exist"):
        pqlsdk.Client(store=f"sqlite:///{tmp_path}/nope/state.db")


def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    """Pointing the store at some other file fails loudly at construction."""
    (tmp_path / "notes.txt").write_text("not a database " * 100)
    with pytest.raises(pqlsdk.ConfigError, match="cannot open"):
        SQLiteStore(tmp_path / "notes.txt")


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("sqlite://", "write sqlite:///relative/file.db"),
        ("sqlite://host/x.db", "write sqlite:///relative/file.db"),
        ("memory://x", "memory:// takes no path"),
        ("postgres://db", "unknown scheme"),
    ],
)
def test_bad_store_urls_are_config_errors(url: str, text: str) -> None:
    """An unknown or malformed store URL names the forms that work."""
    with pytest.raises(pqlsdk.ConfigError, match=text):
        open_store(url)


def test_an_unknown_scheme_names_every_store_there_is() -> None:
    """The hint lists memory://, sqlite:/// and redis:// (and rediss://): all the stores."""
    with pytest.raises(pqlsdk.ConfigError) as raised:
        open_store("postgres://db")
    assert str(raised.value) == (
        "store URL 'postgres://db': unknown scheme 'postgres'; use memory://, "
        "sqlite:///path/to/file.db, or redis://host:port/db (rediss:// for TLS)"
    )


def test_sqlite_urls_follow_sqlalchemy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three slashes are relative to the working directory, four are absolute."""
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///rel.db")
    absolute = open_store(f"sqlite:///{tmp_path}/abs.db")
    assert isinstance(relative, SQLiteStore)
    assert isinstance(absolute, SQLiteStore)
    assert (relative.path.resolve(), absolute.path) == (tmp_path / "rel.db", tmp_path / "abs.db")
    assert relative.url == "sqlite:///rel.db"
    relative.close()
    absolute.close()


def test_store_faults_become_store_errors(tmp_path: Path) -> None:
    """A broken file at run time raises StoreError from the store itself."""
    store = SQLiteStore(tmp_path / "s.db")
    other = sqlite3.connect(tmp_path / "s.db")
    other.executescript("DROP TABLE users; DROP TABLE messages;")
    other.close()
    with pytest.raises(pqlsdk.StoreError, match="read failed"):
        store.user("u")
    with pytest.raises(pqlsdk.StoreError, match="prune failed"):
        store.prune(datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(pqlsdk.StoreError, match="write failed"):
        store.record(
            [
                pqlsdk.messages.check(
                    pqlsdk.messages.Track(user_id="u", event="x", timestamp=datetime.now(UTC))
                )
            ]
        )
    store.close()


def test_a_read_does_not_wait_for_a_write_transaction(tmp_path: Path) -> None:
    """Reads see the last commit at once while another thread holds a write transaction.

    A buffered store commits thousands of messages in one transaction; gate() and
    decide() read the file meanwhile and must not wait for it.
    """
    store = SQLiteStore(tmp_path / "r.db")
    store.update_user("u", lambda state: state.traits.update(plan="trial"))
    inside, release = threading.Event(), threading.Event()

    def slow_change(state: pqlsdk.UserState) -> None:
        state.traits["plan"] = "business"
        inside.set()
        release.wait(10)

    writer = threading.Thread(target=store.update_user, args=("u", slow_change))
    writer.start()
    assert inside.wait(10)
    started = time.monotonic()
    user = store.user("u")  # the transaction is still open
    waited = time.monotonic() - started
    release.set()
    writer.join()
    assert user is not None
    assert (user.traits["plan"], waited < 5) == ("trial", True)  # the committed state, at once
    after = store.user("u")
    assert after is not None
    assert after.traits["plan"] == "business"  # the new commit, once it is made
    store.close()


def test_the_fork_hook_parks_the_connection_and_reconnects(tmp_path: Path) -> None:
    """After a fork the child abandons the inherited connection and opens its own."""
    store = SQLiteStore(tmp_path / "s.db")
    inherited = store._conn
    lifecycle.run_after_fork()
    assert store._conn is None
    assert any(orphan is inherited for orphan in sqlite_module._orphans)
    lifecycle.run_after_fork()  # a second fork before any use parks nothing more
    assert sum(orphan is inherited for orphan in sqlite_module._orphans) == 1
    assert store.count() == 0  # reconnected on demand
    store.close()
    store.close()  # closing twice is harmless
    assert repr(store) == f"SQLiteStore({str(tmp_path / 's.db')!r})"


def test_memory_store_describes_itself() -> None:
    """The memory store's repr tells how much it holds."""
    store = open_store("memory://")
    store.close()
    assert (store.url, repr(store)) == ("memory://", "MemoryStore(users=0, messages=0)")


def test_a_batch_records_each_message_once_logged_or_repeated(tmp_path: Path) -> None:
    """One transaction with a message already in the log and another one twice: each counts once."""
    store = SQLiteStore(tmp_path / "s.db")
    at = datetime(2026, 3, 1, tzinfo=UTC)

    def tick(message_id: str) -> tuple[pqlsdk.messages.Message, bytes]:
        return check(Track(user_id="u", event="tick", timestamp=at, message_id=message_id))

    assert store.record([tick("a")], outbox=True) == 1
    assert store.record([tick("a"), tick("b"), tick("b")], outbox=True) == 1
    assert (store.count(), store.outbox_size(), store.user("u").tracks) == (2, 2, 2)  # type: ignore[union-attr]
    store.close()


def test_a_commit_of_folded_states_queues_only_the_messages_it_logged(tmp_path: Path) -> None:
    """A row the log holds already is neither logged nor queued for the collector again."""
    store = SQLiteStore(tmp_path / "f.db")
    at = datetime(2026, 3, 1, tzinfo=UTC)
    rows = []
    for message_id in ("a", "b"):
        data = check(Track(user_id="u", event="tick", timestamp=at, message_id=message_id))[1]
        rows.append((message_id, "u", micros(at), data))
    assert store.record([(decode_checked(rows[0][3]), rows[0][3])], outbox=True) == 1
    state = encode(UserState(user_id="u", tracks=2))
    store.record_folded(rows, lambda: ({"u": state}, {}), outbox=True, version=store.data_version())
    assert (store.count(), store.outbox_size()) == (2, 2)
    assert [m.message_id for m in store.messages()] == ["a", "b"]
    store.close()
