"""A real Segment-style collector on 127.0.0.1, for delivery tests.

It speaks HTTP over a real socket (stdlib ``ThreadingHTTPServer`` in a thread),
so transports are tested the way users run them: connection pooling, gzip,
Basic auth, timeouts and refused connections are all real. Tests steer it with
``set_status``, ``outage``, ``set_delay`` and ``stop``/``start``.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import socket
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

from tests.loopback import LoopbackServer

BATCH_PATH = "/v1/batch"


@attrs.frozen
class Received:
    """One accepted batch: its JSON body, and its headers with lower-case names."""

    body: dict[str, Any]
    headers: dict[str, str]


class Collector(LoopbackServer):
    """An HTTP collector that requires Basic auth and records the batches it accepts."""

    thread_name = "collector"

    def __init__(self, *, write_key: str = "test-write-key") -> None:
        super().__init__()
        self.write_key = write_key
        self._expected_auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._requests = 0
        self._scripted: deque[tuple[int, str | None]] = deque()
        self._outage_until = 0.0
        self._delay = 0.0
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        """The endpoint to give a transport, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def requests(self) -> int:
        """How many HTTP requests arrived, accepted or not."""
        with self._lock:
            return self._requests

    @property
    def batches(self) -> list[Received]:
        """The accepted batches, in arrival order."""
        with self._lock:
            return list(self._received)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every message of every accepted batch, in arrival order."""
        return [message for received in self.batches for message in received.body["batch"]]

    def unique_message_ids(self) -> list[str]:
        """The ``messageId`` of every accepted message, duplicates removed, first seen first."""
        return list(dict.fromkeys(message["messageId"] for message in self.messages))

    def set_status(self, code: int, *, retry_after: str | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``code`` (and ``Retry-After``), then 200."""
        with self._lock:
            self._scripted.extend([(code, retry_after)] * times)

    def outage(self, seconds: float) -> None:
        """Answer 503 to every request for the next ``seconds``."""
        with self._lock:
            self._outage_until = time.monotonic() + seconds

    def set_delay(self, seconds: float) -> None:
        """Wait ``seconds`` before answering each request: a slow collector."""
        with self._lock:
            self._delay = seconds

    def make_server(self, address: tuple[str, int]) -> ThreadingHTTPServer:
        """Build the HTTP server that hands each request to this collector."""
        self._stopping.clear()
        return _Server(address, self)

    def before_shutdown(self) -> None:
        """Wake handlers sleeping in ``set_delay``."""
        self._stopping.set()

    def after_shutdown(self, server: ThreadingHTTPServer) -> None:
        """Cut kept-alive connections: clients now get connection refused."""
        assert isinstance(server, _Server)
        server.drop_connections()

    def _answer(self, handler: _Handler) -> None:
        """Handle one POST: the scripted behaviour first, then auth, then the batch."""
        length = int(handler.headers.get("Content-Length", "0"))
        raw = handler.rfile.read(length)
        with self._lock:
            self._requests += 1
            delay = self._delay
            down = time.monotonic() < self._outage_until
            scripted = self._scripted.popleft() if self._scripted and not down else None
        if delay and self._stopping.wait(delay):
            handler.close_connection = True  # stopped while waiting: answer nothing
            return
        if down:
            handler.reply(503)
        elif scripted is not None:
            handler.reply(scripted[0], retry_after=scripted[1])
        elif handler.path != BATCH_PATH:
            handler.reply(404)
        elif handler.headers.get("Authorization") != self._expected_auth:
            handler.reply(401)
        else:
            self._accept(handler, raw)

    def _accept(self, handler: _Handler, raw: bytes) -> None:
        """Decode and record a batch, or answer 400 if it is not one."""
        try:
            if handler.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            body = json.loads(raw)
            body["batch"]  # a batch without "batch" is a bad request
        except (OSError, ValueError, KeyError, TypeError):
            handler.reply(400)
            return
        headers = {name.lower(): value for name, value in handler.headers.items()}
        with self._lock:
            self._received.append(Received(body=body, headers=headers))
        handler.reply(200)


class _Server(ThreadingHTTPServer):
    """The listening socket; it knows its open connections so ``stop`` can cut them."""

    # Handler threads are joined at close (no thread outlives a test), and the
    # port is bound with SO_REUSEADDR so a restart gets the same one back.
    daemon_threads = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], collector: Collector) -> None:
        self.collector = collector
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut kept-alive connections, as a crashed collector would."""
        with self._connections_lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):  # the client closed it first
                    connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout test) closes mid-answer; that is expected.
        if not isinstance(sys.exception(), ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Hands each POST to the collector; keeps connections alive like a real one."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate small writes; with Nagle on, each
    # response waits for the client's delayed ACK (40 ms on Linux).
    disable_nagle_algorithm = True
    server: _Server
    timeout = 5  # an idle kept-alive connection cannot hold a handler thread for long

    def do_POST(self) -> None:
        self.server.collector._answer(self)

    def reply(self, status: int, *, retry_after: str | None = None) -> None:
        """Send a small JSON answer."""
        body = json.dumps({"success": status == 200}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean: the tests assert on what arrived instead."""
