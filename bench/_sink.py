"""A loopback HTTP sink for the capture benchmarks, and a guard that keeps peers offline.

Run: ``python bench/_sink.py``. It prints its URL on the first stdout line and
serves until its stdin closes. It answers 200 ``{}`` to any POST (pqlsdk and
Segment post to ``/v1/batch``, PostHog to ``/batch/``) and counts the messages
it received: the JSON body (gunzipped if ``Content-Encoding: gzip``) holds them
in ``"batch"``. ``GET /count`` returns ``{"messages": n, "posts": n, "paths":
{path: posts}}`` so a case can check that what it captured arrived.

The sink runs in its own process, as a real collector would: it must not
compete with the measured calls for the benchmark process's GIL.
"""

from __future__ import annotations

import contextlib
import gzip
import ipaddress
import json
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_LOCK = threading.Lock()
_COUNTS: dict[str, Any] = {"messages": 0, "posts": 0, "paths": {}}


class _Handler(BaseHTTPRequestHandler):
    """Count the messages of each batch POST; report the counts on GET /count."""

    # Keep-alive, as real collectors do: SDKs reuse one connection per sender.
    protocol_version = "HTTP/1.1"
    # Small responses on a reused connection must not wait for Nagle's delay.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        try:
            batch = json.loads(body).get("batch", [])
        except (ValueError, AttributeError):
            batch = []
        with _LOCK:
            _COUNTS["messages"] += len(batch)
            _COUNTS["posts"] += 1
            _COUNTS["paths"][self.path] = _COUNTS["paths"].get(self.path, 0) + 1
        self._reply(b"{}")

    def do_GET(self) -> None:
        with _LOCK:
            payload = json.dumps(_COUNTS).encode()
        self._reply(payload)

    def _reply(self, payload: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: a line per request would flood the benchmark's output."""


def serve() -> None:
    """Serve on an ephemeral loopback port until stdin closes."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    print(f"http://127.0.0.1:{server.server_port}", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()
    server.shutdown()


@contextlib.contextmanager
def started() -> Iterator[str]:
    """Start a sink process; yield its URL; stop it on exit."""
    process = subprocess.Popen(
        [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        yield process.stdout.readline().strip()
    finally:
        process.stdin.close()
        process.wait(timeout=10)
        process.stdout.close()


def counts(url: str) -> dict[str, Any]:
    """The sink's counts so far (cumulative: take differences)."""
    with urllib.request.urlopen(url.rstrip("/") + "/count", timeout=10) as response:  # noqa: S310
        figures: dict[str, Any] = json.loads(response.read())
    return figures


def loopback_only() -> Callable[[], list[str]]:
    """Refuse every connection and name lookup that leaves 127.0.0.1, in this process.

    Peers have cloud defaults (flag polling, telemetry, event hosts); the
    benchmark machine has no network, and a peer that tried to reach one would
    be timed waiting for it. This makes such an attempt fail at once and
    records it: call the returned function for the refused addresses.
    """
    refused: list[str] = []
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo

    def local(address: Any) -> bool:
        if not isinstance(address, tuple):
            return True  # a Unix socket
        host = str(address[0])
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def connect(self: socket.socket, address: Any) -> None:
        if not local(address):
            refused.append(f"connect {address!r}")
            raise ConnectionRefusedError(f"benchmark is offline: {address!r}")
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not local(address):
            refused.append(f"connect {address!r}")
            return 111  # ECONNREFUSED
        return original_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not local((host if isinstance(host, str) else host.decode(),)):
            refused.append(f"getaddrinfo {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"benchmark is offline: {host!r}")
        return original_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign, assignment]
    socket.getaddrinfo = getaddrinfo
    return lambda: list(refused)


if __name__ == "__main__":
    serve()
