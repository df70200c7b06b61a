/**
 * TLS options: a CA, a client certificate (mutual TLS), a server name — through a TLS
 * proxy in front of the real server; directly in the client and through the plugin's
 * runtime settings (AUTON8N_TLS_*_FILE).
 */

import { readFile, rm } from "node:fs/promises";

import type { ActionResult, State } from "@elizaos/core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

import { ClientError, NotFoundError, PluginClient, tlsFromFiles } from "@auton8n/client";
import { Auton8nService, SERVICE_TYPE, SettingsError, auton8nPlugin, checkPluginStatusAction, readSettings } from "../plugin-eliza/src/index.js";
import { Conversation, newId, startRuntime, userMessage } from "./support/runtime.js";
import { TlsProxy, makePki, type TestPki } from "./support/tls.js";

const upstream = inject("serverTarget");
const FAST_FAIL = { initialMs: 50, maxMs: 100, connectTimeoutMs: 500, timeoutMs: 500 };
let pki: TestPki;
let proxy: TlsProxy;

beforeAll(async () => {
  pki = await makePki();
  proxy = await TlsProxy.start(pki, upstream);
});

afterAll(async () => {
  await proxy?.close();
  if (pki) await rm(pki.dir, { recursive: true, force: true });
});

describe("the client over TLS", () => {
  it("reaches the server with the CA, a client certificate and the server name", async () => {
    const tls = await tlsFromFiles({
      caFile: pki.caFile,
      certFile: pki.clientCertFile,
      keyFile: pki.clientKeyFile,
      serverName: pki.serverName,
    });
    const client = new PluginClient({ target: proxy.target, tls, token: "t0ken" });
    try {
      expect(client.target).toBe(`https://${proxy.target}`);
      await expect(client.get("f".repeat(32))).rejects.toBeInstanceOf(NotFoundError);
      const page = await client.list({ pageSize: 1 });
      expect(page.jobs.length).toBeLessThanOrEqual(1);
    } finally {
      await client.close();
    }
  });

  it("accepts PEM strings and an https:// target", async () => {
    const client = new PluginClient({
      target: `https://${proxy.target}`,
      tls: {
        ca: await readFile(pki.caFile, "utf8"),
        cert: await readFile(pki.clientCertFile, "utf8"),
        key: await readFile(pki.clientKeyFile, "utf8"),
        serverName: pki.serverName,
      },
    });
    try {
      await expect(client.get("e".repeat(32))).rejects.toMatchObject({ reason: "JOB_NOT_FOUND" });
    } finally {
      await client.close();
    }
  });

  it("fails without a client certificate, with the wrong CA, or for the wrong name", async () => {
    const cases = [
      { ca: await readFile(pki.caFile), serverName: pki.serverName },
      { ca: await readFile(pki.otherCaFile), cert: await readFile(pki.clientCertFile), key: await readFile(pki.clientKeyFile), serverName: pki.serverName },
      { ca: await readFile(pki.caFile), cert: await readFile(pki.clientCertFile), key: await readFile(pki.clientKeyFile), serverName: "wrong.test" },
    ];
    let retried = 0;
    for (const tls of cases) {
      const client = new PluginClient({ target: proxy.target, tls, retry: FAST_FAIL, onRetry: () => retried++ });
      try {
        const error = await client.get("d".repeat(32)).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ClientError);
        expect((error as ClientError).reason).toBe("TLS_HANDSHAKE"); // and not retried
      } finally {
        await client.close();
      }
    }
    expect(retried).toBe(0);
    expect(proxy.rejected.length).toBeGreaterThan(0); // the proxy refused the certificate-less client
  });

  it("refuses a certificate without its key", async () => {
    await expect(tlsFromFiles({ caFile: pki.caFile, certFile: pki.clientCertFile })).rejects.toThrow(/go together/);
  });
});

describe("the plugin's TLS settings", () => {
  it("configures the service's client from AUTON8N_TLS_* files", async () => {
    const agent = await startRuntime(auton8nPlugin, {
      AUTON8N_SERVER: proxy.target,
      AUTON8N_TLS_CA_FILE: pki.caFile,
      AUTON8N_TLS_CERT_FILE: pki.clientCertFile,
      AUTON8N_TLS_KEY_FILE: pki.clientKeyFile,
      AUTON8N_TLS_SERVER_NAME: pki.serverName,
      AUTON8N_TOKEN: "secret",
    });
    const service = agent.runtime.getService<Auton8nService>(SERVICE_TYPE)!;
    try {
      expect(service.settings.tls).toBe(true);
      expect(service.client.target).toBe(`https://${proxy.target}`);
      // A named job that does not exist: the request went through TLS and came back NOT_FOUND.
      const conversation = new Conversation();
      const state: State = { values: {}, data: {}, text: "" };
      const user = newId();
      const jobId = "c".repeat(32);
      await service.tracker.record({ jobId, entityId: user, roomId: newId(), name: "", createdAt: Date.now() });
      const result = (await checkPluginStatusAction.handler(
        agent.runtime, userMessage(user, newId(), `status of ${jobId}`), state, {}, conversation.callback,
      )) as ActionResult;
      expect(result.success).toBe(false);
      expect(conversation.texts()[0]).toContain("can't find that job");
    } finally {
      await service.stop();
    }
  });

  it("rejects half a client certificate and TLS files with an http:// server", () => {
    expect(() => readSettings({ getSetting: (k) => ({ AUTON8N_TLS_CERT_FILE: "/x.crt" })[k] ?? null })).toThrow(SettingsError);
    expect(() =>
      readSettings({ getSetting: (k) => ({ AUTON8N_SERVER: "http://h:1", AUTON8N_TLS_CA_FILE: "/ca" })[k] ?? null }),
    ).toThrow(SettingsError);
    expect(readSettings({ getSetting: (k) => ({ AUTON8N_TLS: "true" })[k] ?? null }).tls).toBe(true);
    expect(readSettings({ getSetting: (k) => ({ AUTON8N_SERVER: "https://h:1" })[k] ?? null }).tls).toBe(true);
    expect(readSettings({ getSetting: () => null })).toMatchObject({ server: "localhost:50051", tls: false, model: "", maxIterations: 0 });
  });
});
