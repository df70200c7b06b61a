"""The plugin specification: what a job is asked to build.

The JSON form is the reference systems' format, which is also protobuf's JSON mapping
of ``auton8n.v1.PluginSpec`` (lowerCamelCase keys), so one ``from_json`` serves specs
from files, from the wire and from the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ActionSpec",
    "EnvironmentVariable",
    "EvaluatorSpec",
    "PluginSpec",
    "ProviderSpec",
    "ServiceSpec",
]


@dataclass(frozen=True)
class ActionSpec:
    name: str
    description: str = ""
    # Parameter name -> type description; values may nest (a dict is an object type).
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    description: str = ""
    # Field name -> type description; values may nest.
    data_structure: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    description: str = ""
    methods: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvaluatorSpec:
    name: str
    description: str = ""
    triggers: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnvironmentVariable:
    name: str
    description: str = ""
    required: bool = False
    sensitive: bool = False


@dataclass(frozen=True)
class PluginSpec:
    name: str
    description: str = ""
    version: str = ""
    actions: tuple[ActionSpec, ...] = ()
    providers: tuple[ProviderSpec, ...] = ()
    services: tuple[ServiceSpec, ...] = ()
    evaluators: tuple[EvaluatorSpec, ...] = ()
    dependencies: dict[str, str] = field(default_factory=dict)
    environment_variables: tuple[EnvironmentVariable, ...] = ()

    @property
    def package_version(self) -> str:
        """The version the generated package.json carries (the spec's, or 1.0.0)."""
        return self.version or "1.0.0"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PluginSpec:
        """Build from the reference JSON format (camelCase; snake_case also accepted).

        Shape errors raise TypeError/ValueError; semantic checks live in validation.
        """

        def get(d: dict[str, Any], camel: str, snake: str, default: Any) -> Any:
            if camel in d:
                return d[camel]
            return d.get(snake, default)

        def items(key_camel: str, key_snake: str) -> list[dict[str, Any]]:
            value = get(data, key_camel, key_snake, []) or []
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise TypeError(f"{key_camel} must be a list of objects")
            return value

        return cls(
            name=str(data.get("name", "")),
            description=str(data.get("description", "")),
            version=str(data.get("version", "")),
            actions=tuple(
                ActionSpec(
                    name=str(a.get("name", "")),
                    description=str(a.get("description", "")),
                    parameters=dict(a.get("parameters") or {}),
                )
                for a in items("actions", "actions")
            ),
            providers=tuple(
                ProviderSpec(
                    name=str(p.get("name", "")),
                    description=str(p.get("description", "")),
                    data_structure=dict(get(p, "dataStructure", "data_structure", {}) or {}),
                )
                for p in items("providers", "providers")
            ),
            services=tuple(
                ServiceSpec(
                    name=str(s.get("name", "")),
                    description=str(s.get("description", "")),
                    methods=tuple(str(m) for m in s.get("methods") or ()),
                )
                for s in items("services", "services")
            ),
            evaluators=tuple(
                EvaluatorSpec(
                    name=str(e.get("name", "")),
                    description=str(e.get("description", "")),
                    triggers=tuple(str(t) for t in e.get("triggers") or ()),
                )
                for e in items("evaluators", "evaluators")
            ),
            dependencies={str(k): str(v) for k, v in (data.get("dependencies") or {}).items()},
            environment_variables=tuple(
                EnvironmentVariable(
                    name=str(v.get("name", "")),
                    description=str(v.get("description", "")),
                    required=bool(v.get("required", False)),
                    sensitive=bool(v.get("sensitive", False)),
                )
                for v in items("environmentVariables", "environment_variables")
            ),
        )

    def to_json(self) -> dict[str, Any]:
        """The reference JSON format (camelCase), the inverse of ``from_json``."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "version": self.version,
        }
        if self.actions:
            out["actions"] = [
                {"name": a.name, "description": a.description, "parameters": a.parameters}
                for a in self.actions
            ]
        if self.providers:
            out["providers"] = [
                {"name": p.name, "description": p.description, "dataStructure": p.data_structure}
                for p in self.providers
            ]
        if self.services:
            out["services"] = [
                {"name": s.name, "description": s.description, "methods": list(s.methods)}
                for s in self.services
            ]
        if self.evaluators:
            out["evaluators"] = [
                {"name": e.name, "description": e.description, "triggers": list(e.triggers)}
                for e in self.evaluators
            ]
        if self.dependencies:
            out["dependencies"] = dict(self.dependencies)
        if self.environment_variables:
            out["environmentVariables"] = [
                {
                    "name": v.name,
                    "description": v.description,
                    "required": v.required,
                    "sensitive": v.sensitive,
                }
                for v in self.environment_variables
            ]
        return out
