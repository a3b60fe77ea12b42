"""Alerts on tier crossings: who gets alerted, what they read, and delivery that holds up."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from pqlsdk import ConfigError, _lifecycle
from pqlsdk._retry import RetryPolicy
from pqlsdk.collector import _alerts
from pqlsdk.collector._alerts import Alerter, JSONWebhook, SlackWebhook
from tests.processes import free_port

from .receiver import Receiver

FEED = "https://app.example.com/pql"
FAST = RetryPolicy(base=0.02, cap=0.1, budget=2.0)

MakeAlerter = Callable[..., Alerter]


def make_lead(**changes: Any) -> dict[str, Any]:
    """Return a lead as CONTRACT.md defines it: a user crossing up into burning."""
    lead: dict[str, Any] = {
        "subject": "user",
        "subject_id": "u_42",
        "model": "pql",
        "previous_tier": "hot",
        "tier": "burning",
        "direction": "up",
        "score": 87.5,
        "route": "account_executive",
        "reasons": [
            _reason("pricing_views", "pricing page views", 15, observed=4, needs=">= 3"),
            _reason("invites", "teammates invited", 20, observed=3, needs=">= 2"),
            _reason("api_calls", "API calls", 10, observed=120.0, needs=">= 100"),
            _reason("exports", "exports", 5, observed=2, needs=">= 1"),
            _reason("sso", "SSO configured", 30, observed=False, needs=None, fired=False),
        ],
        "top_features": ["dashboards", "api", "exports"],
        "team_size": 6,
        "moments_seen": ["upgrade_nudge"],
        "crossed_at": "2026-03-15T12:00:00Z",
        "user_id": "u_42",
        "message_id": str(uuid.uuid4()),
    }
    lead.update(changes)
    return lead


def _reason(
    signal: str, label: str, points: float, *, observed: Any, needs: str | None, fired: bool = True
) -> dict[str, Any]:
    earned = points if fired else 0
    return {
        "signal": signal,
        "label": label,
        "points": points,
        "earned": earned,
        "fired": fired,
        "observed": observed,
        "needs": needs,
    }


def alert_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "pqlsdk-alerts"]


def join_alert_threads() -> None:
    for thread in alert_threads():
        thread.join(5)


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    """Every alerter's thread has ended by the end of the test (they are torn down first)."""
    yield
    join_alert_threads()
    assert alert_threads() == []


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


@pytest.fixture
def make_alerter(receiver: Receiver) -> Iterator[MakeAlerter]:
    """Build alerters with fast retries; close them before the receiver stops."""
    made: list[Alerter] = []

    def make(*webhooks: Any, **options: Any) -> Alerter:
        options.setdefault("retry", FAST)
        options.setdefault("timeout", 2.0)
        alerter = Alerter(list(webhooks) or [SlackWebhook(receiver.url())], **options)
        made.append(alerter)
        return alerter

    yield make
    for alerter in made:
        alerter.close(1.0)


# --- what the messages say ---------------------------------------------------------


def test_slack_message_is_block_kit_with_facts_reasons_features_and_feed_link(
    receiver: Receiver, make_alerter: MakeAlerter
) -> None:
    """A burning user gets a header, facts as fields, the top 3 fired reasons and a feed link."""
    alerter = make_alerter(feed_url=FEED)

    alerter(make_lead())

    assert alerter.flush(5) == 0
    expected = {
        "text": "🔥 burning PQL: u_42: score 87.5, route account executive",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "🔥 burning PQL: u_42"}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Score*\n87.5"},
                    {"type": "mrkdwn", "text": "*Tier*\nburning (was hot)"},
                    {"type": "mrkdwn", "text": "*Route*\naccount executive"},
                    {"type": "mrkdwn", "text": "*Team size*\n6"},
                    {"type": "mrkdwn", "text": "*Crossed at*\n2026-03-15T12:00:00Z"},
                    {"type": "mrkdwn", "text": "*Model*\npql"},
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Why*\n"
                    "• teammates invited = 3, needs &gt;= 2 (+20)\n"
                    "• pricing page views = 4, needs &gt;= 3 (+15)\n"
                    "• API calls = 120, needs &gt;= 100 (+10)",
                },
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "*Top features*\ndashboards, api, exports"},
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"<{FEED}|Open the PQL feed>"},
            },
        ],
    }
    assert [expected] == receiver.accepted()


def test_slack_message_for_an_account_names_the_user_and_omits_empty_parts(
    receiver: Receiver, make_alerter: MakeAlerter
) -> None:
    """A hot account is a PQA; no reasons, features or feed URL means no such blocks."""
    alerter = make_alerter()
    lead = make_lead(
        subject="account",
        subject_id="acme",
        tier="hot",
        previous_tier=None,
        reasons=[_reason("sso", "SSO", 30, observed=False, needs=None, fired=False)],
        top_features=[],
        user_id="u_7",
    )

    alerter(lead)

    assert alerter.flush(5) == 0
    [message] = receiver.accepted()
    header, facts = message["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "hot PQA: acme"}}
    expected_fields = ["*Tier*\nhot (was none)", "*Triggered by*\nu_7"]
    assert expected_fields == [facts["fields"][1]["text"], facts["fields"][-1]["text"]]


def test_slack_message_for_a_pqa_lists_its_qualifying_members(
    receiver: Receiver, make_alerter: MakeAlerter
) -> None:
    """A PQA's alert names the members that qualify, with their tiers and scores."""
    alerter = make_alerter()
    members = [
        {"user_id": "ada", "tier": "burning", "score": 85, "qualifies": True},
        {"user_id": "<!here>", "tier": "hot", "score": 55.5, "qualifies": True},
        {"user_id": "cal", "tier": "cold", "score": 0, "qualifies": False},
    ]
    alerter(make_lead(subject="account", subject_id="northwind", members=members, team_size=3))

    assert alerter.flush(5) == 0
    [message] = receiver.accepted()
    texts = [block["text"]["text"] for block in message["blocks"] if "text" in block]
    assert (
        "*Qualifying members (2 of 3 active)*\n• ada: burning 85\n• &lt;!here&gt;: hot 55.5"
        in texts
    )


def test_slack_text_is_escaped_and_cut_to_block_kit_limits(
    receiver: Receiver, make_alerter: MakeAlerter
) -> None:
    """An id cannot ping a channel through mrkdwn, and a huge id still makes a valid header."""
    alerter = make_alerter()

    alerter(make_lead(subject_id="<!channel> & " + "x" * 300))

    assert alerter.flush(5) == 0
    [message] = receiver.accepted()
    header = message["blocks"][0]["text"]["text"]
    expected = (150, True, True, False)
    assert expected == (
        len(header),
        header.endswith("…"),
        message["text"].startswith("🔥 burning PQL: &lt;!channel&gt; &amp; xxx"),
        "<!channel>" in message["text"],
    )


def test_slack_feed_link_keeps_the_url_whole() -> None:
    """A pipe in the feed URL is percent-encoded: Slack would end the link there."""
    message = SlackWebhook("https://hooks.example.com/x").payload(
        make_lead(), feed_url="https://app.example.com/pql?view=a|b&sort=score"
    )

    expected = "<https://app.example.com/pql?view=a%7Cb&amp;sort=score|Open the PQL feed>"
    assert expected == message["blocks"][-1]["text"]["text"]


def test_json_webhook_gets_the_lead_with_type_feed_url_and_headers(
    receiver: Receiver, make_alerter: MakeAlerter
) -> None:
    """The generic receiver gets {type, lead, feed_url} as JSON, with its own headers."""
    webhook = JSONWebhook(
        receiver.url("/json"),
        headers={"Authorization": "Bearer t0ken", "content-type": "text/plain"},
    )
    alerter = make_alerter(webhook, feed_url=FEED)
    lead = make_lead()

    alerter(lead)

    assert alerter.flush(5) == 0
    [request] = receiver.requests
    expected = (
        {"type": "pqlsdk.tier_crossed", "lead": lead, "feed_url": FEED},
        "application/json",
        "Bearer t0ken",
        lead["message_id"],
    )
    assert expected == (
        request.body,
        request.headers["content-type"],
        request.headers["authorization"],
        request.headers["x-pqlsdk-message-id"],
    )


def test_each_webhook_gets_exactly_one_message_per_crossing(
    receiver: Receiver, make_alerter: MakeAlerter
) -> None:
    """With a Slack and a JSON webhook, one crossing makes one message at each."""
    alerter = make_alerter(
        SlackWebhook(receiver.url("/slack")), JSONWebhook(receiver.url("/json")), feed_url=FEED
    )

    alerter(make_lead())

    assert alerter.flush(5) == 0
    expected = ([1, 1], {"sent": 2, "failed": 0, "skipped": 0, "duplicates": 0})
    assert expected == (
        [len(receiver.accepted("/slack")), len(receiver.accepted("/json"))],
        alerter.stats(),
    )


# --- who gets alerted ----------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"direction": "down", "previous_tier": "burning", "tier": "hot"},
        {"tier": "cold"},
        {"tier": "warm"},
        {"route": "do_not_contact"},
        {"subject_id": "blocked"},
        {"user_id": "blocked"},
    ],
    ids=["down", "cold", "warm", "route", "subject", "user"],
)
def test_crossings_that_do_not_deserve_an_alert_are_skipped(
    receiver: Receiver, make_alerter: MakeAlerter, changes: dict[str, Any]
) -> None:
    """Down crossings, other tiers, and do-not-contact leads send nothing."""
    alerter = make_alerter(do_not_contact={"blocked"})

    alerter(make_lead(**changes))

    assert alerter.flush(5) == 0
    expected: tuple[list[Any], dict[str, int]] = (
        [],
        {"sent": 0, "failed": 0, "skipped": 1, "duplicates": 0},
    )
    assert expected == (receiver.requests, alerter.stats())


def test_alert_tiers_are_configurable(receiver: Receiver, make_alerter: MakeAlerter) -> None:
    """With tiers=("warm",), a warm crossing alerts and a burning one does not."""
    alerter = make_alerter(tiers=("warm",))

    alerter(make_lead(tier="warm", message_id="warm"))
    alerter(make_lead(tier="burning", message_id="burning"))

    assert alerter.flush(5) == 0
    expected = (["warm"], 1)
    assert expected == (
        [request.headers["x-pqlsdk-message-id"] for request in receiver.requests],
        alerter.stats()["skipped"],
    )


def test_the_same_crossing_twice_alerts_once(receiver: Receiver, make_alerter: MakeAlerter) -> None:
    """A re-delivered crossing (same message_id) is counted as a duplicate, not re-sent."""
    alerter = make_alerter()
    lead = make_lead()

    alerter(lead)
    alerter(dict(lead))

    assert alerter.flush(5) == 0
    expected = (1, {"sent": 1, "failed": 0, "skipped": 0, "duplicates": 1})
    assert expected == (len(receiver.requests), alerter.stats())


def test_remembered_ids_are_bounded(
    receiver: Receiver, make_alerter: MakeAlerter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the most recent ids are kept: the oldest is forgotten, the newer still known."""
    monkeypatch.setattr(_alerts, "_REMEMBERED", 2)
    alerter = make_alerter()

    for message_id in ["m1", "m2", "m3", "m1", "m3"]:
        alerter(make_lead(message_id=message_id))

    assert alerter.flush(5) == 0
    expected = (["m1", "m2", "m3", "m1"], 1)
    assert expected == (
        [request.headers["x-pqlsdk-message-id"] for request in receiver.requests],
        alerter.stats()["duplicates"],
    )


def test_a_lead_without_message_id_is_not_deduplicated(
    receiver: Receiver, make_alerter: MakeAlerter
) -> None:
    """Without an id there is nothing to recognise a repeat by: each call alerts."""
    alerter = make_alerter()
    lead = make_lead()
    del lead["message_id"]

    alerter(lead)
    alerter(lead)

    assert alerter.flush(5) == 0
    expected = (2, False)
    assert expected == (
        len(receiver.requests),
        any("x-pqlsdk-message-id" in request.headers for request in receiver.requests),
    )


@pytest.mark.parametrize(
    "lead",
    [None, make_lead(score=object())],
    ids=["not-a-mapping", "not-json"],
)
def test_a_lead_that_cannot_be_read_is_counted_and_never_raises(
    receiver: Receiver,
    make_alerter: MakeAlerter,
    caplog: pytest.LogCaptureFixture,
    lead: Any,
) -> None:
    """The collector's request must never fail because of an alert."""
    alerter = make_alerter(JSONWebhook(receiver.url()))

    alerter(lead)

    expected = ({"sent": 0, "failed": 1, "skipped": 0, "duplicates": 0}, True)
    assert expected == (
        alerter.stats(),
        "could not be read or encoded" in caplog.text,
    )


# --- delivery ----------------------------------------------------------------------


def test_a_server_error_is_retried_and_delivered_once(
    receiver: Receiver, make_alerter: MakeAlerter
) -> None:
    """A 500 then a 200: two requests, one delivered message, nothing failed."""
    receiver.fail(500)
    alerter = make_alerter(retry=RetryPolicy(base=0.05, cap=0.1, budget=5))

    alerter(make_lead())

    assert alerter.flush(5) == 0
    expected = ([500, 200], {"sent": 1, "failed": 0, "skipped": 0, "duplicates": 0})
    assert expected == ([request.status for request in receiver.requests], alerter.stats())


def test_retry_after_is_honoured(receiver: Receiver, make_alerter: MakeAlerter) -> None:
    """After a 429 with Retry-After: 0.3, the retry comes no sooner than 0.3 s later."""
    receiver.fail(429, retry_after="0.3")
    alerter = make_alerter(retry=RetryPolicy(base=0.01, cap=0.01, budget=5))

    alerter(make_lead())

    assert alerter.flush(5) == 0
    first, second = receiver.requests
    assert second.at - first.at >= 0.3
    assert alerter.stats()["sent"] == 1


def test_a_receiver_that_stays_down_is_given_up_on_after_the_budget(
    receiver: Receiver, make_alerter: MakeAlerter, caplog: pytest.LogCaptureFixture
) -> None:
    """503s until the budget ends: counted failed, logged with the host and no lead data."""
    receiver.fail(503, times=1_000)
    alerter = make_alerter(retry=RetryPolicy(base=0.02, cap=0.05, budget=0.4))
    started = time.monotonic()

    alerter(make_lead())

    assert alerter.flush(5) == 0
    took = time.monotonic() - started
    host = receiver.url("").removeprefix("http://")
    [record] = [r for r in caplog.records if r.name == "pqlsdk" and "gave up" in r.message]
    expected = ({"sent": 0, "failed": 1, "skipped": 0, "duplicates": 0}, True, True, False)
    assert expected == (
        alerter.stats(),
        0.3 < took < 4.5,  # the 0.4 s budget, not at once; the upper bound leaves room for load
        f"gave up on an alert to {host} after" in record.message
        and "(last: HTTP 503)" in record.message,
        "u_42" in caplog.text,
    )
    assert len(receiver.requests) >= 2


def test_connection_errors_are_retried_then_given_up(
    make_alerter: MakeAlerter, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens on the port: connection refused, retried until the budget ends."""
    alerter = make_alerter(
        SlackWebhook(f"http://127.0.0.1:{free_port()}/hook"),
        retry=RetryPolicy(base=0.02, cap=0.05, budget=0.2),
    )

    alerter(make_lead())

    assert alerter.flush(5) == 0
    expected = ({"sent": 0, "failed": 1, "skipped": 0, "duplicates": 0}, True)
    assert expected == (alerter.stats(), "(last: ConnectError)" in caplog.text)


def test_a_refusal_is_not_retried(
    receiver: Receiver, make_alerter: MakeAlerter, caplog: pytest.LogCaptureFixture
) -> None:
    """A 404 (say, a deleted Slack webhook) is final: one request, counted failed."""
    receiver.fail(404)
    alerter = make_alerter()

    alerter(make_lead())

    assert alerter.flush(5) == 0
    expected = (1, 1, True)
    assert expected == (
        len(receiver.requests),
        alerter.stats()["failed"],
        "refused an alert with HTTP 404" in caplog.text,
    )


def test_an_injected_client_that_raises_does_not_stop_delivery(
    make_alerter: MakeAlerter, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception fails that message only; the next one is sent, by that client."""
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["x-pqlsdk-message-id"])
        if len(calls) == 1:
            raise RuntimeError("bug in a custom transport")
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(handle)) as client:
        alerter = make_alerter(SlackWebhook("https://hooks.example.com/x"), client=client)

        alerter(make_lead(message_id="first"))
        alerter(make_lead(message_id="second"))
        assert alerter.flush(5) == 0
        alerter.close(1)

        expected = (["first", "second"], 1, 1, True, False)
        assert expected == (
            calls,
            alerter.stats()["failed"],
            alerter.stats()["sent"],
            "the HTTP client raised RuntimeError for hooks.example.com" in caplog.text,
            client.is_closed,  # an injected client is its owner's to close
        )


def test_flush_from_the_sender_thread_returns_at_once(make_alerter: MakeAlerter) -> None:
    """A hook running in the sender thread that flushes would otherwise wait on itself."""
    seen: list[tuple[int, float]] = []
    alerter: Alerter | None = None

    def handle(request: httpx.Request) -> httpx.Response:
        assert alerter is not None
        started = time.monotonic()
        seen.append((alerter.flush(5), time.monotonic() - started))
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(handle)) as client:
        alerter = make_alerter(SlackWebhook("https://hooks.example.com/x"), client=client)
        alerter(make_lead())
        assert alerter.flush(5) == 0

    [(pending, took)] = seen
    expected = (1, True)
    assert expected == (pending, took < 0.5)


def test_close_from_the_sender_thread_does_not_join_itself(make_alerter: MakeAlerter) -> None:
    """close() in a hook on the sender thread stops it after the current send."""
    alerter: Alerter | None = None

    def handle(request: httpx.Request) -> httpx.Response:
        assert alerter is not None
        alerter.close(5)
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(handle)) as client:
        alerter = make_alerter(SlackWebhook("https://hooks.example.com/x"), client=client)
        started = time.monotonic()
        alerter(make_lead())
        join_alert_threads()

    expected = (1, True)
    assert expected == (alerter.stats()["sent"], time.monotonic() - started < 1)


def test_flush_and_close_return_within_their_timeout_when_the_receiver_hangs(
    receiver: Receiver, make_alerter: MakeAlerter
) -> None:
    """A hung receiver holds one message in flight and one queued; neither call waits longer."""
    receiver.hang()
    alerter = make_alerter(timeout=10.0)
    alerter(make_lead())
    receiver.wait_for(1)
    alerter(make_lead())

    started = time.monotonic()
    flushed = alerter.flush(0.3)
    flush_took = time.monotonic() - started
    started = time.monotonic()
    closed = alerter.close(0.3)
    close_took = time.monotonic() - started

    expected = (2, True, 2, True, 1)
    assert expected == (
        flushed,
        0.3 <= flush_took < 1.0,
        closed,
        close_took < 1.0,
        alerter.stats()["failed"],  # the queued one; the one in flight may still arrive
    )


def test_a_message_failing_while_closing_is_not_retried(
    receiver: Receiver, make_alerter: MakeAlerter
) -> None:
    """The send in flight at close() answers 500: counted failed, no retry, thread ends."""
    receiver.hang(status=500)
    alerter = make_alerter()
    alerter(make_lead())
    receiver.wait_for(1)

    assert alerter.close(0.05) == 1
    receiver.release()
    join_alert_threads()

    expected = (1, {"sent": 0, "failed": 1, "skipped": 0, "duplicates": 0})
    assert expected == (len(receiver.requests), alerter.stats())


def test_a_closed_alerter_counts_new_crossings_as_failed(
    receiver: Receiver, make_alerter: MakeAlerter, caplog: pytest.LogCaptureFixture
) -> None:
    """After close(), crossings are not queued: nothing is sent, and the loss is visible."""
    alerter = make_alerter(SlackWebhook(receiver.url()), JSONWebhook(receiver.url()))
    assert alerter.close(1) == 0

    alerter(make_lead())

    expected: tuple[list[Any], int, bool, int] = ([], 2, True, 0)
    assert expected == (
        receiver.requests,
        alerter.stats()["failed"],
        "the alerter is closed" in caplog.text,
        alerter.flush(1),
    )


def test_a_full_queue_drops_new_alerts_and_counts_them(
    receiver: Receiver, make_alerter: MakeAlerter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory stays bounded while a receiver is stuck: over the cap, alerts are dropped."""
    monkeypatch.setattr(_alerts, "_MAX_PENDING", 1)
    receiver.hang()
    alerter = make_alerter()
    alerter(make_lead(message_id="kept"))
    receiver.wait_for(1)

    alerter(make_lead(message_id="dropped"))
    receiver.release()

    assert alerter.flush(5) == 0
    expected = (["kept"], {"sent": 1, "failed": 1, "skipped": 0, "duplicates": 0})
    assert expected == (
        [request.headers["x-pqlsdk-message-id"] for request in receiver.requests],
        alerter.stats(),
    )


# --- process lifecycle -----------------------------------------------------------------


def test_a_forked_child_does_not_resend_what_the_parent_queued(
    receiver: Receiver, make_alerter: MakeAlerter
) -> None:
    """After fork the child starts empty: the parent's queued alert is the parent's to send."""
    receiver.hang()
    alerter = make_alerter()
    alerter(make_lead(message_id="in-flight"))
    receiver.wait_for(1)
    alerter(make_lead(message_id="queued"))

    alerter.after_fork()
    alerter(make_lead(message_id="queued"))  # already alerted by the parent
    alerter(make_lead(message_id="child"))
    assert alerter.flush(5) == 0
    child_stats = alerter.stats()
    alerter.close(1)
    receiver.release()
    join_alert_threads()  # the parent's thread ends after its send in flight

    expected = (
        ["in-flight", "child"],
        {"sent": 1, "failed": 0, "skipped": 0, "duplicates": 1},
    )
    assert expected == (
        [request.headers["x-pqlsdk-message-id"] for request in receiver.requests],
        child_stats,
    )


def test_at_exit_drains_what_is_queued(receiver: Receiver, make_alerter: MakeAlerter) -> None:
    """The exit hook waits for a message still being retried, then closes the alerter."""
    receiver.fail(500)
    alerter = make_alerter(retry=RetryPolicy(base=0.1, cap=0.1, budget=5))
    alerter(make_lead())

    alerter.at_exit()
    alerter.at_exit()  # once closed, nothing more to do

    expected = ([500, 200], {"sent": 1, "failed": 0, "skipped": 0, "duplicates": 0})
    assert expected == ([request.status for request in receiver.requests], alerter.stats())


def test_an_alerter_is_registered_for_fork_and_exit_until_closed(
    make_alerter: MakeAlerter,
) -> None:
    """Constructing watches the alerter in the drain phase; close() forgets it."""
    alerter = make_alerter()
    registered = (alerter in _lifecycle._forkable, alerter in _lifecycle._phases[_lifecycle.DRAIN])

    alerter.close(1)

    forgotten = (alerter in _lifecycle._forkable, alerter in _lifecycle._phases[_lifecycle.DRAIN])
    expected = ((True, True), (False, False))
    assert expected == (registered, forgotten)


# --- configuration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (b"https://hooks.slack.com/x", "must be a URL string"),
        ("ftp://hooks.example.com/x", "must be an http:// or https:// URL"),
        ("hooks.example.com/x", "must be an http:// or https:// URL"),
        ("https:///x", "has no host"),
        ("https://hooks.example.com:99999/x", "is not a valid URL"),
        ("https://[::1/x", "is not a valid URL"),
    ],
)
def test_webhook_urls_are_checked(url: Any, message: str) -> None:
    """Only http(s) URLs with a host and a valid port are accepted."""
    with pytest.raises(ConfigError, match=message):
        SlackWebhook(url)
    with pytest.raises(ConfigError, match=message):
        JSONWebhook(url)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([("Authorization", "x")], "must be a mapping"),
        ({"Authorization": 1}, "must be strings"),
        ({"": "x"}, "must be strings"),
        ({"X-Token": "a\r\nX-Evil: 1"}, "contains a line break"),
    ],
)
def test_json_webhook_headers_are_checked(headers: Any, message: str) -> None:
    """Headers must be a mapping of strings without line breaks."""
    with pytest.raises(ConfigError, match=message):
        JSONWebhook("https://hooks.example.com/x", headers=headers)


def test_webhook_reprs_hide_credentials() -> None:
    """Webhook URLs and header values are secrets; a repr shows the host and header names."""
    slack = SlackWebhook("https://hooks.slack.com/services/T0/B0/s3cret")
    generic = JSONWebhook("https://user:pw@crm.example.com:8443/in?key=s3cret", headers={"A": "b"})

    expected = (
        "SlackWebhook(url='https://hooks.slack.com/…')",
        "JSONWebhook(url='https://crm.example.com:8443/…', headers={'A': '…'})",
    )
    assert expected == (repr(slack), repr(generic))


def test_json_webhook_headers_are_a_read_only_copy() -> None:
    """Changing the dict passed in does not change the webhook."""
    headers = {"Authorization": "Bearer a"}
    webhook = JSONWebhook("https://hooks.example.com/x", headers=headers)

    headers["Authorization"] = "Bearer b"

    assert dict(webhook.headers) == {"Authorization": "Bearer a"}
    with pytest.raises(TypeError):
        webhook.headers["Authorization"] = "c"  # type: ignore[index]


SLACK = SlackWebhook("https://hooks.example.com/x")


@pytest.mark.parametrize(
    ("webhooks", "options", "message"),
    [
        ([], {}, "at least one webhook"),
        (["https://hooks.example.com/x"], {}, "must be SlackWebhook or JSONWebhook"),
        ([SLACK], {"feed_url": "app.example.com/pql"}, "feed_url must be an http"),
        ([SLACK], {"tiers": "hot"}, "tiers must be a collection of strings"),
        ([SLACK], {"tiers": ()}, "tiers is empty"),
        ([SLACK], {"tiers": (1,)}, "tiers must contain only strings"),
        ([SLACK], {"do_not_contact": "u_1"}, "do_not_contact must be a collection"),
        ([SLACK], {"do_not_contact": iter(["u_1"])}, "do_not_contact must be a collection"),
        ([SLACK], {"retry": 3}, "retry must be a RetryPolicy"),
        ([SLACK], {"client": object()}, "client must be an httpx.Client"),
        ([SLACK], {"timeout": 0}, "timeout must be a positive number"),
        ([SLACK], {"timeout": float("inf")}, "timeout must be a positive number"),
        ([SLACK], {"timeout": "10"}, "timeout must be a positive number"),
    ],
)
def test_alerter_options_are_checked(
    webhooks: list[Any], options: dict[str, Any], message: str
) -> None:
    """Setup mistakes raise ConfigError at construction, not silence at run time."""
    with pytest.raises(ConfigError, match=message):
        Alerter(webhooks, **options)


def test_an_unused_alerter_closes_at_once() -> None:
    """No alert, no thread: close() has nothing to wait for."""
    alerter = Alerter([SLACK])

    started = time.monotonic()
    pending = alerter.close(5)

    expected: tuple[int, bool, list[threading.Thread]] = (0, True, [])
    assert expected == (pending, time.monotonic() - started < 0.1, alert_threads())
