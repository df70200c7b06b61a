"""The worker: claims QUEUED jobs under a lease and runs the pipeline for each.

Concurrency is bounded by a semaphore (jobs per replica) and by the store's claim, which
skips the QUEUED jobs of a tenant already running its share (jobs per tenant, all
replicas). Every job runs in its own tracked task with a heartbeat that renews the
lease; a lost lease, a cancel or shutdown cancels the task, which kills the running
command's process group (the sandbox runner does that on CancelledError). On shutdown,
leases are released so another worker (or this one after restart) picks the jobs up
again without counting an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from typing import Protocol

from loguru import logger

from server.domain.events import EventKind
from server.domain.job import ArtifactInfo, Job, JobError
from server.domain.results import IterationRecord
from server.domain.spec import PluginSpec
from server.domain.states import JobState, Phase
from server.events import EventHub
from server.generators.base import Generator, GeneratorError
from server.generators.registry import GeneratorRegistry
from server.metrics import Metrics, PhaseTimer
from server.pipeline.pipeline import PipelineOutcome
from server.pipeline.reporter import JobReporter
from server.settings import Settings
from server.store.repository import Claim, LeaseLost, Store

__all__ = ["PipelineRunner", "Worker"]


class PipelineRunner(Protocol):
    async def run(
        self,
        *,
        job_id: str,
        spec: PluginSpec,
        generator: Generator,
        max_iterations: int,
        reporter: JobReporter,
        resume_from: IterationRecord | None = None,
    ) -> PipelineOutcome: ...


# Pipeline failure reasons -> the gRPC code name shown in Job.error.
_FAILURE_CODES = {
    "ITERATIONS_EXHAUSTED": "ABORTED",
    "JOB_TIMEOUT": "DEADLINE_EXCEEDED",
    "SANDBOX_UNAVAILABLE": "FAILED_PRECONDITION",
    "MODEL_KEY_MISSING": "FAILED_PRECONDITION",
    "MODEL_KEY_REJECTED": "FAILED_PRECONDITION",
    "MODEL_UNAVAILABLE": "UNAVAILABLE",
    "MODEL_NOT_FOUND": "INVALID_ARGUMENT",
    "MODEL_REQUEST_REJECTED": "FAILED_PRECONDITION",  # prompt too long, billing, ...
}


@dataclass
class _Running:
    task: asyncio.Task[None]
    stop_reason: str = ""  # "cancel", "shutdown" or "lease_lost" once interrupted


class StoreReporter:
    """JobReporter writing through the store, fenced by the run's lease token."""

    def __init__(self, store: Store, job_id: str, token: str, phases: PhaseTimer) -> None:
        self._store = store
        self._phases = phases
        self._job_id = job_id
        self._token = token
        self._progress = 0

    async def phase(
        self, phase: Phase, *, iteration: int, progress: int, message: str = ""
    ) -> None:
        self._phases.enter(phase)
        # Progress never moves backwards, even when a repair iteration starts over.
        self._progress = max(self._progress, min(100, max(0, progress)))
        detail: dict[str, object] = {"phase": phase.value, "iteration": iteration}
        if message:
            detail["message"] = message
        await self._store.update(
            self._job_id,
            self._token,
            {"phase": phase, "iteration": iteration, "progress": self._progress},
            EventKind.PHASE_CHANGED,
            detail,
        )

    async def log(self, message: str) -> None:
        await self._store.update(self._job_id, self._token, {}, EventKind.LOG, {"message": message})

    async def iteration_finished(self, record: IterationRecord) -> None:
        self._phases.stop()
        await self._store.save_iteration(self._job_id, self._token, record)


def artifact_filename(spec: PluginSpec) -> str:
    base = re.sub(r"[^a-z0-9._-]", "-", spec.name.split("/")[-1].lower()) or "plugin"
    return f"{base}-{spec.package_version}.tgz"


class Worker:
    def __init__(
        self,
        *,
        store: Store,
        hub: EventHub,
        pipeline: PipelineRunner,
        generators: GeneratorRegistry,
        settings: Settings,
        owner: str,
        metrics: Metrics,
    ) -> None:
        self._store = store
        self._hub = hub
        self._pipeline = pipeline
        self._generators = generators
        self._settings = settings
        self._owner = owner
        self._metrics = metrics
        self._slots = asyncio.Semaphore(settings.max_concurrent_jobs)
        self._running: dict[str, _Running] = {}
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def active_jobs(self) -> int:
        return len(self._running)

    def start(self) -> None:
        """Start claiming (idempotent)."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._claim_loop(), name="worker-claim-loop")

    async def _claim_loop(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                claim = await self._store.claim(
                    owner=self._owner,
                    lease_s=self._settings.lease_timeout_s,
                    max_attempts=self._settings.max_attempts,
                    max_per_tenant=self._settings.max_concurrent_jobs_per_tenant,
                )
            except asyncio.CancelledError:
                self._slots.release()
                raise
            except Exception:
                logger.exception("claiming a job failed; retrying")
                claim = None
            if claim is None:
                self._slots.release()
                self._hub.work_available.clear()
                # asyncio.timeout, not wait_for: 3.11's wait_for can lose a cancellation
                # that races the event (seen: shutdown waiting forever on this loop).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.claim_poll_interval_s):
                        await self._hub.work_available.wait()
                continue
            self._spawn(claim)

    def _spawn(self, claim: Claim) -> None:
        job_id = claim.job.id
        # The task copies this context: job_id on every log record of the job's run,
        # its heartbeat and lease release included.
        with logger.contextualize(job_id=job_id):
            task = asyncio.create_task(self._execute(claim), name=f"job-{job_id}")
        self._running[job_id] = _Running(task)

        def done(_: asyncio.Task[None]) -> None:
            self._running.pop(job_id, None)
            self._slots.release()
            self._hub.wake_worker()

        task.add_done_callback(done)

    def interrupt(self, job_id: str, reason: str) -> bool:
        """Cancel the job's task if it runs here; returns whether it did."""
        running = self._running.get(job_id)
        if running is None:
            return False
        running.stop_reason = running.stop_reason or reason
        running.task.cancel()
        return True

    async def stop_claiming(self) -> None:
        """Take no new jobs (idempotent)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task

    async def shutdown(self, grace_s: float) -> None:
        """Stop claiming, interrupt running jobs (their leases are released), wait."""
        await self.stop_claiming()
        tasks = [r.task for r in self._running.values()]
        for job_id in list(self._running):
            self.interrupt(job_id, "shutdown")
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)

    async def _heartbeat(self, job_id: str, token: str) -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat_interval_s)
            try:
                await self._store.renew(job_id, token, self._settings.lease_timeout_s)
            except LeaseLost:
                # Cancelled by a client on another replica, or taken over.
                self.interrupt(job_id, "lease_lost")
                return
            except Exception:
                logger.exception("renewing the lease of {} failed", job_id)

    async def _execute(self, claim: Claim) -> None:
        job, token = claim.job, claim.token
        logger.info("job claimed (attempt {})", job.attempt)
        heartbeat = asyncio.create_task(self._heartbeat(job.id, token), name=f"lease-{job.id}")
        phases = PhaseTimer(self._metrics)
        try:
            outcome = await self._run_pipeline(claim, phases)
            await self._finish(job, token, outcome)
            logger.info("job finished: {}", "succeeded" if outcome.succeeded else "failed")
        except TimeoutError:
            await self._fail(
                job,
                token,
                "DEADLINE_EXCEEDED",
                "JOB_TIMEOUT",
                f"job exceeded its {self._settings.job_timeout_s:.0f} s timeout",
            )
        except GeneratorError as exc:
            code = _FAILURE_CODES.get(exc.reason, "ABORTED")
            await self._fail(job, token, code, exc.reason, str(exc))
        except LeaseLost:
            logger.warning("lease lost; another worker owns the job now")
        except asyncio.CancelledError:
            running = self._running.get(job.id)
            reason = running.stop_reason if running else "shutdown"
            if reason == "shutdown":
                with contextlib.suppress(LeaseLost):
                    await asyncio.shield(self._store.release(job.id, token, "server shutting down"))
                logger.info("job released for another worker")
            else:
                logger.info("job stopped: {}", reason)
            raise
        except Exception as exc:
            logger.exception("job crashed")
            await self._fail(job, token, "INTERNAL", "INTERNAL", f"internal error: {exc!r}")
        finally:
            phases.stop()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _run_pipeline(self, claim: Claim, phases: PhaseTimer) -> PipelineOutcome:
        job = claim.job
        generator = self._generators.resolve(job.model)
        resume = await self._store.last_iteration(job.id) if claim.resumed else None
        if resume is not None and resume.passed:
            resume = None  # the whole pipeline must run again to package it
        reporter = StoreReporter(self._store, job.id, claim.token, phases)
        if resume is not None:
            await reporter.log(f"resuming after iteration {resume.iteration}")
        async with asyncio.timeout(self._settings.job_timeout_s):
            return await self._pipeline.run(
                job_id=job.id,
                spec=job.spec,
                generator=generator,
                max_iterations=job.max_iterations,
                reporter=reporter,
                resume_from=resume,
            )

    async def _finish(self, job: Job, token: str, outcome: PipelineOutcome) -> None:
        changes: dict[str, object] = {
            "iteration": outcome.iteration,
            "errors": outcome.diagnostics,
            "test_results": outcome.test_results,
            "validation_score": outcome.validation_score,
            "usage": outcome.usage,
        }
        self._metrics.model_cost(outcome.usage.cost_usd)
        if outcome.succeeded and outcome.artifact is not None:
            info = ArtifactInfo(artifact_filename(job.spec), len(outcome.artifact), outcome.sha256)
            finished = await self._store.finish(
                job.id,
                token,
                JobState.SUCCEEDED,
                changes={**changes, "progress": 100},
                reason=f"passed every gate at iteration {outcome.iteration}",
                artifact=(info, outcome.artifact),
            )
            self._metrics.job_finished_from(finished)
            return
        reason = outcome.failure_reason or "ITERATIONS_EXHAUSTED"
        error = JobError(
            _FAILURE_CODES.get(reason, "ABORTED"),
            outcome.failure_message or "the plugin did not pass its checks",
            reason,
        )
        finished = await self._store.finish(
            job.id,
            token,
            JobState.FAILED,
            changes={**changes, "error": error},
            reason=error.message,
        )
        self._metrics.job_finished_from(finished)

    async def _fail(self, job: Job, token: str, code: str, reason: str, message: str) -> None:
        with contextlib.suppress(LeaseLost):
            finished = await self._store.finish(
                job.id,
                token,
                JobState.FAILED,
                changes={"error": JobError(code, message, reason)},
                reason=message,
            )
            self._metrics.job_finished_from(finished)
