"""WatchJob fan-out: 1,000 concurrent streams on one running job (issue 9).

The server (``bench.serve``: the real App, plus a ``bench-gated`` generator) runs one
job that waits in phase GENERATING until a gate file exists. Watcher processes (separate
from the server) open ``--streams`` WatchJob streams, each from the job's current
``last_event_seq``, over several HTTP/2 connections; when every stream has its snapshot,
the gate opens and the job builds, lints, tests and packages to SUCCEEDED while every
stream receives every event.

Measured: that every stream got every event (seq after_seq+1 .. terminal, no gap, no
duplicate, ended OK); the delay from each event's commit (its ``time``, stamped in the
transaction; same clock, same machine) to its arrival in the watcher process: p50/p99/max
over all deliveries; the server process's RSS (children excluded) before the streams,
with them all open, and its peak while the events flow.

Run: ``.venv/bin/python -m bench.watch_bench [--streams 1000] [--clients 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.perf_common import (
    ServerProcess,
    loadavg,
    median,
    percentile,
    proc_cpu_s,
    proc_memory,
    py_spy,
    save_part,
    scratch_dir,
    server_env,
    spec_json,
)

METHOD = "/auton8n.v1.PluginService/WatchJob"
STREAMS_PER_CONNECTION = 100
DELAY_LIMIT_MS = 100.0
MEMORY_LIMIT_MB = 50.0


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def seq_and_time(data: bytes) -> tuple[int, float]:
    """JobEvent's ``seq`` (field 1) and ``time`` (field 2, a Timestamp) from the wire
    bytes, skipping the rest: the watcher process stays cheap next to the server."""
    seq, when, i = 0, 0.0, 0
    while i < len(data):
        key, i = _varint(data, i)
        field, kind = key >> 3, key & 7
        if kind == 0:
            value, i = _varint(data, i)
            if field == 1:
                seq = value
        elif kind == 2:
            size, i = _varint(data, i)
            if field == 2:
                ts, j, seconds, nanos = data[i : i + size], 0, 0, 0
                while j < len(ts):
                    k, j = _varint(ts, j)
                    v, j = _varint(ts, j)
                    seconds, nanos = (v, nanos) if k >> 3 == 1 else (seconds, v)
                when = seconds + nanos / 1e9
            i += size
        elif kind == 1:
            i += 8
        elif kind == 5:
            i += 4
        else:
            raise ValueError(f"wire type {kind}")
    return seq, when


# --- the watcher process --------------------------------------------------------------------


async def _watch(cfg: dict[str, Any]) -> dict[str, Any]:
    import grpc
    from auton8n.v1 import plugin_service_pb2 as pb

    request = pb.WatchJobRequest(job_id=cfg["job_id"], after_seq=cfg["after_seq"])
    payload = request.SerializeToString()
    connections = max(1, -(-cfg["streams"] // STREAMS_PER_CONNECTION))
    options = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own each
    channels = [
        grpc.aio.insecure_channel(cfg["target"], options=options) for _ in range(connections)
    ]
    ready = asyncio.Event()
    snapshots = 0
    seqs: list[list[int]] = []
    delays: list[tuple[int, float]] = []
    codes: dict[str, int] = {}

    async def one(channel: grpc.aio.Channel) -> None:
        nonlocal snapshots
        got: list[int] = []
        seqs.append(got)
        call = channel.unary_stream(METHOD)(payload)
        try:
            async for data in call:
                arrived = time.time()
                seq, when = seq_and_time(data)
                if seq == 0:  # the snapshot (or a heartbeat)
                    if not got and snapshots < cfg["streams"]:
                        snapshots += 1
                        if snapshots == cfg["streams"]:
                            ready.set()
                    continue
                got.append(seq)
                delays.append((seq, (arrived - when) * 1e3))
            code = grpc.StatusCode.OK.name
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
        codes[code] = codes.get(code, 0) + 1

    tasks = [asyncio.create_task(one(channels[i % connections])) for i in range(cfg["streams"])]
    await ready.wait()
    print("ready", flush=True)  # the orchestrator opens the gate now
    await asyncio.gather(*tasks)
    for channel in channels:
        await channel.close()
    return {"seqs": seqs, "delays_ms": delays, "codes": codes}


# --- the orchestrator -----------------------------------------------------------------------


async def _job(target: str) -> tuple[str, int]:
    """Create the gated job and wait until it waits at the gate; (id, last_event_seq)."""
    import grpc
    from auton8n.v1 import plugin_service_pb2 as pb
    from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
    from google.protobuf import json_format

    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        request = pb.CreatePluginRequest(model="bench-gated")
        json_format.Parse(spec_json(), request.spec)
        job = await stub.CreatePlugin(request)
        async with asyncio.timeout(120):
            while job.phase != pb.PHASE_GENERATING:
                await asyncio.sleep(0.1)
                job = await stub.GetJob(pb.GetJobRequest(job_id=job.id))
        await asyncio.sleep(0.5)
        job = await stub.GetJob(pb.GetJobRequest(job_id=job.id))
        return job.id, job.last_event_seq


class _Sampler:
    """The server's RSS every 50 ms (its peak between mark() and peak())."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.high = 0.0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.high = max(self.high, proc_memory(self.pid)["VmRSS"])
            await asyncio.sleep(0.05)

    def mark(self) -> float:
        self.high = proc_memory(self.pid)["VmRSS"]
        return self.high

    def stop(self) -> None:
        self._task.cancel()


def _split(args: argparse.Namespace) -> list[int]:
    """Streams per watcher process."""
    return [
        args.streams // args.clients + (1 if i < args.streams % args.clients else 0)
        for i in range(args.clients)
    ]


async def _clients(
    args: argparse.Namespace, cfg: dict[str, Any], gate: Path, sampler: _Sampler
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.watch_bench",
            "--watch",
            json.dumps({**cfg, "streams": n}),
            stdout=asyncio.subprocess.PIPE,
        )
        for n in _split(args)
    ]
    memory: dict[str, Any] = {}
    async with asyncio.timeout(300):
        started = time.perf_counter()
        for proc in procs:
            assert proc.stdout is not None
            if (await proc.stdout.readline()).strip() != b"ready":
                raise RuntimeError("a watcher process failed")
        memory["connect_s"] = time.perf_counter() - started
        await asyncio.sleep(1.0)
        memory["streams_open_mb"] = proc_memory(sampler.pid)["VmRSS"]
        memory["connect_peak_mb"] = sampler.high
        spy = None
        if args.profile:
            out = gate.with_name("fanout.spy")
            spy = asyncio.create_task(py_spy(sampler.pid, args.profile, out))
        cpu = proc_cpu_s(sampler.pid)
        await asyncio.to_thread(gate.touch)  # the job goes on
        outputs = [json.loads((await proc.communicate())[0]) for proc in procs]
        memory["delivery_cpu_s"] = proc_cpu_s(sampler.pid) - cpu
        if spy is not None:
            memory["profile"] = await spy
    memory["delivery_peak_mb"] = sampler.high
    return outputs, memory


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    base = scratch_dir("bench-watch")
    gate = base / "gate"
    env = server_env(
        base / "data",
        max_watches_per_client=0,
        rate_limit_requests_per_s=0,
        rate_limit_create_per_hour=0,
        log_level="INFO",
    )
    env["AUTON8N_BENCH_GATE"] = str(gate)
    if args.probe:
        env["AUTON8N_BENCH_LOOP_REPORT"] = str(base / "loop.json")
    server = await ServerProcess(
        env, base / "server.log", [sys.executable, "-m", "bench.serve"]
    ).start()
    sampler: _Sampler | None = None
    try:
        job_id, after = await _job(server.target)
        await asyncio.sleep(1.0)
        sampler = _Sampler(server.pid)
        before = median([proc_memory(server.pid)["VmRSS"] for _ in range(3)])
        sampler.mark()
        cfg = {"target": server.target, "job_id": job_id, "after_seq": after}
        outputs, memory = await _clients(args, cfg, gate, sampler)
    finally:
        if sampler is not None:
            sampler.stop()
        await server.stop()
    seqs = [s for o in outputs for s in o["seqs"]]
    delays = [d for o in outputs for _, d in o["delays_ms"]]
    by_seq: dict[int, list[float]] = {}
    for o in outputs:
        for seq, d in o["delays_ms"]:
            by_seq.setdefault(seq, []).append(d)
    codes: dict[str, int] = {}
    for o in outputs:
        for code, n in o["codes"].items():
            codes[code] = codes.get(code, 0) + n
    last = max((s[-1] for s in seqs if s), default=after)
    expected = list(range(after + 1, last + 1))
    complete = sum(1 for s in seqs if s == expected)
    growth = max(memory["connect_peak_mb"], memory["delivery_peak_mb"]) - before
    return {
        "streams": args.streams,
        "watcher_processes": args.clients,
        "connections": sum(-(-n // STREAMS_PER_CONNECTION) for n in _split(args) if n),
        "events_per_stream": len(expected),
        "streams_with_every_event": complete,
        "end_codes": codes,
        "deliveries": len(delays),
        "delay_ms": {
            "p50": percentile(delays, 50),
            "p90": percentile(delays, 90),
            "p99": percentile(delays, 99),
            "max": max(delays),
            "limit_p99": DELAY_LIMIT_MS,
        },
        "delay_by_seq_ms": {
            str(seq): {"p50": percentile(ds, 50), "max": max(ds)}
            for seq, ds in sorted(by_seq.items())
        },
        "server_rss_mb": {
            "before_streams": before,
            "streams_open": memory["streams_open_mb"],
            "peak": max(memory["connect_peak_mb"], memory["delivery_peak_mb"]),
            "growth": growth,
            "growth_per_stream_kb": growth * 1024 / args.streams,
            "limit_growth": MEMORY_LIMIT_MB,
        },
        "connect_s": memory["connect_s"],
        # The server's CPU from the gate's opening to the last stream's end (the job's own
        # in-process work included) per delivered event.
        "server_cpu_us_per_delivery": memory["delivery_cpu_s"] / max(1, len(delays)) * 1e6,
        "profile": memory.get("profile"),
        "loop_probe": json.loads((base / "loop.json").read_text()) if args.probe else None,
        "log": str(base / "server.log"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.watch_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=2, help="watcher processes")
    parser.add_argument("--probe", action="store_true", help="event-loop probe")
    parser.add_argument("--profile", type=float, default=0, help="py-spy seconds from the gate")
    parser.add_argument("--key", default="watch", help="its key in the result file")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--watch", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    load = loadavg()
    if args.watch:
        print(json.dumps(asyncio.run(_watch(json.loads(args.watch)))))
        return
    result = asyncio.run(_run(args))
    d, m = result["delay_ms"], result["server_rss_mb"]
    print(
        f"{result['streams_with_every_event']}/{result['streams']} streams got all "
        f"{result['events_per_stream']} events; ends {result['end_codes']}; delay p50 "
        f"{d['p50']:.1f} ms, p99 {d['p99']:.1f} ms, max {d['max']:.1f} ms; server RSS "
        f"{m['before_streams']:.0f} -> {m['peak']:.0f} MB (+{m['growth']:.1f} MB)"
    )
    if not args.no_save:
        save_part(args.key, result, module="bench.watch_bench", loadavg_at_start=load)


if __name__ == "__main__":
    main()
