"""Reading a request body as JSON: size, text, syntax and shape are checked before any model sees it."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from relay.errors import InvalidRequest, TooLarge

MAX_JSON_DEPTH = 64
"""Objects and arrays nested deeper than this are refused: no message type of the bot's nests near it."""


def parse_json(body: str | None, max_bytes: int) -> Any:
    """The body's JSON value; refused when over `max_bytes`, empty, not JSON, too deep, holding lone surrogates or
    a key twice in one object."""
    body = body or ""
    size = len(body.encode(errors="surrogatepass"))
    if size > max_bytes:
        raise TooLarge(f"body is {size} bytes; the limit is {max_bytes} bytes")
    if not body.strip():
        raise InvalidRequest("body is empty; send a JSON object")
    try:
        value = json.loads(body, object_pairs_hook=_object)
    except RecursionError:
        raise InvalidRequest(f"body is nested too deeply; at most {MAX_JSON_DEPTH} levels are taken") from None
    except ValueError as error:
        raise InvalidRequest(f"body is not valid JSON: {error}") from None
    _check_shape(value)
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers differ on which of two equal keys wins (the first, the last, an error): the relay takes no guess.
    value = dict(pairs)
    if len(value) < len(pairs):
        twice = next(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise InvalidRequest(f"body has the key {twice[:64]!a} twice in one object; send each key once")
    return value


def _check_shape(value: Any) -> None:
    # Iterative, so the check itself cannot run out of stack.
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidRequest(f"body is nested too deeply; at most {MAX_JSON_DEPTH} levels are taken")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)


def _check_text(text: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        # JSON's \ud800 escapes decode to lone surrogates, which no UTF-8 text (and no bot) can carry.
        raise InvalidRequest("body holds a lone UTF-16 surrogate (such as \\ud800); send valid Unicode text") from None
