"""The HTTP API on 127.0.0.1: each request to one of the template's routes becomes its function's event.

Requests become API Gateway v2 events (payload format 2.0) and results become responses, as
the HTTP API does; a request that matches no route, or a function error, is answered as
API Gateway answers it.
"""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devstack.console import say
from devstack.lambdas import Invocable, api_response, http_event, path_parameters
from devstack.runtime import FunctionError

_MAX_BODY_BYTES = 10 * 1024 * 1024  # the HTTP API's payload limit


class Gateway(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 resets connections when clients arrive together

    def __init__(self, port: int, functions: list[Invocable]) -> None:
        super().__init__(("127.0.0.1", port), _Request)
        self.routes = [
            (method, route, function) for function in functions for method, route in function.spec.http_routes
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Request(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._route()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _route(self) -> None:
        started = time.monotonic()
        path, _, query = self.path.partition("?")
        method = self.command
        match = next(
            (
                (route, function)
                for m, route, function in self.server.routes
                if m == method and path_parameters(route, path) is not None
            ),
            None,
        )
        length = int(self.headers.get("content-length") or 0)
        if match is None:
            self.rfile.read(length)
            self._send(404, {"content-type": "application/json"}, b'{"message":"Not Found"}')
            return
        route, function = match
        if length > _MAX_BODY_BYTES:
            self.close_connection = True
            self._send(413, {"content-type": "application/json"}, b'{"message":"Request Entity Too Large"}')
            return
        event = http_event(method, route, path, dict(self.headers.items()), self.rfile.read(length))
        event["rawQueryString"] = query
        try:
            status, headers, body = api_response(function.invoke(event))
        except FunctionError as error:
            say("api", f"{method} {route}: function error: {error}")
            status, headers, body = 500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}'
        self._send(status, headers, body)
        # The route, not the path: the path of /bot/responses/{secret} carries the secret.
        say("api", f"{method} {route} → {status} ({(time.monotonic() - started) * 1000:.0f} ms)")

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in {"content-length", "connection"}:
                self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: `_route` prints its own line, without the path's secret."""
