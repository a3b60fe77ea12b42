"""The collector's HTTP service: ``POST /v1/batch``, ``GET /health`` and the PQL feed, over ASGI.

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

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

import msgspec
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .._exceptions import ConfigError, InvalidMessageError, StoreError
from ..lift import MomentsReport
from ..messages import Message
from ..rules import Rules
from ..rules import load as load_rules
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
from ._keys import Keys
from ._lead import DEFAULT_TIERS, Lead
from ._lift_cache import MomentsCache
from ._lift_page import lift_context, lift_csv, lift_json
from ._pages import templates
from ._session import COOKIE, MAX_NAME, SESSION_SECONDS, Session, Sessions
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


class _Collector:
    """The endpoints, bound to one storage and one configuration."""

    def __init__(
        self,
        storage: Storage,
        keys: Keys,
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


class _Viewer(msgspec.Struct, frozen=True):
    """Who is reading the feed: a signed-in rep (with a session), or a key in a header."""

    session: Session | None = None


class _Feed:
    """The PQL feed's pages, behind feed keys: in a header, or through a signed-in session."""

    _LIMIT: Final = 500
    _FORM_LIMIT: Final = 4096
    """Largest form body accepted (bytes): a key, a name and a few ids."""

    def __init__(
        self,
        storage: Storage,
        keys: Sequence[str],
        deadlines: Mapping[str, timedelta],
        *,
        moments: bool = False,
    ) -> None:
        self._storage = storage
        self._keys = Keys(keys, name="feed_keys")
        self._sessions = Sessions(keys)
        self._deadlines = dict(deadlines)
        self._moments = moments

    def viewer(self, request: Request) -> _Viewer | None:
        """Return who asks, from the Authorization header or the session cookie; None if nobody."""
        if self._keys.check(request.headers.get("authorization")):
            return _Viewer()
        session = self._sessions.check(request.cookies.get(COOKIE))
        return None if session is None else _Viewer(session)

    async def _leads(self, request: Request) -> list[dict[str, Any]]:
        tier = request.query_params.get("tier") or None
        route = request.query_params.get("route") or None
        found = await run_in_threadpool(
            self._storage.leads, tier=tier, route=route, limit=self._LIMIT
        )
        return [msgspec.structs.asdict(lead) for lead in found]

    async def home(self, request: Request) -> Response:
        """Send the bare URL to the feed (which sends strangers to the login page)."""
        return RedirectResponse("/feed", 303, headers=_PRIVATE)

    async def page(self, request: Request) -> Response:
        """Serve the ranked feed as HTML; send a browser without a session to sign in."""
        viewer = self.viewer(request)
        if viewer is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?{urlencode({'next': target})}", 303, _PRIVATE)
        context = feed_context(
            await self._leads(request),
            now=datetime.now(UTC),
            deadlines=self._deadlines,
            tier=request.query_params.get("tier"),
            route=request.query_params.get("route"),
        )
        session = viewer.session
        context["signed_in"] = None if session is None else session.name
        context["csrf"] = None if session is None else self._sessions.csrf(session)
        context["moments"] = self._moments
        return templates.TemplateResponse(request, "feed.html", context, headers=_PAGE)

    async def json(self, request: Request) -> Response:
        """Serve the ranked feed as JSON."""
        if self.viewer(request) is None:
            return _login()
        body = feed_json(
            await self._leads(request), now=datetime.now(UTC), deadlines=self._deadlines
        )
        return Response(body, media_type="application/json", headers=_PRIVATE)

    async def csv(self, request: Request) -> Response:
        """Serve the ranked feed as a CSV download."""
        if self.viewer(request) is None:
            return _login()
        text = feed_csv(
            await self._leads(request), now=datetime.now(UTC), deadlines=self._deadlines
        )
        headers = {**_PRIVATE, "Content-Disposition": 'attachment; filename="pql-leads.csv"'}
        return Response(text, media_type="text/csv", headers=headers)

    async def contacted(self, request: Request) -> Response:
        """Mark a lead contacted by the signed-in rep, now; back to the feed.

        Only a session can do this, and only with the CSRF token its pages carry:
        a key in a header is for reading, and a browser sends a cached one by itself.
        """
        viewer = self.viewer(request)
        session = None if viewer is None else viewer.session
        if session is None:
            return _json(403, {"error": "sign in at /login to mark leads contacted"})
        form = await self._form(request)
        if form is _BAD_FORM or not self._sessions.csrf_ok(session, form.get("csrf", "")):
            return _json(403, {"error": "the form has expired: reload the feed and try again"})
        key = (form.get("subject", ""), form.get("subject_id", ""), form.get("model", ""))
        try:
            lead = await run_in_threadpool(self._storage.mark_contacted, *key, by=session.name)
        except StoreError as exc:
            _logger.error("marking a lead contacted failed: %s", exc)
            return _json(503, {"error": "storage unavailable"}, {"Retry-After": _RETRY_AFTER})
        if lead is None:
            return _json(404, {"error": "no such lead"})
        return RedirectResponse("/feed", 303, _PRIVATE)

    async def login_form(self, request: Request) -> Response:
        """Show the sign-in form (or go straight to the feed when already signed in)."""
        target = _local(request.query_params.get("next"))
        if self.viewer(request) is not None:
            return RedirectResponse(target, 303, _PRIVATE)
        return self._login_page(request, target)

    async def login(self, request: Request) -> Response:
        """Check the posted key; on success set the session cookie and go to the feed."""
        form = await self._form(request)
        target = _local(form.get("next"))
        if form is _BAD_FORM:
            return self._login_page(
                request, target, error="The form could not be read.", status=400
            )
        name = " ".join(form.get("name", "").split())
        key = self._keys.index(form.get("key", "").encode())
        if key is None:
            _logger.info("feed sign-in refused: not a feed key")
            return self._login_page(
                request, target, name=name, error="That is not a feed key.", status=401
            )
        if not name or len(name) > MAX_NAME or not name.isprintable():
            return self._login_page(
                request,
                target,
                error=f"Give your name (at most {MAX_NAME} characters).",
                status=400,
            )
        response = RedirectResponse(target, 303, _PRIVATE)
        response.set_cookie(
            COOKIE,
            self._sessions.issue(name, key),
            max_age=SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self, request: Request) -> Response:
        """End the session: the cookie is cleared and the browser sent to the sign-in form."""
        response = RedirectResponse("/login", 303, _PRIVATE)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    def _login_page(
        self,
        request: Request,
        target: str,
        *,
        name: str = "",
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        context = {"next": target, "name": name, "error": error, "max_name": MAX_NAME}
        return templates.TemplateResponse(request, "login.html", context, status, _PAGE)

    async def _form(self, request: Request) -> dict[str, str]:
        """Read a small urlencoded form; ``_BAD_FORM`` for anything else."""
        content_type = request.headers.get("content-type", "").partition(";")[0].strip()
        if content_type != "application/x-www-form-urlencoded":
            return _BAD_FORM
        try:
            async with aclosing(request.stream()) as chunks:
                body = await read_limited(chunks, self._FORM_LIMIT)
            fields = parse_qs(body.decode(), max_num_fields=10, strict_parsing=False)
        except (BodyTooLargeError, UnicodeDecodeError, ValueError, ClientDisconnect):
            return _BAD_FORM
        return {name: values[0] for name, values in fields.items()}


class _Moments:
    """The moments report's page and API, behind the feed's keys and sessions."""

    def __init__(self, storage: Storage, rules: Rules, feed: _Feed) -> None:
        self._cache = MomentsCache(storage, rules)
        self._feed = feed

    def _report(self) -> MomentsReport:
        """Report on the stored messages, folding only the new ones (in a worker thread)."""
        return self._cache.report()

    async def page(self, request: Request) -> Response:
        """Serve each moment's funnel and lift against its holdout, with pictures."""
        if self._feed.viewer(request) is None:
            target = request.url.path
            return RedirectResponse(f"/login?{urlencode({'next': target})}", 303, _PRIVATE)
        report = await run_in_threadpool(self._report)
        return templates.TemplateResponse(
            request, "moments.html", lift_context(report), headers=_PAGE
        )

    async def json(self, request: Request) -> Response:
        """Serve the moments report as JSON, in ``pqlsdk moments --json``'s shape."""
        if self._feed.viewer(request) is None:
            return _login()
        report = await run_in_threadpool(self._report)
        return Response(lift_json(report), media_type="application/json", headers=_PRIVATE)

    async def csv(self, request: Request) -> Response:
        """Serve the moments report as a CSV download, a row per kind."""
        if self._feed.viewer(request) is None:
            return _login()
        report = await run_in_threadpool(self._report)
        headers = {**_PRIVATE, "Content-Disposition": 'attachment; filename="pql-moments.csv"'}
        return Response(lift_csv(report), media_type="text/csv", headers=headers)


_BAD_FORM: Final[dict[str, str]] = {}
"""The form ``_Feed._form`` returns for a body it will not read (compared by identity)."""

_PRIVATE: Final = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_PAGE: Final = {
    **_PRIVATE,
    # Nothing on the feed's pages runs script or loads anything; forms post only here,
    # and no other site may frame them (a framed "Mark contacted" could be clicked blind).
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}


def _local(target: str | None) -> str:
    """Return ``target`` if it is a path on this site, else the feed: no open redirects."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/feed"


def _login() -> Response:
    """Refuse an API call without a feed key (in the header, or a signed-in browser's cookie)."""
    return _json(
        401,
        {"error": "a feed key is required (HTTP Basic username), or sign in at /login"},
        {"WWW-Authenticate": 'Basic realm="pqlsdk PQL feed"'},
    )


def _measurable(rules: Rules | str | Path) -> Rules:
    """Load ``rules`` if need be; refuse, now rather than per request, rules lift cannot use."""
    loaded = rules if isinstance(rules, Rules) else load_rules(rules)
    if loaded.moments is None or loaded.moments.conversion is None:
        raise ConfigError(
            f"{loaded.origin}: the moments report needs [moment.*] kinds and a [moments] conversion"
        )
    return loaded


def create_app(
    storage_url: str,
    *,
    write_keys: Sequence[str],
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    on_crossing: Callable[[dict[str, Any]], None] | None = None,
    tiers: Sequence[str] = DEFAULT_TIERS,
    feed_keys: Sequence[str] = (),
    deadlines: Mapping[str, timedelta] = DEFAULT_DEADLINES,
    rules: Rules | str | Path | None = None,
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
    ``?tier=`` and ``?route=``. Each needs a feed key (the feed shows user data):
    as the HTTP Basic username, or through a session a browser opens at
    ``/login`` (a form; the bare URL and ``/feed`` send strangers there).
    ``deadlines`` says how soon each tier must hear from sales. Without feed
    keys those pages do not exist.

    With ``rules`` too (a loaded ``Rules`` or a path, with moment kinds and a
    ``[moments] conversion``), the feed links to ``GET /moments``: each moment's
    funnel and lift against its holdout (``pqlsdk.lift``), also as
    ``GET /api/moments`` (JSON) and ``GET /api/moments.csv``, behind the same keys.

    Added in version 0.1.0.
    """
    keys = Keys(write_keys)
    if (
        isinstance(max_body_bytes, bool)
        or not isinstance(max_body_bytes, int)
        or max_body_bytes < 1
    ):
        raise ConfigError(f"max_body_bytes must be a positive int, got {max_body_bytes!r}")
    measured = None if rules is None else _measurable(rules)
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
        feed = _Feed(storage, feed_keys, deadlines, moments=measured is not None)
        if measured is not None:
            lift = _Moments(storage, measured, feed)
            routes += [
                Route("/moments", lift.page, methods=["GET"]),
                Route("/api/moments", lift.json, methods=["GET"]),
                Route("/api/moments.csv", lift.csv, methods=["GET"]),
            ]
        routes += [
            Route("/", feed.home, methods=["GET"]),
            Route("/login", feed.login_form, methods=["GET"]),
            Route("/login", feed.login, methods=["POST"]),
            Route("/logout", feed.logout, methods=["POST"]),
            Route("/feed", feed.page, methods=["GET"]),
            Route("/feed/contacted", feed.contacted, methods=["POST"]),
            Route("/api/leads", feed.json, methods=["GET"]),
            Route("/api/leads.csv", feed.csv, methods=["GET"]),
        ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.storage = storage
    return app
