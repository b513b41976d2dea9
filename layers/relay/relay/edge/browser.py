"""The browser module (static/relay-chat.js), served by the client API so that a page imports it from the relay."""

from __future__ import annotations

from importlib.resources import files

from aws_lambda_powertools.event_handler import Response

MODULE = (files("relay.edge") / "static" / "relay-chat.js").read_text(encoding="utf-8")
"""Read once per container: it changes only with a deployment of the layer."""


def module_response() -> Response[str]:
    # Any origin may import it (a module script is fetched with CORS): it is public code and carries no data.
    headers = {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"}
    return Response(200, "text/javascript; charset=utf-8", MODULE, headers)
