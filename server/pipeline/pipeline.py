"""The generate -> build -> lint -> test -> validate loop of one job, then packaging.

SETUP makes a fresh workspace (``workspace_root/<job_id>``), links the shared toolchain
into it, writes the baseline (package.json from the merge policy, configs that fit the
toolchain) and installs the spec's extra dependencies. Each iteration then generates,
writes (rejected paths become diagnostics), and runs the checks in the sandbox, calling
the tools' entry points directly:

- BUILDING: ``tsc`` with declaration emit into ``.auton8n/types`` (type errors and
  declaration-emit errors in one pass), then ``tsup --no-dts`` (the build script's tool;
  d.ts generation would repeat the compiler's work: measured 2.7 s vs 0.6 s).
- LINTING: ``biome check --write`` (safe fixes and formatting applied; what remains fails).
- TESTING: ``vitest run`` with the JSON reporter.
- VALIDATING: ``validate_static`` (expected exports, no stubs); then, when everything
  else passed and the generator is a ``Reviewer``, its review: a score below
  ``review_threshold`` fails the iteration with the review's issues as diagnostics (an
  unusable review - cut off or malformed - is logged and the static result stands).

A failing type check skips only the build; lint, tests and validation still run so the
next iteration gets every problem at once (a model call costs far more than ~2 s of
checks). A step whose output cannot be parsed still reports its output's excerpt.

Cancellation is never caught: the runner kills the running command's process group and
``finally`` removes the workspace. Known failures end in a PipelineOutcome with a stable
``failure_reason``; anything else propagates to the worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from server.domain.results import Diagnostic, IterationRecord, TestResults, TokenUsage
from server.domain.spec import PluginSpec
from server.domain.states import Phase
from server.generators.base import GenerationRequest, Generator, GeneratorError
from server.generators.review import NotedResult, Reviewer, review_diagnostics
from server.pipeline import checks
from server.pipeline.packaging import build_artifact
from server.pipeline.process import (
    CommandResult,
    CommandRunner,
    HostRunner,
    SandboxError,
    SandboxLimits,
)
from server.pipeline.reporter import JobReporter
from server.pipeline.toolchain import Toolchain, ToolchainError, Tools
from server.pipeline.workspace import PackagePolicy, Workspace, WorkspaceLimits, WriteReport

__all__ = ["Pipeline", "PipelineOutcome"]

_T = TypeVar("_T")
REPORT_DIR = ".auton8n"
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_MAX_DIAGNOSTICS_PER_STEP = 30
DEFAULT_REVIEW_THRESHOLD = 70
_SETUP_END = 5  # progress after SETUP; iterations share 5..95, PACKAGING 95..100
# Where each phase starts inside one iteration's progress slice.
_PHASE_OFFSET = {
    Phase.GENERATING: 0.0,
    Phase.BUILDING: 0.4,
    Phase.LINTING: 0.6,
    Phase.TESTING: 0.7,
    Phase.VALIDATING: 0.9,
}
_SCRIPTS = {
    "build": "tsup",
    "typecheck": "tsc --noEmit",
    "lint": "biome check .",
    "format": "biome format --write .",
    "test": "vitest run",
}


@dataclass(frozen=True)
class PipelineOutcome:
    succeeded: bool
    iteration: int  # the last iteration run
    artifact: bytes | None
    sha256: str
    test_results: TestResults | None
    validation_score: int  # 0-100
    diagnostics: tuple[Diagnostic, ...]  # of the last iteration
    usage: TokenUsage
    failure_reason: str = ""  # stable code: ITERATIONS_EXHAUSTED, GENERATOR_FAILED, ...
    failure_message: str = ""


@dataclass
class _Checked:
    """What the checks of one iteration found."""

    passed: bool = True
    diagnostics: list[Diagnostic] = field(default_factory=list)
    test_results: TestResults | None = None
    score: int = 0
    timings: list[str] = field(default_factory=list)
    usage: TokenUsage = field(default_factory=TokenUsage)  # of the review, if any


def package_policy(spec: PluginSpec, toolchain: Toolchain) -> PackagePolicy:
    """package.json rules for ``spec``: the toolchain's versions win over the spec's."""
    parameters = {
        v.name: {"type": "string", "description": v.description}
        | {"required": v.required, "sensitive": v.sensitive}
        for v in spec.environment_variables
    }
    dist = {"types": "./dist/index.d.ts", "default": "./dist/index.js"}
    base = {
        "description": spec.description,
        "main": "dist/index.js",
        "module": "dist/index.js",
        "types": "dist/index.d.ts",
        "exports": {"./package.json": "./package.json", ".": {"import": dist}},
        "files": ["dist"],
        "keywords": ["elizaos", "elizaos-plugin"],
        "agentConfig": {"pluginType": "elizaos:plugin:1.0.0", "pluginParameters": parameters},
    }
    return PackagePolicy(
        name=spec.name,
        version=spec.package_version,
        dependencies={**dict(sorted(spec.dependencies.items())), **toolchain.dependencies},
        dev_dependencies=toolchain.dev_dependencies,
        scripts=_SCRIPTS,
        base=base,
    )


class Pipeline:
    def __init__(
        self,
        *,
        runner: CommandRunner,
        toolchain: Toolchain,
        workspace_root: Path,
        limits: SandboxLimits,
        expected_exports: Callable[[PluginSpec], dict[str, str]],
        install_runner: CommandRunner | None = None,
        workspace_limits: WorkspaceLimits | None = None,
        review_threshold: int = DEFAULT_REVIEW_THRESHOLD,
    ) -> None:
        """``runner`` runs generated code (the sandbox); ``install_runner`` runs npm for
        the spec's extra dependencies (default: a HostRunner, network, scrubbed env);
        ``review_threshold`` is the lowest passing review score (0-100)."""
        self.runner = runner
        self.toolchain = toolchain
        self.workspace_root = workspace_root
        self.limits = limits
        self.expected_exports = expected_exports
        self.install_runner = install_runner or HostRunner(limits)
        self.workspace_limits = workspace_limits or WorkspaceLimits()
        self.review_threshold = review_threshold

    async def run(
        self,
        *,
        job_id: str,
        spec: PluginSpec,
        generator: Generator,
        max_iterations: int,
        reporter: JobReporter,
        resume_from: IterationRecord | None = None,
    ) -> PipelineOutcome:
        """Run the job to an outcome. Raises only CancelledError and unexpected errors;
        the workspace is removed in every case."""
        if not _JOB_ID.match(job_id):
            raise ValueError(f"unsafe job id {job_id!r}")
        workspace = Workspace(
            self.workspace_root / job_id,
            policy=package_policy(spec, self.toolchain),
            limits=self.workspace_limits,
        )
        job = _Run(self, workspace, spec, generator, max_iterations, reporter)
        try:
            return await job.run(resume_from)
        except (GeneratorError, SandboxError, ToolchainError) as exc:
            return job.failed(exc.reason, str(exc))
        finally:
            await workspace.remove()


class _Run:
    """One run of the pipeline for one job: its state and its steps."""

    def __init__(
        self,
        pipeline: Pipeline,
        workspace: Workspace,
        spec: PluginSpec,
        generator: Generator,
        max_iterations: int,
        reporter: JobReporter,
    ) -> None:
        self.p = pipeline
        self.workspace = workspace
        self.spec = spec
        self.generator = generator
        self.max_iterations = max_iterations
        self.reporter = reporter
        self.iteration = 0
        self.usage = TokenUsage()
        self.checked: _Checked | None = None
        self.diagnostics: tuple[Diagnostic, ...] = ()

    async def run(self, resume_from: IterationRecord | None) -> PipelineOutcome:
        await self.reporter.phase(Phase.SETUP, iteration=0, progress=0, message="workspace")
        setup_s = await self.setup()
        await self.reporter.log(f"workspace ready in {setup_s:.2f}s (toolchain linked)")
        tools = await self.p.toolchain.tools()
        first = 1
        if resume_from is not None:
            await self.workspace.write_files(resume_from.files)
            first = resume_from.iteration + 1
            self.iteration, self.diagnostics = resume_from.iteration, resume_from.diagnostics
            if resume_from.passed:  # it stopped before packaging: verify, then package
                self.checked = await self.check(tools)
                if self.checked.passed:
                    return await self.package()
                self.diagnostics = tuple(self.checked.diagnostics)
        for iteration in range(first, self.max_iterations + 1):
            self.iteration = iteration
            await self.enter(Phase.GENERATING, f"{self.generator.name} writing files")
            fresh = iteration == 1 and resume_from is None
            current = {} if fresh else await self.workspace.read_sources()
            request = GenerationRequest(self.spec, iteration, current, self.diagnostics)
            result = await self.generator.generate(request)
            self.usage += result.usage
            notes = result.notes if isinstance(result, NotedResult) else ()
            written = await self.workspace.write_files(result.files, result.deleted)
            self.checked = checked = await self.check(tools)
            self.diagnostics = tuple(
                dataclasses.replace(d, iteration=iteration)
                for d in [*notes, *_write_diagnostics(written), *checked.diagnostics]
            )
            record = IterationRecord(
                iteration=iteration,
                files=await self.workspace.read_sources(),
                diagnostics=self.diagnostics,
                test_results=checked.test_results,
                validation_score=checked.score,
                passed=checked.passed,
                usage=result.usage + checked.usage,
            )
            await self.reporter.iteration_finished(record)
            if checked.passed:
                return await self.package()
        message = f"the plugin did not pass its checks in {self.max_iterations} iteration(s)"
        return self.failed("ITERATIONS_EXHAUSTED", message)

    async def setup(self) -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        toolchain, workspace = self.p.toolchain, self.workspace
        await workspace.create()
        await toolchain.link_into(workspace.root)
        assert workspace.policy is not None
        package_json, _ = workspace.policy.render()
        baseline = toolchain.project_files(name=self.spec.name, description=self.spec.description)
        await workspace.write_files({**baseline, "package.json": package_json})
        if self.spec.dependencies:
            await toolchain.install_extra(
                workspace.root, self.spec.dependencies, self.p.install_runner
            )
        return loop.time() - started

    async def enter(self, phase: Phase, message: str = "") -> None:
        width = (95 - _SETUP_END) / max(self.max_iterations, 1)
        progress = int(_SETUP_END + width * (self.iteration - 1 + _PHASE_OFFSET[phase]))
        await self.reporter.phase(
            phase, iteration=self.iteration, progress=progress, message=message
        )

    async def package(self) -> PipelineOutcome:
        await self.reporter.phase(Phase.PACKAGING, iteration=self.iteration, progress=95)
        await self.workspace.remove_heavy()
        artifact, sha256 = await build_artifact(self.workspace)
        message = f"artifact: {len(artifact)} bytes, sha256 {sha256}"
        await self.reporter.phase(
            Phase.PACKAGING, iteration=self.iteration, progress=100, message=message
        )
        checked = self.checked or _Checked()
        return PipelineOutcome(
            succeeded=True,
            iteration=self.iteration,
            artifact=artifact,
            sha256=sha256,
            test_results=checked.test_results,
            validation_score=checked.score,
            diagnostics=self.diagnostics,
            usage=self.usage,
        )

    def failed(self, reason: str, message: str) -> PipelineOutcome:
        checked = self.checked
        return PipelineOutcome(
            succeeded=False,
            iteration=self.iteration,
            artifact=None,
            sha256="",
            test_results=checked.test_results if checked else None,
            validation_score=checked.score if checked else 0,
            diagnostics=self.diagnostics,
            usage=self.usage,
            failure_reason=reason,
            failure_message=message,
        )

    async def check(self, tools: Tools) -> _Checked:
        """Build, lint, test and validate the workspace as it is, in the sandbox."""
        out = _Checked()
        ws = self.workspace.root
        reports = ws / REPORT_DIR
        await asyncio.to_thread(shutil.rmtree, reports, True)  # never read a stale report
        await asyncio.to_thread(reports.mkdir)

        async def run(name: str, argv: Sequence[str]) -> CommandResult:
            result = await self.p.runner.run(argv, cwd=ws, timeout_s=self.p.limits.timeout_s)
            verdict = "timed out" if result.timed_out else ("ok" if result.ok else "failed")
            out.timings.append(f"{name} {result.duration_s:.2f}s {verdict}")
            out.passed = out.passed and result.ok
            return result

        await self.enter(Phase.BUILDING)
        tsc = await run("tsc", tools.typecheck(f"{REPORT_DIR}/types"))
        _add(out, "tsc", tsc, Phase.BUILDING, checks.parse_tsc(tsc.output, ws))
        if tsc.ok:
            _add(out, "tsup", await run("tsup", tools.build()), Phase.BUILDING, [])

        await self.enter(Phase.LINTING)
        lint = await run("biome", tools.lint(f"{REPORT_DIR}/biome-report.json"))
        found = await _parse_file(reports / "biome-report.json", checks.parse_biome, ws)
        _add(out, "biome", lint, Phase.LINTING, found or [])

        await self.enter(Phase.TESTING)
        tests = await run("vitest", tools.test(f"{REPORT_DIR}/vitest-report.json"))
        results = await _parse_file(reports / "vitest-report.json", checks.parse_vitest, ws)
        out.test_results = results
        failures = checks.failure_diagnostics(results) if results else []
        if results is not None and results.total == 0:
            out.passed = False
            no_tests = "no tests ran: add vitest tests (src/**/*.test.ts)"
            failures.append(Diagnostic(Phase.TESTING, no_tests, code="test"))
        _add(out, "vitest", tests, Phase.TESTING, failures)

        await self.enter(Phase.VALIDATING)
        files = await self.workspace.read_sources()
        static, out.score = checks.validate_static(self.spec, files, self.p.expected_exports)
        out.passed = out.passed and not static
        out.diagnostics.extend(_capped(static))
        if out.passed and isinstance(self.generator, Reviewer):
            await self.review(self.generator, out, files)
        summary = f"{results.passed} passed, {results.failed} failed" if results else "no report"
        await self.reporter.log(
            f"iteration {self.iteration} checks: {', '.join(out.timings)}; tests {summary}; "
            f"validation {out.score}"
        )
        return out

    async def review(self, reviewer: Reviewer, out: _Checked, files: dict[str, str]) -> None:
        """Ask the generator's review; a score below the threshold fails the iteration."""
        await self.enter(Phase.VALIDATING, "review")
        review = await reviewer.review(self.spec, files)
        out.usage = review.usage
        self.usage += review.usage
        threshold = self.p.review_threshold
        if not review.usable:
            await self.reporter.log(f"review: {review.note}; the static validation stands")
            return
        out.score = review.score
        verdict = "passed" if review.score >= threshold else "failed"
        await self.reporter.log(
            f"review {verdict}: score {review.score} (threshold {threshold}), "
            f"{len(review.issues)} issue(s), production ready: {review.production_ready}"
        )
        if review.score < threshold:
            out.passed = False
            out.diagnostics.extend(review_diagnostics(review, threshold))


def _capped(found: Sequence[Diagnostic]) -> list[Diagnostic]:
    if len(found) <= _MAX_DIAGNOSTICS_PER_STEP:
        return list(found)
    kept = list(found[:_MAX_DIAGNOSTICS_PER_STEP])
    more = len(found) - len(kept)
    kept.append(
        dataclasses.replace(found[-1], message=f"... and {more} more", file="", line=0, column=0)
    )
    return kept


def _add(
    out: _Checked, tool: str, result: CommandResult, phase: Phase, parsed: Sequence[Diagnostic]
) -> None:
    """Parsed diagnostics; the output's excerpt when a failed step yielded none."""
    out.diagnostics.extend(_capped(parsed))
    if result.ok or parsed:
        return
    if result.timed_out:
        what = f"timed out after {result.duration_s:.0f}s"
    else:
        what = f"exit {result.exit_code}"
    message = f"{tool} failed ({what}):\n{checks.excerpt(result.output)}"
    out.diagnostics.append(Diagnostic(phase, message, code="command"))


async def _parse_file(path: Path, parse: Callable[[str, Path], _T], workspace: Path) -> _T | None:
    try:
        text = await asyncio.to_thread(path.read_text, "utf-8", "replace")
        return parse(text, workspace)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_diagnostics(report: WriteReport) -> list[Diagnostic]:
    rejected = [
        Diagnostic(Phase.GENERATING, f"not written: {r.reason}", file=r.path, code="path-rejected")
        for r in report.rejected
    ]
    notes = [
        Diagnostic(Phase.GENERATING, note, file="package.json", code="package-policy")
        for note in report.notes
    ]
    return rejected + notes
