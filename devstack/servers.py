"""The local stack's own HTTP servers (its API, the echo bot, the receiver) share this footing."""

from __future__ import annotations

import io
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1, a thread per request; port 0 takes a free one."""

    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 resets connections when clients arrive together
    path = ""
    """Where on the server its requests go, as its `url` gives it out."""

    def __init__(self, port: int, handler: type[LocalRequestHandler]) -> None:
        super().__init__(("127.0.0.1", port), handler)

    def serve_forever(self, poll_interval: float = 0.05) -> None:
        # socketserver looks for shutdown() every 0.5 s by default: each stop (the stack's, each test's) waited that
        super().serve_forever(poll_interval)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{self.path}"


class LocalRequestHandler(BaseHTTPRequestHandler):
    """Keep-alive; each answer leaves in one write, at once.

    Unbuffered, the status line and headers go out in one write and the body in another; with Nagle's
    algorithm on, the body then waits for the client's delayed ACK of the headers (40 ms on Linux).
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = io.DEFAULT_BUFFER_SIZE  # flushed after each request, so headers and body leave together
