from datetime import timedelta

import pytest

import pqlsdk
from pqlsdk.testing import FixedClock, RecordingTransport


@pytest.fixture
def clock():
    return FixedClock("2026-03-15T12:00:00Z")


@pytest.fixture
def transport():
    return RecordingTransport()


@pytest.fixture
def client(clock, transport):
    # strict=True: faults raise, and every call applies before it returns.
    with pqlsdk.Client(
        store="memory://", clock=clock, strict=True, rules="playbook.toml", transport=transport
    ) as client:
        yield client


def test_signup_is_sent_to_the_collector(client, transport):
    client.track("u1", "signed_up")
    client.flush()
    assert [m["event"] for m in transport.messages] == ["signed_up"]


def test_the_trial_notice_shows_in_the_last_three_days(client, clock):
    client.identify("u1", {"plan": "trial", "trial_ends_at": "2026-03-20T12:00:00Z"})
    assert client.decide("u1") is None  # five days left
    clock.advance(timedelta(days=3))
    assert client.decide("u1").title == "Your trial ends in 2 days"


def test_a_bad_event_raises_in_strict_mode(client):
    with pytest.raises(pqlsdk.NotJSONError):
        client.track("u1", "signed_up", {"at": object()})
