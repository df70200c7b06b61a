"""Acceptance (issue 3, "Must show"): every example spec yields a SUCCEEDED job whose
downloaded artifact, unpacked in a fresh directory outside the repository, passes
``npm install && npm test`` on its own: a real npm install (no link farm, no shared
toolchain), from the warm npm cache where it can.

One real server (max_concurrent_jobs=2) runs the four jobs concurrently; each artifact is
installed and tested as soon as its job succeeds, so npm installs overlap the remaining
jobs and each other. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc

from tests.conftest import EXAMPLES, ROOT, AppFactory, load_spec
from tests.helpers import create_request, watch_to_end

pytestmark = pytest.mark.e2e

SPECS = sorted(path.stem for path in EXAMPLES.glob("*.json"))
JOB_TIMEOUT_S = 300.0
INSTALL_TIMEOUT_S = 300.0
NPM_TEST_TIMEOUT_S = 180.0
TOTAL_TIMEOUT_S = 840.0
NPM_INSTALL = ("npm", "install", "--no-audit", "--no-fund", "--prefer-offline")
# Host variables npm may need (proxy, registry, CA); nothing else of ours (no API keys).
NPM_PASSTHROUGH = (
    "PATH HOME HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy "
    "npm_config_registry NODE_EXTRA_CA_CERTS SSL_CERT_FILE"
).split()
VITEST_SUMMARY = re.compile(r"^\s*Tests\s+(?P<passed>\d+) passed \((?P<total>\d+)\)\s*$", re.M)


@dataclass(frozen=True)
class Accepted:
    spec: str
    job_s: float
    artifact_bytes: int
    install_s: float
    test_s: float
    tests_passed: int


def npm_env() -> dict[str, str]:
    env = {key: os.environ[key] for key in NPM_PASSTHROUGH if key in os.environ}
    env.setdefault("HOME", str(Path.home()))
    env.update(
        npm_config_cache=str(Path(env["HOME"]) / ".npm"),  # the warm cache
        npm_config_update_notifier="false",
        CI="true",
        NO_COLOR="1",
    )
    return env


async def npm(argv: tuple[str, ...], cwd: Path, timeout_s: float) -> tuple[str, float]:
    """Run npm on the host in its own process group; (output, seconds). Fails the test
    on a non-zero exit or a timeout (the whole group is killed)."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=npm_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    output = out.decode(errors="replace")
    assert proc.returncode == 0, f"{' '.join(argv)} failed in {cwd}:\n{output[-4000:]}"
    return output, time.monotonic() - started


async def download(stub: pb_grpc.PluginServiceStub, job_id: str) -> tuple[bytes, str]:
    data, digest = b"", ""
    async for chunk in stub.DownloadArtifact(pb.DownloadArtifactRequest(job_id=job_id)):
        data += chunk.data
        digest = chunk.sha256 or digest
    return data, digest


def unpack(data: bytes, into: Path) -> Path:
    """Extract the archive (data filter: no links, no absolute paths); its one folder."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(into, filter="data")
    (folder,) = into.iterdir()
    return folder


def check_installed(project: Path, extra: dict[str, str]) -> None:
    """A real install of its own: real folders, not links into a shared toolchain."""
    modules = project / "node_modules"
    assert modules.is_dir() and not modules.is_symlink()
    for dependency in ("@elizaos/core", "vitest", *extra):
        installed = modules / dependency
        assert installed.is_dir() and not installed.is_symlink(), dependency
        assert installed.resolve().is_relative_to(project), dependency


def fresh_scratch() -> Path:
    """A new directory outside the repository (the system temp dir)."""
    scratch = Path(tempfile.mkdtemp(prefix="auton8n-acceptance-"))
    assert not scratch.resolve().is_relative_to(ROOT), "must be unpacked outside the repository"
    return scratch


async def accept(stub: pb_grpc.PluginServiceStub, name: str, scratch: Path) -> Accepted:
    spec = load_spec(name)
    started = time.monotonic()
    job = await stub.CreatePlugin(create_request(spec, request_id=f"acceptance-{name}"))
    # The watch stream ends with the job (no polling: the server rate-limits requests).
    await watch_to_end(stub, job.id, timeout=JOB_TIMEOUT_S)
    final = await stub.GetJob(pb.GetJobRequest(job_id=job.id))
    assert final.state == pb.JOB_STATE_SUCCEEDED, (name, final.error, list(final.errors))
    job_s = time.monotonic() - started
    data, digest = await download(stub, job.id)
    assert hashlib.sha256(data).hexdigest() == digest == final.artifact.sha256
    assert len(data) == final.artifact.size_bytes

    fresh = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=f"{name}-", dir=scratch))
    project = await asyncio.to_thread(unpack, data, fresh)
    assert not await asyncio.to_thread((project / "node_modules").exists), "no node_modules"
    package = json.loads(await asyncio.to_thread((project / "package.json").read_text))
    assert package["name"] == spec["name"]

    _, install_s = await npm(NPM_INSTALL, project, INSTALL_TIMEOUT_S)
    await asyncio.to_thread(check_installed, project, spec.get("dependencies", {}))

    output, test_s = await npm(("npm", "test"), project, NPM_TEST_TIMEOUT_S)
    summary = VITEST_SUMMARY.search(output)
    assert summary, f"no vitest summary in:\n{output[-3000:]}"
    passed, total = int(summary["passed"]), int(summary["total"])
    # The same suite the job ran in its sandbox, all passing here too.
    assert passed == total == final.test_results.passed > 0, (name, output[-3000:])
    return Accepted(name, job_s, len(data), install_s, test_s, passed)


@pytest.mark.timeout(TOTAL_TIMEOUT_S + 60)
async def test_every_example_spec_installs_and_passes_its_tests_on_its_own(
    make_app: AppFactory,
) -> None:
    assert {"astral", "shell", "time", "weather"} <= set(SPECS), SPECS  # issue 3's four
    app = await make_app(max_concurrent_jobs=2)
    scratch = await asyncio.to_thread(fresh_scratch)
    started = time.monotonic()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.PluginServiceStub(channel)
            results = await asyncio.wait_for(
                asyncio.gather(*(accept(stub, name, scratch) for name in SPECS)),
                TOTAL_TIMEOUT_S,
            )
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)
    print(f"\n[acceptance: {len(results)} specs in {time.monotonic() - started:.1f}s]")
    for r in results:
        print(
            f"  {r.spec}: job {r.job_s:.1f}s, artifact {r.artifact_bytes} B, "
            f"npm install {r.install_s:.1f}s, npm test {r.test_s:.1f}s ({r.tests_passed} passed)"
        )
