/**
 * The agent-facing actions: CREATE_PLUGIN, CREATE_PLUGIN_FROM_DESCRIPTION,
 * CHECK_PLUGIN_STATUS and CANCEL_PLUGIN_CREATION.
 *
 * Each handler returns an ActionResult and calls the callback with what the user should
 * read. The create actions (and a status check of a job nobody follows) subscribe the
 * conversation to the job's WatchJob stream, so progress arrives as it happens.
 */

import type {
  Action,
  ActionResult,
  Content,
  HandlerCallback,
  IAgentRuntime,
  Memory,
} from "@elizaos/core";
import { SpecError, isTerminal, stateName, type Job } from "@auton8n/client";

import { errorMessage, jobLabel, jobReport, shortId, statusLine } from "./messages.js";
import { asksForPlugin, extractDescription, extractJobId, extractSpec, looksLikeJson } from "./parse.js";
import { Auton8nService, SERVICE_TYPE, type Caller, type JobSource, type ProgressListener } from "./service.js";

export const CREATE_PLUGIN = "CREATE_PLUGIN";
export const CREATE_PLUGIN_FROM_DESCRIPTION = "CREATE_PLUGIN_FROM_DESCRIPTION";
export const CHECK_PLUGIN_STATUS = "CHECK_PLUGIN_STATUS";
export const CANCEL_PLUGIN_CREATION = "CANCEL_PLUGIN_CREATION";

/** The service, or undefined when it is not registered. */
export function getAuton8n(runtime: IAgentRuntime): Auton8nService | undefined {
  return runtime.getService<Auton8nService>(SERVICE_TYPE) ?? undefined;
}

function caller(message: Memory): Caller {
  return { entityId: message.entityId, roomId: message.roomId };
}

/** Sends the user a message; a failing callback must not fail the action. */
async function say(
  runtime: IAgentRuntime,
  callback: HandlerCallback | undefined,
  action: string,
  text: string,
  extra: Partial<Content> = {},
): Promise<void> {
  if (callback === undefined) return;
  try {
    await callback({ text, actions: [action], ...extra });
  } catch (error) {
    runtime.logger?.warn({ src: "plugin:auton8n", action, error: String(error) }, "the reply callback failed");
  }
}

/** A listener that posts a followed job's progress to the conversation. */
function progressTo(runtime: IAgentRuntime, callback: HandlerCallback | undefined, action: string): ProgressListener | undefined {
  if (callback === undefined) return undefined;
  return async (text, job, final) => {
    await say(runtime, callback, action, text, {
      data: { jobId: job.id, state: stateName(job.state), final },
    });
  };
}

async function fail(
  runtime: IAgentRuntime,
  callback: HandlerCallback | undefined,
  action: string,
  text: string,
  error?: unknown,
  data: Record<string, unknown> = {},
): Promise<ActionResult> {
  await say(runtime, callback, action, text);
  return {
    success: false,
    text,
    error: error instanceof Error ? error : text,
    data: { actionName: action, ...data },
  };
}

function jobData(job: Job): Record<string, unknown> {
  return {
    jobId: job.id,
    name: job.spec?.name ?? "",
    state: stateName(job.state),
    progressPercent: job.progressPercent,
    iteration: job.iteration,
    maxIterations: job.maxIterations,
    ...(job.artifact ? { artifact: { filename: job.artifact.filename, sha256: job.artifact.sha256, sizeBytes: Number(job.artifact.sizeBytes) } } : {}),
  };
}

const NOT_CONFIGURED =
  "The plugin service is not available to me (the auton8n service is not running; check AUTON8N_SERVER).";

async function startJob(
  action: string,
  source: JobSource,
  runtime: IAgentRuntime,
  message: Memory,
  callback: HandlerCallback | undefined,
): Promise<ActionResult> {
  const service = getAuton8n(runtime);
  if (service === undefined) return fail(runtime, callback, action, NOT_CONFIGURED);
  let job: Job;
  try {
    // The message id makes a repeated handling of the same message return the same job.
    const key = message.id ? `eliza:${runtime.agentId}:${message.id}:${action}` : undefined;
    job = await service.createJob(source, caller(message), key);
  } catch (error) {
    const text = error instanceof SpecError ? `That plugin spec is not valid: ${error.message}` : errorMessage(error);
    return fail(runtime, callback, action, text, error);
  }
  const text =
    `Started ${jobLabel(job)}: ${stateName(job.state)}` +
    `${job.queuePosition > 0 ? `, ${job.queuePosition} job(s) ahead` : ""}. ` +
    "I'll post progress here as it builds and tests.";
  await say(runtime, callback, action, text, { data: jobData(job) });
  service.follow(job, progressTo(runtime, callback, action));
  return {
    success: true,
    text,
    values: { auton8nJobId: job.id, auton8nJobState: stateName(job.state) },
    data: { actionName: action, ...jobData(job) },
  };
}

export const createPluginAction: Action = {
  name: CREATE_PLUGIN,
  similes: ["GENERATE_PLUGIN", "BUILD_PLUGIN", "CREATE_PLUGIN_FROM_SPEC", "NEW_PLUGIN"],
  description:
    "Create an ElizaOS plugin from a JSON specification in the message (name, description, " +
    "actions, providers, services, evaluators, environmentVariables). Starts a generation " +
    "job and reports its progress here.",
  validate: async (runtime: IAgentRuntime, message: Memory): Promise<boolean> =>
    getAuton8n(runtime) !== undefined && extractSpec(message.content) !== undefined,
  handler: async (
    runtime: IAgentRuntime,
    message: Memory,
    _state,
    _options,
    callback?: HandlerCallback,
  ): Promise<ActionResult> => {
    const spec = extractSpec(message.content);
    if (spec === undefined) {
      const text = looksLikeJson(message.content)
        ? "I couldn't read a plugin spec in your message: it needs to be a JSON object with at least a \"name\"."
        : "Please send the plugin spec as a JSON object (or describe the plugin and I'll derive one).";
      return fail(runtime, callback, CREATE_PLUGIN, text);
    }
    return startJob(CREATE_PLUGIN, { spec }, runtime, message, callback);
  },
  examples: [
    [
      {
        name: "{{user}}",
        content: {
          text:
            'Create this plugin: {"name": "@elizaos/plugin-time", "description": "Current time", ' +
            '"actions": [{"name": "getCurrentTime", "description": "Get the time", "parameters": {"timezone": "string"}}]}',
        },
      },
      {
        name: "{{agent}}",
        content: {
          text: "Started @elizaos/plugin-time (job 3f2a9c1b): queued. I'll post progress here as it builds and tests.",
          actions: [CREATE_PLUGIN],
        },
      },
    ],
  ],
};

export const createPluginFromDescriptionAction: Action = {
  name: CREATE_PLUGIN_FROM_DESCRIPTION,
  similes: ["DESCRIBE_PLUGIN", "PLUGIN_FROM_DESCRIPTION", "MAKE_PLUGIN"],
  description:
    "Create an ElizaOS plugin from a plain-English description of what it should do; the " +
    "service derives the specification. Use CREATE_PLUGIN instead when a JSON spec is given.",
  validate: async (runtime: IAgentRuntime, message: Memory): Promise<boolean> => {
    if (getAuton8n(runtime) === undefined || extractSpec(message.content) !== undefined) return false;
    if (typeof message.content["description"] === "string") return true;
    return asksForPlugin(message.content.text ?? "");
  },
  handler: async (
    runtime: IAgentRuntime,
    message: Memory,
    _state,
    _options,
    callback?: HandlerCallback,
  ): Promise<ActionResult> => {
    const description = extractDescription(message.content);
    if (description.length < 10) {
      return fail(runtime, callback, CREATE_PLUGIN_FROM_DESCRIPTION, "Tell me what the plugin should do, in a sentence or two.");
    }
    return startJob(CREATE_PLUGIN_FROM_DESCRIPTION, { description }, runtime, message, callback);
  },
  examples: [
    [
      {
        name: "{{user}}",
        content: { text: "Make me a plugin that gets the current weather and forecasts rain for a city" },
      },
      {
        name: "{{agent}}",
        content: {
          text: "Started @elizaos/plugin-weather (job 9c0d1e2f): queued. I'll post progress here as it builds and tests.",
          actions: [CREATE_PLUGIN_FROM_DESCRIPTION],
        },
      },
    ],
  ],
};

export const checkPluginStatusAction: Action = {
  name: CHECK_PLUGIN_STATUS,
  similes: ["PLUGIN_STATUS", "JOB_STATUS", "PLUGIN_PROGRESS"],
  description:
    "Report the status of a plugin-generation job: the job named in the message (its id), " +
    "or else the caller's most recent one.",
  validate: async (runtime: IAgentRuntime, message: Memory): Promise<boolean> => {
    const service = getAuton8n(runtime);
    if (service === undefined) return false;
    const text = message.content.text ?? "";
    if (extractJobId(message.content) !== undefined) return true;
    return /\b(status|progress|how(?:'s| is)|done|finished|ready|check)\b/i.test(text) &&
      (await service.jobsOf(message.entityId)).length > 0;
  },
  handler: async (
    runtime: IAgentRuntime,
    message: Memory,
    _state,
    _options,
    callback?: HandlerCallback,
  ): Promise<ActionResult> => {
    const service = getAuton8n(runtime);
    if (service === undefined) return fail(runtime, callback, CHECK_PLUGIN_STATUS, NOT_CONFIGURED);
    const mine = await service.jobsOf(message.entityId);
    const named = extractJobId(message.content, mine.map((r) => r.jobId));
    const jobId = named ?? mine[0]?.jobId;
    if (jobId === undefined) {
      return fail(runtime, callback, CHECK_PLUGIN_STATUS, "You have no plugin jobs with me yet. Send a spec or describe a plugin to start one.");
    }
    if (!(await service.owns(message.entityId, jobId))) {
      return fail(runtime, callback, CHECK_PLUGIN_STATUS, `Job ${shortId(jobId)} is not one of yours, so I can't report on it.`, undefined, { jobId });
    }
    let job: Job;
    try {
      job = await service.client.get(jobId);
    } catch (error) {
      return fail(runtime, callback, CHECK_PLUGIN_STATUS, errorMessage(error), error, { jobId });
    }
    const text = jobReport(job);
    if (!isTerminal(job.state) && !service.isFollowing(job.id)) {
      // Nobody follows it (e.g. after an agent restart): this conversation does now.
      service.follow(job, progressTo(runtime, callback, CHECK_PLUGIN_STATUS));
    }
    await say(runtime, callback, CHECK_PLUGIN_STATUS, text, { data: jobData(job) });
    return {
      success: true,
      text,
      values: { auton8nJobId: job.id, auton8nJobState: stateName(job.state) },
      data: { actionName: CHECK_PLUGIN_STATUS, ...jobData(job) },
    };
  },
  examples: [
    [
      { name: "{{user}}", content: { text: "How is my plugin coming along?" } },
      {
        name: "{{agent}}",
        content: {
          text: "@elizaos/plugin-time (job 3f2a9c1b): running — testing, iteration 1/5, 60%",
          actions: [CHECK_PLUGIN_STATUS],
        },
      },
    ],
  ],
};

export const cancelPluginCreationAction: Action = {
  name: CANCEL_PLUGIN_CREATION,
  similes: ["CANCEL_PLUGIN", "STOP_PLUGIN_CREATION", "ABORT_PLUGIN_JOB"],
  description:
    "Cancel a plugin-generation job the caller started: the job named in the message (its " +
    "id). Without a name it cancels only when the caller has exactly one job in progress.",
  validate: async (runtime: IAgentRuntime, message: Memory): Promise<boolean> =>
    getAuton8n(runtime) !== undefined && /\b(cancel|stop|abort|kill)\b/i.test(message.content.text ?? ""),
  handler: async (
    runtime: IAgentRuntime,
    message: Memory,
    _state,
    _options,
    callback?: HandlerCallback,
  ): Promise<ActionResult> => {
    const service = getAuton8n(runtime);
    if (service === undefined) return fail(runtime, callback, CANCEL_PLUGIN_CREATION, NOT_CONFIGURED);
    const mine = await service.jobsOf(message.entityId);
    let jobId = extractJobId(message.content, mine.map((r) => r.jobId));
    if (jobId === undefined) {
      // Never "whichever came first": only an unambiguous single active job.
      const active = await service.activeJobsOf(message.entityId);
      if (active.length === 0) {
        return fail(runtime, callback, CANCEL_PLUGIN_CREATION, "You have no plugin jobs in progress, so there is nothing to cancel.");
      }
      if (active.length > 1) {
        const list = active.map((j) => `- ${statusLine(j)}`).join("\n");
        return fail(
          runtime,
          callback,
          CANCEL_PLUGIN_CREATION,
          `You have ${active.length} jobs in progress; which one should I cancel? Name its id:\n${list}`,
          undefined,
          { candidates: active.map((j) => j.id) },
        );
      }
      jobId = active[0]?.id;
    }
    if (jobId === undefined) return fail(runtime, callback, CANCEL_PLUGIN_CREATION, "I couldn't tell which job to cancel.");
    if (!(await service.owns(message.entityId, jobId))) {
      return fail(runtime, callback, CANCEL_PLUGIN_CREATION, `Job ${shortId(jobId)} is not one of yours, so I won't cancel it.`, undefined, { jobId });
    }
    let job: Job;
    try {
      job = await service.client.cancel(jobId);
    } catch (error) {
      return fail(runtime, callback, CANCEL_PLUGIN_CREATION, errorMessage(error), error, { jobId });
    }
    // This reply is the last word on the job: its stream's CANCELLED report would repeat it.
    service.unfollow(job.id);
    const text = `Cancelled ${jobLabel(job)}.`;
    await say(runtime, callback, CANCEL_PLUGIN_CREATION, text, { data: jobData(job) });
    return {
      success: true,
      text,
      values: { auton8nJobId: job.id, auton8nJobState: stateName(job.state) },
      data: { actionName: CANCEL_PLUGIN_CREATION, ...jobData(job) },
    };
  },
  examples: [
    [
      { name: "{{user}}", content: { text: "Cancel job 3f2a9c1b" } },
      { name: "{{agent}}", content: { text: "Cancelled @elizaos/plugin-time (job 3f2a9c1b).", actions: [CANCEL_PLUGIN_CREATION] } },
    ],
  ],
};

export const actions: Action[] = [
  createPluginAction,
  createPluginFromDescriptionAction,
  checkPluginStatusAction,
  cancelPluginCreationAction,
];
