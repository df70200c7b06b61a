"""Run commands: generated code inside bubblewrap, trusted npm on the host.

Every runner starts the command with an environment built from scratch (nothing of the
server's environment is inherited, so ``ANTHROPIC_API_KEY`` never reaches a child), in
its own session/process group, reads merged stdout+stderr incrementally with a head+tail
cap, and on timeout or asyncio cancellation kills the whole group (SIGTERM,
``kill_grace_s``, SIGKILL). Cancellation is re-raised, never swallowed. Commands run
niced (``BUILD_NICENESS``) so that the server's event loop keeps the CPU it needs.

Runners:

- ``BubblewrapRunner``: for generated code. No network, no capabilities, own user/pid/
  ipc/uts/cgroup namespaces, ``/usr`` and a few ``/etc`` files read-only, a read-only
  root, a size-capped private ``/tmp``, the toolchain read-only at its own path, only
  the workspace writable; rlimits via ``prlimit`` inside the sandbox (no preexec_fn).
  The pid namespace means killing bwrap kills every process of the command, setsid'd
  grandchildren included. The kernel never applies RLIMIT_NPROC to host uid 0, not even
  inside a user namespace, so a root server runs sandboxes as nobody (see __init__).
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
import stat
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
    "BubblewrapRunner",
    "CommandResult",
    "CommandRunner",
    "HostRunner",
    "SandboxError",
    "SandboxLimits",
    "UnsandboxedRunner",
    "probe_sandbox",
]

_READ_CHUNK = 64 * 1024
# Commands run at this niceness (``nice -n``): builds take every idle cycle, but the
# server's event loop gets the CPU first when it needs it, so RPCs stay fast while jobs
# build (2 cores, node tools that use both). 0 runs them at the server's own priority.
BUILD_NICENESS = 10
_DRAIN_AFTER_EXIT_S = 1.0
_SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
_NOBODY = 65534
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# /etc files a Node toolchain may read; each is bound only if it exists.
_ETC_READ_ONLY = (
    "/etc/alternatives /etc/ld.so.cache /etc/ld.so.conf /etc/ld.so.conf.d /etc/ssl "
    "/etc/ca-certificates /etc/passwd /etc/group /etc/nsswitch.conf /etc/localtime /etc/hosts"
).split()
# --unshare-all: network, pid, ipc, uts, cgroup; plus an explicit user namespace so
# --disable-userns can forbid nested ones. --cap-drop ALL: as root, bwrap otherwise
# keeps every capability inside the namespace (enough to remount binds read-write).
_BWRAP_ISOLATION = (
    "--unshare-all --unshare-user --disable-userns --cap-drop ALL --die-with-parent "
    "--new-session --clearenv --ro-bind /usr /usr --symlink usr/bin /bin "
    "--symlink usr/sbin /sbin --symlink usr/lib /lib"
).split()


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
    node_heap_mb: int = 512  # V8 --max-old-space-size (RLIMIT_AS breaks vitest/tsc)
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


async def _execute(
    argv: Sequence[str],
    *,
    shown_argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    limits: SandboxLimits,
    as_user: tuple[int, int] | None = None,
) -> CommandResult:
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


def _checked_env(env: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (env or {}).items():
        if not _ENV_NAME.match(key) or "\0" in value:
            raise ValueError(f"invalid environment variable {key!r}")
        out[key] = value
    return out


_FIXED_ENV = dict(TMPDIR="/tmp", LANG="C.UTF-8", TZ="UTC", TERM="dumb", NO_COLOR="1", CI="true")


def _base_env(*, path: Sequence[str], home: str, limits: SandboxLimits | None) -> dict[str, str]:
    env = {"PATH": ":".join(dict.fromkeys(path)), "HOME": home, **_FIXED_ENV}
    if limits is not None:
        env["NODE_OPTIONS"] = f"--max-old-space-size={limits.node_heap_mb}"
    return env


def _prlimit_prefix(limits: SandboxLimits, prlimit: str) -> list[str]:
    return [
        prlimit,
        *f"--nproc={limits.max_processes} --fsize={limits.max_file_size_bytes}".split(),
        *f"--nofile={limits.max_open_files} --cpu={limits.cpu_seconds} --core=0 --".split(),
    ]


def _tool_dirs() -> list[str]:
    """Directories of the host's node/npm (bound and put on PATH when outside /usr)."""
    dirs: list[str] = []
    for tool in ("node", "npm"):
        found = shutil.which(tool)
        if found:
            dirs.append(str(Path(found).resolve().parent))
    return dirs


def _reachable(path: Path, uid: int, gid: int) -> bool:
    """Can (uid, gid) traverse every directory from / down to ``path``?"""
    for directory in (path, *path.parents):
        st = os.stat(directory)
        if not (
            st.st_mode & stat.S_IXOTH
            or (st.st_uid == uid and st.st_mode & stat.S_IXUSR)
            or (st.st_gid == gid and st.st_mode & stat.S_IXGRP)
        ):
            return False
    return True


def _hand_over(workspace: Path, uid: int, gid: int) -> None:
    """chown the workspace tree to the sandbox user without following any symlink.

    node_modules and .deps are handed over as directories only (their entries are
    links into the toolchain or packages npm installed world-readable)."""
    os.chown(workspace, uid, gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(workspace, followlinks=False):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)
        if Path(dirpath) == workspace:
            dirnames[:] = [d for d in dirnames if d not in ("node_modules", ".deps")]


class BubblewrapRunner:
    """Runs generated code in a bubblewrap sandbox (see the module docstring)."""

    def __init__(
        self,
        toolchain_dir: Path,
        limits: SandboxLimits | None = None,
        *,
        bwrap: str = "bwrap",
        sandbox_user: tuple[int, int] | None = None,
    ) -> None:
        """``sandbox_user`` (uid, gid): who runs bwrap. Default: this process's user, but
        never host root: the kernel exempts uid 0 from RLIMIT_NPROC even inside a user
        namespace (a fork bomb would get ~900 tasks instead of 64), so a root server runs
        sandboxes as nobody (65534) and hands the workspace to that user before each
        command. The workspace's and toolchain's parent directories must then be
        traversable by that user (probe_sandbox reports it when they are not)."""
        self.toolchain_dir = toolchain_dir
        if sandbox_user is None and os.geteuid() == 0:
            sandbox_user = (_NOBODY, _NOBODY)
        if sandbox_user == (os.geteuid(), os.getegid()):
            sandbox_user = None  # already that user: nothing to switch or hand over
        self.sandbox_user = sandbox_user
        self._warned_root = False
        self.limits = limits or SandboxLimits()
        self._bwrap = shutil.which(bwrap) or bwrap
        prlimit = shutil.which("prlimit", path="/usr/bin:/bin")
        self._prlimit = str(Path(prlimit).resolve()) if prlimit else None
        if self._prlimit is None or not self._prlimit.startswith("/usr/"):
            logger.warning("prlimit (util-linux) not under /usr: the sandbox runs without rlimits")
            self._prlimit = None
        self._node_dirs = _tool_dirs()

    def _prepare(self, workspace: Path, user: tuple[int, int]) -> bool:
        """Hand the workspace to the sandbox user; False if that user cannot reach it
        (bwrap resolves every bind source as the user it runs as)."""
        if not (_reachable(workspace.parent, *user) and _reachable(self.toolchain_dir, *user)):
            if not self._warned_root:
                self._warned_root = True
                logger.warning(
                    "sandbox runs as ROOT for {}: uid {} cannot reach it or the toolchain "
                    "(a parent directory is not world-executable), and root is exempt from "
                    "RLIMIT_NPROC. Make the data directory's parents traversable (o+x).",
                    workspace,
                    user[0],
                )
            # An earlier command may have handed it over: take it back, or root in the
            # sandbox's user namespace could not write files owned by an unmapped user.
            _hand_over(workspace, os.geteuid(), os.getegid())
            return False
        _hand_over(workspace, *user)
        return True

    def command_line(
        self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None
    ) -> list[str]:
        """The full bwrap argv for ``argv`` (for logs, tests and the probe)."""
        workspace = str(cwd)
        toolchain = str(self.toolchain_dir)
        args = [self._bwrap, *_BWRAP_ISOLATION]
        if Path("/usr/lib64").exists():
            args += ["--symlink", "usr/lib64", "/lib64"]
        for item in _ETC_READ_ONLY:
            args += ["--ro-bind-try", item, item]
        # /tmp must be mounted before any bind below it.
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--size", str(self.limits.tmp_size_bytes), "--tmpfs", "/tmp"]
        extra_path: list[str] = []
        for directory in self._node_dirs:
            if not directory.startswith("/usr/"):
                prefix = str(Path(directory).parent)
                args += ["--ro-bind", prefix, prefix]
                extra_path.append(directory)
        args += ["--ro-bind", toolchain, toolchain, "--bind", workspace, workspace]
        # bwrap's root is a tmpfs: make it (and the mount points on it) read-only.
        args += ["--remount-ro", "/", "--chdir", workspace]
        path = [
            f"{workspace}/node_modules/.bin",
            f"{toolchain}/node_modules/.bin",
            *extra_path,
            *_SYSTEM_PATH,
        ]
        full_env = _base_env(path=path, home="/tmp", limits=self.limits)
        caller = _checked_env(env)
        if "NODE_OPTIONS" in caller:
            caller["NODE_OPTIONS"] = f"{full_env['NODE_OPTIONS']} {caller['NODE_OPTIONS']}"
        full_env.update(caller)
        for key, value in sorted(full_env.items()):
            args += ["--setenv", key, value]
        args.append("--")
        if self._prlimit:
            args += _prlimit_prefix(self.limits, self._prlimit)
        return [*args, *argv]

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        timeout_s: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run ``argv`` sandboxed with ``cwd`` (the workspace) as the only writable place.

        Raises SandboxError when bwrap is missing or reports its own setup failure.
        """
        if not argv:
            raise ValueError("empty argv")
        user = self.sandbox_user
        if user is not None and not await asyncio.to_thread(self._prepare, cwd, user):
            user = None

        result = await _execute(
            self.command_line(argv, cwd=cwd, env=env),
            shown_argv=argv,
            cwd=Path("/"),  # bwrap --chdir's into the workspace itself
            env={"PATH": ":".join(_SYSTEM_PATH)},
            timeout_s=timeout_s or self.limits.timeout_s,
            limits=self.limits,
            as_user=user,
        )
        if result.exit_code == 1 and result.output.startswith("bwrap: "):
            who = f" (running as uid {user[0]})" if user else ""
            raise SandboxError(f"{result.output.strip()[:2000]}{who}")
        return result


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
        self._passthrough = _checked_env(passthrough)
        prlimit = shutil.which("prlimit", path="/usr/bin:/bin")
        self._prlimit = prlimit if apply_rlimits else None
        self._path = [*_tool_dirs(), *_SYSTEM_PATH]
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
        full_env = _base_env(path=path, home=str(cwd), limits=heap)
        full_env["TMPDIR"] = self._tmpdir
        full_env.update(self._passthrough)
        full_env.update(_checked_env(env))
        prefix = _prlimit_prefix(self.limits, self._prlimit) if self._prlimit else []
        return await _execute(
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


async def probe_sandbox(*, bwrap: str = "bwrap", timeout_s: float = 15.0) -> tuple[bool, str]:
    """Run ``true`` in the real sandbox shape; return (usable, human-readable reason)."""
    found = shutil.which(bwrap)
    if found is None:
        return False, f"{bwrap} not found on PATH (Debian package: bubblewrap)"
    scratch = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="auton8n-probe-"))
    try:
        await asyncio.to_thread(scratch.chmod, 0o755)  # reachable for a switched sandbox user
        runner = BubblewrapRunner(scratch, SandboxLimits(timeout_s=timeout_s), bwrap=found)
        try:
            result = await runner.run(["true"], cwd=scratch)
        except SandboxError as exc:
            return False, f"bubblewrap cannot create the sandbox: {exc}"
        if not result.ok:
            why = "timed out" if result.timed_out else f"exit {result.exit_code}"
            return False, f"bubblewrap sandbox failed ({why}): {result.output.strip()[:500]}"
        version = await HostRunner().run([found, "--version"], cwd=scratch, timeout_s=timeout_s)
        user = f", sandboxes run as uid {runner.sandbox_user[0]}" if runner.sandbox_user else ""
        return True, f"{version.output.strip() or 'bubblewrap'} at {found}: usable{user}"
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)
