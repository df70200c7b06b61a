/**
 * A stand-in for the ElizaOS runtime with just what the plugin uses (settings, services,
 * cache, logger), typed as the real IAgentRuntime of @elizaos/core 1.7. Services are
 * started through the plugin's own `services` list, as the runtime does.
 */

import { randomUUID } from "node:crypto";

import type { Content, HandlerCallback, IAgentRuntime, Memory, Plugin, Service, UUID } from "@elizaos/core";

export interface TestRuntime {
  readonly runtime: IAgentRuntime;
  readonly services: Map<string, Service>;
  readonly logs: { level: string; args: unknown[] }[];
}

/**
 * @param settings what `getSetting` answers (the character's settings/secrets).
 * @param cache the runtime cache (share one Map between runtimes to simulate a restart
 *   of the agent on the same database).
 * @param agentId the agent's id (stable across restarts of the same character).
 */
export async function startRuntime(
  plugin: Plugin,
  settings: Readonly<Record<string, string>>,
  cache: Map<string, unknown> = new Map(),
  agentId: UUID = randomUUID() as UUID,
): Promise<TestRuntime> {
  const services = new Map<string, Service>();
  const logs: { level: string; args: unknown[] }[] = [];
  const log = (level: string) => (...args: unknown[]) => void logs.push({ level, args });
  const logger = {
    level: "info",
    trace: log("trace"),
    debug: log("debug"),
    info: log("info"),
    warn: log("warn"),
    error: log("error"),
    fatal: log("fatal"),
    success: log("success"),
    progress: log("progress"),
    log: log("log"),
    clear: () => {},
    child: () => logger,
  };
  const partial: Partial<IAgentRuntime> = {
    agentId,
    logger,
    getSetting: (key: string) => settings[key] ?? null,
    getService: <T extends Service>(type: string): T | null => (services.get(type) as T | undefined) ?? null,
    // A database cache stores JSON: values come back as copies.
    getCache: async <T>(key: string): Promise<T | undefined> =>
      cache.has(key) ? (JSON.parse(JSON.stringify(cache.get(key))) as T) : undefined,
    setCache: async <T>(key: string, value: T): Promise<boolean> => {
      cache.set(key, JSON.parse(JSON.stringify(value)) as unknown);
      return true;
    },
  };
  const runtime = partial as IAgentRuntime;
  for (const serviceClass of plugin.services ?? []) {
    services.set(serviceClass.serviceType, await serviceClass.start(runtime));
  }
  return { runtime, services, logs };
}

/** A user's message in a room. */
export function userMessage(entityId: UUID, roomId: UUID, content: Content | string): Memory {
  return {
    id: randomUUID() as UUID,
    entityId,
    roomId,
    content: typeof content === "string" ? { text: content, source: "test" } : { source: "test", ...content },
    createdAt: Date.now(),
  };
}

export function newId(): UUID {
  return randomUUID() as UUID;
}

/** Records what the agent says through an action's callback. */
export class Conversation {
  readonly said: Content[] = [];
  private waiters: (() => void)[] = [];

  readonly callback: HandlerCallback = async (content: Content) => {
    this.said.push(content);
    for (const wake of this.waiters.splice(0)) wake();
    return [];
  };

  texts(): string[] {
    return this.said.map((c) => c.text ?? "");
  }

  /** Waits until a message satisfies `predicate`; returns it. */
  async waitFor(predicate: (content: Content) => boolean, what: string, timeoutMs = 90_000): Promise<Content> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.said.find(predicate);
      if (found !== undefined) return found;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`timed out waiting for ${what}; said so far:\n${this.texts().join("\n")}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}
