"""``/moments`` and ``/api/moments``: the lift report, served behind the feed key."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from pqlsdk import ConfigError, messages, rules
from pqlsdk.cli import main
from pqlsdk.collector import create_app

from ..lift.cohort import RULES, build
from .conftest import WRITE_KEY, Serve, Served

FEED_KEY = "fk-test"


@pytest.fixture
def measured(serve: Serve, tmp_path: Path) -> tuple[Served, Path]:
    """A collector with the cohort's messages stored and the cohort's rules; and the history."""
    history = tmp_path / "history.jsonl"
    build(history, users=60)
    served = serve(feed_keys=[FEED_KEY], rules=rules.loads(RULES))
    lines = history.read_text().splitlines()
    served.storage.store([messages.convert(json.loads(line)) for line in lines])
    return served, history


@pytest.mark.parametrize("path", ["/api/moments", "/api/moments.csv"])
def test_the_api_needs_a_feed_key(measured: tuple[Served, Path], path: str) -> None:
    """Without a feed key (a write key is not one) the report answers 401."""
    served, _ = measured
    for auth in (None, (WRITE_KEY, ""), ("wrong", "")):
        assert httpx.get(served.url + path, auth=auth).status_code == 401


def test_the_page_sends_strangers_to_sign_in(measured: tuple[Served, Path]) -> None:
    """A browser without a session goes to the login form, and back to /moments after."""
    served, _ = measured
    response = httpx.get(served.url + "/moments")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fmoments"


def test_the_json_is_what_pqlsdk_moments_prints(
    measured: tuple[Served, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``/api/moments`` and ``pqlsdk moments --json`` on the same history agree exactly."""
    served, history = measured
    (tmp_path / "rules.toml").write_text(RULES)
    assert main(["moments", str(tmp_path / "rules.toml"), str(history), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert httpx.get(served.url + "/api/moments", auth=(FEED_KEY, "")).json() == expected


def test_the_csv_has_a_row_per_kind(measured: tuple[Served, Path]) -> None:
    """Every count, rate, the interval, the verdict and the relative lift, a row per kind."""
    served, _ = measured
    response = httpx.get(served.url + "/api/moments.csv", auth=(FEED_KEY, ""))
    assert response.headers["content-disposition"] == 'attachment; filename="pql-moments.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["kind"] for row in rows] == ["nudge", "wall"]
    nudge = rows[0]
    assert int(nudge["eligible"]) == int(nudge["shown"]) + int(nudge["held_out"])
    assert float(nudge["lift_low"]) <= float(nudge["lift"]) <= float(nudge["lift_high"])
    assert nudge["verdict"]


def test_the_page_draws_each_moment(measured: tuple[Served, Path]) -> None:
    """Per kind a section with the funnel's bars and the lift's interval, in inline SVG."""
    served, _ = measured
    page = httpx.get(served.url + "/moments", auth=(FEED_KEY, ""))
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.text.count('<section class="moment"') == 2
    assert page.text.count('<svg class="funnel"') == 2
    assert '<rect class="interval"' in page.text


def test_the_feed_links_to_the_moments_page_only_with_rules(
    measured: tuple[Served, Path], serve: Serve
) -> None:
    """With rules, the feed links to /moments; without, there is neither link nor route."""
    served, _ = measured
    assert 'href="/moments"' in httpx.get(served.url + "/feed", auth=(FEED_KEY, "")).text
    bare = serve(feed_keys=[FEED_KEY])
    assert httpx.get(bare.url + "/api/moments", auth=(FEED_KEY, "")).status_code == 404
    assert 'href="/moments"' not in httpx.get(bare.url + "/feed", auth=(FEED_KEY, "")).text


def test_rules_without_a_conversion_are_refused_at_start(tmp_path: Path) -> None:
    """The report needs a conversion: a collector given rules without one does not start."""
    path = tmp_path / "rules.toml"
    path.write_text("[model.m]\ntiers = { low = 0 }\n[moment.a]\n")
    with pytest.raises(ConfigError, match=r"needs \[moment\.\*\] kinds and a \[moments\]"):
        create_app(str(tmp_path / "c.db"), write_keys=[WRITE_KEY], feed_keys=[FEED_KEY], rules=path)


def test_the_collector_command_serves_moments_with_rules(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``pqlsdk collector --rules FILE`` serves /api/moments with that file's kinds."""
    (tmp_path / "rules.toml").write_text(RULES)
    seen: dict[str, Any] = {}

    def run(app: Any, **options: Any) -> None:
        served = Served(app)
        served.start()
        try:
            seen["report"] = httpx.get(served.url + "/api/moments", auth=(FEED_KEY, "")).json()
        finally:
            served.stop()

    monkeypatch.setattr(uvicorn, "run", run)
    args = ["collector", "--storage", str(tmp_path / "c.db"), "--write-key", WRITE_KEY]
    args += ["--feed-key", FEED_KEY, "--rules", str(tmp_path / "rules.toml")]
    assert main(args) == 0
    assert list(seen["report"]["moments"]) == ["nudge", "wall"]
