"""The smallest back end of a chat page: it serves index.html and mints each visitor's conversation token.

A real back end does the same in its own framework: it keeps the client token (never in a page), knows who is
signed in, and answers its page's POST /chat-session with the relay's token answer (docs/browsers.md). This one
takes each visitor for a new user in a new conversation. It needs urllib3 (in .venv):

    RELAY_API_URL=http://127.0.0.1:3000 RELAY_CLIENT_TOKEN=<client token> .venv/bin/python examples/browser/backend.py

It serves http://localhost:5173 (another port: give it as the argument), an origin the relay must allow:
DEV_BROWSER_ORIGINS for `make dev`, the stack parameter BrowserOrigins on AWS.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import urllib3

API_URL = os.environ["RELAY_API_URL"].rstrip("/")
CLIENT_TOKEN = os.environ["RELAY_CLIENT_TOKEN"]
PAGE = (Path(__file__).parent / "index.html").read_bytes()


def chat_session(conversation_id: str, user_id: str) -> Any:
    """What the back end hands its page: the relay's token answer, as it is."""
    answer = urllib3.request(
        "POST",
        f"{API_URL}/conversations/{conversation_id}/tokens",
        json={"userId": user_id},
        headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
    )
    if answer.status != 200:
        raise RuntimeError(f"the relay refused the token: {answer.status} {answer.data!r}")
    return answer.json()


class Backend(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path in ("/", "/index.html"):
            self._answer(200, "text/html; charset=utf-8", PAGE)
        else:
            self._answer(404, "text/plain", b"not found\n")

    def do_POST(self) -> None:
        if self.path != "/chat-session":
            self._answer(404, "text/plain", b"not found\n")
            return
        visitor = secrets.token_hex(4)  # a real back end: the signed-in user, and the conversation they are in
        try:
            session = chat_session(f"web-{visitor}", f"visitor-{visitor}")
        except (RuntimeError, urllib3.exceptions.HTTPError) as error:
            self._answer(502, "text/plain", f"{error}\n".encode())
        else:  # the page is told where the relay is, to import its module and call it
            self._answer(200, "application/json", json.dumps({"apiUrl": API_URL, "session": session}).encode())

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5173
    server = ThreadingHTTPServer(("127.0.0.1", port), Backend)
    print(f"chat page on http://localhost:{port} (the relay must allow that origin), relay at {API_URL}", flush=True)
    server.serve_forever()
