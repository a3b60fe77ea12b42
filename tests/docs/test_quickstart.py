"""The quickstart, followed word for word in a fresh virtual env, shows the moment it promises.

The test reads the page's shell commands and runs them in order in an empty
directory, with the two substitutions a reader's machine does not need: the
package comes from this checkout instead of the registry, and the server takes
a free port instead of 5000. The files the page says to save are the files the
page includes (``docs/snippets/quickstart/``), saved under the names it gives.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import Process, untraced_env

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "quickstart.md"
SAMPLES = ROOT / "docs" / "snippets" / "quickstart"

COMMANDS = [
    "python3 -m venv .venv",
    ".venv/bin/pip install 'pqlsdk[flask]'",
    ".venv/bin/flask --app app run --port 5000",
    "curl -i http://127.0.0.1:5000/settings/sso?user=u1",
]
PROMISE = "sso is on the Business plan"


def shell_commands(page: str) -> list[str]:
    blocks = re.findall(r"^```sh\n(.*?)^```", page, re.MULTILINE | re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_page_gives_these_commands_files_and_answer() -> None:
    page = PAGE.read_text()
    assert shell_commands(page) == COMMANDS
    assert "Save this as `rules.toml`" in page
    assert '--8<-- "docs/snippets/quickstart/rules.toml"' in page
    assert "Save this as `app.py`" in page
    assert '--8<-- "docs/snippets/quickstart/app.py"' in page
    assert f"```text\n{PROMISE}\n```" in page


@pytest.mark.slow
def test_the_quickstart_in_a_fresh_venv_shows_the_moment(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("the quickstart sees the moment with curl, which is not installed")
    env = untraced_env()
    env.pop("VIRTUAL_ENV", None)
    shutil.copy(SAMPLES / "rules.toml", tmp_path / "rules.toml")
    shutil.copy(SAMPLES / "app.py", tmp_path / "app.py")
    port = str(free_port())
    venv, install, serve, see = (c.replace("5000", port).split() for c in COMMANDS)

    venv[0] = sys.executable  # "python3": the interpreter running the tests
    install[-1] = f"{ROOT}[flask]"  # this checkout, not the registry
    for step in (venv, install):
        done = subprocess.run(
            step, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, f"{' '.join(step)}\n{done.stdout}\n{done.stderr}"

    server = Process("flask", serve, tmp_path, env)
    try:
        server.wait_for(lambda: "Running on" in server.output(), "flask serving")
        answer = subprocess.run(
            see, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30, check=False
        )
        assert answer.returncode == 0, answer.stderr
        head, _, body = answer.stdout.partition("\n\n")  # text mode: \r\n read as \n
        assert head.startswith("HTTP/1.1 403"), answer.stdout
        assert body == PROMISE
    finally:
        server.kill()
