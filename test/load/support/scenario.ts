/**
 * What a scenario is and what it reports: the promises it checks (each one passes or fails, with
 * the evidence), the numbers for the final table, and the settings it changed from the built-in
 * configuration.
 */
import type { Deviation } from './stack.ts';

export interface Check {
  /** The promise, as the issue words it. */
  promise: string;
  ok: boolean;
  /** The evidence: counts, measurements. */
  detail: string;
}

export interface ScenarioReport {
  checks: Check[];
  /** Rows of the final table: what was measured, and its value. */
  numbers: Array<[string, string | number]>;
  deviations: Deviation[];
  notes?: string[];
}

export interface ScenarioResult extends ScenarioReport {
  scenario: string;
  title: string;
  seconds: number;
  /** Where the configuration, data and logs of the run are (kept when a promise failed). */
  dir: string;
}

export interface ScenarioContext {
  /** A fresh directory for this run: configuration, data directory, one log per component. */
  dir: string;
  progress(line: string): void;
}

export interface Scenario {
  name: string;
  title: string;
  /** Upper bound of its duration, for the runner's deadline. */
  budgetSeconds: number;
  run(context: ScenarioContext): Promise<ScenarioReport>;
}

export const check = (promise: string, ok: boolean, detail: string): Check => ({ promise, ok, detail });

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs `task` for each item with at most `concurrency` at once. */
export async function pool<T, R>(
  items: readonly T[],
  concurrency: number,
  task: (item: T, index: number) => Promise<R>,
) {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

/** The p-th percentile (nearest rank) of unsorted samples, rounded to 0.1. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return Math.round(sorted[rank - 1]! * 10) / 10;
}

export const mib = (kib: number) => Math.round(kib / 102.4) / 10;
