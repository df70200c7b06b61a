/** Pure pieces: retry delays and budgets, status decoding, spec parsing, names. */

import { create } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";

import {
  Backoff,
  Code,
  DEFAULT_RETRY,
  FailedPreconditionError,
  JobState,
  Phase,
  SpecError,
  codeName,
  errorFromStatus,
  parseState,
  phaseName,
  retryDelays,
  specFromJson,
  stateName,
} from "../src/index.js";
import { ErrorInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../src/gen/google/rpc/status_pb.js";

describe("retry", () => {
  it("grows exponentially, capped, jittered between half and all of the nominal delay", () => {
    const policy = { ...DEFAULT_RETRY, initialMs: 100, maxMs: 1000, multiplier: 2 };
    const take = (rand: () => number, n: number): number[] => {
      const it = retryDelays(policy, rand);
      return Array.from({ length: n }, () => it.next().value);
    };
    expect(take(() => 1, 6)).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(take(() => 0, 3)).toEqual([50, 100, 200]);
  });

  it("budgets an outage: the connect budget until the server was reached", () => {
    const policy = { ...DEFAULT_RETRY, timeoutMs: 60_000, connectTimeoutMs: 0 };
    expect(new Backoff(policy, false).nextDelay()).toBeUndefined();
    expect(new Backoff(policy, true).nextDelay()).toBeGreaterThan(0);
  });
});

describe("errors", () => {
  it("names codes as gRPC does", () => {
    expect(codeName(Code.NotFound)).toBe("NOT_FOUND");
    expect(codeName(Code.Canceled)).toBe("CANCELLED");
    expect(codeName(Code.FailedPrecondition)).toBe("FAILED_PRECONDITION");
  });

  it("decodes a google.rpc.Status such as Job.error", () => {
    const status = create(StatusSchema, {
      code: Code.FailedPrecondition,
      message: "iteration budget spent",
      details: [anyPack(ErrorInfoSchema, create(ErrorInfoSchema, { reason: "ITERATIONS_EXHAUSTED", domain: "auton8n.dev" }))],
    });
    const error = errorFromStatus(status);
    expect(error).toBeInstanceOf(FailedPreconditionError);
    expect(error.reason).toBe("ITERATIONS_EXHAUSTED");
    expect(error.message).toBe("FAILED_PRECONDITION: iteration budget spent [ITERATIONS_EXHAUSTED]");
  });
});

describe("specFromJson", () => {
  it("reads the reference format (and proto field names)", () => {
    const spec = specFromJson({
      name: "@x/plugin-y",
      description: "d",
      providers: [{ name: "p", description: "d", data_structure: { a: "string", nested: { b: "number" } } }],
      environmentVariables: [{ name: "API_KEY", required: true, sensitive: true }],
    });
    expect(spec.providers[0]?.dataStructure).toEqual({ a: "string", nested: { b: "number" } });
    expect(spec.environmentVariables[0]).toMatchObject({ name: "API_KEY", required: true, sensitive: true });
    expect(specFromJson('{"name": "@x/plugin-y"}').name).toBe("@x/plugin-y");
  });

  it.each([[null], [[1, 2]], ["[1]"], [42], [{ name: 5 }], [{ name: "@x/y", extra: true }]])("rejects %j", (value) => {
    expect(() => specFromJson(value)).toThrow(SpecError);
  });
});

describe("names", () => {
  it("names states and phases for people", () => {
    expect(stateName(JobState.SUCCEEDED)).toBe("succeeded");
    expect(phaseName(Phase.TESTING)).toBe("testing");
    expect(phaseName(Phase.UNSPECIFIED)).toBe("");
    expect(parseState("running")).toBe(JobState.RUNNING);
    expect(parseState("JOB_STATE_CANCELLED")).toBe(JobState.CANCELLED);
    expect(parseState("nope")).toBeUndefined();
  });
});
