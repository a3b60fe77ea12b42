"""Acme Reports: a small SaaS app that embeds pqlsdk through its Flask integration.

Run it (after ``bash scripts/setup.sh dev``) and open http://127.0.0.1:5000::

    .venv/bin/python examples/flask_app/app.py

Sign in as one of the demo users: a trial user, a trial that ends in two days,
a trial user whose activity makes them a hot lead, and a Business customer.
The trial users meet a locked feature (``/settings/sso``, Business only), the
ending trial sees a notice, the hot lead an upgrade widget; each moment's
buttons post back to pqlsdk, which keeps caps and cooldowns.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

import pqlsdk
from pqlsdk.integrations.flask import PQLSDK, require_feature

HERE = Path(__file__).resolve().parent
RULES = HERE.parent / "rules" / "playbook.toml"
# The app's state: pqlsdk's default store (sqlite:///pqlsdk.db) is resolved in the
# instance folder, so it is examples/flask_app/instance/pqlsdk.db however the app is
# started (Flask would otherwise pick ./instance of the directory it was run from).
# The folder is ignored by git; delete it to start over.
INSTANCE = HERE / "instance"

pql = PQLSDK()
login_manager = LoginManager()
login_manager.login_view = "login"


@dataclass(frozen=True)
class DemoUser(UserMixin):
    """One of the people you can sign in as; the id is also pqlsdk's user id."""

    id: str
    name: str
    email: str
    company: str
    plan: str
    trial_days: int | None  # days until the trial ends; None for paying customers
    story: str


DEMO_USERS = {
    user.id: user
    for user in [
        DemoUser(
            "tina",
            "Tina Park",
            "tina@globex.test",
            "Globex",
            "trial",
            12,
            "Trial, 12 days left, just looking around",
        ),
        DemoUser(
            "tom",
            "Tom Reyes",
            "tom@initech.test",
            "Initech",
            "trial",
            2,
            "Trial that ends in 2 days",
        ),
        DemoUser(
            "hana",
            "Hana Ito",
            "hana@umbrella.test",
            "Umbrella",
            "trial",
            20,
            "Trial, hit a limit, asked for a demo, keeps checking pricing",
        ),
        DemoUser(
            "bea", "Bea Okafor", "bea@hooli.test", "Hooli", "business", None, "Business customer"
        ),
    ]
}

REPORTS = [
    ("Weekly revenue", "Finance", "2 hours ago"),
    ("Churn by cohort", "Growth", "yesterday"),
    ("Pipeline by region", "Sales", "3 days ago"),
]


@login_manager.user_loader
def load_user(user_id: str) -> DemoUser | None:
    """Flask-login's loader; pqlsdk reads ``current_user.get_id()`` by default."""
    return DEMO_USERS.get(user_id)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: config, pqlsdk, flask-login, routes, and the demo users' history."""
    app = Flask(__name__, instance_path=str(INSTANCE))
    app.config.update(
        SECRET_KEY=os.environ.get("ACME_SECRET_KEY") or secrets.token_hex(16),
        PQLSDK_RULES=str(RULES),
        PQLSDK_UPGRADE_URL="/upgrade",
    )
    for key in ("PQLSDK_STORE", "PQLSDK_ENDPOINT", "PQLSDK_WRITE_KEY"):
        if os.environ.get(key):
            app.config[key] = os.environ[key]
    app.config.update(config or {})
    pql.init_app(app)
    login_manager.init_app(app)
    _routes(app)
    with app.app_context():
        seed(pql.client)
    return app


def seed(client: pqlsdk.Client) -> None:
    """Give the demo users their plans, companies and a recent history of product events.

    Run at every start, relative to the client's clock, so "ends in 2 days"
    stays true and Hana's activity stays recent; the events' message ids name
    the day, so restarts on one day record them once. Hana's make her a hot
    lead under the playbook: she completed the core workflow (the activation
    gate), hit a limit (+30), asked for a demo (+30) and viewed pricing three
    times (+15): 75, hot.
    """
    now = client.clock.now()
    for user in DEMO_USERS.values():
        traits: dict[str, Any] = {"name": user.name, "email": user.email, "plan": user.plan}
        if user.trial_days is not None:
            ends = now + timedelta(days=user.trial_days) - timedelta(hours=1)
            traits["trial_ends_at"] = ends.isoformat()
        client.identify(user.id, traits)
        client.group(user.id, user.company.lower(), {"name": user.company, "employees": 40})
    history = [
        ("core_workflow_completed", {}),
        ("limit_hit", {"limit": "seats"}),
        ("demo_requested", {}),
        *[("page_viewed", {"path": "/pricing"})] * 3,
    ]
    for hours, (event, properties) in enumerate(history, start=1):
        client.track(
            "hana",
            event,
            properties,
            timestamp=now - timedelta(hours=hours),
            message_id=f"seed-hana-{now:%Y-%m-%d}-{hours}",
        )


def _readable(path: Path) -> str:
    """``path`` as the reader typed the README's command: relative to where they are, if inside."""
    try:
        return f"{path.relative_to(Path.cwd())}/"
    except ValueError:
        return f"{path}/"


def _routes(app: Flask) -> None:
    def login_page(next_url: str, error: str | None = None) -> str:
        return render_template(
            "login.html",
            users=DEMO_USERS.values(),
            next=next_url,
            error=error,
            state=_readable(Path(app.instance_path)),
        )

    @app.get("/login")
    def login() -> ResponseReturnValue:
        return login_page(request.args.get("next", ""))

    @app.post("/login")
    def login_post() -> ResponseReturnValue:
        user = DEMO_USERS.get(request.form.get("user", ""))
        if user is None:
            return login_page("", "Pick a demo user."), 400
        login_user(user)
        target = request.form.get("next", "")
        local = target.startswith("/") and not target.startswith("//") and "\\" not in target
        return redirect(target if local else url_for("dashboard"))

    @app.post("/logout")
    def logout() -> ResponseReturnValue:
        logout_user()
        return redirect(url_for("login"))

    @app.get("/")
    def dashboard() -> ResponseReturnValue:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        pql.client.track(current_user.id, "feature_used", {"feature": "reports"})
        return render_template("dashboard.html", reports=REPORTS)

    @app.get("/settings/sso")
    @require_feature("sso")
    def sso_settings() -> ResponseReturnValue:
        return render_template("sso.html")

    @app.get("/upgrade")
    def upgrade() -> ResponseReturnValue:
        if current_user.is_authenticated:
            pql.client.track(current_user.id, "page_viewed", {"path": "/pricing"})
        return render_template("upgrade.html")


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))
