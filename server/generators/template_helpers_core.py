"""TypeScript helpers every template plugin ships: parameter parsing, action results,
settings (``src/utils/parameters.ts``, ``actions.ts``, ``settings.ts``).

Spec-independent and already in Biome 2.6's printed form.
"""

from __future__ import annotations

__all__ = ["ACTIONS_TS", "PARAMETERS_TS", "SETTINGS_TS"]

PARAMETERS_TS = r"""import type { HandlerOptions, Memory } from "@elizaos/core";
import { z } from "zod";

/** A plain object: not null, not an array. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const NUMERIC_TEXT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;

function toNumber(value: unknown): unknown {
  if (typeof value === "string" && NUMERIC_TEXT.test(value.trim())) {
    return Number(value.trim());
  }
  return value;
}

function toBoolean(value: unknown): unknown {
  if (typeof value !== "string") {
    return value;
  }
  const text = value.trim().toLowerCase();
  if (text === "true" || text === "yes") {
    return true;
  }
  if (text === "false" || text === "no") {
    return false;
  }
  return value;
}

function toIsoTimestamp(value: unknown): unknown {
  const date =
    value instanceof Date
      ? value
      : typeof value === "number" || (typeof value === "string" && value.trim() !== "")
        ? new Date(value)
        : undefined;
  if (date === undefined || Number.isNaN(date.getTime())) {
    return value;
  }
  return date.toISOString();
}

/** A finite number; numeric text such as "42" or "-1.5" is accepted too. */
export function numberParam() {
  return z.preprocess(toNumber, z.number());
}

/** A whole number; numeric text is accepted too. */
export function integerParam() {
  return z.preprocess(toNumber, z.number().int());
}

/** A boolean; "true"/"false"/"yes"/"no" text is accepted too. */
export function booleanParam() {
  return z.preprocess(toBoolean, z.boolean());
}

/** A point in time as an ISO 8601 string; ISO text, a Date or epoch milliseconds. */
export function timestampParam() {
  return z.preprocess(toIsoTimestamp, z.iso.datetime());
}

/** Any JSON object. */
export function recordParam() {
  return z.record(z.string(), z.unknown());
}

/**
 * The declared parameters found, in increasing priority, in the message content,
 * `content.parameters`, the handler options and `options.parameters`.
 */
export function collectParameters(
  schema: z.ZodObject,
  message: Memory,
  options?: HandlerOptions,
): Record<string, unknown> {
  const sources = [message.content, message.content.parameters, options, options?.parameters];
  const collected: Record<string, unknown> = {};
  for (const source of sources) {
    if (!isRecord(source)) {
      continue;
    }
    for (const key of Object.keys(schema.shape)) {
      const value = source[key];
      if (value !== undefined && value !== null) {
        collected[key] = value;
      }
    }
  }
  return collected;
}

/** The required parameters (those the schema rejects when absent) missing from `values`. */
export function missingParameters(schema: z.ZodObject, values: Record<string, unknown>): string[] {
  return Object.entries(schema.shape)
    .filter(([key, field]) => values[key] === undefined && !field.safeParse(undefined).success)
    .map(([key]) => key);
}

/** "days: Invalid input: expected number, received NaN; units: ..." */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.map(String).join(".") || "parameters"}: ${issue.message}`)
    .join("; ");
}

/** "location: London, days: 3, tags: [\"a\"]" (strings as they are, the rest as JSON) */
export function describeParameters(parameters: Record<string, unknown>): string {
  const entries = Object.entries(parameters);
  if (entries.length === 0) {
    return "no parameters";
  }
  return entries
    .map(([key, value]) => `${key}: ${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(", ");
}
"""

ACTIONS_TS = r"""import type { ActionResult, HandlerCallback } from "@elizaos/core";

/** The message of any thrown value. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Tells the user (through `callback`, when there is one) and returns a failed result. */
export async function failure(
  actionName: string,
  text: string,
  callback?: HandlerCallback,
  error?: unknown,
): Promise<ActionResult> {
  if (callback) {
    await callback({ text, actions: [actionName], error: true });
  }
  return {
    success: false,
    text,
    error: error instanceof Error ? error : text,
    data: { actionName },
  };
}
"""

SETTINGS_TS = r"""import type { IAgentRuntime } from "@elizaos/core";

/** One environment variable of the plugin (also listed in package.json's agentConfig). */
export interface PluginSetting {
  readonly name: string;
  readonly description: string;
  readonly required: boolean;
  readonly sensitive: boolean;
}

function normalise(value: unknown): string | undefined {
  if (value === undefined || value === null) {
    return undefined;
  }
  const text = String(value).trim();
  return text === "" ? undefined : text;
}

/** A setting's value from the runtime (character settings, secrets or environment). */
export function readSetting(runtime: IAgentRuntime, name: string): string | undefined {
  return normalise(runtime.getSetting(name));
}

/** The required settings that have no value in `config` nor in the runtime. */
export function missingSettings(
  runtime: IAgentRuntime,
  settings: readonly PluginSetting[],
  config: Record<string, string | undefined> = {},
): PluginSetting[] {
  return settings.filter(
    (setting) =>
      setting.required &&
      normalise(config[setting.name]) === undefined &&
      readSetting(runtime, setting.name) === undefined,
  );
}

/** The plugin's `config`: every declared setting read from the process environment. */
export function readEnvironmentConfig(
  settings: readonly PluginSetting[],
): Record<string, string | undefined> {
  const config: Record<string, string | undefined> = {};
  for (const setting of settings) {
    config[setting.name] = process.env[setting.name];
  }
  return config;
}

/** Throws an error naming every required setting that has no value. */
export function assertRequiredSettings(
  pluginName: string,
  settings: readonly PluginSetting[],
  config: Record<string, string | undefined>,
  runtime: IAgentRuntime,
): void {
  const missing = missingSettings(runtime, settings, config);
  if (missing.length === 0) {
    return;
  }
  const details = missing.map((setting) => `${setting.name} (${setting.description})`);
  throw new Error(
    `${pluginName}: missing required setting(s): ${details.join(", ")}. ` +
      "Set them in the character's settings or secrets, or in the environment.",
  );
}
"""
