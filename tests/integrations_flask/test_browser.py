"""The example app (Acme Reports) in Debian's Chromium: what a trial user, a hot lead and an
ending trial see, served by a real server on 127.0.0.1 over a SQLite file in tmp_path."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("flask")
pytest.importorskip("flask_login")
pytest.importorskip("playwright")

from playwright.sync_api import Browser, Page

import pqlsdk
from tests.browser import ARTIFACTS, chromium
from tests.integrations_flask.hosts import EXAMPLE, serving


@pytest.fixture(scope="module")
def example() -> ModuleType:
    """``examples/flask_app/app.py``, imported under a name of its own."""
    spec = importlib.util.spec_from_file_location("acme_reports_app", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def acme(example: ModuleType, tmp_path: Path, clock: pqlsdk.FixedClock) -> Iterator[str]:
    """The example app's factory on a fresh SQLite file, served; yields its base URL."""
    app = example.create_app(
        {
            "SECRET_KEY": "browser-test",
            "PQLSDK_STORE": f"sqlite:///{tmp_path}/acme.db",
            "PQLSDK_CLOCK": clock,
            "PQLSDK_STRICT": True,
        }
    )
    with serving(app) as url:
        yield url
    example.pql.close(app)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    yield context.new_page()
    context.close()


def sign_in(page: Page, url: str, user: str) -> None:
    page.goto(f"{url}/login")
    page.check(f"input[name=user][value={user}]")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert page.url == f"{url}/"


def test_a_trial_user_meets_the_prompt_then_not_again_after_not_now(page: Page, acme: str) -> None:
    sign_in(page, acme, "tina")
    first = page.goto(f"{acme}/settings/sso")
    prompt = page.locator("aside.pqlsdk-blocked_feature")
    assert first is not None
    assert first.status == 403
    assert prompt.get_by_role("heading").inner_text() == "Single sign-on is on the Business plan"
    page.screenshot(path=str(ARTIFACTS / "flask-blocked-feature.png"), full_page=True)

    page.get_by_role("button", name="Dismiss: Single sign-on is on the Business plan").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == f"{acme}/"

    again = page.goto(f"{acme}/settings/sso")
    assert again is not None
    assert again.status == 403
    assert page.get_by_role("heading", level=1).inner_text() == "Single sign-on"
    assert page.locator("main").get_by_text("Single sign-on is on the Business plan").is_visible()
    assert page.locator("aside.pqlsdk-moment").count() == 0
    page.screenshot(path=str(ARTIFACTS / "flask-blocked-cooldown.png"), full_page=True)


def visible_words(page: Page) -> set[str]:
    """The words a reader sees on the page and in its tab title, lower-cased."""
    return set(re.findall(r"[\w-]+", f"{page.title()} {page.inner_text('body')}".lower()))


@pytest.mark.parametrize("dismissed", [False, True], ids=["with-prompt", "after-not-now"])
def test_the_locked_feature_page_is_the_apps_own_and_names_the_feature(
    page: Page, acme: str, dismissed: bool
) -> None:
    """The 403 has the app's header, navigation and user, and says "Single sign-on", never "sso"."""
    sign_in(page, acme, "tina")
    if dismissed:
        page.goto(f"{acme}/settings/sso")
        with page.expect_navigation():
            page.locator("aside.pqlsdk-blocked_feature button.pqlsdk-dismiss").click()
    locked = page.goto(f"{acme}/settings/sso")
    assert locked is not None
    assert locked.status == 403
    nav = page.get_by_role("navigation", name="Main")
    assert [link.inner_text() for link in nav.get_by_role("link").all()] == [
        "Reports",
        "Single sign-on",
        "Plans",
    ]
    assert page.locator("header").get_by_role("button", name="Sign out").is_visible()
    assert page.locator("header").get_by_text("Tina Park").is_visible()
    assert page.title() == "Single sign-on · Acme Reports"
    assert page.get_by_role("heading", level=1).inner_text() == "Single sign-on"
    assert "sso" not in visible_words(page)
    name = "flask-blocked-after-not-now.png" if dismissed else "flask-blocked-in-layout.png"
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_a_hot_lead_sees_the_upgrade_widget(page: Page, acme: str) -> None:
    sign_in(page, acme, "hana")
    widget = page.locator("aside.pqlsdk-upgrade_widget")
    assert widget.get_by_role("heading").inner_text() == "Ready for more?"
    assert widget.get_by_role("button", name="Upgrade").is_visible()
    page.screenshot(path=str(ARTIFACTS / "flask-upgrade-widget.png"), full_page=True)


def test_the_call_to_action_opens_the_plans_page(page: Page, acme: str) -> None:
    sign_in(page, acme, "hana")
    with page.expect_navigation():
        page.get_by_role("button", name="Upgrade").click()
    assert page.url == f"{acme}/upgrade"
    assert page.get_by_role("heading", level=1).inner_text() == "Plans"
    page.screenshot(path=str(ARTIFACTS / "flask-upgrade-clicked.png"), full_page=True)


def test_a_trial_two_days_from_its_end_sees_the_notice(page: Page, acme: str) -> None:
    sign_in(page, acme, "tom")
    notice = page.locator("aside.pqlsdk-trial_ending")
    assert notice.get_by_role("heading").inner_text() == "Your trial ends in 2 days"
    page.screenshot(path=str(ARTIFACTS / "flask-trial-ending.png"), full_page=True)
