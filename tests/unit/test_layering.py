"""The layer's package depends one way: the edge reads requests into typed inputs and calls the flows; nothing
below the edge (the flows, stores, adapters, the domain at the root) imports it, so a flow is called and tested
without HTTP."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from devstack.template import ROOT

PACKAGE = ROOT / "layers" / "relay" / "relay"


def imports(path: Path) -> set[str]:
    """Every module the file imports, anywhere in it (a lazy import in a function too), by its full name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: the package imports by absolute name only"
            names |= {node.module or "", *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


def imports_the_edge(path: Path) -> list[str]:
    return sorted(name for name in imports(path) if name == "relay.edge" or name.startswith("relay.edge."))


BELOW_THE_EDGE = sorted(path for path in PACKAGE.rglob("*.py") if "edge" not in path.relative_to(PACKAGE).parts)


@pytest.mark.parametrize("path", BELOW_THE_EDGE, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_module_below_the_edge_imports_it(path: Path) -> None:
    assert imports_the_edge(path) == []


def test_the_check_sees_the_edges_imports_and_every_flow() -> None:
    assert "relay.edge.access" in imports_the_edge(PACKAGE / "edge" / "client_api.py")
    assert "relay.edge.api" in imports_the_edge(PACKAGE / "edge" / "bot_api.py")  # `from relay.edge.api import …`
    flows = {path.stem for path in BELOW_THE_EDGE if path.parent.name == "flows"}
    assert {"inbound", "tokens", "polling", "bot_responses", "stream", "stream_socket", "delivery"} <= flows
