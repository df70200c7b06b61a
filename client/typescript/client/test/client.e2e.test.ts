/**
 * The client against the real Python server (offline template generator): the time spec
 * end to end, the same terminal job and archive as the Python client, errors with their
 * details, listing with pagination, cancel and delete.
 */

import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { toJson } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

import {
  FailedPreconditionError,
  InvalidArgumentError,
  JobState,
  NotFoundError,
  PluginClient,
  SpecError,
  isTerminal,
  readTarGz,
  sha256Hex,
  type Job,
  type JobEvent,
} from "../src/index.js";
import { JobSchema } from "../src/gen/auton8n/v1/plugin_service_pb.js";
import { EXAMPLES } from "../../test/support/paths.js";
import { pythonCli } from "../../test/support/python.js";

const target = inject("serverTarget");
let client: PluginClient;
let timeSpec: Record<string, unknown>;
let scratch: string;

beforeAll(async () => {
  client = new PluginClient({ target });
  timeSpec = JSON.parse(await readFile(join(EXAMPLES, "time.json"), "utf8")) as Record<string, unknown>;
  scratch = await mkdtemp(join(tmpdir(), "auton8n-ts-client-"));
});

afterAll(async () => {
  await client.close();
  await rm(scratch, { recursive: true, force: true });
});

/** Checks the WatchJob contract on a complete stream and returns its log events. */
function checkStream(events: JobEvent[], afterSeq = 0n): JobEvent[] {
  expect(events[0]?.detail.case).toBe("snapshot");
  expect(events[0]?.seq).toBe(0n);
  const log = events.filter((e) => e.seq > 0n);
  expect(log.map((e) => e.seq)).toEqual(log.map((_, i) => afterSeq + BigInt(i) + 1n)); // gap-free, no duplicate
  for (const e of events.filter((e) => e.seq === 0n)) expect(["snapshot", "heartbeat"]).toContain(e.detail.case);
  const last = events.at(-1);
  expect(last?.detail.case).toBe("stateChanged");
  expect(last?.job && isTerminal(last.job.state)).toBe(true);
  return log;
}

describe("the time spec, end to end", () => {
  let job: Job;
  let final: Job;

  it("is created QUEUED and followed with WatchJob to SUCCEEDED", async () => {
    job = await client.createFromSpec(timeSpec);
    expect(job.id).toMatch(/^[0-9a-f]{32}$/);
    expect(job.state).toBe(JobState.QUEUED);
    expect(job.spec?.name).toBe("@elizaos/plugin-time");
    // google.protobuf.Struct fields are plain JSON objects in protobuf-es.
    expect(job.spec?.providers[0]?.dataStructure).toEqual({ currentTime: "string", timezone: "string", utcOffset: "number" });

    const events: JobEvent[] = [];
    for await (const event of client.watch(job.id)) events.push(event);
    const log = checkStream(events);
    final = await client.get(job.id);
    expect(final.state).toBe(JobState.SUCCEEDED);
    expect(events.at(-1)?.job?.state).toBe(JobState.SUCCEEDED);
    expect(final.lastEventSeq).toBe(log.at(-1)?.seq);
    expect(final.artifact?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(final.testResults?.failed).toBe(0);
    expect(final.testResults?.passed).toBeGreaterThan(0);
    // A phase change for each step of the pipeline, in order.
    const phases = log.flatMap((e) => (e.detail.case === "phaseChanged" ? [e.detail.value.phase] : []));
    expect(phases.length).toBeGreaterThanOrEqual(5);
  });

  it("downloads an archive whose sha256 (node:crypto) matches the job's artifact", async () => {
    const artifact = await client.download(job.id);
    expect(artifact.sha256).toBe(final.artifact?.sha256);
    expect(sha256Hex(artifact.data)).toBe(final.artifact?.sha256);
    expect(BigInt(artifact.data.length)).toBe(final.artifact?.sizeBytes);
    const entries = readTarGz(artifact.data);
    const pkg = entries.find((e) => e.path.endsWith("/package.json") && e.path.split("/").length === 2);
    expect(JSON.parse(pkg?.data.toString("utf8") ?? "{}")).toMatchObject({ name: "@elizaos/plugin-time" });
    expect(entries.map((e) => e.path)).toEqual(
      expect.arrayContaining([expect.stringMatching(/src\/actions\/getCurrentTime\.ts$/), expect.stringMatching(/src\/providers\/timeProvider\.ts$/)]),
    );
  });

  it("unpacks safely into a folder", async () => {
    const folder = await client.downloadTo(job.id, join(scratch, "out"));
    expect((await stat(join(folder, "src/index.ts"))).isFile()).toBe(true);
    await expect(client.downloadTo(job.id, join(scratch, "out"))).rejects.toMatchObject({ code: "EEXIST" });
  });

  it("is the same terminal job the Python client sees, with the same archive sha256", async () => {
    const [pyJob] = await pythonCli(target, "get", job.id);
    expect(pyJob).toEqual(toJson(JobSchema, final));
    const pyWatch = await pythonCli(target, "watch", job.id);
    const pyLast = pyWatch.at(-1) as { job?: unknown; seq?: string };
    expect(pyLast.job).toEqual(toJson(JobSchema, final));
    expect(pyLast.seq).toBe(String(final.lastEventSeq));
    const [pyDownload] = (await pythonCli(target, "download", job.id, "-o", join(scratch, "py"))) as { sha256?: string }[];
    expect(pyDownload?.sha256).toBe(final.artifact?.sha256);
  });

  it("replays from after_seq without duplicates", async () => {
    const events: JobEvent[] = [];
    for await (const event of client.watch(job.id, { afterSeq: 5 })) events.push(event);
    const log = checkStream(events, 5n);
    expect(log[0]?.seq).toBe(6n);
    expect(log.at(-1)?.seq).toBe(final.lastEventSeq);
    // wait(): the terminal job, seeing every event on the way.
    let seen = 0;
    const waited = await client.wait(job.id, { onEvent: () => seen++ });
    expect(waited.state).toBe(JobState.SUCCEEDED);
    expect(seen).toBeGreaterThan(Number(final.lastEventSeq));
  });

  it("refuses to cancel a finished job: FAILED_PRECONDITION with reason JOB_FINISHED", async () => {
    const error = await client.cancel(job.id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FailedPreconditionError);
    expect((error as FailedPreconditionError).reason).toBe("JOB_FINISHED");
  });
});

describe("errors", () => {
  it("NOT_FOUND carries ErrorInfo reason JOB_NOT_FOUND", async () => {
    const error = await client.get("0".repeat(32)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFoundError);
    expect((error as NotFoundError).reason).toBe("JOB_NOT_FOUND");
    expect((error as NotFoundError).rawMessage).toContain("0".repeat(32));
  });

  it("an invalid spec is INVALID_ARGUMENT with BadRequest field violations", async () => {
    const error = await client
      .createFromSpec({ name: "Not A Package", description: "", actions: [{ name: "1bad", description: "x" }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    const e = error as InvalidArgumentError;
    expect(e.reason).not.toBe("");
    const fields = e.fieldViolations.map((v) => v.field);
    expect(fields).toEqual(expect.arrayContaining(["spec.name", "spec.description", "spec.actions[0].name"]));
    for (const v of e.fieldViolations) expect(v.description).not.toBe("");
  });

  it("a malformed spec is refused before it is sent", async () => {
    await expect(client.createFromSpec({ name: "@x/plugin-y", bogus: 1 })).rejects.toBeInstanceOf(SpecError);
    await expect(client.createFromSpec("{not json")).rejects.toBeInstanceOf(SpecError);
    await expect(client.createFromSpec({ name: "@x/plugin-y", actions: "none" })).rejects.toBeInstanceOf(SpecError);
  });
});

describe("list, cancel, delete", () => {
  it("cancels a job, lists with pagination and state filter, deletes it", async () => {
    const a = await client.createFromDescription("A plugin that can convert temperatures and tells the weather.");
    const b = await client.createFromDescription("A plugin that can translate text and summarize articles.");
    const cancelled = await client.cancel(b.id);
    expect(cancelled.state).toBe(JobState.CANCELLED);
    const cancelledA = await client.cancel(a.id);
    expect(cancelledA.state).toBe(JobState.CANCELLED);
    expect((await client.cancel(b.id).catch((e: unknown) => e)) as FailedPreconditionError).toBeInstanceOf(FailedPreconditionError);

    // Pagination: one job per page, newest first, every job exactly once.
    const first = await client.list({ pageSize: 1 });
    expect(first.jobs).toHaveLength(1);
    expect(first.nextPageToken).not.toBe("");
    const all: Job[] = [];
    for await (const j of client.listAll({ pageSize: 1 })) all.push(j);
    const ids = all.map((j) => j.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(expect.arrayContaining([a.id, b.id]));
    expect(ids.indexOf(b.id)).toBeLessThan(ids.indexOf(a.id)); // newest first
    const times = all.map((j) => j.createTime?.seconds ?? 0n);
    expect([...times].sort((x, y) => (x > y ? -1 : x < y ? 1 : 0))).toEqual(times);

    const onlyCancelled: Job[] = [];
    for await (const j of client.listAll({ state: JobState.CANCELLED })) onlyCancelled.push(j);
    expect(onlyCancelled.every((j) => j.state === JobState.CANCELLED)).toBe(true);
    expect(onlyCancelled.map((j) => j.id)).toEqual(expect.arrayContaining([a.id, b.id]));

    await client.delete(b.id);
    await expect(client.get(b.id)).rejects.toBeInstanceOf(NotFoundError);
    await client.delete(a.id);
  });
});
