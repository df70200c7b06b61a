"""The shared npm toolchain: installed once per lockfile hash, linked into every job.

Layout under ``cache_dir``::

    <sha256 of package-lock.json>/          read-only for jobs (bound so in the sandbox)
        package.json, package-lock.json
        node_modules/
        .auton8n-complete                   written last, inside the temp dir, before
                                            the atomic rename into place
    .<sha256>.lock                          fcntl lock: one installer across processes

A job's workspace gets a "link farm" (measured in TOOLCHAIN.md): a real ``node_modules/``
directory with one symlink per top-level toolchain entry (scoped directories such as
``@elizaos`` linked whole) plus ``.bin``. Because that directory is real and lives in the
writable workspace, vite/vitest's ``.vite-temp`` and ``.vite`` caches land in the
workspace while every package stays read-only; tsc, tsup, vitest and biome resolve
through the links (verified with the toolchain read-only inside bubblewrap).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from server.pipeline.process import CommandRunner, HostRunner, SandboxLimits

__all__ = [
    "DEFAULT_MANIFEST_DIR",
    "DependencyRejected",
    "Toolchain",
    "ToolchainError",
    "Tools",
    "valid_package_name",
    "valid_version_range",
]

DEFAULT_MANIFEST_DIR = Path(__file__).resolve().parent / "toolchain"
_MARKER = ".auton8n-complete"
_LOCK_POLL_S = 0.2
_INSTALL_TIMEOUT_S = 900.0
_MAX_EXTRA_DEPENDENCIES = 20
# Host variables npm may need behind a proxy or a private registry; nothing else passes.
_NPM_PASSTHROUGH = (
    "HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy npm_config_registry "
    "NODE_EXTRA_CA_CERTS SSL_CERT_FILE".split()
)
# Never linked into a workspace: npm's hidden lockfile and caches.
_NOT_LINKED = frozenset({".package-lock.json", ".cache", ".vite", ".vite-temp"})

_NAME = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")
_PART = r"(?:0|[1-9][0-9]{0,8}|[xX*])"
_VERSION = rf"v?{_PART}(?:\.{_PART}){{0,2}}(?:-[0-9A-Za-z.-]{{1,40}})?(?:\+[0-9A-Za-z.-]{{1,40}})?"
_COMPARATOR = re.compile(rf"^(?:\^|~|>=|<=|>|<|=)?{_VERSION}$")
_HYPHEN = re.compile(rf"^{_VERSION} - {_VERSION}$")


def valid_package_name(name: str) -> bool:
    """An npm registry package name (lower case, optional scope, no paths or URLs)."""
    return len(name) <= 214 and bool(_NAME.match(name))


def valid_version_range(spec: str) -> bool:
    """A semver range (``1.2.3``, ``^1.2``, ``>=1 <2``, ``1.x || 2``, ``1 - 2``, ``*``)
    or ``latest``. Rejects URLs, git/file/npm:/workspace: specifiers and shell text."""
    if not spec or len(spec) > 100 or spec != spec.strip():
        return False
    if spec in ("*", "latest"):
        return True
    for alternative in spec.split(" || "):
        if _HYPHEN.match(alternative):
            continue
        parts = alternative.split(" ")
        if not parts or not all(_COMPARATOR.match(p) for p in parts):
            return False
    return True


class ToolchainError(Exception):
    """The shared toolchain could not be installed or linked."""

    reason = "TOOLCHAIN_FAILED"


class DependencyRejected(ToolchainError):
    """The spec's extra dependencies are invalid or could not be installed."""

    reason = "DEPENDENCY_INSTALL_FAILED"


@dataclass(frozen=True)
class Tools:
    """Argv prefixes that call each tool's entry point directly (no npx/npm run)."""

    tsc: tuple[str, ...]
    tsup: tuple[str, ...]
    vitest: tuple[str, ...]
    biome: tuple[str, ...]

    def typecheck(self, types_dir: str) -> list[str]:
        """Type check plus declaration emit (catches d.ts errors that --noEmit skips)."""
        flags = ["--noEmit", "false", "--emitDeclarationOnly", "--declaration"]
        return [*self.tsc, *flags, "--outDir", types_dir, "--pretty", "false"]

    def build(self) -> list[str]:
        """The build script's bundler; declarations come from typecheck()."""
        return [*self.tsup, "--no-dts"]

    def lint(self, report_file: str) -> list[str]:
        """Apply safe fixes and formatting, report what remains as JSON."""
        return [
            *self.biome,
            "check",
            "--write",
            "--reporter=json",
            f"--reporter-file={report_file}",
            ".",
        ]

    def test(self, report_file: str) -> list[str]:
        return [*self.vitest, "run", "--reporter=json", f"--outputFile={report_file}"]


class Toolchain:
    """One shared node_modules per lockfile hash. Safe across tasks and processes."""

    def __init__(
        self,
        cache_dir: Path,
        manifest_dir: Path = DEFAULT_MANIFEST_DIR,
        *,
        npm_cache_dir: Path | None = None,
        runner: CommandRunner | None = None,
        passthrough_env: Mapping[str, str] | None = None,
    ) -> None:
        """Reads the manifest (two small files) once; installs nothing until ensure().

        ``passthrough_env``: proxy/registry variables for npm; default: those of
        ``_NPM_PASSTHROUGH`` present in this process's environment.
        """
        self.cache_dir = cache_dir.resolve()
        self.manifest_dir = manifest_dir
        lock_bytes = (manifest_dir / "package-lock.json").read_bytes()
        self._manifest: dict[str, Any] = json.loads((manifest_dir / "package.json").read_text())
        self.lock_hash = hashlib.sha256(lock_bytes).hexdigest()
        self.npm_cache_dir = npm_cache_dir or Path.home() / ".npm"
        if passthrough_env is None:
            passthrough_env = {k: v for k in _NPM_PASSTHROUGH if (v := os.environ.get(k))}
        self._npm_runner = runner or HostRunner(
            SandboxLimits(timeout_s=_INSTALL_TIMEOUT_S, output_limit_bytes=200_000),
            passthrough=passthrough_env,
        )
        self._lock = asyncio.Lock()
        self._entries: tuple[str, ...] | None = None
        self._tools: Tools | None = None

    @property
    def root(self) -> Path:
        """The installed toolchain (read-only for jobs); exists once ensure() returned."""
        return self.cache_dir / self.lock_hash

    @property
    def node_modules(self) -> Path:
        return self.root / "node_modules"

    @property
    def dependencies(self) -> dict[str, str]:
        """Runtime dependencies every plugin gets (exact versions)."""
        return dict(self._manifest.get("dependencies", {}))

    @property
    def dev_dependencies(self) -> dict[str, str]:
        """Build/lint/test tools every plugin gets (exact versions)."""
        return dict(self._manifest.get("devDependencies", {}))

    def npm_env(self) -> dict[str, str]:
        return {
            "npm_config_cache": str(self.npm_cache_dir),
            "npm_config_update_notifier": "false",
            "npm_config_fund": "false",
            "npm_config_audit": "false",
            "npm_config_ignore_scripts": "true",
        }

    async def ensure(self) -> Path:
        """Install the toolchain for this lockfile if needed; return ``root``.

        Idempotent; an installed hash costs one stat. Concurrent callers in this process
        wait on an asyncio lock, other processes on an fcntl lock. Raises ToolchainError.
        """
        marker = self.root / _MARKER
        if not await asyncio.to_thread(marker.exists):
            async with self._lock:
                if not await asyncio.to_thread(marker.exists):
                    await self._install_with_file_lock()
        if self._entries is None:
            self._entries = await asyncio.to_thread(self._scan_entries)
        return self.root

    def _scan_entries(self) -> tuple[str, ...]:
        # Sandboxes may run as another user (see BubblewrapRunner): the root must be
        # traversable (mkdtemp made it 0700).
        self.root.chmod(0o755)
        return tuple(sorted(e for e in os.listdir(self.node_modules) if e not in _NOT_LINKED))

    async def _install_with_file_lock(self) -> None:
        await asyncio.to_thread(self.cache_dir.mkdir, parents=True, exist_ok=True)
        lock_path = self.cache_dir / f".{self.lock_hash}.lock"
        fd = await asyncio.to_thread(os.open, lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            # Polling a non-blocking flock keeps cancellation prompt and never strands a
            # thread holding the lock.
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(_LOCK_POLL_S)
            try:
                if not await asyncio.to_thread((self.root / _MARKER).exists):
                    await self._install()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    async def _install(self) -> None:
        logger.info("installing the plugin toolchain {} into {}", self.lock_hash[:12], self.root)
        tmp = Path(
            await asyncio.to_thread(
                tempfile.mkdtemp, prefix=f".{self.lock_hash[:12]}-", dir=self.cache_dir
            )
        )
        try:
            for name in ("package.json", "package-lock.json"):
                await asyncio.to_thread(shutil.copyfile, self.manifest_dir / name, tmp / name)
            argv = ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"]
            result = await self._npm_runner.run(argv, cwd=tmp, env=self.npm_env())
            if not result.ok:
                raise ToolchainError(
                    f"npm ci failed (exit {result.exit_code}): {result.output[-3000:]}"
                )
            await asyncio.to_thread(self._finish_install, tmp)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, tmp, True)
            raise
        logger.info("toolchain {} installed", self.lock_hash[:12])

    def _finish_install(self, tmp: Path) -> None:
        (tmp / "node_modules").mkdir(exist_ok=True)  # npm makes none for an empty lock
        (tmp / _MARKER).write_text(self.lock_hash + "\n")
        if self.root.exists():  # an incomplete leftover (no marker): move it away first
            trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=self.cache_dir))
            os.rename(self.root, trash / "old")
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(tmp, self.root)

    async def tools(self) -> Tools:
        """Entry points of tsc, tsup, vitest and biome in the installed toolchain."""
        await self.ensure()
        if self._tools is None:
            self._tools = await asyncio.to_thread(self._find_tools)
        return self._tools

    def _find_tools(self) -> Tools:
        nm = self.node_modules
        native = sorted(nm.glob("@biomejs/cli-*/biome"))
        biome = (str(native[0]),) if native else ("node", str(nm / "@biomejs/biome/bin/biome"))
        return Tools(
            tsc=("node", str(nm / "typescript/lib/tsc.js")),
            tsup=("node", str(nm / "tsup/dist/cli-default.js")),
            vitest=("node", str(nm / "vitest/vitest.mjs")),
            biome=biome,
        )

    async def link_into(self, workspace: Path) -> None:
        """Create ``workspace/node_modules`` as a link farm into the toolchain (~30 ms)."""
        await self.ensure()
        entries = self._entries or ()
        await asyncio.to_thread(self._link, workspace, entries)

    def _link(self, workspace: Path, entries: tuple[str, ...]) -> None:
        target = workspace / "node_modules"
        if target.is_symlink():
            raise ToolchainError(f"{target} is a symlink")
        target.mkdir(exist_ok=True)
        # Relative to the open folder: one syscall a link, no path walk or stat (the
        # ~180 links were most of a job's setup).
        folder = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for entry in entries:
                with contextlib.suppress(FileExistsError):  # linked already (a resumed job)
                    os.symlink(self.node_modules / entry, entry, dir_fd=folder)
        finally:
            os.close(folder)

    async def install_extra(
        self, workspace: Path, dependencies: Mapping[str, str], runner: CommandRunner
    ) -> dict[str, str]:
        """Install the spec's extra npm dependencies for one job; returns those installed.

        Tradeoff: the install needs the registry, so it cannot run in the no-network
        sandbox. It runs through ``runner`` (a HostRunner: scrubbed environment, own
        process group) with ``--ignore-scripts`` so no package code executes at install
        time, after strict validation of every name and range (no URLs, git, file: or
        aliases). The packages' code only ever runs later, inside the sandbox. They go to
        ``workspace/.deps`` (not into the link farm, where npm would try to reconcile
        the whole toolchain) and are linked into ``node_modules`` next to the toolchain's
        entries; ``--legacy-peer-deps`` stops npm from installing a second @elizaos/core,
        so peers resolve to the toolchain's copy. Packages the toolchain already provides
        are skipped: the toolchain's pinned version wins.
        Raises DependencyRejected.
        """
        problems = [
            f"{name}@{spec}"
            for name, spec in dependencies.items()
            if not valid_package_name(name) or not valid_version_range(spec)
        ]
        if len(dependencies) > _MAX_EXTRA_DEPENDENCIES:
            problems.append(f"more than {_MAX_EXTRA_DEPENDENCIES} dependencies")
        if problems:
            raise DependencyRejected("invalid dependency specifiers: " + ", ".join(problems))
        await self.ensure()
        provided = set(self._entries or ()) | {*self.dependencies, *self.dev_dependencies}
        wanted = {n: v for n, v in sorted(dependencies.items()) if n not in provided}
        skipped = sorted(set(dependencies) - set(wanted))
        if skipped:
            logger.info("extra dependencies provided by the toolchain: {}", ", ".join(skipped))
        if not wanted:
            return {}
        deps_dir = workspace / ".deps"
        manifest = {"name": "auton8n-extra-deps", "private": True, "dependencies": wanted}
        await asyncio.to_thread(deps_dir.mkdir, exist_ok=True)
        await asyncio.to_thread((deps_dir / "package.json").write_text, json.dumps(manifest))
        argv = [
            "npm",
            "install",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--prefer-offline",
            "--legacy-peer-deps",
            "--no-package-lock",
        ]
        result = await runner.run(argv, cwd=deps_dir, env=self.npm_env())
        if not result.ok:
            raise DependencyRejected(
                f"npm install of {', '.join(wanted)} failed (exit {result.exit_code}): "
                + result.output[-3000:]
            )
        await asyncio.to_thread(self._link_extra, workspace, deps_dir / "node_modules")
        return wanted

    def _link_extra(self, workspace: Path, installed: Path) -> None:
        target = workspace / "node_modules"
        target.mkdir(exist_ok=True)
        for entry in sorted(os.listdir(installed)):
            link = target / entry
            if entry.startswith(".") or link.is_symlink() or link.exists():
                continue  # the toolchain's entry (or scope directory) wins
            os.symlink(installed / entry, link)

    def project_files(self, *, name: str, description: str) -> dict[str, str]:
        """Config files that fit this toolchain's versions (the workspace's baseline).

        package.json is not here: the pipeline derives it from the merge policy.
        """
        schema = self.dev_dependencies.get("@biomejs/biome", "")
        return {
            "tsconfig.json": json.dumps(_TSCONFIG, indent=2) + "\n",
            "biome.json": json.dumps({"$schema": _biome_schema(schema), **_BIOME}, indent=2) + "\n",
            "tsup.config.ts": _TSUP_CONFIG,
            "vitest.config.ts": _VITEST_CONFIG,
            "README.md": f"# {name}\n\n{description or 'An ElizaOS plugin.'}\n",
        }


def _biome_schema(version: str) -> str:
    return f"https://biomejs.dev/schemas/{version}/schema.json" if version else ""


# @elizaos/core 1.7's declarations resolve only with moduleResolution Bundler, and
# setTimeout/process need @types/node (TOOLCHAIN.md).
_TSCONFIG: dict[str, Any] = {
    "compilerOptions": {
        "target": "ES2022",
        "module": "ESNext",
        "moduleResolution": "Bundler",
        "lib": ["ES2022"],
        "types": ["node"],
        **dict.fromkeys(
            "strict noUncheckedIndexedAccess noUnusedLocals noUnusedParameters "
            "verbatimModuleSyntax isolatedModules skipLibCheck esModuleInterop "
            "forceConsistentCasingInFileNames resolveJsonModule declaration".split(),
            True,
        ),
        "outDir": "dist",
        "rootDir": "src",
    },
    "include": ["src/**/*.ts"],
    "exclude": ["node_modules", "dist"],
}

# "preset" (not the deprecated "recommended": true) and checked to report findings.
_BIOME: dict[str, Any] = {
    "vcs": {"enabled": False},
    "files": {"includes": ["src/**/*.ts", "*.config.ts"]},
    "formatter": {"enabled": True, "indentStyle": "space", "indentWidth": 2, "lineWidth": 100},
    "linter": {"enabled": True, "rules": {"preset": "recommended"}},
    "javascript": {"formatter": {"quoteStyle": "double"}},
}

_TSUP_CONFIG = """\
import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/index.ts"],
  outDir: "dist",
  format: ["esm"],
  dts: true,
  sourcemap: true,
  clean: true,
  external: ["@elizaos/core", "zod"],
});
"""

_VITEST_CONFIG = """\
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
    testTimeout: 30000,
    hookTimeout: 30000,
  },
});
"""
