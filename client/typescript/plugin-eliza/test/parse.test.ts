/** Reading requests out of messages, and what the user reads. */

import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";

import { JobState, Phase } from "@auton8n/client";
import { JobEventSchema, JobSchema } from "../../client/src/gen/auton8n/v1/plugin_service_pb.js";
import {
  asksForPlugin,
  errorMessage,
  extractDescription,
  extractJobId,
  extractSpec,
  jobReport,
  progressMessage,
  statusLine,
} from "../src/index.js";

const ID = "3f2a9c1b8d7e4f60a1b2c3d4e5f60718";

describe("extractSpec", () => {
  it("finds a spec in content.spec, a fenced block, or inline JSON", () => {
    expect(extractSpec({ spec: { name: "@a/plugin-b" } })).toEqual({ name: "@a/plugin-b" });
    expect(extractSpec({ spec: '{"name": "@a/plugin-b"}' })).toEqual({ name: "@a/plugin-b" });
    expect(extractSpec({ text: 'Build this:\n```json\n{"name": "@a/plugin-b", "actions": []}\n```\nthanks' })).toEqual({
      name: "@a/plugin-b",
      actions: [],
    });
    expect(extractSpec({ text: 'please make {"name": "@a/plugin-b", "description": "has } and { inside"} now' })).toEqual({
      name: "@a/plugin-b",
      description: "has } and { inside",
    });
  });

  it("ignores text without a spec", () => {
    expect(extractSpec({ text: "make me a weather plugin" })).toBeUndefined();
    expect(extractSpec({ text: '{"foo": 1}' })).toBeUndefined();
    expect(extractSpec({ text: "{not json}" })).toBeUndefined();
  });
});

describe("extractJobId", () => {
  it("finds a full id, content.jobId, or a unique short id among the caller's jobs", () => {
    expect(extractJobId({ text: `status of ${ID.toUpperCase()}?` })).toBe(ID);
    expect(extractJobId({ text: "status", jobId: ID })).toBe(ID);
    expect(extractJobId({ text: "cancel job 3f2a9c1b" }, [ID, "ffff0000aaaabbbbccccddddeeeeffff"])).toBe(ID);
    expect(extractJobId({ text: "cancel job 3f2a9c1b" }, [])).toBeUndefined();
    expect(extractJobId({ text: "cancel job 3f2a" }, [ID])).toBeUndefined(); // too short to trust
    expect(extractJobId({ text: "cancel my job" }, [ID])).toBeUndefined();
  });

  it("does not guess between two jobs with the same prefix", () => {
    expect(extractJobId({ text: "job 3f2a9c" }, [ID, "3f2a9c00000000000000000000000000"])).toBeUndefined();
  });
});

describe("descriptions", () => {
  it("reduces the request to what the plugin does", () => {
    expect(extractDescription({ text: "Please create a plugin that can get the weather." })).toBe("A plugin that can get the weather.");
    expect(extractDescription({ text: "Could you build me an ElizaOS plugin to track packages" })).toBe("A plugin that track packages");
    expect(extractDescription({ text: "A plugin that tells jokes" })).toBe("A plugin that tells jokes");
    expect(extractDescription({ text: "x", description: "Fetch prices." })).toBe("Fetch prices.");
  });

  it("recognises requests for a plugin", () => {
    expect(asksForPlugin("Can you create a plugin that tracks my packages?")).toBe(true);
    expect(asksForPlugin("I need a plugin that summarizes articles")).toBe(true);
    expect(asksForPlugin("what plugins do you have?")).toBe(false);
    expect(asksForPlugin("hello")).toBe(false);
  });
});

describe("messages", () => {
  const base = {
    id: ID,
    spec: { name: "@elizaos/plugin-time" },
    state: JobState.RUNNING,
    phase: Phase.BUILDING,
    iteration: 1,
    maxIterations: 5,
    progressPercent: 40,
  };
  const job = create(JobSchema, base);

  it("summarises a job on one line", () => {
    expect(statusLine(job)).toBe("@elizaos/plugin-time (job 3f2a9c1b): running — building, iteration 1/5, 40%");
    expect(statusLine(create(JobSchema, { id: ID, state: JobState.QUEUED, queuePosition: 2 }))).toBe("job 3f2a9c1b: queued — 2 job(s) ahead");
  });

  it("reports success with the artifact and failure with the reasons", () => {
    const done = create(JobSchema, {
      ...base,
      state: JobState.SUCCEEDED,
      artifact: { filename: "plugin-time-1.0.0.tgz", sizeBytes: 9877n, sha256: "ab".repeat(32) },
      testResults: { total: 4, passed: 4 },
      validationScore: 100,
    });
    expect(jobReport(done)).toContain("Your plugin is ready: plugin-time-1.0.0.tgz (9.6 KiB), sha256 " + "ab".repeat(32));
    expect(jobReport(done)).toContain("Tests: 4/4 passed.");
    const failed = create(JobSchema, {
      ...base,
      state: JobState.FAILED,
      error: { code: 9, message: "gave up after 5 iterations" },
      errors: [{ file: "src/index.ts", line: 3, code: "TS2322", message: "Type 'string' is not assignable" }],
    });
    expect(jobReport(failed)).toContain("Why: gave up after 5 iterations");
    expect(jobReport(failed)).toContain("- src/index.ts:3: TS2322 Type 'string' is not assignable");
  });

  it("turns events into progress lines", () => {
    const phase = create(JobEventSchema, { seq: 5n, job, detail: { case: "phaseChanged", value: { phase: Phase.TESTING, iteration: 1 } } });
    expect(progressMessage(phase)).toBe("@elizaos/plugin-time (job 3f2a9c1b): testing (iteration 1/5)…");
    const log = create(JobEventSchema, { seq: 6n, job, detail: { case: "log", value: { message: "x" } } });
    expect(progressMessage(log)).toBeUndefined();
    const failedIteration = create(JobEventSchema, {
      seq: 7n,
      job,
      detail: { case: "iterationFinished", value: { iteration: 1, passed: false, errors: [{ message: "boom", file: "a.ts", line: 2 }] } },
    });
    expect(progressMessage(failedIteration)).toBe("@elizaos/plugin-time (job 3f2a9c1b): iteration 1 found 1 problem(s) — a.ts:2: boom; repairing.");
  });

  it("explains errors plainly", () => {
    expect(errorMessage(new Error("boom"))).toBe("Something went wrong: boom");
  });
});
