/**
 * A watch survives server restarts: a graceful one (SIGTERM: the server drains and ends
 * streams with UNAVAILABLE) and a crash (SIGKILL: the connection just breaks; the job is
 * resumed once its lease expires). Both times the server comes back on the same port
 * with the same data dir, and the client resumes from its last seq: every log event
 * arrives exactly once, in order, and the jobs succeed.
 */

import { readFile } from "node:fs/promises";
import { join } from "node:path";

import { afterAll, beforeAll, expect, it } from "vitest";

import { Code, JobState, PluginClient, stateName, type ClientError, type JobEvent } from "../src/index.js";
import { EXAMPLES } from "../../test/support/paths.js";
import { ServerProcess } from "../../test/support/server.js";

let server: ServerProcess;
let client: PluginClient;
const retries: ClientError[] = [];

beforeAll(async () => {
  server = await ServerProcess.start();
  client = new PluginClient({
    target: server.target,
    retry: { initialMs: 100, maxMs: 1_000, timeoutMs: 60_000 },
    onRetry: (error) => retries.push(error),
  });
});

afterAll(async () => {
  await client?.close();
  await server?.dispose();
});

class Followed {
  readonly events: JobEvent[] = [];
  done = false;
  readonly finished: Promise<void>;

  constructor(jobId: string) {
    this.finished = (async () => {
      for await (const event of client.watch(jobId)) this.events.push(event);
      this.done = true;
    })();
  }
}

const follow = (jobId: string): Followed => new Followed(jobId);

async function until(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${await server.logs(4000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const lastSeq = (f: Followed): bigint => f.events.reduce((max, e) => (e.seq > max ? e.seq : max), 0n);

it("resumes watches across a SIGTERM restart and a SIGKILL restart, without gaps or duplicates", async () => {
  const spec = JSON.parse(await readFile(join(EXAMPLES, "time.json"), "utf8")) as Record<string, unknown>;
  const jobs = [await client.createFromSpec(spec)];
  const watches = jobs.map((j) => follow(j.id));

  // 1. Graceful restart once the job is building.
  await until(() => lastSeq(watches[0]!) >= 5n, "the job to start building");
  const beforeTerm = watches.map(lastSeq);
  await server.restart("SIGTERM");
  const drained = retries.filter((e) => e.code === Code.Unavailable).length;
  expect(drained).toBeGreaterThan(0);

  // 2. A crash once the watch has seen a new event from the new server.
  await until(
    () => watches.every((w, i) => w.done || lastSeq(w) > beforeTerm[i]!),
    "events after the SIGTERM restart",
  );
  const openAtKill = watches.filter((w) => !w.done).length;
  await server.restart("SIGKILL");

  await Promise.all(watches.map((w) => w.finished));
  expect(openAtKill).toBeGreaterThan(0);
  expect(retries.length).toBeGreaterThan(drained);

  for (const [i, w] of watches.entries()) {
    const job = await client.get(jobs[i]!.id);
    expect(stateName(job.state), `job ${job.id}`).toBe(stateName(JobState.SUCCEEDED));
    // Every log event exactly once, in order, 1..lastEventSeq; a snapshot opens each stream.
    const log = w.events.filter((e) => e.seq > 0n).map((e) => e.seq);
    expect(log).toEqual(Array.from({ length: Number(job.lastEventSeq) }, (_, k) => BigInt(k + 1)));
    expect(w.events[0]?.detail.case).toBe("snapshot");
    expect(w.events.filter((e) => e.detail.case === "snapshot").length).toBeGreaterThanOrEqual(2);
    expect(w.events.at(-1)?.job?.state).toBe(JobState.SUCCEEDED);
  }
  // The download after all that still verifies.
  const artifact = await client.download(jobs[0]!.id);
  expect(artifact.sha256).toBe((await client.get(jobs[0]!.id)).artifact?.sha256);
}, 180_000);
