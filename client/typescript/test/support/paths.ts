/** Where things are: the repository, its Python server and CLI, the examples. */

import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** client/typescript/. */
export const TS_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** The repository root. */
export const REPO_ROOT = resolve(TS_ROOT, "../..");

/**
 * Where the Python server's code is: the repository, or AUTON8N_TS_SERVER_ROOT (a copy
 * of the tree, e.g. `git archive HEAD`, to test against a known server).
 */
export const SERVER_ROOT = process.env["AUTON8N_TS_SERVER_ROOT"] ?? REPO_ROOT;

/** The Python with the server's dependencies: the repository's virtualenv. */
export const PYTHON =
  process.env["AUTON8N_TS_PYTHON"] ??
  (existsSync(join(REPO_ROOT, ".venv/bin/python")) ? join(REPO_ROOT, ".venv/bin/python") : "python3");

/** The shared npm toolchain the server links jobs to (as `make test` exports it). */
export const TOOLCHAIN_DIR = process.env["AUTON8N_TOOLCHAIN_DIR"] ?? join(REPO_ROOT, "data/toolchain");

export const EXAMPLES = join(REPO_ROOT, "examples");
