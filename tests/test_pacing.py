"""Pacing: background threads make way while the host calls (``pqlsdk._pacing``).

The intake's steps are driven here from the test's thread (its own thread is
kept away by a long ``gather``), so what one step applies is exact.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pqlsdk import _pacing
from pqlsdk._intake import _BATCH, _BEHIND, _SLICE, _SLICE_BEHIND, Intake
from pqlsdk._journal import Journal
from pqlsdk._pacing import HOST, Pacer, next_nap


def test_a_pacer_sees_whether_the_host_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's calls since the last look, not since ever."""
    monkeypatch.setattr(_pacing, "_QUIET", 0.0)
    pacer = Pacer(back_off=True)
    HOST.calls += 1
    assert (pacer.calling(), pacer.calling()) == (True, False)


def test_the_host_counts_as_calling_for_a_while_after_its_last_call() -> None:
    """A late call (its thread descheduled) is no lull: no full chunk for the host to wait for."""
    pacer = Pacer(back_off=True)
    quiet = pacer.calling()
    HOST.calls += 1
    assert (quiet, pacer.calling(), pacer.calling()) == (False, True, True)


def test_a_nap_that_came_back_late_doubles_up_to_a_bound() -> None:
    """Waiting long for the GIL after a nap: the host calls back to back, so come back seldom."""
    naps = [_pacing.SHORTEST_NAP]
    for _ in range(12):
        naps.append(next_nap(naps[-1], naps[-1] + 0.005, back_off=True))
    assert naps[1:3] == [_pacing._BACK_OFF, _pacing._BACK_OFF * 2]
    assert naps[-1] == _pacing._NAP_MAX


def test_a_prompt_nap_or_a_bounded_backlog_keeps_naps_short() -> None:
    """Back at once: the host leaves the GIL free; bounded work in memory never waits long."""
    assert next_nap(0.008, 0.0081, back_off=True) == _pacing.SHORTEST_NAP
    assert next_nap(0.0001, 0.01, back_off=False) == _pacing.SHORTEST_NAP


def test_a_pacer_rests_for_its_nap() -> None:
    """The nap is a real sleep (it lets go of the GIL), and the next one is chosen after it."""
    pacer = Pacer(back_off=True)
    pacer.rest()
    assert pacer._nap in (_pacing.SHORTEST_NAP, _pacing._BACK_OFF)


def idle_intake(applied: list[bytes], **options: object) -> Intake:
    """An intake whose thread stays away (it gathers for a minute)."""
    return Intake(applied.extend, gather=60.0, **options)  # type: ignore[arg-type]


def test_while_the_host_calls_the_intake_applies_a_slice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls since the last step: a slice of a few messages, then a nap; else a full chunk."""
    monkeypatch.setattr(_pacing, "_QUIET", 0.0)
    applied: list[bytes] = []
    journal = Journal(tmp_path / "s.db")
    intake = idle_intake(applied, journal=journal)
    for i in range(_BEHIND - 1):
        intake.put(b"%d" % i)
    intake._step()
    assert len(applied) == _SLICE
    intake._step()  # no call since: full speed
    assert len(applied) == _BEHIND - 1
    intake.close()
    journal.close()


def test_an_intake_behind_takes_larger_slices(tmp_path: Path) -> None:
    """Past ``_BEHIND`` waiting, the slices taken while the host calls are larger: it keeps up."""
    applied: list[bytes] = []
    journal = Journal(tmp_path / "s.db")
    intake = idle_intake(applied, journal=journal)
    for i in range(_BEHIND):
        intake.put(b"%d" % i)
    intake._step()
    assert len(applied) == _SLICE_BEHIND
    intake.close()
    journal.close()


def test_without_a_journal_slices_stop_at_half_the_bound() -> None:
    """A backlog bounded in memory past half full is applied in full chunks, calls or not."""
    applied: list[bytes] = []
    intake = idle_intake(applied, max_pending=20)
    for i in range(12):
        intake.put(b"%d" % i)
    intake._step()
    assert len(applied) == 12
    for i in range(14):
        intake.put(b"%d" % i)
    intake.drain(limit=5)  # 9 left: under half, and the host called
    intake._step()
    assert (len(applied), intake.pending()) == (12 + 5 + _SLICE, 9 - _SLICE)
    intake.close()


def test_an_intake_with_a_window_takes_what_gathered_while_the_host_calls() -> None:
    """For a store that pays per round trip: all that waits (up to ``_BATCH``), not a slice."""
    applied: list[bytes] = []
    intake = idle_intake(applied, window=0.0)
    for i in range(_BATCH + 6):
        intake.put(b"%d" % i)
    intake._step()  # the host called since the last step
    assert (len(applied), intake.pending()) == (_BATCH, 6)
    intake.close()
