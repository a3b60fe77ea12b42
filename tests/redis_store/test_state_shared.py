"""The store tests every store passes (tests/test_state.py), run against the Redis store.

They are imported, not copied: the ``store`` fixture of this folder's conftest
replaces the memory/SQLite one, so each runs once, on Redis.
"""

from __future__ import annotations

from ..test_state import (
    test_account_is_the_latest_group_by_time,
    test_account_traits_merge_across_users,
    test_active_members_follow_tracks_and_moves,
    test_anonymous_messages_key_on_the_anonymous_id,
    test_arrival_order_does_not_change_state,
    test_duplicate_message_ids_are_recorded_once,
    test_identify_and_group_are_not_activity,
    test_maintain_is_idempotent_and_feeds_new_events,
    test_many_messages_page_through_in_order,
    test_messages_come_back_in_time_order,
    test_prune_drops_old_log_entries_but_keeps_state,
    test_record_hands_back_the_states_it_wrote,
    test_swap_tier_is_a_compare_and_set,
    test_traits_merge_by_time_not_arrival,
    test_unknown_subjects_have_no_state,
    test_update_creates_state_for_new_subjects,
)

__all__ = [
    "test_account_is_the_latest_group_by_time",
    "test_account_traits_merge_across_users",
    "test_active_members_follow_tracks_and_moves",
    "test_anonymous_messages_key_on_the_anonymous_id",
    "test_arrival_order_does_not_change_state",
    "test_duplicate_message_ids_are_recorded_once",
    "test_identify_and_group_are_not_activity",
    "test_maintain_is_idempotent_and_feeds_new_events",
    "test_many_messages_page_through_in_order",
    "test_messages_come_back_in_time_order",
    "test_prune_drops_old_log_entries_but_keeps_state",
    "test_record_hands_back_the_states_it_wrote",
    "test_swap_tier_is_a_compare_and_set",
    "test_traits_merge_by_time_not_arrival",
    "test_unknown_subjects_have_no_state",
    "test_update_creates_state_for_new_subjects",
]
