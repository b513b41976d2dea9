"""What every relay-clients command works with: AWS clients, the stack's tables and queues, the clients store.

Each part is made when a command first asks for it, so a command that needs no clients table never looks for one.
A table or queue is named by its own option, or found in the outputs of a deployed stack (`--stack`) or of the
local stack of `make dev` (`--dev`).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError
from pydantic import ValidationError

from relay.stores.clients import ClientStore
from relay_clients import dev

OK, FAILED, BAD_INPUT = 0, 1, 2


class CommandError(Exception):
    """Ends the command with a message on stderr and an exit status."""

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Resource:
    """A table or queue a command works on: its own option, the stack output that names it, maybe a variable."""

    output: str
    option: str
    metavar: str
    what: str
    environment: str | None = None

    @property
    def dest(self) -> str:
        return self.option.removeprefix("--").replace("-", "_")


CLIENTS_TABLE = Resource("ClientsTableName", "--table", "NAME", "the clients table", "CLIENTS_TABLE")
DELIVERY_QUEUE = Resource("DeliveryQueueUrl", "--queue", "URL", "the delivery queue")
DEAD_LETTER_QUEUE = Resource("DeliveryDeadLetterQueueUrl", "--dead-letter-queue", "URL", "the dead-letter queue")
RESPONSES_TABLE = Resource("ResponsesTableName", "--responses-table", "NAME", "the responses log")
DELIVERY_STATE_TABLE = Resource(
    "DeliveryStateTableName", "--delivery-state-table", "NAME", "the delivery state table (where stops are kept)"
)
ATTEMPTS_TABLE = Resource("AttemptsTableName", "--attempts-table", "NAME", "the attempt log")


class Context:
    """A command's AWS: the account of --profile/--region, or moto's server in the local stack with --dev."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._aws_clients: dict[str, Any] = {}
        if args.stack and args.dev:
            raise CommandError("give --stack or --dev, not both", BAD_INPUT)
        if args.dev and (args.region or args.profile):
            raise CommandError(
                "--dev works on the local stack's AWS (moto): it takes no --region or --profile", BAD_INPUT
            )

    def aws(self, service: str) -> Any:
        """The command's client of `service`: one each, from one session (a session parses a service's model once)."""
        if service not in self._aws_clients:
            self._aws_clients[service] = self._client(service)
        return self._aws_clients[service]

    def _client(self, service: str) -> Any:
        if self.args.dev:
            local = self._local_stack
            endpoint = local.dynamodb_endpoint_url if service == "dynamodb" else None
            return self._session.client(service, endpoint_url=endpoint or local.endpoint_url)
        try:
            return self._session.client(service)
        except ValueError:  # botocore's word for a region that makes no endpoint
            raise CommandError(f"--region {self.args.region!r} is not an AWS region", BAD_INPUT) from None

    @cached_property
    def _session(self) -> boto3.Session:
        if self.args.dev:
            # moto takes any credentials; none of the operator's own ever reach it.
            return boto3.Session(
                aws_access_key_id="local",
                aws_secret_access_key="local",  # noqa: S106 (moto's, not a secret)
                region_name=self._local_stack.region,
            )
        return boto3.Session(profile_name=self.args.profile or None, region_name=self.args.region or None)

    @cached_property
    def clients(self) -> ClientStore:
        (table,) = self.resources(CLIENTS_TABLE)
        return ClientStore(self.aws("dynamodb"), table)

    def resources(self, *wanted: Resource) -> list[str]:
        """The name or URL of each: its option, else the output of the stack (or local stack), else its variable."""
        source = "--stack" if self.args.stack else "--dev" if self.args.dev else None
        found: dict[Resource, str] = {}
        for resource in wanted:
            given = getattr(self.args, resource.dest, None)
            if given and source:
                raise CommandError(f"give {resource.option} or {source}, not both", BAD_INPUT)
            if given:
                found[resource] = str(given)
            elif not source and resource.environment and (value := os.environ.get(resource.environment, "").strip()):
                found[resource] = value
        if source:
            outputs = self._outputs(*(resource.output for resource in wanted if resource not in found))
            found.update({resource: outputs[resource.output] for resource in wanted if resource not in found})
        if missing := [resource for resource in wanted if resource not in found]:
            raise CommandError(_how_to_give(missing), BAD_INPUT)
        return [found[resource] for resource in wanted]

    def _outputs(self, *wanted: str) -> dict[str, str]:
        if self.args.dev:
            outputs, where = self._local_stack.outputs, "the local stack"
        else:
            outputs, where = self._stack_outputs, f"stack '{self.args.stack}'"
        for name in wanted:
            if not outputs.get(name):
                raise CommandError(f"{where} has no {name} output: is it a messaging relay stack, fully deployed?")
        return outputs

    @cached_property
    def _stack_outputs(self) -> dict[str, str]:
        cloudformation = self.aws("cloudformation")
        try:
            stacks = cloudformation.describe_stacks(StackName=self.args.stack)["Stacks"]
        except ClientError as error:
            if "does not exist" in error.response.get("Error", {}).get("Message", ""):
                raise CommandError(
                    f"stack '{self.args.stack}' not found in region {cloudformation.meta.region_name}"
                ) from None
            raise
        return {output["OutputKey"]: output.get("OutputValue", "") for output in stacks[0].get("Outputs") or []}

    @cached_property
    def _local_stack(self) -> dev.LocalStack:
        return find_local_stack(Path.cwd())


def find_local_stack(start: Path) -> dev.LocalStack:
    """The running local stack on $PORT (as `make dev` reads it), from its file in `start` or a directory above."""
    text = os.environ.get("PORT", "").strip() or str(dev.DEFAULT_PORT)
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise CommandError(f"PORT={text!r} is not a port: give the port of the local stack's API", BAD_INPUT)
    port = int(text)
    places = [start, *start.parents, *([] if dev.CHECKOUT in (start, *start.parents) else [dev.CHECKOUT])]
    path = next((file for d in places if (file := dev.state_file(d, port)).is_file()), None)
    if path is None:
        looked = f"{dev.state_file(start, port).relative_to(start)} in {start} or a directory above it"
        if dev.CHECKOUT not in (start, *start.parents):
            looked += f", or in {dev.CHECKOUT} (where this relay-clients is installed from)"
        raise CommandError(
            f"no local stack on port {port}: no {looked}. Start one with 'make dev' in the repository; for one on"
            f" another port than {dev.DEFAULT_PORT}, set PORT=<its port> as its banner shows"
        )
    try:
        local = dev.LocalStack.model_validate_json(path.read_text())
    except ValidationError:
        raise CommandError(f"{path} is not a local stack's file: stop the local stack and start it again") from None
    try:
        os.kill(local.pid, 0)
    except ProcessLookupError:
        raise CommandError(
            f"the local stack on port {port} has stopped ({path} is left from it): run 'make dev'"
        ) from None
    except PermissionError:  # running, as another user
        pass
    return local


def _how_to_give(missing: list[Resource]) -> str:
    outputs = " and ".join(resource.output for resource in missing)
    options = " and ".join(f"{resource.option} {resource.metavar}" for resource in missing)
    variables = [f"set {resource.environment}" for resource in missing if resource.environment]
    ways = [
        f"--stack STACK_NAME (reads its {outputs} output{'s' if len(missing) > 1 else ''})",
        "--dev (the local stack of make dev)",
        options,
        *variables,
    ]
    which = "which is" if len(missing) == 1 else "which are"
    return f"{which} {' and '.join(r.what for r in missing)}? Give {', '.join(ways[:-1])} or {ways[-1]}"
