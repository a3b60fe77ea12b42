from flask import Flask, redirect, render_template_string, session

from pqlsdk.integrations.flask import PQLSDK, require_feature

pql = PQLSDK()


@pql.user_id  # optional: flask-login's current_user is the default
def current_user_id():
    return session.get("user_id")


def create_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "change-me"  # signs pqlsdk's CSRF tokens
    app.config["PQLSDK_RULES"] = "playbook.toml"
    app.config["PQLSDK_STORE"] = "memory://"  # default: sqlite:///pqlsdk.db in instance_path
    app.config["PQLSDK_UPGRADE_URL"] = "/billing"
    pql.init_app(app)

    @app.get("/login/<user_id>")
    def login(user_id):
        session["user_id"] = user_id
        pql.client.identify(user_id, {"plan": "trial"})
        return redirect("/")

    @app.get("/")
    def home():
        pql.client.track(current_user_id(), "page_viewed", {"path": "/"})
        return render_template_string("<main>{{ pqlsdk_moment() }} Reports</main>")

    @app.get("/settings/sso")
    @require_feature("sso")  # denied: a 403 page with the blocked-feature prompt
    def sso_settings():
        return "SSO settings"

    return app


app = create_app()
