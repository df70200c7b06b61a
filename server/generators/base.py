"""What every generator (template, anthropic, openai-compatible) implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from server.domain.results import Diagnostic, TokenUsage
from server.domain.spec import PluginSpec

__all__ = ["GenerationRequest", "GenerationResult", "Generator", "GeneratorError"]


@dataclass(frozen=True)
class GenerationRequest:
    spec: PluginSpec
    iteration: int  # 1-based
    # The workspace's current sources (workspace-relative path -> content); empty on
    # iteration 1. Only files that matter (src/, package.json, README.md), never
    # node_modules or build output.
    current_files: dict[str, str] = field(default_factory=dict)
    # The parsed problems of the previous iteration, empty on iteration 1.
    diagnostics: tuple[Diagnostic, ...] = ()


@dataclass(frozen=True)
class GenerationResult:
    files: dict[str, str]  # path -> full new content; paths are checked by the workspace
    deleted: tuple[str, ...] = ()
    usage: TokenUsage = field(default_factory=TokenUsage)


class GeneratorError(Exception):
    """The generator cannot go on (no key, rejected key, retry budget spent).

    ``reason`` is a stable UPPER_SNAKE code shown on the job's error.
    """

    def __init__(self, message: str, *, reason: str = "GENERATOR_FAILED") -> None:
        super().__init__(message)
        self.reason = reason


class Generator(Protocol):
    name: str

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Write (or rewrite) the plugin's files. Raises GeneratorError."""
        ...
