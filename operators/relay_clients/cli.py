"""relay-clients: the operators' command to manage clients in the deployed clients table.

    relay-clients --stack messaging-relay create --id acme --name "ACME" --response-url https://acme.example/hook
    relay-clients --stack messaging-relay list
    relay-clients --stack messaging-relay rotate acme --token     (the previous token works 24 more hours)
    relay-clients --stack messaging-relay rotate acme --secret --grace 2h
    relay-clients --stack messaging-relay disable acme
    relay-clients --stack messaging-relay set-rate acme 50        (50 requests/s, bursts of 100; --default: the stack's)
    relay-clients --stack messaging-relay health acme             (GET /client: its endpoint, as acme sees it)
    relay-clients --stack messaging-relay attempts acme --status failed --since 2026-12-02T18:00:00Z
    relay-clients --stack messaging-relay test acme               (a signed test delivery now: its attempt)
    relay-clients --stack messaging-relay recover acme --since 2026-12-02T18:00:00Z
    relay-clients --dev list                                      (the local stack of `make dev`)

The table is `--table NAME`, or the `ClientsTableName` output of `--stack NAME` (or of the local stack with
`--dev`), or $CLIENTS_TABLE. Exit status: 0 done, 1 failed (unknown client, AWS error), 2 bad input.
Every command is `run(context, args) -> int`, listed with its options in COMMANDS, from which the parser is built.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError, NoRegionError
from pydantic import TypeAdapter, ValidationError

from relay import signing
from relay.adapters.redelivery import Redelivery
from relay.adapters.webhook import WebhookSender
from relay.attempts import DeliveriesQuery
from relay.caller import Caller
from relay.errors import RelayError
from relay.flows.recovery import RecoverRequest, Recovery
from relay.flows.self_service import SelfService
from relay.models import Client, ClientId
from relay.observability import logger
from relay.rate_limits import MAX_RATE, Rate, RateLimit
from relay.settings import DeliverySettings
from relay.stores.attempts import AttemptLog
from relay.stores.clients import ClientStore, Rotation, hash_token, new_token
from relay.stores.delivery_state import DeliveryState
from relay.stores.responses_log import ResponsesLog
from relay_clients.context import (
    ATTEMPTS_TABLE,
    BAD_INPUT,
    CLIENTS_TABLE,
    DEAD_LETTER_QUEUE,
    DELIVERY_QUEUE,
    DELIVERY_STATE_TABLE,
    FAILED,
    OK,
    RESPONSES_TABLE,
    CommandError,
    Context,
    Resource,
)
from relay_clients.redrive import redrive
from relay_clients.replay import replay

_client_id: TypeAdapter[str] = TypeAdapter(ClientId)
_rate: TypeAdapter[int] = TypeAdapter(Rate)

# What the function containers do: they trust a cached client record this long (CACHE_TTL_SECONDS).
_CACHE_NOTE = "Functions already running may go on using the previous record for up to 60 seconds (their cache)."

# What a test delivery waits for the receiver, as the delivery function does by default (WebhookTimeoutSeconds).
_WEBHOOK_TIMEOUT_SECONDS = DeliverySettings.model_fields["webhook_timeout_seconds"].default

# The options of `attempts`, by the query parameters they give.
_ATTEMPTS_OPTIONS = {
    "conversationId": "--conversation",
    "webhookId": "--webhook-id",
    "status": "--status",
    "since": "--since",
    "until": "--until",
    "limit": "--limit",
    "cursor": "--cursor",
}

# The option each model field comes from, to name it in an error.
_OPTIONS = {"client_id": "--id", "name": "--name", "response_url": "--response-url"}
_HINTS = {
    "client_id": "use 1 to 63 lowercase letters, digits and hyphens, starting with a letter or digit",
}


class _Parser(argparse.ArgumentParser):
    """Usage errors become a CommandError, so `main` returns their status instead of exiting."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise CommandError(message, BAD_INPUT)


def main(argv: list[str] | None = None) -> int:
    with _diagnostics_on_stderr():
        return _main(argv)


@contextmanager
def _diagnostics_on_stderr() -> Iterator[None]:
    """The flows' log lines are diagnostics: on stderr while a command runs, so what it prints (JSON for health,
    attempts, test, recover) is all there is on stdout, for jq or a script. Back on their own stream afterwards:
    main() also runs in-process (tests, scripts), whose stderr may be gone by the next log line."""
    handler = logger.registered_handler
    if not isinstance(handler, logging.StreamHandler):
        yield
        return
    own = handler.stream
    handler.stream = sys.stderr  # not setStream, which flushes the stream it replaces
    try:
        yield
    finally:
        handler.stream = own


def _main(argv: list[str] | None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        run: Callable[[Context, argparse.Namespace], int] = args.run
        return run(Context(args), args)
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else OK if exit_.code is None else FAILED
    except CommandError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return error.status
    except ClientError as error:
        print(f"error: {_aws_message(error)}", file=sys.stderr)
        return FAILED
    except NoRegionError:
        print(
            "error: no AWS region: give --region, set AWS_DEFAULT_REGION, or use a --profile (or AWS_PROFILE)"
            " whose configuration names one",
            file=sys.stderr,
        )
        return FAILED
    except BotoCoreError as error:  # no credentials, unknown profile, endpoint unreachable
        print(f"error: AWS: {error}", file=sys.stderr)
        return FAILED


# ── Subcommands ──────────────────────────────────────────────────────────────────────────────


def create(context: Context, args: argparse.Namespace) -> int:
    store = context.clients
    try:
        client, token = store.register(args.id, args.name, args.response_url)
    except ValidationError as error:
        raise CommandError(_invalid(error), BAD_INPUT) from None
    except ClientError as error:
        if _code(error) == "ConditionalCheckFailedException":
            raise CommandError(
                f"client '{args.id}' already exists: choose another --id, or use 'rotate {args.id}' for new credentials"
            ) from None
        raise
    print(f"Created client '{client.client_id}' ({client.name}).")
    _print_fields(
        [
            ("client id", client.client_id),
            ("bearer token", token),
            ("signing secret", client.webhook_secret),
            ("response URL", str(client.response_url) if client.response_url else "(none: use 'set-url' to add one)"),
        ]
    )
    print("Store the token and the signing secret now: they will not be shown again.")
    return OK


def list_clients(context: Context, args: argparse.Namespace) -> int:
    store = context.clients
    clients = sorted(store.scan(), key=lambda client: client.client_id)
    if not clients:
        print("No clients yet: add one with 'create --id ID --name NAME'.")
        return OK
    rows = [("ID", "NAME", "ENABLED", "RATE", "RESPONSE URL")] + [
        (
            client.client_id,
            _cell(client.name),
            "yes" if client.enabled else "no",
            f"{client.rate_limit}/s" if client.rate_limit else "default",
            _url_cell(client),
        )
        for client in clients
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        print("  ".join([*(value.ljust(width) for value, width in zip(row, widths, strict=False)), row[4]]))
    return OK


def rotate(context: Context, args: argparse.Namespace) -> int:
    store = context.clients
    client = _existing(store, args.id)
    both = not args.token and not args.secret
    grace = timedelta(0) if args.now else args.grace
    rotation = Rotation(grace=grace)
    shown: list[tuple[str, str]] = []
    if args.token or both:
        token = new_token(client.client_id)
        rotation.token_hash = hash_token(token)
        shown.append(("bearer token", token))
    if args.secret or both:
        rotation.webhook_secret = signing.new_secret()
        shown.append(("signing secret", rotation.webhook_secret))
    now = datetime.now(UTC)
    store.rotate(client.client_id, rotation, now)
    what = " and ".join(name for name, _ in shown)
    print(f"New {what} for client '{client.client_id}':")
    _print_fields(shown)
    print(f"Store the new {what} now: {'they' if len(shown) > 1 else 'it'} will not be shown again.")
    until = f"until {(now + grace).strftime('%Y-%m-%d %H:%M UTC')}"
    if rotation.token_hash:
        print("The previous token no longer works." if not grace else f"The previous token keeps working {until}.")
    if rotation.webhook_secret:
        print(
            "Deliveries are signed with the new secret only: give it to the receiver."
            if not grace
            else f"Deliveries carry signatures with both the new and the previous secret {until}: give the new"
            " one to the receiver before then."
        )
    print(_CACHE_NOTE)
    return OK


def disable(context: Context, args: argparse.Namespace) -> int:
    return _set_enabled(context.clients, args.id, enabled=False)


def enable(context: Context, args: argparse.Namespace) -> int:
    return _set_enabled(context.clients, args.id, enabled=True)


def set_url(context: Context, args: argparse.Namespace) -> int:
    store = context.clients
    client = _existing(store, args.id)
    try:
        updated = Client.model_validate({**client.model_dump(), "response_url": None if args.none else args.url})
    except ValidationError as error:
        raise CommandError(_invalid(error, {"response_url": "URL"}), BAD_INPUT) from None
    # Looked up first: a command that cannot nudge them changes nothing.
    queues = context.resources(DELIVERY_STATE_TABLE, DELIVERY_QUEUE) if client.parked_conversations else None
    store.set_url(client.client_id, str(updated.response_url) if updated.response_url else None)
    if updated.response_url is None:
        print(f"Client '{client.client_id}' has no response URL now: its responses reach SNS subscribers only.")
    else:
        print(f"Client '{client.client_id}' now receives responses at {updated.response_url}")
    if queues is not None:
        table, queue_url = queues
        parked = DeliveryState(context.aws("dynamodb"), table).parked(client.client_id)
        Redelivery(context.aws("sqs"), queue_url).nudge(client.client_id, parked)
        print(f"Its {len(parked)} parked conversation(s) are delivered from the responses log, each in order.")
    return OK


def set_rate(context: Context, args: argparse.Namespace) -> int:
    store = context.clients
    client = _existing(store, args.id)
    store.set_rate(client.client_id, None if args.default else args.rate)
    if args.default:
        print(f"Client '{client.client_id}' has the stack's rate again (its ClientRateLimit parameter). {_CACHE_NOTE}")
    else:
        print(
            f"Client '{client.client_id}' may now make {args.rate} requests/s on the client API, in bursts of up to"
            f" {RateLimit(args.rate).burst}; beyond that it gets 429 with Retry-After. {_CACHE_NOTE}"
        )
    return OK


def _set_enabled(store: ClientStore, client_id: str, *, enabled: bool) -> int:
    client = _existing(store, client_id)
    state = "enabled" if enabled else "disabled"
    if store.set_enabled(client.client_id, enabled) == enabled:
        print(f"Client '{client.client_id}' is already {state}.")
        return OK
    effect = (
        "its token works again"
        if enabled
        else "its token is refused and bot responses for it are no longer POSTed to its response URL"
    )
    print(f"Client '{client.client_id}' {state}: {effect}. {_CACHE_NOTE}")
    return OK


def redrive_command(context: Context, args: argparse.Namespace) -> int:
    if args.conversation and not args.client:
        raise CommandError("--conversation needs --client: conversation ids are the client's own", BAD_INPUT)
    queue, dead_letters = context.resources(DELIVERY_QUEUE, DEAD_LETTER_QUEUE)

    def wanted(client_id: str, conversation_id: str) -> bool:
        return (not args.client or client_id == args.client) and (
            not args.conversation or conversation_id == args.conversation
        )

    result = redrive(context.aws("sqs"), dead_letters, queue, wanted, args.dry_run)
    verb = "Would move" if args.dry_run else "Moved"
    total = sum(result.moved.values())
    print(f"{verb} {total} response(s) back to the delivery queue, each conversation in its order:")
    for (client_id, conversation_id), count in sorted(result.moved.items()):
        print(f"  {client_id}  {_cell(conversation_id)}  {count}")
    if result.left:
        print(f"{result.left} other response(s) stay in the dead-letter queue.")
    return OK


def replay_command(context: Context, args: argparse.Namespace) -> int:
    table, queue = context.resources(RESPONSES_TABLE, DELIVERY_QUEUE)
    log = ResponsesLog(context.aws("dynamodb"), table)
    count = replay(log, context.aws("sqs"), queue, args.client, args.conversation, args.dry_run)
    where = _conversation(args)
    if not count:
        print(f"Nothing to replay: the responses log holds no response of {where} (kept for ResponseRetentionDays).")
    elif args.dry_run:
        print(f"Would queue {count} response(s) of {where} for delivery to its response URL, in order.")
    else:
        print(f"Queued {count} response(s) of {where} for delivery to its response URL, in order.")
    return OK


def resume(context: Context, args: argparse.Namespace) -> int:
    """End a conversation's stop without its response coming back (its dead-letter messages were purged)."""
    (table,) = context.resources(DELIVERY_STATE_TABLE)
    state = DeliveryState(context.aws("dynamodb"), table)
    where = _conversation(args)
    stop = state.stop_of(args.client, args.conversation)
    if stop is None:
        print(f"Nothing to resume: {where} is not stopped.")
        return OK
    if not args.dry_run:
        state.resume(args.client, args.conversation, stop.webhook_id, context.clients.stop_uncounted(args.client))
    print(
        f"{'Would resume' if args.dry_run else 'Resumed'} {where}, stopped at response {stop.webhook_id}:"
        f" {'its' if args.dry_run else 'from now on its'} new responses are delivered to its response URL again."
    )
    print(
        "Responses of it still in the dead-letter queue stay there; 'redrive' would deliver them after what came"
        " since, and 'replay' delivers the whole conversation again from the responses log."
    )
    return OK


# ── What a client sees of its deliveries: the same answers as its self-service routes, in JSON ──


def health(context: Context, args: argparse.Namespace) -> int:
    """What GET /client answers the client."""
    status = _relay_errors(_self_service(context, args).status, Caller(args.id))
    print(status.model_dump_json(by_alias=True, indent=2))
    return OK


def attempts(context: Context, args: argparse.Namespace) -> int:
    """What GET /deliveries answers the client."""
    fields = {
        "conversationId": args.conversation,
        "webhookId": args.webhook_id,
        "status": args.status,
        "since": args.since,
        "until": args.until,
        "limit": args.limit,
        "cursor": args.cursor,
    }
    try:
        query = DeliveriesQuery.model_validate({name: value for name, value in fields.items() if value is not None})
    except ValidationError as error:
        raise CommandError(_invalid(error, _ATTEMPTS_OPTIONS), BAD_INPUT) from None
    page = _relay_errors(_self_service(context, args).deliveries, Caller(args.id), query)
    print(page.model_dump_json(by_alias=True, indent=2))
    return OK


def test_delivery(context: Context, args: argparse.Namespace) -> int:
    """What POST /client/test answers the client: a signed `test` delivery to its URL now, and its attempt."""
    attempt = _relay_errors(_self_service(context, args).test, Caller(args.id))
    print(attempt.model_dump_json(by_alias=True, indent=2))
    return OK if attempt.delivered else FAILED


def recover(context: Context, args: argparse.Namespace) -> int:
    """What POST /client/recover answers the client; the delivery queue delivers them in the background."""
    try:
        request = RecoverRequest.model_validate({"since": args.since, "until": args.until})
    except ValidationError as error:
        raise CommandError(_invalid(error, {"since": "--since", "until": "--until"}), BAD_INPUT) from None
    attempts_table, state_table, responses_table = context.resources(
        ATTEMPTS_TABLE, DELIVERY_STATE_TABLE, RESPONSES_TABLE
    )
    dynamodb = context.aws("dynamodb")
    recovery = Recovery(
        AttemptLog(dynamodb, attempts_table),
        DeliveryState(dynamodb, state_table),
        ResponsesLog(dynamodb, responses_table),
        lambda jobs: _redelivery(context).recover(jobs),
        throttle=None,
    )
    _existing(context.clients, args.id)
    print(_relay_errors(recovery.recover, Caller(args.id), request).model_dump_json(by_alias=True, indent=2))
    return OK


def _self_service(context: Context, args: argparse.Namespace) -> SelfService:
    """The client's self-service, as an operator calls it: not counted against the client's rate."""
    _existing(context.clients, args.id)
    attempts_table, state_table = context.resources(ATTEMPTS_TABLE, DELIVERY_STATE_TABLE)
    dynamodb = context.aws("dynamodb")
    return SelfService(
        context.clients,
        AttemptLog(dynamodb, attempts_table),
        DeliveryState(dynamodb, state_table),
        WebhookSender(_WEBHOOK_TIMEOUT_SECONDS),
        lambda client_id, conversations: _redelivery(context).nudge(client_id, conversations),
        throttle=None,
    )


def _relay_errors[Answer](call: Callable[..., Answer], *args: Any) -> Answer:
    """The flow's answer; a refusal ends the command with its message (2 when a given value is wrong)."""
    try:
        return call(*args)
    except RelayError as error:
        raise CommandError(error.message, BAD_INPUT if getattr(error, "field", None) else FAILED) from None


def _redelivery(context: Context) -> Redelivery:
    (queue,) = context.resources(DELIVERY_QUEUE)
    return Redelivery(context.aws("sqs"), queue)


def _conversation(args: argparse.Namespace) -> str:
    return f"conversation '{_cell(args.conversation)}' of client '{args.client}'"


def _existing(store: ClientStore, client_id: str) -> Client:
    try:
        _client_id.validate_python(client_id)
    except ValidationError:
        raise CommandError(f"ID {client_id!r} is not valid: {_HINTS['client_id']}", BAD_INPUT) from None
    client = store.get(client_id)
    if client is None:
        raise CommandError(f"no client '{client_id}' in this table: 'list' shows the clients there")
    return client


# ── Output and errors ────────────────────────────────────────────────────────────────────────


def _print_fields(fields: Sequence[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in fields) + 1
    for name, value in fields:
        print(f"  {(name + ':').ljust(width)} {value}")


def _url_cell(client: Client) -> str:
    if client.response_url is None:
        return "-"
    if client.response_url_off:
        return f"{client.response_url} (OFF: it answered 410 Gone; 'set-url' switches it on again)"
    return str(client.response_url)


def _grace(value: str) -> timedelta:
    """A duration such as 24h, 90m, 2d or 3600 (seconds)."""
    match = re.fullmatch(r"(\d+)([smhd]?)", value.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration: use e.g. 24h, 90m, 2d or 3600 (seconds)")
    unit = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def _rate_argument(value: str) -> int:
    """Whole requests per second, as the client API counts them."""
    try:
        return _rate.validate_python(value, strict=False)
    except ValidationError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a rate: give whole requests per second from 1 to {MAX_RATE}"
        ) from None


def _cell(value: str) -> str:
    """A name on one line, whatever it holds."""
    return "".join(char if char.isprintable() else " " for char in value)


def _invalid(error: ValidationError, options: dict[str, str] | None = None) -> str:
    names = {**_OPTIONS, **(options or {})}
    problems = []
    for problem in error.errors(include_url=False, include_context=False):
        field = str(problem["loc"][0]) if problem["loc"] else ""
        value = problem.get("input")
        shown = f" {value!r}" if isinstance(value, str) else ""
        hint = _HINTS.get(field, problem["msg"])
        problems.append(f"{names.get(field, field)}{shown} is not valid: {hint}")
    return "; ".join(problems)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _aws_message(error: ClientError) -> str:
    if _code(error) == "ResourceNotFoundException":
        return f"the clients table was not found ({error.response['Error'].get('Message', '')}): check --table/--stack"
    return f"AWS: {error}"


# ── The commands and their options: the parser is built from this table ──────────────────────


@dataclass(frozen=True)
class Option:
    """One argparse argument: its flags (or name) and add_argument's settings."""

    flags: tuple[str, ...]
    settings: dict[str, Any]


def option(*flags: str, **settings: Any) -> Option:
    return Option(flags, settings)


@dataclass(frozen=True)
class OneOf:
    """Options of which at most one (exactly one if `required`) is given."""

    options: tuple[Option, ...]
    required: bool = False


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Callable[[Context, argparse.Namespace], int]
    options: tuple[Option | OneOf, ...] = field(default=())


# Where the command works: taken before or after the command's name (see _build_parser).
WHERE = (
    option("--table", help=f"the clients table's name (default: ${CLIENTS_TABLE.environment})"),
    option("--stack", help="a deployed relay stack: use its outputs (ClientsTableName, the queues' URLs...)"),
    option("--dev", action="store_true", help="the local stack of `make dev` (on $PORT, as make dev reads it)"),
    option("--region", help="AWS region (default: from your AWS configuration)"),
    option("--profile", help="AWS profile (default: from your AWS configuration)"),
)

ID = option("id", metavar="ID")
DRY_RUN = option("--dry-run", action="store_true", help="say what would be done; do nothing")


def conversation_options(*, required: bool) -> tuple[Option, ...]:
    return (
        option(
            "--client",
            required=required,
            help="the client whose conversation it is" if required else "only this client's responses",
        ),
        option(
            "--conversation",
            required=required,
            help="the client's own conversation id" + ("" if required else " (needs --client)"),
        ),
        DRY_RUN,
    )


def resource_option(resource: Resource) -> Option:
    return option(
        resource.option,
        metavar=resource.metavar,
        help=f"{resource.what} (default: the stack's {resource.output} output)",
    )


CLIENT_ATTEMPTS = (resource_option(ATTEMPTS_TABLE), resource_option(DELIVERY_STATE_TABLE))

COMMANDS = (
    Command(
        "create",
        "add a client; prints its token and signing secret once",
        create,
        (
            option("--id", required=True, help="the client's id: lowercase letters, digits and hyphens"),
            option("--name", required=True, help="a name for people, such as the application's"),
            option("--response-url", help="where the bot's responses are POSTed (http or https)"),
        ),
    ),
    Command("list", "show every client (never its token or secret)", list_clients),
    Command(
        "rotate",
        "issue a new token and/or signing secret (both when neither flag is given)",
        rotate,
        (
            ID,
            option("--token", action="store_true", help="a new bearer token"),
            option("--secret", action="store_true", help="a new whsec_ signing secret for deliveries"),
            OneOf(
                (
                    option(
                        "--grace",
                        type=_grace,
                        default=timedelta(hours=24),
                        help="how long the previous token and secret stay valid (deliveries carry both signatures"
                        " meanwhile); e.g. 24h (default), 90m, 2d",
                    ),
                    option("--now", action="store_true", help="the previous token and secret stop at once"),
                )
            ),
        ),
    ),
    Command("disable", "refuse the client's token and stop delivering to it", disable, (ID,)),
    Command(
        "set-rate",
        "give the client a rate of its own on the client API (bursts of twice it), or the stack's again",
        set_rate,
        (
            ID,
            OneOf(
                (
                    option("rate", metavar="RATE", nargs="?", type=_rate_argument, help="requests per second"),
                    option("--default", action="store_true", help="the stack's rate (its ClientRateLimit parameter)"),
                ),
                required=True,
            ),
        ),
    ),
    Command("enable", "accept the client's token again", enable, (ID,)),
    Command(
        "set-url",
        "set or remove the client's response URL (switches it on after a 410, a park or a disable)",
        set_url,
        (
            ID,
            resource_option(DELIVERY_STATE_TABLE),
            resource_option(DELIVERY_QUEUE),
            OneOf(
                (
                    option("url", metavar="URL", nargs="?", help="the new response URL"),
                    option("--none", action="store_true", help="remove the response URL (SNS subscribers only)"),
                ),
                required=True,
            ),
        ),
    ),
    Command(
        "redrive",
        "move dead-lettered responses back to the delivery queue (all, one client's, one conversation's)",
        redrive_command,
        (*conversation_options(required=False), resource_option(DELIVERY_QUEUE), resource_option(DEAD_LETTER_QUEUE)),
    ),
    Command(
        "replay",
        "deliver a conversation's recorded responses to its response URL again, in order (from the log)",
        replay_command,
        (*conversation_options(required=True), resource_option(RESPONSES_TABLE), resource_option(DELIVERY_QUEUE)),
    ),
    Command(
        "resume",
        "deliver a stopped conversation's new responses again, when its dead-letter messages were purged",
        resume,
        (*conversation_options(required=True), resource_option(DELIVERY_STATE_TABLE)),
    ),
    Command(
        "health",
        "a client's endpoint as GET /client shows it: its state, last success and failure, a day's counts, stops",
        health,
        (ID, *CLIENT_ATTEMPTS),
    ),
    Command(
        "attempts",
        "a client's delivery attempts as GET /deliveries shows them, newest first (JSON; --cursor for more)",
        attempts,
        (
            ID,
            option("--conversation", help="only this conversation's attempts"),
            option("--webhook-id", help="only the attempts of the response with this webhook-id"),
            option("--status", choices=["failed", "delivered"], help="only failed, or only delivered, attempts"),
            option("--since", help="only attempts at or after this time (RFC 3339, e.g. 2026-12-02T18:00:00Z)"),
            option("--until", help="only attempts at or before this time (RFC 3339)"),
            option("--limit", type=int, help="attempts per page at most (1 to 100; default 100)"),
            option("--cursor", help="the previous answer's cursor: the page after it"),
            *CLIENT_ATTEMPTS,
        ),
    ),
    Command(
        "test",
        "send a signed delivery of type test to a client's response URL now and show its attempt (as POST"
        " /client/test); exit 1 when it was not delivered",
        test_delivery,
        (ID, *CLIENT_ATTEMPTS),
    ),
    Command(
        "recover",
        "deliver again what failed, was dead-lettered or skipped in a window, in order (as POST /client/recover)",
        recover,
        (
            ID,
            option("--since", required=True, help="the window's start (RFC 3339, e.g. 2026-12-02T18:00:00Z)"),
            option("--until", help="the window's end (RFC 3339; default: now)"),
            *CLIENT_ATTEMPTS,
            resource_option(RESPONSES_TABLE),
            resource_option(DELIVERY_QUEUE),
        ),
    ),
)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="relay-clients",
        description="Manage the clients of a deployed messaging relay: their tokens, signing secrets and URLs.",
    )
    # After the command's name, the options of WHERE must not reset what was given before it: SUPPRESS there.
    common = _Parser(add_help=False)
    for target, default in ((parser, None), (common, argparse.SUPPRESS)):
        group = target.add_argument_group("where")
        for where in WHERE:
            group.add_argument(*where.flags, **where.settings, default=default)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True, parser_class=_Parser)
    for command in COMMANDS:
        sub = commands.add_parser(command.name, parents=[common], help=command.help)
        for item in command.options:
            if isinstance(item, OneOf):
                group = sub.add_mutually_exclusive_group(required=item.required)
                for choice in item.options:
                    group.add_argument(*choice.flags, **choice.settings)
            else:
                sub.add_argument(*item.flags, **item.settings)
        sub.set_defaults(run=command.run)
    return parser


if __name__ == "__main__":
    sys.exit(main())
