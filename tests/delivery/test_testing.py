"""pqlsdk.testing: the RecordingTransport users put in their own tests."""

from __future__ import annotations

import threading

import pqlsdk
import pqlsdk.testing
from pqlsdk._exceptions import BatchRejectedError, RetryableDeliveryError
from pqlsdk.testing import RecordingTransport
from pqlsdk.transports import Transport

from .conftest import MakeBatch


def test_records_batches_in_order(make_batch: MakeBatch) -> None:
    """Every delivered batch is kept, in the order it was sent."""
    transport = RecordingTransport()
    first, second = make_batch(batch_id="a"), make_batch(batch_id="b")

    transport.send(first)
    transport.send(second)

    assert [first, second] == transport.batches


def test_messages_are_decoded_in_order(make_batch: MakeBatch) -> None:
    """``messages`` flattens all batches into decoded dicts, oldest first."""
    transport = RecordingTransport()
    transport.send(make_batch(2, batch_id="a"))
    transport.send(make_batch(1, batch_id="b"))

    actual = [(message["type"], message["event"]) for message in transport.messages]
    expected = [("track", "Signed Up 0"), ("track", "Signed Up 1"), ("track", "Signed Up 0")]
    assert expected == actual


def test_scripted_failures_come_first_then_sends_succeed(make_batch: MakeBatch) -> None:
    """Each scripted error fails one send, in order; failed sends record nothing."""
    errors = [RetryableDeliveryError("down", status=503), BatchRejectedError("no", status=400)]
    transport = RecordingTransport(fail=errors)
    batch = make_batch()
    raised = []
    for _ in range(2):
        try:
            transport.send(batch)
        except (RetryableDeliveryError, BatchRejectedError) as exc:
            raised.append(exc)

    transport.send(batch)

    assert (errors, [batch]) == (raised, transport.batches)


def test_concurrent_sends_are_all_recorded(make_batch: MakeBatch) -> None:
    """Senders on several threads lose no batch."""
    transport = RecordingTransport()
    batch = make_batch(1)

    def send_many() -> None:
        for _ in range(200):
            transport.send(batch)

    threads = [threading.Thread(target=send_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    expected = 800
    assert expected == len(transport.batches)


def test_close_marks_closed_and_keeps_recordings(make_batch: MakeBatch) -> None:
    """``close()`` sets ``closed``; what was recorded stays readable."""
    transport = RecordingTransport()
    transport.send(make_batch(1))

    transport.close()

    expected = (True, 1)
    assert expected == (transport.closed, len(transport.messages))


def test_is_a_transport() -> None:
    """RecordingTransport satisfies the Transport protocol, so it can replace HTTP."""
    assert isinstance(RecordingTransport(), Transport)


def test_reexports_fixed_clock() -> None:
    """``pqlsdk.testing.FixedClock`` is the same class as ``pqlsdk.FixedClock``."""
    assert (pqlsdk.FixedClock, ["FixedClock", "RecordingTransport"]) == (
        pqlsdk.testing.FixedClock,
        pqlsdk.testing.__all__,
    )


def test_module_example_records_a_clients_messages() -> None:
    """The usage example in ``pqlsdk.testing``'s docstring works as written."""
    transport = RecordingTransport()
    client = pqlsdk.Client(store="memory://", transport=transport)
    client.track("u1", "Signed Up")
    client.close()

    expected = ["Signed Up"]
    assert expected == [m["event"] for m in transport.messages]
