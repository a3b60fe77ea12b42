"""The collector over HTTP: a real uvicorn server, pqlsdk's transport and raw httpx."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

import pqlsdk.collector
from pqlsdk import BatchRejectedError, ConfigError, messages
from pqlsdk.cli import main
from pqlsdk.collector import create_app
from pqlsdk.transports import Batch, HTTPTransport

from .conftest import OTHER_KEY, T0, WRITE_KEY, Serve, Served, block, crossing, track

LIMIT = 512 * 1024


def body_of(*items: Any) -> bytes:
    """A batch body holding ``items`` (messages are encoded as the SDK does)."""
    encoded = [
        json.loads(messages.encode(item)) if isinstance(item, messages.Track) else item
        for item in items
    ]
    return json.dumps({"batch": encoded, "sentAt": "2026-03-15T12:00:00Z"}).encode()


def post(
    collector: Served,
    content: Any,
    *,
    key: str | None = WRITE_KEY,
    headers: dict[str, str] | None = None,
    path: str = "/v1/batch",
) -> httpx.Response:
    """POST ``content`` to the collector with ``key`` as the Basic username."""
    auth = httpx.USE_CLIENT_DEFAULT if key is None else httpx.BasicAuth(key, "")
    with httpx.Client(base_url=collector.url, timeout=10) as client:
        return client.post(path, content=content, auth=auth, headers=headers)


@pytest.fixture
def http(collector: Served) -> Iterator[HTTPTransport]:
    """pqlsdk's own HTTP transport, pointed at the collector."""
    transport = HTTPTransport(collector.url, WRITE_KEY)
    yield transport
    transport.close()


def sdk_batch(*items: messages.Track) -> Batch:
    """A transport batch of ``items``, encoded as the SDK's batcher encodes them."""
    return Batch(id="b1", messages=tuple(map(messages.encode, items)), sent_at=T0)


def test_sdk_transport_batch_sent_twice_is_stored_once(
    collector: Served, http: HTTPTransport
) -> None:
    """A retried batch (same messageIds) is stored once; the retry is still a success."""
    batch = sdk_batch(*(track(f"u{n}") for n in range(5)))
    http.send(batch)
    http.send(batch)
    assert collector.storage.count() == 5


def test_duplicates_are_reported_as_accepted(collector: Served) -> None:
    """The answer to a retry counts its messages as accepted, with nothing rejected."""
    body = body_of(track("a"), track("b"))
    assert post(collector, body).json() == {"accepted": 2, "rejected": []}
    second = post(collector, body)
    assert (second.status_code, second.json()) == (200, {"accepted": 2, "rejected": []})
    assert collector.storage.count() == 2


def test_any_configured_write_key_is_accepted(collector: Served) -> None:
    """Several write keys may be configured; each one authenticates."""
    assert post(collector, body_of(track("a")), key=OTHER_KEY).status_code == 200
    assert post(collector, body_of(track("b")), key=WRITE_KEY).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + "d3Jvbmc6",  # wrong:
        "Bearer wk-test",
        "Basic not*base64",
        "Basic",
    ],
    ids=["missing", "wrong-key", "not-basic", "bad-base64", "empty"],
)
def test_bad_or_missing_key_is_401(collector: Served, authorization: str | None) -> None:
    """Without a configured key as the Basic username the batch is refused and not stored."""
    headers = {} if authorization is None else {"Authorization": authorization}
    response = post(collector, body_of(track()), key=None, headers=headers)
    assert (
        response.status_code,
        response.headers["WWW-Authenticate"],
    ) == (401, 'Basic realm="pqlsdk collector"')
    assert collector.storage.count() == 0


def test_sdk_transport_with_a_wrong_key_is_rejected(collector: Served) -> None:
    """pqlsdk's transport sees the 401 as a batch the collector refuses."""
    transport = HTTPTransport(collector.url, "not-a-key")
    with pytest.raises(BatchRejectedError) as caught:
        transport.send(sdk_batch(track()))
    transport.close()
    assert caught.value.status == 401


def test_oversized_plain_body_is_413(collector: Served) -> None:
    """A body over 512 KiB is refused by its declared length, unread."""
    body = body_of(track(), {"padding": "x" * LIMIT})
    response = post(collector, body)
    assert (response.status_code, collector.storage.count()) == (413, 0)


def test_oversized_streamed_body_is_413(collector: Served) -> None:
    """Without Content-Length (chunked), the bytes are counted as they arrive."""
    chunks = [b'{"batch": [', *([b'"' + b"x" * 65536 + b'",'] * 10), b"1]}"]
    response = post(collector, iter(chunks))
    assert response.status_code == 413


def test_oversized_gzip_body_is_413(collector: Served) -> None:
    """The compressed size is bounded too: random data does not shrink under gzip."""
    body = gzip.compress(body_of(track(), {"p": os.urandom(LIMIT).hex()}))
    assert len(body) > LIMIT
    response = post(collector, body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413


def test_gzip_bomb_is_413(collector: Served) -> None:
    """A small body that inflates far past the limit is refused after inflating the limit."""
    bomb = gzip.compress(b'{"batch": ["' + b"0" * (64 * 1024 * 1024) + b'"]}')
    assert len(bomb) < 100 * 1024
    response = post(collector, bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413


def test_gzip_bodies_are_accepted_in_one_or_more_members(collector: Served) -> None:
    """gzip bodies are inflated, including concatenated members (as ``gzip.decompress``)."""
    whole = body_of(track("a"), track("b"))
    members = gzip.compress(whole[:20]) + gzip.compress(whole[20:])
    response = post(collector, members, headers={"Content-Encoding": "gzip"})
    assert (response.status_code, response.json()["accepted"]) == (200, 2)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not gzip at all", "the body is not valid gzip"),
        (gzip.compress(b'{"batch": []}')[:-6], "the gzip body is truncated"),
    ],
    ids=["not-gzip", "truncated"],
)
def test_broken_gzip_is_400(collector: Served, body: bytes, error: str) -> None:
    """A body that claims gzip but is not complete gzip is a bad request."""
    response = post(collector, body, headers={"Content-Encoding": "gzip"})
    assert (response.status_code, response.json()["error"].startswith(error)) == (400, True)


def test_unknown_content_encoding_is_415(collector: Served) -> None:
    """Only gzip and identity bodies are read."""
    response = post(collector, body_of(track()), headers={"Content-Encoding": "br"})
    assert response.status_code == 415


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "the body is not JSON"),
        (b"[]", "the body is not a batch"),
        (b'{"messages": []}', "the body is not a batch"),
        (b'{"batch": {"type": "track"}}', "the body is not a batch"),
    ],
    ids=["not-json", "a-list", "no-batch", "batch-not-a-list"],
)
def test_not_a_batch_is_400(collector: Served, body: bytes, error: str) -> None:
    """A body that is not ``{"batch": [...]}`` is a bad request, with the reason."""
    response = post(collector, body)
    assert (response.status_code, response.json()["error"].startswith(error)) == (400, True)


def test_malformed_messages_are_rejected_by_field_and_the_rest_stored(
    collector: Served,
) -> None:
    """Each invalid message is listed with pqlsdk's reason naming the field; valid ones stay."""
    good = track("good")
    no_event = {"type": "track", "userId": "u", "timestamp": "2026-03-15T12:00:00Z"}
    no_user = {
        "type": "track",
        "event": "x",
        "timestamp": "2026-03-15T12:00:00Z",
        "messageId": "m-no-user",
    }
    naive = {**no_event, "event": "x", "timestamp": "2026-03-15T12:00:00"}
    bad_crossing = json.loads(messages.encode(crossing("lead", "hot")))
    bad_crossing["properties"]["tier"] = 3
    numeric_id = {**no_event, "event": "x", "messageId": 7}
    response = post(collector, body_of(no_event, good, no_user, naive, bad_crossing, numeric_id, 5))
    assert response.status_code == 200
    assert response.json() == {
        "accepted": 1,
        "rejected": [
            {
                "index": 0,
                "messageId": None,
                "error": "not a valid message: Object missing required field `event`",
            },
            {
                "index": 2,
                "messageId": "m-no-user",
                "error": "track message needs a userId or an anonymousId",
            },
            {
                "index": 3,
                "messageId": None,
                "error": "track timestamp 2026-03-15T12:00:00 has no timezone; "
                "pass an aware datetime such as datetime.now(timezone.utc)",
            },
            {
                "index": 4,
                "messageId": bad_crossing["messageId"],
                "error": "pqlsdk_tier_changed message: Expected `str`, got `int` "
                "- at `properties.tier`",
            },
            {
                "index": 5,
                "messageId": None,
                "error": "not a valid message: Expected `str`, got `int` - at `$.messageId`",
            },
            {
                "index": 6,
                "messageId": None,
                "error": "not a valid message: Expected `object`, got `int`",
            },
        ],
    }
    assert collector.storage.count() == 1


def test_nul_characters_are_rejected_by_field(collector: Served) -> None:
    """Text PostgreSQL cannot hold is refused the same way on every backend."""
    response = post(collector, body_of(track("a\x00b")))
    assert response.json()["rejected"][0]["error"] == "track userId contains a NUL character"


def test_health_reports_storage_without_auth_or_data(collector: Served) -> None:
    """``GET /health`` needs no key and says only that storage answers, and which."""
    with httpx.Client(base_url=collector.url) as client:
        response = client.get("/health")
    assert (200, {"status": "ok", "storage": collector.storage.kind}) == (
        response.status_code,
        response.json(),
    )


def test_storage_failure_is_503_for_batches_and_health(collector: Served) -> None:
    """When storage fails, batches get 503 with Retry-After (senders retry) and health says so."""
    collector.storage.close()
    response = post(collector, body_of(track()))
    assert (response.status_code, response.headers["Retry-After"]) == (503, "5")
    with httpx.Client(base_url=collector.url) as client:
        health = client.get("/health")
    assert (health.status_code, health.json()["status"]) == (503, "unavailable")


def test_wrong_method_and_path(collector: Served) -> None:
    """Batches are POSTed; nothing else is served."""
    with httpx.Client(base_url=collector.url) as client:
        assert client.get("/v1/batch").status_code == 405
        assert client.post("/v1/track").status_code == 404


def test_on_crossing_is_called_once_per_new_latest_crossing(
    collector: Served, crossings: list[dict[str, Any]]
) -> None:
    """Only new crossings that became their key's lead are reported, once each."""
    newest_a = crossing("a", "burning", minutes=20, score=90)
    first = body_of(crossing("a", "hot", minutes=10), newest_a, crossing("b", "warm"), track())
    assert post(collector, first).json()["accepted"] == 4
    assert [(c["subject_id"], c["tier"]) for c in crossings] == [("a", "burning"), ("b", "warm")]
    assert crossings[0] == {
        "subject": "user",
        "subject_id": "a",
        "model": "pql",
        "previous_tier": "warm",
        "tier": "burning",
        "direction": "up",
        "score": 90.0,
        "route": "sales_development",
        "reasons": [{"signal": "checkout", "label": "Started checkout", "points": 40}],
        "top_features": ["reports"],
        "team_size": 3,
        "moments_seen": ["upgrade_widget"],
        "crossed_at": "2026-03-15T12:20:00Z",
        "user_id": "a",
        "message_id": newest_a.message_id,
        "multiplier": 1.0,
        "members": [],
        "moment_titles": [],
        "contacted_by": None,
        "contacted_at": None,
    }
    post(collector, first)  # a retry: all duplicates
    post(collector, body_of(crossing("a", "cold", minutes=5)))  # older than the lead
    assert len(crossings) == 2
    post(collector, body_of(crossing("a", "hot", minutes=30)))
    assert [(c["subject_id"], c["tier"]) for c in crossings][2:] == [("a", "hot")]


def test_a_raising_on_crossing_does_not_fail_the_request(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """The batch is stored and answered 200; the hook's failure is logged without lead data."""

    def broken(lead: dict[str, Any]) -> None:
        raise RuntimeError("alerting is down")

    collector = serve(on_crossing=broken)
    lead = crossing("secret-user", "hot")
    with caplog.at_level(logging.INFO, logger="pqlsdk.collector"):
        response = post(collector, body_of(lead))
    assert (response.status_code, response.json()["accepted"]) == (200, 1)
    assert collector.storage.lead("user", "secret-user").message_id == lead.message_id
    assert caplog.messages == [
        f"on_crossing raised RuntimeError for lead message {lead.message_id}"
    ]
    assert "secret-user" not in caplog.text


def test_without_on_crossing_leads_are_still_projected(serve: Serve) -> None:
    """``on_crossing`` is optional; the leads table is kept either way."""
    collector = serve()
    post(collector, body_of(crossing("a", "hot")))
    assert [lead.tier for lead in collector.storage.leads()] == ["hot"]


def test_create_app_checks_its_options(tmp_path: Path) -> None:
    """Missing write keys and a non-positive body limit are setup errors, found at once."""
    url = str(tmp_path / "c.db")
    for keys in ([], "a-key-as-a-str", [""]):
        with pytest.raises(ConfigError, match="write_keys"):
            create_app(url, write_keys=keys)
    with pytest.raises(ConfigError, match="max_body_bytes"):
        create_app(url, write_keys=["k"], max_body_bytes=0)
    assert not (tmp_path / "c.db").exists()


def test_a_sender_that_disconnects_mid_body_gets_nothing_stored(tmp_path: Path) -> None:
    """A client gone before its body ended is answered 400 (to no one); nothing is stored."""
    app = create_app(str(tmp_path / "c.db"), write_keys=[WRITE_KEY])
    sent: list[dict[str, Any]] = []
    incoming = iter(
        [
            {"type": "http.request", "body": b'{"batch": [', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> Any:
        return next(incoming)

    async def send(message: Any) -> None:
        sent.append(message)

    auth = b"Basic " + base64.b64encode(f"{WRITE_KEY}:".encode())
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/batch",
        "headers": [(b"authorization", auth)],
        "query_string": b"",
    }
    asyncio.run(app(scope, receive, send))
    assert (sent[0]["status"], app.state.storage.count()) == (400, 0)
    app.state.storage.close()


def test_importing_the_collector_needs_no_web_stack() -> None:
    """``import pqlsdk`` skips the collector, and the collector loads Starlette on demand."""
    code = (
        "import sys\n"
        "import pqlsdk, pqlsdk.cli\n"
        "assert 'pqlsdk.collector' not in sys.modules\n"
        "import pqlsdk.collector\n"
        "print(sorted({'starlette', 'uvicorn', 'psycopg'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_missing_collector_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Starlette, ``create_app`` says which extra to install."""
    block(monkeypatch, "starlette")
    monkeypatch.delitem(sys.modules, "pqlsdk.collector._app")
    with pytest.raises(ImportError, match=r"pip install 'pqlsdk\[collector\]'"):
        pqlsdk.collector.create_app  # noqa: B018 - the lookup is what loads the app
    with pytest.raises(AttributeError, match="no_such_name"):
        pqlsdk.collector.no_such_name  # noqa: B018


# The command line -----------------------------------------------------------


def test_cli_refuses_to_start_without_a_write_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """No --write-key and no PQLSDK_WRITE_KEYS: a one-line error, exit 2, nothing created."""
    monkeypatch.setenv("PQLSDK_WRITE_KEYS", " , ")
    storage = tmp_path / "c.db"
    assert main(["collector", "--storage", str(storage)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pqlsdk: error: the collector needs at least one write key")
    assert "--write-key" in err
    assert not storage.exists()


def serve_instead(monkeypatch: pytest.MonkeyPatch, keys: tuple[str, ...]) -> dict[str, Any]:
    """Replace ``uvicorn.run`` with a real server in a thread that answers one batch per key.

    The returned dict fills with the options the CLI passed and the status per key.
    """
    seen: dict[str, Any] = {}

    def run(app: Any, **options: Any) -> None:
        seen.update(options)
        served = Served(app)
        served.start()
        try:
            for key in keys:
                seen[key] = post(served, body_of(track()), key=key).status_code
        finally:
            served.stop()

    monkeypatch.setattr(uvicorn, "run", run)
    return seen


def test_cli_serves_with_keys_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """PQLSDK_WRITE_KEYS (comma-separated) configures the app that uvicorn runs."""
    seen = serve_instead(monkeypatch, ("k1", "k2", "k3"))
    monkeypatch.setenv("PQLSDK_WRITE_KEYS", "k1, k2")
    storage = tmp_path / "c.db"
    assert main(["collector", "--storage", str(storage), "--port", "9999"]) == 0
    assert seen == {"host": "127.0.0.1", "port": 9999, "k1": 200, "k2": 200, "k3": 401}
    assert storage.exists()


def test_cli_write_key_options_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--write-key, repeatable, replaces PQLSDK_WRITE_KEYS."""
    seen = serve_instead(monkeypatch, ("a", "b", "from-env"))
    monkeypatch.setenv("PQLSDK_WRITE_KEYS", "from-env")
    args = ["collector", "--storage", str(tmp_path / "c.db"), "--write-key", "a"]
    assert main([*args, "--write-key", "b", "--host", "localhost"]) == 0
    assert (seen["host"], seen["a"], seen["b"], seen["from-env"]) == ("localhost", 200, 200, 401)


def test_cli_names_the_missing_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Without uvicorn installed, the command says which extra to install."""
    monkeypatch.chdir(tmp_path)
    block(monkeypatch, "uvicorn")
    assert main(["collector", "--write-key", "k"]) == 2
    assert "pip install 'pqlsdk[collector]'" in capsys.readouterr().err


def test_the_public_surface_is_exactly_all() -> None:
    """``__all__`` is sorted, and every name in it resolves (``create_app`` included)."""
    names = pqlsdk.collector.__all__
    assert names == sorted(names)
    assert all(getattr(pqlsdk.collector, name) is not None for name in names)
    public = {name for name in vars(pqlsdk.collector) if not name.startswith("_")}
    assert public - {"annotations", "TYPE_CHECKING", "Any", "load"} <= set(names)
