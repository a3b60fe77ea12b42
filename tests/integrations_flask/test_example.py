"""The example app run the way its README says, as a real process from a copy of the repository.

The copy (``examples/flask_app`` and the playbook, in ``tmp_path``) stands in for a
clone, and the process runs from its root, as a newcomer types the command, so
what lands where is what a newcomer's checkout would get, not the test's.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("flask")
pytest.importorskip("flask_login")

import httpx

from tests.integrations_flask.hosts import EXAMPLE, MOMENT_ID, PLAYBOOK, TOKEN
from tests.processes import Process, free_port, untraced_env

README = EXAMPLE.parent / "README.md"
COMMAND = ".venv/bin/python examples/flask_app/app.py"


def readme_state() -> tuple[str, str]:
    """The state folder and the SQLite file that the README names."""
    text = README.read_text()
    folder = re.search(r"State lives in `([^`]+/)`", text)
    database = re.search(r"SQLite\s+file `([^`]+\.db)`", text)
    assert folder is not None, "the README says where the state lives"
    assert database is not None, "the README names the SQLite file"
    assert COMMAND in text, "the README's command is the one this test runs"
    return folder.group(1), database.group(1)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A copy of the example and the rules it reads, laid out as in the repository."""
    shutil.copytree(
        EXAMPLE.parent,
        tmp_path / "examples" / "flask_app",
        ignore=shutil.ignore_patterns("instance"),
    )
    (tmp_path / "examples" / "rules").mkdir()
    shutil.copy(PLAYBOOK, tmp_path / "examples" / "rules" / "playbook.toml")
    return tmp_path


@contextmanager
def running(clone: Path) -> Iterator[httpx.Client]:
    """Start the README's command in ``clone``; yield an HTTP client with cookies; then Ctrl+C."""
    port = free_port()
    env = untraced_env(PORT=str(port))
    for key in ("PQLSDK_STORE", "PQLSDK_ENDPOINT", "PQLSDK_WRITE_KEY"):
        env.pop(key, None)
    app = Process("acme", [sys.executable, "examples/flask_app/app.py"], clone, env)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as http:

            def up() -> bool:
                try:
                    return http.get("/login").status_code == 200
                except httpx.TransportError:
                    return False

            app.wait_for(up, "the sign-in page", timeout=30)
            yield http
        app.proc.send_signal(signal.SIGINT)  # what a newcomer presses; pqlsdk's exit hooks run
        try:
            app.proc.wait(20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the example did not stop within 20 s of Ctrl+C:\n{app}")
    finally:
        app.kill()


def sign_in(http: httpx.Client, user: str) -> None:
    answer = http.post("/login", data={"user": user})
    assert answer.status_code == 302


def the_prompt(http: httpx.Client) -> tuple[str, str] | None:
    """Open the locked page; return its prompt's ``(moment id, CSRF token)``, or None."""
    page = http.get("/settings/sso")
    assert page.status_code == 403
    moment, token = MOMENT_ID.search(page.text), TOKEN.search(page.text)
    if moment is None or token is None:
        return None
    return moment.group(1), token.group(1)


def test_the_readme_command_keeps_state_in_the_file_the_readme_names(clone: Path) -> None:
    """Run from the clone's root, the app writes its SQLite file where the README says, only."""
    folder, database = readme_state()
    assert database.startswith(folder)
    with running(clone) as http:
        sign_in(http, "tina")
        assert the_prompt(http) is not None
    assert (clone / database).is_file()
    assert sorted(p.relative_to(clone).as_posix() for p in clone.rglob("*.db")) == [database]
    assert not (clone / "instance").exists()


def test_deleting_the_state_folder_starts_the_demo_over(clone: Path) -> None:
    """A dismissed prompt stays away across a restart, and comes back once the folder is gone."""
    folder, _ = readme_state()
    with running(clone) as http:
        sign_in(http, "tina")
        shown = the_prompt(http)
        assert shown is not None
        moment, token = shown
        dismissed = http.post(
            "/pqlsdk/outcome",
            data={"pqlsdk_csrf": token, "moment": moment, "outcome": "dismissed", "next": "/"},
        )
        assert dismissed.status_code == 303
    with running(clone) as http:
        sign_in(http, "tina")
        assert the_prompt(http) is None  # "Not now" holds for 24 hours, across restarts
    shutil.rmtree(clone / folder)
    with running(clone) as http:
        sign_in(http, "tina")
        assert the_prompt(http) is not None


def test_the_sign_in_page_says_moments_come_once_a_day_and_how_to_start_over(clone: Path) -> None:
    """Beside the demo users: why a second look shows nothing, and the folder to delete."""
    folder, _ = readme_state()
    with running(clone) as http:
        page = http.get("/login").text
    note = re.search(r'<p id="demo-note">(.*?)</p>', page, re.DOTALL)
    assert note is not None
    text = " ".join(note.group(1).split())
    assert "at most once a day" in text
    assert f"delete <code>{folder}</code>" in text
