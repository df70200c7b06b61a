"""Unary GetJob throughput and latency against the ceiling of Python gRPC (issues 6, 7, 9).

One server process (``--serve``) runs four gRPC servers on 127.0.0.1, all answering
``/auton8n.v1.PluginService/GetJob`` for one stored job (created through the API, then
cancelled: a real row with its spec, error and events):

- (a) echo: a bare ``grpc.aio`` server whose handler returns the serialized GetJob
  response as stored bytes (same size, same bytes): Python gRPC's own ceiling here;
- (b) bare: ``PluginServicer`` alone, no interceptor, the caller fixed in code;
- (c) full: the server ``App`` builds, as it builds it (auth required with a real API
  token, the rate limiter with buckets that never refuse, metrics, errors; whatever else
  App puts in its chain, since the bench captures App's own interceptor list);
- (d) no metrics/logging: App's interceptor list without the metrics interceptor and any
  request-logging interceptor, same servicer and job service.

A separate load process (so the client never shares the servers' event loop) keeps
``--concurrency`` GetJob calls in flight for ``--seconds`` per variant, the variants in
alternating order for ``--rounds`` rounds, and reads the server process's CPU time from
/proc around each run. Then it sends GetJob to (c) open-loop at half of (c)'s median
throughput and records each call's latency from its scheduled send time. Finally py-spy
samples the server process under the same load on (c) (the profile in the report).

Run: ``.venv/bin/python -m bench.unary_bench`` (SQLite, then a throwaway PostgreSQL 15
cluster); ``--db sqlite`` or ``--db postgres`` for one; ``--database-url URL`` to use an
existing PostgreSQL database instead of the throwaway one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.perf_common import (
    TOOLCHAIN_DIR,
    loadavg,
    median,
    percentile,
    proc_cpu_s,
    py_spy,
    run_json,
    save_part,
    scratch_dir,
    spec_json,
)

METHOD = "/auton8n.v1.PluginService/GetJob"
VARIANTS = ("a", "b", "c", "d")
NAMES = {
    "a": "bare grpc.aio echo (same response bytes)",
    "b": "PluginServicer, no interceptors",
    "c": "full chain as App builds it",
    "d": "full chain without metrics and request logging",
}
TARGETS = {"c/a": 0.7, "c/b": 0.85, "c/d": 0.9}
P99_LIMIT_MS = 20.0


# --- the server process ---------------------------------------------------------------------


def _observes(interceptor: object) -> bool:
    """Metrics or request logging (left out of variant d): the metrics interceptor, the
    request-context (log) interceptor, or any interceptor named after logging."""
    name = type(interceptor).__name__
    return name in ("MetricsInterceptor", "RequestContextInterceptor") or "Log" in name


def _members(interceptors: list[Any]) -> list[Any]:
    """App's interceptors, the members of an InterceptorChain in their place."""
    from server.api.chain import InterceptorChain

    out: list[Any] = []
    for i in interceptors:
        out += i.interceptors if isinstance(i, InterceptorChain) else [i]
    return out


async def _serve(database_url: str) -> None:
    import grpc
    from auton8n.v1 import plugin_service_pb2 as pb
    from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
    from google.protobuf import json_format

    from server.api.chain import InterceptorChain
    from server.api.servicer import PluginServicer
    from server.app import App
    from server.auth.principal import Principal, Role
    from server.logs import configure_logging
    from server.settings import Settings

    data = scratch_dir("bench-unary")
    settings = Settings(
        data_dir=data,
        database_url=database_url,
        listen_address="127.0.0.1:0",
        metrics_address="127.0.0.1:0",
        toolchain_dir=str(TOOLCHAIN_DIR),
        auth_mode="required",
        rate_limit_requests_per_s=1e9,
        rate_limit_requests_burst=1_000_000_000,
        rate_limit_create_per_hour=0,
        log_level="INFO",
        log_format="json",
    )
    configure_logging(settings.log_level, settings.log_format)  # stderr: the log file
    captured: dict[str, list[Any]] = {}
    original = grpc.aio.server

    def capturing(*args: Any, **kwargs: Any) -> grpc.aio.Server:
        captured.setdefault("interceptors", list(kwargs.get("interceptors") or ()))
        captured.setdefault("options", list(kwargs.get("options") or ()))
        return original(*args, **kwargs)

    app = App(settings)
    grpc.aio.server = capturing  # only to learn App's own chain
    try:
        await app.start()
    finally:
        grpc.aio.server = original
    servers: list[grpc.aio.Server] = []
    try:
        assert app.tokens is not None
        issued = await app.tokens.create(tenant="bench", role=Role.USER, name="bench")
        metadata = (("authorization", f"Bearer {issued.token}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.PluginServiceStub(channel)
            request = pb.CreatePluginRequest(model="template")
            json_format.Parse(spec_json(), request.spec)
            job = await stub.CreatePlugin(request, metadata=metadata)
            await stub.CancelJob(pb.CancelJobRequest(job_id=job.id), metadata=metadata)
            await asyncio.sleep(1.0)  # let the cancelled run wind down
            get = channel.unary_unary(METHOD)
            payload = await get(
                pb.GetJobRequest(job_id=job.id).SerializeToString(), metadata=metadata
            )

        async def echo(_request: bytes, _context: Any) -> bytes:
            return payload

        def server(interceptors: list[Any]) -> grpc.aio.Server:
            s = grpc.aio.server(interceptors=interceptors, options=captured["options"])
            servers.append(s)
            return s

        a = server([])
        a.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "auton8n.v1.PluginService",
                    {"GetJob": grpc.unary_unary_rpc_method_handler(echo)},
                ),
            )
        )
        caller = Principal("bench", Role.USER, issued.info.id)
        b = server([])
        pb_grpc.add_PluginServiceServicer_to_server(
            PluginServicer(app.jobs, identify=lambda: caller), b
        )
        chain = _members(captured["interceptors"])
        kept = [i for i in chain if not _observes(i)]
        d = server([InterceptorChain(kept)])
        pb_grpc.add_PluginServiceServicer_to_server(PluginServicer(app.jobs), d)
        ports = {}
        for name, s in (("a", a), ("b", b), ("d", d)):
            ports[name] = s.add_insecure_port("127.0.0.1:0")
            await s.start()
        ports["c"] = app.port
        info = {
            "targets": {k: f"127.0.0.1:{p}" for k, p in ports.items()},
            "token": issued.token,
            "job_id": job.id,
            "response_bytes": len(payload),
            "pid": os.getpid(),
            "chains": {
                "a": [],
                "b": [],
                "c": [type(i).__name__ for i in chain],
                "d": [type(i).__name__ for i in kept],
            },
        }
        print(json.dumps(info), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
    finally:
        for s in servers:
            await s.stop(0)
        await app.stop(1.0)
        await asyncio.to_thread(shutil.rmtree, data, True)


# --- the load process -----------------------------------------------------------------------


async def _closed_loop(call: Any, request: bytes, md: Any, seconds: float, concurrency: int) -> int:
    count = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            await call(request, metadata=md)
            count += 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return count


async def _open_loop(
    call: Any, request: bytes, md: Any, rate: float, seconds: float
) -> list[float]:
    """Latencies (s) of calls sent at a fixed ``rate``, each from its scheduled time (a
    late send counts against the server, not hidden: no coordinated omission). Calls
    that are due together start together (one wake-up of the client per tick)."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    pending: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        await call(request, metadata=md)
        latencies.append(loop.time() - scheduled)

    total, sent = int(rate * seconds), 0
    start = loop.time() + 0.05
    while sent < total:
        now = loop.time()
        due = min(total, int((now - start) * rate) + 1)
        for i in range(sent, due):
            task = asyncio.create_task(one(start + i / rate))
            pending.add(task)
            task.add_done_callback(pending.discard)
        sent = max(sent, due)
        await asyncio.sleep(max(0.0, start + sent / rate - loop.time()))
    await asyncio.gather(*pending)
    return latencies


async def _load(cfg: dict[str, Any]) -> dict[str, Any]:
    import grpc
    from auton8n.v1 import plugin_service_pb2 as pb

    md = (("authorization", f"Bearer {cfg['token']}"),)
    request = pb.GetJobRequest(job_id=cfg["job_id"]).SerializeToString()
    variants = cfg["variants"]
    channels = {v: grpc.aio.insecure_channel(cfg["targets"][v]) for v in variants}
    calls = {v: ch.unary_unary(METHOD) for v, ch in channels.items()}
    pid, n = cfg["pid"], cfg["concurrency"]
    out: dict[str, Any] = {v: {"calls_per_s": [], "server_cpu_us": []} for v in variants}
    try:
        for v in variants:  # warm-up: connections, caches, code paths
            await _closed_loop(calls[v], request, md, 0.5, n)
        latency: list[dict[str, float]] = []
        for round_ in range(cfg["rounds"]):
            for v in variants if round_ % 2 == 0 else variants[::-1]:
                cpu, started = proc_cpu_s(pid), time.perf_counter()
                count = await _closed_loop(calls[v], request, md, cfg["seconds"], n)
                elapsed, used = time.perf_counter() - started, proc_cpu_s(pid) - cpu
                out[v]["calls_per_s"].append(count / elapsed)
                out[v]["server_cpu_us"].append(used / count * 1e6)
                print(f"  round {round_ + 1} {v}: {count / elapsed:.0f} calls/s", file=sys.stderr)
            if cfg["latency"] and "c" in variants:
                # Half of what (c) just did: the same moment's capacity (this machine is
                # shared, its capacity drifts).
                rate = out["c"]["calls_per_s"][-1] / 2
                lat = await _open_loop(calls["c"], request, md, rate, cfg["seconds"])
                latency.append(
                    {
                        "rate_per_s": rate,
                        "p50_ms": percentile(lat, 50) * 1e3,
                        "p99_ms": percentile(lat, 99) * 1e3,
                        "max_ms": max(lat) * 1e3,
                    }
                )
                print(
                    f"  round {round_ + 1} c at {rate:.0f}/s: p99 {latency[-1]['p99_ms']:.1f} ms",
                    file=sys.stderr,
                )
        out["latency"] = latency
    finally:
        for ch in channels.values():
            await ch.close()
    return out


# --- the orchestrator -----------------------------------------------------------------------


def _summarize(raw: dict[str, Any]) -> dict[str, Any]:
    rates = {v: raw[v]["calls_per_s"] for v in VARIANTS}
    result: dict[str, Any] = {
        "variants": {
            v: {
                "name": NAMES[v],
                "calls_per_s": median(rates[v]),
                "samples": [round(x) for x in rates[v]],
                "server_cpu_us_per_call": median(raw[v]["server_cpu_us"]),
            }
            for v in VARIANTS
        },
        "ratios": {},
    }
    for key in TARGETS:
        top, bottom = key.split("/")
        paired = [x / y for x, y in zip(rates[top], rates[bottom], strict=True)]
        result["ratios"][key] = {
            "paired_median": median(paired),
            "of_medians": median(rates[top]) / median(rates[bottom]),
            "cpu": median(raw[bottom]["server_cpu_us"]) / median(raw[top]["server_cpu_us"]),
            "target": TARGETS[key],
        }
    if lat := raw.get("latency"):
        result["latency_half_load"] = {
            "rate_per_s": median([r["rate_per_s"] for r in lat]),
            "p50_ms": median([r["p50_ms"] for r in lat]),
            "p99_ms": median([r["p99_ms"] for r in lat]),
            "max_ms": max(r["max_ms"] for r in lat),
            "p99_samples_ms": [round(r["p99_ms"], 1) for r in lat],
            "limit_ms": P99_LIMIT_MS,
        }
    return result


async def _bench_db(database_url: str, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    with log.open("ab") as stderr:
        host = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.unary_bench",
            "--serve",
            "--database-url",
            database_url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    assert host.stdin is not None and host.stdout is not None
    try:
        async with asyncio.timeout(120):
            line = await host.stdout.readline()
        if not line:
            raise RuntimeError(f"the server process failed; see {log}")
        info = json.loads(line)
        cfg = {
            **info,
            "variants": list(VARIANTS),
            "rounds": args.rounds,
            "seconds": args.seconds,
            "concurrency": args.concurrency,
            "latency": not args.no_latency,
        }
        load = [sys.executable, "-m", "bench.unary_bench", "--load"]
        budget = 60 + args.rounds * 5 * (args.seconds + 2)
        raw = await run_json([*load, json.dumps(cfg)], budget)
        result = _summarize(raw) | {
            "response_bytes": info["response_bytes"],
            "chains": info["chains"],
        }
        for variant in args.profile if args.profile_seconds > 0 else ():
            one = {**cfg, "variants": [variant], "rounds": 1, "latency": False}
            one["seconds"] = args.profile_seconds + 1.5
            loading = asyncio.create_task(run_json([*load, json.dumps(one)], 120))
            await asyncio.sleep(1.0)
            spy = log.with_suffix(f".{variant}.spy")
            result[f"profile_{variant}"] = await py_spy(info["pid"], args.profile_seconds, spy)
            await loading
        return result
    finally:
        host.stdin.close()
        async with asyncio.timeout(60):
            await host.wait()


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    logs = scratch_dir("bench-unary-logs")
    if args.db in ("sqlite", "both"):
        print("[unary] SQLite ...", file=sys.stderr, flush=True)
        results["sqlite"] = await _bench_db("", args, logs / "sqlite.log")
    if args.db in ("postgres", "both"):
        from tests.pg import PostgresCluster, find_pg_bin

        if args.database_url:
            print("[unary] PostgreSQL (given) ...", file=sys.stderr, flush=True)
            results["postgres"] = await _bench_db(args.database_url, args, logs / "pg.log")
        elif (bin_dir := find_pg_bin()) is None:
            results["postgres"] = {"skipped": "no PostgreSQL binaries found"}
        else:
            print("[unary] PostgreSQL (throwaway cluster) ...", file=sys.stderr, flush=True)
            cluster = await asyncio.to_thread(PostgresCluster(bin_dir).start)
            try:
                url = await asyncio.to_thread(cluster.create_database)
                results["postgres"] = await _bench_db(url, args, logs / "pg.log")
            finally:
                await asyncio.to_thread(cluster.stop)
    results["logs"] = str(logs)
    return results


def _print(results: dict[str, Any]) -> None:
    for db in ("sqlite", "postgres"):
        r = results.get(db)
        if not r or "variants" not in r:
            continue
        print(f"{db}: GetJob response {r['response_bytes']} bytes")
        for v, x in r["variants"].items():
            cpu = x["server_cpu_us_per_call"]
            print(f"  ({v}) {x['name']}: {x['calls_per_s']:.0f} calls/s, {cpu:.0f} us CPU/call")
        for key, x in r["ratios"].items():
            print(f"  {key}: {x['paired_median']:.2f} (target {x['target']})")
        if lat := r.get("latency_half_load"):
            print(f"  p99 at {lat['rate_per_s']:.0f}/s: {lat['p99_ms']:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.unary_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--database-url", default="", help="an existing PostgreSQL database")
    parser.add_argument("--seconds", type=float, default=3.0, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-latency", action="store_true", help="skip the half-load runs")
    parser.add_argument("--profile-seconds", type=float, default=5.0, help="0: no py-spy profile")
    parser.add_argument(
        "--profile",
        type=lambda v: v.split(","),
        default=["c"],
        help="variants to profile (a,b,c,d)",
    )
    parser.add_argument("--no-save", action="store_true", help="do not write results/BENCHMARKS.md")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--load", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    load = loadavg()
    if args.serve:
        asyncio.run(_serve(args.database_url))
        return
    if args.load:
        print(json.dumps(asyncio.run(_load(json.loads(args.load)))))
        return
    if args.database_url and args.db == "sqlite":
        parser.error("--database-url is a PostgreSQL database: use --db postgres or both")
    results = asyncio.run(_run(args))
    _print(results)
    if not args.no_save:
        save_part("unary", results, module="bench.unary_bench", loadavg_at_start=load)


if __name__ == "__main__":
    main()
