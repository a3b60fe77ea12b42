"""The OpenFeature provider, driven only through the OpenFeature client API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

openfeature = pytest.importorskip("openfeature")

from openfeature import api  # noqa: E402
from openfeature.client import OpenFeatureClient  # noqa: E402
from openfeature.evaluation_context import EvaluationContext  # noqa: E402
from openfeature.exception import ErrorCode  # noqa: E402
from openfeature.flag_evaluation import Reason  # noqa: E402

import pqlsdk  # noqa: E402
from pqlsdk.integrations.openfeature import PQLProvider  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"


@pytest.fixture
def flags(clock: pqlsdk.FixedClock) -> Iterator[OpenFeatureClient]:
    """An OpenFeature client over a pqlsdk client with a hot trial user and a business user."""
    client = pqlsdk.Client(store="memory://", clock=clock, rules=PLAYBOOK)
    client.identify("trial", {"plan": "trial"})
    for event in ("core_workflow_completed", "limit_hit", "checkout_started"):
        client.track("trial", event)
    client.identify("business", {"plan": "business"})
    api.set_provider(PQLProvider(client))
    yield api.get_client()
    api.shutdown()
    client.close()


def user(user_id: str) -> EvaluationContext:
    return EvaluationContext(targeting_key=user_id)


def test_boolean_flags_are_feature_gates(flags: OpenFeatureClient) -> None:
    """A plan's entitlement answers on/off, with the gate's reason and plan as metadata."""
    denied = flags.get_boolean_details("sso", True, user("trial"))
    allowed = flags.get_boolean_details("sso", False, user("business"))
    assert (denied.value, denied.variant, denied.reason) == (False, "off", Reason.TARGETING_MATCH)
    assert (allowed.value, allowed.variant, allowed.flag_metadata["plan"]) == (
        True,
        "on",
        "business",
    )
    assert denied.flag_metadata["reason"] == "plan 'trial' does not include 'sso'"


def test_string_flags_give_tier_and_route(flags: OpenFeatureClient) -> None:
    """pqlsdk.tier and pqlsdk.route come from the user's score; the variant is the tier."""
    tier = flags.get_string_details("pqlsdk.tier", "cold", user("trial"))
    route = flags.get_string_value("pqlsdk.route", "nurture", user("trial"))
    assert (tier.value, tier.variant, route) == ("hot", "hot", "sales_development")


def test_number_flags_give_the_score(flags: OpenFeatureClient) -> None:
    """pqlsdk.score as a float, and rounded as an integer."""
    assert flags.get_float_value("pqlsdk.score", 0.0, user("trial")) == 70.0
    assert flags.get_integer_value("pqlsdk.score", 0, user("trial")) == 70


@pytest.mark.parametrize(
    ("call", "flag", "context", "code"),
    [
        ("get_boolean_details", "sso", None, ErrorCode.TARGETING_KEY_MISSING),
        ("get_string_details", "pqlsdk.nothing", "trial", ErrorCode.FLAG_NOT_FOUND),
        ("get_float_details", "pqlsdk.tier", "trial", ErrorCode.TYPE_MISMATCH),
        ("get_boolean_details", "pqlsdk.score", "trial", ErrorCode.TYPE_MISMATCH),
        ("get_object_details", "pqlsdk.tier", "trial", ErrorCode.TYPE_MISMATCH),
        ("get_object_details", "anything", "trial", ErrorCode.FLAG_NOT_FOUND),
    ],
)
def test_errors_map_to_openfeature_codes_and_the_default(
    flags: OpenFeatureClient, call: str, flag: str, context: str | None, code: ErrorCode
) -> None:
    """The caller gets its default back, with the matching error code."""
    default: object = {"object": True} if call == "get_object_details" else 0.5
    if call == "get_boolean_details":
        default = True
    elif call == "get_string_details":
        default = "fallback"
    details = getattr(flags, call)(flag, default, None if context is None else user(context))
    assert (details.value, details.error_code, details.reason) == (default, code, Reason.ERROR)


def test_rules_without_entitlements_are_provider_not_ready(clock: pqlsdk.FixedClock) -> None:
    """A boolean flag needs [entitlements]; without them the provider is not ready for it."""
    rules = pqlsdk.rules.loads("[model.m]\ntiers = { cold = 0 }\n[model.m.signals]\n")
    with pqlsdk.Client(store="memory://", clock=clock, rules=rules) as client:
        api.set_provider(PQLProvider(client))
        details = api.get_client().get_boolean_details("sso", True, user("u"))
        api.shutdown()
    assert (details.value, details.error_code) == (True, ErrorCode.PROVIDER_NOT_READY)


def test_the_provider_names_itself() -> None:
    """OpenFeature's hooks and logs see the provider as "pqlsdk"."""
    client = pqlsdk.Client(store="memory://")
    assert PQLProvider(client).get_metadata().name == "pqlsdk"
    client.close()


def test_a_user_without_a_plan_is_off_and_has_no_plan(flags: OpenFeatureClient) -> None:
    """No plan trait means no entitlements: the flag is off and the metadata name no plan."""
    details = flags.get_boolean_details("reports", True, user("stranger"))
    assert (details.value, "plan" in details.flag_metadata) == (False, False)
