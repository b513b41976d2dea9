"""The bot's route, POST /bot/responses/{secret}: the secret in the path is the bot's credential, checked before
the body is read; the body is the install probe or a bot response."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from relay.adapters.publisher import is_install_probe
from relay.edge.api import create_resolver, read_json
from relay.errors import WrongSecret
from relay.flows.bot_responses import REFUSALS, BotResponses
from relay.models import BotResponse, InstallProbe


def bot_message(value: Any) -> BotResponse | InstallProbe:
    """The body's model: the install probe, or a bot response (422 naming each field that is wrong)."""
    return InstallProbe() if is_install_probe(value) else BotResponse.model_validate(value)


def resolver(
    bot_responses: BotResponses, path_secret: Callable[[], str], max_body_bytes: int
) -> APIGatewayHttpResolver:
    """The route, calling the flow; refusals answered as relay.edge.api maps them."""
    app = create_resolver(*REFUSALS)

    @app.post("/bot/responses/<secret>")
    def post_bot_response(secret: str) -> dict[str, str]:
        event = app.current_event
        if not hmac.compare_digest(secret.encode(), path_secret().encode()):
            raise WrongSecret("wrong secret in the response URL: copy it again from the stack's secret")
        message = bot_message(read_json(event, max_body_bytes))
        return bot_responses.receive(message).model_dump(by_alias=True)

    return app
