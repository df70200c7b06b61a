"""The pipeline end to end: real toolchain, real sandbox, small generators at the seam."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from server.domain.results import Diagnostic, IterationRecord, TokenUsage
from server.domain.spec import ActionSpec, PluginSpec, ProviderSpec, ServiceSpec
from server.domain.states import Phase
from server.generators.base import GenerationRequest, GenerationResult, GeneratorError
from server.generators.template import TemplateGenerator, expected_exports
from server.pipeline.pipeline import Pipeline, PipelineOutcome
from server.pipeline.process import CommandResult, HostRunner, SandboxLimits
from server.pipeline.sandbox import BubblewrapRunner
from server.pipeline.toolchain import Toolchain, ToolchainError
from tests.conftest import TOOLCHAIN_DIR

pytestmark = pytest.mark.e2e

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "plugin_time"
SPEC = PluginSpec(
    name="@acme/plugin-time",
    description="Tells the time",
    actions=(ActionSpec("GET_TIME", "Returns the current time"),),
    providers=(ProviderSpec("TIME", "The current time"),),
)
FIXTURE_EXPORTS = {
    "src/index.ts": "timePlugin",
    "src/actions/getTime.ts": "getTimeAction",
    "src/providers/timeProvider.ts": "timeProvider",
}
ACTION = "src/actions/getTime.ts"
TYPE_ERROR = 'return { success: "yes", text: `The time is ${now}`, data: { now } };'


def fixture_files() -> dict[str, str]:
    return {p.relative_to(FIXTURE).as_posix(): p.read_text() for p in FIXTURE.rglob("*.ts")}


def with_type_error() -> dict[str, str]:
    files = fixture_files()
    good = "return { success: true, text: `The time is ${now}`, data: { now } };"
    assert good in files[ACTION]
    files[ACTION] = files[ACTION].replace(good, TYPE_ERROR)
    return files


class Recorder:
    """A JobReporter that remembers every call."""

    def __init__(self, on_phase: Callable[[Phase], None] | None = None) -> None:
        self.phases: list[tuple[Phase, int, int, str]] = []
        self.logs: list[str] = []
        self.records: list[IterationRecord] = []
        self._on_phase = on_phase

    async def phase(
        self, phase: Phase, *, iteration: int, progress: int, message: str = ""
    ) -> None:
        self.phases.append((phase, iteration, progress, message))
        if self._on_phase:
            self._on_phase(phase)

    async def log(self, message: str) -> None:
        self.logs.append(message)

    async def iteration_finished(self, record: IterationRecord) -> None:
        self.records.append(record)


class Scripted:
    """A generator answering each iteration from a list; records its requests."""

    name = "scripted"

    def __init__(self, *answers: dict[str, str]) -> None:
        self.answers = list(answers)
        self.requests: list[GenerationRequest] = []

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        self.requests.append(request)
        files = self.answers[min(len(self.requests), len(self.answers)) - 1]
        return GenerationResult(files=files, usage=TokenUsage(input_tokens=100, output_tokens=10))


@pytest.fixture(scope="module")
def toolchain() -> Toolchain:
    tc = Toolchain(TOOLCHAIN_DIR)
    asyncio.run(tc.ensure())
    return tc


@pytest.fixture
def workspace_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="auton8n-pipeline-test-"))
    root.chmod(0o755)  # sandboxes of a root test process run as nobody
    yield root
    shutil.rmtree(root)


def make_pipeline(
    toolchain: Toolchain,
    root: Path,
    exports: Callable[[PluginSpec], dict[str, str]] = lambda _spec: dict(FIXTURE_EXPORTS),
) -> Pipeline:
    limits = SandboxLimits(timeout_s=120)
    return Pipeline(
        runner=BubblewrapRunner(toolchain.root, limits),
        toolchain=toolchain,
        workspace_root=root,
        limits=limits,
        expected_exports=exports,
    )


def artifact_names(outcome: PipelineOutcome) -> set[str]:
    assert outcome.artifact is not None
    with tarfile.open(fileobj=io.BytesIO(outcome.artifact), mode="r:gz") as tar:
        return set(tar.getnames())


def report_timings(label: str, recorder: Recorder) -> None:
    print(f"\n[{label}]")
    for line in recorder.logs:
        print(f"  {line}")


def processes_in(root: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd").startswith(str(root)):
                    found.append(int(entry))
            except OSError:
                continue
    return found


async def test_template_plugin_succeeds_first_iteration(
    toolchain: Toolchain, workspace_root: Path
) -> None:
    spec = PluginSpec(
        name="@acme/plugin-clock",
        description="Clock helpers",
        actions=(ActionSpec("getTime", "Gets the time", {"timezone": "string"}),),
        providers=(ProviderSpec("timeProvider", "The time", {"now": "string"}),),
        services=(ServiceSpec("ClockService", "A clock", ("now",)),),
        dependencies={"@elizaos/core": "^1.7.0"},  # provided by the toolchain: no install
    )
    recorder = Recorder()
    started = time.monotonic()
    outcome = await make_pipeline(toolchain, workspace_root, expected_exports).run(
        job_id="job-template",
        spec=spec,
        generator=TemplateGenerator(),
        max_iterations=5,
        reporter=recorder,
    )
    report_timings(f"template plugin, total {time.monotonic() - started:.2f}s", recorder)
    assert outcome.succeeded, [d.render() for d in outcome.diagnostics]
    assert (outcome.iteration, outcome.validation_score, outcome.failure_reason) == (1, 100, "")
    assert outcome.test_results is not None and outcome.test_results.failed == 0
    assert outcome.test_results.passed > 5
    progress = [p for _, _, p, _ in recorder.phases]
    assert progress == sorted(progress) and progress[-1] == 100
    assert [p for p, *_ in recorder.phases] == [
        Phase.SETUP,
        Phase.GENERATING,
        Phase.BUILDING,
        Phase.LINTING,
        Phase.TESTING,
        Phase.VALIDATING,
        Phase.PACKAGING,
        Phase.PACKAGING,
    ]
    (record,) = recorder.records
    assert record.passed and "src/index.ts" in record.files
    names = artifact_names(outcome)
    assert "plugin-clock/src/actions/getTime.ts" in names
    assert "plugin-clock/package.json" in names
    assert not any("node_modules" in n or "/dist" in n or ".auton8n" in n for n in names)
    assert os.listdir(workspace_root) == []  # the workspace is gone


async def test_type_error_is_fed_back_and_fixed_in_iteration_two(
    toolchain: Toolchain, workspace_root: Path
) -> None:
    generator = Scripted(with_type_error(), fixture_files())
    recorder = Recorder()
    outcome = await make_pipeline(toolchain, workspace_root).run(
        job_id="job-repair",
        spec=SPEC,
        generator=generator,
        max_iterations=3,
        reporter=recorder,
    )
    report_timings("type error, then fixed", recorder)
    assert outcome.succeeded and outcome.iteration == 2
    first, second = generator.requests
    assert first.iteration == 1 and first.current_files == {} and first.diagnostics == ()
    line = with_type_error()[ACTION].splitlines().index(f"    {TYPE_ERROR}") + 1
    tsc = [d for d in second.diagnostics if d.code.startswith("TS")]
    assert tsc, second.diagnostics
    assert (tsc[0].file, tsc[0].line, tsc[0].code, tsc[0].phase) == (
        ACTION,
        line,
        "TS2322",
        Phase.BUILDING,
    )
    assert "not assignable to type 'boolean'" in tsc[0].message
    assert tsc[0].iteration == 1
    assert second.current_files[ACTION] == with_type_error()[ACTION]
    assert [r.passed for r in recorder.records] == [False, True]
    assert outcome.usage.input_tokens == 200
    progress = [p for _, _, p, _ in recorder.phases]
    assert progress == sorted(progress) and progress[-1] == 100


async def test_failing_tests_exhaust_the_budget_with_names_and_messages(
    toolchain: Toolchain, workspace_root: Path
) -> None:
    files = fixture_files()
    files["src/__tests__/extra.test.ts"] = (
        'import { describe, expect, it } from "vitest";\n'
        'import { getTimeAction } from "../actions/getTime";\n\n'
        'describe("extra", () => {\n'
        '  it("has the right name", () => {\n'
        '    expect(getTimeAction.name).toBe("CURRENT_TIME");\n'
        "  });\n"
        "});\n"
    )
    outcome = await make_pipeline(toolchain, workspace_root).run(
        job_id="job-fail",
        spec=SPEC,
        generator=Scripted(files),
        max_iterations=1,
        reporter=Recorder(),
    )
    assert not outcome.succeeded and outcome.artifact is None
    assert outcome.failure_reason == "ITERATIONS_EXHAUSTED"
    assert outcome.test_results is not None and outcome.test_results.failed == 1
    (failure,) = [d for d in outcome.diagnostics if d.code == "test"]
    assert failure.file == "src/__tests__/extra.test.ts"
    assert failure.message.startswith("extra > has the right name: AssertionError: expected")
    assert "'GET_TIME' to be 'CURRENT_TIME'" in failure.message
    assert os.listdir(workspace_root) == []


async def test_rejected_paths_become_diagnostics(
    toolchain: Toolchain, workspace_root: Path
) -> None:
    files = {
        **fixture_files(),
        "../escape.ts": "export {};\n",
        "node_modules/vitest/index.ts": "export {};\n",
    }
    outcome = await make_pipeline(toolchain, workspace_root).run(
        job_id="job-paths",
        spec=SPEC,
        generator=Scripted(files),
        max_iterations=1,
        reporter=Recorder(),
    )
    assert outcome.succeeded
    rejected = {d.file for d in outcome.diagnostics if d.code == "path-rejected"}
    assert rejected == {"../escape.ts", "node_modules/vitest/index.ts"}
    assert not (workspace_root / "escape.ts").exists()


async def test_resume_continues_from_the_stored_iteration(
    toolchain: Toolchain, workspace_root: Path
) -> None:
    stored = IterationRecord(
        iteration=2,
        files=with_type_error(),
        diagnostics=(
            Diagnostic(Phase.BUILDING, "stored diagnostic", file=ACTION, line=14, code="TS2322"),
        ),
    )
    generator = Scripted(fixture_files())
    outcome = await make_pipeline(toolchain, workspace_root).run(
        job_id="job-resume",
        spec=SPEC,
        generator=generator,
        max_iterations=5,
        reporter=Recorder(),
        resume_from=stored,
    )
    assert outcome.succeeded and outcome.iteration == 3
    (request,) = generator.requests
    assert request.iteration == 3
    assert request.diagnostics == stored.diagnostics
    assert request.current_files[ACTION] == stored.files[ACTION]


async def test_generator_error_is_an_outcome(toolchain: Toolchain, workspace_root: Path) -> None:
    class Broken:
        name = "broken"

        async def generate(self, request: GenerationRequest) -> GenerationResult:
            raise GeneratorError("no API key", reason="MODEL_KEY_MISSING")

    outcome = await make_pipeline(toolchain, workspace_root).run(
        job_id="job-broken",
        spec=SPEC,
        generator=Broken(),
        max_iterations=3,
        reporter=Recorder(),
    )
    assert (outcome.succeeded, outcome.failure_reason, outcome.iteration) == (
        False,
        "MODEL_KEY_MISSING",
        1,
    )
    assert outcome.failure_message == "no API key"
    assert os.listdir(workspace_root) == []


async def test_invalid_extra_dependency_fails_setup(
    toolchain: Toolchain, workspace_root: Path
) -> None:
    spec = PluginSpec(name="@acme/plugin-time", dependencies={"evil": "git+ssh://host/x.git"})
    generator = Scripted(fixture_files())
    outcome = await make_pipeline(toolchain, workspace_root).run(
        job_id="job-deps",
        spec=spec,
        generator=generator,
        max_iterations=1,
        reporter=Recorder(),
    )
    assert outcome.failure_reason == "DEPENDENCY_INSTALL_FAILED"
    assert "evil@git+ssh://host/x.git" in outcome.failure_message
    assert generator.requests == []


async def test_extra_dependency_is_installed_without_scripts_and_resolves_in_sandbox(
    toolchain: Toolchain, workspace_root: Path
) -> None:
    """Needs the npm registry (or a warm npm cache) for dayjs 1.11.13 (no dependencies)."""
    files = fixture_files()
    files["src/format.ts"] = (
        'import dayjs from "dayjs";\n\n'
        'export const formatDay = (iso: string): string => dayjs(iso).format("YYYY-MM-DD");\n'
    )
    files["src/__tests__/format.test.ts"] = (
        'import { describe, expect, it } from "vitest";\n'
        'import { formatDay } from "../format";\n\n'
        'describe("formatDay", () => {\n'
        '  it("formats", () => {\n'
        '    expect(formatDay("2024-02-29T12:00:00Z")).toBe("2024-02-29");\n'
        "  });\n"
        "});\n"
    )
    spec = PluginSpec(name="@acme/plugin-time", dependencies={"dayjs": "1.11.13"})
    recorder = Recorder()
    outcome = await make_pipeline(toolchain, workspace_root).run(
        job_id="job-dayjs",
        spec=spec,
        generator=Scripted(files),
        max_iterations=1,
        reporter=recorder,
    )
    report_timings("extra dependency dayjs", recorder)
    if outcome.failure_reason == "DEPENDENCY_INSTALL_FAILED":
        pytest.skip(f"npm registry unreachable: {outcome.failure_message[:200]}")
    assert outcome.succeeded, [d.render() for d in outcome.diagnostics]
    assert outcome.test_results is not None and outcome.test_results.passed == 5
    assert not any(".deps" in n for n in artifact_names(outcome))


async def test_cancellation_kills_the_running_step_and_removes_the_workspace(
    toolchain: Toolchain, workspace_root: Path
) -> None:
    files = fixture_files()
    files["src/__tests__/hang.test.ts"] = (
        'import { it } from "vitest";\n\n'
        'it("hangs", async () => {\n'
        "  await new Promise((resolve) => setTimeout(resolve, 600_000));\n"
        "}, 700_000);\n"
    )
    testing = asyncio.Event()

    def on_phase(phase: Phase) -> None:
        if phase is Phase.TESTING:
            testing.set()

    recorder = Recorder(on_phase=on_phase)
    task = asyncio.create_task(
        make_pipeline(toolchain, workspace_root).run(
            job_id="job-cancel",
            spec=SPEC,
            generator=Scripted(files),
            max_iterations=1,
            reporter=recorder,
        )
    )
    await asyncio.wait_for(testing.wait(), 60)
    await asyncio.sleep(1.0)  # vitest is running the hanging test now
    assert processes_in(workspace_root), "vitest should be running"
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 3
    assert processes_in(workspace_root) == []
    assert os.listdir(workspace_root) == []


class CountingRunner:
    """Wraps a real runner and counts the commands it ran (an injected seam)."""

    def __init__(self, inner: HostRunner) -> None:
        self.inner = inner
        self.commands: list[tuple[str, ...]] = []

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        timeout_s: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        self.commands.append(tuple(argv))
        return await self.inner.run(argv, cwd=cwd, timeout_s=timeout_s, env=env)


async def test_toolchain_installs_once_per_lock_hash(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest"
    manifest.mkdir()
    package = {"name": "tiny-toolchain", "version": "1.0.0", "private": True}
    lock = {
        "name": "tiny-toolchain",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "requires": True,
        "packages": {"": {"name": "tiny-toolchain", "version": "1.0.0"}},
    }
    (manifest / "package.json").write_text(json.dumps(package))
    (manifest / "package-lock.json").write_text(json.dumps(lock))
    cache = tmp_path / "cache"
    runner = CountingRunner(HostRunner())
    # Two instances = two "processes": only the file lock serialises them.
    first = Toolchain(cache, manifest, runner=runner, npm_cache_dir=tmp_path / "npm")
    second = Toolchain(cache, manifest, runner=runner, npm_cache_dir=tmp_path / "npm")
    roots = await asyncio.gather(first.ensure(), second.ensure(), first.ensure())
    assert set(roots) == {cache / first.lock_hash}
    assert [c[:2] for c in runner.commands] == [("npm", "ci")]
    assert "--ignore-scripts" in runner.commands[0]
    assert sorted(p.name for p in cache.iterdir()) == [
        f".{first.lock_hash}.lock",
        first.lock_hash,
    ]  # no temp dir left behind
    assert (roots[0] / ".auton8n-complete").read_text().strip() == first.lock_hash
    started = time.monotonic()
    await Toolchain(cache, manifest, runner=runner).ensure()
    assert time.monotonic() - started < 0.1 and len(runner.commands) == 1


async def test_link_farm_is_real_directory_of_links(
    toolchain: Toolchain, workspace_root: Path
) -> None:
    workspace = workspace_root / "ws"
    workspace.mkdir()
    started = time.monotonic()
    await toolchain.link_into(workspace)
    elapsed = time.monotonic() - started
    print(f"\n[link farm] {elapsed * 1000:.1f} ms")
    node_modules = workspace / "node_modules"
    assert node_modules.is_dir() and not node_modules.is_symlink()
    entries = os.listdir(node_modules)
    assert {"@elizaos", "typescript", "vitest", ".bin"} <= set(entries)
    assert all((node_modules / e).is_symlink() for e in entries)
    assert (node_modules / "@elizaos").resolve() == toolchain.node_modules / "@elizaos"
    # Again on the same workspace (a resumed job): what is there stays, the rest is added.
    (node_modules / "typescript").unlink()
    (node_modules / "extra-dep").symlink_to(workspace)  # e.g. an extra dependency's link
    await toolchain.link_into(workspace)
    assert set(os.listdir(node_modules)) == {*entries, "extra-dep"}
    assert (node_modules / "typescript").resolve() == toolchain.node_modules / "typescript"
    assert (node_modules / "extra-dep").resolve() == workspace.resolve()
    # A node_modules that is a link itself is refused, never followed.
    other = workspace_root / "other"
    other.mkdir()
    (other / "node_modules").symlink_to(workspace_root)
    with pytest.raises(ToolchainError):
        await toolchain.link_into(other)
