"""A Flask extension: feature gates on views, moments in templates, outcomes from the browser.

Usage:

```python
from pqlsdk.integrations.flask import PQLSDK

pqlsdk = PQLSDK()                       # one object, any number of apps

def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "..."    # signs pqlsdk's CSRF tokens
    app.config["PQLSDK_RULES"] = "rules/playbook.toml"
    pqlsdk.init_app(app)
    return app

@pqlsdk.user_id                         # optional: flask-login's current_user by default
def current_user_id() -> str | None:
    return session.get("uid")

@app.get("/settings/sso")
@pqlsdk.require_feature("sso")          # denied: a 403 page with the upgrade prompt
def sso_settings() -> str: ...
```

and ``{{ pqlsdk_moment() }}`` in a layout renders the user's moment (a trial
notice, an upgrade nudge) with its two buttons, which post to the extension's
blueprint (``/pqlsdk/outcome``) and come back.

Configuration, read from ``app.config`` by ``init_app`` (a mistake raises
``pqlsdk.ConfigError`` naming the key there, not on the first request):

- ``PQLSDK_RULES``: the rules file (a path or loaded ``Rules``); required
  unless the extension was given a ``client``. Loaded at ``init_app``.
- ``PQLSDK_STORE``: a store URL or a ``Store``; default ``sqlite:///pqlsdk.db``.
  A relative SQLite path is resolved in ``app.instance_path`` (as
  Flask-SQLAlchemy does), so the file lands beside the app's other instance files.
- ``PQLSDK_ENDPOINT`` and ``PQLSDK_WRITE_KEY``: the collector, if any.
- ``PQLSDK_STRICT``: a strict client, for tests (faults raise).
- ``PQLSDK_CLOCK``: a ``pqlsdk.Clock`` (``FixedClock`` in tests and demos).
- ``PQLSDK_UPGRADE_URL``: where a click on a moment's call to action goes
  (default ``"/"``); a dismissal goes back to the page it came from.
- ``PQLSDK_URL_PREFIX``: where the blueprint is mounted (default ``/pqlsdk``).
- ``PQLSDK_CSRF_MAX_AGE``: seconds a CSRF token stays valid (default a day).

The client is built on first use in each process, not at ``init_app``, so an
app created before ``gunicorn --preload`` forks opens nothing in the master;
a client that exists before a fork survives it anyway. It is never closed per
request: pqlsdk's own exit hooks apply, commit and deliver what it holds when
the interpreter exits. A ``client`` passed in is the host's to close.

The current user comes from a ``user_loader()`` returning an id or None (the
``user`` argument or the ``@ext.user_id`` decorator); without one, from
flask-login's ``current_user.get_id()`` when the app has a ``LoginManager``
and the user is authenticated. An ``account`` loader (or ``@ext.account_id``)
links the user to their account (a ``group`` call, once per user and account
per process), so account signals score.

CSRF: the outcome endpoint accepts a token signed with the app's
``SECRET_KEY`` (bound to the user's id, time-limited): the template's forms
carry it in a hidden field, and single-page apps send it as the header
``X-PQLSDK-CSRF`` (from ``{{ pqlsdk_csrf_token() }}``) with a JSON body
(Content-Type ``application/json``; anything else is refused). Flask-WTF's
``CSRFProtect``, when the host installs it, checks every POST first and does
not know pqlsdk's token: exempt the blueprint, which checks its own,
``csrf.exempt(app.blueprints["pqlsdk"])`` (single-page apps may instead send
both tokens).
"""

from __future__ import annotations

try:
    import flask  # noqa: F401 - checked here, so the error names the extra
except ImportError as exc:  # pragma: no cover - the test set-up installs every extra
    raise ImportError("pqlsdk.integrations.flask needs Flask: pip install 'pqlsdk[flask]'") from exc

from ._csrf import CSRF_FIELD, CSRF_HEADER
from ._extension import PQLSDK
from ._extension import Loader as Loader  # a public type of PQLSDK's arguments, as before
from ._views import (
    BLOCKED_TEMPLATE,
    OnDenied,
    pqlsdk_csrf_token,
    pqlsdk_gate_moment,
    pqlsdk_moment,
    require_feature,
)

__all__ = [
    "BLOCKED_TEMPLATE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "PQLSDK",
    "OnDenied",
    "pqlsdk_csrf_token",
    "pqlsdk_gate_moment",
    "pqlsdk_moment",
    "require_feature",
]
