"""Hostile generated code: a plugin whose tests try to steal the server's API key, write
outside the workspace, reach a host loopback port and fork-bomb. Each attack must fail and
the job must say so.

The generator is injected (``HostileGenerator``): the template's files plus
``src/__tests__/hostile.test.ts``, in two variants:

- ``defended``: every hostile test asserts that its attack *failed* (no key in any
  environment it can read, the host's /tmp invisible, the toolchain read-only, the port
  refused, the process limit hit). It passes only while the sandbox holds, so the job
  SUCCEEDS and its test results list the hostile tests as passed.
- ``attacker``: the same attacks, asserting they *succeeded*. Each hostile test fails, in
  every iteration, and the job FAILS with every test's name and assertion message in its
  errors and test results.

Whatever the plugin claims, the host checks for itself: no escape file exists, the
listener saw no connection, the secret appears nowhere in what the job reports, no
process is left, and the host (and the next sandbox) still starts processes.

Two paths: the pipeline with a fake reporter, and the real gRPC server with the generator
registered under a model name (``App(settings, generators=...)``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from google.rpc import error_details_pb2, status_pb2

from server.app import App
from server.domain.results import IterationRecord
from server.domain.spec import PluginSpec
from server.domain.states import Phase
from server.generators.base import GenerationRequest, GenerationResult
from server.generators.registry import GeneratorRegistry
from server.generators.template import expected_exports, render_plugin
from server.pipeline.pipeline import Pipeline
from server.pipeline.process import SandboxLimits
from server.pipeline.sandbox import BubblewrapRunner
from server.pipeline.toolchain import Toolchain
from tests.conftest import TOOLCHAIN_DIR, load_spec, open_to_sandbox, test_settings
from tests.helpers import create_request, watch_to_end

pytestmark = pytest.mark.e2e

SECRET = "sk-ant-hostile-test"
HOSTILE_TEST = "src/__tests__/hostile.test.ts"
MAX_PROCESSES = 256  # the sandbox's RLIMIT_NPROC in these tests (the server default)
BOMB_TARGET = 1000  # processes the fork bomb tries to start
COMMAND_TIMEOUT_S = 120.0
ITERATIONS = 2  # the attacker variant must fail in each

DEFENDED_TESTS = {
    "env": "hostile > cannot read the server's ANTHROPIC_API_KEY",
    "write": "hostile > cannot write outside its workspace",
    "network": "hostile > cannot connect to the host's loopback listener",
    "fork": "hostile > is stopped by the process limit",
}
# What each failing attacker test reports (its name and a part of its assertion message).
ATTACKER_FAILURES = {
    "env": (
        "hostile > reads the server's ANTHROPIC_API_KEY",
        "ANTHROPIC_API_KEY: expected undefined to be defined",
    ),
    "write": ("hostile > writes outside its workspace", "expected 'EROFS' to be 'written'"),
    "network": (
        "hostile > connects to the host's loopback listener",
        "expected 'ECONNREFUSED' to be 'connected'",
    ),
    "fork": (
        "hostile > spawns 1000 processes",
        "refused after",
    ),
}


@dataclass
class Traps:
    """The host side of the attacks: where escapes would land, what the plugin must not
    see, and a loopback listener that counts connections."""

    workspace_root: Path
    toolchain_modules: Path
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    port: int = 0
    connections: int = 0

    @property
    def name(self) -> str:
        return f"auton8n-escape-{self.token}"

    @property
    def sentinel(self) -> Path:
        """A host file in /tmp: the plugin must not see it (its /tmp is private)."""
        return Path("/tmp") / f"auton8n-sentinel-{self.token}"

    def escapes(self) -> dict[str, Path]:
        """Paths as the plugin writes them (relative to its workspace) -> where a
        successful escape would land on the host."""
        return {
            f"/tmp/{self.name}": Path("/tmp") / self.name,
            f"../../{self.name}": self.workspace_root.parent / self.name,
            f"{self.workspace_root}/{self.name}": self.workspace_root / self.name,
            f"node_modules/typescript/{self.name}": self.toolchain_modules
            / "typescript"
            / self.name,
        }

    def assert_held(self) -> None:
        """Nothing reached the host."""
        landed = [str(p) for p in self.escapes().values() if p.exists()]
        assert landed == [], f"escaped writes reached the host: {landed}"
        assert self.connections == 0, "the sandbox reached the host's loopback listener"
        assert self.sentinel.read_text() == self.token, "the host's sentinel was changed"


@pytest.fixture
def traps_factory() -> Iterator[list[Traps]]:
    """The Traps a test opened (``open_traps``); their files are removed afterwards."""
    made: list[Traps] = []
    yield made
    for traps in made:
        for path in [traps.sentinel, *traps.escapes().values()]:
            path.unlink(missing_ok=True)


async def open_traps(
    made: list[Traps], workspace_root: Path, toolchain_modules: Path
) -> tuple[Traps, asyncio.Server]:
    """New traps: a sentinel file and a listening loopback server (the caller closes it)."""
    traps = Traps(workspace_root, toolchain_modules)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        traps.connections += 1
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    traps.port = server.sockets[0].getsockname()[1]
    traps.sentinel.write_text(traps.token)
    made.append(traps)
    return traps, server


def hostile_test_file(traps: Traps, *, attacker: bool) -> str:
    """The hostile vitest file: the same attacks; ``attacker`` asserts they succeeded,
    otherwise that they failed. Formatted and lint-clean for the template's biome."""
    escapes = list(traps.escapes())
    prelude = f"""\
import {{ type ChildProcess, spawn }} from "node:child_process";
import {{ existsSync, readdirSync, readFileSync, writeFileSync }} from "node:fs";
import {{ connect }} from "node:net";
import {{ describe, expect, it }} from "vitest";

const PORT = {traps.port};
const HOST_SENTINEL = {json.dumps(str(traps.sentinel))};
const ESCAPES: readonly string[] = {json.dumps(escapes)};
const MAX_PROCESSES = {MAX_PROCESSES};
const BOMB_TARGET = {BOMB_TARGET};

/** "written", or the error code of the failed write. */
function tryWrite(path: string): string {{
  try {{
    writeFileSync(path, "escaped\\n");
    return "written";
  }} catch (error) {{
    return String((error as NodeJS.ErrnoException).code);
  }}
}}

/** Every environment this process can read: its own and other processes' (via /proc). */
function visibleEnvironments(): string {{
  const blocks = [JSON.stringify(process.env)];
  for (const pid of readdirSync("/proc").filter((entry) => /^\\d+$/.test(entry))) {{
    try {{
      blocks.push(readFileSync(`/proc/${{pid}}/environ`, "latin1"));
    }} catch {{
      blocks.push("");
    }}
  }}
  return blocks.join("\\n");
}}

/** "connected", "timeout" or the error code. */
function tryConnect(port: number): Promise<string> {{
  return new Promise((resolve) => {{
    const socket = connect({{ host: "127.0.0.1", port }});
    socket.setTimeout(3000, () => {{
      socket.destroy();
      resolve("timeout");
    }});
    socket.once("connect", () => {{
      socket.destroy();
      resolve("connected");
    }});
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(String(error.code)));
  }});
}}

function spawnOne(): Promise<ChildProcess | undefined> {{
  return new Promise((resolve) => {{
    try {{
      const child = spawn("sleep", ["30"], {{ stdio: "ignore" }});
      child.once("spawn", () => resolve(child));
      child.once("error", () => resolve(undefined));
    }} catch {{
      resolve(undefined);
    }}
  }});
}}

function reap(child: ChildProcess): Promise<void> {{
  return new Promise((resolve) => {{
    if (child.exitCode !== null || child.signalCode !== null) {{
      resolve();
      return;
    }}
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  }});
}}

/** Spawns processes in a loop (at most BOMB_TARGET, 5 s, until 3 are refused). */
async function forkBomb(): Promise<{{ started: number; refused: number }}> {{
  const children: ChildProcess[] = [];
  let refused = 0;
  const deadline = Date.now() + 5000;
  try {{
    while (children.length < BOMB_TARGET && refused < 3 && Date.now() < deadline) {{
      const child = await spawnOne();
      if (child === undefined) {{
        refused += 1;
      }} else {{
        children.push(child);
      }}
    }}
  }} finally {{
    await Promise.all(children.map(reap));
  }}
  return {{ started: children.length, refused }};
}}
"""
    if attacker:
        body = f"""
describe("hostile", () => {{
  it("reads the server's ANTHROPIC_API_KEY", () => {{
    expect(process.env.ANTHROPIC_API_KEY, "ANTHROPIC_API_KEY").toBeDefined();
    expect(visibleEnvironments()).toContain("sk-ant-");
  }});

  it("writes outside its workspace", () => {{
    for (const path of ESCAPES.filter((path) => path.startsWith("node_modules/"))) {{
      expect(tryWrite(path), path).toBe("written");
    }}
    expect(existsSync(HOST_SENTINEL), "the host's /tmp").toBe(true);
  }});

  it("connects to the host's loopback listener", async () => {{
    expect(await tryConnect(PORT)).toBe("connected");
  }});

  it("spawns {BOMB_TARGET} processes", async () => {{
    const bomb = await forkBomb();
    expect(bomb.refused, `refused after ${{bomb.started}} processes`).toBe(0);
    expect(bomb.started).toBeGreaterThan(MAX_PROCESSES);
  }}, 30_000);
}});
"""
    else:
        body = """
describe("hostile", () => {
  it("cannot read the server's ANTHROPIC_API_KEY", () => {
    expect(process.env.ANTHROPIC_API_KEY).toBeUndefined();
    expect(visibleEnvironments()).not.toContain("sk-ant-");
  });

  it("cannot write outside its workspace", () => {
    const results = ESCAPES.map((path) => [path, tryWrite(path)] as const);
    for (const [path, result] of results) {
      // The sandbox's /tmp is a private tmpfs: a write there may succeed, but the
      // host's files are invisible (and the host checks that nothing landed).
      if (path.startsWith("node_modules/")) {
        expect(result, path).not.toBe("written");
      }
    }
    expect(existsSync(HOST_SENTINEL), "the host's /tmp").toBe(false);
  });

  it("cannot connect to the host's loopback listener", async () => {
    expect(await tryConnect(PORT)).not.toBe("connected");
  });

  it("is stopped by the process limit", async () => {
    const bomb = await forkBomb();
    expect(bomb.refused).toBeGreaterThan(0);
    expect(bomb.started).toBeLessThan(MAX_PROCESSES);
  }, 30_000);
});
"""
    return prelude + body


def hostile_generator(tests: str, model: str) -> HostileGenerator:
    """A registry factory: the hostile generator named after the job's model."""
    return HostileGenerator(tests, model)


class HostileGenerator:
    """The template's plugin plus the hostile test file, on every iteration."""

    def __init__(self, tests: str, name: str = "hostile") -> None:
        self.name = name
        self.tests = tests
        self.iterations: list[int] = []

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        self.iterations.append(request.iteration)
        return GenerationResult(files={**render_plugin(request.spec), HOSTILE_TEST: self.tests})


class Recorder:
    """A JobReporter that keeps what a StoreReporter would store."""

    def __init__(self) -> None:
        self.phases: list[Phase] = []
        self.logs: list[str] = []
        self.records: list[IterationRecord] = []

    async def phase(
        self, phase: Phase, *, iteration: int, progress: int, message: str = ""
    ) -> None:
        self.phases.append(phase)

    async def log(self, message: str) -> None:
        self.logs.append(message)

    async def iteration_finished(self, record: IterationRecord) -> None:
        self.records.append(record)


@dataclass(frozen=True)
class Case:
    name: str
    status: str
    message: str


@dataclass(frozen=True)
class Iteration:
    """What the job reported about one iteration, from either path."""

    number: int
    passed: bool
    errors: tuple[str, ...]  # "code: message"
    cases: tuple[Case, ...]


@dataclass(frozen=True)
class Reported:
    succeeded: bool
    reason: str
    iterations: tuple[Iteration, ...]
    everything: str  # all text the job reported (to look for the secret)


def check_report(reported: Reported, *, attacker: bool) -> None:
    """The job's own account of the attacks, the same for both paths."""
    assert SECRET not in reported.everything, "the secret leaked into the job's record"
    # Every step ended by itself (the fork bomb included), none by the command timeout.
    assert "timed out" not in reported.everything
    if not attacker:
        assert reported.succeeded, reported.iterations
        (only,) = reported.iterations
        status = {c.name: c.status for c in only.cases}
        for name in DEFENDED_TESTS.values():
            assert status.get(name) == "passed", (name, only.cases)
        return
    assert not reported.succeeded and reported.reason == "ITERATIONS_EXHAUSTED"
    assert [i.number for i in reported.iterations] == list(range(1, ITERATIONS + 1))
    for iteration in reported.iterations:
        assert not iteration.passed
        failed = {c.name: c.message for c in iteration.cases if c.status == "failed"}
        # Exactly the four attacks failed; every template test still passed.
        assert set(failed) == {name for name, _ in ATTACKER_FAILURES.values()}, failed
        assert all(c.status == "passed" for c in iteration.cases if c.name not in failed)
        for name, message in ATTACKER_FAILURES.values():
            assert message in failed[name], (name, failed[name])
            assert any(e.startswith(f"test: {name}: ") and message in e for e in iteration.errors)


def show(label: str, reported: Reported) -> None:
    print(f"\n[{label}] succeeded={reported.succeeded} {reported.reason}")
    for iteration in reported.iterations:
        for case in iteration.cases:
            if case.name.startswith("hostile > "):
                message = case.message.splitlines()[0] if case.message else ""
                print(f"  iteration {iteration.number}: {case.status} {case.name} {message}")


async def assert_host_works(workspace_root: Path, toolchain: Toolchain) -> None:
    """No process is left in any workspace; the host and a new sandbox start processes."""
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(str(workspace_root)):
                leftovers.append(pid)
        except OSError:
            continue
    assert leftovers == [], f"processes left in the workspaces: {leftovers}"
    host = await asyncio.create_subprocess_exec("true")
    assert await asyncio.wait_for(host.wait(), 5) == 0
    sandboxed = await BubblewrapRunner(toolchain.root).run(["true"], cwd=workspace_root)
    assert sandboxed.ok and sandboxed.duration_s < 10, sandboxed


# --- the pipeline with a fake reporter -------------------------------------------------


@pytest.fixture(scope="module")
def toolchain() -> Toolchain:
    tc = Toolchain(TOOLCHAIN_DIR)
    asyncio.run(tc.ensure())
    return tc


@pytest.fixture
def workspace_root() -> Iterator[Path]:
    """Two levels below a traversable temp dir (``../../`` of a workspace is then ours)."""
    base = Path(tempfile.mkdtemp(prefix="auton8n-hostile-"))
    root = base / "data" / "workspaces"
    root.mkdir(parents=True)
    open_to_sandbox(root)  # a root test process runs sandboxes as nobody
    yield root
    shutil.rmtree(base)


def from_outcome(recorder: Recorder, succeeded: bool, reason: str) -> Reported:
    iterations = tuple(
        Iteration(
            number=r.iteration,
            passed=r.passed,
            errors=tuple(f"{d.code}: {d.message}" for d in r.diagnostics),
            cases=tuple(
                Case(c.name, c.status, c.message)
                for c in (r.test_results.cases if r.test_results else ())
            ),
        )
        for r in recorder.records
    )
    everything = "\n".join([*recorder.logs, *(repr(r) for r in recorder.records)])
    return Reported(succeeded, reason, iterations, everything)


@pytest.mark.parametrize("attacker", [False, True], ids=["defended", "attacker"])
async def test_hostile_plugin_in_the_pipeline(
    attacker: bool,
    toolchain: Toolchain,
    workspace_root: Path,
    traps_factory: list[Traps],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    traps, listener = await open_traps(traps_factory, workspace_root, toolchain.node_modules)
    limits = SandboxLimits(timeout_s=COMMAND_TIMEOUT_S, max_processes=MAX_PROCESSES)
    pipeline = Pipeline(
        runner=BubblewrapRunner(toolchain.root, limits),
        toolchain=toolchain,
        workspace_root=workspace_root,
        limits=limits,
        expected_exports=expected_exports,
    )
    generator = HostileGenerator(hostile_test_file(traps, attacker=attacker))
    recorder = Recorder()
    started = time.monotonic()
    try:
        outcome = await asyncio.wait_for(
            pipeline.run(
                job_id=f"hostile-{traps.token}",
                spec=PluginSpec.from_json(load_spec("time")),
                generator=generator,
                max_iterations=ITERATIONS,
                reporter=recorder,
            ),
            timeout=ITERATIONS * 4 * COMMAND_TIMEOUT_S,
        )
    finally:
        listener.close()
    elapsed = time.monotonic() - started
    reported = from_outcome(recorder, outcome.succeeded, outcome.failure_reason)
    show(f"pipeline, {'attacker' if attacker else 'defended'}, {elapsed:.1f}s", reported)
    for line in recorder.logs:
        print(f"  {line}")
    traps.assert_held()
    await assert_host_works(workspace_root, toolchain)
    check_report(reported, attacker=attacker)
    assert generator.iterations == ([1] if not attacker else list(range(1, ITERATIONS + 1)))
    assert os.listdir(workspace_root) == []  # the workspace is gone
    assert elapsed < ITERATIONS * COMMAND_TIMEOUT_S


# --- the real server: the generator registered under a model name ------------------------


def error_reason(status: status_pb2.Status) -> str:
    """The ErrorInfo reason of a Job's google.rpc.Status."""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def from_job(final: pb.Job, events: list[pb.JobEvent]) -> Reported:
    iterations = tuple(
        Iteration(
            number=e.iteration_finished.iteration,
            passed=e.iteration_finished.passed,
            errors=tuple(f"{x.code}: {x.message}" for x in e.iteration_finished.errors),
            cases=tuple(
                Case(c.name, c.status, c.message) for c in e.iteration_finished.test_results.cases
            ),
        )
        for e in events
        if e.HasField("iteration_finished")
    )
    everything = "\n".join([str(final), *(str(e) for e in events)])
    succeeded = final.state == pb.JOB_STATE_SUCCEEDED
    return Reported(succeeded, error_reason(final.error), iterations, everything)


async def test_hostile_plugin_through_the_server(
    tmp_path: Path,
    toolchain: Toolchain,
    traps_factory: list[Traps],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both variants as two concurrent jobs of one real server, generator injected."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)  # the server's environment holds it
    settings = test_settings(
        tmp_path,
        max_concurrent_jobs=2,
        command_timeout_s=COMMAND_TIMEOUT_S,
        sandbox_max_processes=MAX_PROCESSES,
    )
    root = settings.workspace_root
    defended, defended_listener = await open_traps(traps_factory, root, toolchain.node_modules)
    attacker, attacker_listener = await open_traps(traps_factory, root, toolchain.node_modules)
    registry = GeneratorRegistry()  # consulted before the server's own generators
    tests = {
        "hostile-defended": hostile_test_file(defended, attacker=False),
        "hostile-attacker": hostile_test_file(attacker, attacker=True),
    }
    for model, text in tests.items():
        registry.add_exact(model, functools.partial(hostile_generator, text))
    app = App(settings, generators=registry)
    await app.start()
    started = time.monotonic()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.PluginServiceStub(channel)
            spec = load_spec("time")
            jobs = {
                model: await stub.CreatePlugin(
                    create_request(spec, model=model, max_iterations=ITERATIONS)
                )
                for model in tests
            }
            # Each watch stream ends with its job (no polling: requests are rate-limited).
            budget = ITERATIONS * 4 * COMMAND_TIMEOUT_S
            histories = await asyncio.gather(
                *(watch_to_end(stub, j.id, timeout=budget) for j in jobs.values())
            )
            finals = [await stub.GetJob(pb.GetJobRequest(job_id=j.id)) for j in jobs.values()]
    finally:
        defended_listener.close()
        attacker_listener.close()
        await app.stop(grace_s=1.0)
    elapsed = time.monotonic() - started
    for traps, final, events, is_attacker in zip(
        (defended, attacker), finals, histories, (False, True), strict=True
    ):
        reported = from_job(final, events)
        show(f"server, {final.model}, {elapsed:.1f}s", reported)
        traps.assert_held()
        check_report(reported, attacker=is_attacker)
        assert final.attempt == 1
        # The job itself (not only its event log) names the failing tests.
        failed = {c.name for c in final.test_results.cases if c.status == "failed"}
        if is_attacker:
            assert final.state == pb.JOB_STATE_FAILED and final.iteration == ITERATIONS
            assert failed == {name for name, _ in ATTACKER_FAILURES.values()}
            assert {e.message.split(": ", 1)[0] for e in final.errors if e.code == "test"} == failed
        else:
            assert final.state == pb.JOB_STATE_SUCCEEDED and failed == set()
    await assert_host_works(root, toolchain)
    assert elapsed < ITERATIONS * 2 * COMMAND_TIMEOUT_S
