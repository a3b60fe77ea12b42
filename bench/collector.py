"""Benchmark: the collector's ingest rate, in messages per second, over real HTTP.

Run: ``.venv/bin/python bench/collector.py [--seconds 4] [--senders 8] [--workers 1]``.
For SQLite (a temporary file) and PostgreSQL (``PQLSDK_BENCH_POSTGRES_URL``, else
``PQLSDK_TEST_POSTGRES_URL``, else a local server; skipped with a message when it
does not answer), starts the collector under uvicorn in its own process, then
has ``--senders`` threads POST gzip batches of 100 messages (99 tracks and one
tier crossing, unique ids, as pqlsdk's HTTP transport sends them) for a few
seconds, and prints accepted messages per second. Not a test.
"""

from __future__ import annotations

import argparse
import gzip
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from pqlsdk import messages
from pqlsdk.transports import Batch

ROOT = Path(__file__).resolve().parent.parent
WRITE_KEY = "bench-key"
BATCH = 100
POSTGRES_URL = os.environ.get(
    "PQLSDK_BENCH_POSTGRES_URL",
    os.environ.get("PQLSDK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)

# The server process: uvicorn's factory mode, so that --workers N starts N
# processes that each open the storage themselves, as a deployment would.
SERVE = """
import socket, sys
import uvicorn
probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
print(port, flush=True)
uvicorn.run(
    "pqlsdk_bench_app:app", factory=True, app_dir=sys.argv[1], workers=int(sys.argv[2]),
    host="127.0.0.1", port=port, log_level="warning", access_log=False,
)
"""

FACTORY = """
import os
from pqlsdk.collector import create_app

def app():
    return create_app(os.environ["PQLSDK_BENCH_STORAGE"], write_keys=["bench-key"])
"""


def make_bodies(count: int) -> list[bytes]:
    """``count`` gzip batch bodies of BATCH fresh messages each."""
    now = datetime.now(UTC)
    bodies = []
    for b in range(count):
        encoded = [
            messages.encode(
                messages.Track(
                    user_id=f"user-{(b * BATCH + n) % 5000}",
                    event="feature_used",
                    properties={"feature": "reports", "n": n, "plan": "trial"},
                    timestamp=now,
                    message_id=str(uuid.uuid4()),
                )
            )
            for n in range(BATCH - 1)
        ]
        encoded.append(
            messages.encode(
                messages.Track(
                    user_id=f"user-{b % 5000}",
                    event="pqlsdk_tier_changed",
                    timestamp=now,
                    properties={
                        "subject": "user",
                        "subject_id": f"user-{b % 5000}",
                        "model": "pql",
                        "previous_tier": "warm",
                        "tier": "hot",
                        "direction": "up",
                        "score": 60 + b % 30,
                        "route": "sales_development",
                        "reasons": [{"signal": "checkout", "points": 40, "fired": True}],
                        "top_features": ["reports"],
                        "team_size": 3,
                        "moments_seen": [],
                    },
                )
            )
        )
        body = Batch(id=f"b{b}", messages=tuple(encoded), sent_at=now).body()
        bodies.append(gzip.compress(body, compresslevel=6, mtime=0))
    return bodies


def measure(url: str, bodies: list[bytes], *, seconds: float, senders: int) -> tuple[int, float]:
    """POST bodies from ``senders`` threads for ``seconds``; return messages accepted and time."""
    lock = threading.Lock()
    next_body = iter(bodies)
    accepted = [0]
    stop = time.perf_counter() + seconds

    def send() -> None:
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        with httpx.Client(base_url=url, auth=(WRITE_KEY, ""), timeout=30) as client:
            while time.perf_counter() < stop:
                with lock:
                    body = next(next_body, None)
                if body is None:
                    return
                response = client.post("/v1/batch", content=body, headers=headers)
                response.raise_for_status()
                with lock:
                    accepted[0] += response.json()["accepted"]

    started = time.perf_counter()
    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return accepted[0], time.perf_counter() - started


def run(storage: str, label: str, args: argparse.Namespace, app_dir: Path) -> None:
    env = {**os.environ, "PQLSDK_BENCH_STORAGE": storage}
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(app_dir), str(args.workers)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert server.stdout is not None
    try:
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label}: the collector did not start")
            time.sleep(0.05)
        expected = int(args.seconds * 40_000 / BATCH) + 50
        bodies = make_bodies(expected)
        measure(url, bodies[:20], seconds=1, senders=2)  # warm up connections and caches
        count, elapsed = measure(url, bodies[20:], seconds=args.seconds, senders=args.senders)
        print(
            f"{label:<11} {args.workers} worker(s), {args.senders} senders: {count:,} messages "
            f"in {elapsed:.2f} s = {count / elapsed:,.0f} msg/s "
            f"({count / BATCH / elapsed:,.0f} batches/s)"
        )
    finally:
        server.terminate()
        server.wait(timeout=20)
        server.stdout.close()


def postgres_schema() -> tuple[str, Any] | None:
    """A fresh schema on the benchmark server and a function to drop it; None if unreachable."""
    try:
        import psycopg  # noqa: PLC0415 - optional: the postgres extra
        from psycopg import sql  # noqa: PLC0415
    except ImportError:
        print("postgresql: skipped (pip install 'pqlsdk[postgres]')")
        return None
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        print(f"postgresql: skipped, no server at {POSTGRES_URL}: {str(exc).strip()}")
        return None
    schema = f"pqlsdk_bench_{secrets.token_hex(4)}"
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))

    def drop() -> None:
        admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        admin.close()

    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app_dir = Path(tmp)
        (app_dir / "pqlsdk_bench_app.py").write_text(FACTORY)
        run(str(app_dir / "collector.db"), "sqlite", args, app_dir)
        postgres = postgres_schema()
        if postgres is not None:
            url, drop = postgres
            try:
                run(url, "postgresql", args, app_dir)
            finally:
                drop()


if __name__ == "__main__":
    main()
