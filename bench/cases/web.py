"""Web requests: what the Flask and Django integrations add to a request, in microseconds.

One process per framework builds the same tiny app twice, without and with
pqlsdk, and calls it through WSGI (no sockets: the figure is the framework's
and pqlsdk's work, not the network's). Variants, each against ``bare`` (an
empty view in an app without pqlsdk), timed in interleaved rounds so a slow
spell of the machine hits both alike:

- ``installed``: the same empty view with the integration installed (Flask's
  extension; Django's app and middleware): the cost every request pays;
- ``gated``: a view behind ``require_feature("reports")`` that the user's plan
  allows: one ``gate()`` per request;
- ``moment``: a view rendering ``pqlsdk_moment()`` when nothing is due: one
  ``decide()`` per request and an empty render.

Each figure is the mean per request and its ``added`` microseconds over ``bare``.
Run ``python bench/cases/web.py --framework flask`` (``--quick``: fewer requests).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _case import emit, quick
from _timing import summary, time_calls

import pqlsdk

ROOT = Path(__file__).resolve().parent.parent.parent
PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"
USER = "u-bench"
VARIANTS = ("installed", "gated", "moment")
KEY = "bench-only-key"  # signs nothing outside this process
DJANGO_TEMPLATES = "django.template.backends.django.DjangoTemplates"

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def client() -> pqlsdk.Client:
    """A memory-store client whose user is on the trial plan with nothing due."""
    made = pqlsdk.Client(store="memory://", rules=PLAYBOOK, strict=True)
    made.identify(USER, {"plan": "trial"})
    return made


def environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def request(app: App, path: str) -> Callable[[int], bytes]:
    """Return a call that serves one GET of ``path`` and returns the body (checked 200)."""
    base = environ(path)

    def start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> None:
        if not status.startswith("200"):
            raise RuntimeError(f"GET {path}: {status}")

    def call(_: int) -> bytes:
        served = app(dict(base), start_response)
        try:
            return b"".join(served)
        finally:
            close = getattr(served, "close", None)
            if close is not None:
                close()

    return call


def flask_apps() -> dict[str, tuple[App, str]]:
    from flask import Flask  # noqa: PLC0415 - only this case needs it

    from pqlsdk.integrations.flask import PQLSDK  # noqa: PLC0415

    bare = Flask("bare")
    bare.config["SECRET_KEY"] = KEY  # as every real app has: Flask's sessions cost the same
    bare.add_url_rule("/", "empty", lambda: "")
    extension = PQLSDK(client=client())
    extension.user_id(lambda: USER)
    app = Flask("with_pqlsdk")
    app.config["SECRET_KEY"] = KEY
    extension.init_app(app)
    app.add_url_rule("/", "empty", lambda: "")
    # Named first: mypy cannot infer the lambda inside add_url_rule()'s arguments.
    gated = extension.require_feature("reports")(lambda: "")
    app.add_url_rule("/gated", "gated", gated)
    with app.app_context():  # compiled once, as a template file would be
        moment = app.jinja_env.from_string("{{ pqlsdk_moment() }}")
    app.add_url_rule("/moment", "moment", moment.render)
    return {
        "bare": (bare.wsgi_app, "/"),
        "installed": (app.wsgi_app, "/"),
        "gated": (app.wsgi_app, "/gated"),
        "moment": (app.wsgi_app, "/moment"),
    }


def user_of(request: Any) -> str:
    return USER


def django_apps() -> dict[str, tuple[App, str]]:
    import django  # noqa: PLC0415 - only this case needs it
    from django.conf import settings  # noqa: PLC0415
    from django.core.handlers.wsgi import WSGIHandler  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    settings.configure(
        DEBUG=False,
        SECRET_KEY=KEY,
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["pqlsdk.integrations.django"],
        MIDDLEWARE=[],
        TEMPLATES=[{"BACKEND": DJANGO_TEMPLATES, "APP_DIRS": True}],
        PQLSDK={"RULES": str(PLAYBOOK), "STORE": "memory://", "USER": f"{__name__}.user_of"},
    )
    django.setup()
    from pqlsdk.integrations.django import client as shared  # noqa: PLC0415

    shared().identify(USER, {"plan": "trial"})
    bare = WSGIHandler()
    with override_settings(MIDDLEWARE=["pqlsdk.integrations.django.PQLSDKMiddleware"]):
        app = WSGIHandler()
    return {
        "bare": (bare, "/"),
        "installed": (app, "/"),
        "gated": (app, "/gated"),
        "moment": (app, "/moment"),
    }


def _django_urls() -> list[Any]:
    from django.http import HttpResponse  # noqa: PLC0415
    from django.template import engines  # noqa: PLC0415
    from django.urls import path  # noqa: PLC0415

    from pqlsdk.integrations.django import require_feature  # noqa: PLC0415

    moment = engines["django"].from_string("{% load pqlsdk %}{% pqlsdk_moment %}")
    return [
        path("", lambda request: HttpResponse("")),
        path("gated", require_feature("reports")(lambda request: HttpResponse(""))),
        path("moment", lambda request: HttpResponse(moment.render({}, request))),
    ]


def __getattr__(name: str) -> Any:  # Django reads ROOT_URLCONF's urlpatterns lazily
    if name == "urlpatterns":
        return _django_urls()
    raise AttributeError(name)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--framework", choices=("flask", "django"), required=True)
    args, _ = parser.parse_known_args()
    apps = flask_apps() if args.framework == "flask" else django_apps()
    calls = {name: request(app, path) for name, (app, path) in apps.items()}
    rounds, per_round = (2, 500) if quick() else (10, 5_000)
    timings: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        for i in range(200):  # warm: imports, template caches, the decide memo
            call(i)
    for _ in range(rounds):
        for name, call in calls.items():
            timings[name].extend(time_calls(call, per_round)[0])
    bare = summary(timings["bare"])
    emit("web", args.framework, bare["mean"], "us/request", variant="bare",
         p50=bare["p50"], p999=bare["p999"], max=bare["max"])  # fmt: skip
    for name in VARIANTS:
        found = summary(timings[name])
        emit("web", args.framework, found["mean"], "us/request", variant=name,
             p50=found["p50"], p999=found["p999"], max=found["max"])  # fmt: skip
        emit("web_added", args.framework, found["mean"] - bare["mean"], "us/request",
             variant=name)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
