"""An OpenFeature provider: code written against the OpenFeature API gets pqlsdk's answers.

Usage:

```python
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from pqlsdk.integrations.openfeature import PQLProvider

api.set_provider(PQLProvider(client))
flags = api.get_client()
context = EvaluationContext(targeting_key="u1")
flags.get_boolean_value("sso", False, context)           # the plan's entitlement
flags.get_string_value("pqlsdk.tier", "cold", context)   # tier under the primary model
flags.get_float_value("pqlsdk.score", 0.0, context)      # score under the primary model
```

- Boolean flags are feature gates (``Client.gate(targeting_key, flag)``): the
  resolution's variant is ``"on"`` or ``"off"`` and its metadata carry the
  gate's reason and plan. A denied gate is tracked as a buying signal, as
  ``gate()`` always does.
- String flags ``pqlsdk.tier`` and ``pqlsdk.route``, number flags
  ``pqlsdk.score`` (float, or rounded for integers): the user's standing under
  the rules' primary model; the variant is the tier.
- Errors map to OpenFeature's codes (the OpenFeature client then answers the
  caller's default): no targeting key is ``TARGETING_KEY_MISSING``, an unknown
  string or number flag ``FLAG_NOT_FOUND``, a ``pqlsdk.*`` flag asked for with
  the wrong type ``TYPE_MISMATCH``, rules without ``[entitlements]`` for a
  boolean flag ``PROVIDER_NOT_READY``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from .._client import Client
from .._exceptions import ConfigError

try:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.exception import (
        FlagNotFoundError,
        ProviderNotReadyError,
        TargetingKeyMissingError,
        TypeMismatchError,
    )
    from openfeature.flag_evaluation import FlagResolutionDetails, Reason
    from openfeature.provider import AbstractProvider, Metadata
except ImportError as exc:  # pragma: no cover - the test set-up installs every extra
    raise ImportError(
        "pqlsdk.integrations.openfeature needs the OpenFeature SDK: "
        "pip install 'pqlsdk[openfeature]'"
    ) from exc

__all__ = ["PQLProvider"]

TIER: Final = "pqlsdk.tier"
ROUTE: Final = "pqlsdk.route"
SCORE: Final = "pqlsdk.score"
_STRINGS: Final = frozenset({TIER, ROUTE})


class PQLProvider(AbstractProvider):
    """Answers OpenFeature flag evaluations from a pqlsdk ``Client``.

    Added in version 0.1.0.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def get_metadata(self) -> Metadata:
        """Name this provider in OpenFeature's hooks and logs.

        Added in version 0.1.0.
        """
        return Metadata(name="pqlsdk")

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        """Answer a feature gate from the plan entitlements.

        Added in version 0.1.0.
        """
        user_id = _user(evaluation_context)
        if flag_key in _STRINGS or flag_key == SCORE:
            raise TypeMismatchError(f"{flag_key} is not a boolean flag")
        try:
            gate = self._client.gate(user_id, flag_key)
        except ConfigError as exc:
            raise ProviderNotReadyError(str(exc)) from exc
        metadata: dict[str, str | int | float | bool] = {"reason": gate.reason}
        if gate.plan is not None:
            metadata["plan"] = gate.plan
        return FlagResolutionDetails(
            value=gate.allowed,
            reason=Reason.TARGETING_MATCH,
            variant="on" if gate.allowed else "off",
            flag_metadata=metadata,
        )

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        """Answer ``pqlsdk.tier`` or ``pqlsdk.route``.

        Added in version 0.1.0.
        """
        user_id = _user(evaluation_context)
        if flag_key not in _STRINGS:
            raise _unknown(flag_key, "string")
        score = self._client.score(user_id)
        value = score.tier if flag_key == TIER else score.route
        return FlagResolutionDetails(value=value, reason=Reason.TARGETING_MATCH, variant=score.tier)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        """Answer ``pqlsdk.score``.

        Added in version 0.1.0.
        """
        user_id = _user(evaluation_context)
        if flag_key != SCORE:
            raise _unknown(flag_key, "number")
        score = self._client.score(user_id)
        return FlagResolutionDetails(
            value=float(score.score), reason=Reason.TARGETING_MATCH, variant=score.tier
        )

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        """Answer ``pqlsdk.score``, rounded.

        Added in version 0.1.0.
        """
        found = self.resolve_float_details(flag_key, float(default_value), evaluation_context)
        return FlagResolutionDetails(
            value=round(found.value), reason=found.reason, variant=found.variant
        )

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[Any] | Mapping[str, Any],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[Any] | Mapping[str, Any]]:
        """Refuse: pqlsdk has no object flags, so the caller gets its default back.

        Added in version 0.1.0.
        """
        raise _unknown(flag_key, "object")


def _user(context: EvaluationContext | None) -> str:
    key = None if context is None else context.targeting_key
    if not key:
        raise TargetingKeyMissingError("pqlsdk flags need a targeting key: the user id")
    return key


def _unknown(flag_key: str, kind: str) -> Exception:
    if flag_key in _STRINGS or flag_key == SCORE:
        return TypeMismatchError(f"{flag_key} is not a {kind} flag")
    return FlagNotFoundError(f"pqlsdk has no {kind} flag {flag_key!r}")
