/** AUTON8N_JOBS: the caller's plugin-generation jobs in progress, for the agent's context. */

import type { IAgentRuntime, Memory, Provider, ProviderResult, State } from "@elizaos/core";
import { stateName } from "@auton8n/client";

import { getAuton8n } from "./actions.js";
import { statusLine } from "./messages.js";

export const activeJobsProvider: Provider = {
  name: "AUTON8N_JOBS",
  description: "The caller's plugin-generation jobs that are queued or running (auton8n).",
  get: async (runtime: IAgentRuntime, message: Memory, _state: State): Promise<ProviderResult> => {
    const service = getAuton8n(runtime);
    if (service === undefined) return { text: "", values: { auton8nActiveJobs: 0 }, data: { jobs: [] } };
    try {
      const jobs = await service.activeJobsOf(message.entityId);
      const data = jobs.map((j) => ({
        jobId: j.id,
        name: j.spec?.name ?? "",
        state: stateName(j.state),
        progressPercent: j.progressPercent,
        iteration: j.iteration,
        maxIterations: j.maxIterations,
      }));
      const text =
        jobs.length === 0
          ? "The user has no plugin-generation jobs in progress."
          : `The user's plugin-generation jobs in progress:\n${jobs.map((j) => `- ${statusLine(j)} [id ${j.id}]`).join("\n")}`;
      return { text, values: { auton8nActiveJobs: jobs.length }, data: { jobs: data } };
    } catch (error) {
      runtime.logger?.warn({ src: "plugin:auton8n", error: String(error) }, "listing the caller's jobs failed");
      return { text: "", values: { auton8nActiveJobs: 0 }, data: { jobs: [] } };
    }
  },
};
