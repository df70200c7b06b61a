"""Overhead of the security chain on unary GetJob: the full chain vs the bare servicer.

Two gRPC servers in one process share one JobService and one database:

- full: the server ``App`` builds: MetricsInterceptor, AuthInterceptor (auth required,
  the bearer token checked against the database on every call), RateLimitInterceptor
  (buckets big enough never to refuse, so every call pays for the check) and
  ErrorInterceptor;
- bare: ``PluginServicer`` alone, no interceptor, the caller fixed in code.

A separate load process (so the client does not share the servers' event loop) runs
``--concurrency`` callers doing GetJob back to back for ``--seconds``; the variants
alternate for ``--rounds`` rounds and the table shows the medians. The job is CANCELLED,
so GetJob is one primary-key read on both servers.

Run: ``.venv/bin/python bench/auth_overhead.py`` (``--database-url`` for PostgreSQL,
where the limiter's buckets are the shared SQL table: one more write per call;
``--auth-cache-s 0`` to check the token in the database on every call).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from auton8n.v1 import plugin_service_pb2 as pb  # noqa: E402
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402

from server.api.servicer import PluginServicer  # noqa: E402
from server.app import App  # noqa: E402
from server.auth.principal import ANONYMOUS, Principal, Role  # noqa: E402
from server.logs import configure_logging  # noqa: E402
from server.settings import Settings  # noqa: E402

TOOLCHAIN_DIR = Path(os.environ.get("AUTON8N_TOOLCHAIN_DIR") or ROOT / "data" / "toolchain")


async def _load(target: str, token: str, job_id: str, seconds: float, concurrency: int) -> float:
    """GetJob calls per second over ``seconds`` (after a short warm-up)."""
    metadata = (("authorization", f"Bearer {token}"),)
    request = pb.GetJobRequest(job_id=job_id)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        for _ in range(50):
            await stub.GetJob(request, metadata=metadata)
        count = 0
        deadline = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                await stub.GetJob(request, metadata=metadata)
                count += 1

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


def _measure(target: str, token: str, job_id: str, args: argparse.Namespace) -> float:
    command = [
        sys.executable,
        __file__,
        "--load",
        target,
        "--token",
        token,
        "--job",
        job_id,
        "--seconds",
        str(args.seconds),
        "--concurrency",
        str(args.concurrency),
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    return float(out.stdout.strip())


async def _serve_and_measure(args: argparse.Namespace) -> dict[str, list[float]]:
    data = Path(tempfile.mkdtemp(prefix="auton8n-bench-auth-"))
    settings = Settings(
        data_dir=data,
        database_url=args.database_url,
        listen_address="127.0.0.1:0",
        metrics_address="127.0.0.1:0",
        toolchain_dir=str(TOOLCHAIN_DIR),
        auth_mode=args.auth_mode,
        auth_cache_s=args.auth_cache_s,
        rate_limit_requests_per_s=1e9,
        rate_limit_requests_burst=1_000_000_000,
        log_level="WARNING",
    )
    app = App(settings)
    await app.start()
    bare = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    try:
        assert app.tokens is not None
        issued = await app.tokens.create(tenant="bench", role=Role.USER, name="bench")
        caller = Principal("bench", Role.USER, issued.info.id) if app.auth_required else ANONYMOUS
        pb_grpc.add_PluginServiceServicer_to_server(
            PluginServicer(app.jobs, identify=lambda: caller), bare
        )
        bare_port = bare.add_insecure_port("127.0.0.1:0")
        await bare.start()
        metadata = (("authorization", f"Bearer {issued.token}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.PluginServiceStub(channel)
            request = pb.CreatePluginRequest()
            spec = (ROOT / "examples" / "time.json").read_text()
            json_format.Parse(spec, request.spec)
            job = await stub.CreatePlugin(request, metadata=metadata)
            await stub.CancelJob(pb.CancelJobRequest(job_id=job.id), metadata=metadata)
        await asyncio.sleep(1.0)  # let the cancelled run wind down
        targets = {"bare": f"127.0.0.1:{bare_port}", "full": f"127.0.0.1:{app.port}"}
        results: dict[str, list[float]] = {"bare": [], "full": []}
        for round_ in range(args.rounds):
            order = ["bare", "full"] if round_ % 2 == 0 else ["full", "bare"]
            for variant in order:
                rate = await asyncio.to_thread(
                    _measure, targets[variant], issued.token, job.id, args
                )
                results[variant].append(rate)
                print(f"round {round_ + 1} {variant}: {rate:.0f} calls/s", file=sys.stderr)
        return results
    finally:
        await bare.stop(0)
        await app.stop(1.0)
        shutil.rmtree(data, ignore_errors=True)


def _table(results: dict[str, list[float]], args: argparse.Namespace, database: str) -> str:
    bare = statistics.median(results["bare"])
    full = statistics.median(results["full"])
    samples = {k: ", ".join(f"{v:.0f}" for v in vs) for k, vs in results.items()}
    return "\n".join(
        [
            f"Unary GetJob, {database}, auth {args.auth_mode}, token cache "
            f"{args.auth_cache_s:g} s, {args.concurrency} concurrent callers in a separate "
            f"process, {args.rounds} rounds of {args.seconds:g} s (medians).",
            "",
            "| server | GetJob calls/s (median) | samples | ratio |",
            "|---|---|---|---|",
            f"| bare servicer | {bare:.0f} | {samples['bare']} | 1.00x |",
            f"| full chain (metrics + auth + rate limit + errors) | {full:.0f} | "
            f"{samples['full']} | {full / bare:.2f}x |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp folder")
    parser.add_argument("--auth-mode", default="required", help="of the full server")
    parser.add_argument(
        "--auth-cache-s", type=float, default=2.0, help="AUTON8N_AUTH_CACHE_S (0: no cache)"
    )
    parser.add_argument("--load", metavar="TARGET", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        rate = asyncio.run(_load(args.load, args.token, args.job, args.seconds, args.concurrency))
        print(f"{rate:.1f}")
        return
    configure_logging("WARNING", "text")
    results = asyncio.run(_serve_and_measure(args))
    database = "PostgreSQL" if args.database_url.startswith("postgresql") else "SQLite"
    print(_table(results, args, database))


if __name__ == "__main__":
    main()
