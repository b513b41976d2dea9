"""The one place where domain errors become HTTP answers."""

from __future__ import annotations

import json

import pytest

from relay import errors
from relay.edge.api import STATUS, answer, browser_cors, create_resolver
from relay.rate_limits import Verdict

OVER = Verdict(admitted=False, limit=40, remaining=0, reset_seconds=2, retry_after_seconds=1)


def kinds(base: type[errors.RelayError]) -> list[type[errors.RelayError]]:
    return [base, *(kind for sub in base.__subclasses__() for kind in kinds(sub))]


@pytest.mark.parametrize("kind", kinds(errors.RelayError)[1:], ids=lambda kind: kind.__name__)
def test_every_domain_error_has_a_client_or_upstream_status(kind: type[errors.RelayError]) -> None:
    error = kind("what went wrong", OVER) if kind is errors.RateLimited else kind("what went wrong")  # type: ignore[call-arg]
    response = answer(error)

    assert 400 <= response.status_code < 600 and response.status_code != 500
    assert json.loads(str(response.body))["message"] == "what went wrong"


def test_a_timeout_is_told_apart_from_an_unreachable_bot() -> None:
    assert answer(errors.BotTimeout("slow")).status_code == 504
    assert answer(errors.BotUnavailable("down")).status_code == 502


def test_a_resolver_refuses_an_error_kind_without_a_status() -> None:
    class Unmapped(Exception):
        pass

    with pytest.raises(ValueError, match="Unmapped"):
        create_resolver(Unmapped)  # type: ignore[arg-type]


def test_the_mapping_names_only_domain_errors() -> None:
    assert all(issubclass(kind, errors.RelayError) for kind in STATUS)


def test_what_the_client_can_fix_is_a_4xx_and_what_the_operator_must_fix_is_not_a_retry() -> None:
    refused = answer(errors.BotRefusedMessage("the bot refused the message"))
    rejected = answer(errors.BotRejectedToken("the bot refused the relay's own credentials"))

    assert refused.status_code == 422
    assert rejected.status_code == 503
    assert "Retry-After" not in (rejected.headers or {})


def test_a_client_over_its_rate_is_told_when_to_retry_its_burst_what_is_left_and_when_it_is_full() -> None:
    response = answer(errors.RateLimited("over its rate", OVER))

    assert response.status_code == 429
    assert (
        response.headers.items()
        >= {
            "Retry-After": "1",
            "RateLimit-Limit": "40",
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": "2",
        }.items()
    )


def test_a_browser_page_may_read_the_rate_limit_headers() -> None:
    cors = browser_cors(("https://shop.example",))

    assert cors is not None
    assert {"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(cors.expose_headers)
