"""Run generated code inside bubblewrap.

``BubblewrapRunner``: no network, no capabilities, own user/pid/ipc/uts/cgroup
namespaces, ``/usr`` and a few ``/etc`` files read-only, a read-only root, a size-capped
private ``/tmp``, the toolchain read-only at its own path, only the workspace writable;
rlimits (processes, CPU, file size, open files, memory) via
``prlimit`` inside the sandbox (no preexec_fn). The pid namespace means
killing bwrap kills every process of the command, setsid'd grandchildren included. The
kernel never applies RLIMIT_NPROC to host uid 0, not even inside a user namespace, so a
root server runs sandboxes as nobody (see __init__). The environment, process group,
output cap and kill sequence are ``server.pipeline.process``'s, shared with the host
runners. ``probe_sandbox`` tells whether this machine can run it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from loguru import logger

from server.pipeline.process import (
    SYSTEM_PATH,
    CommandResult,
    HostRunner,
    SandboxError,
    SandboxLimits,
    base_env,
    checked_env,
    execute,
    prlimit_prefix,
    tool_dirs,
)

__all__ = ["BubblewrapRunner", "probe_sandbox"]

_NOBODY = 65534
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
        self._node_dirs = tool_dirs()

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
            *SYSTEM_PATH,
        ]
        full_env = base_env(path=path, home="/tmp", limits=self.limits)
        caller = checked_env(env)
        if "NODE_OPTIONS" in caller and "NODE_OPTIONS" in full_env:
            caller["NODE_OPTIONS"] = f"{full_env['NODE_OPTIONS']} {caller['NODE_OPTIONS']}"
        full_env.update(caller)
        for key, value in sorted(full_env.items()):
            args += ["--setenv", key, value]
        args.append("--")
        if self._prlimit:
            args += prlimit_prefix(self.limits, self._prlimit)
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

        result = await execute(
            self.command_line(argv, cwd=cwd, env=env),
            shown_argv=argv,
            cwd=Path("/"),  # bwrap --chdir's into the workspace itself
            env={"PATH": ":".join(SYSTEM_PATH)},
            timeout_s=timeout_s or self.limits.timeout_s,
            limits=self.limits,
            as_user=user,
        )
        if result.exit_code == 1 and result.output.startswith("bwrap: "):
            who = f" (running as uid {user[0]})" if user else ""
            raise SandboxError(f"{result.output.strip()[:2000]}{who}")
        return result


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
