"""AWS on this machine: moto in a process of its own, `python -m devstack.aws`, started by devstack.local.

Its own process, so moto's work runs on another core than the stack's API, pollers and terminal. It prints
its URL once it listens, and stops when its standard input closes (the stack is gone, however it went).

moto's application is served by the stack's own HTTP server rather than werkzeug's: werkzeug's closes the
connection after every answer (and then waits up to 10 ms for more of the request), so each AWS call of a
function paid a new connection and a new thread; here the functions' clients keep their connections.
"""

from __future__ import annotations

import functools
import io
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

from devstack.moto_fidelity import behave_as_aws
from devstack.servers import LocalRequestHandler, LocalServer

READY = "moto listening at "
"""The line that gives the stack moto's URL."""


class AwsError(Exception):
    """moto could not start."""


Application = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class AwsServer(LocalServer):
    """moto's WSGI application on 127.0.0.1, taking one request at a time however many connections are open.

    moto's backends are not thread-safe, and the functions change the delivery queue from their own processes
    (a retry's visibility, the release of untried messages) while the stack receives from it; interleaved,
    moto can hand out a later message of a group waiting its turn. Only the application's work is serialized:
    reading requests and writing answers overlap.
    """

    def __init__(self, application: Application) -> None:
        super().__init__(0, _Request)
        self.application = application
        self.one_at_a_time = threading.Lock()


class _Request(LocalRequestHandler):
    server: AwsServer

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every method goes to moto
            return self._call
        raise AttributeError(name)

    def _call(self) -> None:
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        environ = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "latin-1"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("content-type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            answer.update(status=status, headers=headers)

        with self.server.one_at_a_time:
            chunks = self.server.application(environ, start_response)
            try:
                body = b"".join(chunks)
            finally:
                getattr(chunks, "close", lambda: None)()
        code, _, reason = answer["status"].partition(" ")
        self.send_response(int(code), reason)
        for name, value in answer["headers"]:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: one line per AWS call would drown the functions' own."""


def _remember_names() -> None:
    """moto works out afresh on every request what depends only on a class or a name: the action methods of
    the service's response class (inspect.getmembers over hundreds of members) and each attribute's snake_case
    name (an SQS queue's dozen attributes on every send and receive). Remembered, they are computed once."""
    from moto.core import responses, utils
    from moto.sqs import models

    snake_case = functools.lru_cache(maxsize=4096)(utils.camelcase_to_underscores)
    responses.camelcase_to_underscores = models.camelcase_to_underscores = snake_case
    names = functools.cache(lambda cls: frozenset(utils.method_names_from_class(cls)))
    responses.method_names_from_class = names


def _read_the_clock_cheaply() -> None:
    """moto's SQS reads the clock for every message of a queue on each send and receive (is it visible, delayed,
    past its retention) through datetime arithmetic, 3 µs a read: behind a client whose held responses fill the
    delivery queue, that was a third of moto's time, and moto serves one request at a time, so every client's
    calls waited on it. The same seconds since the epoch, read from time.time()."""
    from moto.sqs import models

    exact = models.unix_time

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else exact(dt)

    models.unix_time = unix_time
    models.unix_time_millis = lambda dt=None: unix_time(dt) * 1000.0


def main() -> None:
    # No CORS headers on every answer: no browser calls this moto (read by moto's settings at import).
    os.environ["MOTO_DISABLE_GLOBAL_CORS"] = "true"
    # Imported here, not at the top: the stack imports this module for READY, and moto takes a second to import.
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class Dispatcher(DomainDispatcherApplication):  # type: ignore[misc]  # moto is not type-checked: see pyproject
        @functools.cache  # noqa: B019 - one dispatcher, a handful of hosts; moto lists its package's folders per call
        def get_backend_for_host(self, host: str | None) -> Any:
            return super().get_backend_for_host(host)

    behave_as_aws()  # in the process that runs moto, where the relay relies on AWS's behaviour
    _remember_names()
    _read_the_clock_cheaply()
    server = AwsServer(Dispatcher(create_backend_app))
    threading.Thread(target=server.serve_forever, name="moto", daemon=True).start()
    print(f"{READY}{server.url}", flush=True)
    os.dup2(2, 1)  # nobody reads our stdout after that line: anything more goes where errors go
    sys.stdin.read()  # until the stack closes it
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
