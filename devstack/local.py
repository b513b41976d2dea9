"""`make dev`: the whole relay on this machine, with moto's server for AWS and no container engine."""

from __future__ import annotations

import dataclasses
import errno
import faulthandler
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import boto3
from pydantic import ValidationError

from devstack import aws
from devstack.chat import ChatPage
from devstack.console import say
from devstack.echo_bot import SAMPLES, EchoBot
from devstack.esm import EventSourceMapping
from devstack.gateway import Gateway
from devstack.provision import REGION, FunctionSpec, Stack, provision
from devstack.receiver import Receiver
from devstack.runtime import Function, FunctionError
from devstack.settings import DevSettings, problems
from devstack.stream import StreamServer
from devstack.template import ROOT, load, socket_routes
from relay.models import Client
from relay.stores.clients import ClientStore, hash_token
from relay_clients import dev

# Seconds instead of minutes, so a failed delivery recovers while you watch; as many attempts as deployed.
RETRY_SCHEDULE = "1,2,4,8,16,32"
ENDPOINT_COOLDOWN_SECONDS = "2"
ENDPOINT_PARK_AFTER_SECONDS = "10"
"""Likewise: an open breaker probes a receiver that is back within seconds, and a dead one is parked in 10."""
CONCURRENCY = 4
"""Containers per function at most, to spare a laptop; further requests wait for one to be free. A function fed by
an event source mapping with a MaximumConcurrency gets that many, as deployed: Lambda invokes it up to that many times
at once (for a FIFO queue, once per message group that has messages waiting), and a slow receiver holds its
invocation."""
_DEAD_LETTER_CHECK_SECONDS = 2
# Settings that could point the stack's AWS clients at an account instead of moto.
_ACCOUNT_VARIABLES = {"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"}


class LocalStack:
    """Everything `make dev` runs; `start` brings it up, `stop` takes down whatever was started."""

    def __init__(self, settings: DevSettings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._bound: list[Any] = []
        self._running: list[Any] = []
        self._functions: list[Function] = []
        self._motos: list[subprocess.Popen[str]] = []
        self._moto_url = ""
        self._dynamodb_url = ""
        self._aws_environment: dict[str, str] = {}
        self.gateway: Gateway | None = None
        self._state_file: Path | None = None
        self.stream: StreamServer
        self.stack: Stack | None = None
        self.timings: dict[str, float] = {}
        """Seconds each step of `start` took."""

    def start(self) -> None:
        settings = self.settings
        # The ports first: if the API's is taken, say so before starting anything else.
        self.gateway = Gateway(settings.port)
        self._bound.append(self.gateway)
        self.stream = StreamServer()
        self._bound += [self.stream, self.stream.connections]
        with self._step("moto", "moto with the template's tables, secrets, topic and queues"):
            self._start_moto()
            bot_url = settings.bot_webhook_url or self._serve(EchoBot(settings.bot_token, self.bot_response_url)).url
            response_url = settings.dev_response_url or self._serve(Receiver(settings.dev_webhook_secret)).url
            parameters = {
                "BotWebhookUrl": str(bot_url),
                "DeliveryRetrySchedule": RETRY_SCHEDULE,
                "EndpointCooldownSeconds": ENDPOINT_COOLDOWN_SECONDS,
                "EndpointParkAfterSeconds": ENDPOINT_PARK_AFTER_SECONDS,
            }
            # The chat page's origin, and a developer's own pages'.
            parameters["BrowserOrigins"] = ",".join((self.api_url, *settings.browser_origins))
            self.stack = provision(
                parameters,
                secret_values={"BotTokenSecret": settings.bot_token, "BotResponseSecret": settings.dev_bot_secret},
                session=boto3.Session(region_name=REGION),
            )
            self._add_demo_client(str(response_url))
        # The stream's endpoints are this machine's, wherever the template would put them on AWS.
        endpoints = {"STREAM_URL": self.stream.url, "STREAM_CONNECTIONS_URL": self.stream.connections.url}
        mappings: list[EventSourceMapping] = []
        wake = waker(mappings, _subscribed_queues(boto3.client("sns")))
        with self._step("functions", "a container for each function"):
            self._functions = [
                Function(_with_endpoints(spec, endpoints), _concurrency(spec), self._aws_environment, wake)
                for spec in self.stack.functions.values()
            ]
            for function in self._functions:
                function.warm()
            for function in self._functions:
                function.wait_ready()
        mappings += self._start_event_sources()
        self.gateway.route_to(list(self._functions))
        by_name = {function.spec.name: function for function in self._functions}
        self.stream.route_to({route: by_name[name] for route, name in socket_routes(load()).items()})
        hint = "Type a message" + ("" if settings.bot_webhook_url else f", or one of: {', '.join(SAMPLES)}")
        self.gateway.pages["/chat"] = ChatPage(self.api_url, settings.dev_client_token, hint)
        self._serve(self.stream.connections)
        self._serve(self.stream)
        self._serve(self.gateway)
        self._write_state_file()

    @contextmanager
    def _step(self, name: str, description: str) -> Iterator[None]:
        say("stack", f"starting {description}")
        started = time.monotonic()
        yield
        self.timings[name] = time.monotonic() - started

    @property
    def api_url(self) -> str:
        assert self.gateway
        return self.gateway.url

    @property
    def bot_response_url(self) -> str:
        return f"{self.api_url}/bot/responses/{self.settings.dev_bot_secret}"

    def banner(self) -> str:
        settings = self.settings
        # A fresh messageId on every run of the command, in any POSIX shell: a repeat would not be forwarded.
        fresh_id = """'"$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')"'"""
        example = (
            f'{{"userId":"user-1","messageId":"msg-{fresh_id}","conversationId":"conversation-1",'
            '"type":"text","text":"hello","payload":{"text":"hello"}}'
        )
        curl = (
            f"curl -sS -X POST {self.api_url}/messages \\\n"
            f"    -H {shlex.quote('Authorization: Bearer ' + settings.dev_client_token)} \\\n"
            f"    -H 'Content-Type: application/json' \\\n"
            f"    -d '{example}'"
        )
        bot = str(settings.bot_webhook_url) if settings.bot_webhook_url else "the built-in echo bot"
        receiver = (
            str(settings.dev_response_url) if settings.dev_response_url else "the built-in receiver (prints here)"
        )
        assert self.gateway
        port = self.gateway.server_address[1]
        relay_clients = f"{'' if port == dev.DEFAULT_PORT else f'PORT={port} '}.venv/bin/relay-clients --dev"
        # Which pages may call the API: a page of another origin can send nothing, and only its console says why.
        origins = ", ".join((self.api_url, *settings.browser_origins))
        whose = (
            "the chat page's and DEV_BROWSER_ORIGINS"
            if settings.browser_origins
            else "the chat page's; add yours with DEV_BROWSER_ORIGINS=http://localhost:5173"
        )
        return "\n".join(
            [
                "",
                "  Messaging relay running locally"
                f" (AWS on moto at {self._moto_url}, DynamoDB at {self._dynamodb_url}).",
                "",
                f"  API URL              {self.api_url}",
                f"  client token         {settings.dev_client_token}   (client '{settings.client_id}')",
                f"  signing secret       {settings.dev_webhook_secret}",
                f"  bot response URL     {self.bot_response_url}",
                f"  chat page            {self.api_url}/chat   (a conversation of the demo client in a browser)",
                f"  stream               {self.stream.url}   (@connections at {self.stream.connections.url})",
                f"  browser origins      {origins}   ({whose})",
                f"  bot                  {bot}",
                f"  responses go to      {receiver}",
                "",
                "  Send a message:",
                "",
                *(f"    {line}" for line in curl.splitlines()),
                "",
                "  Manage its clients (list, create, rotate, redrive, resume...), from this directory:",
                "",
                f"    {relay_clients} list",
                "",
                "  Ctrl-C stops everything.",
                "",
            ]
        )

    def stop(self) -> None:
        self._stop.set()
        if self._state_file:
            self._state_file.unlink(missing_ok=True)
        for server in self._running:
            server.shutdown()
        for server in self._bound:
            server.server_close()
        for thread in self._threads:
            thread.join(5)
        for function in self._functions:
            function.stop()
        for moto in self._motos:  # last: whatever still runs may yet call AWS
            moto.communicate()  # closes its input: it stops

    # ── parts ──

    def _start_moto(self) -> None:
        # In processes of their own (see devstack.aws), in their own process group like the containers: Ctrl-C in
        # the terminal reaches the stack, which stops moto last. Two, as AWS's services are apart: DynamoDB in
        # one, the rest (SNS delivers to SQS within moto) in the other. Each serves one request at a time, so in
        # one, every table's reads and writes had waited behind the queues' receives and the topic's publishes.
        self._motos = [
            subprocess.Popen(
                [sys.executable, "-m", "devstack.aws"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                process_group=0,
            )
            for _ in range(2)
        ]
        self._moto_url, self._dynamodb_url = (self._moto_listening(moto) for moto in self._motos)
        # Every AWS client of the stack and its functions talks to moto, never to an account: the functions'
        # containers get only this besides their own environment; the stack's own clients read it from ours.
        self._aws_environment = {
            "AWS_ENDPOINT_URL": self._moto_url,
            "AWS_ENDPOINT_URL_DYNAMODB": self._dynamodb_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",  # moto takes any key
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        for name in list(os.environ):
            if name.startswith("AWS_ENDPOINT_URL_") or name in _ACCOUNT_VARIABLES:
                del os.environ[name]
        os.environ.update(self._aws_environment)

    @staticmethod
    def _moto_listening(moto: subprocess.Popen[str]) -> str:
        """The URL a started moto prints once it listens."""
        assert moto.stdout
        line = moto.stdout.readline()
        if not line.startswith(aws.READY):
            raise aws.AwsError(f"moto did not start (exit status {moto.wait()}); its error is above")
        return line.removeprefix(aws.READY).strip()

    def _write_state_file(self) -> None:
        """Where `relay-clients --dev` finds this stack: moto's URL and the template's outputs that name resources."""
        assert self.gateway and self.stack
        outputs = {
            name: self.stack.ref(output["Value"]["Ref"])
            for name, output in load()["Outputs"].items()
            if isinstance(output["Value"], dict) and output["Value"].get("Ref") in self.stack.resolver.refs
        }
        local = dev.LocalStack(
            endpoint_url=self._moto_url,
            dynamodb_endpoint_url=self._dynamodb_url,
            region=REGION,
            pid=os.getpid(),
            outputs=outputs,
        )
        path = dev.state_file(ROOT, self.gateway.server_address[1])
        path.parent.mkdir(exist_ok=True)
        path.write_text(local.model_dump_json(indent=2))
        self._state_file = path

    def _serve(self, server: Any) -> Any:
        if server not in self._bound:
            self._bound.append(server)
        self._running.append(server)
        self._thread(server.serve_forever, type(server).__name__)
        return server

    def _add_demo_client(self, response_url: str) -> None:
        assert self.stack
        store = ClientStore(boto3.client("dynamodb"), self.stack.ref("ClientsTable"))
        token = self.settings.dev_client_token
        client = Client(
            client_id=self.settings.client_id,
            name="demo client (make dev)",
            token_hash=hash_token(token),
            webhook_secret=self.settings.dev_webhook_secret,
            response_url=response_url,
        )
        store.put(client, new=True)

    def _start_event_sources(self) -> list[EventSourceMapping]:
        sqs = boto3.client("sqs")
        mappings = []
        for function in self._functions:
            if not function.spec.queue_url:
                continue
            mapping = EventSourceMapping(sqs, function)
            mappings.append(mapping)
            for index in range(_concurrency(function.spec)):
                self._thread(lambda mapping=mapping: mapping.run(self._stop), f"{function.spec.name}-poller-{index}")
            if dead_letters := _dead_letter_queue(sqs, function.spec.queue_url):
                self._thread(lambda url=dead_letters: self._watch_dead_letters(sqs, url), "dead-letters")
        return mappings

    def _watch_dead_letters(self, sqs: Any, url: str) -> None:
        """Say when something lands in the dead-letter queue, as the deployed alarm would."""
        seen = 0
        while not self._stop.wait(_DEAD_LETTER_CHECK_SECONDS):
            try:
                attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            except Exception as error:  # keep watching: the next check may work
                say("stack", f"cannot read the dead-letter queue: {error}")
                continue
            count = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
            if count > seen:
                say("stack", f"the dead-letter queue now holds {count} undeliverable response(s): {url}")
            seen = count

    def _thread(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def main() -> int:
    try:
        settings = DevSettings()
    except ValidationError as error:
        print("make dev: cannot start:", *problems(error), sep="\n  ", file=sys.stderr)
        return 2
    stack = LocalStack(settings)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 <pid>`: where each thread is
    # SIGTERM and SIGHUP (a closed terminal) stop the stack as Ctrl-C does; one handed down ignored
    # (nohup, a background job of a script) stays ignored.
    for signum in _STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _interrupt)
    if "MAKELEVEL" in os.environ:
        _stop_with_make()
    started = time.monotonic()
    try:
        stack.start()
        print(stack.banner(), flush=True)
        steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in stack.timings.items())
        say("stack", f"serving after {time.monotonic() - started:.1f} s ({steps})")
        while True:  # a signal that reaches another thread is handled once this thread runs: sleep briefly
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except FunctionError as error:  # its container printed the traceback
        print(f"make dev: a function cannot start: {error}", file=sys.stderr)
        return 1
    except aws.AwsError as error:
        print(f"make dev: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            hint = f"choose another, e.g. PORT={settings.port + 1} make dev"
            print(f"make dev: port {settings.port} is in use; {hint}", file=sys.stderr)
            return 1
        raise
    finally:
        _ignore_stop_signals()
        say("stack", "stopping")
        stack.stop()
        say("stack", "stopped")
    return 0


def waker(mappings: Sequence[Wakeable], subscribed: dict[str, set[str]]) -> Callable[[Collection[str]], None]:
    """What the functions call with the queue URLs and topic ARNs an invocation sent to, before it answers: it
    wakes the pollers of those queues, and of the queues `subscribed` to those topics, and only those. Waking
    the queues a function's policy let it send to cost a receive, most of them empty, for each of its answers:
    for each 429 of a flood, one of the delivery queue. `mappings` may grow after."""

    def wake(sent: Collection[str]) -> None:
        queues = {*sent, *(queue for target in sent for queue in subscribed.get(target, ()))}
        for mapping in mappings:
            if {mapping.queue_url, mapping.queue_arn} & queues:
                mapping.wake()

    return wake


class Wakeable(Protocol):
    """An event source mapping, as the waker sees it."""

    queue_url: str
    queue_arn: str

    def wake(self) -> None: ...


def _subscribed_queues(sns: Any) -> dict[str, set[str]]:
    """Each topic's ARN, with the ARNs of the queues subscribed to it."""
    subscribed: dict[str, set[str]] = {}
    for page in sns.get_paginator("list_subscriptions").paginate():
        for subscription in page["Subscriptions"]:
            if subscription["Protocol"] == "sqs":
                subscribed.setdefault(subscription["TopicArn"], set()).add(subscription["Endpoint"])
    return subscribed


def _concurrency(spec: FunctionSpec) -> int:
    """How many invocations of the function may run at once: its containers, and its event source's pollers."""
    return max(CONCURRENCY, spec.maximum_concurrency or 0)


def _with_endpoints(spec: FunctionSpec, endpoints: dict[str, str]) -> FunctionSpec:
    """The function with each of `endpoints` that its environment has set to the local one."""
    environment = {name: endpoints.get(name, value) for name, value in spec.environment.items()}
    return dataclasses.replace(spec, environment=environment)


def _dead_letter_queue(sqs: Any, url: str) -> str | None:
    """The URL of the queue that `url`'s redrive policy sends messages to, if it has one."""
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"]).get("Attributes", {})
    if "RedrivePolicy" not in attributes:
        return None
    arn = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
    dead_letters: str = sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"]
    return dead_letters


def _interrupt(signum: int, frame: Any) -> None:
    # Ignored from now on, before anything else: a second signal (Ctrl-C twice, or the terminal's and make's
    # at once) would raise again in the clean-up and cut it short.
    _ignore_stop_signals()
    raise KeyboardInterrupt


def _ignore_stop_signals() -> None:
    # A handler that does nothing rather than SIG_IGN: a signal already pending would make Python print
    # "Signal 15 ignored due to race condition" with a traceback.
    for signum in _STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _ignore)


def _ignore(signum: int, frame: Any) -> None:
    """Stopping already."""


def _stop_with_make() -> None:
    """Stop when `make` goes, whether or not it passed a signal on (it cannot when killed with SIGKILL)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
