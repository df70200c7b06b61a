"""TypeScript helpers for providers, services and evaluators of template plugins
(``src/utils/providers.ts``, ``services.ts``, ``evaluators.ts``).

Spec-independent and already in Biome 2.6's printed form.
"""

from __future__ import annotations

__all__ = ["EVALUATORS_TS", "PROVIDERS_TS", "SERVICES_TS"]

PROVIDERS_TS = r"""import type { IAgentRuntime, State } from "@elizaos/core";
import { isRecord } from "./parameters";
import { readSetting } from "./settings";

/** The value kinds a provider field can have. */
export type FieldKind =
  | "string"
  | "number"
  | "boolean"
  | "timestamp"
  | "string[]"
  | "number[]"
  | "boolean[]"
  | "list"
  | "record"
  | "unknown";

/** A provider's data structure: field name -> kind, or a nested structure. */
export interface FieldShape {
  readonly [key: string]: FieldKind | FieldShape;
}

type FieldValue<K> = K extends "string" | "timestamp"
  ? string
  : K extends "number"
    ? number
    : K extends "boolean"
      ? boolean
      : K extends "string[]"
        ? string[]
        : K extends "number[]"
          ? number[]
          : K extends "boolean[]"
            ? boolean[]
            : K extends "list"
              ? unknown[]
              : K extends "record"
                ? Record<string, unknown>
                : K extends FieldShape
                  ? FieldValues<K>
                  : unknown;

/** The resolved values of a data structure. */
export type FieldValues<S extends FieldShape> = { -readonly [K in keyof S]: FieldValue<S[K]> };

/** The setting that can configure a field: `current.unitName` -> `CURRENT_UNIT_NAME`. */
export function settingKey(path: string): string {
  return path
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/[^A-Za-z0-9]+/g, "_")
    .toUpperCase();
}

function matches(kind: FieldKind, value: unknown): boolean {
  switch (kind) {
    case "string":
    case "timestamp":
      return typeof value === "string";
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "boolean":
      return typeof value === "boolean";
    case "string[]":
      return Array.isArray(value) && value.every((item) => typeof item === "string");
    case "number[]":
      return Array.isArray(value) && value.every((item) => typeof item === "number");
    case "boolean[]":
      return Array.isArray(value) && value.every((item) => typeof item === "boolean");
    case "list":
      return Array.isArray(value);
    case "record":
      return isRecord(value);
    default:
      return value !== undefined && value !== null;
  }
}

function fromText(kind: FieldKind, text: string): unknown {
  if (kind === "string" || kind === "timestamp" || kind === "unknown") {
    return text;
  }
  if (kind === "number") {
    return Number(text);
  }
  if (kind === "boolean") {
    return text === "true" ? true : text === "false" ? false : undefined;
  }
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function defaultValue(kind: FieldKind, key: string): unknown {
  const name = key.toLowerCase();
  switch (kind) {
    case "string":
      if (name.includes("timezone")) {
        return Intl.DateTimeFormat().resolvedOptions().timeZone;
      }
      return /(time|date|updated|timestamp)$/.test(name) ? new Date().toISOString() : "";
    case "timestamp":
      return new Date().toISOString();
    case "number":
      if (name.includes("offset")) {
        return -new Date().getTimezoneOffset() / 60;
      }
      return /(timestamp|epoch)$/.test(name) ? Date.now() : 0;
    case "boolean":
      return false;
    case "record":
      return {};
    case "unknown":
      return null;
    default:
      return [];
  }
}

function lookup(values: Record<string, unknown>, path: string): unknown {
  if (path in values) {
    return values[path];
  }
  let current: unknown = values;
  for (const segment of path.split(".")) {
    if (!isRecord(current)) {
      return undefined;
    }
    current = current[segment];
  }
  return current;
}

/**
 * Every field of `shape`, taken from the first source that has a value of the right kind:
 * the conversation state (`state.values`), a runtime setting named after the field
 * (`currentTime` -> `CURRENT_TIME`), else a default (now for times, the host's time zone
 * and UTC offset, otherwise an empty value).
 */
export function resolveFields<S extends FieldShape>(
  runtime: IAgentRuntime,
  state: State | undefined,
  shape: S,
  path = "",
): FieldValues<S> {
  const result: Record<string, unknown> = {};
  for (const [key, kind] of Object.entries(shape)) {
    const fieldPath = path === "" ? key : `${path}.${key}`;
    if (typeof kind !== "string") {
      result[key] = resolveFields(runtime, state, kind, fieldPath);
      continue;
    }
    const fromState = lookup(state?.values ?? {}, fieldPath);
    const setting = readSetting(runtime, settingKey(fieldPath));
    const fromSetting = setting === undefined ? undefined : fromText(kind, setting);
    if (matches(kind, fromState)) {
      result[key] = fromState;
    } else if (matches(kind, fromSetting)) {
      result[key] = fromSetting;
    } else {
      result[key] = defaultValue(kind, key);
    }
  }
  return result as FieldValues<S>;
}

/** The provider's text for the prompt: a heading and one line per field. */
export function formatProviderText(title: string, data: Record<string, unknown>): string {
  const lines = Object.entries(data).map(
    ([key, value]) => `- ${key}: ${typeof value === "string" ? value : JSON.stringify(value)}`,
  );
  return [`# ${title}`, ...lines].join("\n");
}
"""

SERVICES_TS = r"""/** The argument of a service operation. */
export type ServiceInput = Record<string, unknown>;

/** One recorded service operation. */
export interface ServiceCall {
  readonly method: string;
  readonly input: ServiceInput;
  readonly sequence: number;
  readonly calledAt: string;
}

/** A bounded in-memory log of a service's operations (newest last). */
export class ServiceCallLog {
  private readonly calls: ServiceCall[] = [];
  private sequence = 0;
  private readonly limit: number;

  constructor(limit = 100) {
    this.limit = limit;
  }

  record(method: string, input: ServiceInput): ServiceCall {
    this.sequence += 1;
    const call: ServiceCall = {
      method,
      input: { ...input },
      sequence: this.sequence,
      calledAt: new Date().toISOString(),
    };
    this.calls.push(call);
    if (this.calls.length > this.limit) {
      this.calls.shift();
    }
    return call;
  }

  list(): readonly ServiceCall[] {
    return [...this.calls];
  }

  clear(): void {
    this.calls.length = 0;
  }
}
"""

EVALUATORS_TS = r"""/** The triggers (case-insensitive substrings) that occur in `text`. */
export function matchedTriggers(text: string | undefined, triggers: readonly string[]): string[] {
  const haystack = (text ?? "").toLowerCase();
  return triggers.filter(
    (trigger) => trigger.trim() !== "" && haystack.includes(trigger.toLowerCase()),
  );
}

/** Whether an evaluator applies: a non-empty message matching a trigger (any, if none). */
export function shouldEvaluate(text: string | undefined, triggers: readonly string[]): boolean {
  if ((text ?? "").trim() === "") {
    return false;
  }
  return triggers.length === 0 || matchedTriggers(text, triggers).length > 0;
}
"""
