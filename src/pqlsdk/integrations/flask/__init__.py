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

Configuration, read from ``app.config`` by ``init_app`` (every mistake is
raised there as one ``pqlsdk.ConfigError`` naming each key, not on the first
request): the ``PQLSDK_*`` keys are the options Django reads from
``settings.PQLSDK``, one table checked by one reader
(``pqlsdk.integrations._options``; the configuration reference shows it).
``PQLSDK_RULES`` (a path or loaded ``Rules``) is required unless the
extension was given a ``client``; ``PQLSDK_STORE`` defaults to
``sqlite:///pqlsdk.db``, a relative SQLite path resolved in
``app.instance_path`` (as Flask-SQLAlchemy does). ``PQLSDK_ENDPOINT`` and
``PQLSDK_WRITE_KEY``, ``PQLSDK_STRICT``, ``PQLSDK_CLOCK``,
``PQLSDK_GATE_FALLBACK``, ``PQLSDK_RETENTION``, ``PQLSDK_DELIVERY`` (a
``Delivery`` or a mapping of its fields), ``PQLSDK_ON_ERROR`` and
``PQLSDK_ON_TIER_CHANGE`` go to the ``Client``; ``PQLSDK_UPGRADE_URL``,
``PQLSDK_URL_PREFIX`` and ``PQLSDK_CSRF_MAX_AGE`` are the extension's own.
An unknown ``PQLSDK_*`` key is refused with the nearest known one.

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
