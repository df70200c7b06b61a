/** The ElizaOS service holding the auton8n client and following jobs with WatchJob. */

import { Service, type IAgentRuntime } from "@elizaos/core";
import {
  PluginClient,
  isTerminal,
  phaseName,
  type Job,
  type JobEvent,
  type SpecInput,
} from "@auton8n/client";

import { errorMessage, jobLabel, jobReport, progressMessage } from "./messages.js";
import { clientOptions, readSettings, type Auton8nSettings } from "./settings.js";
import { JobTracker, type JobRecord } from "./tracker.js";

export const SERVICE_TYPE = "auton8n";

/** Finished jobs whose last state is kept in memory. */
const MAX_FINISHED = 1000;

declare module "@elizaos/core" {
  interface ServiceTypeRegistry {
    AUTON8N: "auton8n";
  }
}

/** Receives the progress of a followed job: what the user should read. */
export type ProgressListener = (text: string, job: Job, final: boolean) => Promise<void>;

/** What a job is made from: a spec (JSON object or string) or a description. */
export type JobSource = { readonly spec: SpecInput } | { readonly description: string };

/** Who asked: the conversation a job belongs to. */
export interface Caller {
  readonly entityId: string;
  readonly roomId: string;
}

interface Follow {
  readonly jobId: string;
  readonly abort: AbortController;
  readonly listeners: Set<ProgressListener>;
  latest: Job;
  done: Promise<Job>;
}

/**
 * Holds the client of the auton8n service, configured from the runtime settings
 * (AUTON8N_SERVER, AUTON8N_TOKEN, AUTON8N_TLS*, AUTON8N_MODEL), remembers which caller
 * created which job, and follows running jobs with WatchJob so progress is pushed to
 * the conversation as it happens (never polled).
 */
export class Auton8nService extends Service {
  static override serviceType = SERVICE_TYPE;

  override capabilityDescription =
    "Generates ElizaOS plugins with the auton8n service: creates jobs from a JSON spec or a " +
    "description, reports their progress as they build and test, checks and cancels them.";

  readonly settings: Auton8nSettings;
  readonly tracker: JobTracker;
  private readonly client_: PluginClient | undefined;
  private readonly follows = new Map<string, Follow>();
  private readonly finished = new Map<string, Job>();
  private stopped = false;

  constructor(runtime?: IAgentRuntime, client?: PluginClient, settings?: Auton8nSettings) {
    super(runtime);
    this.client_ = client;
    this.settings = settings ?? (runtime ? readSettings(runtime) : readSettings({ getSetting: () => null }));
    this.tracker = new JobTracker(`auton8n:${runtime?.agentId ?? "agent"}`, runtime, (message, error) =>
      runtime?.logger?.warn({ src: "plugin:auton8n", error: String(error) }, message),
    );
  }

  /** Reads the settings, opens the client (lazily: no I/O but reading TLS files). */
  static override async start(runtime: IAgentRuntime): Promise<Auton8nService> {
    const settings = readSettings(runtime);
    const client = new PluginClient(await clientOptions(settings));
    runtime.logger?.info(
      { src: "plugin:auton8n", server: client.target, tls: settings.tls },
      "auton8n service started",
    );
    return new Auton8nService(runtime, client, settings);
  }

  static override async stop(runtime: IAgentRuntime): Promise<void> {
    const service = runtime.getService<Auton8nService>(SERVICE_TYPE);
    await service?.stop();
  }

  /** Stops following jobs (the jobs themselves go on) and closes the client. */
  async stop(): Promise<void> {
    this.stopped = true;
    const pending = [...this.follows.values()];
    for (const f of pending) f.abort.abort(new Error("service stopped"));
    await Promise.allSettled(pending.map((f) => f.done));
    await this.client_?.close();
  }

  /** The client of the service. */
  get client(): PluginClient {
    if (this.client_ === undefined) throw new Error("the auton8n service was not started");
    return this.client_;
  }

  /**
   * Creates a job for the caller and remembers it as theirs.
   * `idempotencyKey` (e.g. the message id) makes a repeated request return the same job.
   */
  async createJob(source: JobSource, caller: Caller, idempotencyKey?: string): Promise<Job> {
    const options = {
      model: this.settings.model,
      maxIterations: this.settings.maxIterations,
      requestId: idempotencyKey?.slice(0, 128),
    };
    const job =
      "spec" in source
        ? await this.client.createFromSpec(source.spec, options)
        : await this.client.createFromDescription(source.description, options);
    await this.tracker.record({
      jobId: job.id,
      entityId: caller.entityId,
      roomId: caller.roomId,
      name: job.spec?.name ?? "",
      createdAt: Date.now(),
    });
    return job;
  }

  /** The caller's jobs, newest first. */
  jobsOf(entityId: string): Promise<JobRecord[]> {
    return this.tracker.jobsOf(entityId);
  }

  /** Whether the job was created by this caller. */
  async owns(entityId: string, jobId: string): Promise<boolean> {
    return (await this.tracker.ownerOf(jobId))?.entityId === entityId;
  }

  /**
   * The newest state of a job: from its WatchJob stream when followed, from memory once
   * it has finished (terminal states are final), else GetJob.
   */
  async jobState(jobId: string, signal?: AbortSignal): Promise<Job> {
    const followed = this.follows.get(jobId);
    if (followed !== undefined) return followed.latest;
    const finished = this.finished.get(jobId);
    if (finished !== undefined) return finished;
    return this.remember(await this.client.get(jobId, { signal }));
  }

  /** Keeps a finished job's last state (bounded), so the provider need not ask again. */
  private remember(job: Job): Job {
    if (isTerminal(job.state)) {
      this.finished.set(job.id, job);
      if (this.finished.size > MAX_FINISHED) {
        const oldest = this.finished.keys().next().value;
        if (oldest !== undefined) this.finished.delete(oldest);
      }
    }
    return job;
  }

  /**
   * The caller's QUEUED and RUNNING jobs, newest first. Followed jobs answer from their
   * stream; the others with one GetJob each (in parallel, bounded by `timeoutMs`).
   */
  async activeJobsOf(entityId: string, timeoutMs = 3000): Promise<Job[]> {
    const records = await this.jobsOf(entityId);
    const signal = AbortSignal.timeout(timeoutMs);
    const jobs = await Promise.all(
      records.map(async (r) => {
        try {
          return await this.jobState(r.jobId, signal);
        } catch {
          return undefined;
        }
      }),
    );
    return jobs.filter((j): j is Job => j !== undefined && !isTerminal(j.state));
  }

  /** Whether the job's WatchJob stream is being followed. */
  isFollowing(jobId: string): boolean {
    return this.follows.has(jobId);
  }

  /**
   * Follows a job with WatchJob (once per job; more listeners may join) and tells the
   * listener about phase changes, failed iterations and the end. Events before
   * `job.lastEventSeq` are not repeated. Resolves `done` with the terminal job.
   *
   * @returns the promise of the terminal job (or the last known one if following
   *   stopped), or undefined when the job has already finished.
   */
  follow(job: Job, listener?: ProgressListener): Promise<Job> | undefined {
    if (isTerminal(job.state) || this.stopped) return undefined;
    const existing = this.follows.get(job.id);
    if (existing !== undefined) {
      if (listener) existing.listeners.add(listener);
      return existing.done;
    }
    const f: Follow = {
      jobId: job.id,
      abort: new AbortController(),
      listeners: new Set(listener ? [listener] : []),
      latest: job,
      done: Promise.resolve(job),
    };
    this.follows.set(job.id, f);
    f.done = this.run(f, job.lastEventSeq);
    return f.done;
  }

  /** Stops following a job (its listeners hear nothing more). */
  unfollow(jobId: string): void {
    const f = this.follows.get(jobId);
    if (f === undefined) return;
    f.listeners.clear();
    f.abort.abort(new Error("unfollowed"));
  }

  private async run(f: Follow, afterSeq: bigint): Promise<Job> {
    let lastPhase = "";
    try {
      for await (const event of this.client.watch(f.jobId, { afterSeq, signal: f.abort.signal })) {
        if (event.job) f.latest = event.job;
        if (event.seq === 0n) continue; // snapshot or heartbeat
        if (this.settings.progress === "final" && (event.detail.case === "phaseChanged" || event.detail.case === "stateChanged")) {
          if (!isTerminalEvent(event)) continue;
        }
        if (event.detail.case === "phaseChanged") {
          const key = `${event.job?.iteration ?? 0}:${phaseName(event.detail.value.phase)}`;
          if (key === lastPhase) continue;
          lastPhase = key;
        }
        if (isTerminalEvent(event)) {
          f.latest = await this.client.get(f.jobId, { signal: f.abort.signal }).catch(() => f.latest);
          await this.tell(f, jobReport(f.latest), true);
          continue;
        }
        const text = progressMessage(event);
        if (text !== undefined) await this.tell(f, text, false);
      }
    } catch (error) {
      if (!f.abort.signal.aborted) {
        this.runtime?.logger?.warn({ src: "plugin:auton8n", jobId: f.jobId, error: String(error) }, "lost a job's progress stream");
        await this.tell(f, `I lost track of ${jobLabel(f.latest)}: ${errorMessage(error)} Ask me for its status later.`, true);
      }
    } finally {
      this.follows.delete(f.jobId);
      this.remember(f.latest);
    }
    return f.latest;
  }

  private async tell(f: Follow, text: string, final: boolean): Promise<void> {
    for (const listener of f.listeners) {
      try {
        await listener(text, f.latest, final);
      } catch (error) {
        this.runtime?.logger?.warn({ src: "plugin:auton8n", jobId: f.jobId, error: String(error) }, "a progress callback failed");
      }
    }
  }
}

function isTerminalEvent(event: JobEvent): boolean {
  return event.detail.case === "stateChanged" && isTerminal(event.detail.value.toState);
}
