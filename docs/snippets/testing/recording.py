import pqlsdk
from pqlsdk.testing import RecordingTransport

transport = RecordingTransport()
with pqlsdk.Client(store="memory://", transport=transport) as client:
    client.track("u1", "signed_up")
assert [m["event"] for m in transport.messages] == ["signed_up"]
