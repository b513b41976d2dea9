"""Reads template.yaml and resolves the intrinsic functions the relay's template uses."""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
NO_VALUE = object()


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # libyaml's: 9x faster
    """YAML with CloudFormation's short forms (`!Ref X` becomes `{"Ref": "X"}`)."""


def _short_form(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node for !{suffix}", node.start_mark)
    return {name: value}


_Loader.add_multi_constructor("!", _short_form)


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as data: a copy of its own, parsed again only when the file changes (tests load it often)."""
    return copy.deepcopy(_parsed(path, path.stat().st_mtime_ns))


@functools.cache
def _parsed(path: Path, _modified: int) -> dict[str, Any]:
    template: dict[str, Any] = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - SafeLoader plus CFN tags
    return template


@dataclass
class Resolver:
    """Evaluates Ref, GetAtt, Sub, If, Equals and Not against parameters and provisioned resources; refuses others."""

    template: dict[str, Any]
    parameters: dict[str, str]
    pseudo: dict[str, str]
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::GetAtt":
                resource, attribute = argument
                return self.attributes[resource][attribute]
            if key == "Fn::Sub":
                return re.sub(r"\$\{([^}]+)\}", lambda m: self._sub(m.group(1)), argument)
            if key == "Fn::If":
                condition, when_true, when_false = argument
                return self(when_true if self.condition(condition) else when_false)
            if key == "Fn::Equals":
                left, right = (self(v) for v in argument)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self(argument[0])
            if key.startswith("Fn::"):
                raise ValueError(f"{self._where(value)}: {key} is an intrinsic function the local stack cannot resolve")
        resolved = {k: self(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.refs[name]

    def condition(self, name: str) -> bool:
        return bool(self(self.template["Conditions"][name]))

    def _where(self, node: dict[str, Any]) -> str:
        """The node's path in the template, such as `Resources.Queue.Properties.QueueName`."""

        def search(tree: Any, path: tuple[str, ...]) -> tuple[str, ...] | None:
            if tree is node:
                return path
            children = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
            return next((found for k, v in children if (found := search(v, (*path, str(k)))) is not None), None)

        path = search(self.template, ())
        return ".".join(path) if path else repr(node)

    def _sub(self, name: str) -> str:
        resource, _, attribute = name.partition(".")
        return str(self.attributes[resource][attribute] if attribute else self.ref(name))


def parameter_values(template: dict[str, Any], overrides: dict[str, str]) -> dict[str, str]:
    """The template's parameter defaults with `overrides` applied; a parameter without either is an error."""
    unknown = set(overrides) - set(template["Parameters"])
    if unknown:
        raise ValueError(f"not parameters of the template: {', '.join(sorted(unknown))}")
    values = {}
    for name, spec in template["Parameters"].items():
        if name in overrides:
            values[name] = str(overrides[name])
        elif "Default" in spec:
            values[name] = str(spec["Default"])
        else:
            raise ValueError(f"template parameter {name} needs a value")
    return values


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in template["Resources"].items() if spec["Type"] == kind}


def socket_routes(template: dict[str, Any]) -> dict[str, str]:
    """The route keys of the template's WebSocket API and the function each one's integration invokes."""
    resources = template["Resources"]
    apis = {
        name
        for name, spec in resources_of_type(template, "AWS::ApiGatewayV2::Api").items()
        if spec["Properties"].get("ProtocolType") == "WEBSOCKET"
    }
    functions = set(resources_of_type(template, "AWS::Serverless::Function"))
    routes = {}
    for spec in resources_of_type(template, "AWS::ApiGatewayV2::Route").values():
        props = spec["Properties"]
        if not _names(props.get("ApiId")) & apis:
            continue
        integrations = [name for name in _names(props.get("Target")) if name in resources]
        uris = [resources[name]["Properties"].get("IntegrationUri") for name in integrations]
        # A function, or the alias SAM makes of it for AutoPublishAlias (logical id `<function>Alias<alias>`).
        invoked = {f for uri in uris for name in _names(uri) for f in functions if name.partition("Alias")[0] == f}
        if len(invoked) != 1:
            raise ValueError(f"WebSocket route {props['RouteKey']}: no function integration the local stack can find")
        routes[props["RouteKey"]] = invoked.pop()
    return routes


def _names(value: Any) -> set[str]:
    """The logical ids a value refers to, through Ref, GetAtt and Sub's ${Name} or ${Name.Attribute}."""
    if isinstance(value, list):
        return set().union(*(_names(item) for item in value)) if value else set()
    if not isinstance(value, dict):
        return set()
    if "Ref" in value:
        return {value["Ref"]}
    if "Fn::GetAtt" in value:
        return {value["Fn::GetAtt"][0]}
    if "Fn::Sub" in value:
        text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
        return {match.split(".")[0] for match in re.findall(r"\$\{([^}!]+)\}", text)}
    return set().union(*(_names(item) for item in value.values())) if value else set()
