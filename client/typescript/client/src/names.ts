/** Human-readable names of the API's enums, for logs and chat messages. */

import { JobState, Phase } from "./gen/auton8n/v1/plugin_service_pb.js";

const STATE_NAMES: Readonly<Record<JobState, string>> = {
  [JobState.UNSPECIFIED]: "unknown",
  [JobState.QUEUED]: "queued",
  [JobState.RUNNING]: "running",
  [JobState.SUCCEEDED]: "succeeded",
  [JobState.FAILED]: "failed",
  [JobState.CANCELLED]: "cancelled",
};

const PHASE_NAMES: Readonly<Record<Phase, string>> = {
  [Phase.UNSPECIFIED]: "",
  [Phase.SETUP]: "setting up",
  [Phase.GENERATING]: "generating code",
  [Phase.BUILDING]: "building",
  [Phase.LINTING]: "linting",
  [Phase.TESTING]: "testing",
  [Phase.VALIDATING]: "validating",
  [Phase.PACKAGING]: "packaging",
};

/** JobState.SUCCEEDED -> "succeeded". */
export function stateName(state: JobState): string {
  return STATE_NAMES[state] ?? `state ${state}`;
}

/** Phase.BUILDING -> "building"; "" for UNSPECIFIED. */
export function phaseName(phase: Phase): string {
  return PHASE_NAMES[phase] ?? `phase ${phase}`;
}

/** "succeeded" -> JobState.SUCCEEDED (also "JOB_STATE_SUCCEEDED"); undefined if unknown. */
export function parseState(name: string): JobState | undefined {
  const key = name.trim().toUpperCase().replace(/^JOB_STATE_/, "");
  const value = (JobState as unknown as Record<string, unknown>)[key];
  return typeof value === "number" ? (value as JobState) : undefined;
}
