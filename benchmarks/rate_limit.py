"""How exactly a client's rate holds when many containers of the client API share its bucket, on the real clock.

Run: .venv/bin/python benchmarks/rate_limit.py  (moto in a process of its own, as `make dev` runs it)

Each "container" is a thread with its own AWS client and its own store (relay.stores.rate_limits.RateLimits), as
a container of the client API has; all of them flood one client as fast as moto answers for WINDOW seconds. A
token bucket admits at most its burst plus the rate times the time that passed: the figures are what was admitted
against that bound, and the writes it took (a refusal a container can make from what it saw takes none). moto
takes one request at a time (devstack.aws), as DynamoDB applies the writes to one item one at a time.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from devstack import aws  # noqa: E402
from devstack.template import load  # noqa: E402
from relay.rate_limits import DEFAULT_RATE, RateLimit  # noqa: E402
from relay.stores.rate_limits import RateLimits  # noqa: E402

TABLE = "rate-limits"
WINDOW = 5.0
CONTAINERS = (1, 4, 16)


class Counting:
    """A container's AWS client, counting its writes."""

    def __init__(self, client: object) -> None:
        self._client = client
        self.writes = 0

    def update_item(self, **request: object) -> object:
        self.writes += 1
        return self._client.update_item(**request)  # type: ignore[attr-defined]


def flood(url: str, client_id: str, limit: RateLimit, containers: int) -> tuple[int, int, int, float]:
    """Admitted, requests and writes of `containers` containers flooding one client, and the seconds it took."""
    session = boto3.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1")  # noqa: S106 (moto's)
    tables = [Counting(session.client("dynamodb", endpoint_url=url)) for _ in range(containers)]
    admitted = [0] * containers
    requests = [0] * containers
    start = threading.Barrier(containers + 1)
    end = [0.0]

    def run(n: int) -> None:
        limits = RateLimits(tables[n], TABLE)
        start.wait()
        while time.time() < end[0]:
            requests[n] += 1
            admitted[n] += limits.take(client_id, limit).admitted

    threads = [threading.Thread(target=run, args=(n,)) for n in range(containers)]
    for thread in threads:
        thread.start()
    began = time.time()
    end[0] = began + WINDOW
    start.wait()
    for thread in threads:
        thread.join()
    return sum(admitted), sum(requests), sum(t.writes for t in tables), time.time() - began


def main() -> None:
    moto = subprocess.Popen(
        [sys.executable, "-m", "devstack.aws"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert moto.stdout
    url = moto.stdout.readline().removeprefix(aws.READY).strip()
    try:
        session = boto3.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1")  # noqa: S106
        properties = load()["Resources"]["RateLimitsTable"]["Properties"]
        session.client("dynamodb", endpoint_url=url).create_table(
            TableName=TABLE,
            KeySchema=properties["KeySchema"],
            AttributeDefinitions=properties["AttributeDefinitions"],
            BillingMode=properties["BillingMode"],
        )
        print(f"one client flooded for {WINDOW:.0f} s; the bound is burst + rate x seconds")
        print("rate  containers  requests  admitted  bound  admitted/bound  writes  writes/s  writes/admitted")
        for rate in (DEFAULT_RATE, 50):  # moto answers about 130 writes a second: rates well below it
            limit = RateLimit(rate)
            for containers in CONTAINERS:
                admitted, requests, writes, seconds = flood(url, f"c{rate}-{containers}", limit, containers)
                bound = limit.burst + rate * seconds
                print(
                    f"{rate:>4}  {containers:>10}  {requests:>8}  {admitted:>8}  {bound:>5.0f}"
                    f"  {admitted / bound:>14.3f}  {writes:>6}  {writes / seconds:>8.0f}  {writes / admitted:>15.2f}"
                )
    finally:
        moto.communicate()


if __name__ == "__main__":
    main()
