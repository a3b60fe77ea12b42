"""HTTPTransport and AsyncHTTPTransport against a real collector on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

import pqlsdk.transports
from pqlsdk._exceptions import (
    BatchRejectedError,
    ConfigError,
    DeliveryError,
    RetryableDeliveryError,
)
from pqlsdk._version import __version__
from pqlsdk.transports import AsyncHTTPTransport, AsyncTransport, Batch, HTTPTransport, Transport

from .collector import Collector
from .conftest import MakeBatch


@pytest.fixture
def transport(collector: Collector) -> Iterator[HTTPTransport]:
    """A transport that delivers to the test collector with its write key."""
    opened = HTTPTransport(collector.url, collector.write_key)
    yield opened
    opened.close()


def send_failing(transport: HTTPTransport, batch: Batch) -> DeliveryError:
    """Send ``batch`` once, expecting a delivery error, and return it."""
    with pytest.raises(DeliveryError) as caught:
        transport.send(batch)
    return caught.value


@contextlib.contextmanager
def httpx_garbage() -> Iterator[list[str]]:
    """Collect the httpx objects the block leaves for a pass of the garbage collector.

    The list yielded is filled at the block's end with their modules. The
    collector is kept from running on its own meanwhile, so every unreachable
    object of the block is seen; other threads' garbage (the test
    collector's) is left out by module.
    """
    found: list[str] = []
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        modules = [type(item).__module__ for item in gc.garbage]
        found.extend(module for module in modules if module.startswith(("httpx", "httpcore")))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()


def retry_after_for(
    collector: Collector, transport: HTTPTransport, batch: Batch, header: str
) -> float | None:
    """The ``retry_after`` a 429 carrying ``Retry-After: header`` turns into."""
    collector.set_status(429, retry_after=header)
    error = send_failing(transport, batch)
    assert isinstance(error, RetryableDeliveryError)
    return error.retry_after


@pytest.mark.parametrize("gzip", [True, False])
def test_posts_the_segment_batch_intact(
    collector: Collector, make_batch: MakeBatch, gzip: bool
) -> None:
    """The collector receives the batch JSON as built, compressed only when asked."""
    batch = make_batch()
    transport = HTTPTransport(collector.url, collector.write_key, gzip=gzip)
    transport.send(batch)
    transport.close()

    [received] = collector.batches
    expected = (json.loads(batch.body()), "gzip" if gzip else None)
    assert expected == (received.body, received.headers.get("content-encoding"))


def test_a_sent_batch_leaves_no_cycle_for_the_garbage_collector(
    transport: HTTPTransport, make_batch: MakeBatch
) -> None:
    """Each batch's request and response are freed as ``send()`` returns, not by a GC pass.

    httpx binds a response and its stream in a cycle; left to the collector,
    one per batch made its passes frequent and long enough to stall the host.
    """
    transport.send(make_batch())  # the connection is opened: what is left is per batch
    with httpx_garbage() as found:
        transport.send(make_batch())

    expected: list[str] = []
    assert expected == found


def test_endpoint_with_trailing_slash_posts_to_v1_batch(
    collector: Collector, make_batch: MakeBatch
) -> None:
    """``http://host/`` and ``http://host`` reach the same ``/v1/batch``."""
    transport = HTTPTransport(collector.url + "/", collector.write_key)
    transport.send(make_batch())
    transport.close()

    expected = [3]  # one batch, of three messages
    assert expected == [len(received.body["batch"]) for received in collector.batches]


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("https://c.example.com", "HTTPTransport('https://c.example.com/v1/batch')"),
        ("https://c.example.com/", "HTTPTransport('https://c.example.com/v1/batch')"),
        (
            "https://c.example.com:8443/in//",
            "HTTPTransport('https://c.example.com:8443/in/v1/batch')",
        ),
    ],
)
def test_batch_path_joins_under_the_endpoint_path(endpoint: str, expected: str) -> None:
    """The batch URL keeps the endpoint's path prefix, whatever its trailing slashes."""
    transport = HTTPTransport(endpoint, "key")
    actual = repr(transport)
    transport.close()

    assert expected == actual


def test_basic_auth_username_is_the_write_key(
    collector: Collector, transport: HTTPTransport, make_batch: MakeBatch
) -> None:
    """Segment's scheme: Basic auth, write key as the username, empty password."""
    transport.send(make_batch())

    expected = "Basic " + base64.b64encode(f"{collector.write_key}:".encode()).decode()
    assert expected == collector.batches[0].headers["authorization"]


def test_wrong_write_key_is_rejected_with_401(collector: Collector, make_batch: MakeBatch) -> None:
    """A collector that refuses the key gives a BatchRejectedError with status 401."""
    transport = HTTPTransport(collector.url, "not-the-key")
    error = send_failing(transport, make_batch())
    transport.close()

    assert (BatchRejectedError, 401) == (type(error), getattr(error, "status", None))


def test_sends_batch_id_and_user_agent_headers(
    collector: Collector, transport: HTTPTransport, make_batch: MakeBatch
) -> None:
    """Each request names its batch and the SDK version that sent it."""
    transport.send(make_batch(batch_id="b-42"))

    headers = collector.batches[0].headers
    expected = ("b-42", f"pqlsdk/{__version__}", "application/json")
    assert expected == (
        headers["x-pqlsdk-batch-id"],
        headers["user-agent"],
        headers["content-type"],
    )


def test_429_with_retry_after_seconds_is_retryable(
    collector: Collector, transport: HTTPTransport, make_batch: MakeBatch
) -> None:
    """``Retry-After: 2`` on a 429 becomes a retryable error that asks for 2 seconds."""
    collector.set_status(429, retry_after="2")

    error = send_failing(transport, make_batch())

    assert isinstance(error, RetryableDeliveryError)
    expected = (429, 2.0)
    assert expected == (error.status, error.retry_after)


def test_retry_after_http_date_is_seconds_from_now(
    collector: Collector, transport: HTTPTransport, make_batch: MakeBatch
) -> None:
    """An HTTP-date ``Retry-After`` two minutes ahead asks for about 120 seconds."""
    header = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)

    retry_after = retry_after_for(collector, transport, make_batch(), header)

    assert retry_after is not None
    assert 118 <= retry_after <= 120


def test_retry_after_date_in_the_past_means_no_wait(
    collector: Collector, transport: HTTPTransport, make_batch: MakeBatch
) -> None:
    """A date that has passed (here with the ``-0000`` zone) asks for no wait at all."""
    header = "Wed, 21 Oct 2015 07:28:00 -0000"

    expected = 0.0
    assert expected == retry_after_for(collector, transport, make_batch(), header)


@pytest.mark.parametrize("header", ["soon", "-5", "nan", "inf", "Wed, 99 Oct 2015 07:28:00 GMT"])
def test_unusable_retry_after_is_none(
    collector: Collector, transport: HTTPTransport, make_batch: MakeBatch, header: str
) -> None:
    """Garbage, negative or non-finite ``Retry-After`` leaves the wait to the retry policy."""
    assert None is retry_after_for(collector, transport, make_batch(), header)


@pytest.mark.parametrize("status", [408, 500, 502, 503, 599])
def test_408_and_5xx_are_retryable(
    collector: Collector, transport: HTTPTransport, make_batch: MakeBatch, status: int
) -> None:
    """Timeouts and server errors are worth retrying; no Retry-After means None."""
    collector.set_status(status)

    error = send_failing(transport, make_batch())

    assert isinstance(error, RetryableDeliveryError)
    assert (status, None) == (error.status, error.retry_after)


@pytest.mark.parametrize("status", [301, 400, 403, 404, 413])
def test_other_non_2xx_are_rejected(
    collector: Collector, transport: HTTPTransport, make_batch: MakeBatch, status: int
) -> None:
    """Any other non-2xx answer means the batch will never be accepted: drop it."""
    collector.set_status(status)

    error = send_failing(transport, make_batch())

    assert isinstance(error, BatchRejectedError)
    assert status == error.status


def test_status_error_message_names_status_and_host(
    collector: Collector, transport: HTTPTransport, make_batch: MakeBatch
) -> None:
    """The message says who answered what, and nothing else."""
    collector.set_status(503)

    error = send_failing(transport, make_batch())

    host = collector.url.removeprefix("http://")
    assert f"collector {host} answered 503 Service Unavailable" == str(error)


def test_status_error_is_raised_from_the_httpx_error(
    collector: Collector, transport: HTTPTransport, make_batch: MakeBatch
) -> None:
    """The httpx exception stays attached as the cause, for debugging."""
    collector.set_status(400)

    error = send_failing(transport, make_batch())

    assert httpx.HTTPStatusError is type(error.__cause__)


def test_connection_refused_is_retryable(
    collector: Collector, transport: HTTPTransport, make_batch: MakeBatch
) -> None:
    """A collector that is down (port closed) gives a retryable error with no status."""
    collector.stop()

    error = send_failing(transport, make_batch())

    assert isinstance(error, RetryableDeliveryError)
    assert (None, None, httpx.ConnectError) == (
        error.status,
        error.retry_after,
        type(error.__cause__),
    )


def test_collector_back_on_the_same_port_accepts_again(
    collector: Collector, transport: HTTPTransport, make_batch: MakeBatch
) -> None:
    """After an outage the same transport delivers again, over a new connection."""
    transport.send(make_batch(batch_id="before"))
    collector.stop()
    send_failing(transport, make_batch(batch_id="during"))
    collector.start()

    transport.send(make_batch(batch_id="after"))

    ids = [received.headers["x-pqlsdk-batch-id"] for received in collector.batches]
    expected = ["before", "after"]
    assert expected == ids


def test_read_timeout_is_retryable_and_quick(collector: Collector, make_batch: MakeBatch) -> None:
    """A collector slower than the timeout gives a retryable error once the timeout passes."""
    collector.set_delay(1.0)
    transport = HTTPTransport(collector.url, collector.write_key, timeout=0.2)

    started = time.monotonic()
    error = send_failing(transport, make_batch())
    elapsed = time.monotonic() - started
    transport.close()

    assert (RetryableDeliveryError, httpx.ReadTimeout) == (type(error), type(error.__cause__))
    assert elapsed < 0.9


def test_error_messages_and_repr_leave_out_the_write_key(
    collector: Collector, make_batch: MakeBatch
) -> None:
    """Errors and reprs reach logs, so none of them shows the write key."""
    key = "sekrit-write-key"
    transport = HTTPTransport(collector.url, key)
    texts = [str(send_failing(transport, make_batch())), repr(transport)]  # 401
    collector.stop()
    texts.append(str(send_failing(transport, make_batch())))  # connection refused
    transport.close()

    leaks: list[str] = []
    assert leaks == [text for text in texts if key in text]


def test_injected_client_is_used_and_left_open(collector: Collector, make_batch: MakeBatch) -> None:
    """A client the user passes carries the request, and ``close()`` leaves it open."""
    with httpx.Client(headers={"X-Injected": "yes"}) as client:
        transport = HTTPTransport(collector.url, collector.write_key, client=client)
        transport.send(make_batch())
        transport.close()
        still_open = not client.is_closed

    expected = ("yes", True)
    assert expected == (collector.batches[0].headers.get("x-injected"), still_open)


def test_owned_client_is_closed_by_close(collector: Collector) -> None:
    """The client the transport created itself is closed with it."""
    transport = HTTPTransport(collector.url, collector.write_key)

    transport.close()

    # The client is private; whether close() released it is the behaviour under test.
    assert transport._client.is_closed


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        (
            "collector.example.com",
            "endpoint 'collector.example.com': use an http:// or https:// URL",
        ),
        (
            "ftp://collector.example.com",
            "endpoint 'ftp://collector.example.com': use an http:// or https:// URL",
        ),
        ("https://", "endpoint 'https://': the URL has no host"),
        ("https://:443/x", "endpoint 'https://:443/x': the URL has no host"),
        (
            "https://key:@c.example.com",
            "endpoint 'c.example.com': remove user:password@; pass write_key",
        ),
        (
            "https://c.example.com/?x=1",
            "endpoint 'https://c.example.com/?x=1': remove the ?query or #fragment",
        ),
        (
            "https://c.example.com/#top",
            "endpoint 'https://c.example.com/#top': remove the ?query or #fragment",
        ),
        (
            "https://c.example.com:http",
            "endpoint 'https://c.example.com:http': the port is not a number 0-65535",
        ),
        (
            "https://c.example.com:70000",
            "endpoint 'https://c.example.com:70000': the port is not a number 0-65535",
        ),
    ],
)
def test_bad_endpoint_is_a_config_error(endpoint: str, expected: str) -> None:
    """An endpoint that is not an http(s) URL with a host fails at construction, precisely."""
    with pytest.raises(ConfigError) as caught:
        HTTPTransport(endpoint, "key")

    assert expected == str(caught.value)


def test_empty_write_key_is_a_config_error() -> None:
    """Without a write key no collector would accept anything: fail at construction."""
    with pytest.raises(ConfigError) as caught:
        HTTPTransport("https://c.example.com", "")

    expected = "write_key is empty: pass the collector's write key"
    assert expected == str(caught.value)


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan")])
def test_non_positive_timeout_is_a_config_error(timeout: float) -> None:
    """A timeout must be a positive number of seconds."""
    with pytest.raises(ConfigError, match="timeout must be a positive number of seconds"):
        HTTPTransport("https://c.example.com", "key", timeout=timeout)


def test_httpx_timeout_object_is_accepted(collector: Collector, make_batch: MakeBatch) -> None:
    """Fine-grained ``httpx.Timeout`` values work as well as plain seconds."""
    transport = HTTPTransport(collector.url, collector.write_key, timeout=httpx.Timeout(5.0))
    transport.send(make_batch())
    transport.close()

    expected = [3]  # one batch, of three messages
    assert expected == [len(received.body["batch"]) for received in collector.batches]


def test_transports_satisfy_their_protocols() -> None:
    """Both HTTP transports are drop-in implementations of the transport protocols."""
    sync = HTTPTransport("https://c.example.com", "key")
    asynchronous = AsyncHTTPTransport("https://c.example.com", "key")

    actual = (isinstance(sync, Transport), isinstance(asynchronous, AsyncTransport))
    sync.close()
    asyncio.run(asynchronous.aclose())

    expected = (True, True)
    assert expected == actual


def test_async_transport_posts_the_batch(collector: Collector, make_batch: MakeBatch) -> None:
    """The asyncio transport delivers the same request as the blocking one."""
    batch = make_batch(batch_id="async-1")

    async def deliver() -> None:
        transport = AsyncHTTPTransport(collector.url, collector.write_key)
        await transport.send(batch)
        await transport.aclose()

    asyncio.run(deliver())

    [received] = collector.batches
    expected = (json.loads(batch.body()), "async-1", "gzip")
    actual = (
        received.body,
        received.headers["x-pqlsdk-batch-id"],
        received.headers["content-encoding"],
    )
    assert expected == actual


def test_async_sent_batch_leaves_no_cycle_for_the_garbage_collector(
    collector: Collector, make_batch: MakeBatch
) -> None:
    """The asyncio transport frees each batch's request and response as the blocking one does."""

    async def deliver() -> list[str]:
        transport = AsyncHTTPTransport(collector.url, collector.write_key)
        await transport.send(make_batch())
        with httpx_garbage() as found:
            await transport.send(make_batch())
        await transport.aclose()
        return found

    expected: list[str] = []
    assert expected == asyncio.run(deliver())


def test_async_transport_classifies_429(collector: Collector, make_batch: MakeBatch) -> None:
    """The asyncio transport maps statuses exactly like the blocking one."""
    collector.set_status(429, retry_after="3")

    async def deliver() -> DeliveryError:
        transport = AsyncHTTPTransport(collector.url, collector.write_key)
        with pytest.raises(DeliveryError) as caught:
            await transport.send(make_batch())
        await transport.aclose()
        return caught.value

    error = asyncio.run(deliver())

    assert isinstance(error, RetryableDeliveryError)
    expected = (429, 3.0)
    assert expected == (error.status, error.retry_after)


def test_async_injected_client_is_used_and_left_open(
    collector: Collector, make_batch: MakeBatch
) -> None:
    """``aclose()`` leaves an injected AsyncClient open and usable."""

    async def deliver() -> bool:
        async with httpx.AsyncClient(headers={"X-Injected": "async"}) as client:
            transport = AsyncHTTPTransport(collector.url, collector.write_key, client=client)
            await transport.aclose()
            await transport.send(make_batch())
            return not client.is_closed

    still_open = asyncio.run(deliver())

    expected = ("async", True)
    assert expected == (collector.batches[0].headers.get("x-injected"), still_open)


def test_async_owned_client_is_closed_by_aclose() -> None:
    """The AsyncClient the transport created itself is closed with it."""
    transport = AsyncHTTPTransport("https://c.example.com", "key")

    asyncio.run(transport.aclose())

    # The client is private; whether aclose() released it is the behaviour under test.
    assert transport._client.is_closed


def test_importing_transports_leaves_httpx_unloaded_until_used() -> None:
    """``import pqlsdk.transports`` skips httpx; the first HTTPTransport access loads it."""
    code = (
        "import sys\n"
        "import pqlsdk.transports, pqlsdk.testing\n"
        "before = 'httpx' in sys.modules\n"
        "name = pqlsdk.transports.HTTPTransport.__name__\n"
        "print(before, name, 'httpx' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    expected = "False HTTPTransport True"
    assert expected == result.stdout.strip()


def test_missing_httpx_is_an_import_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """If httpx cannot be imported, the error says so instead of a bare AttributeError."""
    monkeypatch.setitem(sys.modules, "httpx", None)  # None in sys.modules blocks an import
    monkeypatch.delitem(sys.modules, "pqlsdk.transports.http")
    monkeypatch.delattr(pqlsdk.transports, "http")

    with pytest.raises(ImportError, match=r"pqlsdk\.transports\.HTTPTransport needs httpx"):
        pqlsdk.transports.HTTPTransport  # noqa: B018 - the attribute access is the test


def test_unknown_attribute_is_an_attribute_error() -> None:
    """Names that are not lazy exports fail the usual way."""
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        pqlsdk.transports.Nope  # noqa: B018 - the attribute access is the test


def test_all_lists_exactly_the_public_names() -> None:
    """``__all__`` is sorted and holds the eager and the lazy exports, nothing else."""
    expected = ["AsyncHTTPTransport", "AsyncTransport", "Batch", "HTTPTransport", "Transport"]
    exported = pqlsdk.transports.__all__

    resolved = [name for name in exported if getattr(pqlsdk.transports, name).__name__ == name]
    assert (expected, expected, expected) == (exported, sorted(exported), resolved)


def test_batch_length_is_its_message_count(make_batch: MakeBatch) -> None:
    """``len(batch)`` counts messages, the unit batch limits are expressed in."""
    expected = 4
    assert expected == len(make_batch(4))
