"""Where each spec component goes and under which name it is exported.

Export naming rule (what ``expected_exports`` reports and the validator checks):

- plugin      ``src/index.ts``                 ``<short>Plugin`` (named and default export),
  ``<short>`` is the package name without scope and ``plugin-`` prefix, camelCased
  (``@elizaos/plugin-time`` -> ``timePlugin``);
- action      ``src/actions/<name>.ts``        ``<name>Action``       (``getCurrentTimeAction``)
- provider    ``src/providers/<name>.ts``      ``<name>Provider``     (``weatherDataProvider``)
- evaluator   ``src/evaluators/<name>.ts``     ``<name>Evaluator``
- service     ``src/services/<Name>.ts``       ``<Name>Service`` class (``ShellService``)

``<name>`` is the spec name (first letter lower-cased for values, upper-cased for service
classes); the suffix is not doubled when the name already ends with it
(``timeProvider`` -> ``timeProvider``). Names that are not plain identifiers of at most
MAX_IDENTIFIER characters are rebuilt in camelCase (with a short hash when truncated),
and duplicates are numbered. File names keep the spec name's spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.domain.spec import (
    ActionSpec,
    EnvironmentVariable,
    EvaluatorSpec,
    PluginSpec,
    ProviderSpec,
    ServiceSpec,
)
from server.generators.template_naming import (
    MAX_IDENTIFIER,
    export_name,
    safe_identifier,
    unique_names,
    upper_snake,
    words,
)
from server.generators.template_types import TypeNode, fit_fields, parse_fields

__all__ = [
    "ActionPlan",
    "Component",
    "EvaluatorPlan",
    "PluginPlan",
    "ProviderPlan",
    "ServicePlan",
    "expected_exports",
    "plan_plugin",
]

# Members of Service (and Object.prototype) a spec method must not shadow.
_RESERVED_METHODS = {
    "constructor",
    "start",
    "stop",
    "isRunning",
    "history",
    "perform",
    "calls",
    "running",
    "runtime",
    "config",
    "capabilityDescription",
    "serviceType",
    "registerSendHandlers",
    "toString",
    "toLocaleString",
    "valueOf",
    "hasOwnProperty",
    "isPrototypeOf",
    "propertyIsEnumerable",
}


@dataclass(frozen=True)
class ActionPlan:
    spec: ActionSpec
    file: str  # spec-name-based file stem
    export: str
    upper: str  # Action.name, ElizaOS style
    fields: tuple[tuple[str, TypeNode], ...]

    @property
    def path(self) -> str:
        return f"src/actions/{self.file}.ts"

    @property
    def test_path(self) -> str:
        return f"src/__tests__/actions/{self.file}.test.ts"


@dataclass(frozen=True)
class ProviderPlan:
    spec: ProviderSpec
    file: str
    export: str
    fields: tuple[tuple[str, TypeNode], ...]

    @property
    def path(self) -> str:
        return f"src/providers/{self.file}.ts"

    @property
    def test_path(self) -> str:
        return f"src/__tests__/providers/{self.file}.test.ts"


@dataclass(frozen=True)
class ServicePlan:
    spec: ServiceSpec
    file: str
    export: str  # the class name
    service_type: str
    methods: tuple[str, ...]  # safe method names, in spec order

    @property
    def path(self) -> str:
        return f"src/services/{self.file}.ts"

    @property
    def test_path(self) -> str:
        return f"src/__tests__/services/{self.file}.test.ts"


@dataclass(frozen=True)
class EvaluatorPlan:
    spec: EvaluatorSpec
    file: str
    export: str
    upper: str

    @property
    def path(self) -> str:
        return f"src/evaluators/{self.file}.ts"

    @property
    def test_path(self) -> str:
        return f"src/__tests__/evaluators/{self.file}.test.ts"


Component = ActionPlan | ProviderPlan | ServicePlan | EvaluatorPlan


@dataclass(frozen=True)
class PluginPlan:
    spec: PluginSpec
    export: str
    actions: tuple[ActionPlan, ...]
    providers: tuple[ProviderPlan, ...]
    services: tuple[ServicePlan, ...]
    evaluators: tuple[EvaluatorPlan, ...]
    settings: tuple[EnvironmentVariable, ...]


def _file_stems(names: list[str], fallback: str, *, pascal: bool = False) -> list[str]:
    stems = []
    for name in names:
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) and len(name) <= MAX_IDENTIFIER:
            stem = name[:1].upper() + name[1:] if pascal else name
        else:
            stem = safe_identifier(name, pascal=pascal, fallback=fallback)
        stems.append(stem)
    return unique_names(stems)


def _plugin_export(name: str) -> str:
    short = name.rsplit("/", 1)[-1]
    short = re.sub(r"^(?:eliza(?:os)?-)?plugin-|-plugin$", "", short, flags=re.IGNORECASE)
    return export_name(safe_identifier(short, fallback="custom"), "Plugin")


def _service_type(class_base: str) -> str:
    return "_".join(w.lower() for w in words(class_base)) or "service"


def _methods(methods: tuple[str, ...]) -> tuple[str, ...]:
    safe = []
    for method in methods:
        name = safe_identifier(method, fallback="operation")
        safe.append(name + "Operation" if name in _RESERVED_METHODS else name)
    return tuple(unique_names(safe))


def plan_plugin(spec: PluginSpec) -> PluginPlan:
    """Decide every file name and export name for ``spec`` (pure, deterministic)."""
    action_files = _file_stems([a.name for a in spec.actions], "action")
    provider_files = _file_stems([p.name for p in spec.providers], "provider")
    service_files = _file_stems([s.name for s in spec.services], "service", pascal=True)
    evaluator_files = _file_stems([e.name for e in spec.evaluators], "evaluator")

    actions = tuple(
        ActionPlan(
            spec=a,
            file=f,
            export=export_name(safe_identifier(f), "Action"),
            upper=upper_snake(safe_identifier(f)),
            fields=fit_fields(parse_fields(a.parameters)),
        )
        for a, f in zip(spec.actions, action_files, strict=True)
    )
    providers = tuple(
        ProviderPlan(
            spec=p,
            file=f,
            export=export_name(safe_identifier(f), "Provider"),
            fields=parse_fields(p.data_structure),
        )
        for p, f in zip(spec.providers, provider_files, strict=True)
    )
    services = tuple(
        ServicePlan(
            spec=s,
            file=f,
            export=export_name(safe_identifier(f, pascal=True), "Service"),
            service_type=_service_type(safe_identifier(f, pascal=True)),
            methods=_methods(s.methods),
        )
        for s, f in zip(spec.services, service_files, strict=True)
    )
    evaluators = tuple(
        EvaluatorPlan(
            spec=e,
            file=f,
            export=export_name(safe_identifier(f), "Evaluator"),
            upper=upper_snake(safe_identifier(f)),
        )
        for e, f in zip(spec.evaluators, evaluator_files, strict=True)
    )
    seen: set[str] = set()
    settings = []
    for var in spec.environment_variables:
        if var.name and var.name not in seen:
            seen.add(var.name)
            settings.append(var)
    return PluginPlan(
        spec=spec,
        export=_plugin_export(spec.name),
        actions=actions,
        providers=providers,
        services=services,
        evaluators=evaluators,
        settings=tuple(settings),
    )


def expected_exports(spec: PluginSpec) -> dict[str, str]:
    """Workspace-relative path -> the export name each generated module must have."""
    plan = plan_plugin(spec)
    out = {"src/index.ts": plan.export}
    components: tuple[Component, ...] = (
        *plan.actions,
        *plan.providers,
        *plan.services,
        *plan.evaluators,
    )
    for component in components:
        out[component.path] = component.export
    return out
