"""A webhook receiver on 127.0.0.1, for alert tests.

It speaks HTTP over a real socket (stdlib ``ThreadingHTTPServer`` in a thread) and
records every request's path, headers and JSON body. Tests steer it with
``fail`` (answer an error status, optionally with ``Retry-After``) and ``hang``
(hold requests until ``release`` or ``stop``). Each connection carries one
request (HTTP/1.0), so stopping never waits for an idle kept-alive connection.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

from tests.loopback import LoopbackServer


@attrs.frozen
class Request:
    """One request as it arrived, and the status it was (or will be) answered with."""

    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: Any
    at: float
    """Arrival time, from ``time.monotonic()``."""
    status: int


class Receiver(LoopbackServer):
    """An HTTP receiver that records what it is sent and answers as scripted."""

    thread_name = "receiver"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._scripted: deque[tuple[int, str | None, bool]] = deque()
        self._released = threading.Event()

    def url(self, path: str = "/hook") -> str:
        """Return the URL of ``path`` on this receiver."""
        assert self._server is not None, "start the receiver first"
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    @property
    def requests(self) -> list[Request]:
        """Every request so far, in arrival order, whatever it was answered."""
        with self._lock:
            return list(self._requests)

    def accepted(self, path: str | None = None) -> list[Any]:
        """Return the JSON bodies answered with 2xx (to ``path`` only, if given)."""
        return [
            request.body
            for request in self.requests
            if request.status < 300 and path in (None, request.path)
        ]

    def fail(self, status: int, *, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` (and ``Retry-After``)."""
        with self._lock:
            self._scripted.extend([(status, retry_after, False)] * times)

    def hang(self, *, times: int = 1, status: int = 200) -> None:
        """Hold the next ``times`` requests until ``release()`` or ``stop()``, then answer."""
        with self._lock:
            self._scripted.extend([(status, None, True)] * times)

    def release(self) -> None:
        """Let held requests be answered (and later ones too: hanging is over)."""
        self._released.set()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Request]:
        """Wait until ``count`` requests arrived; return them all."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"{len(self.requests)} of {count} requests came"
            time.sleep(0.005)
        return self.requests

    def make_server(self, address: tuple[str, int]) -> ThreadingHTTPServer:
        """Build the HTTP server that hands each request to this receiver."""
        self._released.clear()
        return _Server(address, self)

    def before_shutdown(self) -> None:
        """Answer requests that are being held."""
        self._released.set()

    def _answer(self, handler: _Handler) -> None:
        """Record one POST, then answer it as scripted (200 unless told otherwise)."""
        raw = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        with self._lock:
            status, retry_after, held = (
                self._scripted.popleft() if self._scripted else (200, None, False)
            )
            self._requests.append(
                Request(
                    path=handler.path,
                    headers={name.lower(): value for name, value in handler.headers.items()},
                    body=json.loads(raw),
                    at=time.monotonic(),
                    status=status,
                )
            )
        if held:
            self._released.wait(30)
        handler.send_response(status)
        if retry_after is not None:
            handler.send_header("Retry-After", retry_after)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"ok")


class _Server(ThreadingHTTPServer):
    """The listening socket; handler threads are joined when it closes."""

    daemon_threads = False

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
        self.receiver = receiver
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout test) closes before the answer; expected.
        if not isinstance(sys.exception(), ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Hands each POST to the receiver."""

    # Headers and body go out as separate small writes; with Nagle on, each
    # answer waits for the client's delayed ACK (40 ms on Linux).
    disable_nagle_algorithm = True
    server: _Server
    timeout = 5

    def do_POST(self) -> None:
        self.server.receiver._answer(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean: the tests assert on what arrived instead."""
