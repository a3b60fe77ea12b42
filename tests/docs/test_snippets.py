"""Every code sample in the docs is a file under docs/snippets, and every file runs.

Pages include samples with ``--8<--`` (pymdownx.snippets), so what a reader
copies is what these tests execute: each Python sample runs in a fresh
interpreter in its own temporary directory (beside the other files of its
folder and the shipped rules), each rules sample loads, and the samples that
promise an answer (the quickstart's moment, the Flask guide's prompt, the
replay's table) are asked for it.
"""

from __future__ import annotations

import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import pqlsdk.rules

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SNIPPETS = DOCS / "snippets"
SHIPPED_RULES = ROOT / "examples" / "rules"

# Modules a page shows but that only make sense inside a project: the sample
# beside them (named here) runs them.
RUN_BY = {
    "integrations/django/settings.py": "integrations/django/check.py",
    "integrations/django/urls.py": "integrations/django/check.py",
    "integrations/django/views.py": "integrations/django/check.py",
}

INCLUDE = re.compile(r'^--8<-- "([^"]+)"$', re.MULTILINE)
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _relative(path: Path) -> str:
    return path.relative_to(SNIPPETS).as_posix()


def _samples(pattern: str) -> list[Path]:
    """Sample files, not what running one in place may leave (bytecode, databases)."""
    return [
        path
        for path in SNIPPETS.rglob(pattern)
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".db"
    ]


PYTHON = sorted(_relative(p) for p in _samples("*.py") if _relative(p) not in RUN_BY)
RULES = sorted(_relative(p) for p in _samples("*.toml"))
PAGES = sorted(DOCS.rglob("*.md"))


def workdir(tmp_path: Path, snippet: str) -> Path:
    """A fresh directory holding the shipped rules and the files beside ``snippet``."""
    for rules in SHIPPED_RULES.glob("*.toml"):
        shutil.copy(rules, tmp_path / rules.name)
    for sibling in (SNIPPETS / snippet).parent.iterdir():
        if sibling.is_file():
            shutil.copy(sibling, tmp_path / sibling.name)
    return tmp_path


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("snippet", PYTHON)
def test_python_sample_runs(snippet: str, tmp_path: Path) -> None:
    cwd = workdir(tmp_path, snippet)
    name = Path(snippet).name
    if name.startswith("test_"):
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name]
    else:
        command = [sys.executable, name]
    done = run(command, cwd)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("snippet", RULES)
def test_rules_sample_loads(snippet: str) -> None:
    rules = pqlsdk.rules.load(SNIPPETS / snippet)
    assert rules.models


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_has_no_inline_python(page: Path) -> None:
    for language, body in FENCE.findall(page.read_text()):
        if language in {"python", "py", "pycon"}:
            assert INCLUDE.fullmatch(body.strip()), f"{page.name}: inline Python\n{body}"


def test_every_sample_is_shown_on_a_page() -> None:
    included = {
        name
        for page in PAGES
        for name in INCLUDE.findall(page.read_text())
        if name.startswith("docs/snippets/")
    }
    files = {f"docs/snippets/{_relative(p)}" for p in _samples("*")}
    shown = {name.split(":")[0] for name in included}  # "file.toml:section" shows file.toml
    assert files - shown == set()


def _flask_app(tmp_path: Path, snippet: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Load a Flask sample as ``flask --app`` would: by path, from its own directory."""
    pytest.importorskip("flask")
    cwd = workdir(tmp_path, snippet)
    monkeypatch.chdir(cwd)
    return runpy.run_path(str(cwd / Path(snippet).name))


def test_quickstart_shows_the_blocked_feature_moment_until_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = _flask_app(tmp_path, "quickstart/app.py", monkeypatch)
    try:
        browser = sample["app"].test_client()
        answers = [browser.get("/settings/sso?user=u1") for _ in range(4)]
        assert [a.status_code for a in answers] == [403] * 4
        assert [a.get_data(as_text=True) for a in answers] == [
            "sso is on the Business plan",
            "sso is on the Business plan",
            "sso is on the Business plan",
            "Upgrade to use SSO",
        ]
    finally:
        sample["client"].close()


def test_flask_guide_shows_the_prompt_to_a_trial_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = _flask_app(tmp_path, "integrations/flask_app.py", monkeypatch)
    app = sample["app"]
    try:
        browser = app.test_client()
        assert browser.get("/settings/sso").status_code == 401  # nobody signed in
        browser.get("/login/u1")
        denied = browser.get("/settings/sso")
        assert denied.status_code == 403
        assert "Single sign-on is on the Business plan" in denied.get_data(as_text=True)
        assert browser.get("/").status_code == 200
    finally:
        sample["pql"].close(app)


def test_replay_commands_on_the_page_run_on_the_samples(tmp_path: Path) -> None:
    page = (DOCS / "replay.md").read_text()
    command = (
        "pqlsdk replay playbook.toml events.jsonl --outcomes outcomes.csv --at 2026-03-06T00:00:00Z"
    )
    assert command in page
    cwd = workdir(tmp_path, "replay/events.jsonl")
    done = run([sys.executable, "-m", "pqlsdk", *command.split()[1:]], cwd)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^hot\s+1\s+1\s+100\.0%", done.stdout, re.MULTILINE), done.stdout
