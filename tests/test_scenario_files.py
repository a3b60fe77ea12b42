"""Where the suite finds its vectors: the repo's copy, ../shared/scenarios, $PQLSDK_SCENARIOS.

The loader's rules are checked on folders made under ``tmp_path`` (a project root
with or without a ``shared`` folder beside it), and end to end by running
``tests/test_scenarios.py`` in a child pytest with a vector dropped into a folder
named by ``PQLSDK_SCENARIOS``: it must be collected, and it must be able to fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, SCENARIOS, load_scenario, scenario_files, scenario_id
from .processes import untraced_env

VECTOR = SCENARIOS / "model1_additive.json"
CHILD_PYTEST = ["-m", "pytest", "tests/test_scenarios.py", "-v", "-p", "no:cacheprovider"]


def _project(tmp_path: Path, *, shared: bool) -> Path:
    """A project root holding one vector in tests/scenarios, and one in ../shared if asked."""
    root = tmp_path / "project"
    (root / "tests" / "scenarios").mkdir(parents=True)
    shutil.copy(VECTOR, root / "tests" / "scenarios" / "a.json")
    if shared:
        (tmp_path / "shared" / "scenarios").mkdir(parents=True)
        shutil.copy(VECTOR, tmp_path / "shared" / "scenarios" / "a.json")
        shutil.copy(VECTOR, tmp_path / "shared" / "scenarios" / "b.json")
    return root


def test_a_plain_clone_reads_its_own_copy() -> None:
    """The repository holds every public vector and its README, in tests/scenarios."""
    repo = [path for path in scenario_files(ROOT, environ={}) if path.parent == SCENARIOS]
    assert {path.name for path in repo} >= {
        "model1_additive.json",
        "model1_edges.json",
        "model2_weighted.json",
        "model3_pattern.json",
        "moments_steps.json",
        "stuck_and_pqa.json",
    }
    assert (SCENARIOS / "README.md").is_file()


def test_without_shared_only_the_repo_folder_is_read(tmp_path: Path) -> None:
    """No ../shared folder: the loader reads tests/scenarios and does not fail."""
    root = _project(tmp_path, shared=False)
    assert [scenario_id(p, root) for p in scenario_files(root, environ={})] == ["repo/a.json"]


def test_shared_vectors_are_read_beside_the_repo_copy(tmp_path: Path) -> None:
    """../shared/scenarios, when it exists, adds its files; a name in both is checked twice."""
    root = _project(tmp_path, shared=True)
    ids = [scenario_id(p, root) for p in scenario_files(root, environ={})]
    assert ids == ["repo/a.json", "shared/a.json", "shared/b.json"]


def test_every_folder_in_the_variable_is_read(tmp_path: Path) -> None:
    """PQLSDK_SCENARIOS names folders (os.pathsep between them), each read, each file once."""
    root = _project(tmp_path, shared=True)
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        shutil.copy(VECTOR, folder / "a.json")
    (first / "notes.txt").write_text("not a vector")
    named = os.pathsep.join([str(first), "", str(second), str(first)])  # empty and repeated
    ids = [scenario_id(p, root) for p in scenario_files(root, environ={"PQLSDK_SCENARIOS": named})]
    assert ids == [
        "repo/a.json",
        "shared/a.json",
        "shared/b.json",
        str(first / "a.json"),
        str(second / "a.json"),
    ]


def test_a_missing_folder_in_the_variable_is_an_error(tmp_path: Path) -> None:
    """A misspelt PQLSDK_SCENARIOS folder fails collection instead of checking nothing."""
    root = _project(tmp_path, shared=False)
    with pytest.raises(AssertionError, match="not a folder"):
        scenario_files(root, environ={"PQLSDK_SCENARIOS": str(tmp_path / "nowhere")})


def _run_scenario_tests(folder: Path) -> subprocess.CompletedProcess[str]:
    """tests/test_scenarios.py in a child pytest, PQLSDK_SCENARIOS naming ``folder``."""
    return subprocess.run(
        [sys.executable, *CHILD_PYTEST, "-k", "model1_additive"],
        cwd=ROOT,
        env=untraced_env(PQLSDK_SCENARIOS=str(folder)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_vector_dropped_into_a_named_folder_is_checked(tmp_path: Path) -> None:
    """A file named like a repo vector, in a PQLSDK_SCENARIOS folder, runs under its own id."""
    dropped = tmp_path / "vectors" / "model1_additive.json"
    dropped.parent.mkdir()
    shutil.copy(VECTOR, dropped)
    run = _run_scenario_tests(dropped.parent)
    assert run.returncode == 0, run.stdout + run.stderr
    for test in ("test_scenario_expectations_hold", "test_cli_score_json_matches_the_vector"):
        assert f"{test}[repo/model1_additive.json] PASSED" in run.stdout, run.stdout
        assert f"{test}[{dropped}] PASSED" in run.stdout, run.stdout


def test_a_wrong_expectation_in_a_dropped_vector_fails(tmp_path: Path) -> None:
    """The dropped vector is really checked: one user's tier made wrong fails both tests."""
    data = load_scenario(VECTOR)
    user, wanted = next(iter(data["expect"]["users"].items()))
    wanted["tier"] = "burning" if wanted["tier"] != "burning" else "cold"
    dropped = tmp_path / "vectors" / "model1_additive.json"
    dropped.parent.mkdir()
    dropped.write_text(json.dumps(data))
    run = _run_scenario_tests(dropped.parent)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"test_scenario_expectations_hold[{dropped}] FAILED" in run.stdout, run.stdout
    assert f"test_cli_score_json_matches_the_vector[{dropped}] FAILED" in run.stdout, run.stdout
    assert "test_scenario_expectations_hold[repo/model1_additive.json] PASSED" in run.stdout
    assert user in run.stdout  # the failure names the user whose tier is wrong


def test_no_file_a_reader_opens_points_outside_the_repository() -> None:
    """README, docs, examples, bench and src name tests/scenarios, never ../shared/..."""
    readable = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
    for folder, pattern in (("examples", "*.toml"), ("examples", "*.py"), ("bench", "*.py")):
        readable += (ROOT / folder).rglob(pattern)
    readable += (ROOT / "src").rglob("*.py")
    pointing = [str(p.relative_to(ROOT)) for p in readable if "../shared/" in p.read_text()]
    assert pointing == []
