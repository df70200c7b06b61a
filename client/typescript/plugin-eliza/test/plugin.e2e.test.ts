/**
 * Every action, the provider and the service of @auton8n/plugin-eliza against the real
 * server: replies through the callback, ActionResults, progress pushed from WatchJob,
 * the caller's own jobs only, cancelling exactly the named job.
 */

import { readFile } from "node:fs/promises";
import { join } from "node:path";

import type { ActionResult, Content, IAgentRuntime, Memory, State, UUID } from "@elizaos/core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

import { JobState, PluginClient, isTerminal } from "@auton8n/client";
import {
  Auton8nService,
  SERVICE_TYPE,
  activeJobsProvider,
  auton8nPlugin,
  cancelPluginCreationAction,
  checkPluginStatusAction,
  createPluginAction,
  createPluginFromDescriptionAction,
} from "../src/index.js";
import { Conversation, newId, startRuntime, userMessage, type TestRuntime } from "../../test/support/runtime.js";
import { EXAMPLES } from "../../test/support/paths.js";

const target = inject("serverTarget");
const EMPTY_STATE: State = { values: {}, data: {}, text: "" };
const cache = new Map<string, unknown>();
let agent: TestRuntime;
let runtime: IAgentRuntime;
let service: Auton8nService;
let client: PluginClient; // an independent view of the server, to check what the actions did
let timeSpecText: string;

beforeAll(async () => {
  agent = await startRuntime(auton8nPlugin, { AUTON8N_SERVER: target, AUTON8N_MODEL: "template" }, cache);
  runtime = agent.runtime;
  service = runtime.getService<Auton8nService>(SERVICE_TYPE)!;
  client = new PluginClient({ target });
  timeSpecText = await readFile(join(EXAMPLES, "time.json"), "utf8");
});

afterAll(async () => {
  await service?.stop();
  await client?.close();
});

async function run(
  action: typeof createPluginAction,
  message: Memory,
  conversation = new Conversation(),
): Promise<{ result: ActionResult; conversation: Conversation }> {
  const result = await action.handler(runtime, message, EMPTY_STATE, {}, conversation.callback, []);
  expect(result).toBeDefined();
  return { result: result as ActionResult, conversation };
}

const isFinal = (c: Content): boolean => (c["data"] as { final?: boolean } | undefined)?.final === true;

describe("the plugin", () => {
  it("registers a service with the runtime's contract and four actions and a provider", () => {
    expect(auton8nPlugin.services).toEqual([Auton8nService]);
    expect(Auton8nService.serviceType).toBe("auton8n");
    expect(service).toBeInstanceOf(Auton8nService);
    expect(service.capabilityDescription).toMatch(/plugins/);
    expect(service.client.target).toBe(`http://${target}`);
    expect(auton8nPlugin.actions?.map((a) => a.name)).toEqual([
      "CREATE_PLUGIN",
      "CREATE_PLUGIN_FROM_DESCRIPTION",
      "CHECK_PLUGIN_STATUS",
      "CANCEL_PLUGIN_CREATION",
    ]);
    expect(auton8nPlugin.providers?.map((p) => p.name)).toEqual(["AUTON8N_JOBS"]);
  });
});

describe("CREATE_PLUGIN and CHECK_PLUGIN_STATUS", () => {
  const alice = newId();
  const room = newId();

  it("creates the time plugin from a JSON spec in the message and pushes its progress until it succeeds", async () => {
    const message = userMessage(alice, room, `Please build this plugin:\n\`\`\`json\n${timeSpecText}\n\`\`\``);
    expect(await createPluginAction.validate(runtime, message)).toBe(true);
    const { result, conversation } = await run(createPluginAction, message);

    expect(result.success).toBe(true);
    const jobId = result.data?.["jobId"] as string;
    expect(jobId).toMatch(/^[0-9a-f]{32}$/);
    expect(result.values?.["auton8nJobId"]).toBe(jobId);
    expect(conversation.texts()[0]).toMatch(/^Started @elizaos\/plugin-time \(job [0-9a-f]{8}\): queued/);

    // Pushed from WatchJob: phase changes while it runs, then the final report.
    const final = await conversation.waitFor(isFinal, "the final report");
    const job = await client.get(jobId);
    expect(job.state).toBe(JobState.SUCCEEDED);
    expect(final.text).toContain("succeeded");
    expect(final.text).toContain(job.artifact?.sha256 ?? "missing");
    expect(final.text).toContain(job.artifact?.filename ?? "missing");
    const progress = conversation.texts().slice(1, -1);
    expect(progress.some((t) => t.includes("building"))).toBe(true);
    expect(progress.some((t) => t.includes("testing"))).toBe(true);
    expect(new Set(progress).size).toBe(progress.length); // no repeated updates
    expect(conversation.said.every((c) => c.actions?.[0] === "CREATE_PLUGIN")).toBe(true);
  });

  it("CHECK_PLUGIN_STATUS reports the caller's latest job, or the named one", async () => {
    const latest = (await service.jobsOf(alice))[0]!;
    const check = userMessage(alice, room, "What's the status of my plugin?");
    expect(await checkPluginStatusAction.validate(runtime, check)).toBe(true);
    const { result, conversation } = await run(checkPluginStatusAction, check);
    expect(result.success).toBe(true);
    expect(result.data?.["jobId"]).toBe(latest.jobId);
    expect(result.data?.["state"]).toBe("succeeded");
    expect(conversation.texts()[0]).toContain("Your plugin is ready");

    const byShortId = await run(checkPluginStatusAction, userMessage(alice, room, `status of job ${latest.jobId.slice(0, 8)}?`));
    expect(byShortId.result.data?.["jobId"]).toBe(latest.jobId);
    const byFullId = await run(checkPluginStatusAction, userMessage(alice, room, { text: "how is it going", jobId: latest.jobId }));
    expect(byFullId.result.data?.["jobId"]).toBe(latest.jobId);
  });

  it("CHECK_PLUGIN_STATUS refuses other people's jobs and says when there is none", async () => {
    const latest = (await service.jobsOf(alice))[0]!;
    const mallory = newId();
    const peek = await run(checkPluginStatusAction, userMessage(mallory, room, `status of ${latest.jobId}`));
    expect(peek.result.success).toBe(false);
    expect(peek.conversation.texts()[0]).toContain("not one of yours");
    const none = await run(checkPluginStatusAction, userMessage(mallory, room, "status?"));
    expect(none.result.success).toBe(false);
    expect(none.conversation.texts()[0]).toContain("no plugin jobs");
  });

  it("remembers the caller's jobs across an agent restart (runtime cache)", async () => {
    const latest = (await service.jobsOf(alice))[0]!;
    // The same character (agent id) on the same database: a fresh service, no memory.
    const restarted = await startRuntime(auton8nPlugin, { AUTON8N_SERVER: target }, cache, runtime.agentId);
    try {
      const conversation = new Conversation();
      const result = (await checkPluginStatusAction.handler(
        restarted.runtime, userMessage(alice, room, "is my plugin done?"), EMPTY_STATE, {}, conversation.callback,
      )) as ActionResult;
      expect(result.success).toBe(true);
      expect(result.data?.["jobId"]).toBe(latest.jobId);
    } finally {
      await restarted.runtime.getService<Auton8nService>(SERVICE_TYPE)?.stop();
    }
  });

  it("reports an invalid spec with the server's field violations", async () => {
    const bad = userMessage(alice, room, '{"name": "Not A Package", "description": "", "actions": [{"name": "9lives"}]}');
    expect(await createPluginAction.validate(runtime, bad)).toBe(true);
    const { result, conversation } = await run(createPluginAction, bad);
    expect(result.success).toBe(false);
    expect(conversation.texts()[0]).toContain("spec.name");
    expect(conversation.texts()[0]).toContain("spec.actions[0].name");
    const malformed = await run(createPluginAction, userMessage(alice, room, { text: "here", spec: { name: "@a/plugin-b", bogus: true } }));
    expect(malformed.result.success).toBe(false);
    expect(malformed.conversation.texts()[0]).toContain("not valid");
  });

  it("CREATE_PLUGIN does not take messages without a spec", async () => {
    expect(await createPluginAction.validate(runtime, userMessage(alice, room, "make me a weather plugin"))).toBe(false);
  });
});

describe("CREATE_PLUGIN_FROM_DESCRIPTION", () => {
  it("creates a job from a description and reports its end (AUTON8N_PROGRESS=final)", async () => {
    // An agent configured to post only failed iterations and the end, not every phase.
    const quiet = await startRuntime(auton8nPlugin, { AUTON8N_SERVER: target, AUTON8N_PROGRESS: "final" });
    const quietService = quiet.runtime.getService<Auton8nService>(SERVICE_TYPE)!;
    try {
      const bob = newId();
      const message = userMessage(bob, newId(), "Please create a plugin that can get the current weather and convert temperatures between units.");
      expect(await createPluginFromDescriptionAction.validate(quiet.runtime, message)).toBe(true);
      expect(await createPluginAction.validate(quiet.runtime, message)).toBe(false);
      const conversation = new Conversation();
      const result = (await createPluginFromDescriptionAction.handler(
        quiet.runtime, message, EMPTY_STATE, {}, conversation.callback,
      )) as ActionResult;
      expect(result.success).toBe(true);
      const jobId = result.data?.["jobId"] as string;
      const job = await client.get(jobId);
      expect(job.description).toBe("A plugin that can get the current weather and convert temperatures between units.");
      expect(job.spec?.actions.map((a) => a.name)).toEqual(expect.arrayContaining(["getWeather"]));
      const final = await conversation.waitFor(isFinal, "the final report");
      expect(final.text).toContain("succeeded");
      expect(conversation.texts()).toHaveLength(2); // "Started ..." and the report
      expect(conversation.said.every((c) => c.actions?.[0] === "CREATE_PLUGIN_FROM_DESCRIPTION")).toBe(true);

      // The same message handled twice (a retry of the runtime) is the same job.
      const again = (await createPluginFromDescriptionAction.handler(quiet.runtime, message, EMPTY_STATE, {})) as ActionResult;
      expect(again.data?.["jobId"]).toBe(jobId);
    } finally {
      await quietService.stop();
    }
  });

  it("does not fire on small talk", async () => {
    expect(await createPluginFromDescriptionAction.validate(runtime, userMessage(newId(), newId(), "hello there, how are you?"))).toBe(false);
  });
});

describe("CANCEL_PLUGIN_CREATION and the provider", () => {
  it("cancels exactly the named job, never another one", async () => {
    const carol = newId();
    const room = newId();
    const create = async (text: string): Promise<string> => {
      const { result } = await run(createPluginFromDescriptionAction, userMessage(carol, room, text));
      expect(result.success).toBe(true);
      return result.data?.["jobId"] as string;
    };
    const first = await create("Make a plugin that can search recipes and list ingredients.");
    const second = await create("Make a plugin that can track packages and notify users.");

    // The provider shows both as in progress.
    const provided = await activeJobsProvider.get(runtime, userMessage(carol, room, "hi"), EMPTY_STATE);
    expect(provided.values?.["auton8nActiveJobs"]).toBe(2);
    expect(provided.text).toContain(first);
    expect(provided.text).toContain(second);

    // No job named and two in progress: ask, cancel nothing.
    const vague = await run(cancelPluginCreationAction, userMessage(carol, room, "cancel it"));
    expect(vague.result.success).toBe(false);
    expect(vague.conversation.texts()[0]).toContain("which one");
    expect(isTerminal((await client.get(first)).state)).toBe(false);
    expect(isTerminal((await client.get(second)).state)).toBe(false);

    // Someone else cannot cancel it.
    const mallory = await run(cancelPluginCreationAction, userMessage(newId(), room, `cancel job ${second}`));
    expect(mallory.result.success).toBe(false);
    expect(isTerminal((await client.get(second)).state)).toBe(false);

    // The named one (the newer one, by its short id): only it is cancelled.
    const named = await run(cancelPluginCreationAction, userMessage(carol, room, `please cancel job ${second.slice(0, 8)}`));
    expect(named.result.success).toBe(true);
    expect(named.result.data?.["jobId"]).toBe(second);
    expect(named.conversation.texts()[0]).toMatch(/^Cancelled .*job [0-9a-f]{8}/);
    expect((await client.get(second)).state).toBe(JobState.CANCELLED);
    expect(isTerminal((await client.get(first)).state)).toBe(false);

    const left = await activeJobsProvider.get(runtime, userMessage(carol, room, "hi"), EMPTY_STATE);
    expect(left.values?.["auton8nActiveJobs"]).toBe(1);

    // One job left in progress: "stop it" is unambiguous.
    const only = await run(cancelPluginCreationAction, userMessage(carol, room, "stop it"));
    expect(only.result.data?.["jobId"]).toBe(first);
    expect((await client.get(first)).state).toBe(JobState.CANCELLED);

    const nothing = await run(cancelPluginCreationAction, userMessage(carol, room, "cancel"));
    expect(nothing.result.success).toBe(false);
    expect(nothing.conversation.texts()[0]).toContain("nothing to cancel");

    // A named job that already ended: the service's FAILED_PRECONDITION, told plainly.
    const again = await run(cancelPluginCreationAction, userMessage(carol, room, `cancel ${first}`));
    expect(again.result.success).toBe(false);
    expect(again.conversation.texts()[0]).toContain("already finished");

    const empty = await activeJobsProvider.get(runtime, userMessage(carol, room, "hi"), EMPTY_STATE);
    expect(empty.values?.["auton8nActiveJobs"]).toBe(0);
    expect(empty.text).toContain("no plugin-generation jobs in progress");
  });
});

describe("the service", () => {
  it("reports a missing service instead of failing", async () => {
    const bare = { ...runtime, getService: () => null } as IAgentRuntime;
    const conversation = new Conversation();
    const message = userMessage(newId() as UUID, newId(), timeSpecText);
    expect(await createPluginAction.validate(bare, message)).toBe(false);
    const result = (await createPluginAction.handler(bare, message, EMPTY_STATE, {}, conversation.callback)) as ActionResult;
    expect(result.success).toBe(false);
    expect(conversation.texts()[0]).toContain("not available");
  });

  it("stops through the static stop, closing the client", async () => {
    const other = await startRuntime(auton8nPlugin, { AUTON8N_SERVER: target });
    const s = other.runtime.getService<Auton8nService>(SERVICE_TYPE)!;
    expect((await s.client.list({ pageSize: 1 })).jobs.length).toBeGreaterThanOrEqual(0);
    await Auton8nService.stop(other.runtime);
    await expect(s.client.list()).rejects.toThrow();
  });
});
