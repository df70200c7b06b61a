/** One shared server for the test files that do not restart it. */

import type { TestProject } from "vitest/node";

import { ServerProcess } from "./server.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** host:port of the shared server. */
    serverTarget: string;
  }
}

let server: ServerProcess | undefined;

export async function setup(project: TestProject): Promise<void> {
  server = await ServerProcess.start();
  project.provide("serverTarget", server.target);
}

export async function teardown(): Promise<void> {
  if (server !== undefined && process.env["AUTON8N_TS_KEEP_LOGS"]) {
    console.log(await server.logs());
  }
  await server?.dispose();
}
