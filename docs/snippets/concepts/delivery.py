import logging

import pqlsdk

log = logging.getLogger(__name__)

client = pqlsdk.Client(
    store="sqlite:///pqlsdk.db",
    endpoint="https://collector.example.com",  # POST {endpoint}/v1/batch
    write_key="wk_live_...",  # HTTP Basic user, as Segment does
    delivery=pqlsdk.Delivery(flush_at=100, flush_interval=1.0),
    on_error=lambda error: log.warning("pqlsdk delivery: %s", error),
)
client.close()
