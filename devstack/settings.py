"""What `make dev` reads from the environment (docs/run-locally.md, "Settings"), checked before anything starts."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from typing import Annotated

from pydantic import Field, HttpUrl, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from relay import signing
from relay.settings import ORIGIN_PATTERN
from relay.stores.clients import new_token

DEMO_CLIENT_ID = "demo"
_TOKEN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\.\S+$")
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")


class DevSettings(BaseSettings):
    """The local stack's settings; whatever is unset is made up at random and printed in the banner."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_ignore_empty=True)

    port: Annotated[int, Field(ge=0, le=65535)] = 3000
    """The API's port; 0 picks a free one."""
    dev_client_token: str = Field(default_factory=lambda: new_token(DEMO_CLIENT_ID), repr=False)
    dev_response_url: HttpUrl | None = None
    dev_webhook_secret: str = Field(default_factory=signing.new_secret, repr=False)
    bot_webhook_url: HttpUrl | None = None
    bot_token: str = Field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    dev_bot_secret: str = Field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    dev_browser_origins: str = ""
    """Comma-separated origins of a developer's own pages that call the API (CORS), besides the chat page's."""

    @field_validator("dev_client_token")
    @classmethod
    def _token_names_its_client(cls, token: str) -> str:
        if not _TOKEN.match(token):
            raise ValueError(
                "must be '<client id>.<secret>', the form relay-clients issues (for example demo.change-me): "
                "the client id before the first dot is lowercase letters, digits and '-'"
            )
        return token

    @field_validator("dev_webhook_secret")
    @classmethod
    def _standard_webhooks_secret(cls, secret: str) -> str:
        try:
            key = base64.b64decode(secret.removeprefix(signing.SECRET_PREFIX), validate=True)
        except binascii.Error:
            key = b""
        if not secret.startswith(signing.SECRET_PREFIX) or len(key) < 24:
            raise ValueError("must be 'whsec_' and at least 24 bytes in base64, as Standard Webhooks secrets are")
        return secret

    @field_validator("dev_bot_secret")
    @classmethod
    def _fits_in_a_path(cls, secret: str) -> str:
        if not _PATH_SEGMENT.match(secret):
            raise ValueError("must be letters, digits and '.', '_', '~' or '-' only: it is a segment of a URL path")
        return secret

    @field_validator("dev_browser_origins")
    @classmethod
    def _origins(cls, origins: str) -> str:
        if wrong := [o for o in _split(origins) if not re.fullmatch(ORIGIN_PATTERN, o)]:
            raise ValueError(
                f"not origins (scheme://host[:port], no path, e.g. http://localhost:5173): {', '.join(wrong)}"
            )
        return origins

    @property
    def browser_origins(self) -> tuple[str, ...]:
        return _split(self.dev_browser_origins)

    @property
    def client_id(self) -> str:
        return self.dev_client_token.partition(".")[0]


def _split(origins: str) -> tuple[str, ...]:
    return tuple(origin.strip() for origin in origins.split(",") if origin.strip())


def problems(error: ValidationError) -> list[str]:
    """One line per bad variable, named as the user set it."""
    return [f"{'.'.join(str(part) for part in item['loc']).upper()}: {item['msg']}" for item in error.errors()]
