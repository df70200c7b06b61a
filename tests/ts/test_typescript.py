"""The TypeScript client and ElizaOS plugin (client/typescript): install, build, test.

Runs, in client/typescript: ``npm ci`` (only when node_modules is missing or the lockfile
changed: a stamp named after the lockfile's hash), the strict builds and type checks of
``@auton8n/client`` and ``@auton8n/plugin-eliza`` (and of the tests), then vitest, whose
tests start the real Python server (offline generator) on free loopback ports. The tools
are called directly from node_modules/.bin (no npx). Every step is bounded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TS_DIR = ROOT / "client" / "typescript"
BIN = TS_DIR / "node_modules" / ".bin"
INSTALL_TIMEOUT_S = 900
BUILD_TIMEOUT_S = 300
VITEST_TIMEOUT_S = 900
OUTPUT_TAIL = 30_000

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(INSTALL_TIMEOUT_S + VITEST_TIMEOUT_S)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"NO_COLOR": "1", "FORCE_COLOR": "0", "CI": env.get("CI", "true")})
    # The server the tests start is the repository's (its virtualenv and toolchain).
    env.setdefault("AUTON8N_TOOLCHAIN_DIR", str(ROOT / "data" / "toolchain"))
    return env


def _run(args: list[str], timeout: float) -> None:
    """Runs a step in client/typescript; fails the test with its output on failure."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            args,
            cwd=TS_DIR,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout or ""
        text = out.decode(errors="replace") if isinstance(out, bytes) else out
        pytest.fail(f"{' '.join(args)} timed out after {timeout:.0f} s:\n{text[-OUTPUT_TAIL:]}")
    elapsed = time.monotonic() - started
    print(f"{' '.join(Path(a).name if i == 0 else a for i, a in enumerate(args))}: {elapsed:.1f} s")
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {done.returncode} after {elapsed:.1f} s:\n"
            f"{done.stdout[-OUTPUT_TAIL:]}"
        )
    print(done.stdout[-4000:])


@pytest.fixture(scope="module")
def workspace() -> Path:
    """client/typescript with its dependencies installed from the committed lockfile."""
    npm = shutil.which("npm")
    node = shutil.which("node")
    if npm is None or node is None:
        pytest.fail("node and npm are required (make system-deps installs them)")
    lock = TS_DIR / "package-lock.json"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    stamp = TS_DIR / "node_modules" / f".auton8n-installed-{digest}"
    if not stamp.exists():
        _run([npm, "ci", "--no-audit", "--no-fund"], INSTALL_TIMEOUT_S)
        for old in stamp.parent.glob(".auton8n-installed-*"):
            old.unlink()
        stamp.touch()
    return TS_DIR


def test_build_and_typecheck(workspace: Path) -> None:
    """Both packages build with the strict tsconfig (the plugin against the real
    @elizaos/core 1.7.2 declarations), and so do the tests."""
    _run([str(BIN / "tsc"), "-b", "client", "plugin-eliza"], BUILD_TIMEOUT_S)
    _run([str(BIN / "tsc"), "-p", "tsconfig.test.json"], BUILD_TIMEOUT_S)
    assert (workspace / "client" / "dist" / "index.d.ts").is_file()
    assert (workspace / "plugin-eliza" / "dist" / "index.js").is_file()


def test_vitest(workspace: Path) -> None:
    """The client and every plugin action end to end against live servers."""
    _run([str(BIN / "vitest"), "run"], VITEST_TIMEOUT_S)
