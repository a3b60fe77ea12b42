"""Checked messages and a state read, for the tests that record into the SQLite stores directly."""

from __future__ import annotations

import pqlsdk
from pqlsdk import messages
from pqlsdk.stores.buffered import BufferedStore
from pqlsdk.stores.sqlite import SQLiteStore


def track(user: str = "u", event: str = "e") -> tuple[messages.Message, bytes]:
    """A checked ``track`` message of ``user``, stamped now, with its encoding."""
    return messages.check(
        messages.Track(user_id=user, event=event, timestamp=pqlsdk.SystemClock().now())
    )


def group(user: str = "u", group: str = "g") -> tuple[messages.Message, bytes]:
    """A checked ``group`` message putting ``user`` in ``group``, stamped now."""
    return messages.check(
        messages.Group(user_id=user, group_id=group, timestamp=pqlsdk.SystemClock().now())
    )


def tracks(store: SQLiteStore | BufferedStore, user: str = "u") -> int:
    """How many events ``store`` folded into ``user``'s state (0 for an unknown user)."""
    state = store.user(user)
    return 0 if state is None else state.tracks
