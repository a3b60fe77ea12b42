"""The integration guides' samples do what their pages say, in a real app.

``test_snippets`` runs every sample as a script; here the Django and ASGI
samples are served: the Django project answers a trial user's request for a
Business feature with the prompt, and the ASGI app's events reach a real
collector on 127.0.0.1 before the request returns.
"""

from __future__ import annotations

import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.delivery.collector import Collector
from tests.docs.test_snippets import workdir

DJANGO_REQUEST = textwrap.dedent(
    """
    import os

    os.environ["DJANGO_SETTINGS_MODULE"] = "settings"
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from pqlsdk.integrations.django import client, close

    setup_test_environment()
    call_command("migrate", verbosity=0)
    user = User.objects.create_user("ana")
    client().identify(str(user.pk), {"plan": "trial"})
    browser = Client()
    assert browser.get("/settings/sso/").status_code == 302  # nobody signed in: to the login
    browser.force_login(user)
    denied = browser.get("/settings/sso/")
    print(denied.status_code, denied.content.decode())
    close()
    """
)


def test_django_guide_shows_the_prompt_to_a_trial_user(tmp_path: Path) -> None:
    pytest.importorskip("django")
    cwd = workdir(tmp_path, "integrations/django/settings.py")
    (cwd / "request.py").write_text(DJANGO_REQUEST)
    done = subprocess.run(
        [sys.executable, "request.py"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("403 ")
    assert "Single sign-on is on the Business plan" in done.stdout


def test_asgi_guide_delivers_from_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    testclient = pytest.importorskip("starlette.testclient")
    cwd = workdir(tmp_path, "integrations/asgi_app.py")
    monkeypatch.chdir(cwd)
    with Collector(write_key="wk_live_1") as collector:
        monkeypatch.setenv("COLLECTOR_URL", collector.url)
        sample = runpy.run_path(str(cwd / "asgi_app.py"))
        with testclient.TestClient(sample["app"]) as browser:
            answer = browser.post("/reports?user=u1")
            assert answer.status_code == 200
            assert answer.json() == {"score": 0}
            assert [m["event"] for m in collector.messages] == ["report_created"]
