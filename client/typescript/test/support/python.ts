/** The Python client's view of a job, through the repository's `auton8n` CLI. */

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

import { PYTHON, REPO_ROOT, SERVER_ROOT } from "./paths.js";

const run = promisify(execFile);

/** Runs `auton8n --server TARGET --json ARGS...` and returns the JSON lines it printed. */
export async function pythonCli(target: string, ...args: string[]): Promise<unknown[]> {
  const cli = join(REPO_ROOT, ".venv/bin/auton8n");
  const [cmd, argv] = existsSync(cli) && SERVER_ROOT === REPO_ROOT
    ? [cli, ["--server", target, "--json", ...args]]
    : [PYTHON, ["-c", "from client.cli import main; main()", "--server", target, "--json", ...args]];
  const { stdout } = await run(cmd, argv, {
    cwd: SERVER_ROOT,
    env: { ...process.env, PYTHONPATH: [SERVER_ROOT, join(SERVER_ROOT, "protos")].join(":") },
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as unknown);
}

/** Whether the server under test has API tokens (`auton8n tokens`). */
export function serverHasTokens(): boolean {
  return existsSync(join(SERVER_ROOT, "server/auth/admin.py"));
}

/** Creates an API token on the server's database; returns the secret. */
export async function createToken(dataDir: string, tenant: string): Promise<string> {
  const { stdout } = await run(
    PYTHON,
    ["-c", "from client.cli import main; main()", "--json", "tokens", "--data-dir", dataDir, "create", "--tenant", tenant, "--name", "vitest"],
    {
      cwd: SERVER_ROOT,
      env: { ...process.env, PYTHONPATH: [SERVER_ROOT, join(SERVER_ROOT, "protos")].join(":") },
      timeout: 60_000,
    },
  );
  const created = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as { token?: string };
  if (!created.token) throw new Error(`no token in ${stdout}`);
  return created.token;
}
