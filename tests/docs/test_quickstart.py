"""The quickstart, followed word for word in a fresh virtual env, shows the moment it promises.

``follow_quickstart`` reads the page's shell commands and runs them in order in
an empty directory, with the two substitutions a reader's machine needs: the
package the page installs from ``/path/to/pqlsdk`` (a clone) is the one given,
and the server takes a free port instead of 5000. The files the page says to
save are the files the page includes (``docs/snippets/quickstart/``), saved
under the names it gives. tests/packaging/test_wheel.py follows it with the
built wheel, so that a packaging slip shows.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import Process, free_port, untraced_env

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "quickstart.md"
SAMPLES = ROOT / "docs" / "snippets" / "quickstart"

COMMANDS = [
    "python3 -m venv .venv",
    ".venv/bin/pip install '/path/to/pqlsdk[flask]'",
    ".venv/bin/flask --app app run --port 5000",
    "curl -i http://127.0.0.1:5000/settings/sso?user=u1",
]
PROMISE = "sso is on the Business plan"
CLONE = "/path/to/pqlsdk"  # where the page has the reader's clone


def shell_commands(page: str) -> list[str]:
    blocks = re.findall(r"^```sh\n(.*?)^```", page, re.MULTILINE | re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_page_gives_these_commands_files_and_answer() -> None:
    page = PAGE.read_text()
    assert shell_commands(page) == COMMANDS
    assert "Save this as `rules.toml`" in page
    assert '--8<-- "docs/snippets/quickstart/rules.toml"' in page
    assert "Save this as `app.py`" in page
    assert '--8<-- "docs/snippets/quickstart/app.py"' in page
    assert f"```text\n{PROMISE}\n```" in page


def follow_quickstart(folder: Path, package: str) -> None:
    """Follow the page in ``folder`` (empty, outside the checkout), installing ``package``.

    ``package`` replaces the page's ``/path/to/pqlsdk``: a built wheel, or a
    checkout. The server's answer must be the page's promise.
    """
    if shutil.which("curl") is None:
        pytest.skip("the quickstart sees the moment with curl, which is not installed")
    env = untraced_env()
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    shutil.copy(SAMPLES / "rules.toml", folder / "rules.toml")
    shutil.copy(SAMPLES / "app.py", folder / "app.py")
    port = str(free_port())
    venv, install, serve, see = (c.replace("5000", port).split() for c in COMMANDS)

    venv[0] = sys.executable  # "python3": the interpreter running the tests
    assert install[-1] == f"'{CLONE}[flask]'"
    install[-1] = f"{package}[flask]"
    for step in (venv, install):
        done = subprocess.run(
            step, cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, f"{' '.join(step)}\n{done.stdout}\n{done.stderr}"

    server = Process("flask", serve, folder, env)
    try:
        server.wait_for(lambda: "Running on" in server.output(), "flask serving")
        answer = subprocess.run(
            see, cwd=folder, env=env, capture_output=True, text=True, timeout=30, check=False
        )
        assert answer.returncode == 0, answer.stderr
        head, _, body = answer.stdout.partition("\n\n")  # text mode: \r\n read as \n
        assert head.startswith("HTTP/1.1 403"), answer.stdout
        assert body == PROMISE
    finally:
        server.kill()
