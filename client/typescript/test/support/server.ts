/** The real Python server in a subprocess, on a free loopback port, with a temp data dir. */

import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, open, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { PYTHON, SERVER_ROOT, TOOLCHAIN_DIR } from "./paths.js";

const LISTENING = /auton8n listening on ([\d.]+):(\d+)/;

export interface ServerOptions {
  /** Extra AUTON8N_* settings. */
  readonly env?: Readonly<Record<string, string>>;
  /** Reuse this folder (its data/ is the server's data dir); a new temp dir otherwise. */
  readonly workDir?: string;
}

/**
 * `python -m server` with its own data dir. `restart()` brings it back on the same port
 * with the same data, as an operator would after a deploy or a crash.
 */
export class ServerProcess {
  port = 0;
  private proc: ChildProcess | undefined;
  private starts = 0;

  private constructor(
    readonly workDir: string,
    private readonly env: Readonly<Record<string, string>>,
    private readonly ownsWorkDir: boolean,
  ) {}

  static async start(options: ServerOptions = {}): Promise<ServerProcess> {
    const ownsWorkDir = options.workDir === undefined;
    const workDir = options.workDir ?? (await mkdtemp(join(tmpdir(), "auton8n-ts-")));
    // A root server runs the sandboxes as nobody: the data dir's parent must be traversable.
    await chmod(workDir, 0o755);
    const server = new ServerProcess(workDir, options.env ?? {}, ownsWorkDir);
    await server.launch("127.0.0.1:0");
    return server;
  }

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  get dataDir(): string {
    return join(this.workDir, "data");
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Sends the signal and waits for the exit; SIGKILL after `timeoutMs`. */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 30_000): Promise<number | null> {
    const proc = this.proc;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return proc?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops with `signal`, then starts again on the same port with the same data dir. */
  async restart(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    await this.stop(signal);
    await this.launch(`127.0.0.1:${this.port}`);
  }

  /** Stops the server and removes its temp dir. */
  async dispose(): Promise<void> {
    await this.stop("SIGTERM", 15_000);
    if (this.ownsWorkDir) await rm(this.workDir, { recursive: true, force: true });
  }

  /** The server's stderr log of every start so far (for failure reports). */
  async logs(maxChars = 20_000): Promise<string> {
    const parts: string[] = [];
    for (let i = 0; i < this.starts; i++) {
      parts.push(await readFile(this.logPath(i), "utf8").catch(() => ""));
    }
    const all = parts.join("\n--- restart ---\n");
    return all.length > maxChars ? all.slice(-maxChars) : all;
  }

  private logPath(index: number): string {
    return join(this.workDir, `server-${index}.log`);
  }

  private async launch(listen: string, timeoutMs = 60_000): Promise<void> {
    const log = await open(this.logPath(this.starts++), "a");
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      // The offline generator only: no model keys reach the server.
      if (v !== undefined && !/^(ANTHROPIC|OPENAI)_/.test(k)) env[k] = v;
    }
    const pythonPath = SERVER_ROOT === undefined ? [] : [SERVER_ROOT, join(SERVER_ROOT, "protos")];
    Object.assign(env, {
      PYTHONPATH: [...pythonPath, env["PYTHONPATH"]].filter(Boolean).join(":"),
      AUTON8N_DATA_DIR: this.dataDir,
      AUTON8N_LISTEN_ADDRESS: listen,
      AUTON8N_METRICS_ADDRESS: "127.0.0.1:0",
      AUTON8N_TOOLCHAIN_DIR: TOOLCHAIN_DIR,
      AUTON8N_MODEL: "template",
      AUTON8N_CLAIM_POLL_INTERVAL_S: "0.2",
      AUTON8N_WATCH_POLL_INTERVAL_S: "0.5",
      AUTON8N_LEASE_TIMEOUT_S: "3",
      AUTON8N_HEARTBEAT_INTERVAL_S: "1",
      AUTON8N_SHUTDOWN_GRACE_S: "2",
      // Every test client comes from 127.0.0.1: one rate-limit bucket for all of them.
      // (Settings a server does not know are ignored.)
      AUTON8N_RATE_LIMIT_CREATE_PER_HOUR: "0",
      AUTON8N_RATE_LIMIT_REQUESTS_PER_S: "0",
      AUTON8N_MAX_WATCHES_PER_CLIENT: "0",
      AUTON8N_LOG_LEVEL: "INFO",
      AUTON8N_LOG_FORMAT: "text",
      ...this.env,
    });
    const proc = spawn(PYTHON, ["-m", "server"], {
      cwd: SERVER_ROOT,
      env,
      stdio: ["ignore", "pipe", log.fd],
    });
    this.proc = proc;
    await log.close();
    const port = await new Promise<number>((resolve, reject) => {
      const lines = createInterface({ input: proc.stdout! });
      const timer = setTimeout(() => reject(new Error(`server did not start within ${timeoutMs} ms`)), timeoutMs);
      const done = (fn: () => void): void => {
        clearTimeout(timer);
        proc.off("exit", onExit);
        fn();
      };
      const onExit = (code: number | null): void => done(() => reject(new Error(`server exited with ${code} before listening`)));
      proc.on("exit", onExit);
      lines.on("line", (line) => {
        const match = LISTENING.exec(line);
        if (match?.[2]) done(() => resolve(Number(match[2])));
      });
    }).catch(async (error: unknown) => {
      proc.kill("SIGKILL");
      throw new Error(`${(error as Error).message}\n${await this.logs(5000)}`);
    });
    proc.stdout?.resume(); // keep draining stdout
    this.port = port;
  }
}
