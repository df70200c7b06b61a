/** The committed generated code is what `buf generate` (local protoc-gen-es) makes now. */

import { execFile } from "node:child_process";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";

import { expect, it } from "vitest";

import { TS_ROOT } from "./support/paths.js";

const run = promisify(execFile);

async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name))).sort();
}

it("client/src/gen is up to date with protos/ (run `npm run generate` if not)", async () => {
  const out = await mkdtemp(join(tmpdir(), "auton8n-ts-gen-"));
  try {
    await run(join(TS_ROOT, "node_modules/.bin/buf"), ["generate", "--output", out], { cwd: TS_ROOT, timeout: 60_000 });
    const fresh = join(out, "client/src/gen");
    const committed = join(TS_ROOT, "client/src/gen");
    expect(await files(fresh)).toEqual(await files(committed));
    for (const file of await files(fresh)) {
      expect(await readFile(join(committed, file), "utf8"), file).toBe(await readFile(join(fresh, file), "utf8"));
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
