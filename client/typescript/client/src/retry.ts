/** How the client retries transient failures (UNAVAILABLE: restart, drain, network). */

import { setTimeout as sleep } from "node:timers/promises";

import { Code } from "@connectrpc/connect";

import type { ClientError } from "./errors.js";

/**
 * Delays grow exponentially from `initialMs` by `multiplier` up to `maxMs`, each
 * jittered to between half and all of its nominal value; retrying stops once
 * `timeoutMs` has passed since the first failure of an outage. While the client has
 * never reached the server, `connectTimeoutMs` is the budget instead: a server that is
 * not there is reported within seconds, one that restarts is waited for.
 */
export interface RetryPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly multiplier: number;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = Object.freeze({
  initialMs: 200,
  maxMs: 10_000,
  multiplier: 2,
  timeoutMs: 60_000,
  connectTimeoutMs: 5_000,
});

/** The endless sequence of jittered delays in ms (pure but for `rand`). */
export function* retryDelays(policy: RetryPolicy, rand: () => number = Math.random): Generator<number, never> {
  let nominal = policy.initialMs;
  for (;;) {
    yield nominal * (0.5 + rand() / 2);
    nominal = Math.min(nominal * policy.multiplier, policy.maxMs);
  }
}

/** Whether a failed call may be repeated: the server was not reachable or ready. */
export function isRetryable(error: ClientError): boolean {
  return error.code === Code.Unavailable;
}

/** One outage: the delays so far and the deadline of its retry budget. */
export class Backoff {
  private readonly delays: Generator<number, never>;
  private readonly deadline: number;

  constructor(policy: RetryPolicy, reached: boolean, rand?: () => number) {
    this.delays = retryDelays(policy, rand);
    const budget = reached ? policy.timeoutMs : Math.min(policy.timeoutMs, policy.connectTimeoutMs);
    this.deadline = performance.now() + budget;
  }

  /** Ms to wait before the next try, or undefined when the budget is spent. */
  nextDelay(): number | undefined {
    const remaining = this.deadline - performance.now();
    if (remaining <= 0) return undefined;
    return Math.min(this.delays.next().value, remaining);
  }
}

/** Sleeps `ms`, rejecting early with the signal's reason when it aborts. */
export async function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  await sleep(ms, undefined, signal === undefined ? undefined : { signal });
}
