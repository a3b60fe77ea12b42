"""Every option of the one table, driven through Flask and Django alike.

A value given to either framework reaches the ``pqlsdk.Client`` it builds
(or the integration's own setting), and the same mistake gives the same
message in both, the key spelled as that framework's users write it.
"""

from __future__ import annotations

import inspect
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import pqlsdk
from pqlsdk._retry import RetryPolicy
from pqlsdk.integrations._options import OPTIONS
from pqlsdk.rules import load as load_rules
from pqlsdk.stores import open_store
from pqlsdk.stores.buffered import BufferedStore

from .conftest import PLAYBOOK, Host

BASE = {"RULES": PLAYBOOK, "STORE": "memory://"}


def on_error(error: pqlsdk.DeliveryError) -> None:
    """A hook ``ON_ERROR`` and ``ON_TIER_CHANGE`` may name by its dotted path."""


NOT_CALLABLE = 42

CLOCK = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
RULES = load_rules(PLAYBOOK)
STORE = open_store("memory://")
DELIVERY = pqlsdk.Delivery(mode="caller", flush_at=5)

# (bare name, value given, what the integration reads it as). Every option of the
# table appears (a test below checks that), each driven through every framework it has.
GIVEN: list[tuple[str, object, object]] = [
    ("RULES", RULES, RULES),
    ("RULES", str(PLAYBOOK), "playbook"),
    ("STORE", "sqlite:///state/pql.db", "sqlite:///{base}/state/pql.db"),
    ("STORE", "sqlite:////var/pql.db", "sqlite:////var/pql.db"),
    ("STORE", "redis://127.0.0.1:6379/15?prefix=x", "redis://127.0.0.1:6379/15?prefix=x"),
    ("STORE", STORE, STORE),
    ("ENDPOINT", "https://collector.example", "https://collector.example"),
    ("WRITE_KEY", "wk", "wk"),
    ("STRICT", True, True),
    ("CLOCK", CLOCK, CLOCK),
    ("GATE_FALLBACK", "deny", "deny"),
    ("RETENTION", 30, timedelta(days=30)),
    ("RETENTION", timedelta(hours=6), timedelta(hours=6)),
    ("RETENTION", None, None),
    ("DELIVERY", DELIVERY, DELIVERY),
    (
        "DELIVERY",
        {"mode": "caller", "flush_at": 5, "retry": {"budget": 60}},
        pqlsdk.Delivery(mode="caller", flush_at=5, retry=RetryPolicy(budget=60.0)),
    ),
    ("ON_ERROR", on_error, on_error),
    ("ON_ERROR", f"{__name__}.on_error", on_error),
    ("ON_TIER_CHANGE", f"{__name__}.on_error", on_error),
    ("UPGRADE_URL", "/billing/", "/billing/"),
    ("URL_PREFIX", "/pql/", "/pql"),
    ("CSRF_MAX_AGE", 600, 600),
    ("USER", f"{__name__}.on_error", on_error),
    ("ACCOUNT", on_error, on_error),
]
# The collector's two options go together.
_PAIRED = {"ENDPOINT": {"WRITE_KEY": "wk"}, "WRITE_KEY": {"ENDPOINT": "http://127.0.0.1:9"}}
_FRAMEWORKS = {option.name: option.frameworks for option in OPTIONS}
_KEYWORDS = {option.name: option.keyword for option in OPTIONS}


def _ids(case: tuple[str, object, object]) -> str:
    """A stable id (xdist workers must agree): the value itself only when it prints stably."""
    name, value, _ = case
    shown = repr(value) if value is None or isinstance(value, str | int) else type(value).__name__
    return f"{name}={shown}"[:60]


def test_every_option_is_driven() -> None:
    assert {name for name, _, _ in GIVEN} == {option.name for option in OPTIONS}


def _cases(*, client: bool = False) -> list[Any]:
    """Each case with each framework that has its option (``client``: those a client takes)."""
    return [
        pytest.param(framework, case, id=f"{framework}-{_ids(case)}")
        for case in GIVEN
        for framework in ("flask", "django")
        if framework in _FRAMEWORKS[case[0]]
        and (not client or (_KEYWORDS[case[0]] is not None and case[0] != "STORE"))
    ]


@pytest.mark.parametrize(("framework", "case"), _cases(), indirect=["framework"])
def test_a_given_value_is_read_alike(framework: Host, case: tuple[str, object, object]) -> None:
    """The value reaches the integration, read as the table says, in each framework."""
    name, value, expected = case
    values = framework.read({**BASE, **_PAIRED.get(name, {}), name: value})
    if isinstance(expected, str) and "{base}" in expected:
        expected = expected.format(base=framework.base.resolve())
    if expected == "playbook":
        assert values[name].origin == str(PLAYBOOK)
    else:
        assert values[name] == expected


@pytest.mark.parametrize(("framework", "case"), _cases(client=True), indirect=["framework"])
def test_the_client_is_built_from_the_value(
    framework: Host, case: tuple[str, object, object]
) -> None:
    """The client the framework builds takes the value under the option's keyword."""
    name, value, _ = case
    values = framework.read({**BASE, **_PAIRED.get(name, {}), name: value})
    client = framework.client()
    observed = {"RULES": lambda: client.rules, "CLOCK": lambda: client.clock}
    if name in observed:
        assert observed[name]() == values[name]
    if name == "STRICT":
        with pytest.raises(pqlsdk.MissingIdentityError):
            client.track("", "signed_up")


@pytest.mark.parametrize(
    ("framework", "value", "opened"),
    [
        (framework, value, opened)
        for framework in ("flask", "django")
        for value, opened in [
            ("memory://", "memory://"),
            ("sqlite:///state/pql.db", "sqlite:///{base}/state/pql.db"),
            (STORE, STORE),
        ]
    ],
    indirect=["framework"],
)
def test_the_client_opens_the_store_given(framework: Host, value: object, opened: object) -> None:
    """A relative SQLite path lands in the framework's folder (Flask's instance, BASE_DIR)."""
    framework.read({**BASE, "STORE": value})
    store = framework.client().store
    if isinstance(opened, str):
        assert store.url == opened.format(base=framework.base.resolve())
    else:
        assert store is opened


def test_the_integrations_defaults_are_the_clients() -> None:
    """An option the host leaves out is what ``Client`` would use without it."""
    signature = inspect.signature(pqlsdk.Client).parameters
    for option in OPTIONS:
        if option.keyword is not None:
            assert (option.name, option.missing) == (option.name, signature[option.keyword].default)


def test_left_out_options_reach_the_client_at_their_defaults(host: Host) -> None:
    host.read(dict(BASE))
    client = host.client()
    assert client.clock is not CLOCK
    assert client.store.url == "memory://"
    client.track("", "signed_up")  # not strict: counted, not raised


# -- the same mistake, the same message -----------------------------------------------

MISTAKES: list[dict[str, Any]] = [
    {"RULES": None},
    {"RULES": 42},
    {"RULES": "no/such/rules.toml"},
    {"STORE": "postgres://db/pql"},
    {"STORE": "sqlite://host/pql.db"},
    {"STORE": 7},
    {"ENDPOINT": "ftp://collector"},
    {"ENDPOINT": 8080},
    {"WRITE_KEY": "wk"},
    {"ENDPOINT": "https://collector.example"},
    {"WRITE_KEY": ""},
    {"STRICT": "yes"},
    {"CLOCK": "2026-03-15"},
    {"GATE_FALLBACK": "maybe"},
    {"RETENTION": 0},
    {"RETENTION": "400d"},
    {"RETENTION": True},
    {"DELIVERY": 5},
    {"DELIVERY": {"flush_at": 0}},
    {"DELIVERY": {"flush_at": "many"}},
    {"DELIVERY": {"flsh_at": 5}},
    {"DELIVERY": {"retry": {"bugdet": 5}}},
    {"ON_ERROR": "tests.integrations_options.nowhere.hook"},
    {"ON_TIER_CHANGE": f"{__name__}.NOT_CALLABLE"},
    {"ON_ERROR": 5},
    {"UPGRADE_URL": ""},
    {"STROE": "memory://"},
    {"COLOUR": "red"},
    {"STORE": 7, "STRICT": "yes", "GATE_FALLBACK": "never"},
]

_KEY = re.compile(r"PQLSDK(?:_([A-Z_]+)|\['([A-Z_]+)'\])")


def _plain(message: str) -> str:
    """The message with each key written ``<NAME>``, however the framework spells it."""
    return _KEY.sub(lambda m: f"<{m[1] or m[2]}>", message)


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: repr(m)[:60])
def test_the_same_mistake_reads_the_same(
    mistake: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from .conftest import DjangoHost, FlaskHost  # noqa: PLC0415

    flask = FlaskHost(tmp_path).errors({**BASE, **mistake})
    django = DjangoHost(tmp_path).errors({**BASE, **mistake})
    assert _plain(flask) == _plain(django)
    for key in mistake:
        assert f"<{key}>" in _plain(flask)


@pytest.mark.parametrize(
    ("mistake", "says"),
    [
        ({"STROE": "x"}, "{STROE} is not an option (did you mean {STORE}?)"),
        ({"COLOUR": "red"}, "{COLOUR} is not an option"),
        ({"WRITE_KEY": "wk"}, "{WRITE_KEY} needs {ENDPOINT} (the collector's URL)"),
        (
            {"ENDPOINT": "http://c.example"},
            "{ENDPOINT} needs {WRITE_KEY} (the collector's write key)",
        ),
        ({"GATE_FALLBACK": "maybe"}, '{GATE_FALLBACK} must be "allow" or "deny", got \'maybe\''),
        ({"RETENTION": 0}, "{RETENTION} must be positive or None, got datetime.timedelta(0)"),
        (
            {"DELIVERY": {"flsh_at": 5}},
            "{DELIVERY}: 'flsh_at' is not a Delivery field (did you mean 'flush_at'?); known: ",
        ),
        (
            {"DELIVERY": {"retry": {"bugdet": 5}}},
            "{DELIVERY}: retry: 'bugdet' is not a RetryPolicy field (did you mean 'budget'?)",
        ),
        (
            {"DELIVERY": {"flush_at": 0}},
            "{DELIVERY}: not a Delivery: Delivery.flush_at must be at least 1, got 0",
        ),
        ({"STORE": "postgres://db/pql"}, "{STORE}: 'postgres://db/pql' is not a store URL: "),
    ],
)
def test_a_mistake_says_what_to_write(host: Host, mistake: dict[str, Any], says: str) -> None:
    names = {name: host.spell(name) for name in ("STORE", "ENDPOINT", "WRITE_KEY")}
    names |= {name: host.spell(name) for name in mistake}
    assert host.errors({**BASE, **mistake}).startswith(says.format(**names))


@pytest.mark.parametrize(
    ("framework", "key", "other"),
    [("flask", "USER", "Django"), ("django", "URL_PREFIX", "Flask")],
    indirect=["framework"],
)
def test_the_other_frameworks_option_is_named_as_such(
    framework: Host, key: str, other: str
) -> None:
    assert framework.errors({**BASE, key: "x"}) == (
        f"{framework.spell(key)} is not a {framework.name.title()} option (only {other} reads it)"
    )


def test_every_problem_is_reported_at_once(host: Host) -> None:
    found = host.errors({**BASE, "STORE": 7, "STRICT": "yes", "COLOUR": "red"})
    assert [part.split(" ")[0] for part in found.split("; ")] == [
        host.spell("COLOUR"),
        host.spell("STORE"),
        host.spell("STRICT"),
    ]


# -- options whose effect shows through the client's public surface -------------------

AWAY = "redis://127.0.0.1:1/0?timeout=0.05"  # nothing listens on port 1: Redis is away


@pytest.mark.parametrize(
    ("framework", "fallback", "allowed"),
    [(f, given, given != "deny") for f in ("flask", "django") for given in ("deny", None)],
    indirect=["framework"],
)
def test_gate_fallback_is_what_a_gate_answers_while_redis_is_away(
    framework: Host, fallback: str | None, allowed: bool
) -> None:
    given = {} if fallback is None else {"GATE_FALLBACK": fallback}
    framework.read({**BASE, "STORE": AWAY, **given})
    gate = framework.client().gate("tom", "sso")
    answer = "allowed" if allowed else "denied"
    assert (gate.allowed, gate.reason) == (allowed, f"store unavailable: {answer}")


@pytest.mark.parametrize(
    ("framework", "delivery", "buffered"),
    [
        (f, given, buffered)
        for f in ("flask", "django")
        for given, buffered in [({"durability": "sync"}, False), (None, True)]
    ],
    indirect=["framework"],
)
def test_delivery_durability_decides_whether_sqlite_writes_are_buffered(
    framework: Host, delivery: dict[str, str] | None, buffered: bool
) -> None:
    framework.read({**BASE, "STORE": "sqlite:///pql.db", "DELIVERY": delivery})
    assert isinstance(framework.client().store, BufferedStore) == buffered
