"""The Redis store's URL: pqlsdk's own query parameters, their defaults, and the shown URL.

Kept apart from the store because a URL is read once, at open, by rules of its
own (which parameters are pqlsdk's and which go to redis-py, what a malformed
value says, what ``url`` may show): none of that concerns a running store.
"""

from __future__ import annotations

import math
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs
import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from ..._exceptions import ConfigError

DEFAULT_PREFIX: Final = "pqlsdk"
"""The key prefix when the URL names none.

Added in version 0.1.0.
"""
DEFAULT_TIMEOUT: Final = 0.1
"""Seconds a command (or a connection attempt) may take before Redis counts as away
(``?timeout=``; ``?connect_timeout=`` sets the connection's alone).

Added in version 0.1.0.
"""
DEFAULT_BUFFER: Final = 10_000
"""Messages held in this process while Redis is away (``?buffer=``).

Added in version 0.1.0.
"""
DEFAULT_PROBE_INTERVAL: Final = 1.0
"""Seconds between attempts to reach Redis during an outage (``?probe_interval=``).

Added in version 0.1.0.
"""
DEFAULT_CACHE_TTL: Final = 0.25
"""Seconds a user or account read is reused (``?cache_ttl=``; 0 turns the cache off).

Added in version 0.1.0.
"""

_SECRET: Final = frozenset({"username", "password"})  # query parameters url leaves out
_OPTIONS: Final = frozenset(
    {"prefix", "timeout", "connect_timeout", "buffer", "probe_interval", "cache_ttl"}
)  # query parameters pqlsdk reads (the others go to redis-py)


@attrs.frozen
class Opened:
    """What a store URL opens: the redis-py client and the store's own settings."""

    client: redis.Redis
    prefix: str
    url: str
    """The URL to show: no user name or password."""
    buffer: int
    probe_interval: float
    cache_ttl: float


def read_url(url: str) -> Opened:
    """Read ``url``'s options (``ConfigError`` for a malformed one) and make its client."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours: dict[str, str] = {}
    for key, value in query:
        if key in _OPTIONS:
            if key in ours:
                raise ConfigError(f"store URL {url!r}: give {key}= once")
            ours[key] = value
    timeout = _option(url, ours, "timeout", DEFAULT_TIMEOUT)
    connect_timeout = _option(url, ours, "connect_timeout", timeout)
    buffer = int(_option(url, ours, "buffer", DEFAULT_BUFFER, zero=True, kind=int))
    probe_interval = _option(url, ours, "probe_interval", DEFAULT_PROBE_INTERVAL)
    cache_ttl = _option(url, ours, "cache_ttl", DEFAULT_CACHE_TTL, zero=True)
    options = [(key, value) for key, value in query if key not in _OPTIONS]
    connect = urlunsplit(parts._replace(query=urlencode(options)))
    try:
        client = redis.Redis.from_url(
            connect,
            socket_timeout=timeout,
            socket_connect_timeout=connect_timeout,
            # One immediate retry on a broken connection (a pooled socket the
            # server closed when it restarted); a timeout is never retried, so
            # a slow server costs a call one timeout, not several.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
    except ValueError as exc:
        raise ConfigError(f"store URL {url!r}: {exc}") from exc
    host = parts.hostname or "localhost"
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    public = urlencode([(key, value) for key, value in query if key not in _SECRET])
    return Opened(
        client,
        prefix=ours.get("prefix", DEFAULT_PREFIX),
        url=urlunsplit((parts.scheme, netloc, parts.path, public, "")),
        buffer=buffer,
        probe_interval=probe_interval,
        cache_ttl=cache_ttl,
    )


def _option(
    url: str,
    given: dict[str, str],
    name: str,
    default: float,
    *,
    zero: bool = False,
    kind: type[float] | type[int] = float,
) -> float:
    """Read one of pqlsdk's numeric query parameters: positive, or also 0 where ``zero``."""
    text = given.get(name)
    if text is None:
        return default
    try:
        value: float = kind(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        what = "whole number" if kind is int else "number of seconds"
        raise ConfigError(
            f"store URL {url!r}: {name}={text!r}: give a {'non-negative' if zero else 'positive'} "
            f"{what}"
        )
    return value
