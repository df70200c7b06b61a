/**
 * @auton8n/client — the typed TypeScript client of the auton8n plugin-generation
 * service (`auton8n.v1.PluginService`, gRPC over HTTP/2 via Connect for Node).
 *
 * ```ts
 * import { PluginClient } from "@auton8n/client";
 * await using client = new PluginClient({ target: "localhost:50051", token });
 * const job = await client.createFromSpec(spec);
 * for await (const event of client.watch(job.id)) console.log(event.seq, event.job?.state);
 * const { data, sha256 } = await client.download(job.id);
 * ```
 */

export {
  DEFAULT_TARGET,
  PluginClient,
  TERMINAL_STATES,
  isTerminal,
  tlsFromFiles,
  type CallOpts,
  type ClientOptions,
  type CreateInput,
  type CreateOptions,
  type ListOptions,
  type SpecInput,
  type TlsFiles,
  type TlsOptions,
  type WatchOptions,
} from "./client.js";
export {
  AuthError,
  ClientError,
  Code,
  EventGapError,
  FailedPreconditionError,
  IntegrityError,
  InvalidArgumentError,
  NotFoundError,
  RateLimitedError,
  UnavailableError,
  UnsafeArchiveError,
  codeName,
  errorFromConnect,
  errorFromStatus,
  errorFromStatusBytes,
  type ClientErrorInit,
  type FieldViolation,
} from "./errors.js";
export {
  DEFAULT_MAX_UNPACKED_BYTES,
  readTarGz,
  safeUnpack,
  sha256Hex,
  verifiedArtifact,
  type ArchiveEntry,
  type Artifact,
} from "./archive.js";
export { Backoff, DEFAULT_RETRY, isRetryable, retryDelays, type RetryPolicy } from "./retry.js";
export { SpecError, specFromJson, type PluginSpecJson } from "./spec.js";
export { parseState, phaseName, stateName } from "./names.js";
export {
  JobState,
  Phase,
  PluginService,
  type Artifact as ArtifactInfo,
  type IterationError,
  type Job,
  type JobEvent,
  type ListJobsResponse,
  type PluginSpec,
  type TestResults,
} from "./gen/auton8n/v1/plugin_service_pb.js";
