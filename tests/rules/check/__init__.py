"""``pqlsdk check`` lets no mistake through silently: one file per mistake.

Each test writes a rules file, runs ``pqlsdk check`` as a user would (the CLI's
``main``), and asserts the exact ``file:line:col`` and message it prints.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from pqlsdk.cli import main


@attrs.frozen
class Checked:
    """What ``pqlsdk check`` did: its exit code and what it printed."""

    code: int
    out: str
    err: str

    @property
    def first_line(self) -> str:
        """The first line on stderr: ``file:line:col: message`` without the caret."""
        return self.err.split("\n")[0]


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> Checked:
    """Run ``pqlsdk check path`` and return its exit code, stdout and stderr."""
    capsys.readouterr()
    code = main(["check", str(path)])
    captured = capsys.readouterr()
    return Checked(code, captured.out, captured.err)


def write(directory: Path, text: str, name: str = "rules.toml") -> Path:
    """Write a rules file and return its path."""
    path = directory / name
    path.write_text(text)
    return path
