/** The plugin's runtime settings (character settings/secrets or the environment). */

import type { IAgentRuntime } from "@elizaos/core";
import { tlsFromFiles, type ClientOptions } from "@auton8n/client";

/** Setting names, as they appear in a character's settings or the environment. */
export const SETTINGS = {
  server: "AUTON8N_SERVER",
  token: "AUTON8N_TOKEN",
  tls: "AUTON8N_TLS",
  caFile: "AUTON8N_TLS_CA_FILE",
  certFile: "AUTON8N_TLS_CERT_FILE",
  keyFile: "AUTON8N_TLS_KEY_FILE",
  serverName: "AUTON8N_TLS_SERVER_NAME",
  model: "AUTON8N_MODEL",
  maxIterations: "AUTON8N_MAX_ITERATIONS",
  progress: "AUTON8N_PROGRESS",
} as const;

/** What is pushed to the conversation while a job runs. */
export type ProgressMode = "phases" | "final";

export const DEFAULT_SERVER = "localhost:50051";

export interface Auton8nSettings {
  /** `host:port` or an `http(s)://` URL. */
  readonly server: string;
  readonly token: string | undefined;
  /** Whether to use TLS (also implied by an https:// server or any TLS file). */
  readonly tls: boolean;
  readonly caFile: string | undefined;
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
  readonly serverName: string | undefined;
  /** Generator/model for new jobs; "" = the server's default. */
  readonly model: string;
  /** Repair-loop budget for new jobs; 0 = the server's default. */
  readonly maxIterations: number;
  /**
   * "phases" (default): every phase change, failed iterations and the end; "final":
   * only failed iterations and the end.
   */
  readonly progress: ProgressMode;
}

/** A setting that cannot be used; the message names it. */
export class SettingsError extends Error {
  override name = "SettingsError";
}

/** Reads the settings through `runtime.getSetting` (which also falls back to the env). */
export function readSettings(runtime: Pick<IAgentRuntime, "getSetting">): Auton8nSettings {
  const text = (key: string): string | undefined => {
    const value = runtime.getSetting(key);
    if (value === null || value === undefined) return undefined;
    const s = String(value).trim();
    return s === "" ? undefined : s;
  };
  const tlsText = text(SETTINGS.tls)?.toLowerCase();
  if (tlsText !== undefined && !["true", "false", "1", "0", "yes", "no"].includes(tlsText)) {
    throw new SettingsError(`${SETTINGS.tls} must be true or false, not ${JSON.stringify(tlsText)}`);
  }
  const maxText = text(SETTINGS.maxIterations);
  const maxIterations = maxText === undefined ? 0 : Number(maxText);
  if (!Number.isInteger(maxIterations) || maxIterations < 0) {
    throw new SettingsError(`${SETTINGS.maxIterations} must be a non-negative integer, not ${JSON.stringify(maxText)}`);
  }
  const certFile = text(SETTINGS.certFile);
  const keyFile = text(SETTINGS.keyFile);
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new SettingsError(`${SETTINGS.certFile} and ${SETTINGS.keyFile} go together (mutual TLS)`);
  }
  const progress = text(SETTINGS.progress)?.toLowerCase() ?? "phases";
  if (progress !== "phases" && progress !== "final") {
    throw new SettingsError(`${SETTINGS.progress} must be phases or final, not ${JSON.stringify(progress)}`);
  }
  const caFile = text(SETTINGS.caFile);
  const server = text(SETTINGS.server) ?? DEFAULT_SERVER;
  const tls =
    ["true", "1", "yes"].includes(tlsText ?? "") ||
    server.startsWith("https://") ||
    caFile !== undefined ||
    certFile !== undefined;
  if (tls && server.startsWith("http://")) {
    throw new SettingsError(`${SETTINGS.server} is a plaintext http:// URL but TLS settings are given`);
  }
  return {
    server,
    token: text(SETTINGS.token),
    tls,
    caFile,
    certFile,
    keyFile,
    serverName: text(SETTINGS.serverName),
    model: text(SETTINGS.model) ?? "",
    maxIterations,
    progress,
  };
}

/** Client options for the settings (reads the TLS files). */
export async function clientOptions(settings: Auton8nSettings): Promise<ClientOptions> {
  const tls = settings.tls
    ? await tlsFromFiles({
        caFile: settings.caFile,
        certFile: settings.certFile,
        keyFile: settings.keyFile,
        serverName: settings.serverName,
      })
    : false;
  return { target: settings.server, token: settings.token, tls };
}
