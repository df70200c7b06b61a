"""Which generator serves a job's ``model`` string."""

from __future__ import annotations

from collections.abc import Callable

from server.generators.base import Generator

__all__ = ["GeneratorRegistry", "UnknownModel"]


class UnknownModel(ValueError):
    """No generator is configured for the model; the message says what is."""


class GeneratorRegistry:
    """Maps a model string to a generator.

    ``exact`` names (e.g. "template") match whole; ``prefixes`` (e.g. "claude-",
    "openai:") match the start, so model ids stay opaque strings.
    """

    def __init__(self) -> None:
        self._exact: dict[str, Callable[[str], Generator]] = {}
        self._prefixes: dict[str, Callable[[str], Generator]] = {}

    def add_exact(self, name: str, factory: Callable[[str], Generator]) -> None:
        self._exact[name] = factory

    def add_prefix(self, prefix: str, factory: Callable[[str], Generator]) -> None:
        self._prefixes[prefix] = factory

    def _factory(self, model: str) -> Callable[[str], Generator]:
        if model in self._exact:
            return self._exact[model]
        for prefix, factory in self._prefixes.items():
            if model.startswith(prefix):
                return factory
        known = sorted(self._exact) + [p + "*" for p in sorted(self._prefixes)]
        raise UnknownModel(f"no generator for model {model!r}; available: {', '.join(known)}")

    def chain(self, fallback: GeneratorRegistry) -> GeneratorRegistry:
        """A registry that tries this one's names first, then ``fallback``'s."""
        merged = GeneratorRegistry()
        merged._exact = {**fallback._exact, **self._exact}
        merged._prefixes = {**self._prefixes, **fallback._prefixes}
        return merged

    def check(self, model: str) -> None:
        """Raise UnknownModel unless some generator serves ``model``."""
        self._factory(model)

    def resolve(self, model: str) -> Generator:
        return self._factory(model)(model)
