"""The sandbox really isolates: no secrets, no network, read-only outside the workspace,
rlimits, and every process of a command dies on timeout or cancellation."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from server.pipeline.process import CommandResult, SandboxLimits, UnsandboxedRunner
from server.pipeline.sandbox import BubblewrapRunner, probe_sandbox

pytestmark = pytest.mark.e2e

SECRET = "sk-ant-secret"


@pytest.fixture
def dirs() -> Iterator[tuple[Path, Path]]:
    """(toolchain, workspace) under a traversable directory: a root test process runs
    sandboxes as nobody, who cannot enter pytest's 0700 tmp_path."""
    base = Path(tempfile.mkdtemp(prefix="auton8n-sandbox-test-"))
    base.chmod(0o755)
    toolchain = base / "toolchain"
    (toolchain / "node_modules").mkdir(parents=True)
    (toolchain / "node_modules" / "pkg.js").write_text("module.exports = 1;\n")
    workspace = base / "workspace"
    workspace.mkdir()
    yield toolchain, workspace
    shutil.rmtree(base)


def running(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker`` (sandboxed ones included)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if marker.encode() in cmdline:
                pids.append(int(entry))
    return pids


async def gone(marker: str, within_s: float = 2.0) -> bool:
    for _ in range(int(within_s / 0.05)):
        if not running(marker):
            return True
        await asyncio.sleep(0.05)
    return not running(marker)


async def appeared(marker: str, within_s: float = 5.0) -> bool:
    for _ in range(int(within_s / 0.05)):
        if running(marker):
            return True
        await asyncio.sleep(0.05)
    return False


async def node(runner: BubblewrapRunner, workspace: Path, script: str) -> CommandResult:
    return await runner.run(["node", "-e", script], cwd=workspace)


async def test_probe_reports_usable() -> None:
    usable, why = await probe_sandbox()
    assert usable, why
    assert "bubblewrap" in why


async def test_server_secrets_are_invisible(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    toolchain, workspace = dirs
    runner = BubblewrapRunner(toolchain)
    result = await node(runner, workspace, "console.log(JSON.stringify(process.env))")
    assert result.ok, result.output
    env = json.loads(result.output)
    assert SECRET not in result.output and "ANTHROPIC_API_KEY" not in env
    assert env["NO_COLOR"] == "1" and env["CI"] == "true" and env["HOME"] == "/tmp"
    assert "NODE_OPTIONS" not in env  # no V8 flag by default: the memory bound is an rlimit
    assert env["PATH"].startswith(f"{workspace}/node_modules/.bin:{toolchain}/node_modules/.bin")
    # Nor in any process of the sandbox (bwrap itself starts with a minimal env).
    every = await runner.run(["sh", "-c", "cat /proc/[0-9]*/environ"], cwd=workspace)
    assert SECRET not in every.output


@pytest.mark.parametrize(
    ("target", "errors"),
    [
        ("{toolchain}/node_modules/pkg.js", {"EROFS"}),
        ("{toolchain}/new.js", {"EROFS"}),
        ("/usr/lib/evil", {"EROFS"}),
        ("/etc/passwd", {"EROFS"}),
        ("/evil", {"EROFS"}),
        ("/root/.bashrc", {"ENOENT", "EROFS"}),
        # The workspace's parent is under /tmp, which in the sandbox is a private tmpfs:
        # the write may succeed there, but it never reaches the host (asserted below).
        ("{parent}/outside.txt", {"ENOENT", "EROFS", "WROTE"}),
    ],
)
async def test_cannot_write_outside_the_workspace(
    dirs: tuple[Path, Path], target: str, errors: set[str]
) -> None:
    toolchain, workspace = dirs
    path = target.format(toolchain=toolchain, parent=workspace.parent)
    script = (
        "const fs = require('fs');"
        f"try {{ fs.writeFileSync({json.dumps(path)}, 'x'); console.log('WROTE'); }}"
        "catch (e) { console.log(e.code); }"
        "fs.writeFileSync('inside.txt', 'ok');"
    )
    result = await node(BubblewrapRunner(toolchain), workspace, script)
    assert result.ok, result.output
    assert result.output.strip() in errors
    assert (workspace / "inside.txt").read_text() == "ok"
    assert (toolchain / "node_modules" / "pkg.js").read_text() == "module.exports = 1;\n"
    assert not (workspace.parent / "outside.txt").exists()


async def test_no_network_even_to_host_loopback(dirs: tuple[Path, Path]) -> None:
    toolchain, workspace = dirs
    connections = 0

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        script = (
            f"const s = require('net').connect({port}, '127.0.0.1');"
            "s.on('connect', () => { console.log('CONNECTED'); process.exit(0); });"
            "s.on('error', (e) => { console.log(e.code); process.exit(0); });"
        )
        result = await node(BubblewrapRunner(toolchain), workspace, script)
        interfaces = await BubblewrapRunner(toolchain).run(["cat", "/proc/net/dev"], cwd=workspace)
    finally:
        server.close()
        await server.wait_closed()
    assert result.output.strip() == "ECONNREFUSED"
    assert connections == 0
    names = {line.split(":")[0].strip() for line in interfaces.output.splitlines()[2:]}
    assert names == {"lo"}


async def test_no_capabilities_and_rlimits_applied(dirs: tuple[Path, Path]) -> None:
    toolchain, workspace = dirs
    limits = SandboxLimits(
        max_processes=64, max_open_files=512, cpu_seconds=30, max_data_bytes=300 * 2**20
    )
    script = "grep CapEff /proc/self/status; cat /proc/self/limits"
    result = await BubblewrapRunner(toolchain, limits).run(["sh", "-c", script], cwd=workspace)
    assert "CapEff:\t0000000000000000" in result.output
    rows = {line[:26].strip(): line[26:].split()[:2] for line in result.output.splitlines()}
    assert rows["Max processes"] == ["64", "64"]
    assert rows["Max open files"] == ["512", "512"]
    assert rows["Max cpu time"] == ["30", "30"]
    assert rows["Max core file size"] == ["0", "0"]
    assert rows["Max file size"] == [str(limits.max_file_size_bytes)] * 2
    assert rows["Max data size"] == [str(300 * 2**20)] * 2
    assert rows["Max address space"] == ["unlimited", "unlimited"]  # RLIMIT_AS breaks V8


@pytest.mark.parametrize(
    "allocate",
    [
        "keep.push(new Array(2 ** 17).fill(1))",  # 1 MB a step of JS heap
        "keep.push(Buffer.alloc(2 ** 24, 1))",  # 16 MB a step outside it (a V8 heap cap
    ],  # lets this one reach gigabytes)
)
async def test_memory_is_bounded_on_and_off_the_js_heap(
    dirs: tuple[Path, Path], allocate: str
) -> None:
    toolchain, workspace = dirs
    limits = SandboxLimits(max_data_bytes=512 * 2**20, timeout_s=60)
    script = (
        "const keep = []; for (let i = 0; ; i++) { "
        f"{allocate}; if (i % 64 === 0) console.log(process.memoryUsage().rss >> 20); "
        "if (process.memoryUsage().rss > 2 ** 31) { console.log('escaped'); break; } }"
    )
    result = await node(BubblewrapRunner(toolchain, limits), workspace, script)
    assert not result.ok and not result.timed_out, result.output
    assert "escaped" not in result.output
    sizes = [int(line) for line in result.output.split() if line.isdigit()]
    assert sizes and max(sizes) < 600, sizes  # MB of RSS, never much past the limit
    # Configured, the V8 flag is still passed on (and a caller's NODE_OPTIONS kept).
    runner = BubblewrapRunner(toolchain, SandboxLimits(node_heap_mb=256))
    flags = await runner.run(
        ["node", "-e", "console.log(process.env.NODE_OPTIONS)"],
        cwd=workspace,
        env={"NODE_OPTIONS": "--no-warnings"},
    )
    assert flags.output.strip() == "--max-old-space-size=256 --no-warnings"


async def test_never_runs_as_host_root(dirs: tuple[Path, Path]) -> None:
    toolchain, workspace = dirs
    runner = BubblewrapRunner(toolchain)
    result = await runner.run(["touch", "made"], cwd=workspace)
    assert result.ok, result.output
    # Root is exempt from RLIMIT_NPROC, so a root server runs sandboxes as nobody.
    expected = 65534 if os.geteuid() == 0 else os.geteuid()
    assert (workspace / "made").stat().st_uid == expected


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root server switches users")
async def test_unreachable_workspace_falls_back_to_root_loudly(tmp_path: Path) -> None:
    # pytest's tmp_path sits below a 0700 directory nobody cannot traverse.
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    messages: list[str] = []
    sink = logger.add(messages.append, level="WARNING", format="{message}")
    try:
        runner = BubblewrapRunner(tmp_path)
        first = await runner.run(["touch", "made"], cwd=workspace)
        second = await runner.run(["true"], cwd=workspace)
    finally:
        logger.remove(sink)
    assert first.ok and second.ok, first.output
    assert (workspace / "made").stat().st_uid == 0
    (warning,) = [m for m in messages if "sandbox runs as ROOT" in m]  # warned once
    assert "RLIMIT_NPROC" in warning


async def test_fork_bomb_is_contained(dirs: tuple[Path, Path]) -> None:
    toolchain, workspace = dirs
    limits = SandboxLimits(max_processes=64, timeout_s=4, output_limit_bytes=20_000)
    marker = "forkbomb-7f3a"
    script = f": {marker}; bomb() {{ bomb | bomb & }}; bomb; sleep 1; echo survived"
    started = time.monotonic()
    result = await BubblewrapRunner(toolchain, limits).run(["sh", "-c", script], cwd=workspace)
    assert time.monotonic() - started < 4 + limits.kill_grace_s + 1
    assert "Cannot fork" in result.output  # the 65th task was refused
    assert len(running(marker)) <= 64
    assert await gone(marker, within_s=5)
    # The host can still start processes, and so can the next sandboxed command.
    after = await BubblewrapRunner(toolchain, limits).run(["true"], cwd=workspace)
    assert after.ok


async def test_timeout_kills_the_whole_tree(dirs: tuple[Path, Path]) -> None:
    toolchain, workspace = dirs
    script = "setsid sleep 6001 & (sleep 6002 &) ; sleep 6003"
    started = time.monotonic()
    result = await BubblewrapRunner(toolchain).run(["sh", "-c", script], cwd=workspace, timeout_s=1)
    elapsed = time.monotonic() - started
    assert result.timed_out and not result.ok
    assert elapsed < 3.5, elapsed
    for marker in ("sleep 6001", "sleep 6002", "sleep 6003"):
        assert await gone(marker), marker


async def test_cancellation_kills_the_group_and_propagates(dirs: tuple[Path, Path]) -> None:
    toolchain, workspace = dirs
    runner = BubblewrapRunner(toolchain)
    task = asyncio.create_task(
        runner.run(["sh", "-c", "setsid sleep 6011 & sleep 6012"], cwd=workspace)
    )
    assert await appeared("sleep 6012")
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2
    assert await gone("sleep 6011") and await gone("sleep 6012")


async def test_output_is_capped_keeping_head_and_tail(dirs: tuple[Path, Path]) -> None:
    toolchain, workspace = dirs
    limits = SandboxLimits(output_limit_bytes=10_000)
    script = "echo FIRST; head -c 500000 /dev/zero | tr '\\0' a; echo; echo LAST"
    result = await BubblewrapRunner(toolchain, limits).run(["sh", "-c", script], cwd=workspace)
    assert result.ok and result.truncated
    assert result.output.startswith("FIRST\n") and result.output.endswith("LAST\n")
    assert "bytes of output omitted" in result.output
    assert len(result.output) < 10_200


async def test_unsandboxed_runner_warns_scrubs_and_kills(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    toolchain, workspace = dirs
    messages: list[str] = []
    sink = logger.add(messages.append, level="WARNING", format="{message}")
    try:
        runner = UnsandboxedRunner(toolchain, SandboxLimits(kill_grace_s=0.5))
    finally:
        logger.remove(sink)
    assert any("UNSANDBOXED" in m for m in messages)
    env = await runner.run(["env"], cwd=workspace)
    assert SECRET not in env.output and "NO_COLOR=1" in env.output
    started = time.monotonic()
    result = await runner.run(
        ["sh", "-c", "trap '' TERM; sleep 6021 & sleep 6022"], cwd=workspace, timeout_s=1
    )
    assert result.timed_out and time.monotonic() - started < 3
    assert await gone("sleep 6021") and await gone("sleep 6022")


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root server switches the sandbox user")
async def test_falling_back_to_root_takes_the_workspace_back(dirs: tuple[Path, Path]) -> None:
    """A workspace handed to nobody, then unreachable for nobody (a parent lost o+x): the
    command runs as root (loudly) and can still write, because the workspace is taken
    back first (root in the sandbox's namespace cannot write an unmapped user's files)."""
    toolchain, workspace = dirs
    runner = BubblewrapRunner(toolchain)
    first = await runner.run(["sh", "-c", "touch first && id -u"], cwd=workspace)
    assert first.ok and first.output.strip() == "65534", first.output
    assert (workspace / "first").stat().st_uid == 65534
    workspace.parent.chmod(0o700)
    try:
        second = await runner.run(["sh", "-c", "touch second && id -u"], cwd=workspace)
    finally:
        workspace.parent.chmod(0o755)
    assert second.ok, second.output
    assert (workspace / "second").exists()
