/** What the user reads: job summaries, progress lines and final reports. */

import {
  ClientError,
  JobState,
  errorFromStatus,
  phaseName,
  stateName,
  type Job,
  type JobEvent,
} from "@auton8n/client";

/** How jobs are named in chat: the first 8 hex digits (any unique prefix is accepted). */
export function shortId(jobId: string): string {
  return jobId.slice(0, 8);
}

/** "@elizaos/plugin-time (job 3f2a9c1b)". */
export function jobLabel(job: Pick<Job, "id" | "spec">): string {
  const name = job.spec?.name;
  return name ? `${name} (job ${shortId(job.id)})` : `job ${shortId(job.id)}`;
}

/** One line: "@elizaos/plugin-time (job 3f2a9c1b): running — building, iteration 1/5, 40%". */
export function statusLine(job: Job): string {
  const parts: string[] = [];
  if (job.state === JobState.QUEUED) {
    parts.push(job.queuePosition > 0 ? `${job.queuePosition} job(s) ahead` : "next in line");
  }
  if (job.state === JobState.RUNNING) {
    const phase = phaseName(job.phase);
    if (phase) parts.push(phase);
    if (job.iteration > 0) parts.push(`iteration ${job.iteration}/${job.maxIterations}`);
    parts.push(`${job.progressPercent}%`);
  }
  const detail = parts.length > 0 ? ` — ${parts.join(", ")}` : "";
  return `${jobLabel(job)}: ${stateName(job.state)}${detail}`;
}

/** The full report of a job: the status line plus the result or the failure. */
export function jobReport(job: Job): string {
  const lines = [statusLine(job)];
  switch (job.state) {
    case JobState.SUCCEEDED:
      lines.push(...successLines(job));
      break;
    case JobState.FAILED:
      lines.push(...failureLines(job));
      break;
    case JobState.CANCELLED:
      lines.push("It was cancelled; nothing was kept.");
      break;
    default:
      lines.push("I'll post updates here as it progresses.");
  }
  return lines.join("\n");
}

/** The message for a WatchJob event worth telling the user about, or undefined. */
export function progressMessage(event: JobEvent): string | undefined {
  const job = event.job;
  if (job === undefined) return undefined;
  switch (event.detail.case) {
    case "phaseChanged": {
      const phase = phaseName(event.detail.value.phase);
      if (!phase) return undefined;
      const iteration = job.iteration > 0 ? ` (iteration ${job.iteration}/${job.maxIterations})` : "";
      return `${jobLabel(job)}: ${phase}${iteration}…`;
    }
    case "iterationFinished": {
      const it = event.detail.value;
      if (it.passed) return undefined; // the success report follows
      const first = it.errors[0];
      const why = first ? ` — ${first.file ? `${first.file}${first.line ? `:${first.line}` : ""}: ` : ""}${first.message}` : "";
      return `${jobLabel(job)}: iteration ${it.iteration} found ${it.errors.length} problem(s)${why}; repairing.`;
    }
    case "stateChanged": {
      const to = event.detail.value.toState;
      if (to === JobState.SUCCEEDED || to === JobState.FAILED || to === JobState.CANCELLED) {
        return jobReport(job);
      }
      if (to === JobState.RUNNING && event.detail.value.fromState === JobState.QUEUED) {
        return `${jobLabel(job)}: started.`;
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

/** A user-facing sentence for a failed call. */
export function errorMessage(error: unknown): string {
  if (error instanceof ClientError) {
    switch (error.reason || error.codeName) {
      case "JOB_NOT_FOUND":
      case "NOT_FOUND":
        return "I can't find that job on the plugin service.";
      case "JOB_FINISHED":
        return `That job has already finished: ${error.rawMessage}.`;
      case "UNAVAILABLE":
      case "DRAINING":
        return "The plugin service is not reachable right now; please try again in a minute.";
      case "UNAUTHENTICATED":
      case "PERMISSION_DENIED":
        return `The plugin service refused my credentials (${error.rawMessage}).`;
      default:
        break;
    }
    if (error.fieldViolations.length > 0) {
      const list = error.fieldViolations.map((v) => `- ${v.field}: ${v.description}`).join("\n");
      return `The plugin service rejected the request:\n${list}`;
    }
    return `The plugin service answered ${error.codeName}: ${error.rawMessage}`;
  }
  return `Something went wrong: ${error instanceof Error ? error.message : String(error)}`;
}

function successLines(job: Job): string[] {
  const lines: string[] = [];
  const a = job.artifact;
  if (a) {
    lines.push(`Your plugin is ready: ${a.filename} (${formatBytes(a.sizeBytes)}), sha256 ${a.sha256}.`);
  }
  const t = job.testResults;
  if (t && t.total > 0) lines.push(`Tests: ${t.passed}/${t.total} passed${t.skipped ? `, ${t.skipped} skipped` : ""}.`);
  if (job.validationScore > 0) lines.push(`Validation score: ${job.validationScore}/100.`);
  lines.push(`Download it with: auton8n download ${job.id} -o ./plugins`);
  return lines;
}

function failureLines(job: Job): string[] {
  const lines: string[] = [];
  if (job.error) lines.push(`Why: ${errorFromStatus(job.error).rawMessage}`);
  const shown = job.errors.slice(0, 3);
  for (const e of shown) {
    const where = e.file ? `${e.file}${e.line ? `:${e.line}` : ""}: ` : "";
    lines.push(`- ${where}${e.code ? `${e.code} ` : ""}${e.message}`);
  }
  if (job.errors.length > shown.length) lines.push(`…and ${job.errors.length - shown.length} more problem(s).`);
  return lines;
}

function formatBytes(n: bigint): string {
  const value = Number(n);
  if (value < 1024) return `${value} B`;
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KiB`;
  return `${(value / 1024 / 1024).toFixed(1)} MiB`;
}
