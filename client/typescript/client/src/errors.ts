/**
 * Errors raised by the client, decoded from gRPC statuses.
 *
 * One rooted hierarchy; every error carries the gRPC status code it stands for:
 *
 *     ClientError                  any failure: .code, .message, .reason, .details
 *     ├── NotFoundError            NOT_FOUND: unknown job id
 *     ├── InvalidArgumentError     INVALID_ARGUMENT: see .fieldViolations
 *     ├── FailedPreconditionError  FAILED_PRECONDITION: e.g. cancelling a finished job
 *     ├── AuthError                UNAUTHENTICATED or PERMISSION_DENIED
 *     ├── RateLimitedError         RESOURCE_EXHAUSTED: see .retryAfterMs
 *     ├── UnavailableError         UNAVAILABLE, after the client's own retries
 *     ├── IntegrityError           DATA_LOSS: a download does not match its sha256 or size
 *     ├── UnsafeArchiveError       DATA_LOSS: an archive entry escapes or is not a plain file
 *     └── EventGapError            INTERNAL: WatchJob skipped a seq (a server bug)
 *
 * Server errors carry a `google.rpc.Status` in the `grpc-status-details-bin` trailer;
 * Connect decodes it, and the ErrorInfo / BadRequest / RetryInfo details are surfaced
 * here as `.reason`, `.fieldViolations` and `.retryAfterMs`.
 */

import { createRegistry, fromBinary, type DescMessage, type Message, type MessageShape } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

import {
  BadRequestSchema,
  DebugInfoSchema,
  ErrorInfoSchema,
  HelpSchema,
  LocalizedMessageSchema,
  PreconditionFailureSchema,
  QuotaFailureSchema,
  RequestInfoSchema,
  ResourceInfoSchema,
  RetryInfoSchema,
  type BadRequest,
  type BadRequest_FieldViolation,
  type ErrorInfo,
  type RetryInfo,
} from "./gen/google/rpc/error_details_pb.js";
import { StatusSchema, type Status } from "./gen/google/rpc/status_pb.js";

/** gRPC status codes (the same numbers as `google.rpc.Code`). */
export { Code } from "@connectrpc/connect";

/** The detail message types the client decodes; others stay undecoded. */
const DETAIL_SCHEMAS: readonly DescMessage[] = [
  ErrorInfoSchema,
  BadRequestSchema,
  RetryInfoSchema,
  QuotaFailureSchema,
  PreconditionFailureSchema,
  ResourceInfoSchema,
  RequestInfoSchema,
  HelpSchema,
  LocalizedMessageSchema,
  DebugInfoSchema,
];
const DETAIL_REGISTRY = createRegistry(...DETAIL_SCHEMAS);

/** A field violation of a rejected request (BadRequest.FieldViolation). */
export interface FieldViolation {
  /** Path of the offending field, e.g. "spec.actions[0].name". */
  readonly field: string;
  readonly description: string;
}

export interface ClientErrorInit {
  /** Stable `ErrorInfo.reason` (e.g. "JOB_NOT_FOUND"), when no ErrorInfo detail says it. */
  readonly reason?: string;
  /** Decoded `google.rpc.Status` details. */
  readonly details?: readonly Message[];
  /** How long to wait before retrying, in milliseconds. */
  readonly retryAfterMs?: number;
  readonly cause?: unknown;
}

/** A failed call, or a result the client refuses. */
export class ClientError extends Error {
  /** The gRPC status code. */
  readonly code: Code;
  /** The server's (or the client's) message, without the code prefix. */
  readonly rawMessage: string;
  /** The stable `ErrorInfo.reason` (e.g. "JOB_NOT_FOUND"), or "". */
  readonly reason: string;
  /** `ErrorInfo.domain`, or "". */
  readonly domain: string;
  /** `ErrorInfo.metadata`. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Every decoded detail of the status (ErrorInfo, BadRequest, RetryInfo, ...). */
  readonly details: readonly Message[];
  /** The BadRequest field violations (possibly empty). */
  readonly fieldViolations: readonly FieldViolation[];
  /** RetryInfo's delay in milliseconds, or undefined. */
  readonly retryAfterMs: number | undefined;

  constructor(code: Code, message: string, init: ClientErrorInit = {}) {
    const details = init.details ?? [];
    const info = details.find(isErrorInfo);
    const reason = info?.reason || init.reason || "";
    const fieldViolations = details
      .filter(isBadRequest)
      .flatMap((d) => d.fieldViolations.map(toViolation));
    const retryInfo = details.find(isRetryInfo);
    super(describe(code, message, reason, fieldViolations), init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = code;
    this.rawMessage = message;
    this.reason = reason;
    this.domain = info?.domain ?? "";
    this.metadata = { ...(info?.metadata ?? {}) };
    this.details = details;
    this.fieldViolations = fieldViolations;
    this.retryAfterMs = retryInfo?.retryDelay
      ? Number(retryInfo.retryDelay.seconds) * 1000 + Math.round(retryInfo.retryDelay.nanos / 1e6)
      : init.retryAfterMs;
  }

  /** The gRPC name of the code, e.g. "NOT_FOUND". */
  get codeName(): string {
    return codeName(this.code);
  }

  /** The first decoded detail of the given type (e.g. QuotaFailureSchema), or undefined. */
  detail<Desc extends DescMessage>(schema: Desc): MessageShape<Desc> | undefined {
    return this.details.find((d) => d.$typeName === schema.typeName) as MessageShape<Desc> | undefined;
  }
}

/** NOT_FOUND: the job does not exist. */
export class NotFoundError extends ClientError {}
/** INVALID_ARGUMENT: the request was rejected; see `fieldViolations`. */
export class InvalidArgumentError extends ClientError {}
/** FAILED_PRECONDITION: the job is in the wrong state (e.g. already finished). */
export class FailedPreconditionError extends ClientError {}
/** UNAUTHENTICATED (missing or bad token) or PERMISSION_DENIED. */
export class AuthError extends ClientError {}
/** RESOURCE_EXHAUSTED: a rate limit or quota; see `retryAfterMs`. */
export class RateLimitedError extends ClientError {}
/** UNAVAILABLE: the server is unreachable, restarting or draining. */
export class UnavailableError extends ClientError {}

/** A downloaded archive does not match the sha256 or size the server announced. */
export class IntegrityError extends ClientError {
  constructor(message: string, reason = "CHECKSUM_MISMATCH") {
    super(Code.DataLoss, message, { reason });
  }
}

/** An archive entry is absolute, climbs out with `..`, or is a link or device. */
export class UnsafeArchiveError extends ClientError {
  constructor(message: string) {
    super(Code.DataLoss, message, { reason: "UNSAFE_ARCHIVE" });
  }
}

/** WatchJob delivered seq `got` right after `last`: events were lost (a server bug). */
export class EventGapError extends ClientError {
  readonly jobId: string;
  readonly last: bigint;
  readonly got: bigint;

  constructor(jobId: string, last: bigint, got: bigint) {
    super(
      Code.Internal,
      `job ${jobId}: event seq ${got} followed ${last}; events ${last + 1n}..${got - 1n} ` +
        "are missing (server bug)",
      { reason: "EVENT_GAP" },
    );
    this.jobId = jobId;
    this.last = last;
    this.got = got;
  }
}

const BY_CODE: ReadonlyMap<Code, new (code: Code, message: string, init?: ClientErrorInit) => ClientError> =
  new Map([
    [Code.NotFound, NotFoundError],
    [Code.InvalidArgument, InvalidArgumentError],
    [Code.FailedPrecondition, FailedPreconditionError],
    [Code.Unauthenticated, AuthError],
    [Code.PermissionDenied, AuthError],
    [Code.ResourceExhausted, RateLimitedError],
    [Code.Unavailable, UnavailableError],
  ]);

/** Builds the ClientError subclass for a code. */
export function errorForCode(code: Code, message: string, init: ClientErrorInit = {}): ClientError {
  const Kind = BY_CODE.get(code) ?? ClientError;
  return new Kind(code, message, init);
}

// Node.js error codes of a connection that broke (server killed, restarted, network cut).
const CONNECTION_LOST = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ERR_STREAM_DESTROYED",
  "ERR_STREAM_PREMATURE_CLOSE",
  "ERR_HTTP2_INVALID_SESSION",
  "ERR_HTTP2_INVALID_STREAM",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_HTTP2_STREAM_CANCEL",
  "ERR_HTTP2_ERROR",
]);

/**
 * Converts anything a Connect call threw into a ClientError. Never throws.
 *
 * A status the server sent keeps its code. A failure of the connection itself (the
 * server was killed or restarted mid-call: ECONNRESET, a GOAWAY, a stream reset, a
 * stream that ended without a status) becomes UNAVAILABLE, as gRPC defines it, so that
 * the client's retry and watch-resume logic treats it as the transient failure it is.
 */
export function errorFromConnect(reason: unknown): ClientError {
  if (reason instanceof ClientError) return reason;
  const error = ConnectError.from(reason);
  let code = error.code;
  const fromServer = error.metadata.has("grpc-status");
  if (!fromServer && code !== Code.DeadlineExceeded && connectionLost(error)) {
    code = Code.Unavailable;
  }
  const details: Message[] = [];
  for (const raw of error.details) {
    if ("desc" in raw) continue; // an outgoing detail: never on a received error
    const schema = DETAIL_REGISTRY.getMessage(raw.type);
    if (schema === undefined) continue;
    try {
      details.push(fromBinary(schema, raw.value));
    } catch {
      // An undecodable detail is dropped; the code and message survive.
    }
  }
  const retryAfter = Number.parseFloat(error.metadata.get("retry-after") ?? "");
  // A failed TLS handshake (untrusted or mismatched certificate, missing client
  // certificate) is a configuration problem: not retried, and named as such.
  const tls = !fromServer && tlsFailure(error);
  return errorForCode(code, error.rawMessage, {
    ...(tls ? { reason: "TLS_HANDSHAKE" } : {}),
    details,
    cause: reason,
    ...(Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfterMs: retryAfter * 1000 } : {}),
  });
}

/** Converts a `google.rpc.Status` (e.g. `Job.error`) into a ClientError. */
export function errorFromStatus(status: Status): ClientError {
  const code = status.code in Code ? (status.code as Code) : Code.Unknown;
  const details: Message[] = [];
  for (const any of status.details) {
    try {
      const message = anyUnpack(any, DETAIL_REGISTRY);
      if (message !== undefined) details.push(message);
    } catch {
      // ignore undecodable details
    }
  }
  return errorForCode(code, status.message, { details });
}

/** Decodes a serialized `google.rpc.Status` (the `grpc-status-details-bin` bytes). */
export function errorFromStatusBytes(bytes: Uint8Array): ClientError {
  return errorFromStatus(fromBinary(StatusSchema, bytes));
}

/** The gRPC name of a code: Code.NotFound -> "NOT_FOUND". */
export function codeName(code: Code): string {
  const name = Code[code] as string | undefined;
  if (name === undefined) return `CODE_${code}`;
  if (name === "Canceled") return "CANCELLED";
  return name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

function connectionLost(error: ConnectError): boolean {
  if (error.code === Code.Unavailable) return true;
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const nodeCode = (e as { code?: unknown }).code;
    if (typeof nodeCode === "string" && CONNECTION_LOST.has(nodeCode)) return true;
  }
  // A stream the peer reset (RST_STREAM: a server that went away mid-call), or one that
  // ended without trailers. A call the caller aborted says "operation was aborted".
  if (/^http\/2 stream closed with error code/i.test(error.rawMessage)) return true;
  return (
    (error.code === Code.Internal || error.code === Code.Unknown || error.code === Code.Aborted) &&
    /missing trailer|premature close|session closed|socket hang up|protocol error/i.test(error.rawMessage)
  );
}

const TLS_ERROR = /^(ERR_SSL_|ERR_TLS_|ERR_OSSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED|SELF_SIGNED_CERT|HOSTNAME_MISMATCH)/;

function tlsFailure(error: ConnectError): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const nodeCode = (e as { code?: unknown }).code;
    if (typeof nodeCode === "string" && TLS_ERROR.test(nodeCode)) return true;
  }
  return false;
}

function isErrorInfo(d: Message): d is ErrorInfo {
  return d.$typeName === ErrorInfoSchema.typeName;
}

function isBadRequest(d: Message): d is BadRequest {
  return d.$typeName === BadRequestSchema.typeName;
}

function isRetryInfo(d: Message): d is RetryInfo {
  return d.$typeName === RetryInfoSchema.typeName;
}

function toViolation(v: BadRequest_FieldViolation): FieldViolation {
  return { field: v.field, description: v.description };
}

function describe(code: Code, message: string, reason: string, violations: readonly FieldViolation[]): string {
  let text = `${codeName(code)}: ${message}`;
  if (reason) text += ` [${reason}]`;
  if (violations.length > 0) {
    text += `; ${violations.map((v) => `${v.field}: ${v.description}`).join("; ")}`;
  }
  return text;
}
