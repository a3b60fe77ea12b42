from openfeature import api
from openfeature.evaluation_context import EvaluationContext

import pqlsdk
from pqlsdk.integrations.openfeature import PQLProvider

client = pqlsdk.Client(store="memory://", rules="playbook.toml")
api.set_provider(PQLProvider(client))
flags = api.get_client()

client.identify("u1", {"plan": "trial"})
context = EvaluationContext(targeting_key="u1")  # the targeting key is the user id
assert flags.get_boolean_value("reports", False, context) is True
assert flags.get_boolean_value("sso", False, context) is False  # tracked as a buying signal
assert flags.get_string_value("pqlsdk.tier", "cold", context) == "cold"
assert flags.get_float_value("pqlsdk.score", 0.0, context) == 0.0
client.close()
