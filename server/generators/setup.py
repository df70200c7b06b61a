"""Which generators a server offers, built from its settings (used by the composition root)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from server.domain.spec import PluginSpec
from server.generators.describe import spec_from_description
from server.generators.registry import GeneratorRegistry
from server.generators.template import TemplateGenerator
from server.settings import Settings

__all__ = ["Describer", "build_describer", "build_registry"]

# Turns a plain-English description into a spec (validated by the caller).
Describer = Callable[[str], Awaitable[PluginSpec]]


def build_registry(settings: Settings) -> GeneratorRegistry:
    registry = GeneratorRegistry()
    registry.add_exact("template", lambda _model: TemplateGenerator())
    return registry


def build_describer(settings: Settings) -> Describer:
    async def describe(description: str) -> PluginSpec:
        return spec_from_description(description)

    return describe
