/** `PluginClient`: the typed TypeScript client of `auton8n.v1.PluginService`. */

import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";

import { create as createMessage } from "@bufbuild/protobuf";
import { createClient, type CallOptions, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { safeUnpack, verifiedArtifact, type Artifact } from "./archive.js";
import { ClientError, EventGapError, IntegrityError, errorFromConnect } from "./errors.js";
import {
  CreatePluginRequestSchema,
  JobState,
  PluginService,
  type CreatePluginRequest,
  type Job,
  type JobEvent,
  type ListJobsResponse,
  type PluginSpec,
} from "./gen/auton8n/v1/plugin_service_pb.js";
import { Backoff, DEFAULT_RETRY, abortableSleep, isRetryable, type RetryPolicy } from "./retry.js";
import { specFromJson, type PluginSpecJson } from "./spec.js";

export const DEFAULT_TARGET = "localhost:50051";

/** PEM material for TLS; strings or bytes (read the files with `tlsFromFiles`). */
export interface TlsOptions {
  /** CA that signed the server certificate; the system's roots when omitted. */
  readonly ca?: string | Uint8Array;
  /** Client certificate chain, for mutual TLS (with `key`). */
  readonly cert?: string | Uint8Array;
  /** Private key of `cert`. */
  readonly key?: string | Uint8Array;
  /** Name to verify the server certificate against when it differs from the host. */
  readonly serverName?: string;
}

/** Paths of PEM files, as an operator configures them. */
export interface TlsFiles {
  readonly caFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  readonly serverName?: string | undefined;
}

/** Reads PEM files into TlsOptions. A cert needs its key and vice versa. */
export async function tlsFromFiles(files: TlsFiles): Promise<TlsOptions> {
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) {
    throw new TypeError("TLS: the client certificate and key go together");
  }
  const read = async (path: string | undefined): Promise<Buffer | undefined> =>
    path === undefined ? undefined : readFile(path);
  const [ca, cert, key] = await Promise.all([read(files.caFile), read(files.certFile), read(files.keyFile)]);
  return {
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(files.serverName ? { serverName: files.serverName } : {}),
  };
}

export interface ClientOptions {
  /** `host:port`, or `http://host:port` / `https://host:port` (https = TLS). */
  readonly target?: string;
  /** API token, sent as `authorization: Bearer <token>` on every call. */
  readonly token?: string | undefined;
  /** TLS (true: the system's roots), or mutual TLS with a client cert and key. */
  readonly tls?: TlsOptions | boolean | undefined;
  /** Retry policy for UNAVAILABLE (partial: the rest from DEFAULT_RETRY). */
  readonly retry?: Partial<RetryPolicy> | undefined;
  /** Deadline of each unary call in ms (not of streams); null for none. Default 60 s. */
  readonly callTimeoutMs?: number | null | undefined;
  /** Called with the error and the delay (ms) before each retry or watch reconnect. */
  readonly onRetry?: ((error: ClientError, delayMs: number) => void) | undefined;
  /** Extra Connect interceptors (logging, tracing). */
  readonly interceptors?: readonly Interceptor[] | undefined;
}

/** Exactly one of `spec` and `description`, plus the optional knobs. */
export type CreateInput = ({ spec: SpecInput; description?: never } | { description: string; spec?: never }) & CreateOptions;

/**
 * A spec: the reference JSON format as an object (typed as PluginSpecJson, or any
 * object: it is checked by `specFromJson`), a JSON string, or a PluginSpec message.
 */
export type SpecInput = PluginSpecJson | Readonly<Record<string, unknown>> | PluginSpec | string;

export interface CreateOptions {
  /** "template" (offline), a Claude model id, "openai:<model>"; "" = server default. */
  readonly model?: string | undefined;
  /** The repair-loop budget; 0 = server default. */
  readonly maxIterations?: number | undefined;
  /**
   * Idempotency key; a random UUID when omitted. The client's own retries reuse it, so a
   * retried create never makes two jobs.
   */
  readonly requestId?: string | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface ListOptions {
  /** Only jobs in this state (UNSPECIFIED / omitted = all). */
  readonly state?: JobState | undefined;
  /** At most this many jobs per page (0 = 50, capped at 500 by the server). */
  readonly pageSize?: number | undefined;
  readonly pageToken?: string | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface WatchOptions {
  /** Replay log events with seq greater than this (0 = from the beginning). */
  readonly afterSeq?: bigint | number | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface CallOpts {
  readonly signal?: AbortSignal | undefined;
}

/** The states a job never leaves. */
export const TERMINAL_STATES: ReadonlySet<JobState> = new Set([
  JobState.SUCCEEDED,
  JobState.FAILED,
  JobState.CANCELLED,
]);

export function isTerminal(state: JobState): boolean {
  return TERMINAL_STATES.has(state);
}

/**
 * Async client of the plugin service over one HTTP/2 connection (Connect's gRPC
 * transport for Node).
 *
 * Reads and `create` (idempotent through its request id) are retried on UNAVAILABLE per
 * the retry policy; `cancel` and `delete` are not, since a lost reply would turn a
 * repeat into an error. `watch` reconnects on UNAVAILABLE from where it left off.
 * Every failure is thrown as a ClientError subclass (see errors.ts). Call `close()`
 * (or use `await using`) to release the connection.
 */
export class PluginClient implements AsyncDisposable {
  readonly target: string;
  private readonly rpc: Client<typeof PluginService>;
  private readonly session: Http2SessionManager;
  private readonly retry: RetryPolicy;
  private readonly timeoutMs: number | undefined;
  private readonly onRetry: ((error: ClientError, delayMs: number) => void) | undefined;
  private readonly closing = new AbortController();
  /** Whether the server has ever answered: decides the retry budget. */
  private reached = false;

  constructor(options: ClientOptions = {}) {
    const { baseUrl, secure } = resolveTarget(options.target ?? DEFAULT_TARGET, options.tls);
    this.target = baseUrl;
    const tls = typeof options.tls === "object" ? options.tls : undefined;
    this.session = new Http2SessionManager(
      baseUrl,
      { pingIntervalMs: 10_000, pingTimeoutMs: 10_000, idleConnectionTimeoutMs: 60_000 },
      secure
        ? {
            ...(tls?.ca !== undefined ? { ca: pem(tls.ca) } : {}),
            ...(tls?.cert !== undefined ? { cert: pem(tls.cert) } : {}),
            ...(tls?.key !== undefined ? { key: pem(tls.key) } : {}),
            ...(tls?.serverName !== undefined ? { servername: tls.serverName } : {}),
          }
        : {},
    );
    const interceptors: Interceptor[] = [...(options.interceptors ?? [])];
    if (options.token) interceptors.unshift(bearer(options.token));
    const transport = createGrpcTransport({
      baseUrl,
      sessionManager: this.session,
      interceptors,
    });
    this.rpc = createClient(PluginService, transport);
    this.retry = { ...DEFAULT_RETRY, ...definedOnly(options.retry ?? {}) };
    this.timeoutMs = options.callTimeoutMs === null ? undefined : (options.callTimeoutMs ?? 60_000);
    this.onRetry = options.onRetry;
  }

  /** Closes the connection, failing calls in flight. Idempotent. */
  close(): Promise<void> {
    this.closing.abort(new Error("client closed"));
    this.session.abort();
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Creates a job from a spec (the reference JSON format, a JSON string or a message)
   * or a plain-English description.
   *
   * @returns the job, QUEUED (or the original job for a repeated request id).
   * @throws SpecError for a malformed JSON spec; InvalidArgumentError (with
   *   fieldViolations) when the server rejects the request.
   */
  async create(input: CreateInput): Promise<Job> {
    const hasSpec = input.spec !== undefined;
    const hasDescription = input.description !== undefined;
    if (hasSpec === hasDescription) throw new TypeError("create: give exactly one of spec and description");
    const request: CreatePluginRequest = createMessage(CreatePluginRequestSchema, {
      model: input.model ?? "",
      maxIterations: input.maxIterations ?? 0,
      requestId: input.requestId ?? randomUUID(),
    });
    if (input.spec !== undefined) {
      const spec = isSpecMessage(input.spec) ? input.spec : specFromJson(input.spec);
      request.source = { case: "spec", value: spec };
    } else {
      request.source = { case: "description", value: input.description ?? "" };
    }
    return this.unary((o) => this.rpc.createPlugin(request, o), input.signal);
  }

  /** Creates a job from a spec; see `create`. */
  createFromSpec(spec: SpecInput, options: CreateOptions = {}): Promise<Job> {
    return this.create({ ...options, spec });
  }

  /** Creates a job from a description the server derives a spec from; see `create`. */
  createFromDescription(description: string, options: CreateOptions = {}): Promise<Job> {
    return this.create({ ...options, description });
  }

  /** Returns the job. @throws NotFoundError for unknown ids. */
  get(jobId: string, options: CallOpts = {}): Promise<Job> {
    return this.unary((o) => this.rpc.getJob({ jobId }, o), options.signal);
  }

  /** Returns one page of jobs, newest first. */
  list(options: ListOptions = {}): Promise<ListJobsResponse> {
    const request = {
      state: options.state ?? JobState.UNSPECIFIED,
      pageSize: options.pageSize ?? 0,
      pageToken: options.pageToken ?? "",
    };
    return this.unary((o) => this.rpc.listJobs(request, o), options.signal);
  }

  /** Yields every job, newest first, fetching pages as they are consumed. */
  async *listAll(options: Omit<ListOptions, "pageToken"> = {}): AsyncGenerator<Job, void, undefined> {
    let pageToken = "";
    for (;;) {
      const page = await this.list({ ...options, pageToken });
      yield* page.jobs;
      pageToken = page.nextPageToken;
      if (!pageToken) return;
    }
  }

  /** Cancels a QUEUED or RUNNING job. @throws FailedPreconditionError once finished. */
  cancel(jobId: string, options: CallOpts = {}): Promise<Job> {
    return this.unary((o) => this.rpc.cancelJob({ jobId }, o), options.signal, false);
  }

  /** Deletes a finished job with its events and artifact. */
  async delete(jobId: string, options: CallOpts = {}): Promise<void> {
    await this.unary((o) => this.rpc.deleteJob({ jobId }, o), options.signal, false);
  }

  /**
   * Yields the job's events until the stream ends after the terminal event.
   *
   * Every message is yielded: the snapshot and heartbeats (seq 0) and each log event
   * with seq > afterSeq exactly once and in order. When the stream fails with
   * UNAVAILABLE (server restart, drain, a dropped connection) the client reconnects
   * with the last seq it yielded, after a jittered backoff, until the retry budget
   * passes without a message; a reconnect starts with a fresh snapshot. Breaking out of
   * the loop (or aborting the signal) cancels the stream.
   *
   * @throws EventGapError when a seq was skipped (a server bug: nothing can recover it);
   *   UnavailableError when the retry budget is spent; any other ClientError at once.
   */
  async *watch(jobId: string, options: WatchOptions = {}): AsyncGenerator<JobEvent, void, undefined> {
    let last = BigInt(options.afterSeq ?? 0);
    let backoff: Backoff | undefined;
    for (;;) {
      const call = new AbortController();
      const signal = linkSignals(call.signal, options.signal, this.closing.signal);
      try {
        for await (const event of this.rpc.watchJob({ jobId, afterSeq: last }, { signal })) {
          this.reached = true;
          if (event.detail.case !== "snapshot") backoff = undefined; // the server is back for real
          if (event.seq > 0n) {
            if (event.seq <= last) continue; // a duplicate after a reconnect
            if (event.seq !== last + 1n) throw new EventGapError(jobId, last, event.seq);
            last = event.seq;
          }
          yield event;
        }
        return;
      } catch (reason) {
        if (reason instanceof EventGapError) throw reason;
        backoff = await this.recover(reason, backoff, true, options.signal);
      } finally {
        call.abort();
      }
    }
  }

  /**
   * Follows the job to its end and returns the terminal job. `onEvent` sees every
   * message of `watch`.
   */
  async wait(jobId: string, options: WatchOptions & { onEvent?: (event: JobEvent) => void } = {}): Promise<Job> {
    let job: Job | undefined;
    for await (const event of this.watch(jobId, options)) {
      options.onEvent?.(event);
      if (event.job) job = event.job;
    }
    if (job === undefined || !isTerminal(job.state)) job = await this.get(jobId, options);
    return job;
  }

  /**
   * Downloads the job's archive and verifies its size and sha256 (node:crypto).
   * Restarts from the beginning on UNAVAILABLE (per the retry policy).
   *
   * @throws IntegrityError on a size or checksum mismatch; NotFoundError /
   *   FailedPreconditionError (NO_ARTIFACT) as the server decides.
   */
  download(jobId: string, options: CallOpts = {}): Promise<Artifact> {
    return this.withRetry(() => this.downloadOnce(jobId, options.signal), true, options.signal);
  }

  /**
   * Downloads, verifies and safely unpacks the archive into `directory`.
   * @returns the plugin folder (`directory/<top-level folder of the archive>`).
   */
  async downloadTo(jobId: string, directory: string, options: CallOpts = {}): Promise<string> {
    const artifact = await this.download(jobId, options);
    return safeUnpack(artifact.data, directory);
  }

  private async downloadOnce(jobId: string, outer: AbortSignal | undefined): Promise<Artifact> {
    const call = new AbortController();
    const signal = linkSignals(call.signal, outer, this.closing.signal);
    const chunks: Buffer[] = [];
    let received = 0n;
    let sha256 = "";
    let totalSize = 0n;
    try {
      for await (const chunk of this.rpc.downloadArtifact({ jobId }, { signal })) {
        this.reached = true;
        chunks.push(Buffer.from(chunk.data));
        received += BigInt(chunk.data.length);
        if (chunk.sha256) sha256 = chunk.sha256;
        totalSize = chunk.totalSize;
        if (received > totalSize) {
          throw new IntegrityError(`archive exceeds the announced ${totalSize} bytes`, "SIZE_MISMATCH");
        }
      }
    } finally {
      call.abort();
    }
    return verifiedArtifact(Buffer.concat(chunks), sha256, totalSize);
  }

  private unary<T>(call: (options: CallOptions) => Promise<T>, signal: AbortSignal | undefined, retry = true): Promise<T> {
    return this.withRetry(
      () =>
        call({
          signal: linkSignals(signal, this.closing.signal),
          ...(this.timeoutMs !== undefined ? { timeoutMs: this.timeoutMs } : {}),
        }),
      retry,
      signal,
    );
  }

  private async withRetry<T>(attempt: () => Promise<T>, retry: boolean, signal: AbortSignal | undefined): Promise<T> {
    let backoff: Backoff | undefined;
    for (;;) {
      try {
        const result = await attempt();
        this.reached = true;
        return result;
      } catch (reason) {
        backoff = await this.recover(reason, backoff, retry, signal);
      }
    }
  }

  /** Sleeps before the next try of a retryable failure; otherwise throws it converted. */
  private async recover(reason: unknown, backoff: Backoff | undefined, retry: boolean, signal: AbortSignal | undefined): Promise<Backoff> {
    const error = errorFromConnect(reason);
    // The server itself answered (e.g. UNAVAILABLE: draining): it has been reached.
    if (hasServerStatus(reason)) this.reached = true;
    const next = backoff ?? new Backoff(this.retry, this.reached);
    const delay = retry && isRetryable(error) && !signal?.aborted && !this.closing.signal.aborted ? next.nextDelay() : undefined;
    if (delay === undefined) throw error;
    this.onRetry?.(error, delay);
    await abortableSleep(delay, linkSignals(signal, this.closing.signal));
    return next;
  }
}

function resolveTarget(target: string, tls: ClientOptions["tls"]): { baseUrl: string; secure: boolean } {
  const match = /^(https?):\/\/(.+?)\/?$/.exec(target);
  if (match) {
    const secure = match[1] === "https";
    if (!secure && tls) throw new TypeError(`TLS options given for the plaintext target ${target}`);
    return { baseUrl: `${match[1]}://${match[2]}`, secure };
  }
  if (target.includes("/")) throw new TypeError(`bad target ${JSON.stringify(target)}: use host:port or an http(s):// URL`);
  const secure = tls !== undefined && tls !== false;
  return { baseUrl: `${secure ? "https" : "http"}://${target}`, secure };
}

function bearer(token: string): Interceptor {
  return (next) => (request) => {
    request.header.set("authorization", `Bearer ${token}`);
    return next(request);
  };
}

function pem(value: string | Uint8Array): string | Buffer {
  return typeof value === "string" ? value : Buffer.from(value);
}

function isSpecMessage(spec: unknown): spec is PluginSpec {
  return typeof spec === "object" && spec !== null && (spec as { $typeName?: unknown }).$typeName === "auton8n.v1.PluginSpec";
}

function hasServerStatus(reason: unknown): boolean {
  const metadata = (reason as { metadata?: unknown } | null)?.metadata;
  return metadata instanceof Headers && metadata.has("grpc-status");
}

/** An AbortSignal that aborts when any of the given ones does. */
function linkSignals(...signals: (AbortSignal | undefined)[]): AbortSignal {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  return present.length === 1 && present[0] !== undefined ? present[0] : AbortSignal.any(present);
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
