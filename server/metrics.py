"""Prometheus metrics: the standard gRPC server series and the service's job series.

One ``Metrics`` per server owns its own ``CollectorRegistry`` (never the process-wide
default) and is passed to whatever records: the gRPC interceptor, the worker, the
pipeline, the model client, the rate limiter. Nothing is registered at import time.

Label values are bounded: states, phases, outcomes, token kinds and kill reasons outside
their documented sets are recorded as ``other``, so a caller's typo can never create an
unbounded number of series. Every method is cheap (a dict lookup and a locked add) and
safe to call from the event loop or a thread; the gRPC series (``GrpcMethodMetrics``,
updated on every call) are plain numbers read at scrape time, for the event loop only.

gRPC series follow go-grpc-prometheus / py-grpc-prometheus (same names and labels);
``grpc_code`` holds the ``grpc.StatusCode`` name (``OK``, ``NOT_FOUND``, ...).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Iterator

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from server.domain.job import Job
from server.domain.states import TERMINAL_STATES, Phase

__all__ = [
    "GRPC_HANDLING_BUCKETS",
    "ITERATION_BUCKETS",
    "JOB_DURATION_BUCKETS",
    "KILL_REASONS",
    "MODEL_OUTCOMES",
    "OTHER",
    "PHASE_DURATION_BUCKETS",
    "TOKEN_KINDS",
    "GrpcMethodMetrics",
    "Latency",
    "Metrics",
    "PhaseTimer",
    "Tally",
]

# prometheus DefBuckets, as go-grpc-prometheus uses for grpc_server_handling_seconds.
GRPC_HANDLING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Jobs take seconds (template generator) to tens of minutes (model + repair iterations).
JOB_DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)
PHASE_DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 3600.0)
ITERATION_BUCKETS = (1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0, 20.0)

# model_request(outcome): answered, provider error, key rejected, timed out, 429, unusable
# answer (e.g. failed structured-output validation).
MODEL_PROVIDERS = frozenset({"anthropic", "openai"})
MODEL_OUTCOMES = frozenset({"ok", "error", "auth_error", "timeout", "rate_limited", "invalid"})
TOKEN_KINDS = frozenset({"input", "output", "cache_read", "cache_write"})
# sandbox_killed(reason): command timeout, job cancelled, server shutdown, output or
# memory limit hit.
KILL_REASONS = frozenset({"timeout", "cancelled", "shutdown", "output_limit", "memory"})
_FINISHED_STATES = frozenset(s.value for s in TERMINAL_STATES)
_PHASES = frozenset(p.value for p in Phase)
OTHER = "other"
_MAX_RATE_LIMITED_METHODS = 64


def _bounded(value: str, allowed: Iterable[str]) -> str:
    return value if value in allowed else OTHER


_LE_LABELS = (*(repr(float(b)) for b in GRPC_HANDLING_BUCKETS), "+Inf")


class Tally:
    """A number the event loop adds to, read at scrape time. No lock: the gRPC
    interceptor's wrappers run on the event loop thread only (a prometheus_client child
    takes a lock per update, a measurable share of a GetJob)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Latency:
    """A histogram the event loop observes into (see Tally): per-bucket counts, the sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(GRPC_HANDLING_BUCKETS) + 1)  # the last one: +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(GRPC_HANDLING_BUCKETS, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """(``le`` label, observations at or below it) per bucket, as exposed."""
        total, out = 0, []
        for le, count in zip(_LE_LABELS, self.counts, strict=True):
            total += count
            out.append((le, float(total)))
        return out


class GrpcMethodMetrics:
    """The series of one (type, service, method), updated without lookups or locks."""

    __slots__ = ("by_code", "handling", "labels", "received", "sent", "started")

    def __init__(self, grpc_type: str, service: str, method: str) -> None:
        self.labels = (grpc_type, service, method)
        self.started = Tally()
        self.received = Tally()
        self.sent = Tally()
        # Latency only for unary calls: streams such as WatchJob live for minutes.
        self.handling = Latency() if grpc_type == "unary" else None
        self.by_code: dict[grpc.StatusCode, Tally] = {}

    def handled(self, code: grpc.StatusCode) -> None:
        """Count one finished call with its final status code."""
        tally = self.by_code.get(code)
        if tally is None:
            tally = self.by_code[code] = Tally()
        tally.value += 1


class _GrpcCollector(Collector):
    """The standard gRPC server series, from the methods' tallies at scrape time."""

    def __init__(self, methods: dict[tuple[str, str], GrpcMethodMetrics]) -> None:
        self._methods = methods

    def collect(self) -> Iterator[Metric]:
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        started = CounterMetricFamily(
            "grpc_server_started", "RPCs started on the server.", labels=labels
        )
        handled = CounterMetricFamily(
            "grpc_server_handled",
            "RPCs completed on the server, regardless of success or failure.",
            labels=[*labels, "grpc_code"],
        )
        handling = HistogramMetricFamily(
            "grpc_server_handling_seconds",
            "Response latency of unary RPCs handled by the server.",
            labels=labels,
        )
        received = CounterMetricFamily(
            "grpc_server_msg_received", "RPC stream messages received by the server.", labels=labels
        )
        sent = CounterMetricFamily(
            "grpc_server_msg_sent", "RPC stream messages sent by the server.", labels=labels
        )
        for m in list(self._methods.values()):
            values = list(m.labels)
            started.add_metric(values, m.started.value)
            received.add_metric(values, m.received.value)
            sent.add_metric(values, m.sent.value)
            for code, tally in list(m.by_code.items()):
                handled.add_metric([*values, code.name], tally.value)
            if m.handling is not None:
                handling.add_metric(values, m.handling.cumulative(), m.handling.sum)
        yield from (started, handled, handling, received, sent)


class Metrics:
    """Every series the server exports, on one registry.

    ``registry``: where to register; a fresh ``CollectorRegistry`` when omitted.
    ``process``: also export ``process_*`` (CPU, memory, open fds) for this process.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        if process:
            ProcessCollector(registry=r)
        self._grpc_methods: dict[tuple[str, str], GrpcMethodMetrics] = {}
        r.register(_GrpcCollector(self._grpc_methods))

        self._jobs_created = Counter(
            "auton8n_jobs_created_total",
            "Jobs accepted (new, not idempotent replays).",
            registry=r,
        )
        self._jobs_finished = Counter(
            "auton8n_jobs_finished_total",
            "Jobs that reached a terminal state, by state.",
            ("state",),
            registry=r,
        )
        self._job_duration = Histogram(
            "auton8n_job_duration_seconds",
            "Time from creation to the terminal state, by terminal state.",
            ("state",),
            buckets=JOB_DURATION_BUCKETS,
            registry=r,
        )
        self._job_iterations = Histogram(
            "auton8n_job_iterations",
            "Generate-check-repair iterations a finished job used, by terminal state.",
            ("state",),
            buckets=ITERATION_BUCKETS,
            registry=r,
        )
        self._phase_duration = Histogram(
            "auton8n_phase_duration_seconds",
            "Time spent in one pipeline phase of one iteration, by phase.",
            ("phase",),
            buckets=PHASE_DURATION_BUCKETS,
            registry=r,
        )
        self._jobs_active = Gauge(
            "auton8n_jobs_active", "Jobs whose pipeline runs in this replica now.", registry=r
        )
        self._jobs_queued = Gauge(
            "auton8n_jobs_queued",
            "Jobs waiting for a worker (shared queue: every replica reports the same value).",
            registry=r,
        )
        self._model_requests = Counter(
            "auton8n_model_requests_total",
            "Requests to the model provider, by outcome.",
            ("outcome",),
            registry=r,
        )
        self._model_tokens = Counter(
            "auton8n_model_tokens_total", "Model tokens billed, by kind.", ("kind",), registry=r
        )
        self._model_cost = Counter(
            "auton8n_model_cost_usd_total",
            "Estimated model cost of finished jobs, in US dollars.",
            registry=r,
        )
        self._model_degraded = Gauge(
            "auton8n_model_degraded",
            "1 while a model provider counts as degraded (consecutive failed requests).",
            ("provider",),
            registry=r,
        )
        self._rate_limited = Counter(
            "auton8n_rate_limited_total",
            "Requests refused with RESOURCE_EXHAUSTED by the rate limiter, by gRPC method.",
            ("grpc_method",),
            registry=r,
        )
        self._rate_limited_methods: set[str] = set()
        self._sandbox_kills = Counter(
            "auton8n_sandbox_kills_total",
            "Sandboxed command process groups killed, by reason.",
            ("reason",),
            registry=r,
        )

        self._initialize_known_labels()

    def _initialize_known_labels(self) -> None:
        """Export zeros for every known label value, so rate() and absent() work from
        the first scrape instead of after the first event (Prometheus practice)."""
        for state in sorted(_FINISHED_STATES):
            self._jobs_finished.labels(state)
            self._job_duration.labels(state)
            self._job_iterations.labels(state)
        for phase in sorted(_PHASES):
            self._phase_duration.labels(phase)
        for outcome in sorted(MODEL_OUTCOMES):
            self._model_requests.labels(outcome)
        for kind in sorted(TOKEN_KINDS):
            self._model_tokens.labels(kind)
        for provider in sorted(MODEL_PROVIDERS):
            self._model_degraded.labels(provider)
        for reason in sorted(KILL_REASONS):
            self._sandbox_kills.labels(reason)

    # gRPC (used by server.api.metrics_interceptor).

    def grpc_method(self, grpc_type: str, full_method: str) -> GrpcMethodMetrics:
        """Children for ``/package.Service/Method`` (created once, then cached)."""
        key = (grpc_type, full_method)
        found = self._grpc_methods.get(key)
        if found is None:
            service, _, method = full_method.lstrip("/").rpartition("/")
            found = GrpcMethodMetrics(grpc_type, service or "unknown", method)
            self._grpc_methods[key] = found
        return found

    # Jobs (worker and job service).

    def job_created(self) -> None:
        """A new job was stored (call once per job, not for idempotent replays)."""
        self._jobs_created.inc()

    def job_finished(self, state: str, duration_s: float, iterations: int) -> None:
        """A job reached ``state`` (SUCCEEDED, FAILED or CANCELLED) ``duration_s`` after
        it was created, having used ``iterations`` iterations (0 if it never ran)."""
        label = _bounded(str(state), _FINISHED_STATES)
        self._jobs_finished.labels(label).inc()
        self._job_duration.labels(label).observe(max(0.0, duration_s))
        self._job_iterations.labels(label).observe(max(0, iterations))

    def job_finished_from(self, job: Job) -> None:
        """``job_finished`` for a job the store just moved to a terminal state (duration
        from its create_time to its end_time, its iteration count). Ignores a job that
        is not terminal."""
        if job.state not in TERMINAL_STATES:
            return
        end = job.end_time or job.update_time
        self.job_finished(job.state.value, (end - job.create_time).total_seconds(), job.iteration)

    def phase_finished(self, phase: str, seconds: float) -> None:
        """One phase (a ``Phase`` value) of one iteration took ``seconds``."""
        self._phase_duration.labels(_bounded(str(phase), _PHASES)).observe(max(0.0, seconds))

    def set_active_jobs_source(self, read: Callable[[], float]) -> None:
        """Read the active-jobs gauge from ``read()`` at scrape time (must be cheap and
        thread-safe, e.g. ``lambda: worker.active_jobs``)."""
        self._jobs_active.set_function(read)

    def set_active_jobs(self, n: int) -> None:
        self._jobs_active.set(n)

    def set_queued_jobs(self, n: int) -> None:
        """The number of QUEUED jobs (refreshed before each scrape by the HTTP server)."""
        self._jobs_queued.set(n)

    # Model provider.

    def model_request(self, outcome: str) -> None:
        """One model API request finished with ``outcome`` (see ``MODEL_OUTCOMES``)."""
        self._model_requests.labels(_bounded(outcome, MODEL_OUTCOMES)).inc()

    def model_tokens(self, kind: str, n: int) -> None:
        """``n`` tokens of ``kind`` (input, output, cache_read, cache_write) were used."""
        if n > 0:
            self._model_tokens.labels(_bounded(kind, TOKEN_KINDS)).inc(n)

    def model_cost(self, usd: float) -> None:
        """A job finished having cost ``usd`` (estimated) in model calls."""
        if usd > 0:
            self._model_cost.inc(usd)

    def set_model_degraded(self, provider: str, degraded: bool) -> None:
        self._model_degraded.labels(_bounded(provider, MODEL_PROVIDERS)).set(int(degraded))

    # Rate limiting and sandbox.

    def rate_limited(self, method: str) -> None:
        """A request to ``method`` (``/pkg.Service/Method`` or ``Method``) was refused.

        Method names come from clients; past ``_MAX_RATE_LIMITED_METHODS`` distinct names
        the rest count as ``other``.
        """
        name = method.rpartition("/")[2] or "unknown"
        if name not in self._rate_limited_methods:
            if len(self._rate_limited_methods) >= _MAX_RATE_LIMITED_METHODS:
                name = OTHER
            else:
                self._rate_limited_methods.add(name)
        self._rate_limited.labels(name).inc()

    def sandbox_killed(self, reason: str) -> None:
        """A sandboxed command's process group was killed (see ``KILL_REASONS``)."""
        self._sandbox_kills.labels(_bounded(reason, KILL_REASONS)).inc()


class PhaseTimer:
    """Times the phases of one job run: ``enter(phase)`` closes the previous phase (one
    ``phase_finished`` observation) and starts the next; ``stop()`` closes the last one
    (call it when an iteration ends and when the run ends). One per job run; cheap;
    ``stop()`` is idempotent."""

    __slots__ = ("_clock", "_current", "_metrics", "_since")

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._clock = clock
        self._current: str | None = None
        self._since = 0.0

    def enter(self, phase: str) -> None:
        """Start ``phase``; re-entering the running phase (a progress update) continues it."""
        if self._current == str(phase):
            return
        now = self._clock()
        self._close(now)
        self._current, self._since = str(phase), now

    def stop(self) -> None:
        self._close(self._clock())
        self._current = None

    def _close(self, now: float) -> None:
        if self._current is not None:
            self._metrics.phase_finished(self._current, now - self._since)
