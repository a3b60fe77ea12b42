"""The pieces the Flask and Django integrations share: JSON, outcome checks, one template."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pqlsdk import Gate, Moment, rules
from pqlsdk.integrations._web import (
    MAX_OUTCOME_BYTES,
    TEMPLATE,
    TEMPLATES,
    OutcomeError,
    blocked_context,
    moment_json,
    parse_outcome,
    safe_next,
    template_context,
)

jinja2 = pytest.importorskip("jinja2")
django_template = pytest.importorskip("django.template")

MOMENT = Moment(
    id="m-1",
    kind="trial_ending",
    title="Your trial ends in 2 days <soon>",
    body="Pick a plan.",
    cta="Choose a plan",
    feature=None,
    days_left=2,
    at=datetime(2026, 3, 1, 12, tzinfo=UTC),
)


def _context(moment: Moment | None) -> dict[str, Any]:
    return template_context(
        moment,
        outcome_url="/pqlsdk/outcome",
        csrf_name="tok",
        csrf_token="T0K",
        next_url="/app",
    )


def _jinja(moment: Moment | None) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    html: str = env.get_template(TEMPLATE).render(_context(moment))
    return html


def _django(moment: Moment | None) -> str:
    # A standalone Engine needs no settings: this test leaves Django unconfigured.
    engine = django_template.Engine(dirs=[str(TEMPLATES)])
    html: str = engine.get_template(TEMPLATE).render(django_template.Context(_context(moment)))
    return html


def test_moment_json_carries_content_and_id_only() -> None:
    assert moment_json(MOMENT) == {
        "moment": {
            "id": "m-1",
            "kind": "trial_ending",
            "title": "Your trial ends in 2 days <soon>",
            "body": "Pick a plan.",
            "cta": "Choose a plan",
            "feature": None,
            "days_left": 2,
            "at": "2026-03-01T12:00:00+00:00",
        }
    }


def test_moment_json_of_nothing_is_null() -> None:
    assert moment_json(None) == {"moment": None}


def test_parse_outcome_reads_json_and_forms() -> None:
    assert parse_outcome(b'{"moment": "m-1", "outcome": "dismissed"}') == ("m-1", "dismissed")
    assert parse_outcome({"moment": "m-1", "outcome": "clicked"}) == ("m-1", "clicked")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[", "expected"),
        (b'{"moment": "m-1"}', "expected"),
        (b'{"moment": "m-1", "outcome": "converted"}', "'outcome' must be one of"),
        (b'{"moment": "", "outcome": "clicked"}', "'moment' must be"),
        ({"moment": "m-1"}, "expected the fields"),
        ({"moment": "x" * 201, "outcome": "clicked"}, "'moment' must be"),
        (b" " * (MAX_OUTCOME_BYTES + 1), "larger than"),
    ],
)
def test_parse_outcome_refuses_bad_bodies(body: bytes | dict[str, Any], message: str) -> None:
    with pytest.raises(OutcomeError, match=message):
        parse_outcome(body)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/app/reports?x=1", "/app/reports?x=1"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        (None, "/"),
        ("/" + "a" * 2048, "/"),
    ],
)
def test_safe_next_keeps_only_paths_on_this_site(url: object, expected: str) -> None:
    assert safe_next(url, "/") == expected


@pytest.mark.parametrize("render", [_jinja, _django])
def test_one_template_renders_the_same_in_both_engines(render: Any) -> None:
    html = render(MOMENT).strip()
    assert html == _jinja(MOMENT).strip()
    assert 'aria-labelledby="pqlsdk-title-m-1"' in html
    assert "Your trial ends in 2 days &lt;soon&gt;" in html  # escaped in both
    assert '<input type="hidden" name="tok" value="T0K">' in html
    assert html.count("<button") == 2
    assert 'aria-label="Dismiss: Your trial ends in 2 days &lt;soon&gt;"' in html


@pytest.mark.parametrize("render", [_jinja, _django])
def test_no_moment_renders_nothing_visible(render: Any) -> None:
    assert render(None).strip() == ""


NAMED = rules.loads(
    "[model.m]\ntiers = { low = 0 }\n[entitlements]\n"
    "plans = { pro = ['sso', 'audit_log'] }\nnames = { sso = 'Single sign-on' }\n"
)


@pytest.mark.parametrize(
    ("loaded", "feature", "expected"),
    [
        (NAMED, "sso", "Single sign-on"),
        (NAMED, "audit_log", "audit_log"),
        (rules.loads("[model.m]\ntiers = { low = 0 }\n"), "sso", "sso"),
        (None, "sso", "sso"),
    ],
    ids=["named", "unnamed", "no-entitlements", "no-rules"],
)
def test_the_blocked_page_names_the_feature_from_the_rules_else_by_its_id(
    loaded: rules.Rules | None, feature: str, expected: str
) -> None:
    """``feature_name`` is the rules' name for the feature; ``feature`` stays the id."""
    gate = Gate(feature, False, "plan 'free' does not include it", "free", None)
    context = blocked_context(gate, loaded, prompt="", upgrade_url="/plans", back_url="/")
    assert (context["feature"], context["feature_name"]) == (feature, expected)
    assert (context["gate"], context["upgrade_url"], context["back_url"]) == (gate, "/plans", "/")
