"""A file that cannot be read is named without an invented ``1:1``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pqlsdk import RulesError, rules

from . import check


def test_a_missing_file_is_reported_without_a_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``pqlsdk check rules.toml`` on no file says so, and exits 1."""
    path = tmp_path / "rules.toml"
    checked = check(path, capsys)
    assert (checked.code, checked.out, checked.err) == (1, "", f"{path}: no such file\n")


def test_a_directory_is_not_a_rules_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory given by mistake is named as one."""
    assert check(tmp_path, capsys).err == f"{tmp_path}: is a directory, not a rules file\n"


def test_an_unreadable_file_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Any other read failure gives the system's reason (here a path through a file)."""
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "rules.toml"
    assert check(path, capsys).err == f"{path}: cannot read: Not a directory\n"


def test_whole_file_errors_carry_no_position() -> None:
    """A file too large has no line to point at: line and column are 0."""
    with pytest.raises(RulesError) as caught:
        rules.loads("#" * 1_000_001, name="big.toml")
    assert (str(caught.value), caught.value.line, caught.value.column) == (
        "big.toml: rules file is over 1000000 bytes",
        0,
        0,
    )


def test_a_byte_that_is_not_utf8_is_reported_where_it_is() -> None:
    """A stray Latin-1 byte is reported at its line and column."""
    with pytest.raises(RulesError) as caught:
        rules.loads(b"[model.m]\ntiers = { caf\xe9 = 0 }\n", name="latin.toml")
    assert str(caught.value).split("\n")[0] == (
        "latin.toml:2:14: rules file is not UTF-8 (byte 0xe9)"
    )


def test_a_file_without_models_is_reported_as_a_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty TOML file lacks ``[model.NAME]``: there is no line to point at."""
    path = tmp_path / "rules.toml"
    path.write_text("")
    assert check(path, capsys).err == f"{path}: the file needs the key 'model'\n"


def test_an_error_without_its_line_text_has_no_caret() -> None:
    """Tools that build a ``RulesError`` without the line's text get one line."""
    error = RulesError("bad", path="r.toml", line=3, column=7)
    assert str(error) == "r.toml:3:7: bad"
