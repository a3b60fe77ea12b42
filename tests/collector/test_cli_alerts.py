"""``pqlsdk collector`` with webhooks and a feed key: alerts leave, the feed answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from pqlsdk.cli import main
from tests.collector_alerts.receiver import Receiver

from .conftest import Served, crossing
from .test_feed_routes import send


def test_the_collector_command_alerts_webhooks_and_serves_the_feed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A crossing into burning reaches the JSON webhook once; the feed needs its key."""
    seen: dict[str, Any] = {}

    def run(app: Any, **options: Any) -> None:
        # uvicorn.run would serve until Ctrl-C: serve for real in a thread, then stop.
        served = Served(app)
        served.start()
        try:
            send(served, crossing("ada", "burning", score=120, route="account_executive"))
            seen["feed"] = httpx.get(served.url + "/api/leads", auth=("fk", "")).json()
        finally:
            served.stop()

    monkeypatch.setattr(uvicorn, "run", run)
    with Receiver() as receiver:
        args = [
            "collector",
            "--storage",
            str(tmp_path / "c.db"),
            "--write-key",
            "wk-test",
            "--feed-key",
            "fk",
            "--webhook",
            receiver.url(),
            "--feed-url",
            "http://feed.example",
        ]
        assert main(args) == 0  # closing the alerter delivers what is queued
        alerts = receiver.accepted()
    assert [lead["subject_id"] for lead in seen["feed"]["leads"]] == ["ada"]
    assert len(alerts) == 1
    assert (alerts[0]["type"], alerts[0]["lead"]["subject_id"], alerts[0]["feed_url"]) == (
        "pqlsdk.tier_crossed",
        "ada",
        "http://feed.example",
    )


def test_without_webhooks_the_collector_sends_no_alerts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No --webhook and no --slack-webhook: no alerter is built."""
    apps: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: apps.append(app))
    monkeypatch.setenv("PQLSDK_FEED_KEYS", "fk1,fk2")
    assert main(["collector", "--storage", str(tmp_path / "c.db"), "--write-key", "k"]) == 0
    assert len(apps) == 1
    apps[0].state.storage.close()
