"""Host apps for the Flask integration's tests: a real Flask app over a real SQLite file."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, render_template_string, request
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

import pqlsdk
from pqlsdk.integrations.flask import PQLSDK, require_feature

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"
EXAMPLE = ROOT / "examples" / "flask_app" / "app.py"
TOKEN = re.compile(r'name="pqlsdk_csrf" value="([^"]+)"')
MOMENT_ID = re.compile(r'data-pqlsdk-moment="([^"]+)"')


@dataclass
class Host:
    """An app with the extension, its test client, and who is asking (header ``X-User``)."""

    app: Flask
    ext: PQLSDK

    def get(self, path: str, user: str | None = None, **kwargs: Any) -> TestResponse:
        return self.app.test_client().get(path, headers=_who(user), **kwargs)

    def post(self, path: str, user: str | None = None, **kwargs: Any) -> TestResponse:
        headers = {**_who(user), **kwargs.pop("headers", {})}
        return self.app.test_client().post(path, headers=headers, **kwargs)

    @property
    def client(self) -> pqlsdk.Client:
        with self.app.app_context():
            return self.ext.client

    def token(self, user: str) -> str:
        """The CSRF token a page rendered for ``user`` carries (``pqlsdk_csrf_token()``)."""
        with self.app.test_request_context(headers={"X-User": user}):
            found: str = render_template_string("{{ pqlsdk_csrf_token() }}")
        return found


def _who(user: str | None) -> dict[str, str]:
    return {} if user is None else {"X-User": user}


def make_host(tmp_path: Path, clock: pqlsdk.FixedClock, **config: Any) -> Host:
    """A host app whose user is the ``X-User`` header; views for every kind of denial."""
    ext = PQLSDK(user=lambda: request.headers.get("X-User"))
    app = Flask("host", instance_path=str(tmp_path / "instance"))
    app.config.update(
        SECRET_KEY="test-secret",
        PQLSDK_RULES=PLAYBOOK,
        PQLSDK_STORE=f"sqlite:///{tmp_path}/pqlsdk.db",
        PQLSDK_STRICT=True,
        PQLSDK_CLOCK=clock,
        PQLSDK_UPGRADE_URL="/plans",
    )
    app.config.update(config)
    ext.init_app(app)

    @app.get("/page")
    def page() -> str:
        return render_template_string("<main>{{ pqlsdk_moment() }}</main>")

    @app.get("/twice")
    def twice() -> str:
        return render_template_string("{{ pqlsdk_moment() }}<hr>{{ pqlsdk_moment() }}")

    @app.get("/sso")
    @require_feature("sso")
    def sso() -> str:
        return "sso settings"

    @app.get("/reports")
    @ext.require_feature("reports")
    def reports() -> str:
        return "reports"

    @app.get("/sso-403")
    @require_feature("sso", on_denied="403")
    def sso_403() -> str:
        return "sso settings"

    @app.get("/sso-redirect")
    @require_feature("sso", on_denied="redirect")
    def sso_redirect() -> str:
        return "sso settings"

    @app.get("/sso-elsewhere")
    @require_feature("sso", on_denied="redirect", redirect_to="/elsewhere")
    def sso_elsewhere() -> str:
        return "sso settings"

    return Host(app, ext)


def seed(client: pqlsdk.Client) -> None:
    """tom: trial ending in 2 days; tina: trial with 12 left; bea: Business."""
    now = client.clock.now()
    ending = now + timedelta(days=2) - timedelta(hours=1)
    client.identify("tom", {"plan": "trial", "trial_ends_at": ending.isoformat()})
    client.identify(
        "tina", {"plan": "trial", "trial_ends_at": (now + timedelta(days=12)).isoformat()}
    )
    client.identify("bea", {"plan": "business"})


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) from a thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
