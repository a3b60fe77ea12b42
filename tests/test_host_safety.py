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
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pqlsdk

from .conftest import ROOT

PLAYBOOK = ROOT / "examples" / "rules" / "playbook.toml"
EXAMPLES = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Strings of any code point, lone surrogates included (text() leaves them out).
TEXT = st.text(st.characters(codec=None), max_size=12)
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
TIMEOUTS = st.one_of(st.none(), st.floats(max_value=0.01), st.integers(-5, 0))
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


@given(timeout=TIMEOUTS)
@EXAMPLES
def test_close_never_raises(timeout: float | None) -> None:
    """``close()`` and ``aclose()`` with any timeout return, and a second close too."""
    with pqlsdk.Client(store="memory://") as client:
        client.track("u1", "e")
        assert isinstance(client.close(timeout), pqlsdk.FlushResult)
        assert isinstance(asyncio.run(client.aclose(timeout)), pqlsdk.FlushResult)
