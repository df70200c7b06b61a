"""Jobs on 2 cores: throughput against the bare tools, memory, event-loop health (issue 9).

- memory: the real server (``python -m server``, fresh data folder) idle: its RSS
  (the process alone) after start and a few calls; a what-if with the model SDKs and
  psycopg imported lazily (``bench.serve``); and what each group of imports costs
  (a fresh interpreter importing them one after the other). With 4 jobs running: the
  server's RSS while 4 jobs are RUNNING (children - the sandboxed tools - excluded).
- throughput: the real server with ``AUTON8N_MAX_CONCURRENT_JOBS`` = 1, 2, 4 runs N jobs
  of examples/time.json with the offline ``template`` generator (submitted at once,
  followed with WatchJob); jobs per minute from the first CreatePlugin to the last
  terminal event. Side by side: the same number of bare tool runs (tsc, tsup, biome,
  vitest - the commands the pipeline runs - on the host, no sandbox, on ready
  workspaces) with the same concurrency. Ratio = service / bare jobs per minute; the
  service's own overhead per job = bare / service - 1. Each job's own log of its
  (sandboxed) tool times splits the overhead into sandbox and the rest.
- event loop: ``bench.serve`` with its probe (every callback timed: wall, CPU,
  context switches) runs 2 jobs at concurrency 2 while a client calls GetJob every
  50 ms on a running job and on a finished one: blocking calls over 50 ms, and the
  GetJob latencies while the jobs build.

Run: ``.venv/bin/python -m bench.jobs_bench [--jobs 1:3,2:4,4:4]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.perf_common import (
    ROOT,
    TOOLCHAIN_DIR,
    ServerProcess,
    loadavg,
    median,
    percentile,
    proc_memory,
    run_json,
    save_part,
    scratch_dir,
    server_env,
    spec_json,
)

IDLE_LIMIT_MB = 80.0
FOUR_JOBS_LIMIT_MB = 250.0
OVERHEAD_LIMIT = 0.10
BLOCKING_LIMIT_MS = 50.0
TOOL_TIME = re.compile(r"\b(tsc|tsup|biome|vitest) ([\d.]+)s")
IMPORT_GROUPS = [
    ("grpc + protobuf", ["grpc", "google.protobuf", "grpc_health.v1.health"]),
    ("SQLAlchemy (ORM) + aiosqlite", ["sqlalchemy.ext.asyncio", "sqlalchemy.orm", "aiosqlite"]),
    ("loguru + prometheus_client", ["loguru", "prometheus_client"]),
    ("alembic", ["alembic.command", "alembic.runtime.migration"]),
    ("psycopg (PostgreSQL driver)", ["psycopg"]),
    ("anthropic SDK", ["anthropic"]),
    ("openai SDK", ["openai"]),
    ("server.* (the service itself)", ["server.app"]),
]
_IMPORTS = """
import json, os, sys
def rss():
    for line in open(f"/proc/{os.getpid()}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
out, last = [], rss()
python = last
for name, modules in json.loads(sys.argv[1]):
    for m in modules:
        __import__(m)
    now = rss()
    out.append([name, now - last])
    last = now
print(json.dumps({"python_mb": python, "groups": out, "total_mb": last}))
"""


# --- the client side of a run ---------------------------------------------------------------


class _Run:
    """Creates ``n`` jobs, follows them to the end, samples the server's RSS meanwhile."""

    def __init__(self, server: ServerProcess, n: int) -> None:
        self.server, self.n = server, n
        self.running = 0
        self.rss: list[float] = []
        self.rss_at_full: list[float] = []  # while every slot's job is RUNNING
        self.full = 0

    async def _sample(self) -> None:
        while True:
            rss = proc_memory(self.server.pid)["VmRSS"]
            self.rss.append(rss)
            if self.full and self.running >= self.full:
                self.rss_at_full.append(rss)
            await asyncio.sleep(0.1)

    async def run(self, full: int) -> dict[str, Any]:
        import grpc
        from auton8n.v1 import plugin_service_pb2 as pb
        from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
        from google.protobuf import json_format

        self.full = full
        sampler = asyncio.create_task(self._sample())
        tools: list[float] = []
        async with grpc.aio.insecure_channel(self.server.target) as channel:
            stub = pb_grpc.PluginServiceStub(channel)
            started = time.perf_counter()
            ids = []
            for _ in range(self.n):
                request = pb.CreatePluginRequest(model="template")
                json_format.Parse(spec_json(), request.spec)
                ids.append((await stub.CreatePlugin(request)).id)

            async def follow(job_id: str) -> Any:
                async for event in stub.WatchJob(pb.WatchJobRequest(job_id=job_id)):
                    if event.HasField("state_changed"):
                        to = event.state_changed.to_state
                        self.running += 1 if to == pb.JOB_STATE_RUNNING else 0
                        was = event.state_changed.from_state == pb.JOB_STATE_RUNNING
                        self.running -= 1 if was else 0
                    if event.HasField("log") and "checks:" in event.log.message:
                        tools.append(sum(float(s) for _, s in TOOL_TIME.findall(event.log.message)))
                return await stub.GetJob(pb.GetJobRequest(job_id=job_id))

            async with asyncio.timeout(900):
                jobs = await asyncio.gather(*(follow(i) for i in ids))
            elapsed = time.perf_counter() - started
        sampler.cancel()
        failed = [pb.JobState.Name(j.state) for j in jobs if j.state != pb.JOB_STATE_SUCCEEDED]
        if failed:
            raise RuntimeError(f"jobs did not succeed: {failed}; see {self.server.log}")
        durations = [
            j.end_time.ToDatetime().timestamp() - j.start_time.ToDatetime().timestamp()
            for j in jobs
        ]
        return {
            "jobs": self.n,
            "elapsed_s": elapsed,
            "jobs_per_min": self.n / elapsed * 60,
            "job_s": {"median": median(durations), "samples": [round(d, 2) for d in durations]},
            "sandboxed_tools_s": {"median": median(tools), "samples": [round(t, 2) for t in tools]},
            "server_rss_mb": {
                "peak": max(self.rss),
                "median": median(self.rss),
                "at_full": median(self.rss_at_full) if self.rss_at_full else None,
                "peak_at_full": max(self.rss_at_full) if self.rss_at_full else None,
                "full_samples": len(self.rss_at_full),
            },
        }


async def _service(base: Path, concurrency: int, n: int) -> dict[str, Any]:
    data = base / f"service-c{concurrency}"
    env = server_env(
        data,
        max_concurrent_jobs=concurrency,
        max_concurrent_jobs_per_tenant=0,
        rate_limit_create_per_hour=0,
        claim_poll_interval_s=0.2,
        log_level="INFO",
    )
    server = await ServerProcess(env, base / f"service-c{concurrency}.log").start()
    try:
        return await _Run(server, n).run(full=concurrency)
    finally:
        await server.stop()
        await asyncio.to_thread(shutil.rmtree, data, True)


# --- the bare tools -------------------------------------------------------------------------


async def _bare(base: Path, concurrency: int, n: int) -> dict[str, Any]:
    """``n`` runs of the pipeline's four tools on the host, ``concurrency`` at a time,
    each on a fresh ready workspace (set up and generated, no tool run yet: what a job
    sees), all made before the clock starts."""
    from bench.pipeline_bench import Bench
    from server.domain.spec import PluginSpec
    from server.pipeline.process import HostRunner, SandboxLimits
    from server.pipeline.sandbox import BubblewrapRunner
    from server.pipeline.toolchain import Toolchain

    toolchain = Toolchain(TOOLCHAIN_DIR)
    limits = SandboxLimits(timeout_s=300)
    bench = Bench(
        n=1,
        base=base,
        toolchain=toolchain,
        tools=await toolchain.tools(),
        runner=BubblewrapRunner(toolchain.root, limits),
        host=HostRunner(limits),
        spec=PluginSpec.from_json(json.loads(spec_json())),
    )
    made: list[Path] = []  # ~1 MB each, removed at the end (the logs next to them stay)
    spaces: list[Path] = []
    runs: list[float] = []

    async def worker() -> None:
        while spaces:
            runs.append((await bench.check(spaces.pop(), sandboxed=False))["total"])

    try:
        made.append(await bench.ready("bare-warm"))
        await bench.check(made[0], sandboxed=False)  # the OS caches
        spaces += [await bench.ready(f"bare-c{concurrency}") for _ in range(n)]
        made += spaces
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        for workspace in made:
            await asyncio.to_thread(shutil.rmtree, workspace, True)
    return {
        "runs": n,
        "elapsed_s": elapsed,
        "jobs_per_min": n / elapsed * 60,
        "tools_s": {"median": median(runs), "samples": [round(r, 2) for r in runs]},
    }


async def _throughput(base: Path, plan: list[tuple[int, int]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for concurrency, n in plan:
        print(f"[jobs] concurrency {concurrency}: bare tools x{n} ...", file=sys.stderr, flush=True)
        bare = await _bare(base, concurrency, n)
        print(f"[jobs] concurrency {concurrency}: service x{n} ...", file=sys.stderr, flush=True)
        service = await _service(base, concurrency, n)
        ratio = service["jobs_per_min"] / bare["jobs_per_min"]
        out[str(concurrency)] = {
            "service": service,
            "bare": bare,
            "ratio": ratio,
            "overhead": 1 / ratio - 1,
        }
        print(
            f"[jobs]   {service['jobs_per_min']:.2f} vs {bare['jobs_per_min']:.2f} jobs/min: "
            f"ratio {ratio:.2f}",
            file=sys.stderr,
        )
    return out


# --- memory ---------------------------------------------------------------------------------


async def _idle_rss(base: Path, name: str, argv: list[str], **extra: str) -> dict[str, Any]:
    import grpc
    from auton8n.v1 import plugin_service_pb2 as pb
    from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc

    env = server_env(base / f"idle-{name}", log_level="INFO") | extra
    server = await ServerProcess(env, base / f"idle-{name}.log", argv).start()
    try:
        await asyncio.sleep(2.0)
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = pb_grpc.PluginServiceStub(channel)
            for _ in range(5):
                await stub.ListJobs(pb.ListJobsRequest(page_size=5))
        await asyncio.sleep(2.0)
        samples = []
        for _ in range(5):
            samples.append(proc_memory(server.pid))
            await asyncio.sleep(0.4)
        return {
            "rss_mb": median([s["VmRSS"] for s in samples]),
            "anon_mb": median([s["RssAnon"] for s in samples]),
            "file_mb": median([s["RssFile"] for s in samples]),
        }
    finally:
        await server.stop()


async def _memory(base: Path) -> dict[str, Any]:
    real = [sys.executable, "-m", "server"]
    idle = await _idle_rss(base, "real", real)
    imports = await run_json(
        [sys.executable, "-c", _IMPORTS, json.dumps(IMPORT_GROUPS)], 120, cwd=str(ROOT)
    )
    return {"idle": idle, "imports": imports}


# --- event loop -----------------------------------------------------------------------------


async def _event_loop(base: Path, niceness: int | None = None) -> dict[str, Any]:
    import grpc
    from auton8n.v1 import plugin_service_pb2 as pb
    from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
    from google.protobuf import json_format

    name = "loop" if niceness is None else f"loop-nice{niceness}"
    report = base / f"{name}.json"
    env = server_env(
        base / name,
        max_concurrent_jobs=2,
        rate_limit_create_per_hour=0,
        rate_limit_requests_per_s=0,
        claim_poll_interval_s=0.2,
        log_level="INFO",
    )
    env["AUTON8N_BENCH_LOOP_REPORT"] = str(report)
    if niceness is not None:
        env["AUTON8N_BENCH_BUILD_NICENESS"] = str(niceness)
    server = ServerProcess(env, base / f"{name}.log", [sys.executable, "-m", "bench.serve"])
    await server.start()
    latency: dict[str, list[float]] = {"running": [], "finished": []}
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = pb_grpc.PluginServiceStub(channel)
            request = pb.CreatePluginRequest(model="template")
            json_format.Parse(spec_json(), request.spec)
            finished = await stub.CreatePlugin(request)
            await stub.CancelJob(pb.CancelJobRequest(job_id=finished.id))
            ids = [(await stub.CreatePlugin(request)).id for _ in range(2)]
            done = asyncio.Event()

            async def poll(kind: str, job_id: str) -> None:
                while not done.is_set():
                    started = time.perf_counter()
                    await stub.GetJob(pb.GetJobRequest(job_id=job_id))
                    latency[kind].append(time.perf_counter() - started)
                    await asyncio.sleep(0.05)

            pollers = [
                asyncio.create_task(poll("running", ids[0])),
                asyncio.create_task(poll("finished", finished.id)),
            ]
            async with asyncio.timeout(600):
                for job_id in ids:
                    async for _ in stub.WatchJob(pb.WatchJobRequest(job_id=job_id)):
                        pass
            done.set()
            await asyncio.gather(*pollers)
    finally:
        await server.stop()
    probe = json.loads(await asyncio.to_thread(report.read_text))
    return {
        "jobs": 2,
        "concurrency": 2,
        "probe": probe,
        "getjob_ms": {
            kind: {
                "calls": len(v),
                "p50": percentile(v, 50) * 1e3,
                "p99": percentile(v, 99) * 1e3,
                "max": max(v) * 1e3,
            }
            for kind, v in latency.items()
        },
    }


# --- main -----------------------------------------------------------------------------------


def _plan(text: str) -> list[tuple[int, int]]:
    pairs = [part.split(":") for part in text.split(",") if part]
    return [(int(c), int(n)) for c, n in pairs]


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    base = scratch_dir("bench-jobs")
    result: dict[str, Any] = {"logs": str(base)}
    started = time.perf_counter()
    if not args.skip_memory:
        print("[jobs] idle memory ...", file=sys.stderr, flush=True)
        result["memory"] = await _memory(base)
    result["throughput"] = await _throughput(base, _plan(args.jobs))
    four = result["throughput"].get("4")
    if four is not None and "memory" in result:
        result["memory"]["four_jobs"] = four["service"]["server_rss_mb"]
    if not args.skip_loop:
        print("[jobs] event-loop probe with 2 jobs ...", file=sys.stderr, flush=True)
        result["event_loop"] = await _event_loop(base)
        # What-if: the jobs' commands at the server's own priority (before BUILD_NICENESS).
        result["event_loop_nice0_what_if"] = await _event_loop(base, 0)
    result["seconds"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.jobs_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", default="1:6,2:8,4:8", help="concurrency:jobs,...")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-loop", action="store_true")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    load = loadavg()
    result = asyncio.run(_run(args))
    for c, r in result["throughput"].items():
        s, b = r["service"], r["bare"]
        print(
            f"concurrency {c}: {s['jobs_per_min']:.2f} jobs/min vs bare {b['jobs_per_min']:.2f}: "
            f"ratio {r['ratio']:.2f}, overhead {r['overhead'] * 100:.1f}%"
        )
    if m := result.get("memory"):
        print(f"idle RSS {m['idle']['rss_mb']:.0f} MB")
        if four := m.get("four_jobs"):
            print(f"4 jobs running: RSS {four['at_full']} MB (peak {four['peak']:.0f} MB)")
    if loop := result.get("event_loop"):
        p = loop["probe"]
        longest = p["longest_callback_cpu_ms"]
        print(
            f"event loop: {p['blocking_over_50ms']} blocking callbacks >= 50 ms; CPU {longest:.1f}"
        )
    if not args.no_save:
        save_part("jobs", result, module="bench.jobs_bench", loadavg_at_start=load)


if __name__ == "__main__":
    main()
