"""Helpers for the replay tests: run the command line, write histories and outcomes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pqlsdk.cli import main

from ..conftest import ROOT, SCENARIOS

__all__ = ["PLAYBOOK", "RULES", "SCENARIOS", "group", "replay_json", "track", "write_lines"]

RULES = ROOT / "examples" / "rules"
PLAYBOOK = RULES / "playbook.toml"


def replay_json(capsys: pytest.CaptureFixture[str], *args: str | Path) -> dict[str, Any]:
    """Run ``pqlsdk replay ... --json`` on both engines; check they print the same; return it.

    Every history a replay test writes is a parity case: the duckdb engine must
    print, byte for byte, what the python engine (the reference) prints.
    """
    printed = []
    for engine in ("python", "duckdb"):
        assert main(["replay", *(str(a) for a in args), "--json", "--engine", engine]) == 0
        printed.append(capsys.readouterr().out)
    assert printed[1] == printed[0]
    data: dict[str, Any] = json.loads(printed[0])
    return data


def track(user: str, event: str, at: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": event,
        "timestamp": at,
        "properties": properties,
    }


def group(user: str, account: str, at: str, **traits: Any) -> dict[str, Any]:
    return {"type": "group", "userId": user, "groupId": account, "timestamp": at, "traits": traits}


def write_lines(path: Path, messages: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    return path
