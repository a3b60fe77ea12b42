"""Acme Reports (examples/django_project) in a real browser: Debian's Chromium via Playwright.

The example runs as it would for a developer, ``manage.py demo`` (migrate,
seed, runserver) in a subprocess with its own data folder, so nothing here
shares settings with the unit tests in this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.browser import ARTIFACTS, chromium
from tests.processes import free_port

from .project import ROOT

MANAGE = ROOT / "examples" / "django_project" / "manage.py"
PROMPT = '[data-pqlsdk-kind="blocked_feature"]'


def wait_until_up(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"manage.py demo exited {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - our own 127.0.0.1
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    pytest.fail(f"manage.py demo did not answer in 30 s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example project served by ``manage.py demo --noreload`` on a free port."""
    data = tmp_path_factory.mktemp("acme")
    port = free_port()
    env = {
        **os.environ,
        "ACME_DATA_DIR": str(data),
        "ACME_DEBUG": "0",
        "DJANGO_SETTINGS_MODULE": "acme.settings",
    }
    log = data / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, str(MANAGE), "demo", "--noreload", f"127.0.0.1:{port}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/login/", server, log)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def sign_in(browser: Browser, acme: str, username: str) -> Page:
    """A fresh browser session signed in as a demo customer, on the reports page."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.goto(f"{acme}/login/")
    page.click(f'button[data-username="{username}"]')
    page.wait_for_url(f"{acme}/reports/")
    return page


def test_blocked_feature_prompt_then_its_cooldown(browser: Browser, acme: str) -> None:
    """A trial user opens SSO: the prompt; "Not now"; reopened, locked without the prompt."""
    page = sign_in(browser, acme, "tara")
    response = page.goto(f"{acme}/settings/sso/")
    assert response is not None
    assert response.status == 403
    prompt = page.locator(PROMPT)
    assert prompt.is_visible()
    assert prompt.locator("h2").inner_text() == "Single sign-on is on the Business plan"
    page.screenshot(path=str(ARTIFACTS / "django-blocked-feature.png"), full_page=True)

    prompt.locator("button", has_text="Not now").click()
    page.wait_for_url(f"{acme}/settings/sso/")  # the dismissal goes back where it was
    assert page.locator(PROMPT).count() == 0
    again = page.goto(f"{acme}/settings/sso/")
    assert again is not None
    assert again.status == 403  # still locked, but no prompt for 24 hours
    assert page.get_by_role("heading", name="Single sign-on is on the Business plan").is_visible()
    assert page.locator(PROMPT).count() == 0
    page.screenshot(path=str(ARTIFACTS / "django-blocked-cooldown.png"), full_page=True)


def test_hot_user_sees_the_upgrade_widget(browser: Browser, acme: str) -> None:
    page = sign_in(browser, acme, "hugo")
    widget = page.locator('[data-pqlsdk-kind="upgrade_widget"]')
    assert widget.is_visible()
    assert widget.locator("h2").inner_text() == "Ready for more?"
    assert widget.get_by_role("button", name="Upgrade").is_visible()
    page.screenshot(path=str(ARTIFACTS / "django-upgrade-widget.png"), full_page=True)


def test_trial_two_days_from_its_end_sees_the_notice(browser: Browser, acme: str) -> None:
    page = sign_in(browser, acme, "erin")
    notice = page.locator('[data-pqlsdk-kind="trial_ending"]')
    assert notice.is_visible()
    assert notice.locator("h2").inner_text() == "Your trial ends in 2 days"
    page.screenshot(path=str(ARTIFACTS / "django-trial-ending.png"), full_page=True)
