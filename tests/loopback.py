"""A threaded HTTP server on 127.0.0.1 for tests: start, stop, and use as a context manager.

The test collector (``tests/delivery/collector.py``) and the webhook receiver
(``tests/collector_alerts/receiver.py``) differ in what they answer, not in how
they listen: this is the listening part, once.
"""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Self


class LoopbackServer:
    """Serves ``make_server()`` from a daemon thread; ``stop()`` joins every thread.

    A restarted server listens on the same port again, so a client sees the
    server go away and come back (connection refused in between).
    """

    thread_name = "loopback"

    def __init__(self) -> None:
        self._port = 0  # 0 until the first start picks a free port; then kept
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port, once started."""
        return self._port

    def make_server(self, address: tuple[str, int]) -> ThreadingHTTPServer:
        """Build the server for ``address``."""
        raise NotImplementedError

    def before_shutdown(self) -> None:
        """Wake handlers that are waiting (before the server stops accepting)."""

    def after_shutdown(self, server: ThreadingHTTPServer) -> None:
        """Tidy up after the accept loop stopped (before handler threads are joined)."""

    def start(self) -> None:
        """Listen on 127.0.0.1, on the same port as before if this server ran already."""
        server = self.make_server(("127.0.0.1", self._port))
        self._port = server.server_address[1]
        self._server = server
        # A short poll interval keeps stop() quick: shutdown() waits for one poll.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.02,), name=self.thread_name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and join the accept thread and every handler thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        self.before_shutdown()
        server.shutdown()
        self.after_shutdown(server)
        server.server_close()  # joins the handler threads
        thread.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
