"""Run a command as a child process: the plumbing every runner shares, and the host runners.

Every command starts with an environment built from scratch (nothing of the server's
environment is inherited, so ``ANTHROPIC_API_KEY`` never reaches a child), in its own
session/process group; merged stdout+stderr is read incrementally with a head+tail cap;
on timeout or asyncio cancellation the whole group is killed (SIGTERM, ``kill_grace_s``,
SIGKILL). Cancellation is re-raised, never swallowed. Commands run niced
(``BUILD_NICENESS``) so that the server's event loop keeps the CPU it needs.

Runners here (``server.pipeline.sandbox`` has the one for generated code):

- ``HostRunner``: for trusted commands that need the network (``npm ci`` of our own
  lockfile, ``npm install --ignore-scripts`` of validated extra dependencies).
- ``UnsandboxedRunner``: generated code without isolation, only when explicitly
  configured; warns loudly. A setsid'd grandchild can escape its group kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import tempfile
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

__all__ = [
    "BUILD_NICENESS",
    "SYSTEM_PATH",
    "CommandResult",
    "CommandRunner",
    "HostRunner",
    "SandboxError",
    "SandboxLimits",
    "UnsandboxedRunner",
    "base_env",
    "checked_env",
    "execute",
    "prlimit_prefix",
    "tool_dirs",
]

_READ_CHUNK = 64 * 1024
# Commands run at this niceness (``nice -n``): builds take every idle cycle, but the
# server's event loop gets the CPU first when it needs it, so RPCs stay fast while jobs
# build (2 cores, node tools that use both). 0 runs them at the server's own priority.
BUILD_NICENESS = 10
_DRAIN_AFTER_EXIT_S = 1.0
SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]  # the command as asked for (without the sandbox wrapper)
    exit_code: int  # negative: killed by that signal
    output: str  # stdout+stderr merged, capped (head + tail)
    truncated: bool
    timed_out: bool
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 300.0  # wall clock per command
    output_limit_bytes: int = 1_000_000  # output kept per command
    max_processes: int = 256  # RLIMIT_NPROC (tasks, threads included)
    max_file_size_bytes: int = 64 * 1024 * 1024  # RLIMIT_FSIZE
    max_open_files: int = 4096  # RLIMIT_NOFILE
    cpu_seconds: int = 300  # RLIMIT_CPU, per process
    # RLIMIT_DATA: a process's private writable memory (V8 heap, buffers, Wasm, native).
    # Not RLIMIT_AS: V8 and Go reserve far more address space than they use.
    max_data_bytes: int = 1024 * 1024 * 1024
    # V8 --max-old-space-size in NODE_OPTIONS; 0: none. Any V8 flag there costs every Node
    # process ~8 ms at start and tsc/vitest 4-7% CPU (BENCHMARKS.md), and bounds only the
    # JS heap, so max_data_bytes is the memory bound.
    node_heap_mb: int = 0
    tmp_size_bytes: int = 256 * 1024 * 1024  # the sandbox's /tmp (a tmpfs, i.e. memory)
    kill_grace_s: float = 0.5  # between SIGTERM and SIGKILL: build tools need no long goodbye


class SandboxError(Exception):
    """The runner itself failed (bwrap missing or refusing), not the command."""

    reason = "SANDBOX_FAILED"


class CommandRunner(Protocol):
    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        timeout_s: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run ``argv`` in ``cwd`` and return its result; never raises for the command's
        own failure or timeout. Raises SandboxError if the runner cannot run it."""
        ...


class _CappedOutput:
    """Keeps the first and the last ``limit/2`` bytes of a stream."""

    def __init__(self, limit: int) -> None:
        self._half = max(limit // 2, 1)
        self._head = bytearray()
        self._tail: deque[bytes] = deque()
        self._tail_len = 0
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self._half - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data:
            return
        self._tail.append(data)
        self._tail_len += len(data)
        while self._tail_len - len(self._tail[0]) >= self._half:
            self._tail_len -= len(self._tail.popleft())

    @property
    def truncated(self) -> bool:
        return self.total > len(self._head) + min(self._tail_len, self._half)

    def text(self) -> str:
        tail = b"".join(self._tail)[-self._half :] if self._tail else b""
        kept = len(self._head) + len(tail)
        if self.total <= kept:
            return (bytes(self._head) + tail).decode("utf-8", errors="replace")
        marker = f"\n[... {self.total - kept} bytes of output omitted ...]\n"
        head = bytes(self._head).decode("utf-8", errors="replace")
        return head + marker + tail.decode("utf-8", errors="replace")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _kill_group(proc: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGTERM the process group, wait ``grace_s``, SIGKILL whatever is left."""
    pgid = proc.pid  # start_new_session=True: the child leads its own group
    try:
        _signal_group(pgid, signal.SIGTERM)
        try:
            async with asyncio.timeout(grace_s):
                await proc.wait()
        except TimeoutError:
            pass
    finally:
        _signal_group(pgid, signal.SIGKILL)
    await proc.wait()


async def _pump(stream: asyncio.StreamReader, sink: _CappedOutput) -> None:
    while chunk := await stream.read(_READ_CHUNK):
        sink.feed(chunk)


async def execute(
    argv: Sequence[str],
    *,
    shown_argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    limits: SandboxLimits,
    as_user: tuple[int, int] | None = None,
) -> CommandResult:
    """Run ``argv`` (already wrapped by the runner) as described in the module docstring;
    ``shown_argv`` is what the result reports. Raises SandboxError if it cannot start."""
    started = time.monotonic()
    identity: dict[str, Any] = {}
    if as_user is not None:
        setpriv = shutil.which("setpriv")
        if setpriv:
            # Switch users in the exec'd program, not in the forked child: with user=/group=
            # Python must fork() instead of vfork(), and a fork() of this multi-threaded
            # gRPC process runs gRPC's fork handlers (seen to hang and crash children).
            argv = [
                setpriv,
                f"--reuid={as_user[0]}",
                f"--regid={as_user[1]}",
                "--clear-groups",
                "--",
                *argv,
            ]
        else:
            identity = {"user": as_user[0], "group": as_user[1], "extra_groups": []}
    nice = shutil.which("nice", path="/usr/bin:/bin") if BUILD_NICENESS else None
    if nice:
        # Inherited by every process of the command (set before it forks anything).
        argv = [nice, "-n", str(BUILD_NICENESS), *argv]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            **identity,
        )
    except OSError as exc:
        raise SandboxError(f"cannot start {argv[0]!r}: {exc}") from exc
    assert proc.stdout is not None
    sink = _CappedOutput(limits.output_limit_bytes)
    reader = asyncio.create_task(_pump(proc.stdout, sink))
    timed_out = False
    try:
        try:
            async with asyncio.timeout(timeout_s):
                await proc.wait()
        except TimeoutError:
            timed_out = True
            await _kill_group(proc, limits.kill_grace_s)
        # Background members of the group must not outlive the command.
        _signal_group(proc.pid, signal.SIGKILL)
        # A child in another session may still hold the pipe open: drain briefly.
        await asyncio.wait({reader}, timeout=_DRAIN_AFTER_EXIT_S)
    except asyncio.CancelledError:
        await _kill_group(proc, limits.kill_grace_s)
        raise
    finally:
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGKILL)
        if not reader.done():
            reader.cancel()
            # A pipe nobody reads any more may never see its EOF: close the transport
            # (and its pipes) now rather than leave it to the garbage collector.
            transport = getattr(proc, "_transport", None)
            if transport is not None:
                transport.close()
    returncode = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    return CommandResult(
        argv=tuple(shown_argv),
        exit_code=returncode,
        output=sink.text(),
        truncated=sink.truncated,
        timed_out=timed_out,
        duration_s=time.monotonic() - started,
    )


def checked_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """A caller's extra variables, refused (ValueError) unless every name is plain."""
    out: dict[str, str] = {}
    for key, value in (env or {}).items():
        if not _ENV_NAME.match(key) or "\0" in value:
            raise ValueError(f"invalid environment variable {key!r}")
        out[key] = value
    return out


_FIXED_ENV = dict(TMPDIR="/tmp", LANG="C.UTF-8", TZ="UTC", TERM="dumb", NO_COLOR="1", CI="true")


def base_env(*, path: Sequence[str], home: str, limits: SandboxLimits | None) -> dict[str, str]:
    """The whole environment of a command before the caller's extras (no host variable)."""
    env = {"PATH": ":".join(dict.fromkeys(path)), "HOME": home, **_FIXED_ENV}
    if limits is not None and limits.node_heap_mb > 0:
        env["NODE_OPTIONS"] = f"--max-old-space-size={limits.node_heap_mb}"
    return env


def prlimit_prefix(limits: SandboxLimits, prlimit: str) -> list[str]:
    """``prlimit ... --``: the command's rlimits, set in the exec'd program."""
    return [
        prlimit,
        *f"--nproc={limits.max_processes} --fsize={limits.max_file_size_bytes}".split(),
        f"--data={limits.max_data_bytes}",  # bytes: prlimit reads "1G" as something else
        *f"--nofile={limits.max_open_files} --cpu={limits.cpu_seconds} --core=0 --".split(),
    ]


def tool_dirs() -> list[str]:
    """Directories of the host's node/npm (bound and put on PATH when outside /usr)."""
    dirs: list[str] = []
    for tool in ("node", "npm"):
        found = shutil.which(tool)
        if found:
            dirs.append(str(Path(found).resolve().parent))
    return dirs


class HostRunner:
    """Runs *trusted* commands on the host (npm with our own manifest): scrubbed
    environment, own process group, output cap, network allowed, no isolation.
    ``passthrough`` names host variables to keep (proxy and registry settings)."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        passthrough: Mapping[str, str] | None = None,
        apply_rlimits: bool = False,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self._passthrough = checked_env(passthrough)
        prlimit = shutil.which("prlimit", path="/usr/bin:/bin")
        self._prlimit = prlimit if apply_rlimits else None
        self._path = [*tool_dirs(), *SYSTEM_PATH]
        self._tmpdir = tempfile.gettempdir()  # probes the file system once: not on the loop

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        timeout_s: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        if not argv:
            raise ValueError("empty argv")
        heap = self.limits if self._prlimit else None
        path = [f"{cwd}/node_modules/.bin", *self._path]
        full_env = base_env(path=path, home=str(cwd), limits=heap)
        full_env["TMPDIR"] = self._tmpdir
        full_env.update(self._passthrough)
        full_env.update(checked_env(env))
        prefix = prlimit_prefix(self.limits, self._prlimit) if self._prlimit else []
        return await execute(
            [*prefix, *argv],
            shown_argv=argv,
            cwd=cwd,
            env=full_env,
            timeout_s=timeout_s or self.limits.timeout_s,
            limits=self.limits,
        )


class UnsandboxedRunner(HostRunner):
    """Generated code without a sandbox: scrubbed env, rlimits, group kill, but full
    file-system and network access. Only for explicitly configured development use."""

    def __init__(
        self, toolchain_dir: Path | None = None, limits: SandboxLimits | None = None
    ) -> None:
        # toolchain_dir: accepted for symmetry with BubblewrapRunner (nothing to bind).
        super().__init__(limits, apply_rlimits=True)
        self.toolchain_dir = toolchain_dir
        logger.warning(
            "UNSANDBOXED command runner: generated code runs with the server's file-system "
            "and network access (only the environment is scrubbed). Never use this in "
            "production; install bubblewrap instead."
        )
