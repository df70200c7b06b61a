"""A job's workspace directory and the only way generated files get into it.

Every path a generator names is checked before anything is written: relative, plain
segments (no ``..``, ``.``, empty, hidden or odd characters), no backslash, NUL or
control characters, an allowed top-level file or folder, an allowed extension, size and
count limits. Writing walks the path with directory file descriptors opened
``O_NOFOLLOW`` and creates files ``O_EXCL | O_NOFOLLOW``, so a symlink anywhere on the
way (even one planted by sandboxed code between two iterations) is refused instead of
followed, and nothing is ever written outside the workspace.

Rejections: the good files are written and the bad ones reported (``WriteReport.rejected``)
rather than all-or-nothing, because one bad path from a model should not waste the
whole iteration; the pipeline feeds each rejection back to the generator as a
diagnostic. Nothing outside the workspace is touched either way.

``package.json`` goes through a merge policy (``PackagePolicy``): the generator may add
fields, dependencies and scripts, but ``name``, ``version`` and ``type`` stay fixed, the
toolchain's and the spec's dependency versions stay pinned and install-time lifecycle
scripts are dropped.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.pipeline.toolchain import valid_package_name, valid_version_range

__all__ = [
    "PackagePolicy",
    "PathRejected",
    "Workspace",
    "WorkspaceLimits",
    "WriteReport",
    "check_path",
]

TOP_LEVEL_FILES = frozenset(
    "package.json README.md CHANGELOG.md tsconfig.json biome.json vitest.config.ts "
    "tsup.config.ts .gitignore".split()
)
_TSCONFIG_VARIANT = re.compile(r"^tsconfig\.[a-z0-9-]{1,30}\.json$")
# Tools pick up nested configs (biome 2 does): only the top-level ones may exist.
_NESTED_CONFIG = re.compile(r"^(?:biome\.jsonc?|package\.json|tsconfig(?:\.[a-z0-9-]+)?\.json)$")
TOP_LEVEL_DIRS = frozenset({"src"})
EXTENSIONS = (".ts", ".json", ".md")
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")
_LIFECYCLE_SCRIPTS = frozenset(
    "preinstall install postinstall prepare preprepare postprepare prepublish "
    "prepublishOnly prepack postpack dependencies".split()
)
_DROPPED_FIELDS = frozenset(
    "overrides resolutions workspaces bundleDependencies bundledDependencies".split()
)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PathRejected(Exception):
    """A generated path (or its content) that was not written, and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path!r}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class WorkspaceLimits:
    max_file_bytes: int = 256 * 1024
    max_total_bytes: int = 4 * 1024 * 1024
    max_files: int = 200
    max_path_chars: int = 200
    max_depth: int = 8


@dataclass(frozen=True)
class PackagePolicy:
    """What the generator cannot change in package.json."""

    name: str
    version: str
    dependencies: Mapping[str, str]  # pinned: the toolchain's and the spec's
    dev_dependencies: Mapping[str, str]  # pinned: the toolchain's tools
    scripts: Mapping[str, str] = field(default_factory=dict)  # fixed script bodies
    base: Mapping[str, Any] = field(default_factory=dict)  # default fields (description...)

    def render(self, generated: Mapping[str, Any] | None = None) -> tuple[str, list[str]]:
        """Merge ``generated`` (the generator's package.json) into the policy.

        Returns (the package.json text, notes on what the policy overrode).
        """
        notes: list[str] = []
        generated = dict(generated or {})
        out: dict[str, Any] = {**self.base, **generated}
        for key, fixed in (("name", self.name), ("version", self.version), ("type", "module")):
            if key in generated and generated[key] != fixed:
                notes.append(f"package.json: {key} stays {fixed!r}")
            out[key] = fixed
        pinned = {**self.dependencies, **self.dev_dependencies}
        for section, own in (
            ("dependencies", self.dependencies),
            ("devDependencies", self.dev_dependencies),
        ):
            merged = dict(self.base.get(section) or {})
            for dep, spec in _as_str_map(generated.get(section)).items():
                if not (valid_package_name(dep) and valid_version_range(spec)):
                    notes.append(f"package.json: dropped invalid {section} entry {dep}@{spec}")
                elif dep in pinned and pinned[dep] != spec:
                    notes.append(f"package.json: {dep} stays pinned at {pinned[dep]}")
                elif dep not in pinned:
                    notes.append(
                        f"package.json: {dep} is not installed (only the toolchain and the "
                        "spec's dependencies are available)"
                    )
                    merged[dep] = spec
            merged.update(own)
            out[section] = dict(sorted(merged.items()))
        for section in ("peerDependencies", "optionalDependencies"):
            if section in generated:
                entries = _as_str_map(generated[section])
                out[section] = {
                    d: v
                    for d, v in entries.items()
                    if valid_package_name(d) and valid_version_range(v)
                }
                notes += [
                    f"package.json: dropped invalid {section} entry {d}@{v}"
                    for d, v in entries.items()
                    if d not in out[section]
                ]
        for key in _DROPPED_FIELDS.intersection(generated):
            notes.append(f"package.json: dropped {key!r} (it can redirect dependencies)")
            del out[key]
        scripts = dict(self.base.get("scripts") or {})
        for script, body in _as_str_map(generated.get("scripts")).items():
            if script in _LIFECYCLE_SCRIPTS or script.startswith(("preinstall", "postinstall")):
                notes.append(f"package.json: dropped lifecycle script {script!r}")
            elif script in self.scripts and self.scripts[script] != body:
                notes.append(f"package.json: script {script!r} stays {self.scripts[script]!r}")
            else:
                scripts[script] = body
        scripts.update(self.scripts)
        out["scripts"] = scripts
        return json.dumps(out, indent=2, ensure_ascii=False) + "\n", notes


def _as_str_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str)}


@dataclass(frozen=True)
class WriteReport:
    written: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    rejected: tuple[PathRejected, ...] = ()
    notes: tuple[str, ...] = ()  # package.json merge notes


def check_path(path: str, limits: WorkspaceLimits) -> str:
    """Lexical checks of one generated path; returns it or raises PathRejected."""
    if not isinstance(path, str) or not path:
        raise PathRejected(str(path), "empty path")
    if len(path) > limits.max_path_chars:
        raise PathRejected(path, f"longer than {limits.max_path_chars} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise PathRejected(path, "control or NUL character")
    if "\\" in path:
        raise PathRejected(path, "backslash in path")
    if path.startswith("/") or ":" in path:
        raise PathRejected(path, "absolute path")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise PathRejected(path, "empty, '.' or '..' segment")
    if len(parts) == 1 and path in TOP_LEVEL_FILES:
        return path
    if len(parts) > limits.max_depth:
        raise PathRejected(path, f"deeper than {limits.max_depth} levels")
    bad = next((p for p in parts if not _SEGMENT.match(p)), None)
    if bad is not None:
        raise PathRejected(
            path, f"segment {bad!r} is hidden or has characters outside [A-Za-z0-9._-]"
        )
    if len(parts) == 1:
        if not _TSCONFIG_VARIANT.match(path):
            raise PathRejected(path, "not an allowed top-level file")
    elif _NESTED_CONFIG.match(parts[-1]):
        raise PathRejected(path, "nested tool configuration files are not allowed")
    elif parts[0] not in TOP_LEVEL_DIRS:
        raise PathRejected(
            path, f"outside the allowed folders ({', '.join(sorted(TOP_LEVEL_DIRS))}/)"
        )
    if not path.endswith(EXTENSIONS):
        raise PathRejected(path, f"extension not allowed (only {', '.join(EXTENSIONS)})")
    return path


def _open_dir(root_fd: int, path: str, parts: Sequence[str], *, create: bool) -> int:
    """An fd of the directory ``parts`` under root, never following a symlink."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise PathRejected(path, f"'{part}' is a symlink")
            if not stat.S_ISDIR(st.st_mode):
                raise PathRejected(path, f"'{part}' is not a directory")
            next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        return fd
    except BaseException:
        os.close(fd)
        raise


class Workspace:
    """One job's directory. All blocking file work runs in a thread."""

    def __init__(
        self,
        root: Path,
        *,
        policy: PackagePolicy | None = None,
        limits: WorkspaceLimits | None = None,
    ) -> None:
        self.root = root
        self.policy = policy
        self.limits = limits or WorkspaceLimits()

    async def create(self) -> None:
        """Make the directory, empty (a leftover of an earlier attempt is removed)."""
        await asyncio.to_thread(self._create)

    def _create(self) -> None:
        if self.root.is_symlink() or self.root.exists():
            self._remove()
        self.root.mkdir(parents=True)
        self.root = self.root.resolve()

    async def remove(self) -> None:
        """Delete the whole workspace (idempotent)."""
        await asyncio.to_thread(self._remove)

    def _remove(self) -> None:
        if self.root.is_symlink():
            self.root.unlink()
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    async def write_files(
        self, files: Mapping[str, str], deleted: Sequence[str] = ()
    ) -> WriteReport:
        """Write the acceptable files, delete the acceptable deletions, report the rest."""
        return await asyncio.to_thread(self._write_files, dict(files), tuple(deleted))

    def _write_files(self, files: dict[str, str], deleted: tuple[str, ...]) -> WriteReport:
        limits = self.limits
        rejected: list[PathRejected] = []
        notes: list[str] = []
        accepted: dict[str, bytes] = {}
        for path in sorted(files):
            content = files[path]
            try:
                check_path(path, limits)
                if not isinstance(content, str):
                    raise PathRejected(path, "content is not text")
                if path == "package.json":
                    content = self._merge_package(path, content, notes)
                data = content.encode("utf-8")
                if len(data) > limits.max_file_bytes:
                    raise PathRejected(path, f"larger than {limits.max_file_bytes} bytes")
                accepted[path] = data
            except PathRejected as exc:
                rejected.append(exc)
        existing = self._existing_sizes()
        removals: list[str] = []
        for path in sorted(set(deleted)):
            try:
                check_path(path, limits)
                if path == "package.json":
                    raise PathRejected(path, "package.json cannot be deleted")
                removals.append(path)
            except PathRejected as exc:
                rejected.append(exc)
        sizes = {p: s for p, s in existing.items() if p not in removals}
        for path in list(accepted):
            sizes[path] = len(accepted[path])
            if len(sizes) > limits.max_files:
                rejected.append(PathRejected(path, f"more than {limits.max_files} files"))
            elif sum(sizes.values()) > limits.max_total_bytes:
                rejected.append(PathRejected(path, f"more than {limits.max_total_bytes} bytes"))
            else:
                continue
            del accepted[path]
            if path in existing:
                sizes[path] = existing[path]
            else:
                del sizes[path]
        written, gone = [], []
        root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for path, data in accepted.items():
                try:
                    self._write_one(root_fd, path, data)
                    written.append(path)
                except PathRejected as exc:
                    rejected.append(exc)
            for path in removals:
                try:
                    if self._delete_one(root_fd, path):
                        gone.append(path)
                except PathRejected as exc:
                    rejected.append(exc)
        finally:
            os.close(root_fd)
        return WriteReport(tuple(written), tuple(gone), tuple(rejected), tuple(notes))

    def _merge_package(self, path: str, content: str, notes: list[str]) -> str:
        try:
            generated = json.loads(content)
        except ValueError as exc:
            raise PathRejected(path, f"invalid JSON: {exc}") from exc
        if not isinstance(generated, dict):
            raise PathRejected(path, "package.json must be a JSON object")
        if self.policy is None:
            return content
        text, merge_notes = self.policy.render(generated)
        notes.extend(merge_notes)
        return text

    @staticmethod
    def _write_one(root_fd: int, path: str, data: bytes) -> None:
        *dirs, name = path.split("/")
        dir_fd = _open_dir(root_fd, path, dirs, create=True)
        try:
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                if not stat.S_ISREG(st.st_mode):
                    raise PathRejected(path, "exists and is not a regular file")
                # Replace, never write through: the old inode may be hard-linked.
                os.unlink(name, dir_fd=dir_fd)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        finally:
            os.close(dir_fd)

    @staticmethod
    def _delete_one(root_fd: int, path: str) -> bool:
        *dirs, name = path.split("/")
        try:
            dir_fd = _open_dir(root_fd, path, dirs, create=False)
        except FileNotFoundError:
            return False
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
                raise PathRejected(path, "not a regular file")
            os.unlink(name, dir_fd=dir_fd)
            return True
        except FileNotFoundError:
            return False
        finally:
            os.close(dir_fd)

    def _source_files(self) -> Iterator[tuple[str, os.stat_result]]:
        """(relative path, lstat) of every regular file a generator may write."""
        root = self.root
        for entry in sorted(os.listdir(root)) if root.is_dir() else ():
            st = os.lstat(root / entry)
            if stat.S_ISREG(st.st_mode):
                try:
                    yield check_path(entry, self.limits), st
                except PathRejected:
                    continue
            elif stat.S_ISDIR(st.st_mode) and entry in TOP_LEVEL_DIRS:
                for dirpath, dirnames, filenames in os.walk(root / entry, followlinks=False):
                    dirnames.sort()
                    for filename in sorted(filenames):
                        full = Path(dirpath) / filename
                        st = os.lstat(full)
                        rel = full.relative_to(root).as_posix()
                        try:
                            if stat.S_ISREG(st.st_mode):
                                yield check_path(rel, self.limits), st
                        except PathRejected:
                            continue

    def _existing_sizes(self) -> dict[str, int]:
        return {path: st.st_size for path, st in self._source_files()}

    async def read_sources(self) -> dict[str, str]:
        """Every file a generator could have written (src/**, package.json, README.md,
        configs): what is persisted per iteration, packaged and shown to the generator.
        Never node_modules, dist, caches or symlinks."""
        return await asyncio.to_thread(self._read_sources)

    def _read_sources(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for path, st in self._source_files():
            if st.st_size <= self.limits.max_file_bytes:
                try:  # sandboxed code may have made it unreadable: then it does not count
                    data = (self.root / path).read_bytes()
                except OSError:
                    continue
                out[path] = data.decode("utf-8", errors="replace")
        return out

    async def remove_heavy(self) -> None:
        """Delete everything but the sources (node_modules, dist, .deps, caches, reports)."""
        await asyncio.to_thread(self._remove_heavy)

    def _remove_heavy(self) -> None:
        for entry in os.listdir(self.root):
            full = self.root / entry
            st = os.lstat(full)
            keep_file = stat.S_ISREG(st.st_mode) and (
                entry in TOP_LEVEL_FILES or _TSCONFIG_VARIANT.match(entry)
            )
            keep_dir = stat.S_ISDIR(st.st_mode) and entry in TOP_LEVEL_DIRS
            if keep_file or keep_dir:
                continue
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(full, ignore_errors=True)
            else:
                full.unlink(missing_ok=True)
