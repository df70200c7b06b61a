import { fileURLToPath } from "node:url";

import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    // Tests run the sources (the build is type-checked separately by `tsc -b`).
    alias: { "@auton8n/client": fileURLToPath(new URL("./client/src/index.ts", import.meta.url)) },
  },
  test: {
    include: ["client/test/**/*.test.ts", "plugin-eliza/test/**/*.test.ts", "test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    pool: "forks",
    // The tests mostly wait on the server: run the files side by side even on 2 cores.
    maxWorkers: 4,
    fileParallelism: true,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
    reporters: ["default"],
  },
});
