"""The real server (``App`` from ``Settings.from_env``) with knobs that only benchmarks use.

- ``AUTON8N_BENCH_GATE=<file>``: adds the generator ``bench-gated``: the template
  generator, after waiting until ``<file>`` exists (so a job can be held RUNNING, in
  phase GENERATING, until every watcher is connected).
- ``AUTON8N_BENCH_LOOP_REPORT=<file>``: an event-loop probe (a 10 ms timer whose lateness
  is the longest the loop was blocked), written as JSON to ``<file>`` at exit; with
  ``AUTON8N_BENCH_ASYNCIO_DEBUG=1`` also asyncio's slow-callback log (debug mode,
  ``slow_callback_duration`` 50 ms: every callback that ran longer, with its name).
- ``AUTON8N_BENCH_BUILD_NICENESS=<n>``: the niceness of the jobs' commands instead of
  ``server.pipeline.process.BUILD_NICENESS`` (0: as before that existed; a what-if).

Prints ``auton8n listening on HOST:PORT`` like ``python -m server``; stops on SIGTERM.
Run: ``python -m bench.serve`` (the benches start it).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import re
import resource
import time
from pathlib import Path
from typing import Any

PROBE_INTERVAL_S = 0.01
SLOW_CALLBACK_S = 0.05
GATE_TIMEOUT_S = 600


class LoopProbe:
    """How long the event loop was kept from running, and by what.

    - every callback the loop runs (``asyncio.Handle._run``: task steps, grpc's and our
      callbacks) is timed: wall time, the loop thread's CPU time, and its context switches
      (``getrusage(RUSAGE_THREAD)``). A callback that took >= 50 ms of wall time is
      *blocking* when its own CPU time was >= 50 ms, or when the thread only gave up the
      CPU voluntarily (blocking I/O, a lock, the GIL held by another of our threads); it
      was *preempted* when the kernel took the CPU away (other processes: the plugin tools
      of the jobs, other work on the machine) and its own CPU time stayed short;
    - a 10 ms timer whose lateness bounds how long the loop did not run at all;
    - with ``debug``, asyncio's own slow-callback log (debug mode, 50 ms) as well.
    """

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.callbacks = 0
        self.slow_calls: list[dict[str, Any]] = []
        self.debug_log: list[dict[str, Any]] = []
        self.gc_pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self, *, debug: bool) -> None:
        loop = asyncio.get_running_loop()
        self._time_callbacks()
        gc.callbacks.append(self._gc)
        self._task = loop.create_task(self._run())
        if not debug:
            return
        loop.set_debug(True)
        loop.slow_callback_duration = SLOW_CALLBACK_S
        probe = self

        class Slow(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                text = record.getMessage()
                if found := re.search(r"took ([\d.]+) seconds", text):
                    probe.debug_log.append({"seconds": float(found[1]), "what": text[:300]})

        logging.getLogger("asyncio").addHandler(Slow())

    def _time_callbacks(self) -> None:
        original = asyncio.events.Handle._run
        probe = self

        def timed(handle: asyncio.events.Handle) -> None:
            wall, cpu = time.perf_counter(), time.thread_time()
            before = resource.getrusage(resource.RUSAGE_THREAD)
            try:
                original(handle)
            finally:
                probe.callbacks += 1
                wall = time.perf_counter() - wall
                if wall >= SLOW_CALLBACK_S:
                    after = resource.getrusage(resource.RUSAGE_THREAD)
                    probe.slow(handle, wall, time.thread_time() - cpu, before, after)

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]

    def slow(self, handle: Any, wall: float, cpu: float, before: Any, after: Any) -> None:
        voluntary = after.ru_nvcsw - before.ru_nvcsw
        involuntary = after.ru_nivcsw - before.ru_nivcsw
        blocking = cpu >= SLOW_CALLBACK_S or (voluntary > 0 and involuntary == 0)
        self.slow_calls.append(
            {
                "wall_ms": wall * 1e3,
                "cpu_ms": cpu * 1e3,
                "voluntary_switches": voluntary,
                "involuntary_switches": involuntary,
                "kind": "blocking" if blocking else "preempted",
                "what": repr(handle)[:300],
            }
        )

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append((info["generation"], time.perf_counter() - self._gc_started))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(PROBE_INTERVAL_S)
            self.lags.append(loop.time() - started - PROBE_INTERVAL_S)

    async def stop(self, report: Path) -> None:
        if self._task is not None:
            self._task.cancel()
        lags = sorted(self.lags) or [0.0]
        data = {
            "callbacks": self.callbacks,
            "slow_calls": self.slow_calls,
            "blocking_over_50ms": sum(1 for c in self.slow_calls if c["kind"] == "blocking"),
            "preempted_over_50ms": sum(1 for c in self.slow_calls if c["kind"] == "preempted"),
            "longest_callback_cpu_ms": max((c["cpu_ms"] for c in self.slow_calls), default=0.0),
            "timer": {
                "interval_s": PROBE_INTERVAL_S,
                "samples": len(self.lags),
                "max_lag_ms": lags[-1] * 1e3,
                "p99_lag_ms": lags[min(len(lags) - 1, int(0.99 * len(lags)))] * 1e3,
                "lags_over_50ms": sum(1 for x in lags if x > SLOW_CALLBACK_S),
            },
            "asyncio_debug_slow_callbacks": self.debug_log,
            "gc": {
                str(g): {
                    "collections": len(ps),
                    "max_ms": max(ps, default=0.0) * 1e3,
                    "total_ms": sum(ps) * 1e3,
                }
                for g in (0, 1, 2)
                for ps in [[s for gen, s in self.gc_pauses if gen == g]]
            },
        }
        await asyncio.to_thread(report.write_text, json.dumps(data, indent=2))


def _registry(gate: Path) -> Any:
    from server.generators.base import GenerationRequest, GenerationResult
    from server.generators.registry import GeneratorRegistry
    from server.generators.template import TemplateGenerator

    class Gated:
        name = "bench-gated"

        async def generate(self, request: GenerationRequest) -> GenerationResult:
            for _ in range(GATE_TIMEOUT_S * 20):  # polled: the gate is a file
                if await asyncio.to_thread(gate.exists):
                    break
                await asyncio.sleep(0.05)
            return await TemplateGenerator().generate(request)

    registry = GeneratorRegistry()
    registry.add_exact("bench-gated", lambda _model: Gated())
    return registry


async def _serve() -> None:
    from server.app import App, serving, stop_on_signals
    from server.logs import configure_logging
    from server.settings import Settings

    settings = Settings.from_env(os.environ)
    if (niceness := os.environ.get("AUTON8N_BENCH_BUILD_NICENESS")) is not None:
        from server.pipeline import process

        process.BUILD_NICENESS = int(niceness)
    configure_logging(settings.log_level, settings.log_format)
    gate = os.environ.get("AUTON8N_BENCH_GATE")
    app = App(settings, generators=_registry(Path(gate)) if gate else None)
    report = os.environ.get("AUTON8N_BENCH_LOOP_REPORT")
    stop = stop_on_signals()
    async with serving(app, stop) as port:  # as server.app.run serves
        probe = LoopProbe() if report else None
        if probe is not None:
            probe.start(debug=os.environ.get("AUTON8N_BENCH_ASYNCIO_DEBUG") == "1")
        try:
            print(f"auton8n listening on 127.0.0.1:{port}", flush=True)
            await stop.wait()
        finally:
            if probe is not None and report:
                await probe.stop(Path(report))


def main() -> None:
    asyncio.run(_serve())


if __name__ == "__main__":
    main()
