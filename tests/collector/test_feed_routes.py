"""The PQL feed served by the collector: behind a key, ranked, filterable, exportable."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from pqlsdk import messages
from pqlsdk.collector._session import SESSION_SECONDS, Sessions
from pqlsdk.transports import Batch
from pqlsdk.transports.http import HTTPTransport

from .conftest import WRITE_KEY, Serve, Served, crossing

FEED_KEY = "fk-test"


def send(served: Served, *items: messages.Message) -> None:
    transport = HTTPTransport(served.url, WRITE_KEY)
    try:
        batch = Batch(
            id="b",
            messages=tuple(messages.check(m)[1] for m in items),
            sent_at=messages.check(items[0])[0].timestamp,
        )
        transport.send(batch)
    finally:
        transport.close()


@pytest.fixture
def fed(serve: Serve) -> Served:
    served = serve(feed_keys=[FEED_KEY])
    send(
        served,
        crossing("ada", "burning", score=120, route="account_executive", minutes=1),
        crossing("max", "hot", score=60, minutes=2),
        crossing("zed", "hot", score=70, route="customer_success", minutes=3),
    )
    return served


@pytest.mark.parametrize("path", ["/api/leads", "/api/leads.csv"])
def test_the_api_needs_a_feed_key(fed: Served, path: str) -> None:
    """Without a feed key (or with a write key) the API answers 401 and a login prompt."""
    for auth in (None, (WRITE_KEY, ""), ("wrong", "")):
        response = httpx.get(fed.url + path, auth=auth)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="pqlsdk PQL feed"'
        assert "ada" not in response.text


def test_the_page_ranks_leads_by_tier_then_score(fed: Served) -> None:
    """The HTML feed lists burning before hot, and higher scores first within a tier."""
    page = httpx.get(fed.url + "/feed", auth=(FEED_KEY, ""))
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    order = [page.text.index(f'data-id="{who}"') for who in ("ada", "zed", "max")]
    assert order == sorted(order)


def test_the_api_filters_by_tier_and_route(fed: Served) -> None:
    """/api/leads returns JSON rows; ?tier= and ?route= narrow them."""
    everyone = httpx.get(fed.url + "/api/leads", auth=(FEED_KEY, "")).json()["leads"]
    assert [lead["subject_id"] for lead in everyone] == ["ada", "zed", "max"]
    hot = httpx.get(fed.url + "/api/leads", params={"tier": "hot"}, auth=(FEED_KEY, "")).json()
    assert [lead["subject_id"] for lead in hot["leads"]] == ["zed", "max"]
    routed = httpx.get(
        fed.url + "/api/leads", params={"route": "customer_success"}, auth=(FEED_KEY, "")
    ).json()
    assert [lead["subject_id"] for lead in routed["leads"]] == ["zed"]
    filtered_page = httpx.get(fed.url + "/feed", params={"tier": "hot"}, auth=(FEED_KEY, ""))
    assert 'data-id="ada"' not in filtered_page.text


def test_the_csv_export_downloads_the_rows(fed: Served) -> None:
    """/api/leads.csv is a download with one row per lead."""
    response = httpx.get(fed.url + "/api/leads.csv", auth=(FEED_KEY, ""))
    assert response.headers["content-disposition"] == 'attachment; filename="pql-leads.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["subject_id"], r["tier"], r["route"]) for r in rows] == [
        ("ada", "burning", "account_executive"),
        ("zed", "hot", "customer_success"),
        ("max", "hot", "sales_development"),
    ]


def test_without_feed_keys_there_is_no_feed(serve: Serve) -> None:
    """A collector configured without feed keys does not serve the feed at all."""
    served = serve()
    assert httpx.get(served.url + "/feed", auth=(FEED_KEY, "")).status_code == 404


def sign_in(served: Served, name: str = "Ann Rep", key: str = FEED_KEY) -> httpx.Response:
    return httpx.post(served.url + "/login", data={"name": name, "key": key, "next": "/feed"})


def test_a_browser_without_a_session_is_sent_to_the_sign_in_form(fed: Served) -> None:
    """/feed (and the bare URL) redirect a stranger to /login, which shows a form, not a 401."""
    for path, target in (("/", "/feed"), ("/feed", "/login?next=%2Ffeed")):
        response = httpx.get(fed.url + path)
        assert (response.status_code, response.headers["location"]) == (303, target)
        assert "ada" not in response.text
    form = httpx.get(fed.url + "/login?next=/feed?tier=hot")
    assert form.status_code == 200
    assert '<form class="card" method="post" action="/login">' in form.text
    assert 'name="next" value="/feed?tier=hot"' in form.text
    assert "ada" not in form.text


def test_signing_in_with_the_feed_key_sets_a_strict_httponly_session(fed: Served) -> None:
    """The posted key opens a session: an HttpOnly, SameSite=Strict cookie the feed accepts."""
    response = sign_in(fed)
    assert (response.status_code, response.headers["location"]) == (303, "/feed")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("pqlsdk_feed=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert FEED_KEY not in cookie
    jar = {"pqlsdk_feed": response.cookies["pqlsdk_feed"]}
    page = httpx.get(fed.url + "/feed", cookies=jar)
    assert page.status_code == 200
    assert "Signed in as <strong>Ann Rep</strong>" in page.text
    assert 'data-id="ada"' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert httpx.get(fed.url + "/api/leads", cookies=jar).json()["leads"]
    assert httpx.get(fed.url + "/login", cookies=jar).headers["location"] == "/feed"
    out = httpx.post(fed.url + "/logout", cookies=jar)
    assert out.headers["location"] == "/login"
    assert 'pqlsdk_feed=""' in out.headers["set-cookie"]


@pytest.mark.parametrize(
    ("name", "key", "status", "error"),
    [
        ("Ann", "wrong", 401, "That is not a feed key."),
        ("Ann", WRITE_KEY, 401, "That is not a feed key."),
        ("", FEED_KEY, 400, "Give your name"),
        ("x" * 81, FEED_KEY, 400, "Give your name"),
    ],
)
def test_a_wrong_key_or_no_name_opens_no_session(
    fed: Served, name: str, key: str, status: int, error: str
) -> None:
    """A key that is not a feed key, or a missing name, shows the form again with why."""
    response = sign_in(fed, name, key)
    assert response.status_code == status
    assert error in response.text
    assert "set-cookie" not in response.headers


def test_the_sign_in_form_reads_only_small_urlencoded_forms(fed: Served) -> None:
    """JSON, oversized or undecodable bodies are refused (400) without a session."""
    for body, content_type in (
        (b'{"key": "fk-test"}', "application/json"),
        (b"key=" + b"x" * 5000, "application/x-www-form-urlencoded"),
        (b"key=\xff\xfe", "application/x-www-form-urlencoded"),
    ):
        response = httpx.post(
            fed.url + "/login", content=body, headers={"content-type": content_type}
        )
        assert response.status_code == 400
        assert "set-cookie" not in response.headers


def test_sign_in_never_redirects_off_site(fed: Served) -> None:
    """A ``next`` that leaves the site is replaced by the feed."""
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = httpx.post(
            fed.url + "/login", data={"name": "Ann", "key": FEED_KEY, "next": target}
        )
        assert response.headers["location"] == "/feed"


def test_a_forged_cookie_is_refused(fed: Served) -> None:
    """A cookie signed with another key, tampered with, or garbled opens nothing."""
    good = sign_in(fed).cookies["pqlsdk_feed"]
    payload, _, signature = good.partition(".")
    for forged in (f"{payload}x.{signature}", f"{payload}.{signature[:-2]}AA", "garbage", ""):
        response = httpx.get(fed.url + "/api/leads", cookies={"pqlsdk_feed": forged})
        assert response.status_code == 401


def test_a_session_ends_after_a_working_day_and_with_its_key() -> None:
    """A cookie is refused once it expires, and by a collector that no longer has its key."""
    sessions = Sessions(["fk-a", "fk-b"])
    cookie = sessions.issue("Ann", 1, now=1_000_000)
    session = sessions.check(cookie, now=1_000_000 + SESSION_SECONDS - 1)
    assert session is not None
    assert session.name == "Ann"
    assert sessions.check(cookie, now=1_000_000 + SESSION_SECONDS) is None
    assert Sessions(["fk-a"]).check(cookie, now=1_000_000) is None
    assert sessions.csrf_ok(session, sessions.csrf(session))
    assert not sessions.csrf_ok(session, "forged")


def signed_in(served: Served) -> tuple[dict[str, str], str]:
    """Sign in as Ann Rep; return the cookie jar and the CSRF token the feed's forms carry."""
    jar = {"pqlsdk_feed": sign_in(served).cookies["pqlsdk_feed"]}
    page = httpx.get(served.url + "/feed", cookies=jar).text
    token = page.split('name="csrf" value="')[1].split('"')[0]
    return jar, token


def contact(served: Served, jar: dict[str, str] | None, **fields: str) -> httpx.Response:
    form = {"subject": "user", "subject_id": "max", "model": "pql", **fields}
    return httpx.post(served.url + "/feed/contacted", data=form, cookies=jar)


def test_a_rep_marks_a_lead_contacted_from_the_feed(fed: Served) -> None:
    """The form records the signed-in rep and the time; the page, JSON and CSV show it."""
    jar, token = signed_in(fed)
    response = contact(fed, jar, csrf=token)
    assert (response.status_code, response.headers["location"]) == (303, "/feed")
    page = httpx.get(fed.url + "/feed", cookies=jar).text
    row = page[page.index('data-id="max"') :]
    assert "✓ contacted by Ann Rep" in row[: row.index("</tr>")]
    leads = httpx.get(fed.url + "/api/leads", auth=(FEED_KEY, "")).json()["leads"]
    marked = next(lead for lead in leads if lead["subject_id"] == "max")
    assert (marked["contacted_by"], marked["contacted"], marked["overdue"]) == (
        "Ann Rep",
        True,
        False,
    )
    assert marked["contacted_at"] >= marked["crossed_at"]
    text = httpx.get(fed.url + "/api/leads.csv", auth=(FEED_KEY, "")).text
    assert {r["subject_id"]: r["contacted_by"] for r in csv.DictReader(io.StringIO(text))} == {
        "ada": "",
        "zed": "",
        "max": "Ann Rep",
    }


def test_marking_contacted_needs_a_session_and_its_csrf_token(fed: Served) -> None:
    """No session, a key in a header, or a missing or foreign token: 403, and nothing marked."""
    jar, token = signed_in(fed)
    assert contact(fed, None, csrf=token).status_code == 403
    keyed = httpx.post(
        fed.url + "/feed/contacted",
        data={"subject": "user", "subject_id": "max", "model": "pql", "csrf": token},
        auth=(FEED_KEY, ""),
    )
    assert keyed.status_code == 403
    assert contact(fed, jar).status_code == 403
    other_jar, _ = signed_in(fed)
    assert contact(fed, other_jar, csrf=token).status_code == 403  # another session's token
    assert contact(fed, jar, csrf=token, subject_id="nobody").status_code == 404
    lead = fed.storage.lead("user", "max")
    assert lead.contacted_by is None


def test_marking_contacted_when_storage_fails_is_a_503(fed: Served) -> None:
    """A storage fault answers 503 with Retry-After; the rep can try again."""
    jar, token = signed_in(fed)
    fed.storage.close()
    response = contact(fed, jar, csrf=token)
    assert (response.status_code, response.headers["retry-after"]) == (503, "5")
