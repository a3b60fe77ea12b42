"""Django configured once for this folder (project.py), and one pqlsdk store per test.

No pytest-django: ``settings.configure()`` and ``django.setup()`` run when this
folder is collected, Django's own tables are migrated into a temporary SQLite
file once, and each test gets ``PQLSDK['STORE']`` in its own ``tmp_path``
through ``override_settings`` (which closes the previous client).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from tests.integrations_django import project  # noqa: E402

DATA = Path(tempfile.mkdtemp(prefix="pqlsdk-django-"))
if not settings.configured:
    settings.configure(**project.settings(DATA))
    django.setup()


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[None]:
    """Django's own tables (users, sessions), once for the session."""
    from django.core.management import call_command  # noqa: PLC0415

    call_command("migrate", verbosity=0)
    yield
    shutil.rmtree(DATA, ignore_errors=True)


@pytest.fixture(autouse=True)
def pqlsdk_store(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A fresh strict pqlsdk store in tmp_path for every test."""
    value = {**settings.PQLSDK, "STORE": f"sqlite:///{tmp_path}/pqlsdk.db"}
    with override_settings(PQLSDK=value):
        yield value


@pytest.fixture(scope="session")
def users(database: None) -> dict[str, Any]:
    """Django users: a trial, a business customer, one whose trial ends soon, a hot one."""
    from django.contrib.auth.models import User  # noqa: PLC0415

    return {
        name: User.objects.get_or_create(username=name)[0]
        for name in ("trial", "business", "ending", "hot")
    }


@pytest.fixture
def pql(users: dict[str, Any]) -> Any:
    """The integration's client with each user's plan and history (keyed by Django pk)."""
    from pqlsdk.integrations.django import client  # noqa: PLC0415

    pql = client()
    now = datetime.now(UTC)
    soon = (now + timedelta(days=2) - timedelta(hours=1)).isoformat()
    later = (now + timedelta(days=12)).isoformat()
    pql.identify(uid(users["trial"]), {"plan": "trial", "trial_ends_at": later})
    pql.identify(uid(users["business"]), {"plan": "business"})
    pql.identify(uid(users["ending"]), {"plan": "trial", "trial_ends_at": soon})
    pql.identify(uid(users["hot"]), {"plan": "trial", "trial_ends_at": later})
    for event in ("core_workflow_completed", "limit_hit", "demo_requested"):
        pql.track(uid(users["hot"]), event)
    return pql


def uid(user: Any) -> str:
    """The pqlsdk user id of a Django user: its primary key as text."""
    return str(user.pk)
