/** Who created which job: the "caller's jobs" of the actions and the provider. */

import type { IAgentRuntime } from "@elizaos/core";

/** A job created through the plugin, with the conversation it belongs to. */
export interface JobRecord {
  readonly jobId: string;
  /** The entity (user) that asked for it. */
  readonly entityId: string;
  /** The room the request came from, where progress is posted. */
  readonly roomId: string;
  /** The plugin's package name, or "" for a description job until the spec is known. */
  readonly name: string;
  /** ms since the epoch. */
  readonly createdAt: number;
}

/** How many jobs per entity are remembered. */
export const MAX_JOBS_PER_ENTITY = 50;

type Cache = Pick<IAgentRuntime, "getCache" | "setCache">;
type Log = (message: string, error: unknown) => void;

/**
 * Ownership of jobs, per entity, in memory and, where the runtime has a database, in its
 * cache (so "my latest job" survives an agent restart). A cache that fails is logged and
 * the tracker goes on in memory.
 */
export class JobTracker {
  private readonly byEntity = new Map<string, JobRecord[]>();
  private readonly byJob = new Map<string, JobRecord>();

  constructor(
    private readonly namespace: string,
    private readonly cache: Cache | undefined,
    private readonly log: Log = () => {},
  ) {}

  /** Remembers a job as the entity's newest. */
  async record(record: JobRecord): Promise<void> {
    const list = (await this.jobsOf(record.entityId)).filter((r) => r.jobId !== record.jobId);
    list.unshift(record);
    list.length = Math.min(list.length, MAX_JOBS_PER_ENTITY);
    this.byEntity.set(record.entityId, list);
    this.byJob.set(record.jobId, record);
    await this.save(this.entityKey(record.entityId), list);
    await this.save(this.jobKey(record.jobId), record);
  }

  /** The entity's jobs, newest first. */
  async jobsOf(entityId: string): Promise<JobRecord[]> {
    const known = this.byEntity.get(entityId);
    if (known !== undefined) return [...known];
    const stored = await this.load<JobRecord[]>(this.entityKey(entityId));
    const list = Array.isArray(stored) ? stored.filter(isRecord) : [];
    this.byEntity.set(entityId, list);
    for (const r of list) this.byJob.set(r.jobId, r);
    return [...list];
  }

  /** The record of a job (who asked for it), or undefined for jobs not made here. */
  async ownerOf(jobId: string): Promise<JobRecord | undefined> {
    const known = this.byJob.get(jobId);
    if (known !== undefined) return known;
    const stored = await this.load<JobRecord>(this.jobKey(jobId));
    if (stored !== undefined && isRecord(stored)) {
      this.byJob.set(jobId, stored);
      return stored;
    }
    return undefined;
  }

  private entityKey(entityId: string): string {
    return `${this.namespace}:jobs:${entityId}`;
  }

  private jobKey(jobId: string): string {
    return `${this.namespace}:job:${jobId}`;
  }

  private async load<T>(key: string): Promise<T | undefined> {
    if (this.cache === undefined) return undefined;
    try {
      return await this.cache.getCache<T>(key);
    } catch (error) {
      this.log(`reading ${key} from the runtime cache failed`, error);
      return undefined;
    }
  }

  private async save(key: string, value: unknown): Promise<void> {
    if (this.cache === undefined) return;
    try {
      await this.cache.setCache(key, value);
    } catch (error) {
      this.log(`writing ${key} to the runtime cache failed`, error);
    }
  }
}

function isRecord(value: unknown): value is JobRecord {
  if (typeof value !== "object" || value === null) return false;
  const r = value as Record<string, unknown>;
  return typeof r["jobId"] === "string" && typeof r["entityId"] === "string" && typeof r["roomId"] === "string";
}
