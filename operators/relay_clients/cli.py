"""relay-clients: the operators' command to manage clients in the deployed clients table.

    relay-clients --stack relay create --id acme --name "ACME back end" --response-url https://acme.example/hook
    relay-clients --stack relay list
    relay-clients --stack relay rotate acme --token            (the previous token works 24 more hours)
    relay-clients --stack relay rotate acme --secret --grace 2h
    relay-clients --stack relay disable acme

The table is `--table NAME`, or the `ClientsTableName` output of `--stack NAME`, or $CLIENTS_TABLE.
Exit status: 0 done, 1 failed (unknown client, AWS error), 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError
from pydantic import TypeAdapter, ValidationError

from relay import signing
from relay.models import Client, ClientId
from relay.stores.clients import ClientStore, Rotation, hash_token, new_token
from relay.stores.responses_log import ResponsesLog
from relay_clients.redrive import redrive
from relay_clients.replay import replay

STACK_OUTPUT = "ClientsTableName"
TABLE_ENV = "CLIENTS_TABLE"

OK, FAILED, BAD_INPUT = 0, 1, 2

_client_id: TypeAdapter[str] = TypeAdapter(ClientId)

# What the function containers do: they trust a cached client record this long (CACHE_TTL_SECONDS).
_CACHE_NOTE = "Functions already running may go on using the previous record for up to 60 seconds (their cache)."

# The option each model field comes from, to name it in an error.
_OPTIONS = {"client_id": "--id", "name": "--name", "response_url": "--response-url"}
_HINTS = {
    "client_id": "use 1 to 63 lowercase letters, digits and hyphens, starting with a letter or digit",
}


class CommandError(Exception):
    """Ends the command with a message on stderr and an exit status."""

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class _Parser(argparse.ArgumentParser):
    """Usage errors become a CommandError, so `main` returns their status instead of exiting."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise CommandError(message, BAD_INPUT)


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.run in (redrive_command, replay_command):  # queues and the responses log, not the clients table
            return int(args.run(args))
        table = resolve_table(args)
        store = ClientStore(aws_client(args, "dynamodb"), table)
        return int(args.run(store, args))
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


# ── Which table ──────────────────────────────────────────────────────────────────────────────


def resolve_table(args: argparse.Namespace) -> str:
    if args.table and args.stack:
        raise CommandError("give --table or --stack, not both", BAD_INPUT)
    if args.table:
        return str(args.table)
    if args.stack:
        return table_from_stack(aws_client(args, "cloudformation"), args.stack)
    if table := os.environ.get(TABLE_ENV, "").strip():
        return table
    raise CommandError(
        f"which clients table? Give --table NAME, --stack STACK_NAME (reads its {STACK_OUTPUT} output) "
        f"or set {TABLE_ENV}",
        BAD_INPUT,
    )


def aws_client(args: argparse.Namespace, service: str) -> Any:
    session = boto3.Session(profile_name=args.profile or None, region_name=args.region or None)
    try:
        return session.client(service)
    except ValueError:  # botocore's word for a region that makes no endpoint
        raise CommandError(f"--region {args.region!r} is not an AWS region", BAD_INPUT) from None


def table_from_stack(cloudformation: Any, stack_name: str) -> str:
    """The clients table of a deployed relay stack: its `ClientsTableName` output."""
    return stack_outputs(cloudformation, stack_name, STACK_OUTPUT)[STACK_OUTPUT]


def stack_outputs(cloudformation: Any, stack_name: str, *wanted: str) -> dict[str, str]:
    """Outputs of a deployed relay stack, each of `wanted` present."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in error.response.get("Error", {}).get("Message", ""):
            raise CommandError(f"stack '{stack_name}' not found in region {cloudformation.meta.region_name}") from None
        raise
    outputs = {output["OutputKey"]: output.get("OutputValue", "") for output in stacks[0].get("Outputs") or []}
    for name in wanted:
        if not outputs.get(name):
            raise CommandError(
                f"stack '{stack_name}' has no {name} output: is it a messaging relay stack, fully deployed?"
            )
    return outputs


# ── Subcommands ──────────────────────────────────────────────────────────────────────────────


def create(store: ClientStore, args: argparse.Namespace) -> int:
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


def list_clients(store: ClientStore, args: argparse.Namespace) -> int:
    clients = sorted(store.scan(), key=lambda client: client.client_id)
    if not clients:
        print("No clients yet: add one with 'create --id ID --name NAME'.")
        return OK
    rows = [("ID", "NAME", "ENABLED", "RESPONSE URL")] + [
        (
            client.client_id,
            _cell(client.name),
            "yes" if client.enabled else "no",
            _url_cell(client),
        )
        for client in clients
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join([*(value.ljust(width) for value, width in zip(row, widths, strict=False)), row[3]]))
    return OK


def rotate(store: ClientStore, args: argparse.Namespace) -> int:
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


def disable(store: ClientStore, args: argparse.Namespace) -> int:
    return _set_enabled(store, args.id, enabled=False)


def enable(store: ClientStore, args: argparse.Namespace) -> int:
    return _set_enabled(store, args.id, enabled=True)


def set_url(store: ClientStore, args: argparse.Namespace) -> int:
    client = _existing(store, args.id)
    try:
        updated = Client.model_validate({**client.model_dump(), "response_url": None if args.none else args.url})
    except ValidationError as error:
        raise CommandError(_invalid(error, {"response_url": "URL"}), BAD_INPUT) from None
    store.set_url(client.client_id, str(updated.response_url) if updated.response_url else None)
    if updated.response_url is None:
        print(f"Client '{client.client_id}' has no response URL now: its responses reach SNS subscribers only.")
    else:
        print(f"Client '{client.client_id}' now receives responses at {updated.response_url}")
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


def redrive_command(args: argparse.Namespace) -> int:
    if args.conversation and not args.client:
        raise CommandError("--conversation needs --client: conversation ids are the client's own", BAD_INPUT)
    queue, dead_letters = _resources(
        args,
        _QUEUE_OUTPUTS,
        (args.queue, args.dead_letter_queue),
        "which queues? Give --stack STACK_NAME, or --queue URL and --dead-letter-queue URL",
    )

    def wanted(client_id: str, conversation_id: str) -> bool:
        return (not args.client or client_id == args.client) and (
            not args.conversation or conversation_id == args.conversation
        )

    result = redrive(aws_client(args, "sqs"), dead_letters, queue, wanted, args.dry_run)
    verb = "Would move" if args.dry_run else "Moved"
    total = sum(result.moved.values())
    print(f"{verb} {total} response(s) back to the delivery queue, each conversation in its order:")
    for (client_id, conversation_id), count in sorted(result.moved.items()):
        print(f"  {client_id}  {_cell(conversation_id)}  {count}")
    if result.left:
        print(f"{result.left} other response(s) stay in the dead-letter queue.")
    return OK


_QUEUE_OUTPUTS = ("DeliveryQueueUrl", "DeliveryDeadLetterQueueUrl")


def _resources(args: argparse.Namespace, outputs: tuple[str, str], given: tuple[str, str], missing: str) -> list[str]:
    """The two resources a command works on: the stack's `outputs` with --stack, else both options `given`."""
    if args.stack:
        found = stack_outputs(aws_client(args, "cloudformation"), args.stack, *outputs)
        return [found[name] for name in outputs]
    if all(given):
        return list(given)
    raise CommandError(missing, BAD_INPUT)


def replay_command(args: argparse.Namespace) -> int:
    table, queue = _resources(
        args,
        _REPLAY_OUTPUTS,
        (args.responses_table, args.queue),
        "where from? Give --stack STACK_NAME, or --responses-table NAME and --queue URL",
    )
    log = ResponsesLog(aws_client(args, "dynamodb"), table)
    count = replay(log, aws_client(args, "sqs"), queue, args.client, args.conversation, args.dry_run)
    where = f"conversation '{_cell(args.conversation)}' of client '{args.client}'"
    if not count:
        print(f"Nothing to replay: the responses log holds no response of {where} (kept for ResponseRetentionDays).")
    elif args.dry_run:
        print(f"Would queue {count} response(s) of {where} for delivery to its response URL, in order.")
    else:
        print(f"Queued {count} response(s) of {where} for delivery to its response URL, in order.")
    return OK


_REPLAY_OUTPUTS = ("ResponsesTableName", "DeliveryQueueUrl")


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


def _build_parser() -> argparse.ArgumentParser:
    # The table options are taken before or after the subcommand; after it, they must not reset
    # what was given before it, hence SUPPRESS as their default there.
    def table_options(parser: argparse.ArgumentParser, default: Any) -> None:
        where = parser.add_argument_group("which table")
        where.add_argument("--table", default=default, help=f"the clients table's name (default: ${TABLE_ENV})")
        where.add_argument("--stack", default=default, help=f"a deployed relay stack: use its {STACK_OUTPUT} output")
        where.add_argument("--region", default=default, help="AWS region (default: from your AWS configuration)")
        where.add_argument("--profile", default=default, help="AWS profile (default: from your AWS configuration)")

    parser = _Parser(
        prog="relay-clients",
        description="Manage the clients of a deployed messaging relay: their tokens, signing secrets and URLs.",
    )
    table_options(parser, None)
    common = _Parser(add_help=False)
    table_options(common, argparse.SUPPRESS)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True, parser_class=_Parser)

    command = commands.add_parser(
        "create", parents=[common], help="add a client; prints its token and signing secret once"
    )
    command.add_argument("--id", required=True, help="the client's id: lowercase letters, digits and hyphens")
    command.add_argument("--name", required=True, help="a name for people, such as the application's")
    command.add_argument("--response-url", help="where the bot's responses are POSTed (http or https)")
    command.set_defaults(run=create)

    command = commands.add_parser("list", parents=[common], help="show every client (never its token or secret)")
    command.set_defaults(run=list_clients)

    command = commands.add_parser(
        "rotate", parents=[common], help="issue a new token and/or signing secret (both when neither flag is given)"
    )
    command.add_argument("id", metavar="ID")
    command.add_argument("--token", action="store_true", help="a new bearer token")
    command.add_argument("--secret", action="store_true", help="a new whsec_ signing secret for deliveries")
    grace = command.add_mutually_exclusive_group()
    grace.add_argument(
        "--grace",
        type=_grace,
        default=timedelta(hours=24),
        help="how long the previous token and secret stay valid (deliveries carry both signatures meanwhile);"
        " e.g. 24h (default), 90m, 2d",
    )
    grace.add_argument("--now", action="store_true", help="the previous token and secret stop at once")
    command.set_defaults(run=rotate)

    for name, run, text in (
        ("disable", disable, "refuse the client's token and stop delivering to it"),
        ("enable", enable, "accept the client's token again"),
    ):
        command = commands.add_parser(name, parents=[common], help=text)
        command.add_argument("id", metavar="ID")
        command.set_defaults(run=run)

    command = commands.add_parser(
        "set-url", parents=[common], help="set or remove the client's response URL (switches it on after a 410)"
    )
    command.add_argument("id", metavar="ID")
    target = command.add_mutually_exclusive_group(required=True)
    target.add_argument("url", metavar="URL", nargs="?", help="the new response URL")
    target.add_argument("--none", action="store_true", help="remove the response URL (SNS subscribers only)")
    command.set_defaults(run=set_url)

    command = commands.add_parser(
        "redrive",
        parents=[common],
        help="move dead-lettered responses back to the delivery queue (all, one client's, one conversation's)",
    )
    command.add_argument("--client", help="only this client's responses")
    command.add_argument("--conversation", help="only this conversation's (needs --client)")
    command.add_argument("--dry-run", action="store_true", help="say what would move; move nothing")
    command.add_argument("--queue", help="the delivery queue's URL (default: the stack's DeliveryQueueUrl output)")
    command.add_argument(
        "--dead-letter-queue", help="the dead-letter queue's URL (default: the stack's DeliveryDeadLetterQueueUrl)"
    )
    command.set_defaults(run=redrive_command)

    command = commands.add_parser(
        "replay",
        parents=[common],
        help="deliver a conversation's recorded responses to its response URL again, in order (from the log)",
    )
    command.add_argument("--client", required=True, help="the client whose conversation it is")
    command.add_argument("--conversation", required=True, help="the client's own conversation id")
    command.add_argument("--dry-run", action="store_true", help="say how many would be queued; queue nothing")
    command.add_argument("--responses-table", help="the responses log (default: the stack's ResponsesTableName)")
    command.add_argument("--queue", help="the delivery queue's URL (default: the stack's DeliveryQueueUrl output)")
    command.set_defaults(run=replay_command)
    return parser


if __name__ == "__main__":
    sys.exit(main())
