"""The demo's customers: one Django user each, and the product history pqlsdk scores.

Every customer is a Django user without a password (the login page signs you
in as any of them with one click) and a pqlsdk user whose id is the Django
primary key, as the integration resolves it by default.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pqlsdk


@dataclass(frozen=True)
class Customer:
    """A demo user: who they are, their plan, and what they did (event, days ago)."""

    username: str
    name: str
    about: str
    plan: str
    trial_days_left: float | None = None
    events: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)


CUSTOMERS = [
    Customer(
        "tara",
        "Tara Trent",
        "On a trial with 12 days left. Open Settings > SSO to meet the Business plan.",
        plan="trial",
        trial_days_left=12,
        events=[("core_workflow_completed", 1, {})],
    ),
    Customer(
        "erin",
        "Erin Ellis",
        "Her trial ends in 2 days.",
        plan="trial",
        trial_days_left=2 - 1 / 24,
        events=[("core_workflow_completed", 3, {}), ("core_workflow_completed", 1, {})],
    ),
    Customer(
        "hugo",
        "Hugo Hart",
        "A power user: hit the seat limit and asked for a demo. Hot.",
        plan="trial",
        trial_days_left=10,
        events=[
            ("core_workflow_completed", 3, {}),
            ("feature_used", 2, {"feature": "exports"}),
            ("limit_hit", 1, {"limit": "seats"}),
            ("demo_requested", 0.5, {}),
        ],
    ),
    Customer(
        "bea",
        "Bea Banks",
        "On the Business plan: SSO is hers.",
        plan="business",
        events=[("core_workflow_completed", 2, {})],
    ),
]


def seed(client: pqlsdk.Client, now: datetime | None = None) -> list[str]:
    """Create the demo users (once) and record their plans and histories in pqlsdk.

    Plans and trial ends are recorded on every run (so a trial still ends in
    two days tomorrow); events only when the user is new. Returns the
    usernames created.
    """
    from django.contrib.auth.models import User  # noqa: PLC0415 - needs the app registry

    now = now or datetime.now(UTC)
    created = []
    for customer in CUSTOMERS:
        first, _, last = customer.name.partition(" ")
        user, new = User.objects.get_or_create(
            username=customer.username,
            defaults={"first_name": first, "last_name": last},
        )
        if new:
            user.set_unusable_password()
            user.save()
            created.append(customer.username)
        traits: dict[str, Any] = {"plan": customer.plan, "name": customer.name}
        if customer.trial_days_left is not None:
            ends = now + timedelta(days=customer.trial_days_left)
            traits["trial_ends_at"] = ends.isoformat()
        client.identify(str(user.pk), traits, timestamp=now)
        if new:
            for event, days_ago, properties in customer.events:
                when = now - timedelta(days=days_ago)
                client.track(str(user.pk), event, properties, timestamp=when)
    return created
