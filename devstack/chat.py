"""The chat page of `make dev` (/chat): a conversation of the demo client in a browser, built on relay-chat.js.

On AWS a client's back end mints the page's conversation token with its client token; here the local stack does,
through its own API, for the conversation the page's URL names (a new one when it names none).
"""

from __future__ import annotations

import html
import json
import secrets
from pathlib import Path
from urllib.parse import parse_qs, quote

import urllib3

from devstack.console import say

_PAGE = Path(__file__).with_name("chat.html").read_text(encoding="utf-8")
USER_ID = "chat-user"
"""The demo client's user the page speaks as."""


class ChatPage:
    def __init__(self, api_url: str, client_token: str, hint: str) -> None:
        """`hint` is the text box's placeholder."""
        self._hint = html.escape(hint)
        self._api_url = api_url
        self._client_token = client_token
        self._http = urllib3.PoolManager(timeout=10, retries=False)

    def __call__(self, query: str) -> tuple[int, dict[str, str], bytes]:
        conversation = (parse_qs(query).get("conversation") or [""])[0]
        if not conversation:  # its own URL, so that a reload goes on with the same conversation
            location = f"/chat?conversation=chat-{secrets.token_hex(4)}"
            return 302, {"location": location, "content-type": "text/plain"}, b"to a new conversation\n"
        answer = self._http.request(
            "POST",
            f"{self._api_url}/conversations/{quote(conversation, safe='')}/tokens",
            body=json.dumps({"userId": USER_ID}),
            headers={"authorization": f"Bearer {self._client_token}", "content-type": "application/json"},
        )
        if answer.status != 200:
            say("chat", f"cannot mint the page's token: {answer.status} {answer.data.decode(errors='replace')}")
            text = f"The local stack could not mint the page's conversation token ({answer.status}): see its output."
            return 502, {"content-type": "text/plain; charset=utf-8"}, text.encode()
        config = {"apiUrl": self._api_url, "session": answer.json()}
        # Inside <script>: "<" escaped, so no value can close the element.
        page = _PAGE.replace("{{HINT}}", self._hint).replace("{{CONFIG}}", json.dumps(config).replace("<", "\\u003c"))
        headers = {"content-type": "text/html; charset=utf-8", "cache-control": "no-store"}
        return 200, headers, page.encode()
