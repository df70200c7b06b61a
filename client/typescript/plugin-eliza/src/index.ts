/**
 * @auton8n/plugin-eliza — lets an ElizaOS agent create ElizaOS plugins by talking, through
 * the auton8n plugin-generation service.
 *
 * Settings (character settings/secrets or the environment): AUTON8N_SERVER (host:port or
 * an http(s):// URL), AUTON8N_TOKEN, AUTON8N_TLS, AUTON8N_TLS_CA_FILE,
 * AUTON8N_TLS_CERT_FILE + AUTON8N_TLS_KEY_FILE (mutual TLS), AUTON8N_TLS_SERVER_NAME,
 * AUTON8N_MODEL, AUTON8N_MAX_ITERATIONS, AUTON8N_PROGRESS ("phases" or "final").
 */

import type { Plugin } from "@elizaos/core";

import { actions } from "./actions.js";
import { activeJobsProvider } from "./provider.js";
import { Auton8nService } from "./service.js";

export const auton8nPlugin: Plugin = {
  name: "auton8n",
  description:
    "Create ElizaOS plugins by talking: from a JSON spec or a description, with progress " +
    "pushed to the conversation, status checks and cancellation (auton8n service).",
  services: [Auton8nService],
  actions,
  providers: [activeJobsProvider],
};

export default auton8nPlugin;

export {
  CANCEL_PLUGIN_CREATION,
  CHECK_PLUGIN_STATUS,
  CREATE_PLUGIN,
  CREATE_PLUGIN_FROM_DESCRIPTION,
  actions,
  cancelPluginCreationAction,
  checkPluginStatusAction,
  createPluginAction,
  createPluginFromDescriptionAction,
  getAuton8n,
} from "./actions.js";
export { activeJobsProvider } from "./provider.js";
export { Auton8nService, SERVICE_TYPE, type Caller, type JobSource, type ProgressListener } from "./service.js";
export {
  DEFAULT_SERVER,
  SETTINGS,
  SettingsError,
  clientOptions,
  readSettings,
  type Auton8nSettings,
  type ProgressMode,
} from "./settings.js";
export { JobTracker, type JobRecord } from "./tracker.js";
export { asksForPlugin, extractDescription, extractJobId, extractSpec } from "./parse.js";
export { errorMessage, jobLabel, jobReport, progressMessage, shortId, statusLine } from "./messages.js";
