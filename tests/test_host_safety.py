"""Nothing escapes into the host: every public Client method, with any value in any position.

A default client answers every call, whatever its arguments: a bad id, event
name, property or model name is counted and logged, and the call returns a
neutral answer. A strict client raises, but only pqlsdk's own typed errors.
Hypothesis drives each method with arbitrary values (ids of any type, strings
with lone surrogates, aware datetimes at the ends of the calendar, nested
containers, objects JSON cannot carry), on the memory store and on the default
SQLite store (write-behind and the intake thread), one client per store shared
by the examples so that state from one call meets the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pqlsdk
from pqlsdk.testing import RecordingTransport

from .conftest import ROOT

PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"
EXAMPLES = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

# Strings of any code point, lone surrogates included (text() leaves them out), and
# the strings most likely to break something, often.
TEXT = st.one_of(
    st.text(st.characters(codec=None), max_size=12),
    st.sampled_from(["", " ", "\x00", "\ud800", "a\udfff", "é", "u1\n"]),
)
ZONES = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
# The ends of the calendar, where converting to UTC leaves it.
EDGES = st.sampled_from(
    [
        datetime.min.replace(tzinfo=timezone(timedelta(hours=23))),
        datetime.max.replace(tzinfo=timezone(timedelta(hours=-23))),
        datetime.min.replace(tzinfo=UTC),
        datetime.max.replace(tzinfo=UTC),
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    TEXT,
    st.binary(max_size=8),
    st.datetimes(),
    st.datetimes(timezones=ZONES),
    EDGES,
    st.decimals(),
    st.complex_numbers(),
    st.builds(object),
)
ANYTHING = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(TEXT, st.integers(), st.none()), inner, max_size=3),
        st.frozensets(st.one_of(TEXT, st.integers()), max_size=3),
    ),
    max_leaves=8,
)
# Ids, names and payloads that mean something to the playbook come up often, so
# that arbitrary values meet real state (a plan trait that is a list, a moment shown).
IDS = st.one_of(st.sampled_from(["u1", "u2", "acme"]), st.integers(), TEXT, ANYTHING)
EVENTS = st.one_of(st.sampled_from(["limit_hit", "report_created", "x"]), TEXT, ANYTHING)
TRAITS = st.one_of(
    st.dictionaries(st.sampled_from(["plan", "employees", "trial_ends", "email"]), ANYTHING),
    ANYTHING,
)
FEATURES = st.one_of(st.sampled_from(["sso", "reports"]), TEXT, ANYTHING)
MODELS = st.one_of(st.none(), st.sampled_from(["playbook", "stuck", "nope"]), TEXT, ANYTHING)
MOMENTS = st.one_of(st.sampled_from(["blocked_feature", "trial_ending"]), TEXT, ANYTHING)
OUTCOMES = st.one_of(st.sampled_from(["shown", "clicked", "dismissed"]), TEXT, ANYTHING)
# Timeouts of any value: the ends of the number line, past what a float holds, NaN, and
# what is no number at all (a bool, a str, a container).
TIMEOUTS = st.one_of(
    st.none(),
    st.floats(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), math.inf, -math.inf, math.nan, 1e300, True, "10"]),
    ANYTHING,
)
OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "anonymous_id": IDS,
        "timestamp": st.one_of(st.datetimes(timezones=ZONES), EDGES, ANYTHING),
        "context": ANYTHING,
        "message_id": st.one_of(TEXT, ANYTHING),
    },
)
MESSAGES = st.one_of(
    st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["track", "identify", "group"]), "userId": IDS},
                optional={"event": EVENTS, "traits": TRAITS, "timestamp": ANYTHING},
            ),
            ANYTHING,
        ),
        max_size=3,
    ),
    ANYTHING,
)

Call = Callable[[pqlsdk.Client], Any]


class _Failures(logging.Handler):
    """Collects what the intake thread logs when applying a message raised (a lost chunk)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[pqlsdk.Client]:
    """A default client with the playbook: on the memory store, or on a SQLite file."""
    url = "memory://"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('safety') / 'state.db'}"
    failures = _Failures()
    logging.getLogger("pqlsdk").addHandler(failures)
    try:
        with pqlsdk.Client(store=url, rules=PLAYBOOK) as opened:
            yield opened
            opened.stats()  # applies what the intake holds: a failure there is logged
    finally:
        logging.getLogger("pqlsdk").removeHandler(failures)
    assert [r.getMessage() for r in failures.records] == []


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pqlsdk.Client]:
    """A strict client with the playbook on a SQLite file."""
    url = f"sqlite:///{tmp_path_factory.mktemp('strict') / 'state.db'}"
    with pqlsdk.Client(store=url, rules=PLAYBOOK, strict=True) as opened:
        yield opened


# Each public method, driven with arbitrary values in every position.
CALLS: dict[str, st.SearchStrategy[Call]] = {
    "identify": st.builds(
        lambda user, traits, options: lambda c: c.identify(user, traits, **options),
        IDS,
        TRAITS,
        OPTIONS,
    ),
    "group": st.builds(
        lambda user, group, traits, options: lambda c: c.group(user, group, traits, **options),
        IDS,
        IDS,
        TRAITS,
        OPTIONS,
    ),
    "track": st.builds(
        lambda user, event, properties, options: (
            lambda c: c.track(user, event, properties, **options)
        ),
        IDS,
        EVENTS,
        TRAITS,
        OPTIONS,
    ),
    "ingest": st.builds(lambda messages: lambda c: c.ingest(messages), MESSAGES),
    "user": st.builds(lambda user: lambda c: c.user(user), IDS),
    "account": st.builds(lambda account: lambda c: c.account(account), IDS),
    "score": st.builds(lambda user, model: lambda c: c.score(user, model=model), IDS, MODELS),
    "score_account": st.builds(
        lambda account, model: lambda c: c.score_account(account, model=model), IDS, MODELS
    ),
    "decide": st.builds(lambda user: lambda c: c.decide(user), IDS),
    "gate": st.builds(lambda user, feature: lambda c: c.gate(user, feature), IDS, FEATURES),
    "record": st.builds(
        lambda user, moment, outcome: lambda c: c.record(user, moment, outcome),
        IDS,
        MOMENTS,
        OUTCOMES,
    ),
    "stats, rules, store, clock": st.just(lambda c: (c.stats(), c.rules, c.store, c.clock)),
    "flush": st.builds(lambda timeout: lambda c: c.flush(timeout), TIMEOUTS),
    "aflush": st.builds(lambda timeout: lambda c: asyncio.run(c.aflush(timeout)), TIMEOUTS),
}
# What a default client answers, by method: the type of a neutral answer is the type of any.
ANSWERS: dict[str, tuple[type | None, ...]] = {
    "identify": (type(None),),
    "group": (type(None),),
    "track": (type(None),),
    "ingest": (int,),
    "user": (pqlsdk.UserState, type(None)),
    "account": (pqlsdk.AccountState, type(None)),
    "score": (pqlsdk.Score,),
    "score_account": (pqlsdk.AccountScore,),
    "decide": (pqlsdk.Moment, type(None)),
    "gate": (pqlsdk.Gate,),
    "record": (bool,),
    "stats, rules, store, clock": (tuple,),
    "flush": (pqlsdk.FlushResult,),
    "aflush": (pqlsdk.FlushResult,),
}


@pytest.mark.parametrize("method", CALLS)
def test_a_default_client_never_raises(client: pqlsdk.Client, method: str) -> None:
    """Whatever a public method is given, a default client returns an answer of its type."""

    @EXAMPLES
    @given(call=CALLS[method])
    def run(call: Call) -> None:
        assert isinstance(call(client), ANSWERS[method])  # type: ignore[arg-type]

    run()


@pytest.mark.parametrize("method", CALLS)
def test_a_strict_client_raises_only_its_own_errors(strict: pqlsdk.Client, method: str) -> None:
    """A strict client raises for the same values, but only typed pqlsdk errors."""

    @EXAMPLES
    @given(call=CALLS[method])
    def run(call: Call) -> None:
        with contextlib.suppress(pqlsdk.PQLError):
            call(strict)

    run()


@given(timeout=TIMEOUTS, asynchronous=st.booleans())
@EXAMPLES
def test_close_never_raises(timeout: Any, asynchronous: bool) -> None:
    """A delivering client's flush and close, awaited or not, return with any timeout; twice too."""
    with pqlsdk.Client(store="memory://", transport=RecordingTransport()) as client:
        client.track("u1", "e")
        if asynchronous:
            assert isinstance(asyncio.run(client.aflush(timeout)), pqlsdk.FlushResult)
            assert isinstance(asyncio.run(client.aclose(timeout)), pqlsdk.FlushResult)
        else:
            assert isinstance(client.flush(timeout), pqlsdk.FlushResult)
            assert isinstance(client.close(timeout), pqlsdk.FlushResult)
        assert isinstance(client.close(timeout), pqlsdk.FlushResult)


@given(timeout=TIMEOUTS)
@EXAMPLES
def test_a_strict_close_raises_only_its_own_errors(timeout: Any) -> None:
    """A strict client's close() with any timeout returns, or raises a pqlsdk error."""
    with pqlsdk.Client(store="memory://", transport=RecordingTransport(), strict=True) as client:
        client.track("u1", "e")
        with contextlib.suppress(pqlsdk.PQLError):
            client.close(timeout)


TIMED = ["flush", "close", "aflush", "aclose"]


def timed(client: pqlsdk.Client, method: str, timeout: Any) -> pqlsdk.FlushResult:
    """Call ``method`` of ``client`` with ``timeout``, awaiting it if it is a coroutine."""
    answer = getattr(client, method)(timeout)
    return asyncio.run(answer) if method.startswith("a") else answer  # type: ignore[no-any-return]


@pytest.mark.parametrize("method", TIMED)
@pytest.mark.parametrize("timeout", ["10", True, math.nan, [1]], ids=["str", "bool", "nan", "list"])
def test_a_bad_timeout_is_counted_and_the_default_applies(method: str, timeout: Any) -> None:
    """A timeout that is no number of seconds is counted as ``invalid_timeout``; 10 s apply."""
    with pqlsdk.Client(store="memory://", transport=RecordingTransport()) as client:
        client.track("u1", "e")
        assert timed(client, method, timeout) == pqlsdk.FlushResult(1, 0)
        assert client.stats().errors == {"invalid_timeout": 1}


@pytest.mark.parametrize("method", TIMED)
@pytest.mark.parametrize("timeout", [10**400, -(10**400)], ids=["huge", "hugely negative"])
def test_a_timeout_past_what_a_float_holds_is_no_limit_or_no_wait(
    method: str, timeout: int
) -> None:
    """``10**400`` waits without limit (all delivered), ``-10**400`` not at all; no error."""
    with pqlsdk.Client(store="memory://", transport=RecordingTransport()) as client:
        client.track("u1", "e")
        result = timed(client, method, timeout)
        if timeout > 0:
            assert result == pqlsdk.FlushResult(1, 0)
        assert client.stats().errors == {}


@pytest.mark.parametrize("method", TIMED)
def test_a_strict_client_raises_for_a_bad_timeout_and_stays_open(method: str) -> None:
    """Strict: ``InvalidMessageError`` naming the type, and nothing is flushed or closed."""
    with pqlsdk.Client(store="memory://", transport=RecordingTransport(), strict=True) as client:
        with pytest.raises(pqlsdk.InvalidMessageError, match="got a str"):
            timed(client, method, "10")
        with pytest.raises(pqlsdk.InvalidMessageError, match="got NaN"):
            timed(client, method, math.nan)
        client.track("u1", "e")  # still open
        assert client.close() == pqlsdk.FlushResult(1, 0)


# The calls the fuzz of issue 19 found raising, and their neighbours: the error a strict
# client raises, the drop a default one counts, and what its neutral answer looks like.
HUGE = -1797486664288460865536
REPORTED: list[tuple[str, Call, type[Exception], str, Callable[[Any], bool]]] = [
    (
        "gate(None)",
        lambda c: c.gate(None, "sso"),  # type: ignore[arg-type]
        pqlsdk.InvalidIdError,
        "invalid_id",
        lambda a: (
            a
            == pqlsdk.Gate(
                "sso", True, "user_id must be a str or an int, not NoneType: allowed", None, None
            )
        ),
    ),
    (
        "gate with a list for a feature",
        lambda c: c.gate("u1", ["sso"]),  # type: ignore[arg-type]
        pqlsdk.InvalidMessageError,
        "invalid",
        lambda a: a.allowed and a.reason == "feature must be a str, not list: allowed",
    ),
    (
        "decide(an int too long to be an id)",
        lambda c: c.decide(10**5000),
        pqlsdk.InvalidIdError,
        "invalid_id",
        lambda a: a is None,
    ),
    (
        "decide([])",
        lambda c: c.decide([]),  # type: ignore[arg-type]
        pqlsdk.InvalidIdError,
        "invalid_id",
        lambda a: a is None,
    ),
    (
        "score({})",
        lambda c: c.score({}),  # type: ignore[arg-type]
        pqlsdk.InvalidIdError,
        "invalid_id",
        lambda a: (
            (a.id, a.model, a.score, a.tier, a.route, a.gate_passed, a.reasons[0].signal)
            == ("", "playbook", 0.0, "cold", "nurture", False, "invalid_id")
        ),
    ),
    (
        "score_account([])",
        lambda c: c.score_account([]),  # type: ignore[arg-type]
        pqlsdk.InvalidIdError,
        "invalid_id",
        lambda a: (
            (a.id, a.pqa, a.members, a.score.reasons[0].label)
            == ("", False, {}, "account_id must be a str or an int, not list")
        ),
    ),
    (
        "account([])",
        lambda c: c.account([]),  # type: ignore[arg-type]
        pqlsdk.InvalidIdError,
        "invalid_id",
        lambda a: a is None,
    ),
    ("user(1.0)", lambda c: c.user(1.0), pqlsdk.InvalidIdError, "invalid_id", lambda a: a is None),  # type: ignore[arg-type]
    (
        "record with an unhashable outcome",
        lambda c: c.record("u1", "blocked_feature", ["clicked"]),  # type: ignore[arg-type]
        pqlsdk.InvalidMessageError,
        "invalid",
        lambda a: a is False,
    ),
    (
        "record with a list for a moment",
        lambda c: c.record("u1", ["blocked_feature"], "clicked"),  # type: ignore[arg-type]
        pqlsdk.InvalidMessageError,
        "invalid",
        lambda a: a is False,
    ),
    (
        "record(True, ...)",
        lambda c: c.record(True, "blocked_feature", "clicked"),
        pqlsdk.InvalidIdError,
        "invalid_id",
        lambda a: a is False,
    ),
    (
        "track with a lone surrogate for an id",
        lambda c: c.track("\ud800", "limit_hit"),
        pqlsdk.InvalidIdError,
        "invalid_id",
        lambda a: a is None,
    ),
    (
        "track with a lone surrogate in a property",
        lambda c: c.track("u1", "limit_hit", {"limit": "\udcff"}),
        pqlsdk.NotJSONError,
        "not_json",
        lambda a: a is None,
    ),
    (
        "identify at a time before year 1 in UTC",
        lambda c: c.identify(
            "u1", timestamp=datetime.min.replace(tzinfo=timezone(timedelta(hours=5)))
        ),
        pqlsdk.InvalidMessageError,
        "invalid",
        lambda a: a is None,
    ),
    (
        "group with a dict for a group id",
        lambda c: c.group("u1", {"id": 1}),  # type: ignore[arg-type]
        pqlsdk.InvalidIdError,
        "invalid_id",
        lambda a: a is None,
    ),
    (
        "ingest a lone surrogate",
        lambda c: c.ingest(["\udc80"]),  # type: ignore[list-item]
        pqlsdk.InvalidMessageError,
        "invalid",
        lambda a: a == 0,
    ),
    (
        "ingest(None)",
        lambda c: c.ingest(None),  # type: ignore[arg-type]
        pqlsdk.InvalidMessageError,
        "invalid",
        lambda a: a == 0,
    ),
]


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The memory store, or the default store (SQLite, write-behind, intake) on a file."""
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/state.db"


@pytest.mark.parametrize(
    ("call", "error", "reason", "neutral"), [r[1:] for r in REPORTED], ids=[r[0] for r in REPORTED]
)
def test_a_default_client_counts_a_bad_argument_and_answers_neutrally(
    url: str, call: Call, error: type[Exception], reason: str, neutral: Callable[[Any], bool]
) -> None:
    """The call returns a neutral answer, records nothing, and counts one drop by reason."""
    with pqlsdk.Client(store=url, rules=PLAYBOOK) as client:
        answer = call(client)
        stats = client.stats()
    assert neutral(answer), answer
    assert (stats.recorded, dict(stats.dropped)) == (0, {reason: 1})


@pytest.mark.parametrize(
    ("call", "error", "reason", "neutral"), [r[1:] for r in REPORTED], ids=[r[0] for r in REPORTED]
)
def test_a_strict_client_raises_a_typed_error_for_a_bad_argument(
    url: str, call: Call, error: type[Exception], reason: str, neutral: Callable[[Any], bool]
) -> None:
    """A strict client raises the pqlsdk error whose ``reason`` is the drop's name."""
    with (
        pqlsdk.Client(store=url, rules=PLAYBOOK, strict=True) as client,
        pytest.raises(error) as raised,
    ):
        call(client)
    assert raised.value.reason == reason  # type: ignore[attr-defined]


def test_an_invalid_id_is_also_the_builtin_error_a_host_would_catch() -> None:
    """``InvalidIdError`` is a ``TypeError`` and a ``ValueError``, as its causes are."""
    with pqlsdk.Client(store="memory://", rules=PLAYBOOK, strict=True) as client:
        with pytest.raises(TypeError, match="not NoneType"):
            client.gate(None, "sso")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="user_id is empty"):
            client.decide("")


def test_a_gate_that_denies_by_default_denies_an_invalid_id() -> None:
    """``gate_fallback="deny"`` answers an invalid id with a denial, and tracks nothing."""
    with pqlsdk.Client(store="memory://", rules=PLAYBOOK, gate_fallback="deny") as client:
        gate = client.gate(None, "sso")  # type: ignore[arg-type]
        assert (gate.allowed, gate.reason) == (
            False,
            "user_id must be a str or an int, not NoneType: denied",
        )
        assert client.stats().recorded == 0


def test_ints_are_ids_as_their_decimal_string_in_every_method(tmp_path: Path) -> None:
    """``42`` and ``"42"`` are one user (and ``7`` one account), whichever method is called."""
    clock = pqlsdk.FixedClock("2026-03-15T12:00:00Z")
    url = f"sqlite:///{tmp_path}/s.db"
    with pqlsdk.Client(store=url, rules=PLAYBOOK, strict=True, clock=clock) as client:
        client.identify(42, {"plan": "free"})
        client.group(42, 7, {"employees": 12})
        client.track(42, "limit_hit")
        client.track(None, "limit_hit", anonymous_id=43)
        gate = client.gate(42, "sso")
        assert (gate.allowed, gate.plan) == (False, "free")
        assert gate.moment is not None
        assert client.record(42, gate.moment.id, "clicked")
        user = client.user("42")
        assert user is not None
        assert (user.traits["plan"], user.account_id, user.tracks) == ("free", "7", 2)
        assert "clicked" in user.moments[-1].outcomes  # record(42, ...) found the showing
        assert client.user(43) is not None
        assert client.account(7) == client.account("7")
        assert client.score(42) == client.score("42")
        assert client.score_account(7).members == {"42": client.score("42").tier}
        assert client.decide(42) == client.decide("42")
        assert client.decide(HUGE) is None  # the OverflowError: an id like any other


def test_an_id_is_a_plain_str_whatever_the_caller_passed() -> None:
    """A str subclass and an ``IntEnum`` member become the plain str the stores keep."""

    class Tagged(str):
        def __str__(self) -> str:
            return "not the id"

    class Ids(enum.IntEnum):
        ADMIN = 1

    with pqlsdk.Client(store="memory://", rules=PLAYBOOK, strict=True) as client:
        client.identify(Tagged("u1"), {"plan": "trial"})
        client.identify(Ids.ADMIN, {"plan": "free"})
        assert client.score(Tagged("u1")).id == "u1"
        assert type(client.score(Tagged("u1")).id) is str
        assert client.user("1") is not None
        assert client.score(Ids.ADMIN).id == "1"
        client.track(Tagged(""), "e", anonymous_id="a1")  # an empty id is no id, as "" is
        assert client.user("a1") is not None


def test_an_unknown_model_answers_an_empty_score_and_logs_once_per_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``score(model="nope")`` says why it is empty; each unknown name is logged once."""
    with pqlsdk.Client(store="memory://", rules=PLAYBOOK) as client:
        client.identify("u1", {"plan": "trial"})
        scores = [client.score("u1", model=name) for name in ("nope", "nope", "other", "nope")]
        stats = client.stats()
    first = scores[0]
    assert (first.id, first.model, first.score, first.tier, first.route) == (
        "u1",
        "nope",
        0,
        "",
        "",
    )
    assert [(r.signal, r.fired) for r in first.reasons] == [("unknown_model", False)]
    assert first.reasons[0].label.startswith("no model 'nope' in ")
    assert (stats.dropped, stats.errors) == ({}, {})
    logged = [r.getMessage() for r in caplog.records if r.name == "pqlsdk"]
    assert len(logged) == 2
    assert ["'nope'" in logged[0], "'other'" in logged[1]] == [True, True]


def test_unknown_model_names_are_logged_a_bounded_number_of_times(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A name that is not a str is logged by its type; past 100 names, no more are logged."""
    with pqlsdk.Client(store="memory://", rules=PLAYBOOK) as client:
        odd = client.score("u1", model=["playbook"])  # type: ignore[arg-type]
        for n in range(150):
            client.score("u1", model=f"model{n}")
    assert (odd.model, odd.reasons[0].label) == ("", "a model name must be a str, not list")
    logged = [r.getMessage() for r in caplog.records if r.name == "pqlsdk"]
    assert len(logged) == 100
    assert logged[0] == "a model name must be a str, not list: answering an empty score"


def test_an_invalid_id_is_scored_empty_under_the_model_asked_for() -> None:
    """The empty score of an invalid id has the asked model's lowest tier, or none if unknown."""
    with pqlsdk.Client(store="memory://", rules=PLAYBOOK) as client:
        named = client.score(None, model="stuck")  # type: ignore[arg-type]
        odd = client.score(None, model=["playbook"])  # type: ignore[arg-type]
    assert (named.model, named.tier, named.reasons[0].signal) == ("stuck", "fine", "invalid_id")
    assert (odd.model, odd.tier, odd.reasons[0].signal) == ("", "", "invalid_id")


def test_an_unknown_model_keeps_an_accounts_pqa_status() -> None:
    """``score_account(model="nope")`` rolls the members up as usual; only its score is empty."""
    with pqlsdk.Client(store="memory://", rules=PLAYBOOK) as client:
        client.group("u1", "acme")
        rolled = client.score_account("acme", model="nope")
    assert (rolled.id, dict(rolled.members)) == ("acme", {"u1": "cold"})
    assert rolled.score is not None
    assert (rolled.score.subject, rolled.score.model, rolled.score.reasons[0].signal) == (
        "account",
        "nope",
        "unknown_model",
    )


def test_a_strict_client_raises_for_an_unknown_model() -> None:
    """Strict: an unknown model, or a model name that is not a str, is a ``ConfigError``."""
    with pqlsdk.Client(store="memory://", rules=PLAYBOOK, strict=True) as client:
        with pytest.raises(pqlsdk.ConfigError, match="no model 'nope'"):
            client.score("u1", model="nope")
        with pytest.raises(pqlsdk.ConfigError, match="must be a str, not list"):
            client.score_account("acme", model=["nope"])  # type: ignore[arg-type]


def test_bad_ids_in_a_burst_never_reach_the_intake(tmp_path: Path) -> None:
    """Bad ids among good messages are refused on the caller's thread; the rest are recorded."""
    failures = _Failures()
    logging.getLogger("pqlsdk").addHandler(failures)
    try:
        with pqlsdk.Client(store=f"sqlite:///{tmp_path}/s.db") as client:
            for n, bad in enumerate([None, [1], "\ud800", {}, 1.5, b"u", object()] * 20):
                client.track(f"u{n}", "e")
                client.track(bad, "e")  # type: ignore[arg-type]
            stats = client.stats()
    finally:
        logging.getLogger("pqlsdk").removeHandler(failures)
    assert (stats.recorded, dict(stats.dropped)) == (
        140,
        {"invalid_id": 120, "missing_identity": 20},
    )
    assert failures.records == []


def test_rules_that_are_not_a_path_are_a_setup_error() -> None:
    """``load_rules()`` raises ``ConfigError`` for any value but a path, as setup mistakes do."""
    with pqlsdk.Client(store="memory://") as client:

        @EXAMPLES
        @given(rules=ANYTHING.filter(lambda value: not isinstance(value, str)))
        def run(rules: Any) -> None:
            with pytest.raises(pqlsdk.ConfigError):
                client.load_rules(rules)

        run()


def test_a_client_given_rules_that_are_not_a_path_raises_a_setup_error() -> None:
    """``Client(rules=5)`` raises ``ConfigError`` at construction, not ``TypeError``."""
    with pytest.raises(pqlsdk.ConfigError, match="rules must be a path or Rules, got int"):
        pqlsdk.Client(store="memory://", rules=5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("\ud800.toml", "\\ud800.toml: not a file path: it contains a lone surrogate"),
        ("rules\x00.toml", "rules\\x00.toml: not a file path: it contains a NUL character"),
    ],
    ids=["lone surrogate", "NUL"],
)
def test_a_rules_path_no_file_system_takes_is_a_rules_error(path: str, message: str) -> None:
    """``load_rules()`` names the problem in a printable ``RulesError``, no UnicodeEncodeError."""
    with pqlsdk.Client(store="memory://") as client, pytest.raises(pqlsdk.RulesError) as raised:
        client.load_rules(path)
    assert str(raised.value) == message
    str(raised.value).encode()  # printable: the lone surrogate is escaped


def test_any_str_for_a_rules_path_is_a_rules_error() -> None:
    """A str of any code points that names no rules file is a ``RulesError``, nothing else."""
    with pqlsdk.Client(store="memory://") as client:

        @EXAMPLES
        @given(path=TEXT)
        def run(path: str) -> None:
            with pytest.raises(pqlsdk.RulesError):
                client.load_rules(path)

        run()
