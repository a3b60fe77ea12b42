"""Answers: what a client's reads return (state, scores, moments, gates), and outcomes on moments.

Every call here takes an id as the host passed it: an invalid one is counted as
a drop (raised by a strict client) and gets an empty answer, never an error on
the host's request path. Each call applies the messages this client accepted
before reading, so a client always reads its own writes, and a store fault
gets the answer that was possible without it (``Faults`` decides: counted, or
raised when strict). Setup mistakes (no rules, rules without the tables a call
needs) are always raised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn, TypeVar

import msgspec

from ._clock import Clock, micros
from ._exceptions import ConfigError, InvalidIdError, InvalidMessageError, StoreError
from ._faults import Faults
from ._gating import PREMIUM_ATTEMPT_EVENT, Gate, answer, fallback
from ._ids import check_id
from ._models import Models, empty_score, known
from ._moments import OUTCOMES, Chooser, Moment, mark, outcome_message
from ._recording import Recorder
from ._scoring import AccountScore, Score, score_account, score_subject
from .rules import Rules
from .stores import AccountState, UserState

S = TypeVar("S", UserState, AccountState)

__all__ = ["Answers"]


class Answers:
    """One client's reads and outcome records, over its recorder."""

    def __init__(
        self, recorder: Recorder, faults: Faults, clock: Clock, *, gate_fallback: bool
    ) -> None:
        self._recorder = recorder
        self._faults = faults
        self._clock = clock
        self._gate_fallback = gate_fallback
        self._models = Models(strict=faults.strict)
        self._chooser = Chooser(recorder.store, recorder.emit)

    def user(self, user_id: str | int) -> UserState | None:
        """See ``Client.user()``."""
        return self._state("user_id", user_id, self._recorder.store.user)

    def account(self, account_id: str | int) -> AccountState | None:
        """See ``Client.account()``."""
        return self._state("account_id", account_id, self._recorder.store.account)

    def _state(self, name: str, raw: str | int, read: Callable[[str], S | None]) -> S | None:
        """One subject's state: the id checked, pending messages applied, a fault contained."""
        try:
            subject = check_id(raw, name)
        except InvalidIdError as exc:
            self._faults.drop(exc.reason, exc)
            return None
        self._recorder.settle()
        try:
            return read(subject)
        except StoreError as exc:
            self._faults.error(exc)
            return None

    def score(self, user_id: str | int, *, model: str | None = None) -> Score:
        """See ``Client.score()``."""
        rules = self._require_rules()
        try:
            user_id = check_id(user_id, "user_id")
        except InvalidIdError as exc:
            self._faults.drop(exc.reason, exc)
            at = self._clock.now()
            return empty_score(
                known(rules, model), exc, name=model, subject="user", subject_id="", at=at
            )
        chosen = self._models.find(rules, model)
        if isinstance(chosen, ConfigError):
            at = self._clock.now()
            return empty_score(None, chosen, name=model, subject="user", subject_id=user_id, at=at)
        user = self.user(user_id)  # applies pending messages first
        account = None if user is None or user.account_id is None else self.account(user.account_id)
        return score_subject(chosen, user_id, user, account, micros(self._clock.now()))

    def score_account(self, account_id: str | int, *, model: str | None = None) -> AccountScore:
        """See ``Client.score_account()``."""
        rules = self._require_rules()
        try:
            account_id = check_id(account_id, "account_id")
        except InvalidIdError as exc:
            self._faults.drop(exc.reason, exc)
            at = self._clock.now()
            empty = empty_score(None, exc, name=model, subject="account", subject_id="", at=at)
            return AccountScore(id="", pqa=False, pql_users=0, members={}, score=empty)
        chosen = None if model is None else self._models.find(rules, model)
        account = self.account(account_id)  # applies pending messages first
        members = {} if account is None else {m: self.user(m) for m in account.members}
        now = micros(self._clock.now())
        if not isinstance(chosen, ConfigError):
            return score_account(rules, account, account_id, members, now, model=model)
        rolled = score_account(rules, account, account_id, members, now, model=None)
        at = self._clock.now()
        empty = empty_score(
            None, chosen, name=model, subject="account", subject_id=account_id, at=at
        )
        return msgspec.structs.replace(rolled, score=empty)

    def decide(self, user_id: str | int) -> Moment | None:
        """See ``Client.decide()``."""
        # The hot path makes no call before the memo: decide() answers in about a microsecond.
        rules = self._recorder.rules
        moments = None if rules is None else rules.moments
        if rules is None or moments is None:
            self._missing_moments()
        if not (type(user_id) is str and user_id and user_id.isascii()):  # an id already
            try:
                user_id = check_id(user_id, "user_id")
            except InvalidIdError as exc:
                self._faults.drop(exc.reason, exc)
                return None
        self._recorder.settle()
        now = micros(self._clock.now())
        try:
            return self._recorder.memo.get(
                "decide",
                user_id,
                now,
                self._chooser.choose,
                rules,
                moments,
                user_id,
                None,
                now,
                keep=_nothing,  # "nothing due" holds for a moment; a showing is never replayed
            )
        except StoreError as exc:
            self._faults.error(exc)
            return None

    def gate(self, user_id: str | int, feature: str) -> Gate:
        """See ``Client.gate()``."""
        rules = self._require_rules()
        if rules.entitlements is None:
            raise ConfigError(f"no [entitlements] in {rules.origin}: gate() needs them")
        try:
            user_id = check_id(user_id, "user_id")
            if not isinstance(feature, str):
                raise InvalidMessageError(f"feature must be a str, not {type(feature).__name__}")
        except InvalidMessageError as exc:
            self._faults.drop(exc.reason, exc)
            return self._fallback(feature if isinstance(feature, str) else "", str(exc))
        now = micros(self._clock.now())
        self._recorder.settle()
        try:
            gate = answer(
                rules,
                user_id,
                feature,
                entitlements=rules.entitlements,
                store=self._recorder.store,
                chooser=self._chooser,
                now=now,
                on_error=self._faults.error,
            )
        except StoreError as exc:
            self._faults.error(exc)
            return self._fallback(feature, "store unavailable")
        if not gate.allowed:
            # Tracked after the prompt is shown, in every delivery mode: when this attempt
            # makes the user cross into a tier, the crossing lists the prompt among the
            # moments seen (the intake thread would otherwise race the showing).
            self._recorder.track(user_id, PREMIUM_ATTEMPT_EVENT, {"feature": feature})
        return gate

    def _fallback(self, feature: str, why: str) -> Gate:
        """Answer by ``gate_fallback`` (the user cannot be read), saying why."""
        return fallback(feature, why, allow=self._gate_fallback)

    def record(self, user_id: str | int, moment: str, outcome: str) -> bool:
        """See ``Client.record()``."""
        try:
            if not (isinstance(outcome, str) and outcome in OUTCOMES):
                got = repr(outcome) if isinstance(outcome, str) else type(outcome).__name__
                raise InvalidMessageError(f"outcome must be one of {sorted(OUTCOMES)}, got {got}")
            if not isinstance(moment, str):
                raise InvalidMessageError(f"moment must be a str, not {type(moment).__name__}")
            user_id = check_id(user_id, "user_id")
        except InvalidMessageError as exc:
            self._faults.drop(exc.reason, exc)
            return False
        now = micros(self._clock.now())
        self._recorder.settle()
        self._recorder.memo.forget((user_id,))  # an outcome may start a cooldown
        try:
            found = self._recorder.store.update_user(
                user_id, lambda state: mark(state, moment, outcome, now)
            )
        except StoreError as exc:
            self._faults.drop("store_error", exc)
            return False
        if found is None:
            self._faults.drop(
                "unknown_moment", InvalidMessageError(f"no moment {moment!r} to record")
            )
            return False
        self._recorder.emit(outcome_message(user_id, found, outcome))
        return True

    def _missing_moments(self) -> NoReturn:
        """Raise decide()'s setup error: no rules, or rules without moments."""
        rules = self._require_rules()
        raise ConfigError(f"no [moment.*] tables in {rules.origin}: decide() needs them")

    def _require_rules(self) -> Rules:
        if self._recorder.rules is None:
            raise ConfigError("no rules loaded: pass Client(rules=...) or call load_rules()")
        return self._recorder.rules


def _nothing(moment: Moment | None) -> bool:
    return moment is None
