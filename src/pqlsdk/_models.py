"""Which model a score call scores with, and what a call gets when pqlsdk cannot score it.

A model is named by the host on each call (``score(model=...)``); a name the
rules do not define is the host's bug, but the request must not fail for it:
it is logged once per name (a bounded number of names, so a loop of bad names
cannot flood the log) and the call gets an empty score saying why. So does a
call with an invalid id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from ._exceptions import ConfigError, InvalidMessageError, PQLError
from ._scoring import Reason, Score
from ._stats import logger
from .rules import Model, Rules

__all__ = ["Models", "empty_score", "known"]

_UNKNOWN_MODELS_LOGGED: Final = 100  # distinct unknown model names logged, then no more


class Models:
    """One client's model look-ups, remembering which unknown names were logged."""

    def __init__(self, *, strict: bool) -> None:
        self._strict = strict
        self._unknown_models: set[str] = set()  # names logged once each

    def find(self, rules: Rules, name: object) -> Model | ConfigError:
        """Model ``name`` (None: the primary), or why there is none: logged once per name.

        A strict client raises the ``ConfigError`` instead of returning it.
        """
        try:
            if name is None or isinstance(name, str):
                return rules.model(name)
            raise ConfigError(f"a model name must be a str, not {type(name).__name__}")
        except ConfigError as exc:
            if self._strict:
                raise
            key = name if isinstance(name, str) else type(name).__name__
            if key not in self._unknown_models and (
                len(self._unknown_models) < _UNKNOWN_MODELS_LOGGED
            ):
                self._unknown_models.add(key)
                logger.warning("%s: answering an empty score", exc)
            return exc


def known(rules: Rules, name: object) -> Model | None:
    """Model ``name`` if the rules define it (None: the primary), else None; never logs."""
    return (
        rules.model() if name is None else rules.models.get(name) if isinstance(name, str) else None
    )


def empty_score(
    model: Model | None, why: PQLError, *, name: object, subject: str, subject_id: str, at: datetime
) -> Score:
    """Answer a call pqlsdk cannot score: nothing earned, and one reason saying why.

    With the model at hand (only the id was invalid) the tier and route are those
    of a score of 0 (its lowest tier, its default route); without one they are "".
    """
    reason = Reason(
        signal=why.reason if isinstance(why, InvalidMessageError) else "unknown_model",
        label=str(why),
        points=0.0,
        earned=0.0,
        fired=False,
        observed=None,
        needs=None,
    )
    return Score(
        subject=subject if model is None else model.subject,
        id=subject_id,
        model=model.name if model is not None else name if isinstance(name, str) else "",
        score=0.0,
        tier="" if model is None else model.tier_for(0.0),
        route="" if model is None else model.default_route,
        gate_passed=False,
        multiplier=1.0,
        raw=0.0,
        reasons=(reason,),
        at=at,
    )
