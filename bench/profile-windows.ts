/**
 * The measured windows, kept for the CPU profile summary (bench/profile-summary.ts): which hops
 * served a window, when (in microseconds of the monotonic clock that V8's CPU profiles use too, so
 * the summary can take exactly the samples inside measured windows, not start-up or warm-up), and
 * how many calls or tokens it served (for µs per call).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Measured } from './measure.ts';

export interface ProfileWindow {
  /** What was measured, e.g. `tool calls`, `tokens private_key_jwt`: the summary groups by it. */
  kind: string;
  /** The names of the processes that served it (`secured/gateway`, ...). */
  hops: string[];
  startUs: number;
  endUs: number;
  calls: number;
}

export const WINDOWS_FILE = 'windows.json';

/** The directory of a hop's profile inside the profile directory: `secured/gateway` → `secured-gateway`. */
export const hopDirName = (hop: string) => hop.replaceAll('/', '-');

const windows: ProfileWindow[] = [];

export function noteWindow(
  kind: string,
  hops: readonly string[],
  window: Measured<unknown>,
  calls: number,
): void {
  windows.push({
    kind,
    hops: [...hops],
    startUs: Math.round(window.startedMs * 1000),
    endUs: Math.round(window.endedMs * 1000),
    calls,
  });
}

export function writeWindows(profileDir: string): void {
  writeFileSync(path.join(profileDir, WINDOWS_FILE), JSON.stringify(windows));
}
