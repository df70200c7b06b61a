/**
 * The client against a scripted gRPC server: bearer token, error details, retries with
 * a stable request id, watch resume without gaps or duplicates, gap detection.
 */

import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import {
  AuthError,
  Code,
  EventGapError,
  FailedPreconditionError,
  InvalidArgumentError,
  JobState,
  PluginClient,
  RateLimitedError,
  UnavailableError,
  type ClientError,
} from "../src/index.js";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import {
  CreatePluginRequestSchema,
  GetJobRequestSchema,
  JobEventSchema,
  JobSchema,
  WatchJobRequestSchema,
} from "../src/gen/auton8n/v1/plugin_service_pb.js";
import { FakeGrpcServer, type FakeCall } from "../../test/support/fake-grpc.js";

vi.setConfig({ testTimeout: 15_000 });

const FAST_RETRY = { initialMs: 10, maxMs: 40, timeoutMs: 5_000, connectTimeoutMs: 5_000 };

let fake: FakeGrpcServer;
let client: PluginClient;
let retries: { error: ClientError; delayMs: number }[];

beforeEach(async () => {
  fake = await FakeGrpcServer.start();
  retries = [];
  client = new PluginClient({
    target: fake.target,
    token: "s3cret-token",
    retry: FAST_RETRY,
    onRetry: (error, delayMs) => retries.push({ error, delayMs }),
  });
});

afterEach(async () => {
  await client.close();
  await fake.close();
});

const unavailable = (call: FakeCall): void => call.finish(Code.Unavailable, "server is draining", [
  { schema: ErrorInfoSchema, value: { reason: "DRAINING", domain: "auton8n.dev" } },
]);

function event(seq: number, detail: "snapshot" | "heartbeat" | "log" | "end", state = JobState.RUNNING): MessageInitShape<typeof JobEventSchema> {
  const job = { id: "j1", state, lastEventSeq: BigInt(seq) };
  switch (detail) {
    case "snapshot":
      return { seq: 0n, job, detail: { case: "snapshot", value: {} } };
    case "heartbeat":
      return { seq: 0n, job, detail: { case: "heartbeat", value: {} } };
    case "log":
      return { seq: BigInt(seq), job, detail: { case: "log", value: { message: `line ${seq}` } } };
    case "end":
      return {
        seq: BigInt(seq),
        job: { ...job, state: JobState.SUCCEEDED },
        detail: { case: "stateChanged", value: { fromState: JobState.RUNNING, toState: JobState.SUCCEEDED } },
      };
  }
}

describe("calls", () => {
  it("sends the bearer token on every call", async () => {
    fake.on("GetJob", (call) => {
      call.send(JobSchema, { id: call.decode(GetJobRequestSchema).jobId, state: JobState.QUEUED });
      call.finish();
    });
    const job = await client.get("j1");
    expect(job.state).toBe(JobState.QUEUED);
    expect(fake.calls[0]?.headers["authorization"]).toBe("Bearer s3cret-token");
    expect(fake.calls[0]?.headers["content-type"]).toBe("application/grpc+proto");
  });

  it("decodes google.rpc.Status details: code, message, ErrorInfo reason, field violations, retry info", async () => {
    fake.on("CreatePlugin", (call) =>
      call.finish(Code.InvalidArgument, "the request is invalid", [
        { schema: ErrorInfoSchema, value: { reason: "INVALID_SPEC", domain: "auton8n.dev", metadata: { field_count: "2" } } },
        {
          schema: BadRequestSchema,
          value: {
            fieldViolations: [
              { field: "spec.name", description: "is not a scoped npm package name" },
              { field: "spec.actions[0].name", description: "is not an identifier" },
            ],
          },
        },
        { schema: RetryInfoSchema, value: { retryDelay: { seconds: 2n, nanos: 500_000_000 } } },
      ]),
    );
    const error = await client.createFromSpec({ name: "bad", description: "x" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    const e = error as InvalidArgumentError;
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.codeName).toBe("INVALID_ARGUMENT");
    expect(e.rawMessage).toBe("the request is invalid");
    expect(e.reason).toBe("INVALID_SPEC");
    expect(e.domain).toBe("auton8n.dev");
    expect(e.metadata).toEqual({ field_count: "2" });
    expect(e.fieldViolations).toEqual([
      { field: "spec.name", description: "is not a scoped npm package name" },
      { field: "spec.actions[0].name", description: "is not an identifier" },
    ]);
    expect(e.retryAfterMs).toBe(2500);
    expect(e.message).toContain("spec.name: is not a scoped npm package name");
    expect(e.detail(ErrorInfoSchema)?.domain).toBe("auton8n.dev");
    expect(retries).toHaveLength(0); // INVALID_ARGUMENT is never retried
  });

  it("maps UNAUTHENTICATED to AuthError without details", async () => {
    fake.on("ListJobs", (call) => call.finish(Code.Unauthenticated, "missing bearer token"));
    const error = await client.list().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).reason).toBe("");
    expect((error as AuthError).rawMessage).toBe("missing bearer token");
  });

  it("maps RESOURCE_EXHAUSTED to RateLimitedError with the retry-after trailer, not retried", async () => {
    fake.on("CreatePlugin", (call) =>
      call.finish(Code.ResourceExhausted, "too many jobs", [{ schema: ErrorInfoSchema, value: { reason: "RATE_LIMITED" } }], { "retry-after": "7" }),
    );
    const error = await client.createFromDescription("a plugin that tells the time").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).reason).toBe("RATE_LIMITED");
    expect((error as RateLimitedError).retryAfterMs).toBe(7000);
    expect(fake.callsOf("CreatePlugin")).toHaveLength(1);
  });

  it("retries create on UNAVAILABLE with jittered backoff and the same request id", async () => {
    fake.on("CreatePlugin", unavailable, unavailable, (call) => {
      call.send(JobSchema, { id: "j1", state: JobState.QUEUED, requestId: call.decode(CreatePluginRequestSchema).requestId });
      call.finish();
    });
    const job = await client.createFromDescription("a plugin that tells the time");
    expect(job.id).toBe("j1");
    const ids = fake.callsOf("CreatePlugin").map((c) => fromCall(c.body).requestId);
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(retries.map((r) => r.error.reason)).toEqual(["DRAINING", "DRAINING"]);
    // Jittered: between half and all of the nominal 10 ms, then 20 ms.
    expect(retries[0]?.delayMs).toBeGreaterThanOrEqual(5);
    expect(retries[0]?.delayMs).toBeLessThanOrEqual(10);
    expect(retries[1]?.delayMs).toBeGreaterThanOrEqual(10);
    expect(retries[1]?.delayMs).toBeLessThanOrEqual(20);
  });

  it("does not retry cancel (a lost reply would turn a repeat into an error)", async () => {
    fake.on("CancelJob", unavailable);
    await expect(client.cancel("j1")).rejects.toBeInstanceOf(UnavailableError);
    expect(fake.callsOf("CancelJob")).toHaveLength(1);
    fake.on("DeleteJob", (call) => call.finish(Code.FailedPrecondition, "job is still running", [
      { schema: ErrorInfoSchema, value: { reason: "JOB_ACTIVE" } },
    ]));
    const error = await client.delete("j1").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FailedPreconditionError);
    expect((error as FailedPreconditionError).reason).toBe("JOB_ACTIVE");
  });

  it("gives up on an unreachable server within the connect budget", async () => {
    const port = fake.target.split(":")[1];
    await fake.close();
    const lonely = new PluginClient({ target: `127.0.0.1:${port}`, retry: { ...FAST_RETRY, connectTimeoutMs: 300 } });
    const started = performance.now();
    const error = await lonely.get("j1").catch((e: unknown) => e);
    await lonely.close();
    expect(error).toBeInstanceOf(UnavailableError);
    expect(performance.now() - started).toBeLessThan(3_000);
  });
});

describe("watch", () => {
  it("resumes from the last seq after UNAVAILABLE: no gap, no duplicate", async () => {
    fake.on(
      "WatchJob",
      (call) => {
        call.send(JobEventSchema, event(0, "snapshot"));
        call.send(JobEventSchema, event(1, "log"));
        call.send(JobEventSchema, event(2, "log"));
        unavailable(call);
      },
      (call) => {
        call.send(JobEventSchema, event(0, "snapshot"));
        call.send(JobEventSchema, event(2, "log")); // a replayed duplicate: skipped
        call.send(JobEventSchema, event(0, "heartbeat"));
        call.send(JobEventSchema, event(3, "log"));
        setTimeout(() => call.crash(), 100); // the connection dies, as with a killed server
      },
      (call) => {
        // Like the server: a snapshot, then the stored events after after_seq.
        const after = Number(call.decode(WatchJobRequestSchema).afterSeq);
        call.send(JobEventSchema, event(0, "snapshot"));
        for (let seq = after + 1; seq < 4; seq++) call.send(JobEventSchema, event(seq, "log"));
        call.send(JobEventSchema, event(4, "end", JobState.SUCCEEDED));
        call.finish();
      },
    );
    const seen: string[] = [];
    for await (const e of client.watch("j1")) seen.push(`${e.seq}:${e.detail.case}`);
    expect(seen).toEqual([
      "0:snapshot", "1:log", "2:log",
      "0:snapshot", "0:heartbeat", "3:log",
      "0:snapshot", "4:stateChanged",
    ]);
    const afterSeqs = fake.callsOf("WatchJob").map((c) => fromBinaryWatch(c.body));
    expect(afterSeqs).toEqual([0n, 2n, 3n]);
    expect(retries.map((r) => r.error.code)).toEqual([Code.Unavailable, Code.Unavailable]);
  });

  it("starts after the given seq", async () => {
    fake.on("WatchJob", (call) => {
      call.send(JobEventSchema, event(0, "snapshot"));
      call.send(JobEventSchema, event(6, "end"));
      call.finish();
    });
    const seqs: bigint[] = [];
    for await (const e of client.watch("j1", { afterSeq: 5 })) seqs.push(e.seq);
    expect(seqs).toEqual([0n, 6n]);
    expect(fromBinaryWatch(fake.calls[0]!.body)).toBe(5n);
  });

  it("throws EventGapError when a seq is skipped", async () => {
    fake.on("WatchJob", (call) => {
      call.send(JobEventSchema, event(0, "snapshot"));
      call.send(JobEventSchema, event(1, "log"));
      call.send(JobEventSchema, event(3, "log"));
      call.finish();
    });
    const seqs: bigint[] = [];
    const error = await (async () => {
      for await (const e of client.watch("j1")) seqs.push(e.seq);
    })().catch((e: unknown) => e);
    expect(seqs).toEqual([0n, 1n]);
    expect(error).toBeInstanceOf(EventGapError);
    expect((error as EventGapError).last).toBe(1n);
    expect((error as EventGapError).got).toBe(3n);
    expect((error as EventGapError).reason).toBe("EVENT_GAP");
  });

  it("does not retry a non-transient failure", async () => {
    fake.on("WatchJob", (call) => call.finish(Code.NotFound, "job 'j9' not found", [{ schema: ErrorInfoSchema, value: { reason: "JOB_NOT_FOUND" } }]));
    const error = await (async () => {
      for await (const _ of client.watch("j9")) void _;
    })().catch((e: unknown) => e);
    expect((error as ClientError).reason).toBe("JOB_NOT_FOUND");
    expect(fake.callsOf("WatchJob")).toHaveLength(1);
  });

  it("stops the stream when the consumer breaks out", async () => {
    let closed!: () => void;
    const streamClosed = new Promise<void>((resolve) => (closed = resolve));
    fake.on("WatchJob", (call) => {
      call.stream.on("close", () => closed());
      call.send(JobEventSchema, event(0, "snapshot"));
      call.send(JobEventSchema, event(1, "log"));
      // ... and never ends by itself
    });
    for await (const e of client.watch("j1")) if (e.seq === 1n) break;
    await streamClosed;
  });
});

function fromCall(body: Uint8Array) {
  return fromBinary(CreatePluginRequestSchema, body);
}

function fromBinaryWatch(body: Uint8Array): bigint {
  return fromBinary(WatchJobRequestSchema, body).afterSeq;
}
