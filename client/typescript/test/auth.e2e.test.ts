/**
 * Bearer tokens against a server that requires them (AUTON8N_AUTH_MODE=required, tokens
 * made with `auton8n tokens create`): the client's `token` option and the plugin's
 * AUTON8N_TOKEN setting; UNAUTHENTICATED decoded; tenants see only their own jobs.
 * Skipped for a server without API tokens.
 */

import type { ActionResult, State } from "@elizaos/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { AuthError, Code, NotFoundError, PluginClient } from "@auton8n/client";
import { Auton8nService, SERVICE_TYPE, auton8nPlugin, createPluginFromDescriptionAction } from "../plugin-eliza/src/index.js";
import { createToken, serverHasTokens } from "./support/python.js";
import { Conversation, newId, startRuntime, userMessage } from "./support/runtime.js";
import { ServerProcess } from "./support/server.js";

const STATE: State = { values: {}, data: {}, text: "" };

describe.skipIf(!serverHasTokens())("API tokens", () => {
  let server: ServerProcess;
  let alice: string;
  let bob: string;
  const cleanup: PluginClient[] = [];

  beforeAll(async () => {
    server = await ServerProcess.start({ env: { AUTON8N_AUTH_MODE: "required" } });
    [alice, bob] = await Promise.all([createToken(server.dataDir, "alice"), createToken(server.dataDir, "bob")]);
  });

  afterAll(async () => {
    await Promise.all(cleanup.map((c) => c.close()));
    await server?.dispose();
  });

  const clientWith = (token?: string): PluginClient => {
    const c = new PluginClient({ target: server.target, token });
    cleanup.push(c);
    return c;
  };

  it("refuses a call without a token or with a bad one: UNAUTHENTICATED, not retried", async () => {
    for (const token of [undefined, "not-a-token"]) {
      const error = await clientWith(token).list().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AuthError);
      expect((error as AuthError).code).toBe(Code.Unauthenticated);
    }
  });

  it("sends the bearer token; each tenant sees only its own jobs", async () => {
    const asAlice = clientWith(alice);
    const job = await asAlice.createFromDescription("A plugin that can fetch quotes and list authors.");
    expect((await asAlice.get(job.id)).id).toBe(job.id);
    await expect(clientWith(bob).get(job.id)).rejects.toBeInstanceOf(NotFoundError);
    await asAlice.cancel(job.id);
  });

  it("the plugin authenticates with AUTON8N_TOKEN", async () => {
    for (const [token, ok] of [[alice, true], ["wrong", false]] as const) {
      const agent = await startRuntime(auton8nPlugin, { AUTON8N_SERVER: server.target, AUTON8N_TOKEN: token });
      const service = agent.runtime.getService<Auton8nService>(SERVICE_TYPE)!;
      try {
        const conversation = new Conversation();
        const message = userMessage(newId(), newId(), "Please make a plugin that can search books and list authors.");
        const result = (await createPluginFromDescriptionAction.handler(agent.runtime, message, STATE, {}, conversation.callback)) as ActionResult;
        expect(result.success).toBe(ok);
        if (ok) {
          await service.client.cancel(result.data?.["jobId"] as string);
        } else {
          expect(conversation.texts()[0]).toContain("refused my credentials");
        }
      } finally {
        await service.stop();
      }
    }
  });
});
