"""The HTTP API on 127.0.0.1: each request to one of the template's routes becomes its function's event.

Requests become API Gateway v2 events (payload format 2.0) and results become responses, as
the HTTP API does; a request that matches no route, or a function error, is answered as
API Gateway answers it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from devstack.console import say
from devstack.lambdas import Invocable, api_response, http_event, path_parameters
from devstack.servers import LocalRequestHandler, LocalServer

_MAX_BODY_BYTES = 10 * 1024 * 1024  # the HTTP API's payload limit
_SERVER_ERROR = b'{"message":"Internal Server Error"}'


class Gateway(LocalServer):
    def __init__(self, port: int) -> None:
        # Bound at once, so a port in use is reported before anything else starts; routed later.
        super().__init__(port, _Request)
        self.routes: list[tuple[str, str, Invocable]] = []
        self.pages: dict[str, Callable[[str], tuple[int, dict[str, str], bytes]]] = {}
        """The local stack's own pages (the chat page), by path: what they answer to a GET with this query."""

    def route_to(self, functions: list[Invocable]) -> None:
        """Serve the functions' routes."""
        self.routes = [(method, route, f) for f in functions for method, route in f.spec.http_routes]


class _Request(LocalRequestHandler):
    server: Gateway

    def __getattr__(self, name: str) -> Any:
        """Every method, even one the HTTP server does not know (TRACE, QUERY): the routes decide, as API
        Gateway's do, so what no route takes is a JSON 404 rather than the server's HTML 501."""
        if name.startswith("do_"):
            return self._route
        raise AttributeError(name)

    def _route(self) -> None:
        started = time.monotonic()
        path, _, query = self.path.partition("?")
        method = self.command
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            self._refuse(411, "Length Required")
            return
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._refuse(400, "Bad Request")
            return
        if length > _MAX_BODY_BYTES:
            self._refuse(413, "Request Entity Too Large")
            return
        body = self.rfile.read(length)
        if method in ("GET", "HEAD") and (page := self.server.pages.get(path)):
            status, headers, raw = page(query)
            self._send(status, headers, raw)
            say("api", f"{method} {path} → {status} ({(time.monotonic() - started) * 1000:.0f} ms)")
            return
        # A HEAD is its GET without the body (RFC 9110): the function sees the GET, and _send leaves the body out.
        routed = "GET" if method == "HEAD" else method
        match = next(
            (
                (route, function)
                for m, route, function in self.server.routes
                if m == routed and path_parameters(route, path) is not None
            ),
            None,
        )
        if match is None:
            self._send(404, {"content-type": "application/json"}, b'{"message":"Not Found"}')
            return
        route, function = match
        event = http_event(routed, route, path, self.headers.items(), body, query)
        try:
            result = function.invoke(event)
            status, headers, raw = api_response(result)
            cookies = (result.get("cookies") or []) if isinstance(result, dict) else []
        except Exception as error:  # a function error or a malformed result: API Gateway answers 500
            say("api", f"{method} {route}: {error}")
            status, headers, raw, cookies = 500, {"content-type": "application/json"}, _SERVER_ERROR, []
        self._send(status, headers, raw, cookies)
        # The route, not the path: the path of /bot/responses/{secret} carries the secret.
        say("api", f"{method} {route} → {status} ({(time.monotonic() - started) * 1000:.0f} ms)")

    def _refuse(self, status: int, message: str) -> None:
        """Answer without reading the body; the connection closes, since its unread bytes would follow."""
        self.close_connection = True
        self._send(
            status,
            {"content-type": "application/json", "connection": "close"},
            json.dumps({"message": message}).encode(),
        )

    def _send(self, status: int, headers: dict[str, str], body: bytes, cookies: list[str] | None = None) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        for cookie in cookies or []:
            self.send_header("set-cookie", cookie)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: `_route` prints its own line, without the path's secret."""
