"""The main job: the whole loop on one machine, in under a minute.

It starts a collector on a temporary SQLite file on a free port of 127.0.0.1,
plays a simulated cohort through a real ``Client`` with the playbook rules
(gates and moments included, as a host app would call them), flushes, and
prints the ranked PQL feed with its reasons and the feed's URL. With
``serve=True`` the collector stays up for a browser until interrupted.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import attrs
import httpx

from .._client import Client
from .._clock import FixedClock
from .._scoring import show
from ..rules import Rules, loads
from ._cohort import Cohort, simulate
from ._extras import load
from ._feed import DO_NOT_CONTACT

__all__ = ["RULES", "Demo", "running_demo"]

RULES = Path(__file__).resolve().parents[3] / "examples" / "rules" / "playbook.toml"
"""The playbook rules file (model 1 of the domain, with gates and moments)."""
DEMO_HOLDOUT = 20
"""Percent of users the demo holds out of every moment kind, so /moments has two arms."""
CROWD = 240
"""Trial users the demo adds to the cohort, so /moments has numbers to compare."""


def demo_rules(path: Path = RULES) -> Rules:
    """Return the rules at ``path`` with ``DEMO_HOLDOUT`` on every moment kind without one.

    The playbook holds no one out (its shared vectors say who sees what); the
    demo does, so its moments page measures lift on first run.
    """
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    for kind in data.get("moment", {}).values():
        kind.setdefault("holdout", DEMO_HOLDOUT)
    return loads(json.dumps(data), name=str(path), format="json")


@attrs.frozen
class Demo:
    """A running demo collector, filled with the simulated cohort."""

    url: str
    write_key: str
    feed_key: str
    cohort: Cohort
    directory: Path

    def feed(self) -> dict[str, Any]:
        """Fetch the feed from the collector's API: its leads, ranked, and its deadlines."""
        response = httpx.get(f"{self.url}/api/leads", auth=(self.feed_key, ""), timeout=10)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def leads(self) -> list[dict[str, Any]]:
        """Fetch the ranked leads from the collector's API, as its feed shows them."""
        leads: list[dict[str, Any]] = self.feed()["leads"]
        return leads


@contextmanager
def running_demo(
    *,
    rules: Path = RULES,
    port: int = 0,
    on_crossing: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[Demo]:
    """Start a collector, play the cohort into it, and yield it; stop and clean up after.

    ``on_crossing`` is the collector's hook (an ``Alerter``, say).
    """
    uvicorn = load("uvicorn", extra="collector", purpose="the main job")
    create_app = load("._app", extra="collector", purpose="the main job").create_app

    directory = Path(tempfile.mkdtemp(prefix="pqlsdk-demo-"))
    write_key, feed_key = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    measured = demo_rules(rules)
    app = create_app(
        str(directory / "collector.db"),
        write_keys=[write_key],
        feed_keys=[feed_key],
        on_crossing=on_crossing,
        rules=measured,
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            server.run()
        except BaseException as exc:  # a port in use, say: reported below, not lost in a thread
            failures.append(exc)

    thread = threading.Thread(target=serve, name="pqlsdk-demo-collector", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            reason = f": {failures[0]}" if failures else ""
            raise RuntimeError(f"the demo collector did not start{reason}")
        bound = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{bound}"
        clock = FixedClock(datetime.now(UTC))
        with Client(
            store=f"sqlite:///{directory / 'host-app.db'}",
            clock=clock,
            rules=measured,
            endpoint=url,
            write_key=write_key,
            retention=None,
        ) as client:
            cohort = simulate(client, clock, crowd=CROWD)
            client.flush(timeout=30)
        yield Demo(
            url=url, write_key=write_key, feed_key=feed_key, cohort=cohort, directory=directory
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def print_feed(demo: Demo, out: TextIO) -> None:
    """Print the ranked feed: who, tier, score, route, why, and how soon to respond.

    Leads that may be contacted are ranked; do-not-contact ones are listed apart.
    """
    body = demo.feed()
    leads = [lead for lead in body["leads"] if lead["route"] != DO_NOT_CONTACT]
    quiet = [lead for lead in body["leads"] if lead["route"] == DO_NOT_CONTACT]
    cohort = demo.cohort
    print(
        f"Simulated {cohort.users} users over two weeks: {cohort.events} events, "
        f"{cohort.gates_denied} premium gates denied, {cohort.moments_shown} moments shown "
        f"(with {cohort.crowd} more trials near their trial's end, {DEMO_HOLDOUT} % of users "
        "held out of each moment kind).",
        file=out,
    )
    print(f"\nPQL feed ({len(leads)} leads to contact), ranked:", file=out)
    for rank, lead in enumerate(leads, 1):
        _print_lead(f"{rank:>3}.", lead, out)
    print(f"\nDo not contact ({len(quiet)}; never ranked with the leads above):", file=out)
    for lead in quiet:
        _print_lead("  -", lead, out)
    hours = ", ".join(f"{tier} {show(h)} h" for tier, h in body["deadlines_hours"].items())
    print(
        f"\nRespond within {hours} of a lead crossing into its tier; OVERDUE means past "
        "that and not marked contacted on the feed. The cohort's two weeks were played "
        "in a second, so only the last day's crossings are still within their deadlines.",
        file=out,
    )
    print(f"\nFeed: {demo.url}/feed", file=out)
    print(f"Do the moments work? {demo.url}/moments", file=out)
    print(f"Sign in there with your name and the feed key: {demo.feed_key}", file=out)


def _print_lead(mark: str, lead: dict[str, Any], out: TextIO) -> None:
    """Print one lead: a line of facts, then its reasons (a PQA's: its qualifying members)."""
    due = lead.get("due_at")
    when = ""
    if due is not None:
        when = "  OVERDUE" if lead.get("overdue") else f"  respond by {due[11:16]} UTC"
    print(
        f"{mark} {lead['subject']} {lead['subject_id']:<18} {lead['tier']:<8} "
        f"{lead['score']:>7.1f}  -> {lead['route'].replace('_', ' ')}{when}",
        file=out,
    )
    qualifying = [m for m in lead.get("members") or () if m.get("qualifies")]
    if qualifying:
        print(f"       a PQA: {len(qualifying)} members at the PQA tier or above", file=out)
    for member in qualifying:
        print(f"         {member['user_id']}: {member['tier']} {show(member['score'])}", file=out)
    if not qualifying:  # every reason, so the points add up to the score
        for reason in lead.get("all_reasons", []):
            print(f"       {reason}", file=out)
