"""The PQL feed served by the collector: behind a key, ranked, filterable, exportable."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from pqlsdk import messages
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


@pytest.mark.parametrize("path", ["/feed", "/api/leads", "/api/leads.csv"])
def test_the_feed_needs_a_feed_key(fed: Served, path: str) -> None:
    """Without a feed key (or with a write key) the feed answers 401 and a login prompt."""
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
