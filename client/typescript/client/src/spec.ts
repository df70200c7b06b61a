/** Plugin specifications in the reference JSON format (protobuf's JSON mapping). */

import { fromJson, type JsonValue } from "@bufbuild/protobuf";

import { PluginSpecSchema, type PluginSpec } from "./gen/auton8n/v1/plugin_service_pb.js";

/** A plugin spec as JSON: lowerCamelCase keys (`dataStructure`, `environmentVariables`). */
export interface PluginSpecJson {
  name: string;
  description?: string;
  version?: string;
  actions?: { name: string; description?: string; parameters?: Record<string, JsonValue> }[];
  providers?: { name: string; description?: string; dataStructure?: Record<string, JsonValue> }[];
  services?: { name: string; description?: string; methods?: string[] }[];
  evaluators?: { name: string; description?: string; triggers?: string[] }[];
  dependencies?: Record<string, string>;
  environmentVariables?: { name: string; description?: string; required?: boolean; sensitive?: boolean }[];
}

/** A malformed spec (not a JSON object, unknown fields, wrong types). */
export class SpecError extends Error {
  override name = "SpecError";
}

/**
 * Parses the reference JSON format into a PluginSpec message. Accepts an object or a
 * JSON string; the proto field names (`data_structure`) are accepted as well.
 *
 * @throws SpecError for anything that is not a valid PluginSpec in JSON.
 */
export function specFromJson(spec: unknown): PluginSpec {
  let value: unknown = spec;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value) as unknown;
    } catch (error) {
      throw new SpecError(`invalid plugin spec: not JSON (${(error as Error).message})`);
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    const kind = value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
    throw new SpecError(`invalid plugin spec: a JSON object is needed, not ${kind}`);
  }
  try {
    return fromJson(PluginSpecSchema, value as JsonValue);
  } catch (error) {
    throw new SpecError(`invalid plugin spec: ${(error as Error).message}`);
  }
}
