"""A Redis store per test: a unique key prefix on the test server, deleted afterwards.

The server comes from ``PQLSDK_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``).
When it is unreachable the tests skip with the reason, except under ``CI=true``,
where a missing server fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

redis = pytest.importorskip("redis")

from pqlsdk.stores.redis import RedisStore  # noqa: E402 - after the extra is known to be there

DEFAULT_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test server's URL, checked once: skip (or fail under CI) when it does not answer."""
    url = os.environ.get("PQLSDK_TEST_REDIS_URL", DEFAULT_URL)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        reason = f"no Redis server at {url} ({exc}); set PQLSDK_TEST_REDIS_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@pytest.fixture
def make_url(redis_url: str) -> Iterator[Callable[[], str]]:
    """Hand out store URLs with fresh prefixes; delete every key under them afterwards."""
    prefixes: list[str] = []

    def make() -> str:
        prefixes.append(f"pqlsdk-test-{uuid.uuid4().hex[:12]}")
        separator = "&" if "?" in redis_url else "?"
        return f"{redis_url}{separator}prefix={prefixes[-1]}"

    yield make
    client = redis.Redis.from_url(redis_url)
    for prefix in prefixes:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    client.close()


@pytest.fixture
def redis_store_url(make_url: Callable[[], str]) -> str:
    """One fresh store URL."""
    return make_url()


@pytest.fixture
def store(redis_store_url: str) -> Iterator[RedisStore]:
    """The Redis store, under the name the shared store tests (tests/test_state.py) use."""
    opened = RedisStore.from_url(redis_store_url)
    yield opened
    opened.close()
