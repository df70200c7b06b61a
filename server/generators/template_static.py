"""The spec-independent files of every template plugin (configuration and helpers).

Kept as Python constants (no package data to ship or read); each is already in the
exact form Biome 2.6's formatter prints, so ``biome check`` reports nothing.
"""

from __future__ import annotations

from server.generators.template_helpers_core import ACTIONS_TS, PARAMETERS_TS, SETTINGS_TS
from server.generators.template_helpers_runtime import EVALUATORS_TS, PROVIDERS_TS, SERVICES_TS

__all__ = ["STATIC_FILES"]

TSCONFIG_JSON = """{
  "compilerOptions": {
    "target": "ES2022",
    "lib": ["ES2022"],
    "module": "ESNext",
    "moduleResolution": "Bundler",
    "types": ["node"],
    "strict": true,
    "noUncheckedIndexedAccess": true,
    "noUnusedLocals": true,
    "noUnusedParameters": true,
    "noImplicitOverride": true,
    "noImplicitReturns": true,
    "noFallthroughCasesInSwitch": true,
    "verbatimModuleSyntax": true,
    "isolatedModules": true,
    "esModuleInterop": true,
    "forceConsistentCasingInFileNames": true,
    "resolveJsonModule": true,
    "skipLibCheck": true,
    "noEmit": true
  },
  "include": ["src/**/*.ts"]
}
"""

# The build (tsup: esbuild bundle + declarations) covers the plugin, not its tests.
TSCONFIG_BUILD_JSON = """{
  "extends": "./tsconfig.json",
  "compilerOptions": {
    "noEmit": false,
    "declaration": true
  },
  "include": ["src/**/*.ts"],
  "exclude": ["src/__tests__/**"]
}
"""

TSUP_CONFIG_TS = """import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/index.ts"],
  outDir: "dist",
  format: ["esm"],
  platform: "node",
  target: "node20",
  tsconfig: "tsconfig.build.json",
  dts: true,
  sourcemap: true,
  clean: true,
});
"""

VITEST_CONFIG_TS = """import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "node",
    include: ["src/__tests__/**/*.test.ts"],
    // Generous: checks run on shared, busy build machines.
    testTimeout: 30000,
    hookTimeout: 30000,
    env: {
      LOG_LEVEL: "error",
    },
  },
});
"""

# "preset" replaces the deprecated "recommended" flag in Biome 2.6; recommended rules are
# errors or warnings as Biome ranks them, and the pipeline treats any finding as a failure.
# Markdown is left out: Biome 2.6 formats it (padding tables), which spec text can upset.
BIOME_JSON = """{
  "$schema": "./node_modules/@biomejs/biome/configuration_schema.json",
  "vcs": {
    "enabled": false
  },
  "files": {
    "includes": ["**", "!**/node_modules", "!**/dist", "!**/coverage", "!**/*.md"]
  },
  "formatter": {
    "enabled": true,
    "indentStyle": "space",
    "indentWidth": 2,
    "lineWidth": 100
  },
  "javascript": {
    "formatter": {
      "quoteStyle": "double",
      "quoteProperties": "preserve",
      "semicolons": "always",
      "trailingCommas": "all"
    }
  },
  "linter": {
    "enabled": true,
    "rules": {
      "preset": "recommended"
    }
  },
  "assist": {
    "actions": {
      "source": {
        "organizeImports": "on"
      }
    }
  }
}
"""

GITIGNORE = """node_modules/
dist/
coverage/
*.tsbuildinfo
.env
"""

TEST_UTILS_TS = r"""import type {
  Action,
  ActionResult,
  Content,
  IAgentRuntime,
  Memory,
  Service,
  State,
  UUID,
} from "@elizaos/core";
import { vi } from "vitest";
import { pluginSettings } from "../config";

export const TEST_AGENT_ID: UUID = "00000000-0000-4000-8000-000000000001";
export const TEST_ENTITY_ID: UUID = "00000000-0000-4000-8000-000000000002";
export const TEST_ROOM_ID: UUID = "00000000-0000-4000-8000-000000000003";

export interface MockRuntimeOptions {
  settings?: Record<string, string>;
  services?: Record<string, Service>;
}

/** A runtime with just what plugins use: settings, services, a logger and the agent id. */
export function createMockRuntime(options: MockRuntimeOptions = {}): IAgentRuntime {
  const settings: Record<string, string | boolean | null> = { ...options.settings };
  const services = new Map<string, Service>(Object.entries(options.services ?? {}));
  const runtime = {
    agentId: TEST_AGENT_ID,
    character: { name: "Test Agent", bio: ["An agent used in tests."] },
    getSetting: vi.fn((key: string) => settings[key] ?? null),
    setSetting: vi.fn((key: string, value: string | boolean | null) => {
      settings[key] = value;
    }),
    getService: vi.fn((type: string) => services.get(type) ?? null),
    hasService: vi.fn((type: string) => services.has(type)),
    logger: { info: vi.fn(), warn: vi.fn(), error: vi.fn(), debug: vi.fn() },
  };
  return runtime as unknown as IAgentRuntime;
}

/** A message from the test user. */
export function createMockMemory(content: Content = {}): Memory {
  return {
    id: "00000000-0000-4000-8000-000000000004",
    entityId: TEST_ENTITY_ID,
    agentId: TEST_AGENT_ID,
    roomId: TEST_ROOM_ID,
    content,
    createdAt: Date.UTC(2024, 0, 15, 12),
  };
}

/** A conversation state with the given values. */
export function createMockState(values: Record<string, unknown> = {}): State {
  return { values, data: {}, text: "" };
}

/** A handler callback that records what the user would have been shown. */
export function createMockCallback() {
  return vi.fn(async (_content: Content): Promise<Memory[]> => []);
}

/** A value for every declared setting (or only the required ones). */
export function settingValues(onlyRequired = false): Record<string, string> {
  const values: Record<string, string> = {};
  for (const setting of pluginSettings) {
    if (setting.required || !onlyRequired) {
      values[setting.name] = `test-${setting.name.toLowerCase()}`;
    }
  }
  return values;
}

/** The ActionResult a handler returned (failing the test when it returned nothing). */
export function expectResult(result: Awaited<ReturnType<Action["handler"]>>): ActionResult {
  if (!result) {
    throw new Error("the handler returned no ActionResult");
  }
  return result;
}
"""

STATIC_FILES: dict[str, str] = {
    "tsconfig.json": TSCONFIG_JSON,
    "tsconfig.build.json": TSCONFIG_BUILD_JSON,
    "tsup.config.ts": TSUP_CONFIG_TS,
    "vitest.config.ts": VITEST_CONFIG_TS,
    "biome.json": BIOME_JSON,
    ".gitignore": GITIGNORE,
    "src/utils/parameters.ts": PARAMETERS_TS,
    "src/utils/actions.ts": ACTIONS_TS,
    "src/utils/settings.ts": SETTINGS_TS,
    "src/utils/providers.ts": PROVIDERS_TS,
    "src/utils/services.ts": SERVICES_TS,
    "src/utils/evaluators.ts": EVALUATORS_TS,
    "src/__tests__/test-utils.ts": TEST_UTILS_TS,
}
