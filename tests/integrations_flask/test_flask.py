"""The Flask extension through a real Flask app, its test client and a SQLite file in tmp_path."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

flask = pytest.importorskip("flask")

from flask import Flask, render_template_string  # noqa: E402
from flask_login import LoginManager, UserMixin, login_user  # noqa: E402
from itsdangerous import TimestampSigner, URLSafeTimedSerializer  # noqa: E402

import pqlsdk  # noqa: E402
from pqlsdk import _lifecycle as lifecycle  # noqa: E402
from pqlsdk.integrations import _web  # noqa: E402
from pqlsdk.integrations.flask import (  # noqa: E402
    CSRF_HEADER,
    PQLSDK,
    pqlsdk_csrf_token,
    pqlsdk_gate_moment,
    pqlsdk_moment,
    require_feature,
)
from pqlsdk.rules import load as load_rules  # noqa: E402
from pqlsdk.stores import open_store  # noqa: E402
from tests.integrations_flask.hosts import (  # noqa: E402
    MOMENT_ID,
    PLAYBOOK,
    TOKEN,
    Host,
    make_host,
    seed,
)


@pytest.fixture
def host(tmp_path: Path, clock: pqlsdk.FixedClock) -> Iterator[Host]:
    made = make_host(tmp_path, clock)
    seed(made.client)
    yield made
    made.ext.close(made.app)


def _outcome_json(host: Host, user: str, body: dict[str, Any], token: str | None) -> Any:
    headers = {} if token is None else {CSRF_HEADER: token}
    return host.post("/pqlsdk/outcome", user, json=body, headers=headers)


def _shown(host: Host, user: str) -> list[tuple[str, dict[str, int]]]:
    state = host.client.user(user)
    assert state is not None
    return [(record.kind, record.outcomes) for record in state.moments]


# -- configuration ------------------------------------------------------------------


def _app(tmp_path: Path, **config: Any) -> Flask:
    app = Flask("cfg", instance_path=str(tmp_path / "instance"))
    app.config.update({"SECRET_KEY": "k", "PQLSDK_RULES": PLAYBOOK, **config})
    return app


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"PQLSDK_RULES": None}, "PQLSDK_RULES"),
        ({"PQLSDK_RULES": 42}, "PQLSDK_RULES"),
        ({"PQLSDK_RULES": "no/such/rules.toml"}, "PQLSDK_RULES"),
        ({"PQLSDK_STORE": "postgres://db/pql"}, "PQLSDK_STORE"),
        ({"PQLSDK_STORE": 7}, "PQLSDK_STORE"),
        ({"PQLSDK_ENDPOINT": "ftp://collector"}, "PQLSDK_ENDPOINT"),
        ({"PQLSDK_WRITE_KEY": "wk"}, "PQLSDK_WRITE_KEY"),
        ({"PQLSDK_STRICT": "yes"}, "PQLSDK_STRICT"),
        ({"PQLSDK_CLOCK": "2026-03-15"}, "PQLSDK_CLOCK"),
        ({"PQLSDK_UPGRADE_URL": ""}, "PQLSDK_UPGRADE_URL"),
        ({"PQLSDK_URL_PREFIX": "pqlsdk"}, "PQLSDK_URL_PREFIX"),
        ({"PQLSDK_CSRF_MAX_AGE": 0}, "PQLSDK_CSRF_MAX_AGE"),
        ({"PQLSDK_CSRF_MAX_AGE": True}, "PQLSDK_CSRF_MAX_AGE"),
        ({"SECRET_KEY": None}, "SECRET_KEY"),
    ],
)
def test_bad_config_fails_at_init_app_naming_the_key(
    tmp_path: Path, config: dict[str, Any], key: str
) -> None:
    app = _app(tmp_path, **config)
    with pytest.raises(pqlsdk.ConfigError, match=key):
        PQLSDK().init_app(app)
    assert "pqlsdk" not in app.extensions


def test_loaded_rules_are_accepted(tmp_path: Path) -> None:
    rules = load_rules(PLAYBOOK)
    app = _app(tmp_path, PQLSDK_RULES=rules, PQLSDK_STORE="memory://")
    ext = PQLSDK(app)
    with app.app_context():
        assert ext.client.rules is rules
    ext.close(app)


def test_init_app_twice_on_one_app_is_refused(tmp_path: Path) -> None:
    app = _app(tmp_path)
    PQLSDK(app)
    with pytest.raises(pqlsdk.ConfigError, match="already set up"):
        PQLSDK().init_app(app)


def test_client_must_be_a_client() -> None:
    with pytest.raises(pqlsdk.ConfigError, match=r"pqlsdk\.Client"):
        PQLSDK(client="sqlite:///x.db")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"on_denied": "404"}, "on_denied"), ({"redirect_to": "/x"}, "redirect_to")],
)
def test_require_feature_refuses_bad_options_when_decorating(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(pqlsdk.ConfigError, match=message):
        require_feature("sso", **kwargs)


def test_an_app_without_init_app_is_a_config_error(tmp_path: Path) -> None:
    app = _app(tmp_path)
    with app.app_context(), pytest.raises(pqlsdk.ConfigError, match="init_app"):
        _ = PQLSDK().client


def test_default_store_lives_in_the_instance_folder_and_opens_on_first_use(tmp_path: Path) -> None:
    app = _app(tmp_path, PQLSDK_STRICT=True)
    ext = PQLSDK(app)
    database = tmp_path / "instance" / "pqlsdk.db"
    assert not database.exists()  # init_app opened nothing
    with app.app_context():
        first = ext.client
        assert ext.client is first  # built once
    assert first.store.url.endswith(str(database))
    assert database.exists()
    ext.close(app)


@pytest.mark.parametrize("url", ["memory://", "sqlite:///{tmp}/abs/pql.db"])
def test_memory_and_absolute_stores_are_used_as_given(tmp_path: Path, url: str) -> None:
    app = _app(tmp_path, PQLSDK_STORE=url.format(tmp=tmp_path))
    ext = PQLSDK(app)
    with app.app_context():
        opened = ext.client.store.url
    ext.close(app)
    assert opened == url.format(tmp=tmp_path)
    assert not (tmp_path / "instance").exists()


def test_a_store_object_is_used_as_given(tmp_path: Path) -> None:
    store = open_store("memory://")
    app = _app(tmp_path, PQLSDK_STORE=store)
    ext = PQLSDK(app)
    with app.app_context():
        assert ext.client.store is store
    ext.close(app)


def test_one_extension_serves_two_apps_with_their_own_clients(
    tmp_path: Path, clock: pqlsdk.FixedClock
) -> None:
    ext = PQLSDK(user=lambda: "tom")
    first = _app(tmp_path / "a", PQLSDK_CLOCK=clock, PQLSDK_UPGRADE_URL="/a-plans")
    second = _app(tmp_path / "b", PQLSDK_CLOCK=clock, PQLSDK_UPGRADE_URL="/b-plans")
    for app in (first, second):
        ext.init_app(app)
        view = require_feature("sso", on_denied="redirect")(lambda: "ok")
        app.add_url_rule("/sso", "sso", view)
    with first.app_context():
        a = ext.client
    with second.app_context():
        b = ext.client
    assert a is not b
    assert first.test_client().get("/sso").headers["Location"] == "/a-plans"
    assert second.test_client().get("/sso").headers["Location"] == "/b-plans"
    ext.close(first)
    ext.close(second)


def test_a_given_client_needs_no_rules_setting_and_is_left_open(
    tmp_path: Path, clock: pqlsdk.FixedClock
) -> None:
    with pqlsdk.Client(store="memory://", rules=PLAYBOOK, clock=clock, strict=True) as client:
        app = _app(tmp_path, PQLSDK_RULES=None)
        ext = PQLSDK(app, client=client, user=lambda: "bea")
        client.identify("bea", {"plan": "business"})
        view = require_feature("sso")(lambda: "sso settings")
        app.add_url_rule("/sso", "sso", view)
        assert app.test_client().get("/sso").get_data(as_text=True) == "sso settings"
        with app.app_context():
            assert ext.client is client
        ext.close(app)
        assert client.user("bea") is not None  # still open


def test_closing_then_using_builds_a_fresh_client(host: Host) -> None:
    before = host.client
    host.ext.close(host.app)
    assert host.client is not before
    assert host.client.user("tom") is not None  # same file, same state


def test_a_lock_held_at_a_fork_does_not_hang_the_child(host: Host) -> None:
    """A request thread held the extension's lock when the process forked: the child goes on."""
    host.ext.close(host.app)
    state = host.app.extensions["pqlsdk"]
    state._lock.acquire()  # as if a parent's thread were building the client at the fork
    lifecycle.run_after_fork()
    built: list[pqlsdk.Client] = []
    worker = threading.Thread(target=lambda: built.append(host.client), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert len(built) == 1


# -- who the user is ------------------------------------------------------------------


class _Member(UserMixin):  # type: ignore[misc]
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def _login_app(tmp_path: Path, clock: pqlsdk.FixedClock) -> tuple[Flask, PQLSDK]:
    app = _app(tmp_path, PQLSDK_CLOCK=clock, PQLSDK_STRICT=True)
    ext = PQLSDK(app)
    manager = LoginManager(app)
    manager.login_view = "login_page"
    manager.user_loader(_Member)

    @app.get("/login")
    def login_page() -> str:
        return "sign in"

    @app.get("/login/<user_id>")
    def login(user_id: str) -> str:
        login_user(_Member(user_id))
        return "in"

    @app.get("/sso")
    @require_feature("sso")
    def sso() -> str:
        return "sso settings"

    with app.app_context():
        ext.client.identify("bea", {"plan": "business"})
    return app, ext


def test_flask_login_current_user_is_the_user(tmp_path: Path, clock: pqlsdk.FixedClock) -> None:
    app, ext = _login_app(tmp_path, clock)
    browser = app.test_client()
    browser.get("/login/bea")
    assert browser.get("/sso").get_data(as_text=True) == "sso settings"
    ext.close(app)


def test_flask_login_anonymous_user_goes_to_the_login_view(
    tmp_path: Path, clock: pqlsdk.FixedClock
) -> None:
    app, ext = _login_app(tmp_path, clock)
    response = app.test_client().get("/sso")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    ext.close(app)


def test_without_flask_login_or_a_loader_there_is_no_user(tmp_path: Path) -> None:
    app = _app(tmp_path, PQLSDK_STORE="memory://")
    ext = PQLSDK(app)
    view = require_feature("sso")(lambda: "sso settings")
    app.add_url_rule("/sso", "sso", view)
    assert app.test_client().get("/sso").status_code == 401
    with app.test_request_context():
        assert ext.current_user_id() is None
    ext.close(app)


def test_the_user_id_decorator_wins_and_ids_become_strings(tmp_path: Path) -> None:
    app = _app(tmp_path, PQLSDK_STORE="memory://")
    ext = PQLSDK(app, user=lambda: "ignored")

    @ext.user_id
    def current() -> int:
        return 42

    with app.test_request_context():
        assert ext.current_user_id() == "42"
    ext.close(app)


def test_the_user_is_resolved_once_a_request(tmp_path: Path) -> None:
    calls: list[str] = []
    app = _app(tmp_path, PQLSDK_STORE="memory://")

    def user() -> str:
        calls.append("asked")
        return "tom"

    ext = PQLSDK(app, user=user)
    with app.test_request_context():
        render_template_string("{{ pqlsdk_moment() }}{{ pqlsdk_csrf_token() }}")
    ext.close(app)
    assert calls == ["asked"]


def test_the_account_loader_links_the_account_once_per_process(host: Host) -> None:
    calls: list[str] = []

    @host.ext.account_id
    def account() -> str:
        calls.append("asked")
        return "initech"

    host.get("/page", "tom")
    recorded = host.client.stats().recorded
    host.get("/page", "tom")
    assert host.client.user("tom").account_id == "initech"  # type: ignore[union-attr]
    assert host.client.stats().recorded == recorded  # no second group message
    assert calls == ["asked", "asked"]


def test_an_account_loader_answering_none_links_nothing(host: Host) -> None:
    host.ext.account_id(lambda: None)
    host.get("/page", "tom")
    assert host.client.user("tom").account_id is None  # type: ignore[union-attr]


# -- require_feature ---------------------------------------------------------------------


def test_an_entitled_user_gets_the_view(host: Host) -> None:
    response = host.get("/sso", "bea")
    assert (response.status_code, response.get_data(as_text=True)) == (200, "sso settings")


def test_ext_require_feature_guards_like_the_function(host: Host) -> None:
    assert host.get("/reports", "tina").get_data(as_text=True) == "reports"


def test_prompt_renders_the_blocked_page_with_the_moment(host: Host) -> None:
    response = host.get("/sso", "tina")
    html = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "<title>Single sign-on is not on your plan</title>" in html
    assert "Single sign-on is on the Business plan" in html
    assert 'data-pqlsdk-feature="sso"' in html  # the id stays in the markup, for scripts
    assert TOKEN.search(html) is not None
    assert _shown(host, "tina") == [("blocked_feature", {})]  # the gate recorded it shown


def test_the_blocked_page_calls_the_feature_by_its_name_not_its_id(host: Host) -> None:
    """The playbook names sso "Single sign-on": no visible text on the page says "sso"."""
    html = host.get("/sso", "tina").get_data(as_text=True)
    visible = re.sub(r"<style>.*?</style>|<[^>]+>", " ", html, flags=re.DOTALL)
    words = re.findall(r"[\w-]+", visible.lower())
    assert "sign-on" in words
    assert "sso" not in words


def test_prompt_without_a_due_moment_is_a_plain_403(host: Host) -> None:
    host.get("/sso", "tina")
    host.client.record("tina", "blocked_feature", "dismissed")  # cooldown for 24 hours
    response = host.get("/sso", "tina")
    html = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "Single sign-on is not on your plan" in html
    assert "pqlsdk-moment" not in html


def test_on_denied_403_aborts(host: Host) -> None:
    response = host.get("/sso-403", "tina")
    assert response.status_code == 403
    assert "Business plan" not in response.get_data(as_text=True)


def test_on_denied_redirect_goes_to_the_upgrade_url(host: Host) -> None:
    response = host.get("/sso-redirect", "tina")
    assert (response.status_code, response.headers["Location"]) == (302, "/plans")


def test_on_denied_redirect_goes_to_redirect_to_when_given(host: Host) -> None:
    assert host.get("/sso-elsewhere", "tina").headers["Location"] == "/elsewhere"


def test_no_user_is_401_without_flask_login(host: Host) -> None:
    assert host.get("/sso").status_code == 401


def test_the_host_overrides_the_blocked_page(tmp_path: Path, clock: pqlsdk.FixedClock) -> None:
    templates = tmp_path / "templates" / "pqlsdk"
    templates.mkdir(parents=True)
    (templates / "blocked.html").write_text(
        "<h1>No {{ feature_name }} ({{ feature }}) for you</h1>"
        "{{ pqlsdk_gate_moment() }}{{ pqlsdk_moment() }}"
    )
    host = make_host(tmp_path, clock)
    host.app.template_folder = str(tmp_path / "templates")
    seed(host.client)
    html = host.get("/sso", "tom").get_data(as_text=True)
    host.ext.close(host.app)
    assert html.startswith("<h1>No Single sign-on (sso) for you</h1>")
    assert html.count("<aside") == 1  # the gate's moment only: one moment a page
    assert "Single sign-on is on the Business plan" in html
    assert [kind for kind, _ in _shown(host, "tom")] == ["blocked_feature"]


# -- template globals ---------------------------------------------------------------------


def test_pqlsdk_moment_renders_the_users_moment(host: Host) -> None:
    html = host.get("/page", "tom").get_data(as_text=True)
    assert "Your trial ends in 2 days" in html
    assert 'action="/pqlsdk/outcome"' in html
    assert 'name="next" value="/page"' in html


def test_the_dismiss_form_comes_back_to_the_page_with_its_query(host: Host) -> None:
    html = host.get("/page?tab=2", "tom").get_data(as_text=True)
    assert 'name="next" value="/page?tab=2"' in html


def test_two_calls_in_one_request_show_one_moment(host: Host) -> None:
    html = host.get("/twice", "tom").get_data(as_text=True)
    assert html.count("<aside") == 1
    assert len(_shown(host, "tom")) == 1


def test_pqlsdk_moment_is_empty_without_a_user(host: Host) -> None:
    assert host.get("/page").get_data(as_text=True) == "<main></main>"


def test_pqlsdk_moment_is_empty_when_nothing_is_due(host: Host) -> None:
    assert host.get("/page", "tina").get_data(as_text=True) == "<main></main>"


def test_template_globals_are_empty_outside_a_request(host: Host) -> None:
    with host.app.app_context():
        assert pqlsdk_moment() == ""
        assert pqlsdk_gate_moment() == ""
        assert pqlsdk_csrf_token() == ""


def test_the_gate_moment_is_empty_on_a_page_without_a_denial(host: Host) -> None:
    with host.app.test_request_context(headers={"X-User": "tom"}):
        assert render_template_string("{{ pqlsdk_gate_moment() }}") == ""


def test_the_host_overrides_the_moment_template(tmp_path: Path, clock: pqlsdk.FixedClock) -> None:
    templates = tmp_path / "templates" / "pqlsdk"
    templates.mkdir(parents=True)
    (templates / "moment.html").write_text("{% if moment %}<b>{{ moment.title }}</b>{% endif %}")
    host = make_host(tmp_path, clock)
    host.app.template_folder = str(tmp_path / "templates")
    seed(host.client)
    html = host.get("/page", "tom").get_data(as_text=True)
    host.ext.close(host.app)
    assert html == "<main><b>Your trial ends in 2 days</b></main>"


def test_csrf_token_is_empty_without_a_user(host: Host) -> None:
    with host.app.test_request_context():
        assert pqlsdk_csrf_token() == ""


# -- the blueprint's endpoints ---------------------------------------------------------------


def test_get_moment_answers_json(host: Host) -> None:
    body = host.get("/pqlsdk/moment", "tom").get_json()
    assert body["moment"]["kind"] == "trial_ending"
    assert body["moment"]["title"] == "Your trial ends in 2 days"


def test_get_moment_answers_null_when_nothing_is_due(host: Host) -> None:
    assert host.get("/pqlsdk/moment", "tina").get_json() == {"moment": None}


def test_get_moment_without_a_user_is_401(host: Host) -> None:
    assert host.get("/pqlsdk/moment").status_code == 401


def test_json_outcome_is_recorded(host: Host) -> None:
    moment = host.get("/pqlsdk/moment", "tom").get_json()["moment"]
    response = _outcome_json(
        host, "tom", {"moment": moment["id"], "outcome": "dismissed"}, host.token("tom")
    )
    assert response.get_json() == {"recorded": True}
    assert _shown(host, "tom")[0][1].keys() == {"dismissed"}


def test_json_outcome_for_an_unknown_moment_is_not_recorded(host: Host) -> None:
    body = {"moment": "trial_ending-nope", "outcome": "clicked"}
    assert _outcome_json(host, "tom", body, host.token("tom")).get_json() == {"recorded": False}


def test_a_dismissal_starts_the_cooldown(host: Host, clock: pqlsdk.FixedClock) -> None:
    moment = host.get("/pqlsdk/moment", "tom").get_json()["moment"]
    _outcome_json(host, "tom", {"moment": moment["id"], "outcome": "dismissed"}, host.token("tom"))
    clock.advance(timedelta(hours=25))  # past the daily cap, inside the 48-hour cooldown
    assert host.get("/pqlsdk/moment", "tom").get_json() == {"moment": None}


def _form(host: Host, user: str, **fields: str) -> Any:
    html = host.get("/page", user).get_data(as_text=True)
    token, moment = TOKEN.search(html), MOMENT_ID.search(html)
    assert token is not None
    assert moment is not None
    data = {"pqlsdk_csrf": token.group(1), "moment": moment.group(1), **fields}
    return host.post("/pqlsdk/outcome", user, data=data)


def test_form_click_redirects_to_the_upgrade_url(host: Host) -> None:
    response = _form(host, "tom", outcome="clicked")
    assert (response.status_code, response.headers["Location"]) == (303, "/plans")
    assert _shown(host, "tom")[0][1].keys() == {"clicked"}


def test_form_dismissal_redirects_back(host: Host) -> None:
    response = _form(host, "tom", outcome="dismissed", next="/page?tab=2")
    assert (response.status_code, response.headers["Location"]) == (303, "/page?tab=2")


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
def test_form_dismissal_refuses_open_redirects(host: Host, target: str) -> None:
    response = _form(host, "tom", outcome="dismissed", next=target)
    assert response.headers["Location"] == "/"


def test_a_bad_outcome_is_400(host: Host) -> None:
    response = _form(host, "tom", outcome="converted")
    assert response.status_code == 400
    assert "'outcome' must be one of" in response.get_json()["error"]


def test_outcome_without_a_user_is_401(host: Host) -> None:
    response = _outcome_json(host, None, {"moment": "m", "outcome": "clicked"}, "x")  # type: ignore[arg-type]
    assert response.status_code == 401


def test_json_outcome_without_a_token_is_400(host: Host) -> None:
    response = _outcome_json(host, "tom", {"moment": "m", "outcome": "clicked"}, None)
    assert response.status_code == 400
    assert response.get_json() == {"error": "the CSRF token is missing"}


def test_form_outcome_without_a_token_is_400(host: Host) -> None:
    response = host.post("/pqlsdk/outcome", "tom", data={"moment": "m", "outcome": "clicked"})
    assert response.status_code == 400


def test_a_forged_token_is_403(host: Host) -> None:
    body = {"moment": "m", "outcome": "clicked"}
    assert _outcome_json(host, "tom", body, "forged.token").status_code == 403


def test_another_users_token_is_403(host: Host) -> None:
    response = _outcome_json(host, "tom", {"moment": "m", "outcome": "clicked"}, host.token("tina"))
    assert response.status_code == 403
    assert response.get_json() == {"error": "the CSRF token is not this user's"}


def test_an_expired_token_is_403(host: Host) -> None:
    class Yesterday(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 2 * 86_400

    old = URLSafeTimedSerializer("test-secret", salt="pqlsdk-outcome", signer=Yesterday)
    response = _outcome_json(host, "tom", {"moment": "m", "outcome": "clicked"}, old.dumps("tom"))
    assert response.status_code == 403


def test_a_token_signed_with_a_fallback_key_still_verifies(
    tmp_path: Path, clock: pqlsdk.FixedClock
) -> None:
    host = make_host(tmp_path, clock)
    seed(host.client)
    host.get("/page", "tom")
    token = host.token("tom")
    host.app.config.update(SECRET_KEY="rotated", SECRET_KEY_FALLBACKS=["test-secret"])
    body = {"moment": "trial_ending", "outcome": "clicked"}
    assert _outcome_json(host, "tom", body, token).get_json() == {"recorded": True}
    host.ext.close(host.app)


def test_json_must_be_sent_as_application_json(host: Host) -> None:
    response = host.post(
        "/pqlsdk/outcome",
        "tom",
        data=b'{"moment": "m", "outcome": "clicked"}',
        headers={CSRF_HEADER: host.token("tom"), "Content-Type": "text/plain"},
    )
    assert response.status_code == 415


def test_a_body_over_the_limit_is_413(host: Host) -> None:
    big = {"moment": "m", "outcome": "clicked", "pad": "x" * _web.MAX_OUTCOME_BYTES}
    assert _outcome_json(host, "tom", big, host.token("tom")).status_code == 413


def test_a_body_without_a_length_is_411(host: Host) -> None:
    response = host.post(
        "/pqlsdk/outcome",
        "tom",
        input_stream=io.BytesIO(b"{}"),
        headers={
            CSRF_HEADER: host.token("tom"),
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
        },
    )
    assert response.status_code == 411


def test_the_url_prefix_moves_the_endpoints_and_the_forms(
    tmp_path: Path, clock: pqlsdk.FixedClock
) -> None:
    host = make_host(tmp_path, clock, PQLSDK_URL_PREFIX="/_pql/")
    seed(host.client)
    assert host.get("/_pql/moment", "tina").get_json() == {"moment": None}
    assert 'action="/_pql/outcome"' in host.get("/page", "tom").get_data(as_text=True)
    host.ext.close(host.app)


# -- faults stay out of the host's pages -------------------------------------------------------


def test_a_broken_store_does_not_break_pages(tmp_path: Path, clock: pqlsdk.FixedClock) -> None:
    """The SQLite file turns to garbage under a running app: pages render, gates fail open."""
    host = make_host(tmp_path, clock, PQLSDK_STRICT=False)
    seed(host.client)
    host.client.flush()
    for path in tmp_path.glob("pqlsdk.db*"):
        path.write_bytes(b"\xff" * path.stat().st_size)
    # Until its next commit (within the buffer's interval) the client may answer
    # from the states it wrote itself; a flush is that commit.
    host.client.flush()
    page = host.get("/page", "tom")
    gated = host.get("/sso", "tina")
    body = {"moment": "trial_ending", "outcome": "dismissed"}
    recorded = _outcome_json(host, "tom", body, host.token("tom")).get_json()
    errors = host.client.stats().errors
    host.ext.close(host.app)
    assert (page.status_code, page.get_data(as_text=True)) == (200, "<main></main>")
    assert (gated.status_code, gated.get_data(as_text=True)) == (200, "sso settings")
    assert recorded == {"recorded": False}
    assert errors["store_error"] >= 2
