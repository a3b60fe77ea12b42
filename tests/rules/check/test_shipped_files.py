"""Every rules file pqlsdk ships passes ``pqlsdk check`` without a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from ...conftest import ROOT
from . import check

SHIPPED = sorted([*ROOT.glob("examples/rules/*.toml"), *ROOT.glob("docs/snippets/**/*.toml")])


def test_the_shipped_files_are_found() -> None:
    """The examples, the quickstart's and the reference's files are all here."""
    names = {path.relative_to(ROOT).as_posix() for path in SHIPPED}
    assert {
        "examples/rules/playbook.toml",
        "docs/snippets/quickstart/rules.toml",
        "docs/snippets/rules/reference.toml",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_a_shipped_file_passes_check_cleanly(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0, an ok line, and nothing on stderr: no error, no warning."""
    checked = check(path, capsys)
    assert (checked.code, checked.err) == (0, "")
    assert checked.out.startswith(f"{path}: ok: ")
