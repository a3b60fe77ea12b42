"""The collector's moments report folds, on each request, only the messages stored since."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from pqlsdk import messages, rules
from pqlsdk._clock import micros
from pqlsdk.collector import open_storage
from pqlsdk.collector._lift_cache import MomentsCache
from pqlsdk.lift import MomentsReport, measure

from ..lift.cohort import RULES, build
from .conftest import Serve

FEED_KEY = "fk-test"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The cohort's messages in time order: decisions on day 0, conversions up to day 9."""
    path = tmp_path_factory.mktemp("cache") / "history.jsonl"
    build(path, users=60)
    found = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted(found, key=lambda m: datetime.fromisoformat(m["timestamp"]))


def _split(history: list[dict[str, Any]], day: str) -> tuple[list[Any], list[Any]]:
    """The messages before ``day`` (an ISO date) and the rest, as messages."""
    early = [messages.convert(m) for m in history if m["timestamp"] < day]
    late = [messages.convert(m) for m in history if m["timestamp"] >= day]
    return early, late


class _Counted:
    """A real SQLite storage whose reads of messages are counted, row by row."""

    def __init__(self, path: Path) -> None:
        self.storage = open_storage(f"sqlite:///{path}")
        self.rows = 0
        reads = self.storage.positioned

        def positioned(**options: Any) -> Iterator[Any]:
            for row in reads(**options):
                self.rows += 1
                yield row

        self.storage.positioned = positioned  # type: ignore[method-assign]
        self.cache = MomentsCache(self.storage, rules.loads(RULES))

    def taken(self) -> int:
        """Rows read since the last call."""
        rows, self.rows = self.rows, 0
        return rows


def _whole(storage: Any) -> MomentsReport:
    """The report of one full pass over the storage, as ``pqlsdk moments`` makes it."""
    pairs = ((micros(m.timestamp), m) for m in storage.messages())
    return measure(rules.loads(RULES), pairs)


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[_Counted]:
    opened = _Counted(tmp_path / "collector.db")
    yield opened
    opened.storage.close()


def test_a_request_reads_only_what_was_stored_since(
    history: list[dict[str, Any]], counted: _Counted
) -> None:
    """New messages show in the next report; old ones are not read again; none: none read."""
    storage, cache = counted.storage, counted.cache
    early, late = _split(history, "2026-03-04")
    storage.store(early)
    first = cache.report()
    assert counted.taken() == len(early)
    assert first.moments["nudge"].converted_shown == 0  # conversions come from day 4 on
    storage.store(late)
    second = cache.report()
    assert counted.taken() == len(late)
    assert cache.report() is second
    assert counted.taken() == 0
    assert second == _whole(storage)
    assert second.moments["nudge"].converted_shown > 0


def test_a_message_stored_late_makes_the_fold_start_again(
    history: list[dict[str, Any]], counted: _Counted
) -> None:
    """A message timestamped before what was read is folded in its place: all is read again."""
    early, late = _split(history, "2026-03-04")
    behind, early = early[-1:], early[:-1]
    counted.storage.store([*early, *late])
    counted.cache.report()
    counted.taken()
    counted.storage.store(behind)
    report = counted.cache.report()
    assert counted.taken() == len(history)
    assert report == _whole(counted.storage)


def test_the_api_shows_messages_stored_after_the_first_request(
    history: list[dict[str, Any]], serve: Serve
) -> None:
    """Two requests, messages stored between them: the second report counts them."""
    served = serve(feed_keys=[FEED_KEY], rules=rules.loads(RULES))
    early, late = _split(history, "2026-03-04")
    served.storage.store(early)
    url, auth = served.url + "/api/moments", (FEED_KEY, "")
    before = httpx.get(url, auth=auth).json()
    served.storage.store(late)
    after = httpx.get(url, auth=auth).json()
    assert after == _whole(served.storage).as_json()
    assert before["moments"]["nudge"]["converted_shown"] == 0
    assert after["moments"]["nudge"]["converted_shown"] > 0
