"""Shared parts of the performance benchmarks (issue 9): machine facts, percentiles,
process memory and CPU from /proc, a server subprocess, and the result file.

Every issue-9 bench writes its part into ``bench/results/performance.json`` (one key per
part, merged) and re-renders the ``## Performance (issue 9)`` section of BENCHMARKS.md
from the whole file (``bench.perf_report``), so the table always shows every part.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOOLCHAIN_DIR = Path(os.environ.get("AUTON8N_TOOLCHAIN_DIR") or ROOT / "data" / "toolchain")
RESULTS = ROOT / "bench" / "results" / "performance.json"
MARKDOWN = ROOT / "BENCHMARKS.md"
EXAMPLES = ROOT / "examples"
PY_SPY = Path(sys.executable).parent / "py-spy"
LISTENING = re.compile(rb"auton8n listening on ([\d.]+):(\d+)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return ""


def replace_section(path: Path, heading: str, section: str) -> None:
    """Replace the section of ``path`` that starts with ``heading`` (up to the next
    ``## `` heading) by ``section``, keeping what other benchmarks wrote; append it when
    missing; create the file if needed."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(heading)
    if start < 0:
        path.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    end = text.find("\n## ", start + len(heading))
    rest = text[end + 1 :] if end >= 0 else ""
    path.write_text(text[:start] + section + ("\n" + rest if rest else ""))


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": loadavg(),
    }


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``samples`` (not empty)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(samples: Sequence[float]) -> float:
    return float(statistics.median(samples))


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon, RssFile and VmHWM of ``pid`` in MiB (the process alone)."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (its own threads, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def scratch_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"auton8n-{prefix}-"))
    path.chmod(0o755)  # a root server runs sandboxes as nobody
    return path


def spec_json(name: str = "time") -> str:
    return (EXAMPLES / f"{name}.json").read_text()


def server_env(data_dir: Path, **settings: object) -> dict[str, str]:
    """The environment of a server subprocess: loopback only, its own data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTON8N_")}
    env.update(
        {
            "AUTON8N_DATA_DIR": str(data_dir),
            "AUTON8N_LISTEN_ADDRESS": "127.0.0.1:0",
            "AUTON8N_METRICS_ADDRESS": "127.0.0.1:0",
            "AUTON8N_TOOLCHAIN_DIR": str(TOOLCHAIN_DIR),
            "AUTON8N_LOG_FORMAT": "json",
            "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            ),
        }
    )
    env.update({f"AUTON8N_{k.upper()}": str(v) for k, v in settings.items()})
    return env


class ServerProcess:
    """A server in a subprocess (default ``python -m server``, the real entry point);
    its log goes to ``log``; the bound port is read from its stdout."""

    def __init__(self, env: Mapping[str, str], log: Path, argv: Sequence[str] = ()) -> None:
        self.env = dict(env)
        self.log = log
        self.argv = list(argv) or [sys.executable, "-m", "server"]
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, timeout_s: float = 60.0) -> ServerProcess:
        with self.log.open("ab") as stderr:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=stderr
            )
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout_s):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"server exited; see {self.log}")
                if found := LISTENING.search(line):
                    self.port = int(found.group(2))
                    return self

    async def stop(self, timeout_s: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout_s):
                return await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()


async def run_json(argv: Sequence[str], timeout_s: float, **kwargs: Any) -> Any:
    """Run a helper process that prints one JSON document on stdout; returns it."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=None, **kwargs
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]} exited {proc.returncode}")
    return json.loads(out)


def profile_summary(raw: str, *, top: int = 25) -> list[dict[str, Any]]:
    """Inclusive share of samples per function from py-spy's ``--format raw`` output
    (one ``frame;frame;... count`` line per distinct stack)."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    ranked = sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]
    return [
        {"frame": f, "inclusive_pct": 100 * n / total, "self_pct": 100 * own.get(f, 0) / total}
        for f, n in ranked
        if total
    ]


async def py_spy(pid: int, seconds: float, out: Path) -> list[dict[str, Any]] | None:
    """Sample ``pid`` with py-spy for ``seconds`` (GIL holders only: what costs CPU);
    None when py-spy is missing or cannot attach."""
    if not PY_SPY.exists():
        return None
    proc = await asyncio.create_subprocess_exec(
        str(PY_SPY),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        "200",
        "--gil",
        "--format",
        "raw",
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()
    if proc.returncode != 0:
        return None
    try:
        raw = await asyncio.to_thread(out.read_text)
    except OSError:
        return None
    return profile_summary(raw)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def save_part(
    key: str,
    part: Mapping[str, Any],
    *,
    module: str,
    loadavg_at_start: list[float],
    results: Path = RESULTS,
) -> None:
    """Merge ``part`` into the result file under ``key`` and re-render BENCHMARKS.md."""
    from bench.perf_report import write_markdown

    data: dict[str, Any] = {}
    if results.exists():
        with contextlib.suppress(ValueError):
            data = json.loads(results.read_text())
    data[key] = {
        **part,
        "command": " ".join([".venv/bin/python -m", module, *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine() | {"loadavg_at_start": loadavg_at_start},
    }
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(data, indent=2) + "\n")
    write_markdown(data, MARKDOWN)
