"""How the command line shows jobs: rich tables, a live progress bar, or JSON lines."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC
from types import TracebackType
from typing import Any, Self

from auton8n.v1 import plugin_service_pb2 as pb
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table
from rich.text import Text

from client._errors import error_from_status

__all__ = ["JobView", "ProgressView", "job_status", "job_table", "jobs_table", "state_name"]

_MAX_ERRORS_SHOWN = 20


def state_name(state: int) -> str:
    return str(pb.JobState.Name(state)).removeprefix("JOB_STATE_")


def phase_name(phase: int) -> str:
    return "-" if not phase else str(pb.Phase.Name(phase)).removeprefix("PHASE_")


def _running_phase(job: pb.Job) -> str:
    return phase_name(job.phase) if job.phase and job.state == pb.JOB_STATE_RUNNING else ""


def job_status(job: pb.Job) -> str:
    """One line: state, phase (while running) and iteration; progress lines change on it."""
    text = state_name(job.state)
    if job.state == pb.JOB_STATE_QUEUED and job.queue_position >= 0:
        text += f" (position {job.queue_position})"
    if phase := _running_phase(job):
        text += f" {phase}"
    if job.iteration:
        text += f" iteration {job.iteration}/{job.max_iterations}"
    return text


def _time(stamp: Timestamp, *, short: bool = False) -> str:
    if not (stamp.seconds or stamp.nanos):
        return "-"
    moment = stamp.ToDatetime(tzinfo=UTC)
    return moment.strftime("%m-%d %H:%MZ") if short else moment.isoformat(timespec="seconds")


def _tests(results: pb.TestResults) -> str:
    text = f"{results.passed} passed, {results.failed} failed"
    if results.skipped:
        text += f", {results.skipped} skipped"
    return f"{text} ({results.total} total)"


def _errors(errors: Iterable[pb.IterationError]) -> list[str]:
    lines = []
    for error in errors:
        where = ":".join(str(p) for p in (error.file, error.line, error.column) if p) or "-"
        lines.append(f"{where} {error.code} {error.message}".strip())
    if len(lines) > _MAX_ERRORS_SHOWN:
        hidden = len(lines) - _MAX_ERRORS_SHOWN
        lines = [*lines[:_MAX_ERRORS_SHOWN], f"... and {hidden} more"]
    return lines


def job_table(job: pb.Job) -> Table:
    """A job's details as a two-column grid (what `get` and the watch summary show)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    rows: list[tuple[str, str]] = [
        ("job", job.id),
        ("plugin", job.spec.name or "-"),
        ("state", job_status(job)),
        ("progress", f"{job.progress_percent}%"),
        ("model", job.model or "-"),
        ("created", _time(job.create_time)),
    ]
    if job.HasField("end_time"):
        rows.append(("ended", _time(job.end_time)))
    if job.test_results.total:
        rows.append(("tests", _tests(job.test_results)))
    if job.validation_score:
        rows.append(("validation", f"{job.validation_score}/100"))
    if job.artifact.sha256:
        rows.append(("artifact", f"{job.artifact.filename} ({job.artifact.size_bytes} bytes)"))
        rows.append(("sha256", job.artifact.sha256))
    if job.usage.input_tokens or job.usage.output_tokens:
        usage = job.usage
        tokens = f"{usage.input_tokens} in / {usage.output_tokens} out"
        rows.append(("tokens", f"{tokens} (${usage.cost_usd:.4f})"))
    if job.error.code:
        rows.append(("error", str(error_from_status(job.error))))
    if job.errors:
        rows.append(("errors", "\n".join(_errors(job.errors))))
    for name, value in rows:
        grid.add_row(name, Text(value))  # server text is not markup
    return grid


def jobs_table(jobs: list[pb.Job]) -> Table:
    """Jobs as a table, one row each; ids are never cut short (they are for copying)."""
    id_width = max((len(job.id) for job in jobs), default=2)
    table = Table(
        Column("ID", no_wrap=True, min_width=id_width),
        Column("PLUGIN", overflow="fold", min_width=10),
        Column("STATE"),
        Column("%", justify="right", no_wrap=True),
        Column("CREATED", no_wrap=True),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for job in jobs:
        table.add_row(
            Text(job.id),
            Text(job.spec.name),
            " ".join(filter(None, (state_name(job.state), _running_phase(job)))),
            f"{job.progress_percent}%",
            _time(job.create_time, short=True),
        )
    return table


class JobView:
    """Writes results to stdout: rich renderables, or one JSON document per line."""

    def __init__(self, console: Console, *, as_json: bool) -> None:
        self.console = console
        self.as_json = as_json

    def line(self, text: str) -> None:
        """Prints text as is: no markup, no emoji codes, no wrapping."""
        self.console.print(text, markup=False, emoji=False, highlight=False, soft_wrap=True)

    def message(self, message: Message) -> None:
        self.line(json_format.MessageToJson(message, indent=None))

    def created(self, job: pb.Job) -> None:
        """The new job's id alone (easy to capture in a script), or the job as JSON."""
        if self.as_json:
            self.message(job)
        else:
            self.line(job.id)

    def job(self, job: pb.Job) -> None:
        if self.as_json:
            self.message(job)
        else:
            self.console.print(job_table(job))

    def jobs(self, jobs: list[pb.Job]) -> None:
        if self.as_json:
            for job in jobs:
                self.message(job)
        else:
            self.console.print(jobs_table(jobs) if jobs else "no jobs")

    def result(self, text: str, **fields: Any) -> None:
        """A one-off result: ``text`` for people, ``fields`` as a JSON object."""
        self.line(json.dumps(fields) if self.as_json else text)


class ProgressView:
    """Shows WatchJob events as they come.

    On a terminal: a live bar of progress_percent described by state, phase and
    iteration. Elsewhere: a plain line each time state, phase or iteration changes (not
    per heartbeat or percent). With ``json``: every event as a JSON line. In all text
    modes a line per finished iteration, and log lines when ``verbose``. A snapshot that
    is ahead of the events replayed after it is not shown, so the display never jumps
    to the end and back.
    """

    def __init__(self, view: JobView, *, after_seq: int = 0, verbose: bool = False) -> None:
        self._view = view
        self._verbose = verbose
        self._progress: Progress | None = None
        self._task = TaskID(0)
        self._last_status = ""
        self._seq = after_seq

    def __enter__(self) -> Self:
        console = self._view.console
        if not self._view.as_json and console.is_terminal and not console.is_dumb_terminal:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=console,
            )
            self._progress.start()
            self._task = self._progress.add_task("connecting", total=100)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, event: pb.JobEvent) -> None:
        if self._view.as_json:
            self._view.message(event)
            return
        job = event.job
        if event.seq:
            self._seq = event.seq
        elif job.last_event_seq > self._seq:
            return  # a snapshot ahead of the replay that follows it: show the replay
        if event.HasField("iteration_finished"):
            # On a terminal the console prints above the live bar.
            self._view.line(self._iteration(event.iteration_finished, job.max_iterations))
        elif event.HasField("log") and self._verbose:
            self._view.line(event.log.message)
        status = job_status(job)
        if self._progress is not None:
            self._progress.update(self._task, completed=job.progress_percent, description=status)
        elif status != self._last_status:
            self._view.line(f"{status} {job.progress_percent}%")
        self._last_status = status

    @staticmethod
    def _iteration(done: pb.IterationFinished, budget: int) -> str:
        verdict = "passed" if done.passed else f"failed ({len(done.errors)} problems)"
        text = f"iteration {done.iteration}/{budget} {verdict}"
        if done.test_results.total:
            text += f"; tests {_tests(done.test_results)}"
        return text
