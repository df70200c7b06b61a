"""Typed outcomes of the pipeline's steps, as stored on the job and sent on the wire."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from server.domain.states import Phase

__all__ = ["Diagnostic", "IterationRecord", "TestCase", "TestResults", "TokenUsage"]


@dataclass(frozen=True)
class Diagnostic:
    """One concrete problem found by a step: a compiler error, a lint finding, a failing
    test, a static-validation or review issue. ``file`` is workspace-relative."""

    phase: Phase
    message: str
    file: str = ""
    line: int = 0
    column: int = 0
    code: str = ""  # e.g. "TS2322", "lint/suspicious/noExplicitAny", "test", "validate"
    iteration: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Diagnostic:
        return cls(**{**data, "phase": Phase(data["phase"])})

    def render(self) -> str:
        """``file:line:col code message``, the form prompts and logs use."""
        where = self.file
        if self.line:
            where += f":{self.line}" + (f":{self.column}" if self.column else "")
        head = " ".join(x for x in (where, self.code) if x)
        return f"{head} {self.message}" if head else self.message


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # not a pytest class

    name: str  # full name: "describe > it"
    status: str  # "passed" | "failed" | "skipped"
    message: str = ""  # the assertion message of a failure
    file: str = ""
    duration_ms: float = 0.0


@dataclass(frozen=True)
class TestResults:
    __test__ = False

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    cases: tuple[TestCase, ...] = ()

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "skipped": self.skipped,
            "cases": [asdict(c) for c in self.cases],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TestResults:
        return cls(
            passed=data.get("passed", 0),
            failed=data.get("failed", 0),
            skipped=data.get("skipped", 0),
            cases=tuple(TestCase(**c) for c in data.get("cases", ())),
        )


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.cost_usd + other.cost_usd,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IterationRecord:
    """What one generate->validate iteration produced; persisted so a job can resume."""

    iteration: int
    files: dict[str, str]  # workspace-relative path -> content, the generated sources
    diagnostics: tuple[Diagnostic, ...] = ()
    test_results: TestResults | None = None
    validation_score: int = 0
    passed: bool = False
    usage: TokenUsage = field(default_factory=TokenUsage)
