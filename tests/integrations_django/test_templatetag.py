"""{% pqlsdk_moment %}: the current user's moment through the shared template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.template import Context, Template
from django.test import Client
from django.test.utils import override_settings

from .conftest import uid

TRIAL_ENDING = "Your trial ends in 2 days"


def page(user: Any, path: str = "/page/?tab=1") -> str:
    browser = Client()
    browser.force_login(user)
    response = browser.get(path)
    assert response.status_code == 200
    return str(response.content.decode())


@pytest.mark.usefixtures("pql")
def test_tag_renders_the_moment_with_csrf_and_outcome_forms(users: dict[str, Any]) -> None:
    html = page(users["ending"])
    assert TRIAL_ENDING in html
    assert 'data-pqlsdk-kind="trial_ending"' in html
    assert html.count('<form method="post" action="/pqlsdk/outcome/">') == 4  # 2 tags, 2 forms
    assert '<input type="hidden" name="csrfmiddlewaretoken" value="' in html
    assert '<input type="hidden" name="next" value="/page/?tab=1">' in html


def test_tag_decides_once_per_request(pql: Any, users: dict[str, Any]) -> None:
    html = page(users["hot"])
    assert html.count('data-pqlsdk-kind="upgrade_widget"') == 2  # both tags, one moment
    shown = pql.user(uid(users["hot"])).moments
    assert [record.kind for record in shown] == ["upgrade_widget"]


@pytest.mark.usefixtures("pql")
def test_tag_renders_nothing_when_no_moment_is_due(users: dict[str, Any]) -> None:
    assert "data-pqlsdk" not in page(users["business"])


def test_tag_renders_nothing_for_anonymous_visitors() -> None:
    response = Client().get("/page/")
    assert "data-pqlsdk" not in response.content.decode()
    assert "csrftoken" not in response.cookies  # no CSRF token was asked for


def test_tag_renders_nothing_without_a_request() -> None:
    html = Template("{% load pqlsdk %}[{% pqlsdk_moment %}]").render(Context({}))
    assert html == "[]"


@pytest.mark.usefixtures("pql")
def test_host_overrides_the_moment_template(users: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "pqlsdk").mkdir()
    (tmp_path / "pqlsdk" / "moment.html").write_text("<b>{{ moment.title }}</b>")
    engine = {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [str(tmp_path), str(Path(__file__).parent / "templates")],
    }
    with override_settings(TEMPLATES=[engine]):
        html = page(users["ending"])
    assert f"<b>{TRIAL_ENDING}</b>" in html


def test_app_templates_folder_is_the_shared_one() -> None:
    from django.apps import apps  # noqa: PLC0415

    from pqlsdk.integrations._web import TEMPLATES  # noqa: PLC0415

    assert Path(apps.get_app_config("pqlsdk").path) / "templates" == TEMPLATES
