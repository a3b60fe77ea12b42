"""The collector's HTTP service: ``POST /v1/batch`` and ``GET /health`` over ASGI.

Starlette supplies routing, method checks (405), the request body stream and
responses; the rest is this module: authentication, bounded bodies, per-message
validation and the answer the SDK reads. Storage calls and ``on_crossing`` are
blocking, so they run in Starlette's thread pool and never stall the event loop.

Answers:

- 200 ``{"accepted": n, "rejected": [{"index", "messageId", "error"}]}``: every
  valid message is stored (duplicates by ``messageId`` count as accepted), the
  others are listed with pqlsdk's reason, which names the field;
- 400 for a body that is not a batch, 401 without a valid write key, 413 for a
  body over the limit (compressed or not), 415 for an unknown
  ``Content-Encoding``, and 503 when storage fails (the SDK retries 5xx).

Logs say how many messages a batch had and what failed, never their content.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from .._exceptions import ConfigError, InvalidMessageError, StoreError
from ..messages import Message
from ._batch import (
    BadRequestError,
    BodyTooLargeError,
    Rejection,
    accept,
    inflate,
    message_id_of,
    parse_batch,
    read_limited,
)
from ._feed import DEFAULT_DEADLINES, feed_context, feed_csv, feed_json
from ._lead import DEFAULT_TIERS, Lead
from ._pages import templates
from ._storage import Storage, open_storage

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app"]

DEFAULT_MAX_BODY_BYTES: Final = 512 * 1024
"""Largest accepted batch body, both as sent and after gzip (Segment's batch limit is 500 KB)."""

_RETRY_AFTER: Final = "5"
"""Seconds a sender should wait after a storage failure (the SDK honours Retry-After)."""

_logger: Final = logging.getLogger("pqlsdk.collector")
_encode: Final = msgspec.json.Encoder().encode


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(body), status, headers, media_type="application/json")


class _UnsupportedEncodingError(Exception):
    """A ``Content-Encoding`` other than gzip or identity (HTTP 415)."""


class _Keys:
    """Accepted keys (write keys, feed keys), compared in constant time."""

    def __init__(self, keys: Sequence[str], *, name: str = "write_keys") -> None:
        if isinstance(keys, str) or not keys or not all(isinstance(k, str) and k for k in keys):
            raise ConfigError(f"{name} must be a non-empty list of non-empty strings")
        # Digests have one length, so comparing them reveals neither a key nor its length.
        self._digests = [hashlib.sha256(key.encode()).digest() for key in keys]

    def check(self, authorization: str | None) -> bool:
        """Return whether ``authorization`` is HTTP Basic with a known key as the username."""
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True)
        except binascii.Error:
            return False
        digest = hashlib.sha256(decoded.partition(b":")[0]).digest()
        # Compare with every key, without stopping early: the time taken says nothing.
        matches = [hmac.compare_digest(digest, known) for known in self._digests]
        return any(matches)


class _Collector:
    """The endpoints, bound to one storage and one configuration."""

    def __init__(
        self,
        storage: Storage,
        keys: _Keys,
        *,
        max_body_bytes: int,
        on_crossing: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.storage = storage
        self._keys = keys
        self._limit = max_body_bytes
        self._on_crossing = on_crossing

    async def batch(self, request: Request) -> Response:
        """Authenticate, read, validate and store one batch."""
        if not self._keys.check(request.headers.get("authorization")):
            return _json(
                401,
                {"error": "a valid write key is required (HTTP Basic username)"},
                {"WWW-Authenticate": 'Basic realm="pqlsdk collector"'},
            )
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        try:
            objects = await self._read(request, encoding)
        except (_UnsupportedEncodingError, BodyTooLargeError, BadRequestError) as exc:
            return self._refusal(exc)
        except ClientDisconnect:
            return Response(status_code=400)  # the sender is gone: nobody reads this
        try:
            accepted, rejected = await run_in_threadpool(self._ingest, objects)
        except StoreError as exc:
            _logger.error("storing a batch of %d messages failed: %s", len(objects), exc)
            return _json(503, {"error": "storage unavailable"}, {"Retry-After": _RETRY_AFTER})
        if rejected:
            _logger.info("batch: accepted %d messages, rejected %d", accepted, len(rejected))
        return _json(200, {"accepted": accepted, "rejected": rejected})

    def _refusal(self, exc: Exception) -> Response:
        """Answer a body the collector will not read: 413, 415 or 400."""
        if isinstance(exc, BodyTooLargeError):
            return _json(413, {"error": f"the body is larger than {self._limit} bytes"})
        if isinstance(exc, _UnsupportedEncodingError):
            return _json(415, {"error": "Content-Encoding must be gzip or identity"})
        return _json(400, {"error": str(exc)})

    async def _read(self, request: Request, encoding: str) -> list[Any]:
        """Return the batch's messages, the body read and inflated within the limit."""
        if encoding not in {"identity", "gzip"}:
            raise _UnsupportedEncodingError
        declared = request.headers.get("content-length", "")
        # A declared size over the limit is refused unread; the count below is what binds.
        if declared.isdigit() and int(declared) > self._limit:
            raise BodyTooLargeError
        async with aclosing(request.stream()) as chunks:
            body = await read_limited(chunks, self._limit)
        return parse_batch(inflate(body, self._limit) if encoding == "gzip" else body)

    def _ingest(self, objects: list[Any]) -> tuple[int, list[Rejection]]:
        """Check, store, then report the crossings that became leads (in a worker thread).

        Checking thousands of messages takes milliseconds of CPU: it runs here so
        that the event loop keeps answering other requests meanwhile.
        """
        messages: list[Message] = []
        rejected: list[Rejection] = []
        for index, obj in enumerate(objects):
            try:
                messages.append(accept(obj))
            except InvalidMessageError as exc:
                rejected.append(
                    Rejection(index=index, message_id=message_id_of(obj), error=str(exc))
                )
        result = self.storage.store(messages)
        if self._on_crossing is not None:
            for lead in result.leads:
                self._report(self._on_crossing, lead)
        return len(messages), rejected

    @staticmethod
    def _report(on_crossing: Callable[[dict[str, Any]], None], lead: Lead) -> None:
        """Call the hook; the batch is stored, so a failure must not make the sender retry."""
        try:
            on_crossing(lead.to_dict())
        except Exception as exc:
            # The exception's text may quote the lead: only its type goes to the log,
            # the traceback only at DEBUG, which an operator turns on deliberately.
            _logger.error(
                "on_crossing raised %s for lead message %s", type(exc).__name__, lead.message_id
            )
            _logger.debug("on_crossing traceback", exc_info=True)

    async def health(self, request: Request) -> Response:
        """Say whether storage answers; reveal nothing else."""
        try:
            await run_in_threadpool(self.storage.ping)
        except StoreError:
            return _json(503, {"status": "unavailable", "storage": self.storage.kind})
        return _json(200, {"status": "ok", "storage": self.storage.kind})


class _Feed:
    """The PQL feed's pages, behind feed keys."""

    _LIMIT: Final = 500

    def __init__(self, storage: Storage, keys: _Keys, deadlines: Mapping[str, timedelta]) -> None:
        self._storage = storage
        self._keys = keys
        self._deadlines = dict(deadlines)

    async def _leads(self, request: Request) -> list[dict[str, Any]] | None:
        if not self._keys.check(request.headers.get("authorization")):
            return None
        tier = request.query_params.get("tier") or None
        route = request.query_params.get("route") or None
        found = await run_in_threadpool(
            self._storage.leads, tier=tier, route=route, limit=self._LIMIT
        )
        return [msgspec.structs.asdict(lead) for lead in found]

    async def page(self, request: Request) -> Response:
        """Serve the ranked feed as HTML."""
        leads = await self._leads(request)
        if leads is None:
            return _login()
        context = feed_context(
            leads,
            now=datetime.now(UTC),
            deadlines=self._deadlines,
            tier=request.query_params.get("tier"),
            route=request.query_params.get("route"),
        )
        return templates.TemplateResponse(request, "feed.html", context, headers=_PRIVATE)

    async def json(self, request: Request) -> Response:
        """Serve the ranked feed as JSON."""
        leads = await self._leads(request)
        if leads is None:
            return _login()
        body = feed_json(leads, now=datetime.now(UTC), deadlines=self._deadlines)
        return Response(body, media_type="application/json", headers=_PRIVATE)

    async def csv(self, request: Request) -> Response:
        """Serve the ranked feed as a CSV download."""
        leads = await self._leads(request)
        if leads is None:
            return _login()
        text = feed_csv(leads, now=datetime.now(UTC), deadlines=self._deadlines)
        headers = {**_PRIVATE, "Content-Disposition": 'attachment; filename="pql-leads.csv"'}
        return Response(text, media_type="text/csv", headers=headers)


_PRIVATE: Final = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _login() -> Response:
    """Ask for a feed key: browsers show their login prompt for this answer."""
    return _json(
        401,
        {"error": "a feed key is required (HTTP Basic username)"},
        {"WWW-Authenticate": 'Basic realm="pqlsdk PQL feed"'},
    )


def create_app(
    storage_url: str,
    *,
    write_keys: Sequence[str],
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    on_crossing: Callable[[dict[str, Any]], None] | None = None,
    tiers: Sequence[str] = DEFAULT_TIERS,
    feed_keys: Sequence[str] = (),
    deadlines: Mapping[str, timedelta] = DEFAULT_DEADLINES,
) -> Starlette:
    """Return the collector as an ASGI app that stores into ``storage_url``.

    ``storage_url`` is a file path or ``sqlite:///path`` (SQLite), or a
    ``postgresql://`` URL; storage is opened (and migrated) now, so a bad URL
    fails here, and closed when the server shuts the app down (ASGI lifespan).
    Batches must carry one of ``write_keys`` as their HTTP Basic username.
    ``max_body_bytes`` bounds a body both as sent and after gzip.

    ``on_crossing(lead)`` is called, from a worker thread, with ``Lead.to_dict()``
    of every new ``pqlsdk_tier_changed`` message that became the latest lead for
    its key; it should hand work off quickly. Its exceptions are logged, never
    answered to the sender. ``tiers`` ranks leads, most urgent first.
    ``app.state.storage`` is the open ``Storage``.

    With ``feed_keys``, the PQL feed is served: ``GET /feed`` (HTML),
    ``GET /api/leads`` (JSON) and ``GET /api/leads.csv``, each filterable with
    ``?tier=`` and ``?route=`` and each requiring a feed key as the HTTP Basic
    username (the feed shows user data). ``deadlines`` says how soon each tier
    must hear from sales. Without feed keys those pages do not exist.

    Added in version 0.1.0.
    """
    keys = _Keys(write_keys)
    if (
        isinstance(max_body_bytes, bool)
        or not isinstance(max_body_bytes, int)
        or max_body_bytes < 1
    ):
        raise ConfigError(f"max_body_bytes must be a positive int, got {max_body_bytes!r}")
    storage = open_storage(storage_url, tiers=tiers)
    collector = _Collector(storage, keys, max_body_bytes=max_body_bytes, on_crossing=on_crossing)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            storage.close()

    routes = [
        Route("/v1/batch", collector.batch, methods=["POST"]),
        Route("/health", collector.health, methods=["GET"]),
    ]
    if feed_keys:
        feed = _Feed(storage, _Keys(feed_keys, name="feed_keys"), deadlines)
        routes += [
            Route("/feed", feed.page, methods=["GET"]),
            Route("/api/leads", feed.json, methods=["GET"]),
            Route("/api/leads.csv", feed.csv, methods=["GET"]),
        ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.storage = storage
    return app
