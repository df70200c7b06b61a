"""What a generator may offer beyond ``base.Generator``: a review, and notes.

- ``Reviewer``: a generator with ``review(spec, files) -> Review`` is asked for a verdict
  after static validation passes (the model generators; the template has none and keeps
  the static score). A score below the pipeline's threshold fails the iteration with the
  review's issues as diagnostics.
- ``NotedResult``: a GenerationResult that also carries diagnostics about the answer
  itself (a cut-off answer, malformed tool input): the pipeline adds them to the
  iteration's diagnostics, so the next iteration's request tells the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from server.domain.results import Diagnostic, TokenUsage
from server.domain.spec import PluginSpec
from server.domain.states import Phase
from server.generators.base import GenerationResult

__all__ = ["NotedResult", "Review", "ReviewIssue", "Reviewer", "review_diagnostics"]

MAX_REVIEW_ISSUES = 30


@dataclass(frozen=True)
class ReviewIssue:
    message: str
    file: str = ""
    line: int = 0
    severity: str = "major"  # "critical" | "major" | "minor"


@dataclass(frozen=True)
class Review:
    """A structured verdict. ``usable`` is False when no verdict could be had (the
    answer was cut off or malformed): then ``note`` says why and the score is ignored."""

    score: int  # 0-100
    production_ready: bool
    issues: tuple[ReviewIssue, ...] = ()
    usage: TokenUsage = field(default_factory=TokenUsage)
    usable: bool = True
    note: str = ""


@runtime_checkable
class Reviewer(Protocol):
    async def review(self, spec: PluginSpec, files: Mapping[str, str]) -> Review:
        """Judge the plugin's files. Raises GeneratorError like ``generate``."""
        ...


@dataclass(frozen=True)
class NotedResult(GenerationResult):
    notes: tuple[Diagnostic, ...] = ()


def review_diagnostics(review: Review, threshold: int) -> list[Diagnostic]:
    """The diagnostics of a failing review: the score, then each issue (capped)."""
    head = Diagnostic(
        Phase.VALIDATING,
        f"review score {review.score} is below the threshold {threshold}"
        + ("" if review.production_ready else " (not production ready)")
        + "; fix the issues below",
        code="review",
    )
    found = [head]
    for issue in review.issues[:MAX_REVIEW_ISSUES]:
        found.append(
            Diagnostic(
                Phase.VALIDATING,
                f"[{issue.severity}] {issue.message}",
                file=issue.file,
                line=max(0, issue.line),
                code="review",
            )
        )
    return found
