"""Where each user stands at a replay's evaluation time, whichever engine folded the history.

The tables need only each subject's score; the lists of single loggers and of
tier changes show a few users with their reasons. ``Ends`` gives those on
demand: from the folded state (the python engine, ``HistoryEnds``) or from the
rows the compiled SQL returned (``pqlsdk.warehouse``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .._history import History
from .._scoring import Score, score_subject, standing
from ..rules._model import Model
from ..stores import AccountState, UserState

__all__ = ["Ends", "HistoryEnds"]


class Ends(Protocol):
    """Every user's standing at the evaluation time, under any model of the replay.

    Added in version 0.1.0.
    """

    def user_ids(self) -> Iterable[str]:
        """Return every user of the history, in no particular order."""
        ...  # pragma: no cover - a protocol

    def tier(self, model: Model, user_id: str) -> str:
        """Return the user's tier under ``model``."""
        ...  # pragma: no cover - a protocol

    def score(self, model: Model, user_id: str) -> Score:
        """Return the user's score under ``model``, with its reasons."""
        ...  # pragma: no cover - a protocol


class HistoryEnds:
    """``Ends`` from the folded state, scored in process."""

    def __init__(self, history: History, at: int) -> None:
        self.history = history
        self.at = at

    def user_ids(self) -> Iterable[str]:
        return self.history.users

    def _state(self, user_id: str) -> tuple[UserState, AccountState | None]:
        user = self.history.users[user_id]
        account = None if user.account_id is None else self.history.accounts.get(user.account_id)
        return user, account

    def tier(self, model: Model, user_id: str) -> str:
        user, account = self._state(user_id)
        return standing(model, user_id, user, account, self.at)[1]

    def score(self, model: Model, user_id: str) -> Score:
        user, account = self._state(user_id)
        return score_subject(model, user_id, user, account, self.at)
