"""relay-clients against the template's clients table on moto: what an operator types and sees."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from standardwebhooks import Webhook

from devstack.provision import create_table
from devstack.template import load
from relay.errors import Unauthorized
from relay.models import Client
from relay.stores.clients import AUTH_ATTRIBUTES, ClientStore
from relay_clients import dev
from relay_clients.cli import main
from relay_clients.context import Context


class Operator:
    """Runs relay-clients as an operator would and keeps what it printed."""

    def __init__(self, session: boto3.Session, table: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.session = session
        self.table = table
        self._capsys = capsys
        self.out = self.err = ""

    def __call__(self, *argv: str, table: bool = True) -> int:
        self._capsys.readouterr()
        status = main(["--table", self.table, *argv] if table else list(argv))
        self.out, self.err = self._capsys.readouterr()
        return status

    def store(self) -> ClientStore:
        """A store with an empty cache, as a freshly started function has."""
        return ClientStore(self.session.client("dynamodb"), self.table)

    def signed_in(self, token: str) -> Client:
        """The full record of the client this token authenticates (authentication alone reads no secret)."""
        store = self.store()
        client = store.get(store.authenticate(token).client_id)
        assert client is not None
        return client

    def create(self, client_id: str = "acme", *extra: str) -> tuple[str, str]:
        assert self("create", "--id", client_id, "--name", f"{client_id} back end", *extra) == 0, self.err
        return printed(self.out, "bearer token"), printed(self.out, "signing secret")


def printed(out: str, label: str) -> str:
    match = re.search(rf"^\s*{label}:\s+(\S+)\s*$", out, re.MULTILINE)
    assert match, f"no '{label}' line in:\n{out}"
    return match.group(1)


@pytest.fixture(autouse=True)
def _no_table_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLIENTS_TABLE", raising=False)


def clients_table(dynamodb: Any, name: str) -> str:
    """The template's clients table (its keys and billing), alone: the only table these commands touch."""
    create_table(dynamodb, name, load()["Resources"]["ClientsTable"]["Properties"])
    return name


@pytest.fixture
def operator(aws: boto3.Session, capsys: pytest.CaptureFixture[str]) -> Operator:
    return Operator(aws, clients_table(aws.client("dynamodb"), "relay-ClientsTable"), capsys)


# ── create ──


def test_create_prints_a_working_token_and_signing_secret_once(operator: Operator) -> None:
    token, secret = operator.create("acme", "--response-url", "https://acme.example/hook")

    assert printed(operator.out, "client id") == "acme"
    assert "will not be shown again" in operator.out
    client = operator.signed_in(token)
    assert client.client_id == "acme"
    assert client.name == "acme back end"
    assert str(client.response_url) == "https://acme.example/hook"
    assert secret.startswith("whsec_")
    assert client.webhook_secret == secret  # what deliveries are signed with
    Webhook(secret)  # a receiver's Standard Webhooks library takes it as it is


def test_create_without_a_response_url(operator: Operator) -> None:
    token, _ = operator.create("acme")

    assert operator.signed_in(token).response_url is None


def test_create_refuses_an_existing_id_and_keeps_its_credentials(operator: Operator) -> None:
    token, secret = operator.create("acme")

    status = operator("create", "--id", "acme", "--name", "impostor")

    assert status == 1
    assert "already exists" in operator.err
    assert "token" not in operator.out
    client = operator.signed_in(token)
    assert (client.name, client.webhook_secret) == ("acme back end", secret)


@pytest.mark.parametrize("client_id", ["ACME", "acme.eu", "acme:1", "-acme", "acme_corp", "", "a" * 64])
def test_create_refuses_an_id_outside_lowercase_letters_digits_and_hyphens(operator: Operator, client_id: str) -> None:
    status = operator("create", f"--id={client_id}", "--name", "ACME")

    assert status == 2
    assert "--id" in operator.err
    assert "lowercase letters, digits and hyphens" in operator.err
    assert list(operator.store().scan()) == []


def test_create_refuses_a_response_url_that_is_not_http(operator: Operator) -> None:
    status = operator("create", "--id", "acme", "--name", "ACME", "--response-url", "ftp://acme.example/hook")

    assert status == 2
    assert "--response-url" in operator.err
    assert list(operator.store().scan()) == []


def test_create_names_every_bad_field_at_once(operator: Operator) -> None:
    status = operator("create", "--id", "ACME", "--name", "ACME", "--response-url", "not a url")

    assert status == 2
    assert "--id" in operator.err
    assert "--response-url" in operator.err


def test_create_without_a_name_is_a_usage_error(operator: Operator) -> None:
    assert operator("create", "--id", "acme") == 2
    assert "--name" in operator.err


# ── list ──


def test_list_shows_each_client_but_never_its_credentials(operator: Operator) -> None:
    acme_token, acme_secret = operator.create("acme", "--response-url", "https://acme.example/hook")
    globex_token, globex_secret = operator.create("globex")
    operator("disable", "globex")
    stored = {client.client_id: client for client in operator.store().scan()}

    assert operator("list") == 0

    header, *rows = operator.out.splitlines()
    assert header.split() == ["ID", "NAME", "ENABLED", "RATE", "RESPONSE", "URL"]
    assert [row.split() for row in rows] == [
        ["acme", "acme", "back", "end", "yes", "default", "https://acme.example/hook"],
        ["globex", "globex", "back", "end", "no", "default", "-"],
    ]
    for credential in (acme_token, acme_secret, globex_token, globex_secret):
        assert credential not in operator.out
    for client in stored.values():
        assert client.token_hash not in operator.out
    assert "whsec_" not in operator.out


def test_list_of_an_empty_table_says_so(operator: Operator) -> None:
    assert operator("list") == 0
    assert "No clients" in operator.out


# ── rotate ──


def test_rotate_now_replaces_the_token_and_the_secret_at_once(operator: Operator) -> None:
    old_token, old_secret = operator.create("acme")

    assert operator("rotate", "acme", "--now") == 0

    new_token, new_secret = printed(operator.out, "bearer token"), printed(operator.out, "signing secret")
    assert "will not be shown again" in operator.out
    store = operator.store()
    with pytest.raises(Unauthorized):
        store.authenticate(old_token)
    client = operator.signed_in(new_token)
    assert new_secret.startswith("whsec_")
    assert new_secret != old_secret
    assert client.webhook_secret == new_secret
    assert client.signing_secrets(datetime.now(UTC)) == [new_secret]


def test_rotate_keeps_the_previous_token_and_secret_for_the_grace_period(operator: Operator) -> None:
    old_token, old_secret = operator.create("acme")

    assert operator("rotate", "acme", "--grace", "1s") == 0

    new_token, new_secret = printed(operator.out, "bearer token"), printed(operator.out, "signing secret")
    assert "keeps working until" in operator.out
    assert operator.signed_in(old_token).client_id == operator.signed_in(new_token).client_id == "acme"
    assert operator.signed_in(new_token).signing_secrets(datetime.now(UTC)) == [new_secret, old_secret]
    time.sleep(1.1)
    with pytest.raises(Unauthorized):
        operator.store().authenticate(old_token)
    assert operator.signed_in(new_token).signing_secrets(datetime.now(UTC)) == [new_secret]


def test_rotate_grace_defaults_to_a_day(operator: Operator) -> None:
    token, secret = operator.create("acme")
    before = datetime.now(UTC)

    assert operator("rotate", "acme", "--secret") == 0

    client = operator.signed_in(token)
    assert client.previous_webhook_secret == secret
    assert client.previous_secret_expires_at is not None
    assert timedelta(hours=24) <= client.previous_secret_expires_at - before < timedelta(hours=24, minutes=1)


def test_a_bad_grace_is_bad_input(operator: Operator) -> None:
    operator.create("acme")

    assert operator("rotate", "acme", "--grace", "soon") == 2
    assert "--grace" in operator.err and "24h" in operator.err


def test_rotate_token_only_keeps_the_signing_secret(operator: Operator) -> None:
    old_token, secret = operator.create("acme")

    assert operator("rotate", "acme", "--token", "--now") == 0

    assert "signing secret" not in operator.out
    assert "whsec_" not in operator.out
    with pytest.raises(Unauthorized):
        operator.store().authenticate(old_token)
    assert operator.signed_in(printed(operator.out, "bearer token")).webhook_secret == secret


def test_rotate_secret_only_keeps_the_token_working(operator: Operator) -> None:
    token, old_secret = operator.create("acme")

    assert operator("rotate", "acme", "--secret") == 0

    assert "bearer token" not in operator.out
    new_secret = printed(operator.out, "signing secret")
    assert new_secret.startswith("whsec_")
    assert new_secret != old_secret
    assert operator.signed_in(token).webhook_secret == new_secret


# ── two operators at once ──


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (["set-url", "acme", "https://new.example/hook"], ["disable", "acme"]),
        (["disable", "acme"], ["rotate", "acme", "--secret"]),
        (["rotate", "acme", "--secret"], ["set-url", "acme", "https://new.example/hook"]),
    ],
    ids=["set-url vs disable", "disable vs rotate", "rotate vs set-url"],
)
def test_two_operators_at_once_both_keep_their_change(
    operator: Operator, monkeypatch: pytest.MonkeyPatch, first: list[str], second: list[str]
) -> None:
    """The second command runs between the first one's read and its write: neither change is lost."""
    _, secret = operator.create("acme", "--response-url", "https://old.example/hook")
    ran: list[int] = []

    def meanwhile(**_: object) -> None:
        if not ran:
            ran.append(-1)  # once: the second command's own write must not start a third
            ran[0] = operator(*second)

    original = Context.aws

    def aws(context: Context, service: str) -> object:
        client = original(context, service)
        client.meta.events.register("before-call.dynamodb.UpdateItem", meanwhile)
        return client

    monkeypatch.setattr(Context, "aws", aws)
    assert operator(*first) == 0

    assert ran == [0]
    client = operator.store().get("acme")
    commands = {first[0], second[0]}
    assert ("set-url" not in commands) or str(client.response_url) == "https://new.example/hook"
    assert ("disable" not in commands) or not client.enabled
    assert ("rotate" not in commands) or client.webhook_secret != secret


def test_authentication_reads_only_the_token_attributes(operator: Operator) -> None:
    token, _ = operator.create("acme", "--response-url", "https://acme.example/hook")
    requests: list[dict] = []
    dynamodb = operator.session.client("dynamodb")
    dynamodb.meta.events.register("provide-client-params.dynamodb.GetItem", lambda params, **_: requests.append(params))

    ClientStore(dynamodb, operator.table).authenticate(token)

    (request,) = requests
    names = request["ExpressionAttributeNames"]
    read = {names.get(part.strip(), part.strip()) for part in request["ProjectionExpression"].split(",")}
    assert read == set(AUTH_ATTRIBUTES)
    assert "webhookSecret" not in read


# ── disable, enable, set-url ──


def test_disable_refuses_the_token_and_enable_accepts_it_again(operator: Operator) -> None:
    token, _ = operator.create("acme")

    assert operator("disable", "acme") == 0
    with pytest.raises(Unauthorized, match="disabled"):
        operator.store().authenticate(token)

    assert operator("enable", "acme") == 0
    assert operator.store().authenticate(token).enabled


def test_disable_twice_says_it_already_is(operator: Operator) -> None:
    operator.create("acme")
    operator("disable", "acme")

    assert operator("disable", "acme") == 0
    assert "already disabled" in operator.out


def test_set_url_changes_and_removes_the_response_url(operator: Operator) -> None:
    token, secret = operator.create("acme", "--response-url", "https://old.example/hook")

    assert operator("set-url", "acme", "https://new.example/hook") == 0
    client = operator.signed_in(token)
    assert str(client.response_url) == "https://new.example/hook"
    assert client.webhook_secret == secret

    assert operator("set-url", "acme", "--none") == 0
    assert operator.signed_in(token).response_url is None


def test_set_url_refuses_a_bad_url_and_keeps_the_old_one(operator: Operator) -> None:
    token, _ = operator.create("acme", "--response-url", "https://acme.example/hook")

    assert operator("set-url", "acme", "acme.example/hook") == 2

    assert "URL" in operator.err
    assert str(operator.signed_in(token).response_url) == "https://acme.example/hook"


# ── set-rate ──


def test_set_rate_gives_the_client_its_own_rate_and_default_gives_it_the_stacks_again(operator: Operator) -> None:
    token, _ = operator.create("acme")

    assert operator("set-rate", "acme", "50") == 0
    assert "50 requests/s" in operator.out and "bursts of up to 100" in operator.out and "60 seconds" in operator.out
    assert operator.store().authenticate(token).rate_limit == 50  # what the client API reads with the token
    operator("list")
    assert "50/s" in operator.out

    assert operator("set-rate", "acme", "--default") == 0
    assert "ClientRateLimit" in operator.out
    assert operator.store().authenticate(token).rate_limit is None
    assert operator.signed_in(token).rate_limit is None


@pytest.mark.parametrize("rate", ["0", "-5", "2.5", "fast", "501"])
def test_set_rate_refuses_what_is_not_whole_requests_per_second_and_keeps_the_rate(
    operator: Operator, rate: str
) -> None:
    token, _ = operator.create("acme")
    operator("set-rate", "acme", "50")

    assert operator("set-rate", "acme", rate) == 2

    assert f"{rate!r} is not a rate: give whole requests per second from 1 to 500" in operator.err
    assert operator.signed_in(token).rate_limit == 50


@pytest.mark.parametrize("argv", [["set-rate", "acme"], ["set-rate", "acme", "5", "--default"]])
def test_set_rate_needs_exactly_one_of_a_rate_or_default(operator: Operator, argv: list[str]) -> None:
    operator.create("acme")

    assert operator(*argv) == 2
    assert "--default" in operator.err


def test_set_rate_of_an_unknown_client_names_it(operator: Operator) -> None:
    assert operator("set-rate", "nobody", "5") == 1
    assert "no client 'nobody'" in operator.err


@pytest.mark.parametrize("argv", [["set-url", "acme"], ["set-url", "acme", "https://acme.example/hook", "--none"]])
def test_set_url_needs_exactly_one_of_a_url_or_none(operator: Operator, argv: list[str]) -> None:
    operator.create("acme")

    assert operator(*argv) == 2
    assert "--none" in operator.err


@pytest.mark.parametrize(
    "argv", [["rotate", "nobody"], ["disable", "nobody"], ["enable", "nobody"], ["set-url", "nobody", "--none"]]
)
def test_an_unknown_id_is_an_error(operator: Operator, argv: list[str]) -> None:
    operator.create("acme")

    assert operator(*argv) == 1
    assert "no client 'nobody'" in operator.err
    assert operator.out == ""
    assert [client.client_id for client in operator.store().scan()] == ["acme"]


def test_a_malformed_id_is_bad_input(operator: Operator) -> None:
    assert operator("disable", "Not An Id") == 2
    assert "lowercase letters, digits and hyphens" in operator.err


# ── which table ──


def test_the_table_can_come_from_the_environment(
    operator: Operator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CLIENTS_TABLE", operator.table)

    assert operator("create", "--id", "acme", "--name", "ACME", table=False) == 0

    assert [client.client_id for client in operator.store().scan()] == ["acme"]


def test_table_options_may_follow_the_command(operator: Operator) -> None:
    operator.create("acme")

    assert operator("list", "--table", operator.table, table=False) == 0
    assert "acme" in operator.out


def test_without_a_table_the_error_says_how_to_give_one(operator: Operator) -> None:
    assert operator("list", table=False) == 2
    for way in ("--table", "--stack", "CLIENTS_TABLE"):
        assert way in operator.err


def test_table_and_stack_together_are_refused(operator: Operator) -> None:
    assert operator("list", "--stack", "relay") == 2
    assert "not both" in operator.err


def test_a_table_that_does_not_exist_is_a_clear_error(operator: Operator) -> None:
    assert operator("--table", "no-such-table", "list", table=False) == 1
    assert "table was not found" in operator.err


def deploy(session: boto3.Session, name: str, *, with_output: bool = True) -> None:
    """A CloudFormation stack holding the template's own clients table and, optionally, its output."""
    template = load()
    body = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"ClientsTable": template["Resources"]["ClientsTable"]},
        "Outputs": {"ClientsTableName": template["Outputs"]["ClientsTableName"]} if with_output else {},
    }
    session.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(body))


def test_stack_finds_the_clients_table_by_its_output(operator: Operator) -> None:
    deploy(operator.session, "relay-prod")

    assert operator("--stack", "relay-prod", "create", "--id", "acme", "--name", "ACME", table=False) == 0

    outputs = operator.session.client("cloudformation").describe_stacks(StackName="relay-prod")["Stacks"][0]["Outputs"]
    (table,) = [output["OutputValue"] for output in outputs if output["OutputKey"] == "ClientsTableName"]
    assert table != operator.table
    in_stack = ClientStore(operator.session.client("dynamodb"), table)
    assert in_stack.authenticate(printed(operator.out, "bearer token")).client_id == "acme"
    assert list(operator.store().scan()) == []

    assert operator("list", "--stack", "relay-prod", table=False) == 0
    assert "acme" in operator.out


def test_an_unknown_stack_is_a_clear_error(operator: Operator) -> None:
    assert operator("--stack", "nope", "list", table=False) == 1
    assert "stack 'nope' not found" in operator.err


def test_a_stack_without_the_output_is_a_clear_error(operator: Operator) -> None:
    deploy(operator.session, "other", with_output=False)

    assert operator("--stack", "other", "list", table=False) == 1
    assert "no ClientsTableName output" in operator.err


# ── resume ──


def test_resume_without_the_delivery_state_table_says_how_to_give_it(operator: Operator) -> None:
    assert operator("resume", "--client", "acme", "--conversation", "c", table=False) == 2
    for way in ("--delivery-state-table NAME", "--stack", "DeliveryStateTableName", "--dev"):
        assert way in operator.err


def test_resume_needs_the_client_and_the_conversation(operator: Operator) -> None:
    assert operator("resume", "--client", "acme") == 2
    assert "--conversation" in operator.err


# ── the local stack of make dev (--dev) ──


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's server on 127.0.0.1, as `make dev` runs it; AWS credentials of this test run unset."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    yield f"http://{host}:{port}"
    server.stop()


def local_stack(
    root: Path, port: int, endpoint_url: str, pid: int = os.getpid(), *, make_root: bool = False
) -> dev.LocalStack:
    """A local stack's file in `root` (the repository), whose clients table is the template's, on `endpoint_url`."""
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint_url, aws_access_key_id="x", aws_secret_access_key="x")
    table = clients_table(dynamodb, f"relay-dev-ClientsTable-{root.name}")  # moto's server keeps it all the run
    local = dev.LocalStack(endpoint_url=endpoint_url, region="us-east-1", pid=pid, outputs={"ClientsTableName": table})
    path = dev.state_file(root, port)
    path.parent.mkdir(parents=make_root)
    path.write_text(local.model_dump_json())
    return local


def test_dev_works_on_the_local_stack_on_port_from_any_directory_below_its_file(
    moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    local_stack(tmp_path, 3123, moto_server)
    (tmp_path / "functions").mkdir()
    monkeypatch.chdir(tmp_path / "functions")
    monkeypatch.setenv("PORT", "3123")

    assert main(["--dev", "create", "--id", "acme", "--name", "ACME"]) == 0
    assert main(["list", "--dev"]) == 0

    assert re.search(r"^acme +ACME +yes", capsys.readouterr().out, re.MULTILINE)


def test_dev_from_outside_the_repository_finds_the_stack_of_the_checkout_relay_clients_is_installed_from(
    moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    local_stack(tmp_path / "relay", 3123, moto_server, make_root=True)
    monkeypatch.setattr(dev, "CHECKOUT", tmp_path / "relay")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.setenv("PORT", "3123")

    assert main(["--dev", "list"]) == 0


def test_dev_without_a_local_stack_on_that_port_says_which_file_it_looked_for_and_where(
    moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    local_stack(tmp_path / "checkout", 3123, moto_server, make_root=True)  # on another port
    monkeypatch.setattr(dev, "CHECKOUT", tmp_path / "checkout")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.delenv("PORT", raising=False)

    assert main(["--dev", "list"]) == 1

    said = capsys.readouterr().err
    assert f"no local stack on port 3000: no .devstack/stack-3000.json in {tmp_path / 'elsewhere'} or a" in said
    assert f"or in {tmp_path / 'checkout'} (where this relay-clients is installed from)" in said
    assert "Start one with 'make dev' in the repository" in said


def test_dev_with_the_file_of_a_stack_that_has_stopped_says_so(
    moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    local_stack(tmp_path, 3000, moto_server, pid=int(gone.stdout))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PORT", raising=False)

    assert main(["--dev", "list"]) == 1

    assert "the local stack on port 3000 has stopped" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--dev", "--stack", "relay", "list"], "give --stack or --dev, not both"),
        (["--dev", "--region", "eu-west-1", "list"], "it takes no --region or --profile"),
        (["--dev", "--table", "t", "list"], "give --table or --dev, not both"),
    ],
)
def test_dev_refuses_options_that_name_another_aws(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert complaint in capsys.readouterr().err


def test_dev_refuses_a_port_that_is_not_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PORT", "http")

    assert main(["--dev", "list"]) == 2
    assert "PORT='http' is not a port" in capsys.readouterr().err


# ── the installed command ──


def test_relay_clients_is_installed_as_this_main() -> None:
    (script,) = entry_points(group="console_scripts", name="relay-clients")
    assert script.load() is main


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("create", "list", "rotate", "disable", "enable", "set-url", "redrive", "replay", "resume"):
        assert command in out
