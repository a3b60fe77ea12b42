from flask import Flask, request

import pqlsdk

app = Flask(__name__)
client = pqlsdk.Client(store="sqlite:///pqlsdk.db", rules="rules.toml")


@app.get("/settings/sso")
def sso_settings():
    user_id = request.args.get("user", "u1")  # your signed-in user's id
    client.identify(user_id, {"plan": "trial"})
    gate = client.gate(user_id, "sso")
    if not gate.allowed:
        return (gate.moment.title if gate.moment else "Upgrade to use SSO"), 403
    return "SSO settings"
