"""Alerts: tell sales, within minutes, when a user or account crosses into a hot tier.

An ``Alerter`` is the collector's ``on_crossing`` hook (see CONTRACT.md). It
posts one message per crossing to each configured webhook: a Block Kit message
to a Slack incoming webhook, or the lead itself to a generic JSON receiver.

Why it looks like this:

- The hook runs on the collector's request path, so ``alerter(lead)`` only
  decides and queues; it never blocks on the network and never raises. Leads
  it cannot read or encode are counted as failed and logged.
- One message per crossing per webhook: the last ``_REMEMBERED`` message ids
  are kept, so a re-delivered crossing is counted as a duplicate, not sent
  again. A receiver that times out after accepting may still get a retry; every
  request carries ``X-Pqlsdk-Message-Id`` so that a generic receiver can drop it.
- One lazily started daemon thread sends for all webhooks, from a schedule
  ordered by due time: a message waiting out its backoff does not hold up the
  others. Retries follow ``RetryPolicy`` (full jitter, ``Retry-After`` as a lower
  bound, a time budget per message); other 4xx answers are final.
- ``flush()`` and ``close()`` return within their timeout whatever the receivers
  do. After ``fork()`` the child gets fresh locks, no thread and an empty queue
  (the parent delivers what it queued), and keeps the memory of sent ids.
- Slack messages carry ids, score, tier, route, team size, reasons and feature
  names (and, for a PQA, its qualifying members' ids, tiers and scores), never
  traits; mrkdwn text is escaped so an id cannot ping a channel.
  Logs name the receiver's host, never its URL (a Slack webhook URL is a
  credential) nor anything about the user.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, TypeAlias
from urllib.parse import urlsplit

import attrs
import httpx
import msgspec

from .._exceptions import ConfigError
from .._lifecycle import DRAIN, unwatch, watch
from .._retry import RetryPolicy, retry_after_seconds, retryable_status
from .._scoring import reason_texts, show
from .._stats import logger
from .._version import __version__

__all__ = ["EVENT_TYPE", "Alerter", "JSONWebhook", "SlackWebhook", "Webhook"]

EVENT_TYPE: Final = "pqlsdk.tier_crossed"
"""The ``type`` of every generic JSON webhook payload."""

_DEFAULT_RETRY: Final = RetryPolicy(base=0.5, cap=30.0, budget=600.0)
_REMEMBERED: Final = 10_000
"""Message ids kept for de-duplication; re-deliveries come within minutes, not days."""
_MAX_PENDING: Final = 10_000
"""Messages queued at most: a receiver down for hours must not grow memory without end."""
_EXIT_TIMEOUT: Final = 5.0
"""How long the exit hook waits for queued alerts."""
_COUNTERS: Final = ("sent", "failed", "skipped", "duplicates")
_THREAD_NAME: Final = "pqlsdk-alerts"

# Block Kit limits (https://api.slack.com/reference/block-kit/blocks): longer
# text makes Slack refuse the whole message, so text is cut to fit instead.
_HEADER_MAX: Final = 150
_FIELD_MAX: Final = 2000
_TEXT_MAX: Final = 3000
_TOP_REASONS: Final = 3

_ENCODER: Final = msgspec.json.Encoder()


def _check_url(what: str, url: object) -> str:
    """Return ``url`` if it is an http(s) URL with a host; raise ``ConfigError`` otherwise.

    Messages never repeat the URL: a webhook URL is a credential.
    """
    if not isinstance(url, str):
        raise ConfigError(f"{what} must be a URL string, got {type(url).__name__}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks that the port is a number in range
    except ValueError as exc:
        raise ConfigError(f"{what} is not a valid URL ({exc})") from exc
    if parts.scheme not in {"http", "https"}:
        raise ConfigError(f"{what} must be an http:// or https:// URL, got {parts.scheme!r}")
    if not parts.hostname:
        raise ConfigError(f"{what} has no host")
    return url


def _valid_url(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    """Check a webhook's URL (an attrs validator)."""
    _check_url(f"{type(instance).__name__}.{attribute.name}", value)


def _host(url: str) -> str:
    """Return where ``url`` points, for messages: host and port, no credentials or path."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def _redacted(url: str) -> str:
    """Show a URL without its path, query or credentials (a repr that may reach logs)."""
    return repr(f"{urlsplit(url).scheme}://{_host(url)}/…")


def _frozen_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    """Return a read-only copy of ``headers``; raise ``ConfigError`` for unusable ones."""
    if not isinstance(headers, Mapping):
        raise ConfigError(f"JSONWebhook.headers must be a mapping, got {type(headers).__name__}")
    for name, value in headers.items():
        if not (isinstance(name, str) and isinstance(value, str)) or not name:
            raise ConfigError(
                "JSONWebhook.headers: names and values must be strings, names not empty"
            )
        if any(c in text for text in (name, value) for c in "\r\n"):
            # A line break would start a new header: refuse rather than send it.
            raise ConfigError(f"JSONWebhook.headers: {name.strip()!r} contains a line break")
    return MappingProxyType(dict(headers))


def _header_names(headers: Mapping[str, str]) -> str:
    """Show header names only: values are often tokens."""
    return repr(dict.fromkeys(headers, "…"))


@attrs.frozen
class SlackWebhook:
    """A Slack incoming webhook: each alert is a Block Kit message.

    Raise ``ConfigError`` for a URL that is not http(s) with a host.
    """

    url: str = attrs.field(validator=_valid_url, repr=_redacted)

    def payload(self, lead: Mapping[str, Any], *, feed_url: str | None = None) -> dict[str, Any]:
        """Return the message for ``lead``: a one-line ``text`` fallback and ``blocks``."""
        return _slack_message(lead, feed_url)


@attrs.frozen
class JSONWebhook:
    """A generic receiver: each alert is ``{"type", "lead", "feed_url"}`` as JSON.

    ``headers`` are added to every request (e.g. ``Authorization``);
    ``Content-Type`` is always ``application/json``. Raise ``ConfigError`` for a
    URL that is not http(s) with a host, or headers that are not strings.
    """

    url: str = attrs.field(validator=_valid_url, repr=_redacted)
    headers: Mapping[str, str] = attrs.field(
        factory=dict, converter=_frozen_headers, repr=_header_names, hash=False, kw_only=True
    )

    def payload(self, lead: Mapping[str, Any], *, feed_url: str | None = None) -> dict[str, Any]:
        """Return the JSON document for ``lead``: the lead as the collector keeps it."""
        return {"type": EVENT_TYPE, "lead": dict(lead), "feed_url": feed_url}


Webhook: TypeAlias = SlackWebhook | JSONWebhook
"""Where alerts go."""


@attrs.define
class _Job:
    """One alert for one webhook, and how its delivery has gone so far."""

    webhook: Webhook
    body: bytes
    headers: httpx.Headers
    sends: int = 0
    started: float = 0.0
    """When the first send began (monotonic): the retry budget counts from there."""


class _Sender:
    """One process's delivery state; a forked child replaces it with a fresh one."""

    def __init__(self, seen: OrderedDict[Any, None]) -> None:
        self.lock = threading.RLock()  # re-entrant: flush() may run in a signal handler
        self.wake = threading.Condition(self.lock)
        self.schedule: list[tuple[float, int, _Job]] = []  # a heap of (due, order, job)
        self.order = itertools.count()  # equal due times go first in, first out
        self.thread: threading.Thread | None = None
        self.client: httpx.Client | None = None  # made by the thread when none was injected
        self.in_flight = 0
        self.closing = False
        self.counts: Counter[str] = Counter()
        self.seen = seen

    @property
    def pending(self) -> int:
        """Messages queued, waiting for a retry, or being sent."""
        return len(self.schedule) + self.in_flight


class Alerter:
    """Alert webhooks when a user or account crosses up into an alert tier.

    Pass the alerter as the collector's ``on_crossing`` hook. It alerts when
    ``lead["direction"]`` is ``"up"``, ``lead["tier"]`` is in ``tiers``, the route is
    not ``do_not_contact``, and neither ``subject_id`` nor ``user_id`` is in
    ``do_not_contact``. ``feed_url`` is linked from Slack messages and included
    in JSON ones. ``retry`` bounds each message's attempts; ``timeout`` bounds
    each request, also through an injected ``client`` (which is never closed here).

    Raise ``ConfigError`` for no webhooks, an invalid URL, tier or id lists that
    are not collections of strings, or a timeout that is not positive.
    """

    def __init__(
        self,
        webhooks: Sequence[Webhook],
        *,
        feed_url: str | None = None,
        tiers: Collection[str] = ("hot", "burning"),
        do_not_contact: Collection[str] = (),
        retry: RetryPolicy = _DEFAULT_RETRY,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._webhooks: tuple[Webhook, ...] = tuple(webhooks)
        if not self._webhooks:
            raise ConfigError("Alerter needs at least one webhook")
        for webhook in self._webhooks:
            if not isinstance(webhook, SlackWebhook | JSONWebhook):
                raise ConfigError(
                    f"webhooks must be SlackWebhook or JSONWebhook, got {type(webhook).__name__}"
                )
        self._feed_url = None if feed_url is None else _check_url("feed_url", feed_url)
        self._tiers = _names("tiers", tiers)
        if not self._tiers:
            raise ConfigError("tiers is empty: nothing would ever alert")
        self._do_not_contact = _names("do_not_contact", do_not_contact)
        if not isinstance(retry, RetryPolicy):
            raise ConfigError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        if client is not None and not isinstance(client, httpx.Client):
            raise ConfigError(f"client must be an httpx.Client, got {type(client).__name__}")
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
            raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self._retry = retry
        self._client = client
        self._timeout = float(timeout)
        self._rng = random.Random()  # noqa: S311 - jitter, not secrets
        self._sender = _Sender(OrderedDict())
        watch(self, exit_phase=DRAIN)

    def __call__(self, lead: Mapping[str, Any]) -> None:
        """Queue alerts for ``lead`` if it deserves them; never block, never raise."""
        try:
            problem = self._offer(lead)
        except Exception as exc:  # the collector's request must not fail because of alerts
            sender = self._sender
            with sender.lock:
                sender.counts["failed"] += len(self._webhooks)
            problem = f"a crossing could not be read or encoded ({type(exc).__name__})"
        if problem is not None:
            logger.warning("pqlsdk alerts: %s; alert not sent", problem)

    def flush(self, timeout: float = 10.0) -> int:
        """Wait at most ``timeout`` seconds for queued alerts; return how many still wait.

        Return at once after ``close()``, or when called from the sender thread
        (an injected client's hook), which would otherwise wait on itself.
        """
        sender = self._sender
        with sender.lock:
            if not sender.closing and threading.current_thread() is not sender.thread:
                sender.wake.wait_for(lambda: sender.pending == 0, max(0.0, timeout))
            return sender.pending

    def close(self, timeout: float = 10.0) -> int:
        """Flush for at most ``timeout`` seconds, drop what is left, stop the sender.

        Return how many alerts were still pending. Queued ones are dropped and
        counted as failed; one being sent at that moment completes without retry.
        """
        deadline = time.monotonic() + timeout
        sender = self._sender
        pending = self.flush(timeout)
        with sender.lock:
            sender.counts["failed"] += len(sender.schedule)
            sender.schedule.clear()
            sender.closing = True
            sender.wake.notify_all()
            thread = sender.thread
        unwatch(self)
        if pending:
            logger.warning("pqlsdk alerts: closed with %d alert(s) not delivered", pending)
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        return pending

    def stats(self) -> dict[str, int]:
        """Return the counters, in messages per webhook and in crossings.

        ``sent`` and ``failed`` count messages (one per webhook and crossing);
        ``skipped`` (not alert-worthy) and ``duplicates`` (already alerted) count
        crossings.
        """
        sender = self._sender
        with sender.lock:
            return {name: sender.counts[name] for name in _COUNTERS}

    def after_fork(self) -> None:
        """In a forked child: fresh locks, no thread, none of the parent's queue."""
        parent = self._sender
        # The parent's lock may have been held by one of its threads at fork():
        # nothing here takes it. The sent ids are kept (the parent alerted them).
        self._sender = _Sender(OrderedDict(parent.seen))
        # Sibling workers forked from one parent would otherwise draw the same
        # jitter and retry in step against a receiver that is coming back.
        self._rng = random.Random()  # noqa: S311 - jitter, not secrets
        # A child has none of the parent's threads, so nothing reads this there;
        # called in-process (a test), it stops that thread after its current send.
        parent.closing = True

    def at_exit(self) -> None:
        """Deliver what is queued for up to ``_EXIT_TIMEOUT`` seconds, then stop."""
        if not self._sender.closing:
            self.close(_EXIT_TIMEOUT)

    def _offer(self, lead: Mapping[str, Any]) -> str | None:
        """Count ``lead`` and queue its alerts; return why none were queued, to log."""
        sender = self._sender
        if not self._deserves_alert(lead):
            with sender.lock:
                sender.counts["skipped"] += 1
            return None
        message_id = lead.get("message_id")
        # Encoded here, so a lead the caller changes later cannot change the alert.
        jobs = [self._job(webhook, lead, message_id) for webhook in self._webhooks]
        with sender.lock:
            if sender.closing:
                sender.counts["failed"] += len(jobs)
                return "the alerter is closed"
            if message_id is not None:
                if message_id in sender.seen:
                    sender.counts["duplicates"] += 1
                    return None
                sender.seen[message_id] = None
                if len(sender.seen) > _REMEMBERED:
                    sender.seen.popitem(last=False)
            if sender.pending + len(jobs) > _MAX_PENDING:
                sender.counts["failed"] += len(jobs)
                return f"{sender.pending} alerts are already queued"
            now = time.monotonic()
            for job in jobs:
                heapq.heappush(sender.schedule, (now, next(sender.order), job))
            if sender.thread is None or not sender.thread.is_alive():
                sender.thread = threading.Thread(
                    target=self._run, args=(sender,), name=_THREAD_NAME, daemon=True
                )
                sender.thread.start()
            sender.wake.notify_all()
        return None

    def _deserves_alert(self, lead: Mapping[str, Any]) -> bool:
        """Whether ``lead`` is an upward crossing into an alert tier that sales may contact."""
        return (
            lead.get("direction") == "up"
            and lead.get("tier") in self._tiers
            and lead.get("route") != "do_not_contact"
            and lead.get("subject_id") not in self._do_not_contact
            and lead.get("user_id") not in self._do_not_contact
        )

    def _job(self, webhook: Webhook, lead: Mapping[str, Any], message_id: object) -> _Job:
        """Encode the request ``webhook`` gets for ``lead``."""
        body = _ENCODER.encode(webhook.payload(lead, feed_url=self._feed_url))
        headers = httpx.Headers({"User-Agent": f"pqlsdk/{__version__}"})
        if message_id is not None:
            headers["X-Pqlsdk-Message-Id"] = str(message_id)
        headers.update(webhook.headers if isinstance(webhook, JSONWebhook) else {})
        headers["Content-Type"] = "application/json"  # after the user's: the body is JSON
        return _Job(webhook=webhook, body=body, headers=headers)

    def _run(self, sender: _Sender) -> None:
        """Send due messages until ``sender`` closes (the sender thread's body)."""
        try:
            while (job := self._next_due(sender)) is not None:
                retry_in = self._attempt(sender, job)
                with sender.lock:
                    sender.in_flight -= 1
                    if retry_in is not None and sender.closing:
                        sender.counts["failed"] += 1
                    elif retry_in is not None:
                        due = time.monotonic() + retry_in
                        heapq.heappush(sender.schedule, (due, next(sender.order), job))
                    sender.wake.notify_all()
        finally:
            if sender.client is not None:
                sender.client.close()

    def _next_due(self, sender: _Sender) -> _Job | None:
        """Wait for the next message that is due and take it; None once closing."""
        with sender.lock:
            while not sender.closing:
                wait: float | None = None
                if sender.schedule:
                    wait = sender.schedule[0][0] - time.monotonic()
                    if wait <= 0:
                        sender.in_flight += 1
                        return heapq.heappop(sender.schedule)[2]
                sender.wake.wait(wait)
            return None

    def _attempt(self, sender: _Sender, job: _Job) -> float | None:
        """Send ``job`` once and count the outcome; return seconds until its retry, or None."""
        if not job.sends:
            job.started = time.monotonic()
        job.sends += 1
        host = _host(job.webhook.url)
        try:
            response = self._http(sender).post(
                job.webhook.url, content=job.body, headers=job.headers, timeout=self._timeout
            )
        except httpx.RequestError as exc:
            # Timeouts, refused or reset connections, DNS failures: worth another try.
            problem, retry_after = type(exc).__name__, None
        except Exception as exc:  # an injected client's fault must not kill the sender
            self._failed(sender, f"the HTTP client raised {type(exc).__name__} for {host}")
            return None
        else:
            status = response.status_code
            if response.is_success:
                with sender.lock:
                    sender.counts["sent"] += 1
                return None
            if not retryable_status(status):
                self._failed(sender, f"{host} refused an alert with HTTP {status}")
                return None
            problem = f"HTTP {status}"
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        delay = self._retry.delay(job.sends - 1, retry_after=retry_after, rng=self._rng)
        elapsed = time.monotonic() - job.started
        if self._retry.allows(job.sends, elapsed, delay):
            return delay
        self._failed(
            sender,
            f"gave up on an alert to {host} after {job.sends} attempt(s) in {elapsed:.1f}s"
            f" (last: {problem})",
        )
        return None

    def _http(self, sender: _Sender) -> httpx.Client:
        """Return the injected client, or this process's own (made on first use, in the thread)."""
        if self._client is not None:
            return self._client
        if sender.client is None:
            sender.client = httpx.Client(timeout=self._timeout)
        return sender.client

    def _failed(self, sender: _Sender, problem: str) -> None:
        """Count a message that will not be delivered, and say why."""
        with sender.lock:
            sender.counts["failed"] += 1
        logger.warning("pqlsdk alerts: %s", problem)


def _names(what: str, values: Collection[str]) -> frozenset[str]:
    """Return ``values`` as a set of strings; refuse a lone string (a set of its letters)."""
    if isinstance(values, str) or not isinstance(values, Collection):
        raise ConfigError(f"{what} must be a collection of strings, e.g. a tuple or a set")
    if not all(isinstance(value, str) for value in values):
        raise ConfigError(f"{what} must contain only strings")
    return frozenset(values)


def _slack_message(lead: Mapping[str, Any], feed_url: str | None) -> dict[str, Any]:
    """Build the Block Kit message for ``lead``: header, facts, reasons, features, feed link."""
    tier = show(lead.get("tier"))
    kind = "PQA" if lead.get("subject") == "account" else "PQL"
    flame = "🔥 " if tier == "burning" else ""
    title = f"{flame}{tier} {kind}: {show(lead.get('subject_id'))}"
    score = show(lead.get("score"))
    route = show(lead.get("route")).replace("_", " ")
    facts = {
        "Score": score,
        "Tier": f"{tier} (was {show(lead.get('previous_tier'))})",
        "Route": route,
        "Team size": show(lead.get("team_size")),
        "Crossed at": show(lead.get("crossed_at")),
        "Model": show(lead.get("model")),
    }
    if kind == "PQA":
        facts["Triggered by"] = show(lead.get("user_id"))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, _HEADER_MAX)}},
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*{name}*\n{_escape(value)}", _FIELD_MAX) for name, value in facts.items()
            ],
        },
    ]
    reasons = reason_texts(lead.get("reasons") or (), _TOP_REASONS)
    if reasons:
        lines = "\n".join(f"• {_escape(reason)}" for reason in reasons)
        blocks.append(_section(f"*Why*\n{lines}"))
    members = [m for m in lead.get("members") or () if isinstance(m, Mapping)]
    qualifying = [m for m in members if m.get("qualifies", True)]
    if kind == "PQA" and qualifying:
        lines = "\n".join(
            f"• {_escape(show(m.get('user_id')))}: {show(m.get('tier'))} {show(m.get('score'))}"
            for m in qualifying
        )
        head = f"*Qualifying members ({len(qualifying)} of {show(lead.get('team_size'))} active)*"
        blocks.append(_section(f"{head}\n{lines}"))
    features = ", ".join(show(feature) for feature in lead.get("top_features") or ())
    if features:
        blocks.append(_section(f"*Top features*\n{_escape(features)}"))
    if feed_url is not None:
        # A link rather than a button: a button needs the Slack app to acknowledge
        # clicks, which an incoming webhook cannot, so Slack would flag it.
        link = _escape(feed_url.replace("|", "%7C"))
        blocks.append(_section(f"<{link}|Open the PQL feed>"))
    text = _clip(_escape(f"{title}: score {score}, route {route}"), _TEXT_MAX)
    return {"text": text, "blocks": blocks}


def _escape(text: str) -> str:
    """Escape mrkdwn's control characters, so that ids cannot mention or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str, limit: int) -> dict[str, str]:
    """Return a mrkdwn text object of at most ``limit`` characters."""
    return {"type": "mrkdwn", "text": _clip(text, limit)}


def _section(text: str) -> dict[str, Any]:
    """Return a section block with mrkdwn text."""
    return {"type": "section", "text": _mrkdwn(text, _TEXT_MAX)}
