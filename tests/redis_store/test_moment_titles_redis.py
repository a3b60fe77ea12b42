"""The moment-title tests (tests/test_moment_titles.py), run against the Redis store."""

from __future__ import annotations

import pytest

from ..test_moment_titles import (
    test_a_crossing_names_each_moment_as_the_user_saw_it,
    test_a_feature_name_no_store_can_encode_is_kept_readable,
    test_a_title_kept_for_the_feed_is_cut_but_the_user_sees_it_whole,
)

__all__ = [
    "test_a_crossing_names_each_moment_as_the_user_saw_it",
    "test_a_feature_name_no_store_can_encode_is_kept_readable",
    "test_a_title_kept_for_the_feed_is_cut_but_the_user_sees_it_whole",
]


@pytest.fixture
def store_url(redis_store_url: str) -> str:
    """A fresh Redis store in place of the memory and SQLite ones."""
    return redis_store_url
