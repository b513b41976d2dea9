"""The local stack's own HTTP servers (its API, the echo bot, the receiver) share this footing."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1, a thread per request; port 0 takes a free one."""

    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 resets connections when clients arrive together
    path = ""
    """Where on the server its requests go, as its `url` gives it out."""

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", port), handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{self.path}"
