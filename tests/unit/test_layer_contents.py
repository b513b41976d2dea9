"""The Lambda layer ships only what the functions import: no operator code, no module no function loads.

The layer's `relay` package is made by the step `sam build` runs (layers/relay/Makefile, `package`; the rest of
the build pip-installs the third-party packages for arm64 and compiles). Each function's handler is then imported
from that copy in a fresh interpreter, as Lambda imports it, with tracing on (its most complete cold start).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_cold_path import ENVIRONMENT, lambda_environment

from devstack.template import ROOT, load, resources_of_type

PROBE = "import json, sys; sys.path.insert(0, sys.argv[1]); import app; print(json.dumps(sorted(sys.modules)))"


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layer's python/ directory as the build's copy step leaves it."""
    artifacts = tmp_path_factory.mktemp("layer")
    subprocess.run(
        ["make", "-s", "-C", str(ROOT / "layers" / "relay"), "package", f"ARTIFACTS_DIR={artifacts}"],
        check=True,
        timeout=60,
    )
    return artifacts / "python"


def shipped_modules(layer: Path) -> set[str]:
    """Every module of the shipped `relay` package, by its import name."""
    return {
        ".".join(path.relative_to(layer).with_suffix("").parts).removesuffix(".__init__")
        for path in (layer / "relay").rglob("*.py")
    }


def imported_by(function: str, code: Path, layer: Path) -> set[str]:
    # The layer's copy on the path, never the repository's package; tracing on, its most complete cold start.
    env = {**lambda_environment(function, code, layer), "POWERTOOLS_TRACE_DISABLED": "false"}
    done = subprocess.run([sys.executable, "-c", PROBE, str(code)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


def test_the_layer_ships_no_operator_code_and_no_module_that_no_function_imports(layer: Path) -> None:
    functions = resources_of_type(load(), "AWS::Serverless::Function")
    assert set(functions) == set(ENVIRONMENT), "events/env.json has every function of the template"
    imported = set().union(
        *(imported_by(name, ROOT / spec["Properties"]["CodeUri"], layer) for name, spec in functions.items())
    )
    shipped = shipped_modules(layer)

    assert [path.name for path in layer.rglob("*") if "relay_clients" in path.name] == []
    assert sorted(shipped - imported) == [], "modules no function imports: move them out of the layer"
    assert {"relay.flows.delivery", "relay.edge.api"} <= shipped  # the walk does find the package's modules
