import logging
import socket

import pqlsdk

logging.basicConfig(level=logging.WARNING)  # pqlsdk logs to the "pqlsdk" logger
logging.getLogger("pqlsdk").setLevel(logging.WARNING)

# A port on this machine where nothing listens: the collector is down.
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"

errors = []
client = pqlsdk.Client(
    store="sqlite:///pqlsdk.db",  # a durable outbox: nothing is dropped while it is down
    endpoint=endpoint,
    write_key="wk_live_1",
    on_error=errors.append,
)
client.track("u1", "report_created")
result = client.flush(timeout=0.5)  # returns within its timeout, whatever the collector does
assert (result.delivered, result.pending) == (0, 1)

stats = client.stats()
assert (stats.recorded, stats.delivered, stats.dropped_total) == (1, 0, 0)
client.close(timeout=0.5)  # the message waits in pqlsdk.db for the next run
