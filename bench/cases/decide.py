"""Case: in-process decision cost per call, pqlsdk's gate and decide against flag SDKs.

Run: ``python bench/cases/decide.py --sdk {pqlsdk-gate,pqlsdk-decide,growthbook,
launchdarkly,openfeature} [--quick]``.

Every subject answers for users ``user-{i % 500}`` on plan ``trial``, back to
back (no pace: nothing runs in the background here). The flag SDKs evaluate
one flag ``sso`` with one targeting rule (``plan == "business"`` serves true,
else false), so every call walks the rule and falls through to false. Their
main figure (variant ``""``) uses a per-user object built in advance (500
GrowthBook objects, LaunchDarkly contexts, OpenFeature evaluation contexts) so
it measures the evaluation; a second variant builds that object in the call,
as a request handler that makes one per request would.

pqlsdk reads the user's state from its (memory) store and evaluates the
playbook rules: users are identified, grouped and have 50 tracked events each
over the last two weeks. ``pqlsdk-gate`` asks for ``reports`` (the plan has it:
allowed) and, as variant ``denied``, for ``sso`` (not on trial: the denial is
tracked as an event and may show a capped moment, so it writes).
``pqlsdk-decide`` calls ``decide()``: after each user's first showing, moments
are capped for the day, the common path (nothing due, no write).

No SDK sends anything: LaunchDarkly has ``send_events=False`` and
``diagnostic_opt_out=True``, GrowthBook has no API host, pqlsdk no endpoint.
"""

# Each SDK is imported in its own set-up function: a process imports only the
# one it measures, so no other SDK's import-time state or threads are around.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _case import emit, per_call, quick
from _sink import loopback_only

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"
USERS = 500
ACCOUNTS = 100
HISTORY = 50  # tracked events per user before measuring
SDKS = ("pqlsdk-gate", "pqlsdk-decide", "growthbook", "launchdarkly", "openfeature")

# A plausible fortnight of product use; every fourth user also hit a limit,
# which makes them "hot" (the upgrade moment is due once, then capped).
EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("feature_used", {"feature": "reports"}),
    ("page_viewed", {"path": "/pricing"}),
    ("feature_used", {"feature": "dashboards"}),
    ("core_workflow_completed", {}),
    ("page_viewed", {"path": "/home"}),
    ("feature_used", {"feature": "exports"}),
    ("import_started", {}),
    ("import_completed", {}),
    ("page_viewed", {"path": "/docs"}),
    ("feature_used", {"feature": "reports"}),
]

Variants = dict[str, Callable[[int], Any]]
"""Variant name to the measured call; ``""`` is the subject's main figure."""


def users() -> list[str]:
    """The user ids, so that building them is not part of any measured call."""
    return [f"user-{u}" for u in range(USERS)]


def pqlsdk_variants(sdk: str) -> Variants:
    """A memory-store client with the playbook rules and 500 users with history."""
    import pqlsdk
    from pqlsdk._memo import TTL

    client = pqlsdk.Client(store="memory://", rules=PLAYBOOK, retention=None)
    now = datetime.now(UTC)
    ids = users()
    for u, user in enumerate(ids):
        client.identify(user, {"plan": "trial"})
        client.group(user, f"acct-{u % ACCOUNTS}", {"employees": 20 + u % ACCOUNTS})
        for k in range(HISTORY):
            event, properties = EVENTS[k % len(EVENTS)]
            if u % 4 == 0 and k == HISTORY - 1:
                event, properties = "limit_hit", {"limit": "seats"}
            when = now - timedelta(hours=6 * (HISTORY - k))
            client.track(user, event, properties, timestamp=when)
    assert client.gate(ids[1], "reports").allowed
    if sdk == "pqlsdk-gate":
        gate = client.gate
        return {
            "": lambda i: gate(ids[i % USERS], "reports"),
            "denied": lambda i: gate(ids[i % USERS], "sso"),
        }
    decide = client.decide
    # "memo cold": the clock moves so that a user's calls are just over a second
    # apart, past the one second pqlsdk memoises a decision for (page views
    # seconds apart): every call decides afresh.
    clock = pqlsdk.FixedClock(now)
    cold = pqlsdk.Client(store=client.store, rules=PLAYBOOK, retention=None, clock=clock)
    step = timedelta(microseconds=TTL * 1.05 / USERS)

    def decide_cold(i: int) -> Any:
        clock.advance(step)
        return cold.decide(ids[i % USERS])

    return {"": lambda i: decide(ids[i % USERS]), "memo cold": decide_cold}


def growthbook_variants() -> Variants:
    """GrowthBook objects built from a features dict: no API host, nothing fetched."""
    from growthbook import GrowthBook

    features = {
        "sso": {
            "defaultValue": False,
            "rules": [{"condition": {"plan": "business"}, "force": True}],
        }
    }
    ids = users()
    books = [
        GrowthBook(attributes={"id": user, "plan": "trial"}, features=features) for user in ids
    ]
    assert books[0].is_on("sso") is False

    def per_call_object(i: int) -> bool:
        book = GrowthBook(attributes={"id": ids[i % USERS], "plan": "trial"}, features=features)
        return book.is_on("sso")

    return {"": lambda i: books[i % USERS].is_on("sso"), "new object per call": per_call_object}


def launchdarkly_variants() -> Variants:
    """An LDClient fed by TestData (no streaming, polling, events or diagnostics)."""
    from ldclient import Context, LDClient
    from ldclient.config import Config
    from ldclient.integrations.test_data import TestData

    data = TestData.data_source()
    data.update(
        data.flag("sso")
        .boolean_flag()
        .fallthrough_variation(False)
        .if_match("plan", "business")
        .then_return(True)
    )
    client = LDClient(
        Config("sdk-bench", update_processor_class=data, send_events=False, diagnostic_opt_out=True)
    )
    assert client.is_initialized()
    ids = users()
    contexts = [Context.builder(user).set("plan", "trial").build() for user in ids]
    variation = client.variation
    assert variation("sso", contexts[0], True) is False

    def per_call_context(i: int) -> Any:
        return variation("sso", Context.builder(ids[i % USERS]).set("plan", "trial").build(), False)

    return {
        "": lambda i: variation("sso", contexts[i % USERS], False),
        "context per call": per_call_context,
    }


def openfeature_variants() -> Variants:
    """OpenFeature's in-memory provider with a context evaluator playing the rule."""
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.flag_evaluation import FlagResolutionDetails, Reason
    from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

    def plan_rule(
        flag: InMemoryFlag[bool], context: EvaluationContext
    ) -> FlagResolutionDetails[bool]:
        """The one targeting rule: plan "business" gets "on", everyone else the default."""
        variant = "on" if context.attributes.get("plan") == "business" else flag.default_variant
        return FlagResolutionDetails(
            value=flag.variants[variant], reason=Reason.TARGETING_MATCH, variant=variant
        )

    flag = InMemoryFlag("off", {"on": True, "off": False}, context_evaluator=plan_rule)
    api.set_provider(InMemoryProvider({"sso": flag}))
    client = api.get_client()
    ids = users()
    contexts = [EvaluationContext(user, {"plan": "trial"}) for user in ids]
    get = client.get_boolean_value
    assert get("sso", True, contexts[0]) is False

    def per_call_context(i: int) -> bool:
        return get("sso", False, EvaluationContext(ids[i % USERS], {"plan": "trial"}))

    return {
        "": lambda i: get("sso", False, contexts[i % USERS]),
        "context per call": per_call_context,
    }


def variants_for(sdk: str) -> Variants:
    """The measured calls of ``sdk``, set up."""
    if sdk.startswith("pqlsdk"):
        return pqlsdk_variants(sdk)
    if sdk == "growthbook":
        return growthbook_variants()
    if sdk == "launchdarkly":
        return launchdarkly_variants()
    return openfeature_variants()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdk", choices=SDKS, required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    calls, warmup = (300, 50) if quick() else (50_000, 1_000)
    refused = loopback_only()
    for variant, call in variants_for(args.sdk).items():
        figures = per_call(call, calls, warmup=warmup)
        emit("decision", args.sdk, unit="us/call", variant=variant, **figures)
    if refused():
        print(f"{args.sdk}: refused off-loopback attempts: {refused()}")


if __name__ == "__main__":
    main()
