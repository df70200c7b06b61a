/** Reading what the user asked for out of a message: a JSON spec, a job id, a description. */

import type { Content } from "@elizaos/core";

/** A job id as the service makes them: 32 lower-case hex digits (a uuid4 without dashes). */
const JOB_ID = /\b[0-9a-f]{32}\b/i;
/** An abbreviated job id as the plugin shows them ("job 3f2a9c1b"): 6-31 hex digits. */
/** Longer texts are not searched for a spec (the service rejects such specs anyway). */
const MAX_TEXT = 200_000;
const SHORT_ID = /\b(?:job|id)\s*[#:]?\s*([0-9a-f]{6,31})\b/i;

/**
 * The plugin spec of a message, as a plain object, or undefined when there is none.
 *
 * Looked for, in order: `content.spec` (an object or JSON string); a fenced ```json
 * block of the text; the first balanced `{...}` of the text that parses as JSON. Only an
 * object with a string `name` counts as a spec.
 */
export function extractSpec(content: Content): Record<string, unknown> | undefined {
  const direct = content["spec"];
  if (typeof direct === "object" && direct !== null && !Array.isArray(direct)) return asSpec(direct);
  if (typeof direct === "string") return asSpec(parseJson(direct));
  const text = (content.text ?? "").slice(0, MAX_TEXT);
  for (const match of text.matchAll(/```(?:json|jsonc)?\s*\n?([\s\S]*?)```/gi)) {
    const spec = asSpec(parseJson(match[1] ?? ""));
    if (spec !== undefined) return spec;
  }
  for (const candidate of balancedObjects(text)) {
    const spec = asSpec(parseJson(candidate));
    if (spec !== undefined) return spec;
  }
  return undefined;
}

/** Whether the text holds something that looks like an attempt at a JSON object. */
export function looksLikeJson(content: Content): boolean {
  return typeof content["spec"] !== "undefined" || /```json|\{\s*"/i.test(content.text ?? "");
}

/**
 * The job a message names: `content.jobId`, a full 32-hex id in the text, or an
 * abbreviated one ("job 3f2a9c1b") that is a prefix of exactly one of `known`.
 */
export function extractJobId(content: Content, known: readonly string[] = []): string | undefined {
  const direct = content["jobId"];
  if (typeof direct === "string" && direct.trim() !== "") return resolvePrefix(direct.trim().toLowerCase(), known) ?? direct.trim();
  const text = content.text ?? "";
  const full = JOB_ID.exec(text);
  if (full) return full[0].toLowerCase();
  const short = SHORT_ID.exec(text);
  if (short?.[1]) return resolvePrefix(short[1].toLowerCase(), known);
  return undefined;
}

/** "Please create me a plugin that ..." — the request around the description. */
const PREAMBLE =
  /^\s*(?:hey[,!]?\s+|hi[,!]?\s+)?(?:please\s+)?(?:(?:can|could|would)\s+you\s+)?(?:please\s+)?(?:create|make|build|generate|write|scaffold|develop)\s+(?:me\s+|us\s+)?(?:an?\s+|the\s+)?(?:new\s+)?(?:elizaos\s+|eliza\s+)?plugin\b[\s,:-]*(?:that|which|to|for|with)?\s*/i;

/**
 * The description of a CREATE_PLUGIN_FROM_DESCRIPTION request: `content.description`, or
 * the text with the request around it reduced to "A plugin that ...", so that the
 * service's verbs are the plugin's ("create a plugin that can get X" is about getting X,
 * not creating it).
 */
export function extractDescription(content: Content): string {
  const direct = content["description"];
  if (typeof direct === "string" && direct.trim() !== "") return direct.trim();
  const text = (content.text ?? "").trim();
  const rest = text.replace(PREAMBLE, "");
  return rest !== text && rest !== "" ? `A plugin that ${rest}` : text;
}

/** Whether the text asks for a plugin to be made. */
export function asksForPlugin(text: string): boolean {
  if (/\b(create|build|make|generate|write|scaffold|develop)\b[\s\S]{0,80}\bplugin\b/i.test(text)) return true;
  return (
    /\bplugin\b[\s\S]{0,40}\b(that|which|to|for)\b/i.test(text) &&
    /\b(create|build|make|generate|write|need|want)\b/i.test(text)
  );
}

function resolvePrefix(prefix: string, known: readonly string[]): string | undefined {
  if (/^[0-9a-f]{32}$/.test(prefix)) return prefix;
  const matches = known.filter((id) => id.startsWith(prefix));
  return matches.length === 1 ? matches[0] : undefined;
}

function asSpec(value: unknown): Record<string, unknown> | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const record = value as Record<string, unknown>;
  return typeof record["name"] === "string" ? record : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Every balanced top-level `{...}` substring, respecting JSON strings. */
function* balancedObjects(text: string): Generator<string> {
  for (let start = text.indexOf("{"); start !== -1; start = text.indexOf("{", start + 1)) {
    let depth = 0;
    let inString = false;
    for (let i = start; i < text.length; i++) {
      const ch = text[i];
      if (inString) {
        if (ch === "\\") i++;
        else if (ch === '"') inString = false;
      } else if (ch === '"') {
        inString = true;
      } else if (ch === "{") {
        depth++;
      } else if (ch === "}") {
        depth--;
        if (depth === 0) {
          yield text.slice(start, i + 1);
          break;
        }
      }
    }
  }
}
