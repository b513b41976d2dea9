"""The local stack of `make dev` as relay-clients finds it: a file the stack writes while it runs, one per port.

The stack writes it (devstack.local) and removes it when it stops; `relay-clients --dev` reads it, so an operator's
commands reach moto's server and the stack's tables and queues with no URL, credentials or names to copy.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

DIRECTORY = ".devstack"
DEFAULT_PORT = 3000
"""The API port of `make dev` when PORT is not set."""
CHECKOUT = Path(__file__).resolve().parents[2]
"""The repository this relay-clients runs from when it is installed from one (`make` installs it with `pip -e`):
where `make dev` writes its file, whatever the directory the command runs in."""


class LocalStack(BaseModel):
    """Where a running local stack's AWS is, and its template outputs (the names a deployed stack's outputs give)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint_url: str
    dynamodb_endpoint_url: str | None = None
    """DynamoDB's, where it is served apart (the stack runs it in a moto of its own); else `endpoint_url`."""
    region: str
    pid: int
    outputs: dict[str, str]


def state_file(root: Path, port: int) -> Path:
    """The file of the local stack serving its API on `port`, in the repository at `root`."""
    return root / DIRECTORY / f"stack-{port}.json"
