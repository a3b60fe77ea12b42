"""Delivery over HTTP: one POST of a Segment batch to ``{endpoint}/v1/batch``.

This is the only module in pqlsdk that imports httpx, and nothing imports it at
``import pqlsdk`` time (``pqlsdk.transports`` loads it on first use), so hosts
that never send pay nothing for it.

The request follows Segment's HTTP tracking API: a JSON batch, gzip-compressed
by default, with HTTP Basic auth whose username is the write key and whose
password is empty. ``HTTPTransport`` and ``AsyncHTTPTransport`` build the
request and classify failures with the same code; they differ only in how they
call their client. Each ``send`` is one attempt: retrying belongs to the sender.

Error messages name the collector's host and the HTTP status, never the write
key or the batch: they end up in the host application's logs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from gzip import compress
from typing import Final, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from .._exceptions import BatchRejectedError, ConfigError, DeliveryError, RetryableDeliveryError
from .._retry import retry_after_seconds, retryable_status
from .._version import __version__
from ._base import Batch

__all__ = ["AsyncHTTPTransport", "HTTPTransport"]

_BATCH_PATH: Final = "/v1/batch"
"""Where Segment-compatible collectors take batches, under the endpoint's path."""

# Few connections: one sender thread sends one batch at a time, and an SDK must
# not hold many sockets open inside someone else's process.
_LIMITS: Final = httpx.Limits(max_connections=4, max_keepalive_connections=2)

# zlib's default level: close to level 9's size at a fraction of the CPU, which
# is spent on the host's machine.
_GZIP_LEVEL: Final = 6


_EMPTY: Final = httpx.ByteStream(b"")
"""A read response's stream once it is let go (``_unbind``)."""

_ClientT = TypeVar("_ClientT", httpx.Client, httpx.AsyncClient)


class _HTTPDelivery(Generic[_ClientT]):
    """What both HTTP transports share: checked settings, the client, request, error mapping."""

    def __init__(
        self,
        endpoint: str,
        write_key: str,
        *,
        client: _ClientT | None,
        new_client: Callable[..., _ClientT],
        timeout: float | httpx.Timeout,
        gzip: bool,
    ) -> None:
        self._url, self._host = _batch_url(endpoint)
        if not write_key:
            raise ConfigError("write_key is empty: pass the collector's write key")
        if not isinstance(timeout, httpx.Timeout) and not timeout > 0:
            raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self._auth = httpx.BasicAuth(write_key, "")
        self._timeout = timeout
        self._gzip = gzip
        # Only a client made here is closed here: an injected one is its owner's.
        self._owns_client = client is None
        self._client: _ClientT = (
            new_client(timeout=timeout, limits=_LIMITS) if client is None else client
        )

    @property
    def url(self) -> str:
        """Where batches go (``{endpoint}/v1/batch``); never holds credentials, so logs may show it.

        Added in version 0.1.0.
        """
        return self._url

    def _request(self, batch: Batch) -> httpx.Request:
        """Build the POST for ``batch`` (the client adds its own default headers)."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"pqlsdk/{__version__}",
            "X-Pqlsdk-Batch-Id": batch.id,
        }
        body = batch.body()
        if self._gzip:
            # mtime=0 keeps the bytes identical across retries of the same batch.
            body = compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
            headers["Content-Encoding"] = "gzip"
        # The timeout goes on each request, so it also bounds an injected client.
        return self._client.build_request(
            "POST", self._url, content=body, headers=headers, timeout=self._timeout
        )

    @contextlib.contextmanager
    def _classified(self) -> Iterator[None]:
        """Turn httpx failures raised inside the block into pqlsdk delivery errors."""
        try:
            yield
        except (httpx.RequestError, httpx.HTTPStatusError) as exc:
            raise _delivery_error(exc, self._host) from exc

    def __repr__(self) -> str:
        # The write key stays out: reprs end up in logs.
        return f"{type(self).__name__}({self._url!r})"


class HTTPTransport(_HTTPDelivery[httpx.Client]):
    """Send batches to a Segment-compatible collector with a blocking httpx client.

    ``endpoint`` is the collector's base URL (``https://collector.example.com``,
    with or without a path prefix); batches go to ``{endpoint}/v1/batch``.
    ``write_key`` authenticates them. Pass ``client`` to control proxies,
    connection limits or TLS yourself; the transport then never closes it.
    ``timeout`` bounds every request, also through an injected client. ``gzip``
    compresses request bodies.

    Raise ``ConfigError`` for an endpoint that is not an http(s) URL with a host,
    an empty write key or a timeout that is not positive.

    Added in version 0.1.0.
    """

    def __init__(
        self,
        endpoint: str,
        write_key: str,
        *,
        client: httpx.Client | None = None,
        timeout: float | httpx.Timeout = 10.0,
        gzip: bool = True,
    ) -> None:
        super().__init__(
            endpoint, write_key, client=client, new_client=httpx.Client, timeout=timeout, gzip=gzip
        )

    def send(self, batch: Batch) -> None:
        """Post ``batch`` once; raise ``RetryableDeliveryError`` or ``BatchRejectedError``.

        Added in version 0.1.0.
        """
        request = self._request(batch)
        with self._classified():
            response = self._client.send(request, auth=self._auth)
            _unbind(response)
            response.raise_for_status()

    def close(self) -> None:
        """Close the client if this transport created it; an injected one stays open.

        Added in version 0.1.0.
        """
        if self._owns_client:
            self._client.close()


class AsyncHTTPTransport(_HTTPDelivery[httpx.AsyncClient]):
    """Send batches from an asyncio event loop; otherwise exactly like ``HTTPTransport``.

    Added in version 0.1.0.
    """

    def __init__(
        self,
        endpoint: str,
        write_key: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout = 10.0,
        gzip: bool = True,
    ) -> None:
        super().__init__(
            endpoint,
            write_key,
            client=client,
            new_client=httpx.AsyncClient,
            timeout=timeout,
            gzip=gzip,
        )

    async def send(self, batch: Batch) -> None:
        """Post ``batch`` once; raise ``RetryableDeliveryError`` or ``BatchRejectedError``.

        Added in version 0.1.0.
        """
        request = self._request(batch)
        with self._classified():
            response = await self._client.send(request, auth=self._auth)
            _unbind(response)
            response.raise_for_status()

    async def aclose(self) -> None:
        """Close the client if this transport created it; an injected one stays open.

        Added in version 0.1.0.
        """
        if self._owns_client:
            await self._client.aclose()


def _unbind(response: httpx.Response) -> None:
    """Break the cycle httpx leaves between a read response and its stream.

    httpx binds each response's stream to the response (``response.stream``
    refers back to it), so every batch leaves a cycle of some fifty objects
    (the request, headers, the pool's request and its locks) that only a
    pass of the garbage collector frees: at one request per hundred events,
    those passes came every few hundred milliseconds and cost the host's
    threads 0.3 to 0.9 ms each. The response was read and closed by
    ``send()``; its stream is only replaced by an empty one, so everything
    is freed here, by reference counting.
    """
    response.stream = _EMPTY


def _batch_url(endpoint: str) -> tuple[str, str]:
    """Return the batch URL under ``endpoint`` and its host, for messages; check it first."""
    parts = urlsplit(endpoint)
    if parts.scheme not in {"http", "https"}:
        raise ConfigError(f"endpoint {endpoint!r}: use an http:// or https:// URL")
    if not parts.hostname:
        raise ConfigError(f"endpoint {endpoint!r}: the URL has no host")
    if parts.username is not None or parts.password is not None:
        # Credentials in the URL would reach logs with it; the key has its own argument.
        raise ConfigError(f"endpoint {parts.hostname!r}: remove user:password@; pass write_key")
    if parts.query or parts.fragment:
        raise ConfigError(f"endpoint {endpoint!r}: remove the ?query or #fragment")
    try:
        parts.port  # noqa: B018 - reading it checks that the port is a number in range
    except ValueError as exc:
        raise ConfigError(f"endpoint {endpoint!r}: the port is not a number 0-65535") from exc
    path = parts.path.rstrip("/") + _BATCH_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), parts.netloc


def _delivery_error(exc: httpx.RequestError | httpx.HTTPStatusError, host: str) -> DeliveryError:
    """Classify an httpx failure: worth retrying later, or refused for good."""
    if isinstance(exc, httpx.RequestError):
        # Timeouts, refused or reset connections, DNS and TLS failures, corrupt
        # responses: the collector may well take the same batch later.
        return RetryableDeliveryError(
            f"could not deliver to collector {host}: {type(exc).__name__}: {exc}"
        )
    response = exc.response
    status = response.status_code
    message = f"collector {host} answered {status} {response.reason_phrase}".rstrip()
    if retryable_status(status):
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        return RetryableDeliveryError(message, status=status, retry_after=retry_after)
    return BatchRejectedError(message, status=status)
